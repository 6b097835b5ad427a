//! The models a run can train and sample with, in one place: a normalizing
//! flow and a stochastic normalizing flow (SNF: flow layers with Langevin /
//! MALA / Metropolis blocks in between, crates/snf).
//!
//! [`ModelConfig`] is the only enum over model kinds: it parses a run's
//! `[flow]` section, builds the kind's trainer ([`ModelConfig::trainer`],
//! a [`TrainLoop`]) and rebuilds a trained model from a model file
//! ([`Sampler::from_parts`]) as a [`TrainedModel`] trait object, which says
//! what the model can do (draw with a log weight; a normalized density or
//! not). Commands never match on the kind, so a new model kind is a library
//! module, a variant here and its arms in these few methods.
//!
//! A diffusion model (crates/diffusion; lattice targets) is the
//! `[diffusion]` section instead, `fieldflow_diffusion::DiffusionConfig`:
//!
//! ```toml
//! [diffusion]
//! architecture = { kind = "local", range = 1 }   # or one_layer, two_layer { init },
//!                                                # local { range, gaussian = true },
//!                                                # local_cubic { range }, local_net
//!                                                # { range, channels, net_range }
//! levels = 16                                    # time levels of the score
//! t_min = 1e-3
//! schedule = { kind = "variance_preserving", beta_min = 0.1, beta_max = 20.0 }
//! integrator = "probability_flow_heun"           # or euler_maruyama, exponential_euler
//! steps = 100                                    # reverse-time steps per draw
//! ```
//!
//! An LRDS sampler (crates/lrds: a Gaussian-mixture reference fitted by EM
//! to MALA walkers, a learned drift correction, exact path weights) is the
//! `[lrds]` section, `fieldflow_lrds::LrdsConfig`; the fitted reference is
//! stored in the model file's config (`[lrds.reference]`), so a resumed run
//! and `sample` use the same one:
//!
//! ```toml
//! [lrds]
//! steps = 32                 # reverse steps K
//! hidden = [64, 64]          # correction network
//! components = 2             # EM components (default: the target's modes)
//! walkers = 1024             # MALA walkers from N(0, walker_sigma² I) …
//! walker_sigma = 3.0
//! walker_steps = 200         # … and their updates
//! em_restarts = 5            # EM seedings (the best likelihood is kept)
//! per_component = false      # true: one correction per component, trained
//!                            # against its own share of the target
//! frozen = []                # with per_component: components left untrained
//! ```
//!
//! In a config flows and SNFs are the `[flow]` section; an SNF is a flow whose section
//! also lists `stages` (and optionally a λ `schedule`):
//!
//! ```toml
//! [flow]                       # any FlowConfig keys, or none for the default architecture
//! stages = [
//!   { flow = { n_layers = 4 } },
//!   { langevin = { steps = 10, eps = 0.01, mala = true } },
//!   { flow = { n_layers = 4 } },
//! ]
//! schedule = "linear"          # or { list = [1.0] }: λ of each stochastic block
//! ```
//!
//! The keys given replace those of the target's default architecture
//! ([`default_flow`]), so `[flow] n_layers = 12` alone is
//! a complete section; inside `conditioner = { … }` too (`conditioner =
//! { hidden = [16, 16] }` keeps the default's kind, kernel and activations); an SNF without `n_layers` gets the sum of its flow
//! stages' layers. In a model file the architecture JSON is the `FlowConfig` or the
//! `SnfConfig` (which has a top-level `stages`).

use crate::config::one_line;
use crate::mpi_dist::Dist;
use crate::target::RunTarget;
use anyhow::{bail, Result};
use fieldflow_core::Target;
use fieldflow_core::{Par, Proposal, ProposalDensity, Seed};
use fieldflow_diffusion::{DiffusionConfig, DiffusionModel, DiffusionTrainer};
use fieldflow_flows::{Flow, FlowConfig, FlowMixture, Locate, MixtureConfig};
use fieldflow_losses::{choose_components, Curriculum, MixtureTrainer, TrainConfig, TrainData, TrainLoop, Trainer};
use fieldflow_lrds::{LrdsConfig, LrdsModel, LrdsTrainer};
use fieldflow_snf::{PathProposal, Snf, SnfConfig, SnfTrainer, StageConfig};
use fieldflow_stats::kmeans::KChoice;
use ndarray::{Array2, ArrayViewMut1, ArrayViewMut2};

/// The architecture of a run's model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// A normalizing flow.
    Flow(FlowConfig),
    /// A stochastic normalizing flow.
    Snf(SnfConfig),
    /// A score-based diffusion model (the `[diffusion]` section).
    Diffusion(DiffusionConfig),
    /// A mixture of flows, one per mode (`[flow] mixture = {…}`).
    Mixture(MixtureConfig),
    /// An LRDS sampler (the `[lrds]` section) with its fitted reference.
    Lrds(LrdsConfig),
}

/// The stream under the run's seed of the LRDS reference fit.
const LRDS_REFERENCE_STREAM: u64 = 0x1d5;

/// Keys of `[flow]` that make it an SNF.
const SNF_KEYS: [&str; 2] = ["stages", "schedule"];

impl ModelConfig {
    /// The architecture from a run's `[flow]`, `[diffusion]` or `[lrds]`
    /// section (at most one of them; none: the target's default flow). An
    /// LRDS section without a `reference` gets one fitted now (walkers and
    /// EM from `seed`).
    pub fn from_sections(
        flow: Option<&toml::Value>,
        diffusion: Option<&toml::Value>,
        lrds: Option<&toml::Value>,
        target: &RunTarget,
        seed: u64,
    ) -> Result<Self> {
        if let Some(section) = lrds {
            if flow.is_some() || diffusion.is_some() {
                bail!("lrds: a run trains one model; give one of [flow], [diffusion], [lrds]");
            }
            let mut cfg: LrdsConfig = section
                .clone()
                .try_into()
                .map_err(|e| anyhow::anyhow!("lrds: {}", one_line(&e.to_string())))?;
            cfg.fit_reference(
                target.as_target(),
                target.modes(),
                Seed::new(seed).child(LRDS_REFERENCE_STREAM),
            )
            .map_err(|e| anyhow::anyhow!("lrds.{e}"))?;
            let model = cfg.build(Seed::new(seed)).map_err(|e| anyhow::anyhow!("lrds.{e}"))?;
            if model.dim() != target.as_target().dim() {
                bail!(
                    "lrds.reference: dimension {} differs from the target's {}",
                    model.dim(),
                    target.as_target().dim()
                );
            }
            return Ok(ModelConfig::Lrds(cfg));
        }
        let Some(section) = diffusion else {
            return Self::from_section(flow, target);
        };
        if flow.is_some() {
            bail!("diffusion: a run trains one model; give [flow] or [diffusion], not both");
        }
        let RunTarget::Phi4(p) = target else {
            bail!("diffusion: the diffusion models are lattice-field models; give a [phi4] target");
        };
        let shape = p.lattice().shape().to_vec();
        let mut table = match section.as_table() {
            Some(t) => t.clone(),
            None => bail!("diffusion: expected a table, found `{section}`"),
        };
        if !table.contains_key("shape") {
            table.insert("shape".into(), toml::Value::try_from(&shape)?);
        }
        let cfg: DiffusionConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow::anyhow!("diffusion: {}", one_line(&e.to_string())))?;
        if cfg.shape != shape {
            bail!(
                "diffusion.shape {:?} does not match the target's lattice {shape:?}",
                cfg.shape
            );
        }
        cfg.build().map_err(|e| anyhow::anyhow!("diffusion.{e}"))?;
        Ok(ModelConfig::Diffusion(cfg))
    }

    /// The config section that holds this architecture.
    pub fn section_name(&self) -> &'static str {
        match self {
            ModelConfig::Diffusion(_) => "diffusion",
            ModelConfig::Lrds(_) => "lrds",
            _ => "flow",
        }
    }

    /// The architecture from a run's `[flow]` section (absent: the default
    /// flow of `target`, see [`default_flow`]).
    pub fn from_section(section: Option<&toml::Value>, target: &RunTarget) -> Result<Self> {
        Self::over_default(section, default_flow(target))
    }

    /// The architecture from a `[flow]` section whose keys replace those of
    /// `default` (absent: `default` itself); for targets that are not a
    /// [`RunTarget`] (a Python function in the Python package).
    pub fn over_default(section: Option<&toml::Value>, default: FlowConfig) -> Result<Self> {
        let Some(section) = section else {
            return Ok(ModelConfig::Flow(default));
        };
        let Some(table) = section.as_table() else {
            bail!("flow: expected a table, found `{section}`");
        };
        let mut flow_keys = table.clone();
        let mixture_keys = flow_keys.remove("mixture");
        let mut snf_keys = toml::Table::new();
        for k in SNF_KEYS {
            if let Some(v) = flow_keys.remove(k) {
                snf_keys.insert(k.into(), v);
            }
        }
        let stages: Option<Vec<StageConfig>> = match snf_keys.get("stages") {
            Some(v) => Some(
                v.clone()
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("flow.stages: {}", one_line(&e.to_string())))?,
            ),
            None if snf_keys.is_empty() => None,
            None => bail!("flow.schedule: given without flow.stages (the stochastic blocks it schedules)"),
        };
        // The given keys over the target's default architecture; an SNF
        // without `n_layers` gets the sum of its flow stages' layers.
        let mut merged = match toml::Value::try_from(default)? {
            toml::Value::Table(t) => t,
            _ => unreachable!("a FlowConfig serializes to a table"),
        };
        if let (Some(stages), false) = (&stages, flow_keys.contains_key("n_layers")) {
            let sum: usize = stages
                .iter()
                .map(|s| match s {
                    StageConfig::Flow(f) => f.n_layers,
                    _ => 0,
                })
                .sum();
            merged.insert("n_layers".into(), (sum as i64).into());
        }
        // A `conditioner` table replaces only the keys it gives, so
        // `conditioner = { hidden = [16, 16] }` keeps the default's kind,
        // kernel and activations.
        if let (Some(toml::Value::Table(given)), Some(toml::Value::Table(default))) =
            (flow_keys.remove("conditioner"), merged.get_mut("conditioner"))
        {
            default.extend(given);
        } else if let Some(v) = table.get("conditioner") {
            flow_keys.insert("conditioner".into(), v.clone());
        }
        merged.extend(flow_keys);
        let flow: FlowConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|e| anyhow::anyhow!("flow: {}", one_line(&e.to_string())))?;
        if let Some(m) = mixture_keys {
            if stages.is_some() {
                bail!("flow.mixture: a mixture's components are flows, not stochastic normalizing flows (drop flow.stages)");
            }
            // `mixture = { … }` holds the MixtureConfig's own keys; the rest
            // of [flow] is its `flow`.
            let Some(mut keys) = m.as_table().cloned() else {
                bail!("flow.mixture: expected a table, found `{m}`");
            };
            if keys.contains_key("flow") {
                bail!("flow.mixture.flow: the components' architecture is the rest of [flow], not a key of mixture");
            }
            if keys.get("components").and_then(|c| c.as_str()) == Some("auto") {
                bail!("flow.mixture.components = \"auto\" is chosen from the training data by `fieldflow train`; give a number here");
            }
            keys.insert("flow".into(), toml::Value::try_from(&flow)?);
            let cfg: MixtureConfig = toml::Value::Table(keys)
                .try_into()
                .map_err(|e| anyhow::anyhow!("flow.mixture: {}", one_line(&e.to_string())))?;
            cfg.validate()
                .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("mixture.", "flow.mixture.")))?;
            return Ok(ModelConfig::Mixture(cfg));
        }
        let Some(stages) = stages else {
            return Ok(ModelConfig::Flow(flow));
        };
        let schedule = match snf_keys.get("schedule") {
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e| anyhow::anyhow!("flow.schedule: {}", one_line(&e.to_string())))?,
            None => Default::default(),
        };
        let cfg = SnfConfig { flow, stages, schedule };
        cfg.validate().map_err(snf_error)?;
        Ok(ModelConfig::Snf(cfg))
    }

    /// The `[flow]` section that gives this architecture back (stored in
    /// the model file's config so the run is reproducible as written).
    pub fn to_section(&self) -> Result<toml::Value> {
        Ok(match self {
            ModelConfig::Flow(f) => toml::Value::try_from(f)?,
            ModelConfig::Snf(s) => {
                let mut t = match toml::Value::try_from(&s.flow)? {
                    toml::Value::Table(t) => t,
                    _ => unreachable!("a FlowConfig serializes to a table"),
                };
                t.insert("stages".into(), toml::Value::try_from(&s.stages)?);
                t.insert("schedule".into(), toml::Value::try_from(&s.schedule)?);
                toml::Value::Table(t)
            }
            ModelConfig::Diffusion(d) => toml::Value::try_from(d)?,
            ModelConfig::Lrds(l) => toml::Value::try_from(l)?,
            ModelConfig::Mixture(m) => {
                let mut t = match toml::Value::try_from(&m.flow)? {
                    toml::Value::Table(t) => t,
                    _ => unreachable!("a FlowConfig serializes to a table"),
                };
                let mut keys = match toml::Value::try_from(m)? {
                    toml::Value::Table(k) => k,
                    _ => unreachable!("a MixtureConfig serializes to a table"),
                };
                keys.remove("flow");
                t.insert("mixture".into(), toml::Value::Table(keys));
                toml::Value::Table(t)
            }
        })
    }

    /// The architecture JSON stored in a model file.
    pub fn to_json(&self) -> Result<String> {
        Ok(match self {
            ModelConfig::Flow(f) => serde_json::to_string(f)?,
            ModelConfig::Snf(s) => serde_json::to_string(s)?,
            ModelConfig::Diffusion(d) => serde_json::json!({ "diffusion": d }).to_string(),
            ModelConfig::Mixture(m) => serde_json::json!({ "mixture": m }).to_string(),
            ModelConfig::Lrds(l) => serde_json::json!({ "lrds": l }).to_string(),
        })
    }

    /// The architecture from a model file's JSON.
    pub fn from_json(json: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(json)?;
        Ok(if let Some(d) = v.get("diffusion") {
            ModelConfig::Diffusion(serde_json::from_value(d.clone())?)
        } else if let Some(l) = v.get("lrds") {
            ModelConfig::Lrds(serde_json::from_value(l.clone())?)
        } else if let Some(m) = v.get("mixture") {
            ModelConfig::Mixture(serde_json::from_value(m.clone())?)
        } else if v.get("stages").is_some() {
            ModelConfig::Snf(serde_json::from_value(v)?)
        } else {
            ModelConfig::Flow(serde_json::from_value(v)?)
        })
    }
}

/// An SNF config error with the field named as in a run's config: the
/// SNF's `snf.flow.X`, `snf.stages…`, `snf.schedule…` are `flow.X`,
/// `flow.stages…`, `flow.schedule…` there.
pub fn snf_error(e: fieldflow_core::ConfigError) -> anyhow::Error {
    let field = e.field.strip_prefix("snf.").unwrap_or(&e.field);
    let field = field.strip_prefix("flow.").unwrap_or(field);
    anyhow::anyhow!("flow.{field} = {}: {}", e.value, e.problem)
}

/// Default architecture: the tutorial flow for lattices (docs/THEORY.md
/// §4.4), MLP couplings for vectors.
pub fn default_flow(target: &RunTarget) -> FlowConfig {
    match target {
        RunTarget::Phi4(p) => {
            let mut f = FlowConfig::tutorial(p.lattice().shape()[0]);
            f.shape = p.lattice().shape().to_vec();
            f
        }
        RunTarget::Synthetic(t) => default_vector_flow(t.dim()),
    }
}

/// The targets of the stages of `train.curriculum`: the `[phi4]` target of
/// `table` on each stage's lattice (same couplings).
///
/// # Errors
/// A curriculum without a `[phi4]` target, or a stage lattice the target
/// refuses (named by its stage).
pub fn curriculum_targets(table: &toml::Table, train: &TrainConfig) -> Result<Vec<RunTarget>> {
    if train.curriculum.is_empty() {
        return Ok(Vec::new());
    }
    if !table.get("phi4").is_some_and(|p| p.is_table()) {
        bail!("train.curriculum: a lattice curriculum needs a [phi4] target");
    }
    train
        .curriculum
        .iter()
        .enumerate()
        .map(|(k, stage)| {
            phi4_on_lattice(table, &stage.lattice)
                .map_err(|e| anyhow::anyhow!("train.curriculum[{k}].lattice {:?}: {e}", stage.lattice))
        })
        .collect()
}

/// The `[phi4]` target of `table` with its lattice replaced by `lattice`
/// (same couplings): a curriculum stage, or the recipe's timing probe.
///
/// # Errors
/// No `[phi4]` section, or a lattice the target refuses.
pub fn phi4_on_lattice(table: &toml::Table, lattice: &[usize]) -> Result<RunTarget> {
    let Some(phi4) = table.get("phi4").and_then(|p| p.as_table()) else {
        bail!("no [phi4] target");
    };
    let mut p = phi4.clone();
    p.insert("lattice".into(), toml::Value::try_from(lattice)?);
    RunTarget::from_table(
        &toml::Table::from_iter([("phi4".to_string(), toml::Value::Table(p))]),
        "config",
    )
}

/// Default architecture of a vector target of dimension `dim`: MLP couplings.
pub fn default_vector_flow(dim: usize) -> FlowConfig {
    FlowConfig::mlp(dim, 8, vec![32, 32])
}

/// A fresh flow of architecture `cfg` (parameters from `seed`) and its
/// trainer for `target`, batches chunked by `par`.
///
/// # Errors
/// The architecture does not fit the target, or the training settings are invalid.
pub fn flow_trainer<'a>(
    cfg: &FlowConfig,
    train: &TrainConfig,
    seed: u64,
    target: &'a dyn fieldflow_core::Target,
    data: TrainData<'a>,
    par: Par,
) -> Result<Trainer<'a>> {
    let flow = cfg.build(Seed::new(seed)).map_err(|e| anyhow::anyhow!("flow.{e}"))?;
    if flow.dim() != target.dim() {
        bail!(
            "flow.shape {:?} does not match the target's {} sites",
            cfg.shape,
            target.dim()
        );
    }
    Ok(Trainer::new(train, flow, target, data, par)?)
}

impl ModelConfig {
    /// Whether the trained model has a normalized density q(x) (flows); an
    /// SNF is trained and judged by path losses instead.
    pub fn has_density(&self) -> bool {
        matches!(
            self,
            ModelConfig::Flow(_) | ModelConfig::Diffusion(_) | ModelConfig::Mixture(_)
        )
    }

    /// A fresh model of this architecture (parameters from `seed`) and its
    /// trainer: a flow's [`Trainer`] (data-parallel over the processes of
    /// `dist`) or an SNF's [`SnfTrainer`] (one process).
    ///
    /// # Errors
    /// The architecture does not fit the target, or the kind cannot run on
    /// several processes.
    ///
    /// With a lattice curriculum (`train.curriculum`), `stages` holds the
    /// targets of its stages ([`curriculum_targets`]) and a flow trains
    /// through them ([`Curriculum`]); other kinds refuse a curriculum.
    pub fn trainer<'a>(
        &self,
        train: &TrainConfig,
        seed: u64,
        target: &'a RunTarget,
        stages: &'a [RunTarget],
        data: TrainData<'a>,
        dist: &Dist,
    ) -> Result<Box<dyn TrainLoop + 'a>> {
        let par = Par::default();
        if !train.curriculum.is_empty() && !matches!(self, ModelConfig::Flow(_)) {
            bail!("train.curriculum: only a flow trains on a lattice curriculum (not an SNF, a mixture or a diffusion model)");
        }
        Ok(match self {
            ModelConfig::Flow(cfg) if !train.curriculum.is_empty() => {
                let mut trainers = Vec::with_capacity(stages.len() + 1);
                for (k, (stage, t)) in train.curriculum.iter().zip(stages).enumerate() {
                    let mut c = cfg.clone();
                    c.shape.clone_from(&stage.lattice);
                    c.validate()
                        .map_err(|e| anyhow::anyhow!("train.curriculum[{k}].lattice {:?}: flow.{e}", stage.lattice))?;
                    let tr = flow_trainer(&c, train, seed, t.as_target(), TrainData::default(), par)?;
                    trainers.push((tr, stage.steps));
                }
                let last = flow_trainer(cfg, train, seed, target.as_target(), data, par)?;
                trainers.push((last, train.steps.saturating_sub(train.curriculum_steps())));
                Box::new(Curriculum::new(trainers)?)
            }
            ModelConfig::Flow(cfg) => Box::new(flow_trainer(cfg, train, seed, target.as_target(), data, par)?),
            ModelConfig::Snf(cfg) => {
                if dist.is_parallel() {
                    bail!("training a stochastic normalizing flow is not distributed over MPI ranks yet: run it with one process");
                }
                let snf = cfg.build(target.clone(), Seed::new(seed)).map_err(snf_error)?;
                Box::new(SnfTrainer::new(train, snf, data, par)?)
            }
            ModelConfig::Diffusion(cfg) => {
                let model = cfg.build().map_err(|e| anyhow::anyhow!("diffusion.{e}"))?;
                Box::new(DiffusionTrainer::new(train, model, target.as_target(), data, par)?)
            }
            ModelConfig::Lrds(cfg) => {
                if dist.is_parallel() {
                    bail!("training an LRDS sampler is not distributed over MPI ranks yet: run it with one process");
                }
                let model = cfg.build(Seed::new(seed)).map_err(|e| anyhow::anyhow!("lrds.{e}"))?;
                Box::new(LrdsTrainer::new(train, model, target.as_target(), data, par)?)
            }
            ModelConfig::Mixture(cfg) => {
                if cfg.flow.shape.iter().product::<usize>() != target.as_target().dim() {
                    bail!(
                        "flow.shape {:?} does not match the target's {} sites",
                        cfg.flow.shape,
                        target.as_target().dim()
                    );
                }
                if dist.is_parallel() {
                    bail!("training a mixture of flows is not distributed over MPI ranks yet: run it with one process");
                }
                Box::new(MixtureTrainer::new(train, cfg, seed, target.as_target(), data, par)?)
            }
        })
    }
}

/// What a trained model can do, whatever its kind: draw with a log
/// importance weight (every model), and evaluate its normalized density at
/// any point (only models that have one).
pub trait TrainedModel: Send + Sync {
    /// The model as a proposal of IMH and importance sampling.
    fn proposal(&self) -> &dyn Proposal;
    /// The model's normalized density q(x) at any x, if it has one
    /// (default: none, the model proposes with path or draw weights only).
    fn density(&self) -> Option<&dyn ProposalDensity> {
        None
    }
    /// The model as a bijection x = f(z), if it is one (flows): what
    /// neutra-MCMC and adaptive flow-MCMC need (default: not one).
    fn flow(&self) -> Option<&Flow> {
        None
    }
    /// The model as a mixture of flows, if it is one (default: not one).
    fn mixture_mut(&mut self) -> Option<&mut FlowMixture> {
        None
    }
}

impl TrainedModel for Flow {
    fn proposal(&self) -> &dyn Proposal {
        self
    }
    fn density(&self) -> Option<&dyn ProposalDensity> {
        Some(self)
    }
    fn flow(&self) -> Option<&Flow> {
        Some(self)
    }
}

/// An SNF on the run's target, proposing with its exact path weights
/// ([`PathProposal`]); it has no tractable q(x).
struct SnfModel(Snf<RunTarget>);

impl Proposal for SnfModel {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn draw_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        PathProposal(&self.0).draw_batch(seed, xs, log_q, par)
    }
}

impl TrainedModel for SnfModel {
    fn proposal(&self) -> &dyn Proposal {
        self
    }
}

/// A diffusion model proposes with the log q of its draws (exact for
/// linear scores, second order in the step for non-linear ones).
impl TrainedModel for DiffusionModel {
    fn proposal(&self) -> &dyn Proposal {
        self
    }
    fn density(&self) -> Option<&dyn ProposalDensity> {
        if self.has_density() {
            Some(self)
        } else {
            None
        }
    }
}

/// An LRDS sampler proposes with its exact path weights; it has no
/// tractable q(x).
impl TrainedModel for LrdsModel {
    fn proposal(&self) -> &dyn Proposal {
        self
    }
}

/// The largest K of `flow.mixture.components = "auto"` unless
/// `max_components` says otherwise.
pub const AUTO_MAX_COMPONENTS: usize = 8;

/// Whether the `[flow]` section's mixture asks for its number of
/// components from the data (`components` given as a string, or
/// `max_components`): [`resolve_auto_components`] then resolves it, or
/// names what is wrong.
pub fn asks_auto_components(flow: Option<&toml::Value>) -> bool {
    flow.and_then(|f| f.get("mixture"))
        .and_then(|m| m.as_table())
        .is_some_and(|m| m.get("components").is_some_and(|c| c.is_str()) || m.contains_key("max_components"))
}

/// `flow.mixture.components = "auto"` (with `max_components`, default
/// [`AUTO_MAX_COMPONENTS`]): the number of components the training samples
/// `train` (else the `locate` walkers on `target`) call for, by BIC over
/// the k-means partitions the mixture's set-up makes
/// ([`fieldflow_losses::choose_components`], docs/THEORY.md §4.11;
/// `seed`: `train.seed`). Returns the `[flow]` section with that K (the
/// model file stores the number) and the choice; `None` when the section
/// does not ask for it.
///
/// # Errors
/// A `components` string other than "auto", `max_components` without it
/// or below 1, a bad `locate`, no points to cluster.
pub fn resolve_auto_components(
    flow: Option<&toml::Value>,
    train: Option<&Array2<f64>>,
    target: &dyn Target,
    seed: u64,
) -> Result<Option<(toml::Value, KChoice)>> {
    let Some(mix) = flow.and_then(|f| f.get("mixture")).and_then(|m| m.as_table()) else {
        return Ok(None);
    };
    let max = mix.get("max_components");
    match mix.get("components").and_then(|c| c.as_str()) {
        Some("auto") => {}
        Some(other) => bail!("flow.mixture.components: `{other}`: expected a number or \"auto\""),
        None if max.is_some() => bail!("flow.mixture.max_components: only with components = \"auto\""),
        None => return Ok(None),
    }
    if mix.contains_key("starts") {
        bail!(
            "flow.mixture.components = \"auto\": with starts the components are known: one per start \
             (plus one for a boundary)"
        );
    }
    let k_max = match max {
        None => AUTO_MAX_COMPONENTS,
        Some(v) => match v.as_integer() {
            Some(k) if k >= 1 => k as usize,
            _ => bail!("flow.mixture.max_components: `{v}`: expected an integer ≥ 1"),
        },
    };
    let locate: Option<Locate> = match mix.get("locate") {
        Some(l) => Some(
            l.clone()
                .try_into()
                .map_err(|e: toml::de::Error| anyhow::anyhow!("flow.mixture.locate: {}", one_line(&e.to_string())))?,
        ),
        None => None,
    };
    let choice = choose_components(train, locate.as_ref(), target, k_max, seed)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("mixture.", "flow.mixture.")))?;
    let mut section = flow.cloned().expect("a mixture was found in it");
    let m = section
        .get_mut("mixture")
        .and_then(|m| m.as_table_mut())
        .expect("a mixture table was found");
    m.insert("components".into(), (choice.k as i64).into());
    m.remove("max_components");
    Ok(Some((section, choice)))
}

/// A mixture of flows proposes with its density (it is not a bijection).
impl TrainedModel for FlowMixture {
    fn proposal(&self) -> &dyn Proposal {
        self
    }
    fn density(&self) -> Option<&dyn ProposalDensity> {
        Some(self)
    }
    fn mixture_mut(&mut self) -> Option<&mut FlowMixture> {
        Some(self)
    }
}

/// The error of equal mixture weights asked of a model that is no mixture.
pub const NOT_A_MIXTURE: &str = "sampler.mixture_weights = equal: the model is not a mixture of flows";

/// A trained model ready to propose (see [`TrainedModel`]).
pub struct Sampler(Box<dyn TrainedModel>);

impl Sampler {
    /// Rebuilds the model from its architecture JSON and parameters.
    pub fn from_parts(architecture: &str, params: Vec<f64>, target: &RunTarget) -> Result<Self> {
        Ok(Sampler(match ModelConfig::from_json(architecture)? {
            ModelConfig::Flow(_) => Box::new(Flow::from_json_parts(architecture, params)?),
            ModelConfig::Snf(cfg) => Box::new(SnfModel(cfg.rebuild(target.clone(), params).map_err(snf_error)?)),
            ModelConfig::Diffusion(cfg) => Box::new(cfg.rebuild(params).map_err(|e| anyhow::anyhow!("diffusion.{e}"))?),
            ModelConfig::Mixture(cfg) => Box::new(FlowMixture::from_parts(cfg, params)?),
            ModelConfig::Lrds(cfg) => Box::new(cfg.rebuild(params).map_err(|e| anyhow::anyhow!("lrds.{e}"))?),
        }))
    }

    /// The model's normalized density q(x) at any x, where it has one
    /// (flows; an SNF only has path weights of its own draws).
    pub fn density(&self) -> Option<&dyn ProposalDensity> {
        self.0.density()
    }

    /// The model as a normalizing flow x = f(z), if it is one (an SNF is not
    /// a bijection).
    pub fn flow(&self) -> Option<&Flow> {
        self.0.flow()
    }

    /// Replaces a mixture's trained weights πₖ by equal ones, 1/K: draws
    /// then come from every component alike and log q is the balance
    /// heuristic's q̄ = (1/K) Σₖ qₖ (docs/THEORY.md §4.11), so importance
    /// sampling reaches a mode of weight 1e-10 as often as the main one.
    ///
    /// # Errors
    /// The model is not a mixture of flows.
    pub fn equalize_mixture_weights(&mut self) -> Result<()> {
        let Some(m) = self.0.mixture_mut() else {
            bail!("{NOT_A_MIXTURE}");
        };
        m.set_equal_weights();
        Ok(())
    }
}

impl Proposal for Sampler {
    fn dim(&self) -> usize {
        self.0.proposal().dim()
    }
    fn draw_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        self.0.proposal().draw_batch(seed, xs, log_q, par)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over_tutorial(section: &str) -> Result<FlowConfig> {
        let section: toml::Value = toml::from_str::<toml::Table>(section).map(toml::Value::Table)?;
        match ModelConfig::over_default(Some(&section), FlowConfig::tutorial(8))? {
            ModelConfig::Flow(f) => Ok(f),
            _ => bail!("not a plain flow"),
        }
    }

    #[test]
    fn a_partial_conditioner_keeps_the_default_keys() {
        let f = over_tutorial("n_layers = 4\nconditioner = { hidden = [16, 16] }").unwrap();
        let mut want = FlowConfig::tutorial(8);
        want.n_layers = 4;
        want.conditioner.hidden = vec![16, 16];
        assert_eq!(f, want);
        let f = over_tutorial("conditioner = { kernel = 5, activation = \"silu\" }").unwrap();
        assert_eq!((f.conditioner.kernel, f.conditioner.hidden.clone()), (5, vec![8, 8]));
        assert_eq!(f.conditioner.activation, fieldflow_flows::ActivationKind::Silu);
        let e = over_tutorial("conditioner = { hiden = [16] }").unwrap_err().to_string();
        assert!(e.contains("hiden"), "{e}");
        let e = over_tutorial("conditioner = \"conv\"").unwrap_err().to_string();
        assert!(e.starts_with("flow:") && e.contains("conv"), "{e}");
    }
}
