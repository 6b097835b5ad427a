//! Block runs: the loop that every long sampling job shares.
//!
//! A run advances a set of chains (Markov chains, or independent streams of
//! an importance sampler) in *blocks* of k steps. After every block it hands
//! the block of **all** chains to a sink (the ensemble writer, which appends
//! it with the checkpoint and flushes), tells its observers, and polls a stop
//! request; it stops cleanly after a complete block, so a run that is
//! interrupted (Ctrl-C) keeps every block it finished and resumes exactly.
//!
//! The chains of a run may be spread over several processes (MPI ranks).
//! Each process advances the contiguous block of chains it owns
//! ([`BlockChains`]), and an [`Exchange`] gathers the per-process blocks on
//! the root process in chain order, which is exactly the block one process
//! would have produced: a file written by R processes is the one-process
//! file. A single process is the trivial exchange ([`SingleProcess`]), so
//! serial and distributed runs share this one loop.
//!
//! The run knows neither the file format nor the progress display: it talks
//! to a [`BlockSink`] and to [`BlockObserver`]s.

use ndarray::{concatenate, Array2, Array3, Axis};

/// A per-step series of a block, owned, `[chains, k]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Series {
    /// f64 values.
    F64(&'static str, Array2<f64>),
    /// u8 values (decisions).
    U8(&'static str, Array2<u8>),
}

impl Series {
    /// The series' name.
    pub fn name(&self) -> &'static str {
        match self {
            Series::F64(n, _) | Series::U8(n, _) => n,
        }
    }

    /// The values as f64 (u8 converted), row-major.
    fn values(&self) -> Vec<f64> {
        match self {
            Series::F64(_, a) => a.iter().copied().collect(),
            Series::U8(_, a) => a.iter().map(|&v| f64::from(v)).collect(),
        }
    }

    /// The same series with `values` (row-major, `[chains, k]`).
    fn with_values(&self, chains: usize, k: usize, values: Vec<f64>) -> Result<Series, RunError> {
        let shape_err = |_| RunError::Exchange(format!("series {}: sizes do not match the block", self.name()));
        Ok(match self {
            Series::F64(n, _) => Series::F64(n, Array2::from_shape_vec((chains, k), values).map_err(shape_err)?),
            Series::U8(n, _) => Series::U8(
                n,
                Array2::from_shape_vec((chains, k), values)
                    .map_err(shape_err)?
                    .mapv(|v| v as u8),
            ),
        })
    }

    /// The f64 values, if this is an f64 series.
    pub fn as_f64(&self) -> Option<&Array2<f64>> {
        match self {
            Series::F64(_, a) => Some(a),
            Series::U8(..) => None,
        }
    }

    /// The u8 values, if this is a u8 series.
    pub fn as_u8(&self) -> Option<&Array2<u8>> {
        match self {
            Series::U8(_, a) => Some(a),
            Series::F64(..) => None,
        }
    }
}

/// k steps of a set of chains, and where the chains are after them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainBlock {
    /// Configurations `[chains, k, dim]`.
    pub configs: Array3<f64>,
    /// Named per-step series, each `[chains, k]`, in the sampler's order.
    pub series: Vec<Series>,
    /// Current configuration of every chain after the block, `[chains, dim]`.
    pub state: Array2<f64>,
    /// Each chain's resumable state as one JSON value (any JSON; empty
    /// strings for samplers without per-chain state).
    pub chain_json: Vec<String>,
}

impl ChainBlock {
    /// The series called `name`.
    pub fn series(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name() == name)
    }

    /// Steps in the block.
    pub fn len(&self) -> usize {
        self.configs.len_of(Axis(1))
    }

    /// Whether the block has no steps.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chain states as one JSON array (the checkpoint of the block).
    pub fn checkpoint_json(&self) -> String {
        format!("[{}]", self.chain_json.join(","))
    }

    /// The blocks of consecutive ranges of chains joined along the chain
    /// axis, in the order given: the block of all chains.
    ///
    /// # Errors
    /// No parts, or parts whose series or shapes differ.
    pub fn concatenate(parts: Vec<ChainBlock>) -> Result<ChainBlock, RunError> {
        let bad = |what: &str| RunError::Exchange(format!("blocks to join differ in {what}"));
        let first = parts.first().ok_or_else(|| bad("number (none given)"))?;
        let names: Vec<&str> = first.series.iter().map(Series::name).collect();
        if parts
            .iter()
            .any(|p| p.series.iter().map(Series::name).ne(names.iter().copied()))
        {
            return Err(bad("series"));
        }
        // The parts' arrays picked by `get` (None: a series of another type),
        // stacked along the chain axis.
        fn join<T: Clone, D: ndarray::RemoveAxis>(
            parts: &[ChainBlock],
            get: impl Fn(&ChainBlock) -> Option<ndarray::ArrayView<'_, T, D>>,
        ) -> Result<ndarray::Array<T, D>, RunError> {
            let views = parts
                .iter()
                .map(|p| get(p).ok_or_else(|| RunError::Exchange("blocks to join differ in types".into())))
                .collect::<Result<Vec<_>, _>>()?;
            concatenate(Axis(0), &views).map_err(|_| RunError::Exchange("blocks to join differ in shape".into()))
        }
        let configs = join(&parts, |p| Some(p.configs.view()))?;
        let state = join(&parts, |p| Some(p.state.view()))?;
        let mut series = Vec::with_capacity(names.len());
        for (i, s) in first.series.iter().enumerate() {
            series.push(match s {
                Series::F64(n, _) => Series::F64(n, join(&parts, |p| p.series[i].as_f64().map(|a| a.view()))?),
                Series::U8(n, _) => Series::U8(n, join(&parts, |p| p.series[i].as_u8().map(|a| a.view()))?),
            });
        }
        let chain_json = parts.into_iter().flat_map(|p| p.chain_json).collect();
        Ok(ChainBlock {
            configs,
            series,
            state,
            chain_json,
        })
    }

    /// The block as one message: every array as f64 (configurations,
    /// series in order, state) and the chain states (inverse:
    /// [`ChainBlock::from_message`] with a block of the same layout).
    pub fn to_message(&self) -> (Vec<Vec<f64>>, Vec<String>) {
        let mut arrays = Vec::with_capacity(self.series.len() + 2);
        arrays.push(self.configs.iter().copied().collect());
        arrays.extend(self.series.iter().map(Series::values));
        arrays.push(self.state.iter().copied().collect());
        (arrays, self.chain_json.clone())
    }

    /// Rebuilds a block from a message made by [`ChainBlock::to_message`]
    /// (of any number of chains); `layout` gives the series' names and types
    /// and the block's length and dimension (any block of the same sampler).
    ///
    /// # Errors
    /// The message does not fit the layout.
    pub fn from_message(
        layout: &ChainBlock,
        arrays: Vec<Vec<f64>>,
        chain_json: Vec<String>,
    ) -> Result<ChainBlock, RunError> {
        let (k, dim) = (layout.len(), layout.state.ncols());
        if arrays.len() != layout.series.len() + 2 {
            return Err(RunError::Exchange(format!(
                "{} arrays in a block message, expected {}",
                arrays.len(),
                layout.series.len() + 2
            )));
        }
        let shape_err = |_| RunError::Exchange("block message: sizes do not match the block".into());
        let chains = arrays.last().map_or(0, Vec::len) / dim.max(1);
        let mut it = arrays.into_iter();
        let mut next = || it.next().expect("length checked above");
        let configs = Array3::from_shape_vec((chains, k, dim), next()).map_err(shape_err)?;
        let mut series = Vec::with_capacity(layout.series.len());
        for s in &layout.series {
            series.push(s.with_values(chains, k, next())?);
        }
        let state = Array2::from_shape_vec((chains, dim), next()).map_err(shape_err)?;
        Ok(ChainBlock {
            configs,
            series,
            state,
            chain_json,
        })
    }
}

/// What can go wrong in a block run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The sink (file) failed.
    #[error("{0}")]
    Sink(String),
    /// Gathering blocks from the processes failed.
    #[error("{0}")]
    Exchange(String),
    /// Another process failed (its own error is reported there).
    #[error("another rank failed")]
    OtherRank,
    /// A stop was requested; `written` of `total` steps per chain are saved.
    #[error("interrupted: {written} of {total} steps per chain saved")]
    Interrupted {
        /// Steps per chain saved.
        written: usize,
        /// Steps per chain asked for.
        total: usize,
    },
}

/// Chains advanced block by block: the chains this process owns.
pub trait BlockChains {
    /// Advances every chain by `k` steps; `b` is the index of the block in
    /// the run (blocks are full except the last). `progress(u)` is called
    /// as updates complete (any thread).
    fn advance_block(&mut self, b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock;
}

/// The processes of a run, seen by the block loop.
pub trait Exchange {
    /// Whether this is the process that writes (rank 0).
    fn is_root(&self) -> bool;
    /// Every process's block on the root, in rank order (`None` on the
    /// other processes). Collective.
    ///
    /// # Errors
    /// (Root) a message is malformed.
    fn gather(&self, mine: ChainBlock) -> Result<Option<Vec<ChainBlock>>, RunError>;
    /// Whether `flag` is true on any process. Collective.
    fn any(&self, flag: bool) -> bool;
}

/// One process: gathering is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Exchange for SingleProcess {
    fn is_root(&self) -> bool {
        true
    }
    fn gather(&self, mine: ChainBlock) -> Result<Option<Vec<ChainBlock>>, RunError> {
        Ok(Some(vec![mine]))
    }
    fn any(&self, flag: bool) -> bool {
        flag
    }
}

/// Where complete blocks go (on the root): a file that appends and flushes.
///
/// A resumed run starts at the steps the sink already holds
/// ([`BlockRun::written`]).
pub trait BlockSink {
    /// Stores one block of all chains with its checkpoint.
    ///
    /// # Errors
    /// The write failed; the run stops.
    fn append(&mut self, block: &ChainBlock) -> Result<(), RunError>;
}

/// Told about every block of all chains the root stores (summaries,
/// progress messages).
pub trait BlockObserver {
    /// Called after `block` was stored; `written` steps per chain are now saved.
    fn observe_block(&mut self, block: &ChainBlock, written: usize);
}

impl<F: FnMut(&ChainBlock, usize)> BlockObserver for F {
    fn observe_block(&mut self, block: &ChainBlock, written: usize) {
        self(block, written)
    }
}

/// The settings of a block run.
#[derive(Debug, Clone, Copy)]
pub struct BlockRun {
    /// Steps per chain the run must hold at the end.
    pub total: usize,
    /// Steps per chain per block.
    pub block: usize,
    /// Steps per chain already stored (0, or a resumed file's count).
    pub written: usize,
}

impl BlockRun {
    /// Advances `chains` block by block until `total` steps per chain are
    /// stored: the root gathers every block, hands it to `sink` (only the
    /// root has one) and to `observer`; after each block every process asks
    /// `stop(blocks_done)`, and if any process says yes the run ends with
    /// [`RunError::Interrupted`] (unless it was the last block).
    ///
    /// A failure on one process is turned into a failure on all of them
    /// (the root's error where it has one), so every process leaves the loop
    /// at the same block.
    ///
    /// # Errors
    /// The sink or the exchange failed, or a stop was requested.
    pub fn run(
        &self,
        chains: &mut dyn BlockChains,
        mut sink: Option<&mut dyn BlockSink>,
        exchange: &dyn Exchange,
        observer: &mut dyn BlockObserver,
        progress: &(dyn Fn(u64) + Sync),
        stop: &dyn Fn(usize) -> bool,
    ) -> Result<(), RunError> {
        let (mut written, mut blocks) = (self.written, 0usize);
        while written < self.total {
            let k = self.block.min(self.total - written);
            let b = (written / self.block) as u64;
            let mine = chains.advance_block(b, k, progress);
            let stored = exchange
                .gather(mine)
                .and_then(|parts| match (parts, sink.as_deref_mut()) {
                    (Some(parts), Some(sink)) => {
                        let all = ChainBlock::concatenate(parts)?;
                        sink.append(&all)?;
                        observer.observe_block(&all, written + k);
                        Ok(())
                    }
                    (Some(_), None) => Err(RunError::Sink("the root process has no output".into())),
                    (None, _) => Ok(()),
                });
            let failed = exchange.any(stored.is_err());
            match stored {
                Err(e) => return Err(e),
                Ok(()) if failed => return Err(RunError::OtherRank),
                Ok(()) => {}
            }
            written += k;
            blocks += 1;
            if exchange.any(stop(blocks)) && written < self.total {
                return Err(RunError::Interrupted {
                    written,
                    total: self.total,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chains c = first.. whose step t has x = 10·c + global step, and a
    /// u8 series of the parity.
    struct Counter {
        first: usize,
        n: usize,
        step: usize,
    }

    impl BlockChains for Counter {
        fn advance_block(&mut self, _b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
            let (first, step) = (self.first, self.step);
            let x = |c: usize, t: usize| (10 * (first + c) + step + t) as f64;
            let configs = Array3::from_shape_fn((self.n, k, 1), |(c, t, _)| x(c, t));
            let parity = Array2::from_shape_fn((self.n, k), |(c, t)| (x(c, t) as u8) % 2);
            let xs = Array2::from_shape_fn((self.n, k), |(c, t)| x(c, t));
            self.step += k;
            progress((self.n * k) as u64);
            ChainBlock {
                state: Array2::from_shape_fn((self.n, 1), |(c, _)| x(c, k - 1)),
                series: vec![Series::F64("x", xs), Series::U8("parity", parity)],
                chain_json: (0..self.n).map(|c| format!("{}", self.first + c)).collect(),
                configs,
            }
        }
    }

    #[derive(Default)]
    struct Memory {
        blocks: Vec<ChainBlock>,
    }

    impl Memory {
        fn n_written(&self) -> usize {
            self.blocks.iter().map(ChainBlock::len).sum()
        }
    }

    impl BlockSink for Memory {
        fn append(&mut self, block: &ChainBlock) -> Result<(), RunError> {
            self.blocks.push(block.clone());
            Ok(())
        }
    }

    /// Two "processes" simulated in one: the exchange of the first one
    /// gathers its block with the one the second computed beforehand.
    struct TwoRanks {
        other: std::cell::RefCell<Counter>,
    }

    impl Exchange for TwoRanks {
        fn is_root(&self) -> bool {
            true
        }
        fn gather(&self, mine: ChainBlock) -> Result<Option<Vec<ChainBlock>>, RunError> {
            let k = mine.len();
            let theirs = self.other.borrow_mut().advance_block(0, k, &|_| {});
            let (arrays, json) = theirs.to_message();
            let theirs = ChainBlock::from_message(&mine, arrays, json)?;
            Ok(Some(vec![mine, theirs]))
        }
        fn any(&self, flag: bool) -> bool {
            flag
        }
    }

    fn run_blocks(exchange: &dyn Exchange, first_chains: usize, stop_after: usize) -> (Memory, Result<(), RunError>) {
        let mut sink = Memory::default();
        let mut chains = Counter {
            first: 0,
            n: first_chains,
            step: 0,
        };
        let run = BlockRun {
            total: 7,
            block: 3,
            written: 0,
        };
        let r = run.run(
            &mut chains,
            Some(&mut sink),
            exchange,
            &mut |_: &ChainBlock, _: usize| {},
            &|_| {},
            &|blocks| blocks >= stop_after,
        );
        (sink, r)
    }

    #[test]
    fn blocks_are_full_but_the_last() {
        let (sink, r) = run_blocks(&SingleProcess, 3, usize::MAX);
        r.unwrap();
        let lens: Vec<usize> = sink.blocks.iter().map(ChainBlock::len).collect();
        assert_eq!(lens, vec![3, 3, 1]);
        assert_eq!(sink.blocks[2].configs[[2, 0, 0]], 26.0);
        assert_eq!(sink.blocks[2].checkpoint_json(), "[0,1,2]");
    }

    #[test]
    fn gathered_blocks_equal_one_process() {
        let (one, r) = run_blocks(&SingleProcess, 3, usize::MAX);
        r.unwrap();
        let two = TwoRanks {
            other: std::cell::RefCell::new(Counter {
                first: 1,
                n: 2,
                step: 0,
            }),
        };
        let (split, r) = run_blocks(&two, 1, usize::MAX);
        r.unwrap();
        assert_eq!(one.blocks, split.blocks);
    }

    #[test]
    fn stop_ends_after_a_complete_block() {
        let (sink, r) = run_blocks(&SingleProcess, 2, 1);
        assert!(matches!(r, Err(RunError::Interrupted { written: 3, total: 7 })));
        assert_eq!(sink.n_written(), 3);
        // A stop requested during the last block is not an interruption.
        let (sink, r) = run_blocks(&SingleProcess, 2, 3);
        r.unwrap();
        assert_eq!(sink.n_written(), 7);
    }

    #[test]
    fn joining_mismatched_blocks_is_an_error() {
        let mut a = Counter {
            first: 0,
            n: 1,
            step: 0,
        }
        .advance_block(0, 2, &|_| {});
        let b = Counter {
            first: 1,
            n: 1,
            step: 0,
        }
        .advance_block(0, 3, &|_| {});
        assert!(ChainBlock::concatenate(vec![a.clone(), b]).is_err());
        a.series.pop();
        let c = Counter {
            first: 1,
            n: 1,
            step: 0,
        }
        .advance_block(0, 2, &|_| {});
        assert!(ChainBlock::concatenate(vec![a, c]).is_err());
        assert!(ChainBlock::concatenate(vec![]).is_err());
    }
}
