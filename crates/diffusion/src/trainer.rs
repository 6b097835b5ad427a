//! A diffusion model as a model kind of the training and sampling
//! pipeline (the CLI's `[diffusion]` section): [`DiffusionConfig`] (score
//! architecture, time grid, forward process, reverse sampler),
//! [`DiffusionModel`] (a [`Proposal`] with an exact normalized density:
//! IMH and importance sampling correct its bias) and [`DiffusionTrainer`]
//! (a [`TrainLoop`]: Adam on denoising score matching over minibatches of
//! the training ensemble, with the shared optimizer side [`Stepper`] — the
//! non-finite guard, clipping, learning-rate schedule — and metrics from a
//! fresh batch of the reverse sampler against the target).

use crate::dsm;
use crate::model::{spectrum_of, Architecture, FieldScore, ScoreModel, TimeGrid};
use crate::oracle::GaussianField;
use crate::reverse::{Integrator, ReverseSampler};
use crate::schedule::NoiseSchedule;
use crate::spectrum::SpectrumWork;
use fieldflow_core::{ConfigError, Par, Proposal, ProposalDensity, Seed, Target};
use fieldflow_losses::{
    held_out_nll, minibatch, Exchange, LossReport, MetricsRecord, StepOutcome, TrainConfig, TrainData, TrainError,
    TrainLoop, TrainerParts, TrainerState,
};
use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};

/// The architecture of a diffusion model (`[diffusion]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionConfig {
    /// Lattice extents (filled in from the target).
    #[serde(default)]
    pub shape: Vec<usize>,
    /// Score parametrization.
    #[serde(default = "default_architecture")]
    pub architecture: Architecture,
    /// Time levels of the score.
    #[serde(default = "default_levels")]
    pub levels: usize,
    /// Where sampling stops (and the first level).
    #[serde(default = "default_t_min")]
    pub t_min: f64,
    /// Forward process.
    #[serde(default)]
    pub schedule: NoiseSchedule,
    /// Reverse-time discretization.
    #[serde(default = "default_integrator")]
    pub integrator: Integrator,
    /// Reverse-time steps per draw.
    #[serde(default = "default_steps")]
    pub steps: usize,
}

fn default_architecture() -> Architecture {
    Architecture::local(1)
}
fn default_levels() -> usize {
    16
}
fn default_t_min() -> f64 {
    1e-3
}
fn default_integrator() -> Integrator {
    Integrator::ProbabilityFlowHeun
}
fn default_steps() -> usize {
    100
}

impl DiffusionConfig {
    /// The defaults for a lattice of extents `shape`.
    pub fn for_lattice(shape: &[usize]) -> Self {
        DiffusionConfig {
            shape: shape.to_vec(),
            architecture: default_architecture(),
            levels: default_levels(),
            t_min: default_t_min(),
            schedule: NoiseSchedule::default(),
            integrator: default_integrator(),
            steps: default_steps(),
        }
    }

    /// The untrained model (the score models have deterministic
    /// initializations, so no seed).
    ///
    /// # Errors
    /// Naming the offending field.
    pub fn build(&self) -> Result<DiffusionModel, ConfigError> {
        self.build_unnamed().map_err(config_key)
    }

    fn build_unnamed(&self) -> Result<DiffusionModel, ConfigError> {
        self.schedule.validate()?;
        let sampler = self.sampler();
        sampler.validate()?;
        if !self.architecture.is_linear() && self.integrator != Integrator::ProbabilityFlowHeun {
            return Err(ConfigError::new(
                "integrator",
                format!("{:?}", self.integrator),
                "a non-linear score (local_cubic, local_net) has a log q only through the probability-flow ODE: \
                 use probability_flow_heun",
            ));
        }
        let grid = TimeGrid {
            t_min: self.t_min,
            levels: self.levels,
        };
        let model = ScoreModel::with_schedule(self.architecture, grid, spectrum_of(&self.shape)?, &self.schedule)?;
        Ok(DiffusionModel {
            config: self.clone(),
            score: model,
            sampler,
        })
    }

    /// The model with trained parameters `params`.
    ///
    /// # Errors
    /// As [`DiffusionConfig::build`], or a wrong number of parameters.
    pub fn rebuild(&self, params: Vec<f64>) -> Result<DiffusionModel, ConfigError> {
        let mut m = self.build()?;
        if params.len() != m.score.params.len() {
            return Err(ConfigError::new(
                "diffusion.params",
                params.len(),
                format!("the architecture has {} parameters", m.score.params.len()),
            ));
        }
        m.score.params = params;
        Ok(m)
    }

    fn sampler(&self) -> ReverseSampler {
        ReverseSampler {
            schedule: self.schedule,
            integrator: self.integrator,
            steps: self.steps,
            t_min: self.t_min,
        }
    }
}

/// Names a validation error by the key of `[diffusion]` that holds the
/// value (the parts validate as `grid.*`, `sampler.*`, `model.*`).
fn config_key(mut e: ConfigError) -> ConfigError {
    let renamed = match e.field.as_str() {
        "grid.levels" => "levels",
        "grid.t_min" | "sampler.t_min" => "t_min",
        "sampler.steps" => "steps",
        "model.range" => "architecture.range",
        "model.init" => "architecture.init",
        "model.channels" => "architecture.channels",
        "model.net_range" => "architecture.net_range",
        _ => return e,
    };
    e.field = renamed.to_string();
    e
}

/// A trained (or untrained) diffusion model with its sampler.
#[derive(Debug, Clone)]
pub struct DiffusionModel {
    config: DiffusionConfig,
    score: ScoreModel,
    sampler: ReverseSampler,
}

impl DiffusionModel {
    /// The architecture.
    pub fn config(&self) -> &DiffusionConfig {
        &self.config
    }

    /// The score model.
    pub fn score(&self) -> &ScoreModel {
        &self.score
    }

    /// The reverse sampler.
    pub fn sampler(&self) -> &ReverseSampler {
        &self.sampler
    }
}

impl Proposal for DiffusionModel {
    fn dim(&self) -> usize {
        self.config.shape.iter().product()
    }

    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, mut log_q: ArrayViewMut1<f64>, par: Par) {
        let g = self.sampler.sample(&self.score, xs.nrows(), seed, par);
        xs.assign(&g.xs);
        log_q.assign(&g.log_q);
    }
}

impl DiffusionModel {
    /// Whether log q can be evaluated at any x (linear scores: the generated
    /// law is a known Gaussian); a non-linear score only has the log q of
    /// its own draws.
    pub fn has_density(&self) -> bool {
        self.score.is_linear()
    }
}

/// Exact for a linear score: the generated law is the Gaussian with the
/// eigenvalues of [`ReverseSampler::generated_variances`]; NaN for a
/// non-linear one ([`DiffusionModel::has_density`]).
impl ProposalDensity for DiffusionModel {
    fn log_q_batch(&self, xs: ArrayView2<f64>, mut out: ArrayViewMut1<f64>, par: Par) {
        if !self.has_density() {
            out.fill(f64::NAN);
            return;
        }
        let var = self.sampler.generated_variances(&self.score);
        let spectrum = self.score.spectrum();
        par.rows_to_values(xs, out, |_, _, rows, mut lq| {
            let mut work = SpectrumWork::default();
            let mut x = vec![0.0; var.len()];
            for (row, l) in rows.axis_iter(Axis(0)).zip(lq.iter_mut()) {
                x.iter_mut().zip(row).for_each(|(a, b)| *a = *b);
                *l = GaussianField::gaussian_log_density(spectrum, &var, &x, &mut work);
            }
        });
    }
}

/// Trains a [`DiffusionModel`] by denoising score matching.
pub struct DiffusionTrainer<'a> {
    parts: TrainerParts<'a>,
    model: DiffusionModel,
    target: &'a dyn Target,
}

impl<'a> DiffusionTrainer<'a> {
    /// A trainer at step 0. The loss settings of `config` are not used (the
    /// objective is DSM); its `lr`, schedule, `batch_size`, `eval_batch`,
    /// clipping and seed are.
    ///
    /// # Errors
    /// Invalid settings, no training data, or data of the wrong width.
    pub fn new(
        config: &TrainConfig,
        model: DiffusionModel,
        target: &'a dyn Target,
        data: TrainData<'a>,
        par: Par,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        if data.train.is_none() {
            return Err(ConfigError::new(
                "data",
                "none",
                "a diffusion model learns by denoising score matching on target samples: give an ensemble \
                 (--data, data.file) or data.exact = true",
            )
            .into());
        }
        let parts = TrainerParts::new(config, model.dim(), model.score.params.len(), target, data, par)?;
        Ok(DiffusionTrainer { parts, model, target })
    }

    /// The model being trained.
    pub fn model(&self) -> &DiffusionModel {
        &self.model
    }

    /// DSM loss and gradient of step `t` at the current parameters.
    pub fn evaluate(&self, t: u64) -> LossReport {
        let root = self.parts.root();
        let x = self.parts.data.train.as_ref().expect("checked in new");
        let batch = minibatch(x, self.parts.config.batch_size, root.child(0).child(t));
        let (loss, grad) = dsm::loss_and_gradient(
            &self.model.score,
            &self.model.config.schedule,
            batch.view(),
            root.child(1).child(t),
            self.parts.par,
        );
        LossReport {
            total: loss,
            fkl: f64::NAN,
            rkl: f64::NAN,
            sm: f64::NAN,
            fkl_is: f64::NAN,
            grad,
            log_w: Vec::new(),
        }
    }
}

impl TrainLoop for DiffusionTrainer<'_> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        let t = self.parts.next_step()?;
        let report = self.evaluate(t);
        Ok(self.parts.apply(t, &mut self.model.score.params, report))
    }

    /// One process steps as [`TrainLoop::step`]; DSM does not share its
    /// batch among processes yet.
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        if exchange.size() > 1 {
            return Err(TrainError::NotDistributed("a diffusion model"));
        }
        self.step()
    }

    fn metrics(&mut self) -> MetricsRecord {
        let t = self.parts.step_index();
        let root = self.parts.root();
        let n = self.parts.config.eval_batch;
        let g = self
            .model
            .sampler
            .sample(&self.model.score, n, root.child(2).child(t), self.parts.par);
        let mut log_p = ndarray::Array1::zeros(n);
        self.target
            .log_prob_batch(g.xs.view(), log_p.view_mut(), self.parts.par);
        let log_w: Vec<f64> = log_p.iter().zip(&g.log_q).map(|(p, q)| p - q).collect();
        let nll = if self.model.has_density() {
            held_out_nll(&self.model, self.parts.data.held_out.as_ref(), self.parts.par)
        } else {
            f64::NAN
        };
        self.parts.record(self.target, g.xs.view(), &log_w, nll)
    }

    fn state(&self) -> TrainerState {
        self.parts.state(&self.model.score.params)
    }

    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.parts.restore(&mut self.model.score.params, state)
    }

    fn step_index(&self) -> u64 {
        self.parts.step_index()
    }

    fn total_rejections(&self) -> u64 {
        self.parts.stepper.total_rejections()
    }

    fn params(&self) -> &[f64] {
        &self.model.score.params
    }
}
