//! SLIPS as a block run ([`fieldflow_core::run::BlockChains`]): the run's
//! particles written in blocks, so a long run is checkpointed and resumes
//! exactly, like the other samplers of `fieldflow sample`.
//!
//! The file holds one stream ("chain") of independent particles. Block b
//! of k particles draws particle j of the block from the stream
//! `seed.child(b).child(j)`, so a particle depends only on (seed, block
//! size, its index): a resumed run continues with exactly the particles
//! the uninterrupted run would have drawn, for any thread count.
//!
//! Series per particle (the sample schema, docs/FORMATS.md): `log_p` = log p̃
//! of the sample, `log_q` and `log_w` = NaN (SLIPS has no tractable density
//! of its output: the samples are used unweighted), `accepted` = 1,
//! `local_acceptance` = the particle's mean MCMC acceptance; and, where the
//! target has modes, [`START_MODE`] = the mode of the particle's first
//! denoiser estimate ([`crate::SlipsBatch::starts`], the start-decided
//! diagnostic of [`crate::start_decided`]), stored as f64.

use crate::{Denoiser, McmcSettings, Slips, SlipsConfig, StartDecided};
use fieldflow_core::run::Series;
use fieldflow_core::run::{BlockChains, ChainBlock};
use fieldflow_core::{ConfigError, Modes, Par, Seed, Target};
use fieldflow_imh::blocks::{sample_series, ProposalWeights};
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// The series of the mode of each particle's start estimate.
pub const START_MODE: &str = "start_mode";

/// Everything a SLIPS run needs (the `[sampler]` table of
/// `fieldflow sample --method slips`): particles and the write block, the
/// observation process ([`SlipsConfig`]) and the MCMC denoiser
/// ([`McmcSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlipsSettings {
    /// Particles (independent samples) of the run.
    pub particles: u64,
    /// Particles per write block (checkpoint interval).
    pub block: u64,
    /// The observation process and its integration.
    #[serde(flatten)]
    pub process: SlipsConfig,
    /// The MCMC denoiser.
    #[serde(flatten)]
    pub mcmc: McmcSettings,
}

impl Default for SlipsSettings {
    fn default() -> Self {
        SlipsSettings {
            particles: 1024,
            block: 256,
            process: SlipsConfig::default(),
            mcmc: McmcSettings::default(),
        }
    }
}

impl SlipsSettings {
    /// Checks every field (names under `sampler.`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.particles == 0 {
            return Err(ConfigError::new("sampler.particles", 0, "must be ≥ 1"));
        }
        if self.block == 0 {
            return Err(ConfigError::new("sampler.block", 0, "must be ≥ 1"));
        }
        self.process.validate("sampler")?;
        self.mcmc.validate("sampler")
    }
}

/// SLIPS particles written in blocks (module docs).
pub struct SlipsBlocks<'a, D: Denoiser> {
    /// The sampler.
    pub slips: Slips<'a, D>,
    /// The target (log p̃ of the samples).
    pub target: &'a dyn Target,
    /// The run's seed.
    pub seed: Seed,
    /// How particles are split over threads.
    pub par: Par,
    /// The target's modes, if the run records [`START_MODE`].
    pub start_modes: Option<&'a dyn Modes>,
    /// The start-decided counts of the blocks run so far (empty without
    /// `start_modes`).
    pub decided: StartDecided,
    /// Target evaluations of every particle so far (the samplers' plus
    /// one log p̃ per sample).
    pub evaluations: AtomicU64,
}

impl<D: Denoiser> BlockChains for SlipsBlocks<'_, D> {
    fn advance_block(&mut self, b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
        let seed = self.seed.child(b);
        let batch = self.slips.sample_with(
            k,
            |j| {
                progress(1);
                seed.child(j as u64)
            },
            self.par,
        );
        let dim = batch.xs.ncols();
        let mut log_p = Array1::zeros(k);
        self.target.log_prob_batch(batch.xs.view(), log_p.view_mut(), self.par);
        let total: u64 = batch.evaluations.iter().sum::<u64>() + k as u64;
        self.evaluations.fetch_add(total, Ordering::Relaxed);
        let row = |v: Array1<f64>| v.insert_axis(Axis(0));
        let mut series = sample_series(
            row(log_p),
            Array2::from_elem((1, k), f64::NAN),
            Array2::ones((1, k)),
            row(Array1::from(batch.acceptance)),
            ProposalWeights::None,
        );
        if let Some(modes) = self.start_modes {
            let start: Array1<f64> = modes
                .assign_batch(batch.starts.view())
                .into_iter()
                .map(|m| m as f64)
                .collect();
            self.decided
                .add(start.iter().copied(), modes.assign_batch(batch.xs.view()));
            series.push(Series::F64(START_MODE, row(start)));
        }
        ChainBlock {
            state: batch.xs.slice(ndarray::s![k - 1..k, ..]).to_owned(),
            chain_json: vec![String::from("null")],
            series,
            configs: batch.xs.into_shape_with_order((1, k, dim)).expect("k × d samples"),
        }
    }
}
