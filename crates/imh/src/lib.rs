//! # fieldflow-imh: exact sampling with an approximate proposal
//!
//! A normalizing flow q trained to match p(x) ∝ p̃(x) is only approximate; the
//! samplers here make its output exact (docs/THEORY.md §6.1–§6.3):
//!
//! * [`chain`]: independent Metropolis–Hastings (IMH). A proposal x′ ~ q is
//!   accepted with probability min(1, w(x′)/w(x)), w = p̃/q. The chain's
//!   stationary distribution is p whatever q is (as long as q > 0 where p > 0).
//! * [`isir`]: the selection rule of i-SIR, the other global move of a
//!   chain ([`GlobalMove`]): K proposals per step, the new state drawn among
//!   them and the current one with probability ∝ w (docs/THEORY.md §6.7).
//! * [`hybrid`]: local kernels (random walk, MALA; HMC is in
//!   `fieldflow-lattice`) and their step-size warm-up; k local updates
//!   between global moves (IMH or i-SIR) make the global–local sampler, for
//!   targets where the flow alone is poor (flow-MCMC, arXiv 2302.04763).
//! * [`importance`]: self-normalized importance sampling from raw flow draws:
//!   log-weights, normalized ESS, log Ẑ.
//! * [`modes`]: per-mode weights from flow samples, reweighted samples and IMH
//!   chains, against the truth, with the collapse and covering figures of
//!   docs/THEORY.md §8.5–§8.6.
//!
//! Everything works with any [`fieldflow_core::Proposal`] and any
//! [`fieldflow_core::Target`]; proposals and target densities are computed in
//! parallel batches, accept/reject decisions sequentially on their own random
//! stream, so a chain is bit-identical for any number of threads.

pub mod blocks;
pub mod chain;
pub mod hybrid;
pub mod importance;
pub mod isir;
pub mod modes;

pub use blocks::{ImhBlocks, ImportanceBlocks, ProposalWeights, PROPOSAL_LOG_W, SAMPLE_SERIES};
pub use chain::{accept, rejection_summary, GlobalMove, ImhBuffers, ImhChain, ImhConfig, ImhRun, ImhState};
pub use hybrid::{tune_step, LocalKernel, Mala, RandomWalk, StepTuning};
pub use importance::{importance_sample, ImportanceBatch};
pub use isir::{isir_probabilities, isir_select};
pub use modes::{ModeReport, ModeWeights};
