//! Local Markov kernels: one update that leaves the target invariant.
//!
//! A kernel K with p K = p (a Metropolis sweep, an HMC trajectory, a
//! random-walk or MALA step) moves a state within a mode; composed with a
//! global move (an independent Metropolis–Hastings or i-SIR proposal from a
//! flow) it makes the global–local samplers of flow-MCMC (arXiv 2302.04763),
//! and run on a flow's pulled-back density it is neutra-MCMC. Kernels are a
//! capability of their own so that any sampler can combine them.
//!
//! Every update reports an [`UpdateRecord`] (accepted, min(1, ratio), ΔH), so
//! a warm-up can adapt the kernel's step toward a target acceptance
//! ([`crate::tuning`]) and tests can check ⟨e^{−ΔH}⟩ = 1.

use crate::seed::Rng;
use crate::update::UpdateRecord;

/// One update of a Markov kernel that leaves the target invariant.
pub trait LocalKernel: Send + Sync {
    /// Updates `x` in place with random numbers from `rng`. `scratch` is the
    /// calling chain's reusable buffer: the kernel resizes it to what it
    /// needs (so nothing is allocated after a chain's first update) and may
    /// keep values there between calls only as a cache that changes no result.
    fn update(&self, x: &mut [f64], scratch: &mut Vec<f64>, rng: &mut Rng) -> UpdateRecord;
}

/// A kernel's view of its chain's scratch buffer: the state it last saw
/// with log p̃ and the score there, and `work` buffers of its own.
///
/// Layout of the buffer: `[log p̃, x (d), score (d), work (n·d)]`. The cached
/// values are used only when the chain's state is bitwise the cached x, so a
/// state changed by another move (a flow proposal) is re-evaluated: the
/// cache saves score evaluations and changes no result.
pub struct ScoreCache<'s> {
    /// log p̃ at `x`.
    pub log_p: &'s mut f64,
    /// The state the cache describes.
    pub x: &'s mut [f64],
    /// ∇ log p̃ at `x`.
    pub score: &'s mut [f64],
    /// The kernel's work buffers, `n·d` values.
    pub work: &'s mut [f64],
}

impl<'s> ScoreCache<'s> {
    /// The cache of `scratch` for the state `x` with `n_work` work buffers of
    /// length d: evaluates log p̃ and the score at `x` unless `scratch`
    /// already holds them for exactly this `x`.
    pub fn get<T: crate::Target + ?Sized>(
        target: &T,
        x: &[f64],
        scratch: &'s mut Vec<f64>,
        n_work: usize,
    ) -> ScoreCache<'s> {
        let d = x.len();
        let len = 1 + (2 + n_work) * d;
        let fresh = scratch.len() != len || scratch[1..1 + d].iter().zip(x).any(|(a, b)| a.to_bits() != b.to_bits());
        if scratch.len() != len {
            scratch.clear();
            scratch.resize(len, 0.0);
        }
        let (head, rest) = scratch.split_at_mut(1);
        let (xs, rest) = rest.split_at_mut(d);
        let (score, work) = rest.split_at_mut(d);
        if fresh {
            xs.copy_from_slice(x);
            head[0] = target.log_prob_and_score(
                ndarray::ArrayView1::from(&*xs),
                ndarray::ArrayViewMut1::from(&mut *score),
            );
        }
        ScoreCache {
            log_p: &mut head[0],
            x: xs,
            score,
            work,
        }
    }
}

impl<K: LocalKernel + ?Sized> LocalKernel for Box<K> {
    fn update(&self, x: &mut [f64], scratch: &mut Vec<f64>, rng: &mut Rng) -> UpdateRecord {
        (**self).update(x, scratch, rng)
    }
}
