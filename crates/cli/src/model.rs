//! The two model kinds a run can train and sample with: a normalizing flow
//! and a stochastic normalizing flow (SNF: flow layers with Langevin / MALA /
//! Metropolis blocks in between, crates/snf).
//!
//! In a config both are the `[flow]` section; an SNF is a flow whose section
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
//! ([`crate::cmd::train::default_flow`]), so `[flow] n_layers = 12` alone is
//! a complete section; an SNF without `n_layers` gets the sum of its flow
//! stages' layers. In a model file the architecture JSON is the `FlowConfig` or the
//! `SnfConfig` (which has a top-level `stages`).

use crate::config::one_line;
use crate::target::RunTarget;
use anyhow::{bail, Result};
use fieldflow_core::{Par, Proposal, ProposalDensity, Seed};
use fieldflow_flows::{Flow, FlowConfig};
use fieldflow_snf::{PathProposal, Snf, SnfConfig, StageConfig};
use ndarray::{ArrayViewMut1, ArrayViewMut2};

/// The architecture of a run's model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// A normalizing flow.
    Flow(FlowConfig),
    /// A stochastic normalizing flow.
    Snf(SnfConfig),
}

/// Keys of `[flow]` that make it an SNF.
const SNF_KEYS: [&str; 2] = ["stages", "schedule"];

impl ModelConfig {
    /// The architecture from a run's `[flow]` section (absent: the default
    /// flow of `target`, see [`crate::cmd::train::default_flow`]).
    pub fn from_section(section: Option<&toml::Value>, target: &RunTarget) -> Result<Self> {
        let Some(section) = section else {
            return Ok(ModelConfig::Flow(crate::cmd::train::default_flow(target)));
        };
        let Some(table) = section.as_table() else {
            bail!("flow: expected a table, found `{section}`");
        };
        let mut flow_keys = table.clone();
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
        let mut merged = match toml::Value::try_from(crate::cmd::train::default_flow(target))? {
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
        merged.extend(flow_keys);
        let flow: FlowConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|e| anyhow::anyhow!("flow: {}", one_line(&e.to_string())))?;
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
        })
    }

    /// The architecture JSON stored in a model file.
    pub fn to_json(&self) -> Result<String> {
        Ok(match self {
            ModelConfig::Flow(f) => serde_json::to_string(f)?,
            ModelConfig::Snf(s) => serde_json::to_string(s)?,
        })
    }

    /// The architecture from a model file's JSON.
    pub fn from_json(json: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(json)?;
        Ok(if v.get("stages").is_some() {
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

/// A trained model ready to propose: x ~ q with log q (a flow), or x at the
/// end of a stochastic path with the effective log q = log p̃(x) − log w
/// (an SNF, [`PathProposal`]), so that IMH and importance sampling use the
/// exact path weight.
pub enum Sampler {
    /// A normalizing flow.
    Flow(Flow),
    /// A stochastic normalizing flow on the run's target.
    Snf(Box<Snf<RunTarget>>),
}

impl Sampler {
    /// Rebuilds the model from its architecture JSON and parameters.
    pub fn from_parts(architecture: &str, params: Vec<f64>, target: &RunTarget) -> Result<Self> {
        Ok(match ModelConfig::from_json(architecture)? {
            ModelConfig::Flow(_) => Sampler::Flow(Flow::from_json_parts(architecture, params)?),
            ModelConfig::Snf(cfg) => Sampler::Snf(Box::new(cfg.rebuild(target.clone(), params).map_err(snf_error)?)),
        })
    }

    /// The model's normalized density q(x) at any x, where it has one
    /// (flows; an SNF only has path weights of its own draws).
    pub fn density(&self) -> Option<&dyn ProposalDensity> {
        match self {
            Sampler::Flow(f) => Some(f),
            Sampler::Snf(_) => None,
        }
    }
}

impl Proposal for Sampler {
    fn dim(&self) -> usize {
        match self {
            Sampler::Flow(f) => f.dim(),
            Sampler::Snf(s) => s.dim(),
        }
    }

    fn draw_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        match self {
            Sampler::Flow(f) => f.draw_batch(seed, xs, log_q, par),
            Sampler::Snf(s) => PathProposal(s).draw_batch(seed, xs, log_q, par),
        }
    }
}
