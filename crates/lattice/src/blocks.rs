//! Lattice Markov chains as [`BlockChains`] of a block run
//! (`fieldflow_core::run`): what `fieldflow generate` writes.
//!
//! Per saved step the series are, in this order (docs/FORMATS.md): log p̃ of
//! the saved field, whether the update that produced it was `accepted`,
//! its ΔH (NaN for Metropolis) and the mean `acceptance` of the `thin`
//! updates since the previous save ([`crate::chains::advance`]).

use crate::action::Phi4;
use crate::chains::{advance, Algorithm, ChainRecords, ChainState};
use fieldflow_core::run::{BlockChains, ChainBlock, Series};
use fieldflow_core::{Seed, Target};
use ndarray::Array2;

/// The names of the per-step series of an ensemble, in order, and whether
/// each is a u8 series.
pub const ENSEMBLE_SERIES: [(&str, bool); 4] = [
    ("log_p", false),
    ("accepted", true),
    ("delta_h", false),
    ("acceptance", false),
];

/// Thermalized chains of a φ⁴ target, saving every `thin`-th update.
pub struct Phi4Blocks<'a> {
    /// The target.
    pub target: &'a Phi4,
    /// HMC or Metropolis.
    pub algorithm: &'a Algorithm,
    /// The run's seed.
    pub seed: Seed,
    /// Updates per saved configuration.
    pub thin: u64,
    /// The chains (each knows its id, hence its random streams).
    pub states: Vec<ChainState>,
}

impl BlockChains for Phi4Blocks<'_> {
    fn advance_block(&mut self, _b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
        let (n, dim) = (self.states.len(), self.target.dim());
        let mut rec = ChainRecords::new(n, k, dim);
        advance(
            self.target,
            self.algorithm,
            self.seed,
            &mut self.states,
            self.thin,
            &mut rec,
            progress,
        );
        ChainBlock {
            state: Array2::from_shape_fn((n, dim), |(i, j)| self.states[i].phi[j]),
            chain_json: self
                .states
                .iter()
                .map(|s| serde_json::to_string(s).expect("a chain state serializes"))
                .collect(),
            series: vec![
                Series::F64(ENSEMBLE_SERIES[0].0, rec.log_p),
                Series::U8(ENSEMBLE_SERIES[1].0, rec.accepted.mapv(u8::from)),
                Series::F64(ENSEMBLE_SERIES[2].0, rec.delta_h),
                Series::F64(ENSEMBLE_SERIES[3].0, rec.acceptance),
            ],
            configs: rec.configs,
        }
    }
}
