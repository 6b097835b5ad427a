//! The Gaussian with arbitrary covariance (docs/THEORY.md §3.1), as an
//! **unnormalized** target with exactly known normalization:
//!
//! log p̃(x) = −½ (x − μ)ᵀ Σ⁻¹ (x − μ),  score ∇ₓ log p̃ = −Σ⁻¹ (x − μ),
//! Hessian of the energy ∇²u = Σ⁻¹ (independent of x),
//!
//! log Z = ½ log det(2πΣ) = ½ (d log 2π + log det Σ).
//!
//! **Choice (ours):** unlike the mixtures of this crate (normalized, log Z = 0),
//! the Gaussian leaves its normalization out of log p̃, so log Z ≠ 0 and an
//! estimator of log Z that silently assumes a normalized target is caught by
//! the tests that use it. Exact samples are x = μ + L z with Σ = L Lᵀ
//! (Cholesky through ndarray-linalg) and z ~ N(0, I).

use crate::linalg::{format_vec, Factor};
use crate::modes::{impl_synthetic_target, Modes};
use fieldflow_core::{ConfigError, ExactSampler, HessianVector, Par, Seed, Target};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand_distr::{Distribution, StandardNormal};

/// N(μ, Σ) with a full covariance Σ, unnormalized (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    mean: Array1<f64>,
    factor: Factor,
}

impl Gaussian {
    /// N(`mean`, `cov`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming `mean` (empty or non-finite) or `cov` (wrong
    /// shape, non-finite, not symmetric: `cov[i][j]`, or not positive definite).
    pub fn new(mean: Array1<f64>, cov: Array2<f64>) -> Result<Self, ConfigError> {
        if mean.is_empty() {
            return Err(ConfigError::new("mean", "[]", "needs at least one entry"));
        }
        if mean.iter().any(|v| !v.is_finite()) {
            return Err(ConfigError::new(
                "mean",
                format_vec(&mean.to_vec()),
                "entries must be finite",
            ));
        }
        let factor = Factor::new(cov.view(), mean.len(), "cov")?;
        Ok(Gaussian { mean, factor })
    }

    /// The mean μ.
    pub fn mean(&self) -> ArrayView1<'_, f64> {
        self.mean.view()
    }

    /// The covariance Σ.
    pub fn cov(&self) -> ArrayView2<'_, f64> {
        self.factor.cov.view()
    }

    /// The lower Cholesky factor L of Σ = L Lᵀ.
    pub fn cholesky(&self) -> ArrayView2<'_, f64> {
        self.factor.chol.view()
    }

    /// The precision matrix Σ⁻¹.
    pub fn precision(&self) -> ArrayView2<'_, f64> {
        self.factor.precision.view()
    }

    /// log det Σ.
    pub fn log_det_cov(&self) -> f64 {
        self.factor.log_det
    }
}

impl Target for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }

    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        assert_eq!(x.len(), self.mean.len(), "x has the wrong dimension");
        -0.5 * self.factor.quad(x, self.mean.view())
    }

    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        assert_eq!(x.len(), self.mean.len(), "x has the wrong dimension");
        assert_eq!(score.len(), self.mean.len(), "score has the wrong dimension");
        score.fill(0.0);
        -0.5 * self.factor.quad_and_grad(x, self.mean.view(), &mut score, 1.0)
    }

    /// ½ (d log 2π + log det Σ).
    fn log_z(&self) -> Option<f64> {
        let d = self.mean.len() as f64;
        Some(0.5 * (d * (2.0 * std::f64::consts::PI).ln() + self.factor.log_det))
    }

    fn describe(&self) -> String {
        format!(
            "Gaussian (unnormalized, log Z = ½ log det 2πΣ): dim = {}, mean = {}, cov = {}",
            self.mean.len(),
            format_vec(&self.mean.to_vec()),
            crate::linalg::format_matrix(self.factor.cov.view())
        )
    }
}

impl HessianVector for Gaussian {
    /// ∇²u v = Σ⁻¹ v (independent of x); no allocation.
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        let d = self.mean.len();
        assert!(x.len() == d && v.len() == d && out.len() == d);
        ndarray::linalg::general_mat_vec_mul(1.0, &self.factor.precision, &v, 0.0, &mut out);
    }
}

impl ExactSampler for Gaussian {
    /// Chunk k of the batch draws from stream `seed.child(k)`: x = μ + L z.
    ///
    /// # Panics
    /// If the width of `xs` differs from the dimension.
    fn sample_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, par: Par) {
        assert_eq!(xs.ncols(), self.mean.len(), "batch width differs from dim");
        let mut dummy = Array1::zeros(xs.nrows());
        par.rows_mut_to_values(xs, dummy.view_mut(), |k, _, mut x, _| {
            let mut rng = seed.child(k as u64).rng();
            for mut row in x.rows_mut() {
                row.mapv_inplace(|_| StandardNormal.sample(&mut rng));
                self.factor.transform(row, self.mean.view());
            }
        });
    }
}

impl Modes for Gaussian {
    fn n_modes(&self) -> usize {
        1
    }
    fn true_weights(&self) -> Option<Vec<f64>> {
        Some(vec![1.0])
    }
    fn assign(&self, _x: ArrayView1<f64>) -> usize {
        0
    }
}

impl_synthetic_target!(Gaussian, exact);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        assert_hvp_matches_fd_at, assert_score_matches_fd, gaussian_points, grid_log_z_2d, sample_moments,
    };
    use ndarray::array;

    fn example() -> Gaussian {
        Gaussian::new(array![1.0, -2.0], array![[1.5, 0.6], [0.6, 0.8]]).unwrap()
    }

    #[test]
    fn score_matches_finite_differences() {
        let g = Gaussian::new(
            array![0.5, -1.0, 2.0],
            array![[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 0.5]],
        )
        .unwrap();
        assert_score_matches_fd(&g, 3.0, 20, 1);
    }

    #[test]
    fn hessian_vector_products_match_score_differences() {
        let g = Gaussian::new(
            array![0.5, -1.0, 2.0],
            array![[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 0.5]],
        )
        .unwrap();
        let pts = gaussian_points(g.mean(), 3.0, 20, 90);
        let worst = assert_hvp_matches_fd_at(&g, pts.view(), 91);
        println!("Gaussian: max hvp relative error {worst:e}");
    }

    #[test]
    fn log_z_matches_a_2d_grid() {
        let g = example();
        let grid = grid_log_z_2d(&g, (-8.0, 10.0), (-9.0, 5.0), 0.02);
        let exact = g.log_z().unwrap();
        assert!((grid - exact).abs() < 1e-9, "grid {grid} exact {exact}");
    }

    #[test]
    fn exact_samples_have_the_right_mean_and_covariance() {
        let g = example();
        let n = 40_000;
        let mut xs = Array2::zeros((n, 2));
        g.sample_batch(Seed::new(3), xs.view_mut(), Par::default());
        let (m, c) = sample_moments(xs.view());
        let cov = g.cov();
        for i in 0..2 {
            let se = (cov[[i, i]] / n as f64).sqrt();
            assert!((m[i] - g.mean()[i]).abs() < 4.0 * se, "mean {m}");
            for j in 0..2 {
                // Var of a sample covariance: (Σᵢᵢ Σⱼⱼ + Σᵢⱼ²)/n.
                let se = ((cov[[i, i]] * cov[[j, j]] + cov[[i, j]].powi(2)) / n as f64).sqrt();
                assert!((c[[i, j]] - cov[[i, j]]).abs() < 4.0 * se, "cov {c}");
            }
        }
    }

    #[test]
    fn log_prob_and_fused_call_agree_bit_for_bit() {
        let g = example();
        let x = array![0.3, 0.7];
        let mut s = Array1::zeros(2);
        assert_eq!(g.log_prob_and_score(x.view(), s.view_mut()), g.log_prob(x.view()));
    }
}
