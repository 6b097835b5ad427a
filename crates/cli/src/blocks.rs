//! The block loop shared by `generate` and `sample`: produce k steps for all
//! chains, append them with the chains' checkpoint, flush, repeat; stop
//! cleanly on Ctrl-C after a complete block.

use crate::interrupt::{self, Interrupted};
use anyhow::Result;
use fieldflow_io::{Block, EnsembleWriter, SeriesView};
use ndarray::{Array2, Array3};

/// A per-step series of a block, owned.
pub enum Series {
    /// f64 values `[chains, k]`.
    F64(&'static str, Array2<f64>),
    /// u8 values `[chains, k]`.
    U8(&'static str, Array2<u8>),
}

/// One block of output: k steps of every chain and the chains' state after it.
pub struct BlockData {
    /// Configurations `[chains, k, dim]`.
    pub configs: Array3<f64>,
    /// Named per-step series.
    pub series: Vec<Series>,
    /// Current configuration of every chain `[chains, dim]`.
    pub state: Array2<f64>,
    /// Everything else a resume needs, as JSON.
    pub chains_json: String,
}

/// Appends one block (configurations, series, checkpoint) to the file.
pub fn append_block(writer: &mut EnsembleWriter, data: &BlockData) -> Result<()> {
    let views: Vec<(&str, SeriesView)> = data
        .series
        .iter()
        .map(|s| match s {
            Series::F64(name, a) => (*name, SeriesView::F64(a.view())),
            Series::U8(name, a) => (*name, SeriesView::U8(a.view())),
        })
        .collect();
    writer.append(&Block {
        configs: data.configs.view(),
        series: &views,
        state: data.state.view(),
        chains: &data.chains_json,
    })?;
    Ok(())
}

/// Appends blocks of at most `block` steps until the file holds `total`
/// steps per chain; `produce(k)` makes the next k steps. After each block
/// `after_block(steps_written)` may update a progress message.
pub fn write_blocks(
    writer: &mut EnsembleWriter,
    total: usize,
    block: usize,
    mut produce: impl FnMut(usize) -> Result<BlockData>,
    mut after_block: impl FnMut(usize),
) -> Result<()> {
    let mut blocks = 0;
    while writer.n_cfg() < total {
        let k = block.min(total - writer.n_cfg());
        let data = produce(k)?;
        append_block(writer, &data)?;
        blocks += 1;
        after_block(writer.n_cfg());
        if (interrupt::requested() || interrupt::simulated(blocks)) && writer.n_cfg() < total {
            return Err(Interrupted(format!(
                "interrupted: {} of {} steps per chain saved in {}; continue with --resume",
                writer.n_cfg(),
                total,
                writer.partial_path().display()
            ))
            .into());
        }
    }
    Ok(())
}
