//! # fieldflow-flowmcmc
//!
//! The flow-MCMC samplers that need a flow itself rather than a proposal:
//! neutra-MCMC and adaptive flow-MCMC
//! (docs/THEORY.md §6.6, §6.9, §6.10; Grenioux, Durmus, Moulines and Gabrié,
//! arXiv 2302.04763).
//!
//! * [`neutra`]: neutra-MCMC (Hoffman et al., arXiv 1903.03704). A local
//!   Markov kernel (random walk, MALA, HMC) runs in latent space on the
//!   pulled-back density π̃(z) = p̃(f(z)) |det ∂f/∂z|
//!   ([`fieldflow_flows::Pullback`]), and every state is mapped back through
//!   x = f(z). The chain samples p exactly for any flow; the flow only
//!   conditions the latent geometry.
//! * [`adaptive`]: adaptive flow-MCMC (Gabrié, Rotskoff and
//!   Vanden-Eijnden, PNAS 2022): walkers move by global–local steps with the
//!   current flow, and the flow takes Adam steps of the forward KL on the
//!   walkers; production then samples with the frozen flow.
//!
//! Samplers that only need a flow's draws and density (independent
//! Metropolis–Hastings, hybrid chains, importance sampling) live in
//! `fieldflow-imh`; the chains here write the same per-step series
//! ([`fieldflow_imh::SAMPLE_SERIES`]) so every reader of a sample run works
//! unchanged.

pub mod adaptive;
pub mod neutra;

pub use adaptive::{broad_starts, Adaptive, AdaptiveConfig, AdaptiveState, RoundRecord};
pub use neutra::{NeutraBlocks, NeutraChain, NeutraState};
