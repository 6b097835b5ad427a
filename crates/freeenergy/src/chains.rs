//! Independent HMC chains on one density, and the per-chain averages of an
//! observable (the unit of work of every estimator in this crate).
//!
//! All chains start from the same state. A warm-up of `warmup` trajectories
//! per chain adapts the step size by dual averaging toward
//! `target_acceptance` ([`fieldflow_imh::tune_step`], docs/THEORY.md §2.6)
//! (never below a tenth of the initial step) and thermalizes the chains;
//! the step is then frozen and each chain runs
//! `samples` trajectories on its own random stream, recording the observable
//! after every trajectory. The result does not depend on the number of
//! threads (one stream per chain, chains in parallel).
//!
//! The estimators use the chains as **replicas**: chain r of every node of a
//! quadrature forms replica r of the whole estimate, so replicas are
//! independent and the spread of the replica estimates is an honest error
//! bar that includes the correlations the integrations build between nodes
//! ([`Replicas`]).

use fieldflow_core::{LocalKernel, Seed, Target};
use fieldflow_imh::{tune_step, StepTuning};
use fieldflow_lattice::{Hmc, HmcKernel, Integrator};
use rayon::prelude::*;

/// Settings of the chains at one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainSettings {
    /// Chains (= replicas of the estimate), ≥ 2.
    pub chains: usize,
    /// Warm-up trajectories per chain (step-size adaptation, discarded).
    pub warmup: usize,
    /// Recorded trajectories per chain.
    pub samples: usize,
    /// HMC trajectory length (jittered by 20 %).
    pub trajectory_length: f64,
    /// Initial step size of the warm-up.
    pub initial_step: f64,
    /// Acceptance the warm-up aims at.
    pub target_acceptance: f64,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            chains: 8,
            warmup: 300,
            samples: 2000,
            trajectory_length: 1.0,
            initial_step: 0.05,
            target_acceptance: 0.8,
        }
    }
}

/// What the chains at one node produced.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRun {
    /// The observable's average over each chain's recorded trajectories.
    pub means: Vec<f64>,
    /// The frozen step size.
    pub step: f64,
    /// Acceptance over all recorded trajectories.
    pub acceptance: f64,
    /// Recorded trajectories rejected because they ended outside the region
    /// (or at a non-finite energy).
    pub outside: u64,
}

/// Runs the chains of `settings` on `target` from `start` and averages
/// `observable` (a function of the chain's state) per chain.
///
/// # Panics
/// If log π(start) is not finite (a start outside the region), or fewer than
/// two chains are asked for.
pub fn run_node(
    target: &dyn Target,
    start: &[f64],
    observable: &(dyn Fn(&[f64]) -> f64 + Sync),
    settings: &ChainSettings,
    seed: Seed,
) -> NodeRun {
    let hmc = Hmc {
        trajectory_length: settings.trajectory_length,
        jitter: 0.2,
        n_steps: 1,
        integrator: Integrator::Omelyan,
        target_acceptance: settings.target_acceptance,
        tune: true,
        initial_step_size: settings.initial_step,
    };
    // The warm-up never shrinks the step below a tenth of its start: near a
    // region's boundary many trajectories are rejected for ending outside,
    // and dual averaging would otherwise drive the step (and the cost of a
    // trajectory, length/step) without bound. Any step leaves the law exact.
    let min_step = 0.1 * settings.initial_step;
    let make = |eps: f64| HmcKernel {
        target,
        hmc,
        eps: eps.max(min_step),
    };
    assert!(settings.chains >= 2, "replica errors need at least 2 chains");
    assert!(
        target.log_prob(ndarray::ArrayView1::from(start)).is_finite(),
        "the chains' start has log density -inf (outside the region?)"
    );
    let mut states: Vec<Vec<f64>> = vec![start.to_vec(); settings.chains];
    let step = tune_step(
        make,
        &mut states,
        StepTuning {
            initial: settings.initial_step,
            target_acceptance: settings.target_acceptance,
            updates: settings.warmup,
        },
        seed.child(0),
    );
    let step = step.max(min_step);
    let kernel = make(step);
    let per_chain: Vec<(f64, f64, u64)> = states
        .into_par_iter()
        .enumerate()
        .map(|(i, mut x)| {
            let mut rng = seed.child(1).child(i as u64).rng();
            let mut scratch = Vec::new();
            let (mut sum, mut accepted, mut outside) = (0.0, 0.0, 0u64);
            for _ in 0..settings.samples {
                let r = kernel.update(&mut x, &mut scratch, &mut rng);
                accepted += r.acceptance;
                outside += u64::from(!r.delta_h.is_finite());
                sum += observable(&x);
            }
            (sum / settings.samples as f64, accepted, outside)
        })
        .collect();
    let n = (settings.chains * settings.samples) as f64;
    NodeRun {
        means: per_chain.iter().map(|c| c.0).collect(),
        step,
        acceptance: per_chain.iter().map(|c| c.1).sum::<f64>() / n,
        outside: per_chain.iter().map(|c| c.2).sum(),
    }
}

/// What a long estimate reports and asks between nodes: results of nodes
/// done before (resume), every completed node (checkpoint, progress), and
/// whether to stop (Ctrl-C). Every node has its own seed and start, so a
/// node taken from a cache leaves the estimate exactly that of an
/// uninterrupted run. `part` names the set of nodes (e.g. "field+").
pub trait NodeHooks: Sync {
    /// The stored result of node `node` of `part`, if it was computed before.
    fn cached(&self, _part: &str, _node: usize) -> Option<NodeRun> {
        None
    }
    /// Called once a node has been computed.
    fn completed(&self, _part: &str, _node: usize, _run: &NodeRun) {}
    /// Whether to stop before computing another node.
    fn stop(&self) -> bool {
        false
    }
}

/// No cache, no checkpoint, never stops.
pub struct NoHooks;

impl NodeHooks for NoHooks {}

/// Node `node` of `part` through `hooks`: the cached result, or `run()`
/// (reported as completed) — or `None` if the hooks ask to stop first.
pub fn hooked_node(hooks: &dyn NodeHooks, part: &str, node: usize, run: impl FnOnce() -> NodeRun) -> Option<NodeRun> {
    if let Some(r) = hooks.cached(part, node) {
        return Some(r);
    }
    if hooks.stop() {
        return None;
    }
    let r = run();
    hooks.completed(part, node, &r);
    Some(r)
}

/// Independent replica estimates of one quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Replicas {
    /// One estimate per replica.
    pub values: Vec<f64>,
}

impl Replicas {
    /// The mean of the replica estimates.
    pub fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// The standard error of the mean, s/√R (s the sample standard
    /// deviation of the R replicas).
    pub fn error(&self) -> f64 {
        let r = self.values.len() as f64;
        let m = self.mean();
        let var = self.values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (r - 1.0);
        (var / r).sqrt()
    }

    /// Applies `f` replica by replica to several estimates made with the same
    /// replicas (chain r of every part), giving replica estimates of f.
    ///
    /// # Panics
    /// If the parts have different numbers of replicas.
    pub fn combine(parts: &[&Replicas], f: impl Fn(&[f64]) -> f64) -> Replicas {
        let r = parts[0].values.len();
        assert!(parts.iter().all(|p| p.values.len() == r), "replica counts differ");
        let mut row = vec![0.0; parts.len()];
        let values = (0..r)
            .map(|i| {
                for (slot, p) in row.iter_mut().zip(parts) {
                    *slot = p.values[i];
                }
                f(&row)
            })
            .collect();
        Replicas { values }
    }
}
