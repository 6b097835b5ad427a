//! The settings of `fieldflow sample`: flags, the resolved and stored
//! configuration, validation.

use anyhow::{bail, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `fieldflow sample`.
#[derive(Args, Debug, Default)]
pub struct SampleArgs {
    /// Trained model file (from `fieldflow train`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples per chain.
    #[arg(long)]
    pub n: Option<u64>,
    /// Independent chains (or independent IS streams).
    #[arg(long)]
    pub chains: Option<u64>,
    /// imh, hybrid or is.
    #[arg(long)]
    pub method: Option<String>,
    /// Local updates before each flow proposal (hybrid).
    #[arg(long)]
    pub local_steps: Option<u64>,
    /// Width of the local updates (hybrid).
    #[arg(long)]
    pub local_width: Option<f64>,
    /// Proposals evaluated per parallel batch.
    #[arg(long)]
    pub batch: Option<u64>,
    /// Output, seed, resume, verbosity.
    #[command(flatten)]
    pub run: crate::cmd::run_args::RunArgs,
}

/// Sampling methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Independent Metropolis–Hastings.
    Imh,
    /// Local updates + IMH.
    Hybrid,
    /// Importance sampling.
    Is,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Imh => "imh",
            Method::Hybrid => "hybrid",
            Method::Is => "is",
        }
    }
}

/// The resolved configuration of a sample run (stored in the file, with the
/// model's `[phi4]` or `[target]` section appended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Model file.
    pub model: String,
    /// Method.
    pub method: Method,
    /// Samples per chain.
    pub n: u64,
    /// Chains.
    pub chains: u64,
    /// Proposals per batch.
    pub batch: u64,
    /// Steps per chain per write block.
    pub block: u64,
    /// Local updates per step (hybrid).
    pub local_steps: u64,
    /// Local update width (hybrid).
    pub local_width: f64,
    /// Master seed.
    pub seed: u64,
}

impl SampleConfig {
    pub(super) fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("n", self.n),
            ("chains", self.chains),
            ("batch", self.batch),
            ("block", self.block),
        ] {
            if v == 0 {
                bail!("{name} = 0: must be > 0");
            }
        }
        if self.method == Method::Hybrid && self.local_steps == 0 {
            bail!("local_steps = 0: the hybrid method needs --local-steps > 0");
        }
        if !(self.local_width > 0.0) {
            bail!("local_width = {}: must be > 0", self.local_width);
        }
        Ok(())
    }
}
