//! The settings of `fieldflow generate`: flags, the TOML config they
//! override, validation into a runnable [`Resolved`] run.

use crate::config;
use anyhow::{bail, Context, Result};
use clap::Args;
use fieldflow_core::ConfigError;
use fieldflow_lattice::{Algorithm, AlgorithmConfig};
use fieldflow_lattice::{Phi4, Phi4Config, Start};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `fieldflow generate`.
#[derive(Args, Debug, Default)]
pub struct GenerateArgs {
    /// TOML config (data/configs/*.toml); flags below override its keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The φ⁴ target (override the config's `[phi4]` keys).
    #[command(flatten)]
    pub phi4: crate::cmd::phi4_args::Phi4Args,
    /// Update algorithm: hmc or metropolis.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Thermalization updates per chain (step size tuned here only).
    #[arg(long)]
    pub n_therm: Option<u64>,
    /// Saved configurations per chain.
    #[arg(long)]
    pub n_cfg: Option<u64>,
    /// Updates between saved configurations.
    #[arg(long)]
    pub thin: Option<u64>,
    /// Independent chains.
    #[arg(long)]
    pub chains: Option<u64>,
    /// Output, seed, resume, verbosity.
    #[command(flatten)]
    pub run: crate::cmd::run_args::RunArgs,
}

/// The resolved configuration of a `generate` run (stored in the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Master seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Independent chains.
    #[serde(default = "default_chains")]
    pub chains: u64,
    /// Thermalization updates per chain.
    #[serde(default = "default_n_therm")]
    pub n_therm: u64,
    /// Saved configurations per chain.
    #[serde(default = "default_n_cfg")]
    pub n_cfg: u64,
    /// Updates between saves.
    #[serde(default = "one")]
    pub thin: u64,
    /// Saved configurations per chain per write block (checkpoint interval).
    #[serde(default = "default_block")]
    pub block: u64,
    /// How chains start.
    #[serde(default)]
    pub start: Start,
    /// The φ⁴ model.
    pub phi4: Phi4Config,
    /// Update algorithm (`[algorithm.hmc]` or `[algorithm.metropolis]`).
    #[serde(default = "default_algorithm")]
    pub algorithm: AlgorithmConfig,
}

pub(super) fn default_seed() -> u64 {
    1
}
pub(super) fn default_chains() -> u64 {
    4
}
pub(super) fn default_n_therm() -> u64 {
    500
}
pub(super) fn default_n_cfg() -> u64 {
    1000
}
pub(super) fn one() -> u64 {
    1
}
pub(super) fn default_block() -> u64 {
    100
}
pub(super) fn default_algorithm() -> AlgorithmConfig {
    AlgorithmConfig::Hmc(Default::default())
}

/// A validated run.
pub struct Resolved {
    /// The config as stored in the file.
    pub config: GenerateConfig,
    /// The target.
    pub target: Phi4,
    /// The algorithm.
    pub algorithm: Algorithm,
}

impl GenerateConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        let target = self.phi4.validate()?;
        let algorithm = self.algorithm.validate()?;
        for (name, v) in [
            ("chains", self.chains),
            ("n_cfg", self.n_cfg),
            ("thin", self.thin),
            ("block", self.block),
        ] {
            if v == 0 {
                return Err(ConfigError::new(name, v, "must be > 0"));
            }
        }
        if let Start::Hot { sigma } = self.start {
            if !(sigma > 0.0 && sigma.is_finite()) {
                return Err(ConfigError::new("start.hot.sigma", sigma, "must be > 0"));
            }
        }
        Ok(Resolved {
            config: self.clone(),
            target,
            algorithm,
        })
    }
}

/// Builds the config table from `--config` and the flags.
pub(super) fn resolve(args: &GenerateArgs) -> Result<GenerateConfig> {
    let mut t = config::load_table(args.config.as_deref())?;
    args.phi4.apply(&mut t)?;
    if let Some(a) = &args.algorithm {
        let a = a.to_lowercase();
        if a != "hmc" && a != "metropolis" {
            bail!("--algorithm {a}: expected hmc or metropolis");
        }
        let keep = t.get("algorithm").and_then(|v| v.get(&a)).cloned();
        let mut alg = toml::Table::new();
        alg.insert(
            a.clone(),
            keep.unwrap_or_else(|| toml::Value::Table(toml::Table::new())),
        );
        t.insert("algorithm".into(), toml::Value::Table(alg));
    }
    for (key, v) in [
        ("n_therm", args.n_therm),
        ("n_cfg", args.n_cfg),
        ("thin", args.thin),
        ("chains", args.chains),
        ("seed", args.run.seed),
    ] {
        if let Some(v) = v {
            config::set(&mut t, key, i64::try_from(v).context("value too large")?);
        }
    }
    if !t.contains_key("phi4") {
        bail!(
            "no model given: pass --config FILE, or {}",
            crate::cmd::phi4_args::NO_TARGET_HINT
        );
    }
    config::parse(&t, "generate")
}
