//! The settings of a training run ([`TrainConfig`], `[train]` in a TOML
//! config) and the samples it may use ([`TrainData`]): their checks (with
//! the base-scale check of spline flows trained by score matching on flow
//! samples, [`check_spline_base`]), the covering threshold of the held-out
//! samples and the data minibatch of a step.

use crate::loss::{Loss, LossConfig, LossError, SmOn};
use crate::optim::AdamConfig;
use crate::records::TrainError;
use crate::schedule::{Annealing, FklDecay, LrSchedule};
use fieldflow_core::{ConfigError, Par, Seed, Target};
use fieldflow_flows::{CouplingKind, FlowConfig};
use fieldflow_stats::diagnostics::{covering_threshold, COVERING_QUANTILE};
use fieldflow_targets::Modes;
use ndarray::{Array1, Array2, Axis};
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
/// preset = "scorenf"             # fkl, rkl, sm, scorenf, rkl_sm
/// sm_cauchy_scale = 10.0         # optional: damped SM (losses::loss docs)
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
///
/// [fkl_decay]                    # optional: w_fkl × 1 → 0.01 over steps 2500..3000
/// start = 2500
/// steps = 500
/// factor = 0.01
///
/// [[curriculum]]                 # lattice flows: first steps on smaller lattices
/// lattice = [6, 6]
/// steps = 1000
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
    /// A decay of the FKL weight after the mode weights are set (none if
    /// absent; [`FklDecay`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fkl_decay: Option<FklDecay>,
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
    /// Wall-clock budget of one invocation, in minutes: the run ends
    /// normally (final metrics record and checkpoint) at the first step
    /// that finds it spent, before `steps` if need be; `--resume` continues
    /// toward `steps` with a fresh budget. The parameters at step t do not
    /// depend on the budget, only how far a run gets does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<f64>,
    /// A lattice curriculum (docs/THEORY.md §5.7): the first stages of
    /// training on smaller lattices of the same couplings, in order; the
    /// remaining steps on the target's own lattice. Only for losses without
    /// a data term (the data live on the target's lattice) and flows whose
    /// parameters do not depend on the lattice size (convolutional
    /// conditioners); the caller builds the stage targets ([`crate::Curriculum`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curriculum: Vec<CurriculumStage>,
}

/// One stage of a lattice curriculum: `steps` training steps on a lattice
/// of extents `lattice` (the target's couplings otherwise unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumStage {
    /// Lattice extents of the stage.
    pub lattice: Vec<usize>,
    /// Steps on it (≥ 1).
    pub steps: u64,
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
            fkl_decay: None,
            clip_grad_norm: None,
            max_consecutive_rejections: default_max_rejections(),
            metrics_every: default_metrics_every(),
            eval_batch: default_eval_batch(),
            seed: 0,
            max_minutes: None,
            curriculum: Vec::new(),
        }
    }

    /// Checks every field and resolves the loss.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending field (`batch_size`,
    /// `steps`, `lr`, `clip_grad_norm`, `max_consecutive_rejections`,
    /// `metrics_every`, `max_minutes`, `eval_batch`, `loss.*`, `lr_schedule.*`,
    /// `optimizer.*`, `annealing.*`, `fkl_decay.*`).
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
        if let Some(d) = &self.fkl_decay {
            d.validate()?;
            if loss.w_fkl == 0.0 {
                return Err(ConfigError::new(
                    "fkl_decay",
                    "w_fkl = 0",
                    "decays the FKL term, but the loss has none",
                ));
            }
        }
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
        if let Some(m) = self.max_minutes {
            if !(m.is_finite() && m > 0.0) {
                return Err(ConfigError::new("max_minutes", m, "must be finite and > 0"));
            }
        }
        if self.eval_batch < 2 {
            return Err(ConfigError::new("eval_batch", self.eval_batch, "must be >= 2"));
        }
        self.validate_curriculum(&loss)?;
        Ok(loss)
    }
}

impl TrainConfig {
    /// The curriculum's checks: stages of ≥ 1 step on non-empty lattices,
    /// fewer steps in all than `steps` (the target's own lattice must get
    /// some), and a loss without a data term.
    fn validate_curriculum(&self, loss: &Loss) -> Result<(), ConfigError> {
        if self.curriculum.is_empty() {
            return Ok(());
        }
        for (k, stage) in self.curriculum.iter().enumerate() {
            if stage.steps == 0 {
                return Err(ConfigError::new(format!("curriculum[{k}].steps"), 0, "must be >= 1"));
            }
            if stage.lattice.is_empty() || stage.lattice.contains(&0) {
                return Err(ConfigError::new(
                    format!("curriculum[{k}].lattice"),
                    format!("{:?}", stage.lattice),
                    "must list extents >= 1",
                ));
            }
        }
        let before = self.curriculum_steps();
        if before >= self.steps {
            return Err(ConfigError::new(
                "curriculum",
                format!("{before} steps"),
                format!(
                    "must be fewer than steps = {} (the target's lattice needs some)",
                    self.steps
                ),
            ));
        }
        if loss.needs_data() {
            return Err(ConfigError::new(
                "curriculum",
                format!("{} stages", self.curriculum.len()),
                "needs a loss without a data term (the data live on the target's lattice): use rkl",
            ));
        }
        Ok(())
    }

    /// The loss of step `t`: `loss` (resolved from this configuration) with
    /// the FKL weights of the `fkl_decay` crossfade, w_fkl·φ(t) on the data
    /// and w_fkl_is·(1 − φ(t)) on the flow's samples ([`FklDecay`]);
    /// `loss` itself without a decay.
    pub fn loss_at(&self, mut loss: Loss, t: u64) -> Loss {
        if let Some(d) = &self.fkl_decay {
            let phi = d.factor(t);
            loss.w_fkl *= phi;
            loss.w_fkl_is *= 1.0 - phi;
        }
        loss
    }

    /// Steps of all curriculum stages together (the step at which training
    /// reaches the target's own lattice).
    pub fn curriculum_steps(&self) -> u64 {
        self.curriculum.iter().map(|s| s.steps).sum()
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
        covering_threshold(lp.as_slice().expect("contiguous"), COVERING_QUANTILE)
    }))
}

/// Smallest base standard deviation, as a fraction of the training data's
/// scale, with which spline couplings may be trained by score matching on
/// the flow's own samples ([`check_spline_base`]).
pub const SPLINE_SM_MIN_BASE_FRACTION: f64 = 0.5;

/// Refuses spline couplings trained by score matching on the flow's own
/// samples from a base much narrower than the data: `flow.base_sigma` must
/// be at least [`SPLINE_SM_MIN_BASE_FRACTION`] × S, S the largest standard
/// deviation of a coordinate of the training data (no check without data).
///
/// Why (docs/THEORY.md §4.9, docs/RESULTS.md "Spline couplings and score
/// matching on flow samples"): a spline is the identity outside
/// [−B, B] and meets the diagonal at ±B with slope 1, so unlike an affine
/// coupling it cannot widen a coordinate as a whole. A flow that must
/// widen its base several-fold (MOG-4, S = 4.0, from N(0, 1)) pushes mass
/// outward inside [−B, B] and piles it up just inside the bound, in bins
/// where log T' reaches 3–7 per layer. There the flow's score is 10²–10⁹
/// while the target's is ≈ 1, so SM evaluated on those samples is
/// 10²–10¹⁵, its gradient swamps FKL and RKL (every step is clipped), and
/// training collapses whatever B (6, 10, 12, 20) or learning rate. On
/// MOG-4 (the annealed `scorenf` recipe, IMH TV / ESS): base σ = 1
/// and 1.5 (σ/S = 0.25, 0.38) collapse (TV 0.19–0.74, ESS ≤ 0.007); σ = 2,
/// 3, 4 (σ/S = 0.5–1) train (TV ≤ 0.006, ESS 0.72–0.88). FKL and SM on
/// data points do not see the pile-up (no data lie in it), so they are
/// not checked; nor are flows built without a [`FlowConfig`].
///
/// # Errors
/// `flow.base_sigma` with the value to use instead.
pub fn check_spline_base(
    flow: Option<&FlowConfig>,
    loss: &Loss,
    train: Option<&Array2<f64>>,
) -> Result<(), ConfigError> {
    let (Some(flow), Some(x)) = (flow, train) else {
        return Ok(());
    };
    if !matches!(flow.coupling, CouplingKind::Spline(_)) || loss.w_sm == 0.0 || loss.sm_on != SmOn::Flow {
        return Ok(());
    }
    let scale = x.axis_iter(Axis(1)).map(|c| c.std(0.0)).fold(0.0f64, f64::max);
    let min = SPLINE_SM_MIN_BASE_FRACTION * scale;
    if flow.base_sigma < min {
        return Err(ConfigError::new(
            "flow.base_sigma",
            flow.base_sigma,
            format!(
                "spline couplings trained by score matching on flow samples need a base about as wide as the data \
                 (largest coordinate std {scale:.3}): a spline is the identity outside ±tail_bound, so a narrow base \
                 piles the flow's mass up at the bound and training collapses; set base_sigma >= {min:.3} \
                 (e.g. {scale:.3})"
            ),
        ));
    }
    Ok(())
}

/// The data minibatch of one step: `b` distinct rows of `x` drawn from
/// `seed` (all rows, in order, if there are no more than `b`).
pub fn minibatch(x: &Array2<f64>, b: usize, seed: Seed) -> Array2<f64> {
    let n = x.nrows();
    if b >= n {
        x.clone()
    } else {
        let mut rng = seed.rng();
        let idx = rand::seq::index::sample(&mut rng, n, b).into_vec();
        x.select(Axis(0), &idx)
    }
}
