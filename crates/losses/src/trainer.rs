//! The training loop's kernel: one optimizer step at a time, metrics on
//! demand, plain-data state for checkpoints (DESIGN §3). It never prints and
//! never touches files; the caller (the CLI) decides when to step, record
//! metrics and checkpoint.
//!
//! # One step (step index t = 0, 1, …, counting rejected steps too)
//! 1. β = annealing.β(t), η = lr_schedule.η(lr, t);
//! 2. data minibatch: `batch_size` distinct rows (all rows if there are
//!    fewer) drawn from stream `seed.child(0).child(t)`;
//!    base noise z: `batch_size` rows from `seed.child(1).child(t)`
//!    ([`Flow::sample_base_batch`]);
//! 3. L and ∂L/∂θ ([`Loss::value_and_grad`]);
//! 4. **guard**: if L or any gradient entry is non-finite the step is
//!    *rejected*: parameters and Adam state unchanged, the rejection counted
//!    and reported; after `max_consecutive_rejections` consecutive
//!    rejections [`Trainer::step`] returns [`TrainError::TooManyRejections`]
//!    (and keeps doing so), with the last good parameters intact;
//! 5. otherwise the gradient is clipped to `clip_grad_norm` (the pre-clip
//!    norm is reported) and Adam updates θ; should the update itself produce
//!    a non-finite parameter (overflow at absurd learning rates), it is
//!    undone and the step rejected the same way.
//!
//! Because every random draw is a function of (seed, t), the complete
//! trainer state is plain data ([`TrainerState`]: θ, Adam moments, t,
//! rejection counters); restoring it continues bit-identically.
//!
//! # Metrics (REFERENCE §8), [`Trainer::metrics`]
//! A fresh batch of `eval_batch` flow samples from `seed.child(2).child(t)`
//! gives, at β = 1 and with log w = log p̃ − log q:
//! * the normalized ESS (Σw)²/(N Σw²);
//! * the estimated IMH acceptance: the independence-Metropolis rule
//!   accept ⇔ ln u < log w(x′) − log w(x) run sequentially through the batch
//!   (the first sample starts the chain; uniforms from
//!   `seed.child(3).child(t)`), accepted / (N − 1);
//! * the RKL estimate mean(log q − log p̃) = KL(q‖p) − log Z;
//! * NLL = −mean log q on all held-out rows (when given);
//! * for targets with modes: the flow's mode weights (fractions of the
//!   batch), the total-variation distance ½ Σ|ŵ − w| to the true weights,
//!   collapse per mode (ŵₖ < ½ wₖ) and covering, the fraction of flow
//!   samples whose log p̃ lies below the 0.1 % quantile of log p̃ over the
//!   held-out samples (or, without held-out data, the training data).
//!
//! Unavailable numbers are NaN, so every record has the same columns.

use crate::loss::{Loss, LossConfig, LossError, LossInputs, LossReport, SmOn};
use crate::optim::{AdamConfig, AdamState};
use crate::schedule::{Annealing, LrSchedule};
use crate::stepper::{check_data, minibatch, SampleMetrics, Stepper};
use fieldflow_core::{ConfigError, Par, Seed, Target};
use fieldflow_flows::{Coupling, Flow, ScoreLayer, ScoreModel};
use fieldflow_targets::Modes;
use ndarray::{Array1, Array2, Axis};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Training settings (`[train]` in a TOML config).
///
/// ```toml
/// batch_size = 256
/// steps = 5000
/// lr = 1e-3
/// seed = 42
/// clip_grad_norm = 10.0          # optional
/// max_consecutive_rejections = 10
/// metrics_every = 100
/// eval_batch = 2048
///
/// [loss]
/// preset = "scorenf"
///
/// [lr_schedule]
/// kind = "cosine"
/// total_steps = 5000
/// min_lr = 1e-5
///
/// [optimizer]
/// beta1 = 0.9
/// beta2 = 0.999
///
/// [annealing]
/// kind = "geometric"
/// beta0 = 0.1
/// steps = 2000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The objective.
    pub loss: LossConfig,
    /// Rows per minibatch (data and base noise).
    pub batch_size: usize,
    /// Number of steps the caller runs (the trainer itself steps on
    /// request; the schedules carry their own lengths).
    pub steps: u64,
    /// Base learning rate η₀.
    pub lr: f64,
    /// Learning-rate schedule (default constant).
    #[serde(default = "default_lr_schedule")]
    pub lr_schedule: LrSchedule,
    /// Adam hyper-parameters.
    #[serde(default)]
    pub optimizer: AdamConfig,
    /// Annealing β(step) (default constant β = 1).
    #[serde(default = "default_annealing")]
    pub annealing: Annealing,
    /// Clip the gradient to this Euclidean norm (no clipping if absent).
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Stop after this many consecutive rejected steps (default 10).
    #[serde(default = "default_max_rejections")]
    pub max_consecutive_rejections: u32,
    /// Steps between metrics records (used by the caller; default 100).
    #[serde(default = "default_metrics_every")]
    pub metrics_every: u64,
    /// Flow samples per metrics evaluation (default 2048).
    #[serde(default = "default_eval_batch")]
    pub eval_batch: usize,
    /// Master seed of the run's random streams.
    #[serde(default)]
    pub seed: u64,
}

fn default_lr_schedule() -> LrSchedule {
    LrSchedule::Constant
}
fn default_annealing() -> Annealing {
    Annealing::Constant
}
fn default_max_rejections() -> u32 {
    10
}
fn default_metrics_every() -> u64 {
    100
}
fn default_eval_batch() -> usize {
    2048
}

impl TrainConfig {
    /// A configuration with the given loss, batch size, steps and learning
    /// rate, and defaults elsewhere.
    pub fn new(loss: LossConfig, batch_size: usize, steps: u64, lr: f64) -> Self {
        TrainConfig {
            loss,
            batch_size,
            steps,
            lr,
            lr_schedule: default_lr_schedule(),
            optimizer: AdamConfig::default(),
            annealing: default_annealing(),
            clip_grad_norm: None,
            max_consecutive_rejections: default_max_rejections(),
            metrics_every: default_metrics_every(),
            eval_batch: default_eval_batch(),
            seed: 0,
        }
    }

    /// Checks every field and resolves the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field (`batch_size`,
    /// `steps`, `lr`, `clip_grad_norm`, `max_consecutive_rejections`,
    /// `metrics_every`, `eval_batch`, `loss.*`, `lr_schedule.*`,
    /// `optimizer.*`, `annealing.*`).
    pub fn validate(&self) -> Result<Loss, ConfigError> {
        let loss = self.loss.validate()?;
        if self.batch_size == 0 {
            return Err(ConfigError::new("batch_size", 0, "must be >= 1"));
        }
        if self.steps == 0 {
            return Err(ConfigError::new("steps", 0, "must be >= 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::new("lr", self.lr, "must be finite and > 0"));
        }
        self.lr_schedule.validate()?;
        self.optimizer.validate()?;
        self.annealing.validate()?;
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(ConfigError::new("clip_grad_norm", c, "must be finite and > 0"));
            }
        }
        if self.max_consecutive_rejections == 0 {
            return Err(ConfigError::new("max_consecutive_rejections", 0, "must be >= 1"));
        }
        if self.metrics_every == 0 {
            return Err(ConfigError::new("metrics_every", 0, "must be >= 1"));
        }
        if self.eval_batch < 2 {
            return Err(ConfigError::new("eval_batch", self.eval_batch, "must be >= 2"));
        }
        Ok(loss)
    }
}

/// Data and mode information the trainer may use (all optional).
#[derive(Default)]
pub struct TrainData<'a> {
    /// Training samples of the target (rows): the ensemble for FKL / SM.
    pub train: Option<Array2<f64>>,
    /// Held-out target samples (rows) for NLL and the covering threshold.
    pub held_out: Option<Array2<f64>>,
    /// Mode assignment (and true weights) for the mode metrics.
    pub modes: Option<&'a dyn Modes>,
}

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
}

/// The outcome of one accepted step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step index t of this step.
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// FKL part (NaN when inactive).
    pub fkl: f64,
    /// RKL part (NaN when inactive).
    pub rkl: f64,
    /// SM part (NaN when inactive).
    pub sm: f64,
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

/// What [`Trainer::step`] did.
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
    /// Its pre-clip gradient norm.
    pub grad_norm: f64,
    /// Learning rate of the next step.
    pub lr: f64,
    /// β of the next step.
    pub beta: f64,
    /// Normalized ESS of a fresh flow batch (β = 1).
    pub ess: f64,
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

/// Trains a flow (module docs). `L` is the layer type (affine couplings).
pub struct Trainer<'a, L: ScoreLayer = Coupling> {
    config: TrainConfig,
    loss: Loss,
    flow: Flow<L>,
    target: &'a dyn Target,
    data: TrainData<'a>,
    covering_threshold: Option<f64>,
    stepper: Stepper,
    par: Par,
}

/// Quantile of the covering figure (REFERENCE §8): 0.1 %.
pub const COVERING_QUANTILE: f64 = 1e-3;

impl<'a, L: ScoreLayer> Trainer<'a, L> {
    /// A trainer starting from the flow's current parameters.
    ///
    /// # Errors
    /// An invalid `config`; data needed by the loss but absent; data or
    /// held-out rows of the wrong width or empty; flow and target of
    /// different dimensions (all before any work is done).
    pub fn new(
        config: &TrainConfig,
        flow: Flow<L>,
        target: &'a dyn Target,
        data: TrainData<'a>,
        par: Par,
    ) -> Result<Self, TrainError> {
        let loss = config.validate()?;
        let d = flow.dim();
        if target.dim() != d {
            return Err(ConfigError::new(
                "target",
                format!("dim {}", target.dim()),
                format!("differs from the flow's dimension {d}"),
            )
            .into());
        }
        let covering_threshold = check_data(d, target, &data, par)?;
        if loss.needs_data() && data.train.is_none() {
            let term = if loss.w_fkl > 0.0 { "fkl" } else { "sm" };
            return Err(LossError::MissingData { term }.into());
        }
        let stepper = Stepper::new(config, flow.n_params());
        Ok(Trainer {
            config: config.clone(),
            loss,
            flow,
            target,
            data,
            covering_threshold,
            stepper,
            par,
        })
    }

    /// The flow being trained.
    pub fn flow(&self) -> &Flow<L> {
        &self.flow
    }

    /// Consumes the trainer, returning the flow.
    pub fn into_flow(self) -> Flow<L> {
        self.flow
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The resolved loss.
    pub fn loss(&self) -> &Loss {
        &self.loss
    }

    /// Next step index (steps attempted so far, rejected ones included).
    pub fn step_index(&self) -> u64 {
        self.stepper.step
    }

    /// Rejected steps since the start.
    pub fn total_rejections(&self) -> u64 {
        self.stepper.total_rejections
    }

    /// log p̃ threshold of the covering figure, when target samples exist.
    pub fn covering_threshold(&self) -> Option<f64> {
        self.covering_threshold
    }

    /// Whether training has stopped on too many consecutive rejections.
    pub fn stopped(&self) -> bool {
        self.stepper.stopped(&self.config)
    }

    /// Evaluates the loss of step `t` at the current parameters (no update).
    pub fn evaluate(&self, t: u64) -> Result<LossReport, TrainError> {
        let (minibatch, noise) = self.step_inputs(t);
        let inputs = LossInputs {
            data: minibatch.as_ref().map(|x| x.view()),
            noise: noise.as_ref().map(|z| z.view()),
        };
        let beta = self.config.annealing.beta(t);
        Ok(self
            .loss
            .value_and_grad(&self.flow, self.target, inputs, beta, self.par)?)
    }

    /// The data minibatch and base noise of step `t` (module docs, step 2).
    fn step_inputs(&self, t: u64) -> (Option<Array2<f64>>, Option<Array2<f64>>) {
        let root = Seed::new(self.config.seed);
        let b = self.config.batch_size;
        let minibatch = if self.loss.needs_data() {
            let x = self.data.train.as_ref().expect("checked in new");
            Some(minibatch(x, b, root.child(0).child(t)))
        } else {
            None
        };
        let noise = self.loss.needs_noise().then(|| {
            let mut z = Array2::zeros((b, self.flow.dim()));
            self.flow
                .sample_base_batch(root.child(1).child(t), z.view_mut(), self.par);
            z
        });
        (minibatch, noise)
    }

    /// One training step (module docs).
    ///
    /// # Errors
    /// [`TrainError::TooManyRejections`] once `max_consecutive_rejections`
    /// consecutive steps were rejected (then on every later call);
    /// [`TrainError::Loss`] if the loss cannot be evaluated.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        if self.stopped() {
            return Err(self.stepper.stop_error());
        }
        let t = self.stepper.step;
        let report = self.evaluate(t)?;
        Ok(self.stepper.apply(&self.config, t, self.flow.params_mut(), report))
    }

    /// One training step whose batch is shared among the processes of
    /// `exchange` (data parallelism, e.g. MPI ranks): every process must
    /// call it with the same trainer state. The result, and so the
    /// parameters, are bit-identical to [`Trainer::step`] whatever the
    /// number of processes (see [`ShardExchange`]).
    ///
    /// # Errors
    /// As [`Trainer::step`] (identically on every process).
    pub fn step_sharded(&mut self, exchange: &mut dyn ShardExchange) -> Result<StepOutcome, TrainError> {
        if self.stopped() {
            return Err(self.stepper.stop_error());
        }
        let t = self.stepper.step;
        let report = self.evaluate_sharded(t, exchange);
        Ok(self.stepper.apply(&self.config, t, self.flow.params_mut(), report))
    }

    /// L and ∂L/∂θ of step `t` with the batch's Par chunks shared among
    /// the processes of `exchange`: each process evaluates its chunks (a
    /// contiguous range per term), one all-gather exchanges every chunk's
    /// gradient contribution and per-row values, and every process then adds
    /// them up in the order [`Loss::value_and_grad`] does (term by term,
    /// chunk by chunk), so the report is bit-identical to [`Trainer::evaluate`].
    fn evaluate_sharded(&self, t: u64, exchange: &mut dyn ShardExchange) -> LossReport {
        let (minibatch, noise) = self.step_inputs(t);
        let beta = self.config.annealing.beta(t);
        let loss = self.loss;
        let c = self.par.chunk_rows.max(1);
        let p = self.flow.n_params();
        let d = self.flow.dim();
        let (rank, size) = (exchange.rank(), exchange.size());
        let data = minibatch.as_ref().filter(|_| loss.needs_data());
        let noise = noise.as_ref().filter(|_| loss.needs_noise());
        let n_data = data.map_or(0, |x| x.nrows());
        let n_noise = noise.map_or(0, |z| z.nrows());
        let sm_rows = match loss.sm_on {
            SmOn::Data => n_data,
            SmOn::Flow => n_noise,
        };
        // The terms in the order value_and_grad accumulates them, with the
        // rows of their batch and the per-row values each chunk reports.
        let mut terms: Vec<(Term, usize, usize)> = Vec::new();
        if loss.w_fkl > 0.0 {
            terms.push((Term::Fkl, n_data, 1));
        }
        if noise.is_some() {
            terms.push((Term::Flow, n_noise, 2));
        }
        if loss.w_sm > 0.0 {
            terms.push((Term::Sm, sm_rows, 1));
        }
        let rows_of = |n: usize, k: usize| k * c..((k + 1) * c).min(n);
        let mine = |n: usize, r: usize| {
            let k = n.div_ceil(c);
            (r * k / size)..((r + 1) * k / size)
        };
        let record_len = |n: usize, per_row: usize, k: usize| p + per_row * rows_of(n, k).len();
        let serial = Par::serial(c);
        let chunk_par = Par {
            chunk_rows: 1,
            parallel: self.par.parallel,
        };
        // Flow samples of this process's noise chunks (for SM on the flow).
        let mut local_x: Vec<Array2<f64>> = Vec::new();
        let mut buf: Vec<f64> = Vec::new();
        for &(term, n, _) in &terms {
            let chunks: Vec<usize> = mine(n, rank).collect();
            let parts = chunk_par.map_chunks(chunks.len(), |i, _| {
                let rows = rows_of(n, chunks[i]);
                let m = rows.len();
                let mut gp = vec![0.0; p];
                let mut vals = Vec::new();
                let mut xs_out = None;
                match term {
                    Term::Fkl => {
                        let x = data.expect("fkl has data").slice(ndarray::s![rows, ..]);
                        let w = Array1::from_elem(m, -loss.w_fkl / n as f64);
                        let mut lq = Array1::zeros(m);
                        self.flow.log_q_grad_batch(x, w.view(), lq.view_mut(), &mut gp, serial);
                        vals.extend(lq.iter());
                    }
                    Term::Flow => {
                        let z = noise.expect("noise drawn").slice(ndarray::s![rows, ..]);
                        let mut xs = Array2::zeros((m, d));
                        let mut lq = Array1::zeros(m);
                        let mut lp = vec![0.0; m];
                        if loss.w_rkl > 0.0 {
                            let weight = loss.w_rkl;
                            let inv_n = 1.0 / n as f64;
                            let log_p: Vec<std::sync::atomic::AtomicU64> =
                                (0..m).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
                            self.flow.forward_vjp_batch(
                                z,
                                xs.view_mut(),
                                lq.view_mut(),
                                &mut gp,
                                serial,
                                |first, x, _lq, mut gx, mut glq| {
                                    for (i, (xr, gr)) in x.rows().into_iter().zip(gx.rows_mut()).enumerate() {
                                        let v = self.target.log_prob_and_score(xr, gr);
                                        log_p[first + i].store(v.to_bits(), std::sync::atomic::Ordering::Relaxed);
                                    }
                                    gx.mapv_inplace(|s| -weight * beta * inv_n * s);
                                    glq.fill(weight * inv_n);
                                },
                            );
                            for (o, a) in lp.iter_mut().zip(log_p) {
                                *o = f64::from_bits(a.into_inner());
                            }
                        } else {
                            self.flow.forward_batch(z, xs.view_mut(), lq.view_mut(), serial);
                            let mut lpa = Array1::zeros(m);
                            self.target.log_prob_batch(xs.view(), lpa.view_mut(), serial);
                            lp = lpa.to_vec();
                        }
                        vals.extend(lq.iter());
                        vals.extend(lp);
                        xs_out = Some(xs);
                    }
                    Term::Sm => {
                        let x = match loss.sm_on {
                            SmOn::Data => data.expect("sm on data").slice(ndarray::s![rows, ..]),
                            SmOn::Flow => local_x[i].view(),
                        };
                        let mut s_q = Array2::zeros(x.raw_dim());
                        let mut lq = Array1::zeros(m);
                        self.flow.score_batch(x, s_q.view_mut(), lq.view_mut(), serial);
                        let mut s_p = Array2::zeros(x.raw_dim());
                        let mut lp = Array1::zeros(m);
                        self.target
                            .log_prob_and_score_batch(x, s_p.view_mut(), lp.view_mut(), serial);
                        let mut r = s_q;
                        r.scaled_add(-beta, &s_p);
                        vals.extend(r.axis_iter(Axis(0)).map(|row| row.dot(&row)));
                        let cf = 2.0 * loss.w_sm / n as f64;
                        r.mapv_inplace(|v| cf * v);
                        ScoreModel::score_param_vjp_batch(&self.flow, x, r.view(), &mut gp, serial);
                    }
                }
                (gp, vals, xs_out)
            });
            for (gp, vals, xs) in parts {
                buf.extend(gp);
                buf.extend(vals);
                if let Some(xs) = xs {
                    local_x.push(xs);
                }
            }
        }
        let counts: Vec<usize> = (0..size)
            .map(|r| {
                terms
                    .iter()
                    .map(|&(_, n, per_row)| mine(n, r).map(|k| record_len(n, per_row, k)).sum::<usize>())
                    .sum()
            })
            .collect();
        debug_assert_eq!(counts[rank], buf.len());
        let all = exchange.all_gather(&buf, &counts);
        // Records in (rank, term, chunk) order → per term, chunk order.
        let mut records: Vec<Vec<&[f64]>> = terms.iter().map(|_| Vec::new()).collect();
        let mut at = 0;
        for r in 0..size {
            for (ti, &(_, n, per_row)) in terms.iter().enumerate() {
                for k in mine(n, r) {
                    let len = record_len(n, per_row, k);
                    records[ti].push(&all[at..at + len]);
                    at += len;
                }
            }
        }
        let mut grad = vec![0.0; p];
        let (mut fkl, mut rkl, mut sm) = (f64::NAN, f64::NAN, f64::NAN);
        let mut total = 0.0;
        let mut log_w = Vec::new();
        for (ti, &(term, _, _)) in terms.iter().enumerate() {
            let mut lq = Vec::new();
            let mut lp = Vec::new();
            for rec in &records[ti] {
                for (g, v) in grad.iter_mut().zip(&rec[..p]) {
                    *g += v;
                }
                let vals = &rec[p..];
                match term {
                    Term::Flow => {
                        let m = vals.len() / 2;
                        lq.extend_from_slice(&vals[..m]);
                        lp.extend_from_slice(&vals[m..]);
                    }
                    Term::Fkl | Term::Sm => lq.extend_from_slice(vals),
                }
            }
            match term {
                Term::Fkl => {
                    fkl = -mean(lq.iter().copied());
                    total += loss.w_fkl * fkl;
                }
                Term::Flow => {
                    if loss.w_rkl > 0.0 {
                        rkl = mean(lq.iter().zip(&lp).map(|(q, p)| q - beta * p));
                        total += loss.w_rkl * rkl;
                    }
                    log_w = lp.iter().zip(&lq).map(|(p, q)| p - q).collect();
                }
                Term::Sm => {
                    sm = mean(lq.iter().copied());
                    total += loss.w_sm * sm;
                }
            }
        }
        LossReport {
            total,
            fkl,
            rkl,
            sm,
            grad,
            log_w,
        }
    }

    /// A metrics record at the current parameters (module docs).
    pub fn metrics(&self) -> MetricsRecord {
        let t = self.stepper.step;
        let root = Seed::new(self.config.seed);
        let n = self.config.eval_batch;
        let d = self.flow.dim();
        let mut z = Array2::zeros((n, d));
        self.flow
            .sample_base_batch(root.child(2).child(t), z.view_mut(), self.par);
        let (xs, log_w) = crate::loss::flow_samples(&self.flow, self.target, z.view(), self.par);
        let nll = match &self.data.held_out {
            Some(h) => {
                let mut zs = Array2::zeros(h.raw_dim());
                let mut lq = Array1::zeros(h.nrows());
                self.flow
                    .inverse_batch(h.view(), zs.view_mut(), lq.view_mut(), self.par);
                -lq.mean().unwrap_or(f64::NAN)
            }
            None => f64::NAN,
        };
        SampleMetrics {
            xs: xs.view(),
            log_w: &log_w,
            nll,
            acceptance_seed: root.child(3).child(t),
        }
        .record(
            &self.config,
            &self.stepper,
            self.target,
            &self.data,
            self.covering_threshold,
            self.par,
        )
    }

    /// The complete state (for a checkpoint).
    pub fn state(&self) -> TrainerState {
        self.stepper.state(self.flow.params(), self.par.chunk_rows)
    }

    /// Continues from a saved state (the trainer must have been built from
    /// the same configuration, architecture, target and data).
    ///
    /// # Errors
    /// [`TrainError::State`] if the parameter or moment counts or the
    /// chunking differ from this trainer's.
    pub fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.stepper.restore(self.flow.params_mut(), state, self.par.chunk_rows)
    }
}

/// A trainer as a training loop drives it, whatever the model (a flow:
/// [`Trainer`]; a stochastic normalizing flow: fieldflow-snf's trainer).
pub trait TrainLoop {
    /// One training step (see [`Trainer::step`]).
    ///
    /// # Errors
    /// As [`Trainer::step`].
    fn step(&mut self) -> Result<StepOutcome, TrainError>;
    /// A metrics record at the current parameters.
    fn metrics(&self) -> MetricsRecord;
    /// The complete state (for a checkpoint).
    fn state(&self) -> TrainerState;
    /// Continues from a saved state.
    ///
    /// # Errors
    /// [`TrainError::State`] for a state of another model or chunking.
    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError>;
    /// Next step index (steps attempted so far, rejected ones included).
    fn step_index(&self) -> u64;
    /// Rejected steps since the start.
    fn total_rejections(&self) -> u64;
    /// The model's parameters θ.
    fn params(&self) -> &[f64];
}

impl<L: ScoreLayer> TrainLoop for Trainer<'_, L> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        Trainer::step(self)
    }
    fn metrics(&self) -> MetricsRecord {
        Trainer::metrics(self)
    }
    fn state(&self) -> TrainerState {
        Trainer::state(self)
    }
    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        Trainer::restore(self, state)
    }
    fn step_index(&self) -> u64 {
        Trainer::step_index(self)
    }
    fn total_rejections(&self) -> u64 {
        Trainer::total_rejections(self)
    }
    fn params(&self) -> &[f64] {
        self.flow.params()
    }
}

/// Independence-Metropolis acceptance rate over a batch of log-weights,
/// visited in order: the first sample starts the chain, each later one is
/// accepted when ln u < log w′ − log w (u from `seed`). Non-finite proposals
/// are rejected; a non-finite start is replaced by the first finite proposal.
pub fn imh_acceptance(log_w: &[f64], seed: Seed) -> f64 {
    if log_w.len() < 2 {
        return f64::NAN;
    }
    let mut rng = seed.rng();
    let mut cur = log_w[0];
    let mut acc = 0usize;
    for &lw in &log_w[1..] {
        let u: f64 = rng.random();
        let ok = if !lw.is_finite() && lw != f64::NEG_INFINITY {
            false
        } else if cur.is_nan() || cur == f64::NEG_INFINITY {
            lw > f64::NEG_INFINITY
        } else {
            u.ln() < lw - cur
        };
        if ok {
            cur = lw;
            acc += 1;
        }
    }
    acc as f64 / (log_w.len() - 1) as f64
}

/// The mean as [`Loss::value_and_grad`] computes it (sequential sum / n).
fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for v in it {
        s += v;
        n += 1;
    }
    s / n as f64
}

/// The parts of a sharded step, in the order their gradients are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    /// FKL on the data minibatch.
    Fkl,
    /// Flow samples of the base noise (with the RKL gradient when active).
    Flow,
    /// Score matching on data or flow samples.
    Sm,
}

/// How the processes of a data-parallel run ([`Trainer::step_sharded`])
/// exchange their parts of a step. Process `rank` of `size` evaluates, for
/// every loss term, Par chunks `rank·K/size .. (rank+1)·K/size` of the K
/// chunks of that term's batch (the batch itself is the one a single
/// process draws), so the union over processes is the whole batch.
pub trait ShardExchange {
    /// Index of this process (0-based).
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// All-gather: every process passes `mine` (`counts[rank]` values);
    /// returns the concatenation of all processes' buffers in rank order
    /// (`counts` is the same on every process).
    fn all_gather(&mut self, mine: &[f64], counts: &[usize]) -> Vec<f64>;
}

/// The exchange of a single process: [`Trainer::step_sharded`] then equals
/// [`Trainer::step`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl ShardExchange for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&mut self, mine: &[f64], _counts: &[usize]) -> Vec<f64> {
        mine.to_vec()
    }
}

#[cfg(test)]
mod sharded_tests {
    use super::*;
    use fieldflow_flows::FlowConfig;
    use fieldflow_targets::GaussianMixture;
    use std::sync::{Arc, Barrier, Mutex};

    /// R "processes" as threads: the all-gather of [`ShardExchange`].
    struct Threads {
        rank: usize,
        size: usize,
        shared: Arc<(Mutex<Vec<Vec<f64>>>, Barrier)>,
    }

    impl ShardExchange for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_gather(&mut self, mine: &[f64], counts: &[usize]) -> Vec<f64> {
            let (slots, barrier) = &*self.shared;
            slots.lock().unwrap()[self.rank] = mine.to_vec();
            barrier.wait();
            let out: Vec<f64> = slots.lock().unwrap().concat();
            barrier.wait();
            assert_eq!(out.len(), counts.iter().sum::<usize>());
            out
        }
    }

    /// Runs `steps` steps with `make` on `size` threads sharing the batch
    /// and returns every thread's reports and final parameters.
    fn sharded<F>(size: usize, steps: usize, make: F) -> Vec<(Vec<StepOutcome>, Vec<f64>)>
    where
        F: Fn(&mut dyn FnMut(&mut Trainer<'_>) -> (Vec<StepOutcome>, Vec<f64>)) -> (Vec<StepOutcome>, Vec<f64>) + Sync,
    {
        let shared = Arc::new((Mutex::new(vec![Vec::new(); size]), Barrier::new(size)));
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let shared = shared.clone();
                    let make = &make;
                    s.spawn(move || {
                        let mut ex = Threads { rank, size, shared };
                        make(&mut |tr: &mut Trainer<'_>| {
                            let out = (0..steps).map(|_| tr.step_sharded(&mut ex).unwrap()).collect();
                            (out, tr.flow().params().to_vec())
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    fn check_identical<F>(steps: usize, make: F)
    where
        F: Fn(&mut dyn FnMut(&mut Trainer<'_>) -> (Vec<StepOutcome>, Vec<f64>)) -> (Vec<StepOutcome>, Vec<f64>) + Sync,
    {
        let reference = make(&mut |tr: &mut Trainer<'_>| {
            let out = (0..steps).map(|_| tr.step().unwrap()).collect();
            (out, tr.flow().params().to_vec())
        });
        assert!(reference.0.iter().all(|o| matches!(o, StepOutcome::Accepted(_))));
        let single = make(&mut |tr: &mut Trainer<'_>| {
            let out = (0..steps)
                .map(|_| tr.step_sharded(&mut SingleProcess).unwrap())
                .collect();
            (out, tr.flow().params().to_vec())
        });
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let summary = |o: &[StepOutcome]| format!("{o:?}");
        assert_eq!(summary(&single.0), summary(&reference.0), "single process");
        assert!(
            bits(&single.1) == bits(&reference.1),
            "single process: parameters differ"
        );
        for size in [2, 3, 7] {
            for (rank, got) in sharded(size, steps, &make).into_iter().enumerate() {
                assert_eq!(summary(&got.0), summary(&reference.0), "size {size} rank {rank}");
                assert!(
                    bits(&got.1) == bits(&reference.1),
                    "size {size} rank {rank}: parameters differ"
                );
            }
        }
    }

    #[test]
    fn sharded_rkl_on_phi4_is_bit_identical_for_any_process_count() {
        check_identical(3, |run| {
            let lattice = fieldflow_lattice::Lattice::new(&[4, 4]).unwrap();
            let target = fieldflow_lattice::Phi4::new(lattice, -4.0, 8.0).unwrap();
            let flow = FlowConfig::tutorial(4).build(Seed::new(2)).unwrap();
            let mut cfg = TrainConfig::new(LossConfig::preset(crate::LossPreset::Rkl), 70, 3, 1e-2);
            cfg.seed = 9;
            cfg.clip_grad_norm = Some(5.0);
            let par = Par {
                chunk_rows: 16,
                parallel: true,
            };
            let mut tr = Trainer::new(&cfg, flow, &target, TrainData::default(), par).unwrap();
            run(&mut tr)
        });
    }

    #[test]
    fn sharded_fkl_rkl_sm_is_bit_identical_for_any_process_count() {
        for sm_on in [SmOn::Data, SmOn::Flow] {
            check_identical(3, |run| {
                let mog = GaussianMixture::mog4();
                let mut x = Array2::zeros((50, 2));
                fieldflow_core::ExactSampler::sample_batch(&mog, Seed::new(1), x.view_mut(), Par::default());
                let flow = FlowConfig::mlp(2, 4, vec![16]).build(Seed::new(4)).unwrap();
                let loss = LossConfig::weights(0.5, 1.0, 0.3, sm_on);
                let mut cfg = TrainConfig::new(loss, 40, 3, 3e-3);
                cfg.seed = 6;
                let data = TrainData {
                    train: Some(x),
                    held_out: None,
                    modes: None,
                };
                let par = Par {
                    chunk_rows: 8,
                    parallel: true,
                };
                let mut tr = Trainer::new(&cfg, flow, &mog, data, par).unwrap();
                run(&mut tr)
            });
        }
    }
}
