//! SNF architectures as serde configurations: unknown fields are refused,
//! and [`SnfConfig::validate`] names the first offending field in a
//! [`ConfigError`].
//!
//! An [`SnfConfig`] is a flow architecture ([`FlowConfig`], the same as for
//! a plain flow) whose coupling layers are split into flow stages, with
//! stochastic blocks in between, and a λ schedule for the blocks. In TOML:
//!
//! ```toml
//! schedule = "linear"            # or: schedule = { list = [0.5, 1.0] }
//! stages = [
//!   { flow = { n_layers = 4 } },
//!   { langevin = { steps = 20, eps = 0.005, mala = true } },
//!   { flow = { n_layers = 4 } },
//!   { metropolis = { steps = 10, width = 0.3 } },
//! ]
//!
//! [flow]                         # fieldflow_flows::FlowConfig
//! shape = [2]
//! n_layers = 8                   # = the sum of the flow stages' n_layers
//! mask = "halves"
//! conditioner = { kind = "mlp", hidden = [32, 32], activation = "silu" }
//! ```
//!
//! Stage `flow = { n_layers = k }` takes the next k layers of the
//! architecture (masks alternate across the whole SNF, as in the plain
//! flow). The K stochastic blocks get λ_j, j = 0 … K−1, from `schedule`:
//! `linear` gives λ_j = (j + 1)/K (the last block samples the target), `list`
//! gives them explicitly (K values in [0, 1]). The base is the flow's
//! N(0, σ²I) (`flow.base_sigma`); the stochastic blocks use
//! u_λ = (1 − λ)‖x‖²/(2σ²) − λ log p̃(x).

use crate::blocks::{LangevinBlock, MetropolisBlock, StochasticBlock};
use crate::snf::{Snf, Stage};
use fieldflow_core::{ConfigError, Seed, Target};
use fieldflow_flows::{FlowConfig, FlowLayer};
use serde::{Deserialize, Serialize};

/// A block of consecutive flow layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowStageConfig {
    /// Number of coupling layers in the stage (≥ 1).
    pub n_layers: usize,
}

/// An overdamped Langevin block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LangevinConfig {
    /// Number of steps (≥ 1).
    pub steps: usize,
    /// Step size ε > 0.
    pub eps: f64,
    /// Metropolis-adjust every step (MALA); default false.
    #[serde(default)]
    pub mala: bool,
}

/// A Gaussian random-walk Metropolis block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetropolisConfig {
    /// Number of steps (≥ 1).
    pub steps: usize,
    /// Proposal width w > 0.
    pub width: f64,
}

/// One stage (externally tagged: `{ flow = {…} }`, `{ langevin = {…} }`,
/// `{ metropolis = {…} }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageConfig {
    /// Flow layers.
    Flow(FlowStageConfig),
    /// Langevin / MALA block.
    Langevin(LangevinConfig),
    /// Random-walk Metropolis block.
    Metropolis(MetropolisConfig),
}

/// The λ values of the stochastic blocks, in stage order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LambdaSchedule {
    /// λ_j = (j + 1)/K for K blocks.
    #[default]
    Linear,
    /// Explicit values, one per block, each in [0, 1].
    List(Vec<f64>),
}

/// A stochastic normalizing flow architecture (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnfConfig {
    /// The coupling-flow architecture, split across the flow stages.
    pub flow: FlowConfig,
    /// The stages, in time order (base → target).
    pub stages: Vec<StageConfig>,
    /// λ schedule of the stochastic blocks (default linear).
    #[serde(default)]
    pub schedule: LambdaSchedule,
}

impl SnfConfig {
    /// Number of stochastic blocks.
    pub fn n_blocks(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| !matches!(s, StageConfig::Flow(_)))
            .count()
    }

    /// The λ of every stochastic block, in stage order.
    pub fn lambdas(&self) -> Vec<f64> {
        let k = self.n_blocks();
        match &self.schedule {
            LambdaSchedule::Linear => (1..=k).map(|j| j as f64 / k as f64).collect(),
            LambdaSchedule::List(v) => v.clone(),
        }
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.flow.validate().map_err(|e| ConfigError {
            field: format!("snf.{}", e.field),
            ..e
        })?;
        if self.stages.is_empty() {
            return Err(ConfigError::new("snf.stages", "[]", "needs at least one stage"));
        }
        let mut total = 0;
        for (i, s) in self.stages.iter().enumerate() {
            match s {
                StageConfig::Flow(f) => {
                    if f.n_layers == 0 {
                        return Err(ConfigError::new(
                            format!("snf.stages[{i}].flow.n_layers"),
                            0,
                            "must be ≥ 1",
                        ));
                    }
                    total += f.n_layers;
                }
                StageConfig::Langevin(l) => {
                    if l.steps == 0 {
                        return Err(ConfigError::new(
                            format!("snf.stages[{i}].langevin.steps"),
                            0,
                            "must be ≥ 1",
                        ));
                    }
                    if !(l.eps.is_finite() && l.eps > 0.0) {
                        return Err(ConfigError::new(
                            format!("snf.stages[{i}].langevin.eps"),
                            l.eps,
                            "must be finite and > 0",
                        ));
                    }
                }
                StageConfig::Metropolis(m) => {
                    if m.steps == 0 {
                        return Err(ConfigError::new(
                            format!("snf.stages[{i}].metropolis.steps"),
                            0,
                            "must be ≥ 1",
                        ));
                    }
                    if !(m.width.is_finite() && m.width > 0.0) {
                        return Err(ConfigError::new(
                            format!("snf.stages[{i}].metropolis.width"),
                            m.width,
                            "must be finite and > 0",
                        ));
                    }
                }
            }
        }
        if total != self.flow.n_layers {
            return Err(ConfigError::new(
                "snf.flow.n_layers",
                self.flow.n_layers,
                format!("must equal the sum of the flow stages' n_layers ({total})"),
            ));
        }
        if let LambdaSchedule::List(v) = &self.schedule {
            if v.len() != self.n_blocks() {
                return Err(ConfigError::new(
                    "snf.schedule.list",
                    format!("{v:?}"),
                    format!("needs one λ per stochastic block ({})", self.n_blocks()),
                ));
            }
            if let Some(l) = v.iter().find(|l| !(**l >= 0.0 && **l <= 1.0)) {
                return Err(ConfigError::new("snf.schedule.list", l, "every λ must lie in [0, 1]"));
            }
        }
        Ok(())
    }

    /// The stages with layer ranges and λ filled in (validated).
    pub fn stages(&self) -> Result<Vec<Stage>, ConfigError> {
        self.validate()?;
        let lambdas = self.lambdas();
        let (mut next, mut j) = (0, 0);
        Ok(self
            .stages
            .iter()
            .map(|s| match s {
                StageConfig::Flow(f) => {
                    next += f.n_layers;
                    Stage::Flow(next - f.n_layers..next)
                }
                StageConfig::Langevin(l) => {
                    j += 1;
                    Stage::Stochastic(StochasticBlock::Langevin(LangevinBlock {
                        steps: l.steps,
                        eps: l.eps,
                        mala: l.mala,
                        lambda: lambdas[j - 1],
                    }))
                }
                StageConfig::Metropolis(m) => {
                    j += 1;
                    Stage::Stochastic(StochasticBlock::Metropolis(MetropolisBlock {
                        steps: m.steps,
                        width: m.width,
                        lambda: lambdas[j - 1],
                    }))
                }
            })
            .collect())
    }

    /// A new SNF on `target` with flow parameters initialized from `seed`
    /// (as [`FlowConfig::build`]).
    ///
    /// # Errors
    /// An invalid field, or `snf.flow.shape` when the flow's dimension
    /// differs from the target's.
    pub fn build<T: Target>(&self, target: T, seed: Seed) -> Result<Snf<T, FlowLayer>, ConfigError> {
        let stages = self.stages()?;
        let flow = self.flow.build(seed)?;
        self.assemble(target, stages, flow.params().to_vec())
    }

    /// Rebuilds an SNF from its configuration and stored parameter vector.
    ///
    /// # Errors
    /// As [`SnfConfig::build`], or `snf.params` for a wrong length.
    pub fn rebuild<T: Target>(&self, target: T, params: Vec<f64>) -> Result<Snf<T, FlowLayer>, ConfigError> {
        let stages = self.stages()?;
        self.assemble(target, stages, params)
    }

    fn assemble<T: Target>(
        &self,
        target: T,
        stages: Vec<Stage>,
        params: Vec<f64>,
    ) -> Result<Snf<T, FlowLayer>, ConfigError> {
        if target.dim() != self.flow.dim() {
            return Err(ConfigError::new(
                "snf.flow.shape",
                format!("{:?}", self.flow.shape),
                format!(
                    "dimension {} differs from the target's {}",
                    self.flow.dim(),
                    target.dim()
                ),
            ));
        }
        let layers = self.flow.layers()?;
        let need: usize = layers.iter().map(fieldflow_flows::Layer::n_params).sum();
        if params.len() != need {
            return Err(ConfigError::new(
                "snf.params",
                params.len(),
                format!("the architecture needs {need} parameters"),
            ));
        }
        let mut snf = Snf::new(target, self.flow.base_sigma, layers, params, stages);
        snf.config = Some(self.clone());
        Ok(snf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_targets::DoubleWell;

    const EXAMPLE: &str = r#"
schedule = "linear"
stages = [
  { flow = { n_layers = 4 } },
  { langevin = { steps = 20, eps = 0.005, mala = true } },
  { flow = { n_layers = 4 } },
  { metropolis = { steps = 10, width = 0.3 } },
]

[flow]
shape = [2]
n_layers = 8
mask = "halves"
conditioner = { kind = "mlp", hidden = [32, 32], activation = "silu" }
"#;

    #[test]
    fn documented_toml_example_parses_builds_and_round_trips() {
        let cfg: SnfConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(cfg.lambdas(), vec![0.5, 1.0]);
        let snf = cfg.build(DoubleWell::default(), Seed::new(1)).unwrap();
        assert_eq!(snf.layers().len(), 8);
        assert_eq!(snf.stages().len(), 4);
        assert_eq!(snf.stages()[2], Stage::Flow(4..8));
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<SnfConfig>(&json).unwrap(), cfg);
        let list: SnfConfig =
            toml::from_str(&EXAMPLE.replace("schedule = \"linear\"", "schedule = { list = [0.3, 0.9] }")).unwrap();
        assert_eq!(list.lambdas(), vec![0.3, 0.9]);
        let again = list.rebuild(DoubleWell::default(), snf.params().to_vec()).unwrap();
        assert_eq!(again.params(), snf.params());
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cfg: SnfConfig = toml::from_str(EXAMPLE).unwrap();
        assert!(toml::from_str::<SnfConfig>(&EXAMPLE.replace("mala = true", "mala = true, colour = 1")).is_err());
        assert!(toml::from_str::<SnfConfig>(&EXAMPLE.replace("langevin", "hamiltonian")).is_err());
        let mut c = cfg.clone();
        c.flow.n_layers = 7;
        assert_eq!(c.validate().unwrap_err().field, "snf.flow.n_layers");
        let mut c = cfg.clone();
        c.stages[1] = StageConfig::Langevin(LangevinConfig {
            steps: 3,
            eps: -1.0,
            mala: false,
        });
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "snf.stages[1].langevin.eps = -1: must be finite and > 0"
        );
        let mut c = cfg.clone();
        c.schedule = LambdaSchedule::List(vec![0.5]);
        assert_eq!(c.validate().unwrap_err().field, "snf.schedule.list");
        let mut c = cfg.clone();
        c.schedule = LambdaSchedule::List(vec![0.5, 1.5]);
        assert_eq!(c.validate().unwrap_err().field, "snf.schedule.list");
        let mut c = cfg.clone();
        c.flow.base_sigma = 0.0;
        assert_eq!(c.validate().unwrap_err().field, "snf.flow.base_sigma");
        let mut c = cfg;
        c.flow.shape = vec![3];
        assert_eq!(
            c.build(DoubleWell::default(), Seed::new(0)).unwrap_err().field,
            "snf.flow.shape"
        );
    }
}
