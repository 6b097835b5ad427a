//! # fieldflow-lattice
//!
//! Lattice φ⁴ field theory in d = 1..4 dimensions (docs/THEORY.md §2):
//!
//! * [`geometry`]: periodic lattices of any shape, row-major indices,
//!   neighbour tables, checkerboard parity;
//! * [`action`]: the φ⁴ action and force ([`Phi4`] implements
//!   [`fieldflow_core::Target`]), standard or hopping-parameter couplings;
//! * [`hmc`] and [`integrator`]: Hybrid Monte Carlo with leapfrog or Omelyan
//!   integration (docs/THEORY.md §2.5);
//! * [`metropolis`]: local Metropolis with checkerboard sweeps;
//! * [`tuning`]: step-size / width adaptation during thermalization only;
//! * [`chains`]: many independent chains in parallel, bit-reproducible for
//!   any thread count, resumable from plain-data [`ChainState`]s;
//! * [`free_field`]: exact results for λ = 0, the validation oracle;
//! * [`observables`]: per-configuration primaries ([`Phi4Observables`]
//!   implements [`fieldflow_core::Measure`]) and two-point functions.
//!
//! Kernels never print, never touch files, and allocate nothing per update.

pub mod action;
pub mod blocks;
pub mod chains;
pub mod fft;
pub mod free_field;
pub mod geometry;
pub mod hmc;
pub mod integrator;
mod kernel;
pub mod metropolis;
pub mod modes;
pub mod observables;
/// Step-size tuning (moved to `fieldflow_core::tuning`, shared with the
/// flow-MCMC kernels).
pub use fieldflow_core::tuning;
/// The outcome of an update (moved to `fieldflow_core::update`).
pub use fieldflow_core::update;

pub use action::{CouplingForm, Phi4, Phi4Config};
pub use blocks::{Phi4Blocks, ENSEMBLE_SERIES};
pub use chains::{
    advance, init_states, thermalize, update_seed, Algorithm, AlgorithmConfig, ChainRecords, ChainState, Start,
    ThermalizationReport, UpdateRecord,
};
pub use free_field::FreeField;
pub use geometry::Lattice;
pub use hmc::{Hmc, HmcConfig, HmcKernel};
pub use integrator::Integrator;
pub use metropolis::{Metropolis, MetropolisConfig, MetropolisSweep};
pub use modes::Phi4Modes;
pub use observables::{Phi4Observables, TwoPoint};
