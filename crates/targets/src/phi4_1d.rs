//! The one-dimensional φ⁴ / Allen–Cahn field of Gabrié, Rotskoff and
//! Vanden-Eijnden (arXiv 2105.12603; docs/THEORY.md §3.5): N sites φ₁..φ_N with Dirichlet ends
//! φ₀ = φ_{N+1} = 0 and
//!
//! βU(φ) = β [ (aN/2) Σ_{i=0}^{N} (φ_{i+1} − φᵢ)² + (1/(aN)) Σ_{i=1}^{N} ((1 − φᵢ²)²/4 + b φᵢ) ],
//!
//! log p̃(φ) = −βU(φ), and the score
//!
//! ∂ log p̃/∂φᵢ = −β [ aN (2φᵢ − φᵢ₋₁ − φᵢ₊₁) + (φᵢ³ − φᵢ + b)/(aN) ].
//!
//! Differentiating once more gives the Hessian of the energy u = βU applied
//! to v (a tridiagonal matrix; v₀ = v_{N+1} = 0 at the Dirichlet ends),
//!
//! (∇²u v)ᵢ = β [ aN (2vᵢ − vᵢ₋₁ − vᵢ₊₁) + (3φᵢ² − 1) vᵢ/(aN) ].
//!
//! Defaults N = 100, a = 0.1, β = 20, b = 0. At b = 0 the density is
//! symmetric under φ → −φ; its two modes are the fields near +1 and near −1.
//! A sample is assigned by the sign of the mean field M = (1/N) Σᵢ φᵢ:
//! mode 0 if M < 0, mode 1 otherwise. The mode weights are exactly ½, ½ at
//! b = 0 (symmetry) and unknown otherwise (a tilt b > 0 favours M < 0).
//! Neither log Z nor exact samples are available.

use crate::modes::{impl_synthetic_target, Modes};
use fieldflow_core::{ConfigError, HessianVector, Target};
use ndarray::{ArrayView1, ArrayViewMut1};

/// Default number of sites N.
pub const DEFAULT_N: usize = 100;
/// Default lattice-spacing parameter a.
pub const DEFAULT_A: f64 = 0.1;
/// Default inverse temperature β.
pub const DEFAULT_BETA: f64 = 20.0;
/// Default tilt b.
pub const DEFAULT_B: f64 = 0.0;

/// The 1D φ⁴ field with Dirichlet ends (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phi4Field1d {
    n: usize,
    a: f64,
    beta: f64,
    b: f64,
}

impl Default for Phi4Field1d {
    /// N = 100, a = 0.1, β = 20, b = 0 (docs/THEORY.md §3.5).
    fn default() -> Self {
        Phi4Field1d {
            n: DEFAULT_N,
            a: DEFAULT_A,
            beta: DEFAULT_BETA,
            b: DEFAULT_B,
        }
    }
}

impl Phi4Field1d {
    /// The field with `n` sites, spacing parameter `a`, inverse temperature
    /// `beta` and tilt `b`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `n` (must be ≥ 1), `a` or `beta` (finite,
    /// > 0) or `b` (finite, ≥ 0).
    pub fn new(n: usize, a: f64, beta: f64, b: f64) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new("n", n, "must be >= 1"));
        }
        if !(a.is_finite() && a > 0.0) {
            return Err(ConfigError::new("a", a, "must be finite and > 0"));
        }
        if !(beta.is_finite() && beta > 0.0) {
            return Err(ConfigError::new("beta", beta, "must be finite and > 0"));
        }
        if !(b.is_finite() && b >= 0.0) {
            return Err(ConfigError::new("b", b, "must be finite and >= 0"));
        }
        Ok(Phi4Field1d { n, a, beta, b })
    }

    /// Number of sites N.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Spacing parameter a.
    pub fn a(&self) -> f64 {
        self.a
    }
    /// Inverse temperature β.
    pub fn beta(&self) -> f64 {
        self.beta
    }
    /// Tilt b.
    pub fn b(&self) -> f64 {
        self.b
    }

    /// The mean field M = (1/N) Σᵢ φᵢ.
    pub fn mean_field(&self, phi: ArrayView1<f64>) -> f64 {
        phi.sum() / self.n as f64
    }

    /// The energy U(φ) (without β).
    pub fn energy(&self, phi: ArrayView1<f64>) -> f64 {
        assert_eq!(phi.len(), self.n, "phi has the wrong number of sites");
        let an = self.a * self.n as f64;
        let mut grad2 = 0.0;
        let mut pot = 0.0;
        let mut prev = 0.0;
        for &p in phi.iter() {
            grad2 += (p - prev) * (p - prev);
            let w = 1.0 - p * p;
            pot += 0.25 * w * w + self.b * p;
            prev = p;
        }
        grad2 += prev * prev;
        0.5 * an * grad2 + pot / an
    }
}

impl Target for Phi4Field1d {
    fn dim(&self) -> usize {
        self.n
    }

    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        -self.beta * self.energy(x)
    }

    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        assert_eq!(x.len(), self.n, "phi has the wrong number of sites");
        assert_eq!(score.len(), self.n, "score has the wrong dimension");
        let an = self.a * self.n as f64;
        let n = self.n;
        for i in 0..n {
            let left = if i > 0 { x[i - 1] } else { 0.0 };
            let right = if i + 1 < n { x[i + 1] } else { 0.0 };
            let p = x[i];
            score[i] = -self.beta * (an * (2.0 * p - left - right) + (p * p * p - p + self.b) / an);
        }
        self.log_prob(x)
    }

    fn describe(&self) -> String {
        format!(
            "1D phi^4 (Allen-Cahn, Dirichlet ends): n = {}, a = {}, beta = {}, b = {}",
            self.n, self.a, self.beta, self.b
        )
    }
}

impl HessianVector for Phi4Field1d {
    /// (∇²u v)ᵢ = β [ aN (2vᵢ − vᵢ₋₁ − vᵢ₊₁) + (3φᵢ² − 1) vᵢ/(aN) ],
    /// v₀ = v_{N+1} = 0 (Dirichlet ends).
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        let n = self.n;
        assert_eq!(x.len(), n, "phi has the wrong number of sites");
        assert_eq!(v.len(), n, "v has the wrong number of sites");
        assert_eq!(out.len(), n, "out has the wrong number of sites");
        let an = self.a * n as f64;
        for i in 0..n {
            let left = if i > 0 { v[i - 1] } else { 0.0 };
            let right = if i + 1 < n { v[i + 1] } else { 0.0 };
            let p = x[i];
            out[i] = self.beta * (an * (2.0 * v[i] - left - right) + (3.0 * p * p - 1.0) * v[i] / an);
        }
    }
}

impl Modes for Phi4Field1d {
    fn n_modes(&self) -> usize {
        2
    }

    /// ½, ½ at b = 0 by the φ → −φ symmetry; `None` for b ≠ 0.
    fn true_weights(&self) -> Option<Vec<f64>> {
        (self.b == 0.0).then(|| vec![0.5, 0.5])
    }

    /// Mode 0 if the mean field M < 0, mode 1 otherwise.
    fn assign(&self, x: ArrayView1<f64>) -> usize {
        usize::from(self.mean_field(x) >= 0.0)
    }
}

impl_synthetic_target!(Phi4Field1d);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use ndarray::Array1;

    #[test]
    fn score_matches_finite_differences() {
        assert_score_matches_fd(&Phi4Field1d::default(), 1.0, 10, 41);
        let t = Phi4Field1d::new(7, 0.3, 2.0, 0.4).unwrap();
        assert_score_matches_fd(&t, 1.5, 20, 42);
    }

    #[test]
    fn hessian_vector_products_match_score_differences() {
        let mut worst: f64 = 0.0;
        for (k, t) in [
            Phi4Field1d::default(),
            Phi4Field1d::new(7, 0.3, 2.0, 0.4).unwrap(),
            Phi4Field1d::new(1, 0.5, 3.0, 0.1).unwrap(),
            Phi4Field1d::new(2, 0.1, 20.0, 0.0).unwrap(),
        ]
        .iter()
        .enumerate()
        {
            let n = t.n();
            let seed = 50 + 10 * k as u64;
            // Fields near the +1 and −1 modes, and rough random fields.
            let plus = gaussian_points(Array1::from_elem(n, 0.9).view(), 0.2, 10, seed);
            let minus = gaussian_points(Array1::from_elem(n, -0.9).view(), 0.2, 10, seed + 1);
            let rough = gaussian_points(Array1::zeros(n).view(), 1.5, 10, seed + 2);
            for (j, pts) in [plus, minus, rough].iter().enumerate() {
                worst = worst.max(assert_hvp_matches_fd_at(t, pts.view(), seed + 5 + j as u64));
            }
        }
        println!("phi4_1d: max hvp relative error {worst:e}");
    }

    #[test]
    fn energy_of_simple_fields() {
        let t = Phi4Field1d::new(3, 0.5, 1.0, 0.2).unwrap();
        // φ = 0: no gradient, potential N/4 / (aN).
        let e0 = t.energy(Array1::zeros(3).view());
        assert!((e0 - 0.75 / 1.5).abs() < 1e-15);
        // φ = 1 everywhere: gradient only at the two ends; potential b N/(aN).
        let e1 = t.energy(Array1::ones(3).view());
        assert!((e1 - (0.5 * 1.5 * 2.0 + 0.2 * 3.0 / 1.5)).abs() < 1e-15);
    }

    #[test]
    fn modes_follow_the_sign_of_the_mean_field_and_the_symmetry() {
        let t = Phi4Field1d::default();
        let plus = Array1::from_elem(100, 0.9);
        assert_eq!(t.assign(plus.view()), 1);
        assert_eq!(t.assign((-&plus).view()), 0);
        // Symmetric at b = 0.
        assert_eq!(t.log_prob(plus.view()), t.log_prob((-&plus).view()));
        assert_eq!(t.true_weights(), Some(vec![0.5, 0.5]));
        let tilted = Phi4Field1d::new(100, 0.1, 20.0, 0.1).unwrap();
        assert!(tilted.log_prob((-&plus).view()) > tilted.log_prob(plus.view()));
        assert_eq!(tilted.true_weights(), None);
    }

    #[test]
    fn invalid_parameters_name_the_field() {
        assert_eq!(Phi4Field1d::new(0, 0.1, 20.0, 0.0).unwrap_err().field, "n");
        assert_eq!(Phi4Field1d::new(10, -0.1, 20.0, 0.0).unwrap_err().field, "a");
        assert_eq!(Phi4Field1d::new(10, 0.1, 0.0, 0.0).unwrap_err().field, "beta");
        assert_eq!(Phi4Field1d::new(10, 0.1, 20.0, -1.0).unwrap_err().field, "b");
    }
}
