//! Free-energy differences between modes (docs/THEORY.md §6.13).
//!
//! The relative weight of two modes is a ratio of partition functions. When
//! the modes are separated by a barrier of tens of nats, or one weighs 1e-10
//! of the other, no sampler of the full density estimates it from counts;
//! the physicist's tools are thermodynamic integration and constrained
//! sampling, which this crate provides for any [`fieldflow_core::Target`]
//! with a score:
//!
//! * [`conditioned`]: the target with an external linear field, restricted
//!   to a half-space of a linear variable (a phase), with one coordinate
//!   clamped;
//! * [`chains`]: independent HMC chains with a tuned, frozen step; chain r of
//!   every node is replica r of an estimate, which gives honest error bars;
//! * [`integrate`]: log Z differences along a field (Gauss–Legendre) and
//!   free-energy profiles of a coordinate from clamped mean forces;
//! * [`phases`]: mode weights of a Z₂-symmetric system in a field (the
//!   tilted 1D φ⁴ chain of the multimodal benchmark), from the phases'
//!   free-energy difference and the in-phase probabilities of the mode
//!   coordinate's sign.
//!
//! Exactness: every estimate is consistent (MCMC on the exact restricted
//! laws, quadratures whose error is measured by refinement); the tests check
//! them against Gaussians (closed form) and the transfer-operator oracle of
//! the 1D chain.

pub mod chains;
pub mod conditioned;
pub mod integrate;
pub mod phases;

pub use chains::{hooked_node, run_node, ChainSettings, NoHooks, NodeHooks, NodeRun, Replicas};
pub use conditioned::{Clamp, Conditioned, Field, HalfSpace, LinearCv, Side};
pub use integrate::{constrained_profile, field_integral, uniform_grid, FieldIntegral, Profile};
pub use phases::{estimate, gaussian_log_mode_ratio, log_mode_ratio, PhaseEstimate, PhaseProblem};
