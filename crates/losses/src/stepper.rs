//! What every trainer shares, whatever the model (a flow, an SNF):
//!
//! * [`Stepper`]: steps 4–5 of a training step (see [`crate::trainer`]): the
//!   non-finite guard, gradient clipping, the Adam update with its undo,
//!   and the step / rejection counters, plus their plain-data state;
//! * [`check_data`]: the checks of the training and held-out samples and
//!   the covering threshold;
//! * [`SampleMetrics::record`]: a [`MetricsRecord`] from a fresh batch of
//!   model samples and their log-weights.

use crate::loss::{LossError, LossReport};
use crate::optim::{clip_grad_norm, Adam};
use crate::trainer::{
    MetricsRecord, StepOutcome, StepReport, TrainConfig, TrainData, TrainError, TrainerState, COVERING_QUANTILE,
};
use fieldflow_core::{Par, Target};
use ndarray::{Array1, Array2, ArrayView2};

/// The optimizer side of training (module docs).
#[derive(Debug, Clone)]
pub struct Stepper {
    pub(crate) adam: Adam,
    /// Next step index t (rejected steps included).
    pub(crate) step: u64,
    pub(crate) consecutive: u32,
    pub(crate) total_rejections: u64,
    pub(crate) last: Option<StepReport>,
    pub(crate) last_rejection: Option<String>,
}

impl Stepper {
    /// A fresh optimizer for `n_params` parameters, at step 0.
    pub fn new(config: &TrainConfig, n_params: usize) -> Self {
        Stepper {
            adam: Adam::new(config.optimizer, n_params),
            step: 0,
            consecutive: 0,
            total_rejections: 0,
            last: None,
            last_rejection: None,
        }
    }

    /// Next step index t (steps attempted so far, rejected ones included).
    pub fn step_index(&self) -> u64 {
        self.step
    }

    /// Rejected steps since the start.
    pub fn total_rejections(&self) -> u64 {
        self.total_rejections
    }

    /// Whether `max_consecutive_rejections` consecutive steps were rejected.
    pub fn stopped(&self, config: &TrainConfig) -> bool {
        self.consecutive >= config.max_consecutive_rejections
    }

    /// [`TrainError::TooManyRejections`] for the current counters.
    pub fn stop_error(&self) -> TrainError {
        TrainError::TooManyRejections {
            step: self.step.saturating_sub(1),
            consecutive: self.consecutive,
            reason: self.last_rejection.clone().unwrap_or_default(),
        }
    }

    /// Steps 4–5 for the evaluated `report` of step `t`: rejects a
    /// non-finite loss or gradient, clips, updates `params` with Adam
    /// (undone if a parameter turns non-finite).
    pub fn apply(&mut self, config: &TrainConfig, t: u64, params: &mut [f64], mut report: LossReport) -> StepOutcome {
        let beta = config.annealing.beta(t);
        let lr = config.lr_schedule.lr(config.lr, t);
        self.step += 1;
        let reason = if !report.total.is_finite() {
            Some(format!("non-finite loss {}", report.total))
        } else {
            report
                .grad
                .iter()
                .position(|g| !g.is_finite())
                .map(|i| format!("non-finite gradient entry {i} = {}", report.grad[i]))
        };
        if let Some(reason) = reason {
            return self.reject(t, reason);
        }
        let (grad_norm, clipped) = match config.clip_grad_norm {
            Some(c) => {
                let norm = clip_grad_norm(&mut report.grad, c);
                (norm, norm > c)
            }
            None => (report.grad.iter().map(|g| g * g).sum::<f64>().sqrt(), false),
        };
        let saved = (params.to_vec(), self.adam.state.clone());
        self.adam.step(params, &report.grad, lr);
        if let Some(i) = params.iter().position(|p| !p.is_finite()) {
            let v = params[i];
            params.copy_from_slice(&saved.0);
            self.adam.state = saved.1;
            return self.reject(t, format!("update made parameter {i} non-finite ({v})"));
        }
        self.consecutive = 0;
        let batch_ess = if report.log_w.is_empty() {
            f64::NAN
        } else {
            fieldflow_stats::ess_normalized(&report.log_w).unwrap_or(f64::NAN)
        };
        let r = StepReport {
            step: t,
            loss: report.total,
            fkl: report.fkl,
            rkl: report.rkl,
            sm: report.sm,
            grad_norm,
            clipped,
            lr,
            beta,
            batch_ess,
        };
        self.last = Some(r.clone());
        StepOutcome::Accepted(r)
    }

    fn reject(&mut self, t: u64, reason: String) -> StepOutcome {
        self.consecutive += 1;
        self.total_rejections += 1;
        self.last_rejection = Some(reason.clone());
        StepOutcome::Rejected {
            step: t,
            reason,
            consecutive: self.consecutive,
        }
    }

    /// The complete state with the model's parameters.
    pub fn state(&self, params: &[f64], chunk_rows: usize) -> TrainerState {
        TrainerState {
            params: params.to_vec(),
            adam: self.adam.state.clone(),
            step: self.step,
            consecutive_rejections: self.consecutive,
            total_rejections: self.total_rejections,
            chunk_rows,
            last: self.last.clone(),
        }
    }

    /// Restores `state` into the counters, the optimizer and `params`.
    ///
    /// # Errors
    /// [`TrainError::State`] if the parameter or moment counts or the
    /// chunking differ.
    pub fn restore(&mut self, params: &mut [f64], state: TrainerState, chunk_rows: usize) -> Result<(), TrainError> {
        let n = params.len();
        if state.params.len() != n || state.adam.m.len() != n || state.adam.v.len() != n {
            return Err(TrainError::State(format!(
                "{} parameters / {} + {} moments, the model has {n}",
                state.params.len(),
                state.adam.m.len(),
                state.adam.v.len()
            )));
        }
        if state.chunk_rows != chunk_rows {
            return Err(TrainError::State(format!(
                "chunk_rows {} differs from this trainer's {chunk_rows}",
                state.chunk_rows
            )));
        }
        params.copy_from_slice(&state.params);
        self.adam.state = state.adam;
        self.step = state.step;
        self.consecutive = state.consecutive_rejections;
        self.total_rejections = state.total_rejections;
        self.last = state.last;
        self.last_rejection = None;
        Ok(())
    }
}

/// Checks the widths and sizes of the training and held-out samples
/// against the model dimension `d`, and returns the covering threshold:
/// the [`COVERING_QUANTILE`] quantile of log p̃ over the held-out samples
/// (or the training samples without held-out ones).
///
/// # Errors
/// [`LossError::Dimension`] or [`LossError::Empty`].
pub fn check_data(d: usize, target: &dyn Target, data: &TrainData<'_>, par: Par) -> Result<Option<f64>, TrainError> {
    for (what, x) in [("data", &data.train), ("held-out data", &data.held_out)] {
        if let Some(x) = x {
            if x.ncols() != d {
                return Err(LossError::Dimension {
                    what,
                    expected: d,
                    got: x.ncols(),
                }
                .into());
            }
            if x.nrows() == 0 {
                return Err(LossError::Empty { what }.into());
            }
        }
    }
    let reference = data.held_out.as_ref().or(data.train.as_ref());
    Ok(reference.map(|x| {
        let mut lp = Array1::zeros(x.nrows());
        target.log_prob_batch(x.view(), lp.view_mut(), par);
        quantile(lp.to_vec(), COVERING_QUANTILE)
    }))
}

/// The data minibatch of one step: `b` distinct rows of `x` drawn from
/// `seed` (all rows, in order, if there are no more than `b`).
pub fn minibatch(x: &Array2<f64>, b: usize, seed: fieldflow_core::Seed) -> Array2<f64> {
    let n = x.nrows();
    if b >= n {
        x.clone()
    } else {
        let mut rng = seed.rng();
        let idx = rand::seq::index::sample(&mut rng, n, b).into_vec();
        x.select(ndarray::Axis(0), &idx)
    }
}

/// The q-quantile of `v` (lower empirical quantile; NaNs sort last).
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let k = ((q * v.len() as f64).floor() as usize).min(v.len() - 1);
    v[k]
}

/// A fresh batch of model samples with everything a metrics record needs.
pub struct SampleMetrics<'b> {
    /// The samples (rows).
    pub xs: ArrayView2<'b, f64>,
    /// Their log-weights log p̃ − log q (for an SNF: path weights).
    pub log_w: &'b [f64],
    /// The held-out NLL (NaN without held-out data).
    pub nll: f64,
    /// Uniforms of the IMH-acceptance estimate.
    pub acceptance_seed: fieldflow_core::Seed,
}

impl SampleMetrics<'_> {
    /// The metrics record of step `t` (see [`crate::trainer`], "Metrics").
    pub fn record(
        &self,
        config: &TrainConfig,
        stepper: &Stepper,
        target: &dyn Target,
        data: &TrainData<'_>,
        covering_threshold: Option<f64>,
        par: Par,
    ) -> MetricsRecord {
        let t = stepper.step;
        let n = self.log_w.len();
        let ess = fieldflow_stats::ess_normalized(self.log_w).unwrap_or(f64::NAN);
        let acceptance = crate::trainer::imh_acceptance(self.log_w, self.acceptance_seed);
        let rkl_estimate = -self.log_w.iter().sum::<f64>() / n as f64;
        let covering = match covering_threshold {
            Some(th) => {
                let mut lp = Array1::zeros(n);
                target.log_prob_batch(self.xs, lp.view_mut(), par);
                lp.iter().filter(|&&v| !(v >= th)).count() as f64 / n as f64
            }
            None => f64::NAN,
        };
        let (mode_weights, true_weights, tv_distance, collapsed) = match data.modes {
            Some(m) => {
                let w_hat = m.mode_fractions(self.xs);
                match m.true_weights() {
                    Some(w) => {
                        let tv = 0.5 * w_hat.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum::<f64>();
                        let c = w_hat.iter().zip(&w).map(|(a, b)| *a < 0.5 * b).collect();
                        (w_hat, w, tv, c)
                    }
                    None => (w_hat, Vec::new(), f64::NAN, Vec::new()),
                }
            }
            None => (Vec::new(), Vec::new(), f64::NAN, Vec::new()),
        };
        let n_collapsed = collapsed.iter().filter(|&&c| c).count();
        let last = stepper.last.as_ref();
        let pick = |f: fn(&StepReport) -> f64| last.map(f).unwrap_or(f64::NAN);
        MetricsRecord {
            step: t,
            loss: pick(|r| r.loss),
            fkl: pick(|r| r.fkl),
            rkl: pick(|r| r.rkl),
            sm: pick(|r| r.sm),
            grad_norm: pick(|r| r.grad_norm),
            lr: config.lr_schedule.lr(config.lr, t),
            beta: config.annealing.beta(t),
            ess,
            acceptance,
            nll: self.nll,
            rkl_estimate,
            total_rejections: stepper.total_rejections,
            mode_weights,
            true_weights,
            tv_distance,
            collapsed,
            n_collapsed,
            covering,
        }
    }
}
