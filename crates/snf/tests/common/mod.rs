//! Shared helpers of the integration tests.
#![allow(dead_code)]

use fieldflow_core::Target;
use fieldflow_flows::FlowConfig;
use fieldflow_snf::{LangevinBlock, MetropolisBlock, Snf, Stage, StochasticBlock};

/// A Langevin block.
pub fn langevin(steps: usize, eps: f64, mala: bool, lambda: f64) -> Stage {
    Stage::Stochastic(StochasticBlock::Langevin(LangevinBlock {
        steps,
        eps,
        mala,
        lambda,
    }))
}

/// A random-walk Metropolis block.
pub fn metropolis(steps: usize, width: f64, lambda: f64) -> Stage {
    Stage::Stochastic(StochasticBlock::Metropolis(MetropolisBlock { steps, width, lambda }))
}

/// An SNF on `target` (dim 2) whose flow layers come from a small MLP
/// RealNVP with non-trivial random parameters, laid out as `stages` (the
/// flow ranges in `stages` decide how many layers are built).
pub fn snf_with<T: Target>(target: T, n_layers: usize, stages: Vec<Stage>, seed: u64, sigma: f64) -> Snf<T> {
    let mut cfg = FlowConfig::mlp(2, n_layers, vec![6]);
    cfg.identity_init = false;
    cfg.base_sigma = sigma;
    let flow = cfg.build(fieldflow_core::Seed::new(seed)).unwrap();
    // Halve the random initialization: non-trivial couplings whose outputs
    // stay where the Langevin steps are stable.
    let params = flow.params().iter().map(|p| 0.5 * p).collect();
    Snf::new(target, sigma, flow.layers().to_vec(), params, stages)
}

/// The shared relative error max |a − b| / max(max |b|, 1e-12) of the
/// gradient checks (a floor below the default one of `fieldflow-testkit`).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    fieldflow_testkit::rel_err_with_floor(a, b, 1e-12)
}
