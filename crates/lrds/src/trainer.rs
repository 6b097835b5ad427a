//! Training an [`LrdsModel`] as a [`TrainLoop`]: every step draws
//! `batch_size` fresh paths from the current sampler (stream
//! `seed.child(1).child(t)`), holds them fixed and takes an Adam step on the
//! log-variance loss ([`crate::loss`]) through the shared optimizer side
//! [`Stepper`] (non-finite guard, clipping, learning-rate schedule).
//! Metrics come from a fresh batch of `eval_batch` paths and their exact
//! log weights. The state is the stepper's plain data, so a run resumes
//! bit-identically.

use crate::loss::{log_target, log_variance};
use crate::sampler::LrdsModel;
use fieldflow_core::{Par, Proposal, Seed, Target};
use fieldflow_losses::{
    check_data, Exchange, LossReport, MetricsRecord, SampleMetrics, StepOutcome, Stepper, TrainConfig, TrainData,
    TrainError, TrainLoop, TrainerState,
};

/// Trains an [`LrdsModel`] by the log-variance loss (module docs).
pub struct LrdsTrainer<'a> {
    config: TrainConfig,
    model: LrdsModel,
    target: &'a dyn Target,
    data: TrainData<'a>,
    covering_threshold: Option<f64>,
    stepper: Stepper,
    par: Par,
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
        let covering_threshold = check_data(model.dim(), target, &data, par)?;
        let stepper = Stepper::new(config, model.params.len());
        Ok(LrdsTrainer {
            config: config.clone(),
            model,
            target,
            data,
            covering_threshold,
            stepper,
            par,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &LrdsModel {
        &self.model
    }

    /// The trained model.
    pub fn into_model(self) -> LrdsModel {
        self.model
    }

    /// Loss and gradient of step `t` at the current parameters.
    pub fn evaluate(&self, t: u64) -> LossReport {
        let root = Seed::new(self.config.seed);
        let paths = self
            .model
            .sample_paths(self.config.batch_size, root.child(1).child(t), self.par, true);
        let lp = log_target(self.target, &paths, self.par);
        let r = log_variance(&self.model, &lp, &paths, self.par);
        let n = r.log_w.len() as f64;
        LossReport {
            total: r.loss,
            fkl: f64::NAN,
            rkl: -r.log_w.iter().sum::<f64>() / n,
            sm: f64::NAN,
            grad: r.grad,
            log_w: r.log_w,
        }
    }
}

impl TrainLoop for LrdsTrainer<'_> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        if self.stepper.stopped(&self.config) {
            return Err(self.stepper.stop_error());
        }
        let t = self.stepper.step_index();
        let report = self.evaluate(t);
        Ok(self.stepper.apply(&self.config, t, &mut self.model.params, report))
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
        let t = self.stepper.step_index();
        let root = Seed::new(self.config.seed);
        let paths = self
            .model
            .sample_paths(self.config.eval_batch, root.child(2).child(t), self.par, false);
        let lp = log_target(self.target, &paths, self.par);
        let log_w: Vec<f64> = (&lp - &paths.log_q()).to_vec();
        SampleMetrics {
            xs: paths.x0.view(),
            log_w: &log_w,
            nll: f64::NAN,
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

    fn state(&self) -> TrainerState {
        self.stepper.state(&self.model.params, self.par.chunk_rows)
    }

    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.stepper.restore(&mut self.model.params, state, self.par.chunk_rows)
    }

    fn step_index(&self) -> u64 {
        self.stepper.step_index()
    }

    fn total_rejections(&self) -> u64 {
        self.stepper.total_rejections()
    }

    fn params(&self) -> &[f64] {
        &self.model.params
    }
}
