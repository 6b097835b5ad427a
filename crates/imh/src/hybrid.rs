//! Local Markov kernels for the hybrid sampler (flow-MCMC, arXiv 2302.04763).
//!
//! A hybrid step applies k updates of a [`LocalKernel`] (each leaving the
//! target p invariant, e.g. an HMC trajectory or a Metropolis sweep) and then
//! one global move from the flow (IMH or i-SIR, [`crate::GlobalMove`];
//! [`crate::ImhChain::with_local`]). Local moves
//! explore within a mode; flow proposals jump between modes.

pub use fieldflow_core::LocalKernel;
use fieldflow_core::{Rng, Target};
use ndarray::ArrayView1;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

/// Gaussian random-walk Metropolis on all coordinates at once:
/// x′ = x + σ ξ, ξ ~ N(0, I), accepted with min(1, p̃(x′)/p̃(x)).
/// Works for any [`Target`]; lattice targets have better kernels (HMC).
pub struct RandomWalk<'a> {
    /// The target density.
    pub target: &'a dyn Target,
    /// Proposal width σ.
    pub width: f64,
}

impl LocalKernel for RandomWalk<'_> {
    fn update(&self, x: &mut [f64], rng: &mut Rng) -> bool {
        let log_p_old = self.target.log_prob(ArrayView1::from(&x[..]));
        let proposal: Vec<f64> = x
            .iter()
            .map(|&v| {
                let xi: f64 = StandardNormal.sample(rng);
                v + self.width * xi
            })
            .collect();
        let log_p_new = self.target.log_prob(ArrayView1::from(&proposal[..]));
        let u: f64 = rng.random();
        let accepted = log_p_new.is_finite() && u.ln() < log_p_new - log_p_old;
        if accepted {
            x.copy_from_slice(&proposal);
        }
        accepted
    }
}
