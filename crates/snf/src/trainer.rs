//! Training an SNF with the same settings, optimizer, guard, metrics and
//! checkpoint state as a plain flow ([`fieldflow_losses::Trainer`]).
//!
//! # The objective
//! An SNF has no tractable log q(x), so of the flow losses only the two that
//! live on path space carry over ([`crate::train`]):
//!
//!   L(θ) = w_fkl · L_ML(θ) + w_rkl · L_KL(θ),
//!
//! * L_ML = E_{x~data, reverse path}[−log N(z) + Σ ΔS] ≥ −E log q_θ(x), the
//!   path maximum likelihood on a data minibatch (the `fkl` term);
//! * L_KL = E_{forward path}[−log w] = KL(path ‖ target path) − log Z, the
//!   path KL on fresh paths (the `rkl` term).
//!
//! Score matching needs ∇ₓ log q_θ and annealing would need the stochastic
//! blocks to sample a tempered target: both are refused with a
//! [`ConfigError`] naming the field.
//!
//! # One step t
//! As for flows: the data minibatch is `batch_size` distinct rows from
//! `seed.child(0).child(t)` ([`fieldflow_losses::minibatch`]); the
//! forward paths of L_KL are driven by `seed.child(1).child(t)`, the
//! reverse paths of L_ML by `seed.child(4).child(t)`; then the shared
//! [`Stepper`] rejects a non-finite loss or gradient (e.g. a diverged
//! Langevin path: [`crate::train`] excludes such rows from the gradient
//! but the loss is then non-finite), clips and applies Adam.
//!
//! # Metrics
//! A fresh batch of `eval_batch` forward paths from `seed.child(2).child(t)`
//! gives the ESS, the IMH acceptance estimate (uniforms from
//! `seed.child(3).child(t)`), the RKL estimate −mean log w, the mode
//! figures; `nll` is the mean **path NLL** of the held-out rows (reverse
//! paths from the fixed stream `seed.child(5)`, so consecutive records are
//! comparable), an upper bound of the true NLL that equals it when every
//! stage is deterministic.

use crate::{HessianVector, Snf};
use fieldflow_core::{ConfigError, Par};
use fieldflow_flows::{FlowLayer, Layer};
use fieldflow_losses::{
    minibatch, Annealing, Exchange, Loss, LossError, LossReport, MetricsRecord, StepOutcome, TrainConfig, TrainData,
    TrainError, TrainLoop, TrainerParts, TrainerState,
};

/// Trains an [`Snf`] (module docs).
pub struct SnfTrainer<'a, T, L: Layer = FlowLayer> {
    parts: TrainerParts<'a>,
    loss: Loss,
    snf: Snf<T, L>,
}

impl<'a, T: HessianVector, L: Layer> SnfTrainer<'a, T, L> {
    /// A trainer starting from the SNF's current parameters.
    ///
    /// # Errors
    /// An invalid `config`, a score-matching term (`loss.w_sm`), FKL on
    /// flow samples (`loss.w_fkl_is`), an FKL decay or an annealing
    /// schedule (`annealing`), data needed by the path ML but
    /// absent, data of the wrong width or empty.
    pub fn new(config: &TrainConfig, snf: Snf<T, L>, data: TrainData<'a>, par: Par) -> Result<Self, TrainError> {
        let loss = config.validate()?;
        if loss.w_sm > 0.0 {
            return Err(ConfigError::new(
                "loss.w_sm",
                loss.w_sm,
                "score matching needs the model's score ∇log q(x), which a stochastic normalizing flow \
                 does not have: use fkl (path ML), rkl (path KL) or weights of the two",
            )
            .into());
        }
        if loss.w_fkl_is > 0.0 || config.fkl_decay.is_some() {
            let (key, v) = if loss.w_fkl_is > 0.0 {
                ("loss.w_fkl_is", loss.w_fkl_is.to_string())
            } else {
                ("fkl_decay", format!("{:?}", config.fkl_decay))
            };
            return Err(ConfigError::new(
                key,
                v,
                "not supported for stochastic normalizing flows (their density is not available at fixed x):                  use fkl (path ML), rkl (path KL) or weights of the two",
            )
            .into());
        }
        if config.annealing != Annealing::Constant {
            return Err(ConfigError::new(
                "annealing",
                format!("{:?}", config.annealing),
                "not supported for stochastic normalizing flows (their blocks sample the target at β = 1)",
            )
            .into());
        }
        let parts = TrainerParts::new(config, snf.dim(), snf.n_params(), snf.target(), data, par)?;
        if loss.w_fkl > 0.0 && parts.data.train.is_none() {
            return Err(LossError::MissingData { term: "fkl" }.into());
        }
        Ok(SnfTrainer { parts, loss, snf })
    }

    /// The SNF being trained.
    pub fn snf(&self) -> &Snf<T, L> {
        &self.snf
    }

    /// Consumes the trainer, returning the SNF.
    pub fn into_snf(self) -> Snf<T, L> {
        self.snf
    }

    /// Loss and gradient of step `t` at the current parameters (no update).
    pub fn evaluate(&self, t: u64) -> LossReport {
        let root = self.parts.root();
        let n_params = self.snf.n_params();
        let mut report = LossReport {
            total: 0.0,
            fkl: f64::NAN,
            rkl: f64::NAN,
            sm: f64::NAN,
            fkl_is: f64::NAN,
            grad: vec![0.0; n_params],
            log_w: Vec::new(),
        };
        let add = |weight: f64, g: &[f64], value: f64, report: &mut LossReport| {
            report.total += weight * value;
            report.grad.iter_mut().zip(g).for_each(|(a, b)| *a += weight * b);
        };
        if self.loss.w_fkl > 0.0 {
            let x = self.parts.data.train.as_ref().expect("checked in new");
            let batch = minibatch(x, self.parts.config.batch_size, root.child(0).child(t));
            let mut g = vec![0.0; n_params];
            let r = self
                .snf
                .path_ml_grad_batch(root.child(4).child(t), batch.view(), &mut g, self.parts.par);
            report.fkl = r.loss;
            add(self.loss.w_fkl, &g, r.loss, &mut report);
        }
        if self.loss.w_rkl > 0.0 {
            let mut g = vec![0.0; n_params];
            let r = self.snf.path_kl_grad_batch(
                root.child(1).child(t),
                self.parts.config.batch_size,
                &mut g,
                self.parts.par,
            );
            report.rkl = r.loss;
            add(self.loss.w_rkl, &g, r.loss, &mut report);
            report.log_w = r.per_row.to_vec();
        }
        report
    }
}

impl<T: HessianVector, L: Layer> TrainLoop for SnfTrainer<'_, T, L> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        let t = self.parts.next_step()?;
        let report = self.evaluate(t);
        Ok(self.parts.apply(t, self.snf.params_mut(), report))
    }

    /// One process steps as [`TrainLoop::step`]; the path losses do not
    /// share their batch among processes yet.
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        if exchange.size() > 1 {
            return Err(TrainError::NotDistributed("a stochastic normalizing flow"));
        }
        self.step()
    }

    fn metrics(&mut self) -> MetricsRecord {
        let t = self.parts.step_index();
        let root = self.parts.root();
        let paths = self
            .snf
            .sample_paths(root.child(2).child(t), self.parts.config.eval_batch, self.parts.par);
        let nll = match &self.parts.data.held_out {
            Some(h) => {
                let r = self.snf.reverse_paths(root.child(5), h.view(), self.parts.par);
                r.path_nll.mean().unwrap_or(f64::NAN)
            }
            None => f64::NAN,
        };
        let log_w = paths.log_w.to_vec();
        self.parts.record(self.snf.target(), paths.xs.view(), &log_w, nll)
    }

    fn state(&self) -> TrainerState {
        self.parts.state(self.snf.params())
    }

    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.parts.restore(self.snf.params_mut(), state)
    }

    fn step_index(&self) -> u64 {
        self.parts.step_index()
    }

    fn total_rejections(&self) -> u64 {
        self.parts.stepper.total_rejections()
    }

    fn params(&self) -> &[f64] {
        self.snf.params()
    }
}
