//! Score-based diffusion samplers for lattice fields (issue 17;
//! docs/THEORY.md §6.11).
//!
//! A forward process ([`schedule`]) noises a field to a simple prior; a score
//! model ([`model`]) learns ∇ log p_t by denoising score matching ([`dsm`],
//! gradients by hand); a reverse-time integrator ([`reverse`]) turns prior
//! draws into fields. The score models here are translation invariant:
//! linear (one-layer, two-layer, local), local-cubic, and local-net (a
//! small periodic convolutional network on top, [`net`], with an exact
//! divergence). The linear ones are the setting in which Del Bono,
//! Biroli, Charbonneau and Gabrié (arXiv 2605.12597) analyse the critical
//! slowing down of training; for them the generated law is an exact
//! Gaussian, so samples carry an exact log q and the Gaussian-field oracle
//! ([`oracle`]) measures training progress as a KL without sampling noise.

pub mod dsm;
pub mod model;
pub mod net;
pub mod oracle;
pub mod reverse;
pub mod schedule;
pub mod spectrum;
pub mod train;
pub mod trainer;

pub use model::{score_and_divergence, spectrum_of, Architecture, FieldScore, ScoreModel, TimeGrid};
pub use net::{LocalNet, NetWork};
pub use oracle::{ExactScore, GaussianField};
pub use reverse::{Generated, Integrator, ReverseSampler};
pub use schedule::NoiseSchedule;
pub use spectrum::{Spectrum, SpectrumWork};
pub use trainer::{DiffusionConfig, DiffusionModel, DiffusionTrainer};
