//! The posterior of X given an observation Y_t = y (docs/THEORY.md §6.12):
//!
//!   p(x | y) ∝ p̃(x) exp(−‖y − α x‖² / (2v)),   v = σ² t, α = α(t),
//!
//! whose score is ∇ log p̃(x) + α (y − α x)/v. Its mean is the denoiser
//! E[X | Y_t = y] that drives the SLIPS dynamics. As a [`Target`] it can be
//! sampled by any local kernel (MALA here).

use fieldflow_core::Target;
use ndarray::{ArrayView1, ArrayViewMut1};

/// Where the posterior is taken: the observation's α(t) and noise variance
/// v = σ² t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// α(t).
    pub alpha: f64,
    /// The variance σ² t of the noise σ W_t.
    pub var: f64,
}

/// p(x | y) for a target p̃ and one observation y (module docs).
pub struct Posterior<'a> {
    /// The target p̃.
    pub target: &'a dyn Target,
    /// The observation y.
    pub y: &'a [f64],
    /// α(t) and σ² t.
    pub obs: Observation,
}

impl Posterior<'_> {
    /// −‖y − α x‖²/(2v).
    fn log_likelihood(&self, x: ArrayView1<f64>) -> f64 {
        let a = self.obs.alpha;
        let sq: f64 = x.iter().zip(self.y).map(|(&xi, &yi)| (yi - a * xi).powi(2)).sum();
        -0.5 * sq / self.obs.var
    }
}

impl Target for Posterior<'_> {
    fn dim(&self) -> usize {
        self.target.dim()
    }

    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        self.target.log_prob(x) + self.log_likelihood(x)
    }

    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let lp = self.target.log_prob_and_score(x, score.view_mut());
        let (a, v) = (self.obs.alpha, self.obs.var);
        for ((s, &xi), &yi) in score.iter_mut().zip(x.iter()).zip(self.y) {
            *s += a * (yi - a * xi) / v;
        }
        lp + self.log_likelihood(x)
    }

    fn describe(&self) -> String {
        format!(
            "posterior given Y = {} X + noise (var {}) of {}",
            self.obs.alpha,
            self.obs.var,
            self.target.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_targets::GaussianMixture;
    use fieldflow_testkit::{assert_close, central_gradient, FD_REL_TOL, FD_STEP};
    use ndarray::Array1;

    #[test]
    fn posterior_score_matches_central_differences() {
        let target = GaussianMixture::mog4();
        let y = [0.7, -1.3];
        let post = Posterior {
            target: &target,
            y: &y,
            obs: Observation { alpha: 0.4, var: 0.3 },
        };
        for x in [[0.5, -0.2], [3.0, 4.5], [-2.0, 1.0]] {
            let mut score = Array1::zeros(2);
            let lp = post.log_prob_and_score(ArrayView1::from(&x), score.view_mut());
            assert!((lp - post.log_prob(ArrayView1::from(&x))).abs() < 1e-12);
            let fd = central_gradient(|u| post.log_prob(ArrayView1::from(u)), &x, FD_STEP);
            assert_close("posterior score", score.as_slice().unwrap(), &fd, FD_REL_TOL);
        }
    }
}
