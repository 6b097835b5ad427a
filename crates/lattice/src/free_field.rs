//! Exact results for the free field λ = 0, m² > 0 (docs/THEORY.md §2.4): the
//! oracle every sampler and estimator is checked against.
//!
//! S = ½ φᵀ A φ with A = 2(−Δ + m²). On a periodic lattice of extents L_μ the
//! eigenvalues of −Δ are p̂²(n) = Σ_μ 4 sin²(π n_μ / L_μ), n_μ = 0..L_μ − 1, so
//! with Ĝ(n) = 1 / (2(p̂²(n) + m²)) (the momentum-space propagator):
//!
//! * G(x) = ⟨φ(0)φ(x)⟩ = (1/V) Σ_n cos(2π Σ_μ n_μ x_μ / L_μ) Ĝ(n);
//! * χ₂ = Σₓ G(x) = V⟨M²⟩ = Ĝ(0) = 1/(2m²);
//! * log Z = (V/2) log(2π) − ½ Σ_n log(2(p̂²(n) + m²)) (in the variable φ);
//! * the zero-momentum correlator along axis 0 ("time"),
//!   C(t) = Σ_{x₁..x_{d−1}} G(t, x₁, …) = (1/L₀) Σ_{n₀} cos(2π n₀ t / L₀) Ĝ(n₀, 0, …, 0);
//! * F_μ = Ĝ(p_min along μ) = 1/(2(4 sin²(π/L_μ) + m²)), and the second-moment
//!   correlation length ξ₂ = sqrt(χ₂/F_μ − 1) / (2 sin(π/L_μ)) = 1/m exactly,
//!   the same definition as [`crate::observables`] uses (there
//!   F_μ = ⟨|φ̃(p_min,μ)|²⟩ / V with φ̃(p) = Σₓ φ(x) e^{−ipx}, and Ĝ(p) = ⟨|φ̃(p)|²⟩/V);
//! * ⟨S⟩ = V/2 (equipartition), with kinetic part Σ_n p̂²(n) Ĝ(n) and
//!   potential part m² Σ_n Ĝ(n).

use crate::fft::FftNd;
use crate::geometry::Lattice;
use fieldflow_core::ConfigError;
use rustfft::num_complex::Complex;
use std::f64::consts::PI;

/// The Gaussian (λ = 0) lattice field of mass squared m² > 0.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeField {
    lattice: Lattice,
    m2: f64,
}

impl FreeField {
    /// The free field on a lattice of extents `shape`.
    ///
    /// # Errors
    /// An impossible shape (field `lattice`) or m² ≤ 0 / non-finite (field `m2`).
    pub fn new(shape: &[usize], m2: f64) -> Result<Self, ConfigError> {
        let lattice = Lattice::new(shape)?;
        if !(m2.is_finite() && m2 > 0.0) {
            return Err(ConfigError::new("m2", m2, "the free field needs m2 > 0"));
        }
        Ok(FreeField { lattice, m2 })
    }

    /// The lattice.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// m².
    pub fn m2(&self) -> f64 {
        self.m2
    }

    /// p̂²(n) = Σ_μ 4 sin²(π n_μ / L_μ) of the momentum with integer coordinates `n`.
    pub fn p_hat_sq(&self, n: &[usize]) -> f64 {
        n.iter()
            .zip(self.lattice.shape())
            .map(|(&k, &l)| 4.0 * (PI * k as f64 / l as f64).sin().powi(2))
            .sum()
    }

    /// Ĝ(n) = 1 / (2(p̂²(n) + m²)).
    pub fn momentum_propagator(&self, n: &[usize]) -> f64 {
        0.5 / (self.p_hat_sq(n) + self.m2)
    }

    /// Ĝ(n) for every momentum, in row-major order of n.
    fn momentum_propagators(&self) -> Vec<f64> {
        let mut n = vec![0usize; self.lattice.dim()];
        (0..self.lattice.volume())
            .map(|i| {
                self.lattice.coords(i, &mut n);
                self.momentum_propagator(&n)
            })
            .collect()
    }

    /// G(x) for every separation x, in row-major order (by FFT).
    pub fn propagator(&self) -> Vec<f64> {
        let mut g: Vec<Complex<f64>> = self
            .momentum_propagators()
            .into_iter()
            .map(|v| Complex::new(v, 0.0))
            .collect();
        FftNd::new(self.lattice.shape()).transform(&mut g, true);
        let v = self.lattice.volume() as f64;
        g.iter().map(|c| c.re / v).collect()
    }

    /// G(x) at one separation, by the direct sum over momenta.
    ///
    /// # Panics
    /// If `x.len() != d`.
    pub fn propagator_at(&self, x: &[usize]) -> f64 {
        assert_eq!(x.len(), self.lattice.dim(), "coordinate length differs from d");
        let mut n = vec![0usize; self.lattice.dim()];
        let mut s = 0.0;
        for i in 0..self.lattice.volume() {
            self.lattice.coords(i, &mut n);
            let phase: f64 = (0..n.len())
                .map(|mu| n[mu] as f64 * x[mu] as f64 / self.lattice.shape()[mu] as f64)
                .sum();
            s += (2.0 * PI * phase).cos() * self.momentum_propagator(&n);
        }
        s / self.lattice.volume() as f64
    }

    /// χ₂ = Σₓ G(x) = V⟨M²⟩ = 1/(2m²).
    pub fn chi2(&self) -> f64 {
        0.5 / self.m2
    }

    /// ⟨M²⟩ = χ₂ / V.
    pub fn m_sq(&self) -> f64 {
        self.chi2() / self.lattice.volume() as f64
    }

    /// log Z = (V/2) log(2π) − ½ Σ_n log(2(p̂²(n) + m²)).
    pub fn log_z(&self) -> f64 {
        let v = self.lattice.volume() as f64;
        // 2(p̂² + m²) = 1/Ĝ, so log(2(p̂² + m²)) = −log Ĝ.
        let sum_log: f64 = self.momentum_propagators().iter().map(|g| -g.ln()).sum();
        0.5 * v * (2.0 * PI).ln() - 0.5 * sum_log
    }

    /// C(t) = Σ over axes 1..d of G(t, x₁, …), t = 0..L₀ − 1 (axis 0 is time).
    pub fn zero_momentum_correlator(&self) -> Vec<f64> {
        let l0 = self.lattice.shape()[0];
        let mut n = vec![0usize; self.lattice.dim()];
        (0..l0)
            .map(|t| {
                (0..l0)
                    .map(|k| {
                        n[0] = k;
                        (2.0 * PI * (k * t) as f64 / l0 as f64).cos() * self.momentum_propagator(&n)
                    })
                    .sum::<f64>()
                    / l0 as f64
            })
            .collect()
    }

    /// F_μ = Ĝ(p_min) with p_min = 2π/L_μ along axis μ.
    ///
    /// # Panics
    /// If `mu >= d`.
    pub fn f_pmin(&self, mu: usize) -> f64 {
        let mut n = vec![0usize; self.lattice.dim()];
        n[mu] = 1 % self.lattice.shape()[mu];
        self.momentum_propagator(&n)
    }

    /// ξ₂ = sqrt(χ₂/F_μ − 1) / (2 sin(π/L_μ)) along axis μ (equals 1/m);
    /// `None` if L_μ = 1 (no non-zero momentum).
    ///
    /// # Panics
    /// If `mu >= d`.
    pub fn xi2(&self, mu: usize) -> Option<f64> {
        let l = self.lattice.shape()[mu];
        (l > 1).then(|| (self.chi2() / self.f_pmin(mu) - 1.0).sqrt() / (2.0 * (PI / l as f64).sin()))
    }

    /// ⟨S⟩/V = 1/2 (equipartition of the quadratic action).
    pub fn action_density(&self) -> f64 {
        0.5
    }

    /// ⟨kinetic⟩/V and ⟨potential⟩/V: (1/V) Σ_n p̂² Ĝ(n) and (m²/V) Σ_n Ĝ(n).
    pub fn action_density_parts(&self) -> (f64, f64) {
        let mut n = vec![0usize; self.lattice.dim()];
        let (mut kin, mut pot) = (0.0, 0.0);
        for i in 0..self.lattice.volume() {
            self.lattice.coords(i, &mut n);
            let g = self.momentum_propagator(&n);
            kin += self.p_hat_sq(&n) * g;
            pot += self.m2 * g;
        }
        let v = self.lattice.volume() as f64;
        (kin / v, pot / v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense A = 2(−Δ + m²) of a small lattice.
    fn dense_a(f: &FreeField) -> Vec<Vec<f64>> {
        let lat = f.lattice();
        let v = lat.volume();
        let mut a = vec![vec![0.0; v]; v];
        for i in 0..v {
            a[i][i] += 2.0 * f.m2();
            for mu in 0..lat.dim() {
                // Each bond term (φ(x+μ̂) − φ(x))² adds 2 to the diagonal
                // entries of both ends and −2 to the off-diagonal ones.
                let j = lat.fwd(i, mu);
                a[i][i] += 2.0;
                a[j][j] += 2.0;
                a[i][j] -= 2.0;
                a[j][i] -= 2.0;
            }
        }
        a
    }

    /// Cholesky log-determinant and inverse column 0 (by solves).
    fn log_det_and_inverse(a: &[Vec<f64>]) -> (f64, Vec<Vec<f64>>) {
        let n = a.len();
        let mut l = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..=i {
                let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
                if i == j {
                    l[i][i] = (a[i][i] - s).sqrt();
                } else {
                    l[i][j] = (a[i][j] - s) / l[j][j];
                }
            }
        }
        let log_det = 2.0 * (0..n).map(|i| l[i][i].ln()).sum::<f64>();
        let mut inv = vec![vec![0.0; n]; n];
        for c in 0..n {
            let mut y = vec![0.0; n];
            for i in 0..n {
                let e = if i == c { 1.0 } else { 0.0 };
                y[i] = (e - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
            }
            let mut x = vec![0.0; n];
            for i in (0..n).rev() {
                x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
            }
            for i in 0..n {
                inv[i][c] = x[i];
            }
        }
        (log_det, inv)
    }

    #[test]
    fn matches_dense_linear_algebra_on_small_non_square_lattices() {
        for (shape, m2) in [(&[3usize, 4][..], 0.5), (&[2, 3, 2], 0.3), (&[5], 1.7), (&[1, 4], 0.8)] {
            let f = FreeField::new(shape, m2).unwrap();
            let a = dense_a(&f);
            let (log_det, inv) = log_det_and_inverse(&a);
            let v = f.lattice().volume() as f64;
            let log_z = 0.5 * v * (2.0 * PI).ln() - 0.5 * log_det;
            assert!((f.log_z() - log_z).abs() < 1e-10, "{shape:?}: {} vs {log_z}", f.log_z());
            // ⟨φφᵀ⟩ = A⁻¹, so G(x) = (A⁻¹)_{0,x}.
            let g = f.propagator();
            let mut x = vec![0usize; shape.len()];
            for i in 0..g.len() {
                assert!((g[i] - inv[0][i]).abs() < 1e-12);
                f.lattice().coords(i, &mut x);
                assert!((f.propagator_at(&x) - g[i]).abs() < 1e-12);
            }
            assert!((g.iter().sum::<f64>() - f.chi2()).abs() < 1e-12);
            let (kin, pot) = f.action_density_parts();
            assert!((kin + pot - 0.5).abs() < 1e-12);
            assert!((pot - m2 * g[0]).abs() < 1e-12);
            // C(t) = Σ over the other axes of G.
            let c = f.zero_momentum_correlator();
            let l0 = shape[0];
            let per_t = g.len() / l0;
            for t in 0..l0 {
                let s: f64 = g[t * per_t..(t + 1) * per_t].iter().sum();
                assert!((c[t] - s).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn second_moment_length_is_one_over_m_and_mass_must_be_positive() {
        let f = FreeField::new(&[8, 12], 0.5).unwrap();
        for mu in 0..2 {
            assert!((f.xi2(mu).unwrap() - 0.5f64.sqrt().recip()).abs() < 1e-12);
        }
        assert!(FreeField::new(&[1, 4], 0.5).unwrap().xi2(0).is_none());
        assert_eq!(FreeField::new(&[4], 0.0).unwrap_err().field, "m2");
        assert_eq!(FreeField::new(&[], 1.0).unwrap_err().field, "lattice");
    }
}
