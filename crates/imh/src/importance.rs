//! Importance sampling with an exact proposal density (docs/THEORY.md §6.3).
//!
//! With N draws xᵢ ~ q and weights wᵢ = p̃(xᵢ)/q(xᵢ):
//!
//! ```text
//! Ẑ = (1/N) Σ wᵢ                      (unbiased for Z = ∫ p̃),
//! ⟨O⟩ ≈ Σ wᵢ O(xᵢ) / Σ wᵢ             (self-normalized, consistent),
//! ESS/N = (Σ wᵢ)² / (N Σ wᵢ²) ∈ [1/N, 1].
//! ```
//!
//! The estimators and their errors live in [`fieldflow_stats`]; this module
//! draws the batch and keeps log q, log p̃ and log w together.

use fieldflow_core::{Par, Proposal, Seed, Target};
use fieldflow_stats::{ess_normalized, log_z, self_normalized_mean, LogZReport, StatsError, WeightedMean};
use ndarray::{Array1, Array2};

/// N independent draws from q with log q, log p̃ and log w = log p̃ − log q.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportanceBatch {
    /// Draws, one per row.
    pub xs: Array2<f64>,
    /// log q(xᵢ).
    pub log_q: Array1<f64>,
    /// log p̃(xᵢ).
    pub log_p: Array1<f64>,
}

impl ImportanceBatch {
    /// log wᵢ = log p̃(xᵢ) − log q(xᵢ).
    pub fn log_w(&self) -> Vec<f64> {
        self.log_p.iter().zip(&self.log_q).map(|(p, q)| p - q).collect()
    }

    /// Normalized effective sample size (Σw)²/(N Σw²).
    pub fn ess(&self) -> Result<f64, StatsError> {
        ess_normalized(&self.log_w())
    }

    /// log Ẑ = logsumexp(log w) − log N with its delta-method error.
    pub fn log_z(&self) -> Result<LogZReport, StatsError> {
        log_z(&self.log_w())
    }

    /// Self-normalized estimate of ⟨O⟩ from per-draw values `obs`.
    pub fn reweight(&self, obs: &[f64]) -> Result<WeightedMean, StatsError> {
        self_normalized_mean(&self.log_w(), obs)
    }
}

/// Draws `n` samples from `proposal` (stream `seed`) and evaluates the target.
pub fn importance_sample(
    target: &dyn Target,
    proposal: &dyn Proposal,
    seed: Seed,
    n: usize,
    par: Par,
) -> ImportanceBatch {
    assert_eq!(target.dim(), proposal.dim(), "target and proposal dimensions differ");
    let mut xs = Array2::zeros((n, target.dim()));
    let mut log_q = Array1::zeros(n);
    let mut log_p = Array1::zeros(n);
    proposal.draw_batch(seed, xs.view_mut(), log_q.view_mut(), par);
    target.log_prob_batch(xs.view(), log_p.view_mut(), par);
    ImportanceBatch { xs, log_q, log_p }
}
