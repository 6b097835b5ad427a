//! Local Markov kernels: one update that leaves the target invariant.
//!
//! A kernel K with p K = p (a Metropolis sweep, an HMC trajectory, a
//! random-walk or MALA step) moves a state within a mode; composed with a
//! global move (an independent Metropolis–Hastings proposal from a flow) it
//! makes the hybrid samplers of flow-MCMC (arXiv 2302.04763). Kernels are a
//! capability of their own so that any sampler can combine them.

use crate::seed::Rng;

/// One update of a Markov kernel that leaves the target invariant.
pub trait LocalKernel: Send + Sync {
    /// Updates `x` in place with random numbers from `rng`; returns whether the
    /// move was accepted.
    fn update(&self, x: &mut [f64], rng: &mut Rng) -> bool;
}
