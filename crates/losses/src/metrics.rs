//! The parts every trainer shares besides its model ([`TrainerParts`]) and
//! the metrics record they make from a fresh batch of model samples and
//! their log-weights: the figures of [`fieldflow_stats::diagnostics`] (ESS,
//! IMH acceptance estimate, total variation, collapse, covering), the RKL
//! estimate −mean log w and the held-out NLL the model computed.

use crate::config::{check_data, TrainConfig, TrainData};
use crate::loss::LossReport;
use crate::records::{MetricsRecord, StepOutcome, StepReport, TrainError, TrainerState};
use crate::stepper::Stepper;
use fieldflow_core::{Par, ProposalDensity, Seed, Target};
use fieldflow_stats::diagnostics::{
    collapsed, covering_fraction, ess_normalized, imh_acceptance, total_variation, COLLAPSE_FRACTION,
};
use ndarray::{Array1, Array2, ArrayView2};

/// The held-out NLL −mean log q of a model with a density (NaN without
/// held-out rows).
pub fn held_out_nll(model: &dyn ProposalDensity, held_out: Option<&Array2<f64>>, par: Par) -> f64 {
    match held_out {
        Some(h) => {
            let mut lq = Array1::zeros(h.nrows());
            model.log_q_batch(h.view(), lq.view_mut(), par);
            -lq.mean().unwrap_or(f64::NAN)
        }
        None => f64::NAN,
    }
}

/// What every trainer holds besides its model and its target: the
/// configuration, the training and held-out data with the covering
/// threshold derived from them ([`check_data`]), the optimizer side
/// ([`Stepper`]) and the parallelism. It makes the metrics records and the
/// plain-data state of every model kind (flow, mixture, SNF, diffusion,
/// LRDS) the same way.
pub struct TrainerParts<'a> {
    /// The training configuration.
    pub config: TrainConfig,
    /// Training / held-out samples and the target's modes.
    pub data: TrainData<'a>,
    /// log p̃ threshold of the covering metric (None without data).
    pub covering_threshold: Option<f64>,
    /// Adam, clipping, the non-finite guard and the step counters.
    pub stepper: Stepper,
    /// Parallelism of the batched evaluations.
    pub par: Par,
}

impl<'a> TrainerParts<'a> {
    /// The parts of a trainer of a model of dimension `dim` with `n_params`
    /// parameters, at step 0 (`config` already validated by the caller).
    ///
    /// # Errors
    /// Data or held-out rows of the wrong width, or empty ([`check_data`]).
    pub fn new(
        config: &TrainConfig,
        dim: usize,
        n_params: usize,
        target: &dyn Target,
        data: TrainData<'a>,
        par: Par,
    ) -> Result<Self, TrainError> {
        let covering_threshold = check_data(dim, target, &data, par)?;
        Ok(TrainerParts {
            config: config.clone(),
            data,
            covering_threshold,
            stepper: Stepper::new(config, n_params),
            par,
        })
    }

    /// The root of the run's random streams (`train.seed`).
    pub fn root(&self) -> Seed {
        Seed::new(self.config.seed)
    }

    /// Next step index t (steps attempted so far, rejected ones included).
    pub fn step_index(&self) -> u64 {
        self.stepper.step_index()
    }

    /// The index t of the next step, or the error that stops training
    /// after `max_consecutive_rejections` rejected steps.
    ///
    /// # Errors
    /// [`TrainError::TooManyRejections`].
    pub fn next_step(&self) -> Result<u64, TrainError> {
        if self.stepper.stopped(&self.config) {
            return Err(self.stepper.stop_error());
        }
        Ok(self.stepper.step_index())
    }

    /// Steps 4–5 of step `t` ([`Stepper::apply`]) on the model's `params`.
    pub fn apply(&mut self, t: u64, params: &mut [f64], report: LossReport) -> StepOutcome {
        self.stepper.apply(&self.config, t, params, report)
    }

    /// The complete state with the model's parameters `params`.
    pub fn state(&self, params: &[f64]) -> TrainerState {
        self.stepper.state(params, self.par.chunk_rows)
    }

    /// Restores `state` into `params` and the optimizer.
    ///
    /// # Errors
    /// [`TrainError::State`] if the parameter or moment counts or the
    /// chunking differ.
    pub fn restore(&mut self, params: &mut [f64], state: TrainerState) -> Result<(), TrainError> {
        self.stepper.restore(params, state, self.par.chunk_rows)
    }

    /// The metrics record at the current step (see [`crate::trainer`],
    /// "Metrics") of a fresh batch of model samples `xs` of `target` with
    /// their log-weights log p̃ − log q (for an SNF or LRDS: path weights)
    /// and the held-out NLL the model computed (NaN without one); the IMH
    /// acceptance estimate draws its uniforms from stream 3 of the step.
    pub fn record(&self, target: &dyn Target, xs: ArrayView2<'_, f64>, log_w: &[f64], nll: f64) -> MetricsRecord {
        let (config, stepper, data, par) = (&self.config, &self.stepper, &self.data, self.par);
        let t = stepper.step;
        let acceptance_seed = self.root().child(3).child(t);
        let n = log_w.len();
        let ess = ess_normalized(log_w).unwrap_or(f64::NAN);
        let pareto_k = fieldflow_stats::pareto_k(log_w).map_or(f64::NAN, |t| t.k);
        let acceptance = imh_acceptance(log_w, acceptance_seed);
        let rkl_estimate = -log_w.iter().sum::<f64>() / n as f64;
        let covering = match self.covering_threshold {
            Some(th) => {
                let mut lp = Array1::zeros(n);
                target.log_prob_batch(xs, lp.view_mut(), par);
                covering_fraction(lp.as_slice().expect("contiguous"), th)
            }
            None => f64::NAN,
        };
        let (mode_weights, true_weights, tv_distance, collapsed) = match data.modes {
            Some(m) => {
                let w_hat = m.mode_fractions(xs);
                match m.true_weights() {
                    Some(w) => {
                        let tv = total_variation(&w_hat, &w);
                        let c = collapsed(&w_hat, &w, COLLAPSE_FRACTION);
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
            fkl_is: pick(|r| r.fkl_is),
            grad_norm: pick(|r| r.grad_norm),
            lr: config.lr_schedule.lr(config.lr, t),
            beta: config.annealing.beta(t),
            ess,
            pareto_k,
            acceptance,
            nll,
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
