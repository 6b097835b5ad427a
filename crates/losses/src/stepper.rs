//! The optimizer side every trainer shares, whatever the model (a flow, an
//! SNF): [`Stepper`] does steps 4–5 of a training step (see
//! [`crate::trainer`]) — the non-finite guard, gradient clipping, the Adam
//! update with its undo — and keeps the step / rejection counters with
//! their plain-data state.

use crate::config::TrainConfig;
use crate::loss::LossReport;
use crate::optim::{clip_grad_norm, Adam};
use crate::records::{StepOutcome, StepReport, TrainError, TrainerState};

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
            fieldflow_stats::diagnostics::ess_normalized(&report.log_w).unwrap_or(f64::NAN)
        };
        let r = StepReport {
            step: t,
            loss: report.total,
            fkl: report.fkl,
            rkl: report.rkl,
            sm: report.sm,
            fkl_is: report.fkl_is,
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
