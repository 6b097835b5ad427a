//! Local Markov kernels for global–local samplers (flow-MCMC,
//! arXiv 2302.04763) and for neutra-MCMC (docs/THEORY.md §6.2, §6.8).
//!
//! A global–local step applies k updates of a [`LocalKernel`] (each leaving
//! the target p invariant) and then one global flow move, IMH or i-SIR
//! ([`crate::GlobalMove`], [`crate::ImhChain::with_local`]). Local moves explore within a mode; flow
//! proposals jump between modes. Kernels for any [`Target`]:
//!
//! * [`RandomWalk`]: x′ = x + σξ, ξ ~ N(0, I), accepted with
//!   min(1, p̃(x′)/p̃(x));
//! * [`Mala`]: the Metropolis-adjusted Langevin algorithm,
//!   x′ = x + ε∇log p̃(x) + √(2ε) ξ, accepted with min(1, r),
//!   r = p̃(x′) k(x | x′) / (p̃(x) k(x′ | x)), k(y | x) = N(y; x + ε∇log p̃(x), 2ε I);
//!
//! HMC for any target is `fieldflow_lattice::HmcKernel`. [`tune_step`] adapts
//! a kernel's step toward a target acceptance in a warm-up (dual averaging,
//! docs/THEORY.md §2.6) and returns the step to freeze for production.

use fieldflow_core::tuning::DualAveraging;
pub use fieldflow_core::LocalKernel;
use fieldflow_core::{Rng, ScoreCache, Seed, Target, UpdateRecord};
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
    fn update(&self, x: &mut [f64], scratch: &mut Vec<f64>, rng: &mut Rng) -> UpdateRecord {
        let log_p_old = self.target.log_prob(ArrayView1::from(&x[..]));
        scratch.resize(x.len(), 0.0);
        let proposal = &mut scratch[..x.len()];
        for (p, &v) in proposal.iter_mut().zip(x.iter()) {
            let xi: f64 = StandardNormal.sample(rng);
            *p = v + self.width * xi;
        }
        let log_p_new = self.target.log_prob(ArrayView1::from(&proposal[..]));
        let u: f64 = rng.random();
        metropolis_decision(x, proposal, log_p_old, log_p_new, log_p_new - log_p_old, u)
    }
}

/// The Metropolis–Hastings decision for a move x → x′ with log ratio
/// `log_r`: accept ⇔ log p̃(x′) finite and ln u < log_r (x ← x′); a NaN
/// ratio rejects, a current state of zero density accepts any finite one.
fn metropolis_decision(
    x: &mut [f64],
    proposal: &[f64],
    log_p_old: f64,
    log_p_new: f64,
    log_r: f64,
    u: f64,
) -> UpdateRecord {
    let accepted = log_p_new.is_finite() && u.ln() < log_r;
    if accepted {
        x.copy_from_slice(proposal);
    }
    UpdateRecord {
        accepted,
        acceptance: if accepted { 1.0 } else { 0.0 },
        accept_prob: if accepted || log_r.is_finite() {
            log_r.exp().min(1.0)
        } else {
            0.0
        },
        delta_h: -log_r,
        log_p: if accepted { log_p_new } else { log_p_old },
    }
}

/// The Metropolis-adjusted Langevin algorithm for any [`Target`] with a
/// score (see the module docs); the chain's scratch caches the score of the
/// current state, so a step costs one score evaluation.
pub struct Mala<'a> {
    /// The target density.
    pub target: &'a dyn Target,
    /// Step ε (the Langevin time step; the proposal's variance is 2ε).
    pub step: f64,
}

impl LocalKernel for Mala<'_> {
    fn update(&self, x: &mut [f64], scratch: &mut Vec<f64>, rng: &mut Rng) -> UpdateRecord {
        let d = x.len();
        let eps = self.step;
        let c = ScoreCache::get(self.target, x, scratch, 2);
        let (proposal, score_new) = c.work.split_at_mut(d);
        // x′ = x + ε s(x) + √(2ε) ξ; ‖x′ − x − ε s(x)‖² = 2ε‖ξ‖².
        let mut forward = 0.0;
        for ((p, &v), &s) in proposal.iter_mut().zip(x.iter()).zip(c.score.iter()) {
            let xi: f64 = StandardNormal.sample(rng);
            *p = v + eps * s + (2.0 * eps).sqrt() * xi;
            forward += xi * xi;
        }
        let u: f64 = rng.random();
        let log_p_new = self.target.log_prob_and_score(
            ArrayView1::from(&proposal[..]),
            ndarray::ArrayViewMut1::from(&mut score_new[..]),
        );
        // ‖x − x′ − ε s(x′)‖² / (4ε), the reverse proposal's exponent.
        let backward: f64 = x
            .iter()
            .zip(proposal.iter())
            .zip(score_new.iter())
            .map(|((&a, &b), &s)| (a - b - eps * s).powi(2))
            .sum::<f64>()
            / (4.0 * eps);
        let log_r = log_p_new - *c.log_p - backward + 0.5 * forward;
        let record = metropolis_decision(x, proposal, *c.log_p, log_p_new, log_r, u);
        if record.accepted {
            c.x.copy_from_slice(x);
            c.score.copy_from_slice(score_new);
            *c.log_p = log_p_new;
        }
        record
    }
}

/// Settings of a step-size warm-up ([`tune_step`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTuning {
    /// Starting step.
    pub initial: f64,
    /// Acceptance to aim at (MALA: ≈ 0.57, HMC: ≈ 0.65–0.8, random walk: ≈ 0.23–0.4).
    pub target_acceptance: f64,
    /// Updates of every warm-up state.
    pub updates: usize,
}

/// Adapts the step of the kernel `make(step)` toward
/// `tuning.target_acceptance` by dual averaging (docs/THEORY.md §2.6) over
/// `tuning.updates` rounds, each updating every state of `states` once (in
/// order, state i with the stream `seed.child(i).child(round)`), and returns
/// the averaged step to freeze for production. The states are moved by the
/// warm-up (they are the chains' thermalized starting points). Deterministic
/// given its inputs: the same on every process and for any thread count.
pub fn tune_step<K: LocalKernel>(
    make: impl Fn(f64) -> K,
    states: &mut [Vec<f64>],
    tuning: StepTuning,
    seed: Seed,
) -> f64 {
    let mut da = DualAveraging::new(tuning.initial, tuning.target_acceptance);
    let mut step = da.current();
    let mut scratch: Vec<Vec<f64>> = vec![Vec::new(); states.len()];
    for round in 0..tuning.updates {
        let kernel = make(step);
        let mut sum = 0.0;
        for (i, (x, s)) in states.iter_mut().zip(scratch.iter_mut()).enumerate() {
            let mut rng = seed.child(i as u64).child(round as u64).rng();
            sum += kernel.update(x, s, &mut rng).accept_prob;
        }
        step = da.update(sum / states.len().max(1) as f64);
    }
    da.final_value()
}
