//! Training an [`LrdsModel`] as a [`TrainLoop`]: every step draws
//! `batch_size` fresh paths from the current sampler (stream
//! `seed.child(1).child(t)`; with several parts, path i from part i mod
//! parts), holds them fixed and takes an Adam step on the log-variance loss
//! ([`crate::loss`]; part j against π̃ ρⱼ) through the shared optimizer side
//! [`Stepper`] (non-finite guard, clipping, learning-rate schedule).
//! Metrics come from a fresh batch of `eval_batch` paths and their exact
//! log weights. The state is the stepper's plain data, so a run resumes
//! bit-identically.

use crate::loss::{log_target, log_variance};
use crate::sampler::{LrdsModel, PathDraw, Paths};
use fieldflow_core::{Par, Proposal, Target};
use fieldflow_losses::{
    Exchange, LossReport, MetricsRecord, StepOutcome, TrainConfig, TrainData, TrainError, TrainLoop, TrainerParts,
    TrainerState,
};
use ndarray::Array1;

/// Trains an [`LrdsModel`] by the log-variance loss (module docs).
pub struct LrdsTrainer<'a> {
    parts: TrainerParts<'a>,
    model: LrdsModel,
    target: &'a dyn Target,
}

impl<'a> LrdsTrainer<'a> {
    /// A trainer at step 0. The loss settings of `config` are not used (the
    /// objective is the log variance); its `lr`, schedule, `batch_size`,
    /// `eval_batch`, clipping and seed are.
    ///
    /// # Errors
    /// Invalid settings, a target of another dimension, or data of the
    /// wrong width.
    pub fn new(
        config: &TrainConfig,
        model: LrdsModel,
        target: &'a dyn Target,
        data: TrainData<'a>,
        par: Par,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        if target.dim() != model.dim() {
            return Err(fieldflow_core::ConfigError::new(
                "target.dim",
                target.dim(),
                format!("the LRDS reference has dimension {}", model.dim()),
            )
            .into());
        }
        let parts = TrainerParts::new(config, model.dim(), model.params.len(), target, data, par)?;
        Ok(LrdsTrainer { parts, model, target })
    }

    /// The model being trained.
    pub fn model(&self) -> &LrdsModel {
        &self.model
    }

    /// The trained model.
    pub fn into_model(self) -> LrdsModel {
        self.model
    }

    /// `n` paths of stream `stream` of step `t` drawn as `draw`, and
    /// log p̃ at their ends.
    fn paths(&self, n: usize, stream: u64, t: u64, draw: PathDraw) -> (Paths, Array1<f64>) {
        let seed = self.parts.root().child(stream).child(t);
        let paths = self.model.sample_paths(n, seed, self.parts.par, draw);
        let lp = log_target(self.target, &paths, self.parts.par);
        (paths, lp)
    }

    /// Loss and gradient of step `t` at the current parameters (each part
    /// against its own target π̃ ρⱼ).
    pub fn evaluate(&self, t: u64) -> LossReport {
        let (paths, lp) = self.paths(self.parts.config.batch_size, 1, t, PathDraw::Training);
        let lp = lp + self.model.log_share(&paths);
        let r = log_variance(&self.model, &lp, &paths, self.parts.par);
        let n = r.log_w.len() as f64;
        LossReport {
            total: r.loss,
            fkl: f64::NAN,
            rkl: -r.log_w.iter().sum::<f64>() / n,
            sm: f64::NAN,
            fkl_is: f64::NAN,
            grad: r.grad,
            log_w: r.log_w,
        }
    }
}

impl TrainLoop for LrdsTrainer<'_> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        let t = self.parts.next_step()?;
        let report = self.evaluate(t);
        Ok(self.parts.apply(t, &mut self.model.params, report))
    }

    /// One process steps as [`TrainLoop::step`]; the path batch is not
    /// shared among processes.
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        if exchange.size() > 1 {
            return Err(TrainError::NotDistributed("an LRDS model"));
        }
        self.step()
    }

    fn metrics(&mut self) -> MetricsRecord {
        let (paths, lp) = self.paths(
            self.parts.config.eval_batch,
            2,
            self.parts.step_index(),
            PathDraw::Proposal,
        );
        let log_w: Vec<f64> = (&lp - &paths.log_q()).to_vec();
        self.parts.record(self.target, paths.x0.view(), &log_w, f64::NAN)
    }

    fn state(&self) -> TrainerState {
        self.parts.state(&self.model.params)
    }

    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.parts.restore(&mut self.model.params, state)
    }

    fn step_index(&self) -> u64 {
        self.parts.step_index()
    }

    fn total_rejections(&self) -> u64 {
        self.parts.stepper.total_rejections()
    }

    fn params(&self) -> &[f64] {
        &self.model.params
    }
}
