//! Dense symmetric positive-definite covariances: Cholesky factor, precision
//! matrix and log-determinant, computed once through ndarray-linalg (LAPACK
//! `potrf`/`potri`), plus the allocation-free kernels the targets use per
//! sample.
//!
//! For Σ = L Lᵀ and P = Σ⁻¹ the kernels are
//!
//! * quadratic form q(x) = (x − μ)ᵀ P (x − μ), evaluated as Σᵢ rᵢ (P r)ᵢ with
//!   r = x − μ formed on the fly (no scratch memory);
//! * the Gaussian score −P (x − μ);
//! * the exact sampler x = μ + L z, z ~ N(0, I), applied in place.

use fieldflow_core::ConfigError;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1};
use ndarray_linalg::{DeterminantC, FactorizeC, InverseC, UPLO};

/// Relative tolerance on |Σᵢⱼ − Σⱼᵢ| (against the largest |Σᵢⱼ|) for a
/// covariance to count as symmetric.
pub(crate) const SYMMETRY_TOL: f64 = 1e-10;

/// Σ = L Lᵀ with P = Σ⁻¹ and log det Σ.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Factor {
    /// The covariance Σ as given (symmetrized).
    pub cov: Array2<f64>,
    /// Lower Cholesky factor L (upper triangle zero).
    pub chol: Array2<f64>,
    /// Precision matrix P = Σ⁻¹ (exactly symmetric).
    pub precision: Array2<f64>,
    /// log det Σ = 2 Σᵢ log Lᵢᵢ.
    pub log_det: f64,
}

impl Factor {
    /// Factors the covariance `cov` of dimension `dim`; errors name `field`.
    pub fn new(cov: ArrayView2<f64>, dim: usize, field: &str) -> Result<Self, ConfigError> {
        let shown = || format_matrix(cov);
        if cov.nrows() != dim || cov.ncols() != dim {
            return Err(ConfigError::new(
                field,
                shown(),
                format!("must be a {dim}x{dim} matrix (got {}x{})", cov.nrows(), cov.ncols()),
            ));
        }
        if cov.iter().any(|v| !v.is_finite()) {
            return Err(ConfigError::new(field, shown(), "entries must be finite"));
        }
        let scale = cov.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        for i in 0..dim {
            for j in 0..i {
                if (cov[[i, j]] - cov[[j, i]]).abs() > SYMMETRY_TOL * scale {
                    return Err(ConfigError::new(
                        format!("{field}[{i}][{j}]"),
                        cov[[i, j]],
                        format!("must equal {field}[{j}][{i}] = {} (symmetric)", cov[[j, i]]),
                    ));
                }
            }
        }
        let sym = Array2::from_shape_fn((dim, dim), |(i, j)| 0.5 * (cov[[i, j]] + cov[[j, i]]));
        let not_pd = || ConfigError::new(field, shown(), "must be positive definite");
        let fact = sym.factorizec(UPLO::Lower).map_err(|_| not_pd())?;
        if fact.factor.diag().iter().any(|&l| !(l > 0.0 && l.is_finite())) {
            return Err(not_pd());
        }
        let log_det = fact.ln_detc();
        let p = fact.invc().map_err(|_| not_pd())?;
        let precision = Array2::from_shape_fn((dim, dim), |(i, j)| 0.5 * (p[[i, j]] + p[[j, i]]));
        if !log_det.is_finite() || precision.iter().any(|v| !v.is_finite()) {
            return Err(not_pd());
        }
        Ok(Factor {
            cov: sym,
            chol: fact.into_lower(),
            precision,
            log_det,
        })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.chol.nrows()
    }

    /// q = (x − μ)ᵀ P (x − μ), no allocation. Bit-identical to the value
    /// returned by [`Factor::quad_and_grad`].
    #[inline]
    pub fn quad(&self, x: ArrayView1<f64>, mean: ArrayView1<f64>) -> f64 {
        let d = self.dim();
        let mut q = 0.0;
        for i in 0..d {
            let row = self.precision.row(i);
            let mut t = 0.0;
            for j in 0..d {
                t += row[j] * (x[j] - mean[j]);
            }
            q += (x[i] - mean[i]) * t;
        }
        q
    }

    /// Writes `scale · (−P (x − μ))` added to `acc` (`acc += −scale·P r`) and
    /// returns q = rᵀ P r (bit-identical to [`Factor::quad`]).
    #[inline]
    pub fn quad_and_grad(
        &self,
        x: ArrayView1<f64>,
        mean: ArrayView1<f64>,
        acc: &mut ArrayViewMut1<f64>,
        scale: f64,
    ) -> f64 {
        let d = self.dim();
        let mut q = 0.0;
        for i in 0..d {
            let row = self.precision.row(i);
            let mut t = 0.0;
            for j in 0..d {
                t += row[j] * (x[j] - mean[j]);
            }
            q += (x[i] - mean[i]) * t;
            acc[i] -= scale * t;
        }
        q
    }

    /// In place: `x` holds z on entry and μ + L z on exit.
    #[inline]
    pub fn transform(&self, mut x: ArrayViewMut1<f64>, mean: ArrayView1<f64>) {
        // x_i depends on z_0..z_i only: overwrite from the last entry down.
        for i in (0..self.dim()).rev() {
            let row = self.chol.row(i);
            let mut v = mean[i];
            for j in 0..=i {
                v += row[j] * x[j];
            }
            x[i] = v;
        }
    }
}

/// Shows a matrix compactly for error messages, e.g. `[[1, 0.5], [0.5, 1]]`.
pub(crate) fn format_matrix(m: ArrayView2<f64>) -> String {
    let rows: Vec<String> = m.rows().into_iter().map(|r| format_vec(&r.to_vec())).collect();
    format!("[{}]", rows.join(", "))
}

/// Shows a vector compactly for error messages, e.g. `[0.1, 0.2]`.
pub(crate) fn format_vec(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A vector from a slice (shorthand).
pub(crate) fn vec1(v: &[f64]) -> Array1<f64> {
    Array1::from(v.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn factor_reproduces_the_covariance_and_its_inverse() {
        let cov = array![[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 0.5]];
        let f = Factor::new(cov.view(), 3, "cov").unwrap();
        let llt = f.chol.dot(&f.chol.t());
        assert!((&llt - &cov).iter().all(|v| v.abs() < 1e-14));
        let id = f.precision.dot(&cov);
        for i in 0..3 {
            for j in 0..3 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((id[[i, j]] - e).abs() < 1e-13);
            }
        }
        for i in 0..3 {
            for j in i + 1..3 {
                assert_eq!(f.chol[[i, j]], 0.0);
            }
        }
    }

    #[test]
    fn non_positive_definite_and_asymmetric_are_refused() {
        let e = Factor::new(array![[1.0, 2.0], [2.0, 1.0]].view(), 2, "cov").unwrap_err();
        assert_eq!(e.field, "cov");
        assert!(e.problem.contains("positive definite"), "{e}");
        let e = Factor::new(array![[1.0, 0.2], [0.1, 1.0]].view(), 2, "cov").unwrap_err();
        assert_eq!(e.field, "cov[1][0]");
        let e = Factor::new(array![[1.0, 0.0], [0.0, 1.0]].view(), 3, "cov").unwrap_err();
        assert!(e.problem.contains("3x3"), "{e}");
    }
}
