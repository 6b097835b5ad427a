//! What training produces and keeps: step outcomes, metrics records (with
//! their column names, listed once), the resumable trainer state and the
//! errors.

use crate::loss::LossError;
use crate::optim::AdamState;
use fieldflow_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Errors of setting up or running the trainer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// An invalid configuration value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The loss could not be evaluated (missing or mis-shaped inputs).
    #[error(transparent)]
    Loss(#[from] LossError),
    /// Too many consecutive non-finite steps: training stopped, the
    /// parameters are those of the last accepted step.
    #[error(
        "training stopped at step {step}: {consecutive} consecutive steps rejected \
         (last: {reason}); parameters are those of the last good step"
    )]
    TooManyRejections {
        /// Step index of the last rejection.
        step: u64,
        /// Consecutive rejections.
        consecutive: u32,
        /// Why the last step was rejected.
        reason: String,
    },
    /// A state that does not fit this trainer.
    #[error("cannot restore trainer state: {0}")]
    State(String),
    /// A model whose training cannot share its batch among processes.
    #[error("training {0} is not distributed over several processes: run it with one process")]
    NotDistributed(&'static str),
}

/// The outcome of one accepted step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step index t of this step.
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// FKL part (NaN when inactive; JSON writes NaN as null, read back as NaN).
    #[serde(deserialize_with = "nan_from_null")]
    pub fkl: f64,
    /// RKL part (NaN when inactive).
    #[serde(deserialize_with = "nan_from_null")]
    pub rkl: f64,
    /// SM part (NaN when inactive).
    #[serde(deserialize_with = "nan_from_null")]
    pub sm: f64,
    /// FKL_IS part, FKL on the flow's samples (NaN when inactive or absent:
    /// reports serialized before it existed).
    #[serde(default = "not_active", deserialize_with = "nan_from_null")]
    pub fkl_is: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether the gradient was clipped.
    pub clipped: bool,
    /// Learning rate used.
    pub lr: f64,
    /// Inverse temperature β used.
    pub beta: f64,
    /// Normalized ESS of the training flow batch at β = 1 (NaN without one).
    pub batch_ess: f64,
}

/// What [`crate::Trainer::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Parameters updated.
    Accepted(StepReport),
    /// Non-finite loss, gradient or update: parameters unchanged.
    Rejected {
        /// Step index t of the rejected step.
        step: u64,
        /// What was non-finite.
        reason: String,
        /// Consecutive rejections so far (including this one).
        consecutive: u32,
    },
}

/// The complete, serializable state of a trainer (with the config and the
/// architecture, enough to resume bit-identically).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Flow parameters θ.
    pub params: Vec<f64>,
    /// Adam moments and update counter.
    pub adam: AdamState,
    /// Next step index t.
    pub step: u64,
    /// Current run of consecutive rejections.
    pub consecutive_rejections: u32,
    /// Rejections since the start of training.
    pub total_rejections: u64,
    /// Rows per chunk of the batched computations (fixes the random streams
    /// and summation order, so it must match on restore).
    pub chunk_rows: usize,
    /// The last accepted step's report, if any.
    pub last: Option<StepReport>,
}

/// One metrics record (plain fields: a CSV row / one entry of HDF5 series).
/// Unavailable values are NaN; per-mode vectors are empty without modes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Steps done (the next step index).
    pub step: u64,
    /// Total loss of the last accepted step.
    pub loss: f64,
    /// Its FKL part.
    pub fkl: f64,
    /// Its RKL part.
    pub rkl: f64,
    /// Its SM part.
    pub sm: f64,
    /// Its FKL_IS part (an estimate of E_p[−log q] from the flow's samples).
    pub fkl_is: f64,
    /// Its pre-clip gradient norm.
    pub grad_norm: f64,
    /// Learning rate of the next step.
    pub lr: f64,
    /// β of the next step.
    pub beta: f64,
    /// Normalized ESS of a fresh flow batch (β = 1).
    pub ess: f64,
    /// Pareto k̂ of that batch's importance weights (docs/THEORY.md §7.10;
    /// above 0.7 IMH and IS with the model are unreliable).
    pub pareto_k: f64,
    /// Estimated IMH acceptance on that batch.
    pub acceptance: f64,
    /// −mean log q on the held-out data.
    pub nll: f64,
    /// mean(log q − log p̃) on the fresh batch.
    pub rkl_estimate: f64,
    /// Rejections since the start.
    pub total_rejections: u64,
    /// Flow mode weights (fractions of the fresh batch).
    pub mode_weights: Vec<f64>,
    /// True mode weights.
    pub true_weights: Vec<f64>,
    /// ½ Σ |ŵₖ − wₖ|.
    pub tv_distance: f64,
    /// Per mode: ŵₖ < ½ wₖ.
    pub collapsed: Vec<bool>,
    /// Number of collapsed modes.
    pub n_collapsed: usize,
    /// Fraction of flow samples with log p̃ below the 0.1 % quantile of
    /// log p̃ on target samples.
    pub covering: f64,
}

/// A scalar column of the metrics: its name and how to read it.
pub type MetricColumn = (&'static str, fn(&MetricsRecord) -> f64);

impl MetricsRecord {
    /// The scalar columns every record has, in file order (the one list of
    /// metric names; [`MetricsRecord::columns`] adds the per-mode ones).
    pub const SCALAR_COLUMNS: [MetricColumn; 15] = [
        ("step", |m| m.step as f64),
        ("loss", |m| m.loss),
        ("fkl", |m| m.fkl),
        ("rkl", |m| m.rkl),
        ("sm", |m| m.sm),
        ("fkl_is", |m| m.fkl_is),
        ("grad_norm", |m| m.grad_norm),
        ("lr", |m| m.lr),
        ("beta", |m| m.beta),
        ("ess", |m| m.ess),
        ("pareto_k", |m| m.pareto_k),
        ("acceptance", |m| m.acceptance),
        ("nll", |m| m.nll),
        ("rkl_estimate", |m| m.rkl_estimate),
        ("total_rejections", |m| m.total_rejections as f64),
    ];

    /// The record as named columns: the [`SCALAR_COLUMNS`](Self::SCALAR_COLUMNS),
    /// then with modes `mode_weight_k` per mode, `tv_distance`,
    /// `n_collapsed` and `covering`.
    pub fn columns(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = Self::SCALAR_COLUMNS
            .iter()
            .map(|(name, get)| (name.to_string(), get(self)))
            .collect();
        for (k, w) in self.mode_weights.iter().enumerate() {
            v.push((format!("mode_weight_{k}"), *w));
        }
        if !self.mode_weights.is_empty() {
            v.push(("tv_distance".into(), self.tv_distance));
            v.push(("n_collapsed".into(), self.n_collapsed as f64));
            v.push(("covering".into(), self.covering));
        }
        v
    }

    /// Sort key of a column name in a table: the scalar columns first in
    /// their order, then the others by name.
    pub fn column_order(name: &str) -> (usize, String) {
        let at = Self::SCALAR_COLUMNS.iter().position(|(n, _)| *n == name);
        (at.unwrap_or(Self::SCALAR_COLUMNS.len()), name.to_string())
    }
}

impl TrainerState {
    /// The counters alone: no parameters, no Adam moments (their update
    /// count kept) and no last report — what a checkpoint stores beside the
    /// vectors, which it keeps as datasets.
    pub fn counters(&self) -> TrainerState {
        TrainerState {
            params: Vec::new(),
            adam: AdamState {
                m: Vec::new(),
                v: Vec::new(),
                step: self.adam.step,
            },
            last: None,
            ..self.clone()
        }
    }

    /// Counters ([`TrainerState::counters`]) with the vectors put back.
    pub fn with_vectors(mut self, params: Vec<f64>, adam_m: Vec<f64>, adam_v: Vec<f64>, adam_step: u64) -> Self {
        self.params = params;
        self.adam.m = adam_m;
        self.adam.v = adam_v;
        self.adam.step = adam_step;
        self
    }
}

/// The value of a loss part that is not active.
fn not_active() -> f64 {
    f64::NAN
}

/// A loss part: a number, or null (how JSON writes NaN) read as NaN.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
