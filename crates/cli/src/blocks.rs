//! The block loop of `generate` and `sample`, serial or over MPI ranks: a
//! [`BlockRun`] of the library with the run's [`Dist`] as its exchange, the
//! output file as its sink (rank 0 only), Ctrl-C as its stop request and
//! the progress bar as its observer of updates.

use crate::interrupt::{self, Interrupted};
use crate::mpi_dist::{pack_arrays, unpack_arrays, Dist};
use anyhow::Result;
use fieldflow_core::run::{BlockChains, BlockObserver, BlockRun, BlockSink, ChainBlock, Exchange, RunError};
use fieldflow_io::{EnsembleSpec, EnsembleWriter, SeriesSpec};

/// The file layout of a run whose blocks have the given series (name, is
/// u8), in that order.
pub fn ensemble_spec(n_chains: usize, shape: &[usize], series: &[(&str, bool)]) -> EnsembleSpec {
    series
        .iter()
        .fold(EnsembleSpec::new(n_chains, shape), |spec, &(name, u8)| {
            spec.with_series(if u8 {
                SeriesSpec::u8(name)
            } else {
                SeriesSpec::f64(name)
            })
        })
}

impl Exchange for Dist {
    fn is_root(&self) -> bool {
        Dist::is_root(self)
    }

    fn gather(&self, mine: ChainBlock) -> Result<Option<Vec<ChainBlock>>, RunError> {
        if !self.is_parallel() {
            return Ok(Some(vec![mine]));
        }
        let (arrays, chain_json) = mine.to_message();
        let views: Vec<&[f64]> = arrays.iter().map(Vec::as_slice).collect();
        let json = serde_json::to_string(&chain_json).expect("strings serialize");
        let parts = self.gather_bytes(&pack_arrays(&views, &json));
        if !Dist::is_root(self) {
            return Ok(None);
        }
        let bad = |e: String| RunError::Exchange(format!("MPI block message: {e}"));
        let mut blocks = Vec::with_capacity(parts.len());
        for bytes in &parts {
            let (arrays, json) = unpack_arrays(bytes).map_err(|e| bad(e.to_string()))?;
            let chain_json: Vec<String> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
            blocks.push(ChainBlock::from_message(&mine, arrays, chain_json)?);
        }
        Ok(Some(blocks))
    }

    fn any(&self, flag: bool) -> bool {
        Dist::any(self, flag)
    }
}

/// Runs `chains` (this process's chains) until `writer` (rank 0's output)
/// holds `total` steps per chain, in blocks of `block`; `observer` sees
/// every stored block on rank 0 and `progress` every finished update.
/// Without a writer (ranks > 0) the run starts at step 0.
///
/// # Errors
/// A write or exchange failed, or the run was interrupted (the message
/// says where the partial file is and how to continue).
pub fn run_blocks(
    chains: &mut dyn BlockChains,
    writer: Option<&mut EnsembleWriter>,
    dist: &Dist,
    (total, block): (usize, usize),
    observer: &mut dyn BlockObserver,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let written = writer.as_ref().map_or(0, |w| w.n_cfg());
    let partial = writer.as_ref().map(|w| w.partial_path().display().to_string());
    let run = BlockRun { total, block, written };
    let stop = |blocks: usize| interrupt::requested() || interrupt::simulated(blocks);
    let sink = writer.map(|w| w as &mut dyn BlockSink);
    match run.run(chains, sink, dist, observer, progress, &stop) {
        Ok(()) => Ok(()),
        Err(RunError::Interrupted { written, total }) => {
            let how = if dist.is_parallel() {
                "--resume (one process)"
            } else {
                "--resume"
            };
            Err(Interrupted(format!(
                "interrupted: {written} of {total} steps per chain saved in {}; continue with {how}",
                partial.unwrap_or_default()
            ))
            .into())
        }
        Err(e) => Err(e.into()),
    }
}
