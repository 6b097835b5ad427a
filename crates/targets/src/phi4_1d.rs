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
//!
//! **Modes** (docs/THEORY.md §3.8): a sample is assigned by the sign of the middle
//! site φ_m, m = ⌈N/2⌉ in 1-based numbering, i.e. index
//! [`middle_site`](Phi4Field1d::middle_site) = ⌊(N − 1)/2⌋ of the field
//! vector (site 50 of 100): mode 0 if φ_m < 0, mode 1 if φ_m ≥ 0.
//!
//! **Exact values**: the chain has nearest-neighbour couplings, so log Z
//! and the two mode weights are computed by the transfer-operator oracle of
//! [`crate::transfer_operator`] (converged to rounding; its module docs
//! hold the benchmark table). The oracle runs once, lazily, the first time
//! [`Target::log_z`], [`Modes::true_weights`] or
//! [`oracle`](Phi4Field1d::oracle) is called; at b = 0 the weights are ½, ½
//! exactly (symmetry). A tilt b > 0 favours φ < 0. No exact sampler.

use crate::modes::{impl_synthetic_target, Modes};
use crate::transfer_operator::{self, TransferConvergence, TransferResult};
use fieldflow_core::{ConfigError, HessianVector, Target};
use ndarray::{ArrayView1, ArrayViewMut1};
use std::sync::OnceLock;

/// Default number of sites N.
pub const DEFAULT_N: usize = 100;
/// Default lattice-spacing parameter a.
pub const DEFAULT_A: f64 = 0.1;
/// Default inverse temperature β.
pub const DEFAULT_BETA: f64 = 20.0;
/// Default tilt b.
pub const DEFAULT_B: f64 = 0.0;

/// The 1D φ⁴ field with Dirichlet ends (see the module docs).
#[derive(Debug, Clone)]
pub struct Phi4Field1d {
    n: usize,
    a: f64,
    beta: f64,
    b: f64,
    /// The transfer-operator oracle on its default grid, computed on first
    /// use (`None` if the grid would be too large).
    oracle: OnceLock<Option<TransferResult>>,
}

/// Equal parameters (the lazily computed oracle is not compared).
impl PartialEq for Phi4Field1d {
    fn eq(&self, other: &Self) -> bool {
        (self.n, self.a, self.beta, self.b) == (other.n, other.a, other.beta, other.b)
    }
}

impl Default for Phi4Field1d {
    /// N = 100, a = 0.1, β = 20, b = 0 (docs/THEORY.md §3.5).
    fn default() -> Self {
        Phi4Field1d {
            n: DEFAULT_N,
            a: DEFAULT_A,
            beta: DEFAULT_BETA,
            b: DEFAULT_B,
            oracle: OnceLock::new(),
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
        Ok(Phi4Field1d {
            n,
            a,
            beta,
            b,
            oracle: OnceLock::new(),
        })
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

    /// The middle site's index ⌊(N − 1)/2⌋ in the field vector, i.e. site
    /// m = ⌈N/2⌉ in 1-based numbering (see the module docs).
    pub fn middle_site(&self) -> usize {
        (self.n - 1) / 2
    }

    /// The transfer-operator oracle on its default grid
    /// ([`transfer_operator::default_oracle`]), computed on the first call
    /// and cached; `None` if that grid would exceed
    /// [`transfer_operator::MAX_GRID_POINTS`] points.
    pub fn oracle(&self) -> Option<&TransferResult> {
        self.oracle
            .get_or_init(|| transfer_operator::default_oracle(self).ok())
            .as_ref()
    }

    /// The oracle on its default grid, at h/2 and at Φ + 1
    /// ([`transfer_operator::convergence`]): the changes bound its error.
    pub fn oracle_convergence(&self) -> Option<TransferConvergence> {
        let grid = self.oracle()?.grid;
        transfer_operator::convergence(self, grid).ok()
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

    /// From the transfer-operator oracle ([`Phi4Field1d::oracle`]).
    fn log_z(&self) -> Option<f64> {
        self.oracle().map(|r| r.log_z)
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

    /// ½, ½ at b = 0 by the φ → −φ symmetry; otherwise [w₋, w₊] from the
    /// transfer-operator oracle ([`Phi4Field1d::oracle`]).
    fn true_weights(&self) -> Option<Vec<f64>> {
        if self.b == 0.0 {
            return Some(vec![0.5, 0.5]);
        }
        self.oracle().map(|r| r.weights().to_vec())
    }

    /// Mode 0 if the middle site φ_m < 0, mode 1 otherwise
    /// ([`Phi4Field1d::middle_site`]).
    fn assign(&self, x: ArrayView1<f64>) -> usize {
        usize::from(x[self.middle_site()] >= 0.0)
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
    fn modes_follow_the_sign_of_the_middle_site_and_the_symmetry() {
        let t = Phi4Field1d::default();
        let plus = Array1::from_elem(100, 0.9);
        assert_eq!(t.assign(plus.view()), 1);
        assert_eq!(t.assign((-&plus).view()), 0);
        // Symmetric at b = 0.
        assert_eq!(t.log_prob(plus.view()), t.log_prob((-&plus).view()));
        assert_eq!(t.true_weights(), Some(vec![0.5, 0.5]));
        let tilted = Phi4Field1d::new(100, 0.1, 20.0, 0.1).unwrap();
        assert!(tilted.log_prob((-&plus).view()) > tilted.log_prob(plus.view()));
        // A tilt b > 0 favours φ < 0; the weights come from the oracle.
        let w = tilted.true_weights().unwrap();
        assert_eq!(w, tilted.oracle().unwrap().weights().to_vec());
        assert!(w[0] > w[1] && w[1] > 0.0 && (w[0] + w[1] - 1.0).abs() < 1e-15, "{w:?}");
        // The middle site, not the mean field, decides: site 50 of 100
        // (index 49), site 3 of 5 (index 2), site 1 of 1.
        assert_eq!(t.middle_site(), 49);
        assert_eq!(Phi4Field1d::new(5, 0.1, 1.0, 0.0).unwrap().middle_site(), 2);
        assert_eq!(Phi4Field1d::new(1, 0.1, 1.0, 0.0).unwrap().middle_site(), 0);
        let mut bubble = -&plus;
        bubble[49] = 0.2;
        assert!(t.mean_field(bubble.view()) < 0.0);
        assert_eq!(t.assign(bubble.view()), 1);
        bubble[49] = -0.2;
        bubble[50] = 0.2;
        assert_eq!(t.assign(bubble.view()), 0);
    }

    #[test]
    fn log_z_and_weights_come_from_the_cached_oracle() {
        let t = Phi4Field1d::new(100, 0.1, 20.0, 0.05).unwrap();
        let r = *t.oracle().unwrap();
        assert_eq!(t.log_z(), Some(r.log_z));
        assert!(std::ptr::eq(t.oracle().unwrap(), t.oracle().unwrap()));
        // Clones and equal parameters compare equal whatever the cache holds.
        assert_eq!(t.clone(), Phi4Field1d::new(100, 0.1, 20.0, 0.05).unwrap());
        let c = t.oracle_convergence().unwrap();
        assert_eq!(c.base, r);
        assert!(c.log_z_change() < 1e-10 && c.log_ratio_change() < 1e-10);
        // At b = 0 the oracle agrees with the symmetry to rounding.
        let w = Phi4Field1d::default().oracle().unwrap().weights();
        assert!((w[0] - 0.5).abs() < 1e-13 && (w[1] - 0.5).abs() < 1e-13);
    }

    #[test]
    fn invalid_parameters_name_the_field() {
        assert_eq!(Phi4Field1d::new(0, 0.1, 20.0, 0.0).unwrap_err().field, "n");
        assert_eq!(Phi4Field1d::new(10, -0.1, 20.0, 0.0).unwrap_err().field, "a");
        assert_eq!(Phi4Field1d::new(10, 0.1, 0.0, 0.0).unwrap_err().field, "beta");
        assert_eq!(Phi4Field1d::new(10, 0.1, 20.0, -1.0).unwrap_err().field, "b");
    }
}
