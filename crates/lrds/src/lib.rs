//! LRDS, the learned reference-based diffusion sampler (Noble, Grenioux,
//! Gabrié, Durmus, ICLR 2025, arXiv 2410.19449) with a Gaussian-mixture
//! reference; the mathematics is in docs/THEORY.md §6.14.
//!
//! * [`reference`]: the mixture reference (fitted by EM,
//!   `fieldflow_slips::em`), its exact forward marginals, score and reverse
//!   kernels under the variance-preserving process.
//! * [`sampler`]: the reverse chain with a learned drift correction, path
//!   log weights, the [`fieldflow_core::Proposal`] for IS and IMH.
//! * [`loss`]: the log-variance loss on detached paths and its gradient.
//! * [`trainer`]: Adam on that loss as a resumable
//!   [`fieldflow_losses::TrainLoop`].

pub mod loss;
pub mod reference;
pub mod sampler;
pub mod trainer;

pub use loss::{log_target, log_variance, path_log_weights, LvReport};
pub use reference::{GmmReference, RefWork};
pub use sampler::{FittedReference, LaplaceReference, LrdsConfig, LrdsModel, PathDraw, Paths};
pub use trainer::LrdsTrainer;
