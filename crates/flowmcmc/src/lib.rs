//! # fieldflow-flowmcmc
//!
//! The flow-MCMC samplers that need a flow itself rather than a proposal:
//! neutra-MCMC, and (later, by the lead) adaptive flow-MCMC
//! (docs/THEORY.md §6.6, §6.9, §6.10; Grenioux, Durmus, Moulines and Gabrié,
//! arXiv 2302.04763).
//!
//! * [`neutra`]: neutra-MCMC (Hoffman et al., arXiv 1903.03704). A local
//!   Markov kernel (random walk, MALA, HMC) runs in latent space on the
//!   pulled-back density π̃(z) = p̃(f(z)) |det ∂f/∂z|
//!   ([`fieldflow_flows::Pullback`]), and every state is mapped back through
//!   x = f(z). The chain samples p exactly for any flow; the flow only
//!   conditions the latent geometry.
//!
//! Samplers that only need a flow's draws and density (independent
//! Metropolis–Hastings, hybrid chains, importance sampling) live in
//! `fieldflow-imh`; the chains here write the same per-step series
//! ([`fieldflow_imh::SAMPLE_SERIES`]) so every reader of a sample run works
//! unchanged.

pub mod neutra;

pub use neutra::{NeutraBlocks, NeutraChain, NeutraState};
