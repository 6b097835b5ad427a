//! IMH chains and importance-sampling streams as [`BlockChains`] of a block
//! run (`fieldflow_core::run`): what `fieldflow sample` writes.
//!
//! Per step both produce the series, in this order (docs/FORMATS.md): log p̃,
//! log q, log w = log p̃ − log q (of the state after the step), the IMH
//! decision `accepted`, the fraction of accepted local updates
//! `local_acceptance` (NaN without local updates) and `log_w_proposal`, the
//! log weight of the step's (first) proposal whether accepted or not — an
//! i.i.d. sample of the proposal's weights, whose Pareto tail says whether
//! the chain's error bars can be trusted (docs/THEORY.md §7.10).
//! Importance sampling has no decisions: every draw counts (`accepted` = 1,
//! `local_acceptance` = NaN, `log_w_proposal` = log w).
//!
//! Importance-sampling stream c draws block b from `seed.child(c).child(b)`
//! (IMH streams: [`crate::chain`]), so a run split over processes or
//! resumed equals an uninterrupted one.

use crate::chain::{ImhChain, ImhState};
use crate::importance::importance_sample;
use fieldflow_core::run::{BlockChains, ChainBlock, Series};
use fieldflow_core::{Par, Proposal, Seed, Target};
use ndarray::{Array2, Array3, Axis};

/// The names of the per-step series of a sample run, in order.
pub const SAMPLE_SERIES: [(&str, bool); 6] = [
    ("log_p", false),
    ("log_q", false),
    ("log_w", false),
    ("accepted", true),
    ("local_acceptance", false),
    (PROPOSAL_LOG_W, false),
];

/// The name of the series of the proposals' log weights.
pub const PROPOSAL_LOG_W: &str = "log_w_proposal";

/// Where the series `log_w_proposal` of a block comes from.
pub enum ProposalWeights {
    /// A chain's proposals, accepted or not (IMH, hybrid, i-SIR).
    Proposed(Array2<f64>),
    /// Every draw is a proposal: the series is log w itself (importance sampling).
    Draws,
    /// No independent proposals (neutra, SLIPS): NaN.
    None,
}

/// The series of one block, in the order of [`SAMPLE_SERIES`] (log w computed
/// here as log p̃ − log q); every sampler that writes a sample run uses it.
pub fn sample_series(
    log_p: Array2<f64>,
    log_q: Array2<f64>,
    accepted: Array2<u8>,
    local: Array2<f64>,
    proposals: ProposalWeights,
) -> Vec<Series> {
    let log_w = &log_p - &log_q;
    let proposal_log_w = match proposals {
        ProposalWeights::Proposed(w) => w,
        ProposalWeights::Draws => log_w.clone(),
        ProposalWeights::None => Array2::from_elem(log_w.dim(), f64::NAN),
    };
    vec![
        Series::F64(SAMPLE_SERIES[0].0, log_p),
        Series::F64(SAMPLE_SERIES[1].0, log_q),
        Series::F64(SAMPLE_SERIES[2].0, log_w),
        Series::U8(SAMPLE_SERIES[3].0, accepted),
        Series::F64(SAMPLE_SERIES[4].0, local),
        Series::F64(SAMPLE_SERIES[5].0, proposal_log_w),
    ]
}

/// IMH (or hybrid) chains `first..first + states.len()` of a run.
pub struct ImhBlocks<'a> {
    chain: ImhChain<'a>,
    states: Vec<ImhState>,
}

impl<'a> ImhBlocks<'a> {
    /// The chains of `chain` (whose first chain number is set by
    /// [`ImhChain::with_first_chain`]) in the given states.
    pub fn new(chain: ImhChain<'a>, states: Vec<ImhState>) -> Self {
        ImhBlocks { chain, states }
    }

    /// The chains' current states.
    pub fn states(&self) -> &[ImhState] {
        &self.states
    }
}

impl BlockChains for ImhBlocks<'_> {
    fn advance_block(&mut self, _b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
        let (n, dim) = (self.states.len(), self.chain.dim());
        let run = self.chain.run(&mut self.states, k, progress);
        ChainBlock {
            state: Array2::from_shape_fn((n, dim), |(i, j)| self.states[i].x[j]),
            chain_json: self
                .states
                .iter()
                .map(|s| serde_json::to_string(s).expect("an IMH state serializes"))
                .collect(),
            series: sample_series(
                run.log_p,
                run.log_q,
                run.accepted,
                run.local_acceptance,
                ProposalWeights::Proposed(run.proposal_log_w),
            ),
            configs: run.configs,
        }
    }
}

/// Importance-sampling streams `first..first + n` of a run: independent
/// draws with their weights.
pub struct ImportanceBlocks<'a> {
    /// The target.
    pub target: &'a dyn Target,
    /// The proposal.
    pub proposal: &'a dyn Proposal,
    /// The run's seed.
    pub seed: Seed,
    /// Number of the first stream.
    pub first: u64,
    /// Streams.
    pub n: usize,
}

impl BlockChains for ImportanceBlocks<'_> {
    fn advance_block(&mut self, b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
        let (n, dim) = (self.n, self.target.dim());
        let mut configs = Array3::zeros((n, k, dim));
        let (mut log_p, mut log_q) = (Array2::zeros((n, k)), Array2::zeros((n, k)));
        for i in 0..n {
            let seed = self.seed.child(self.first + i as u64).child(b);
            let batch = importance_sample(self.target, self.proposal, seed, k, Par::default());
            configs.index_axis_mut(Axis(0), i).assign(&batch.xs);
            log_p.row_mut(i).assign(&batch.log_p);
            log_q.row_mut(i).assign(&batch.log_q);
            progress(k as u64);
        }
        ChainBlock {
            state: configs.index_axis(Axis(1), k - 1).to_owned(),
            chain_json: Vec::new(),
            series: sample_series(
                log_p,
                log_q,
                Array2::ones((n, k)),
                Array2::from_elem((n, k), f64::NAN),
                ProposalWeights::Draws,
            ),
            configs,
        }
    }
}
