//! # fieldflow-core
//!
//! The vocabulary every other fieldflow crate speaks, and nothing else:
//!
//! * [`Target`]: an unnormalized density p̃(x) = exp(−S(x)) with its score
//!   ∇ₓ log p̃(x) = −∇S(x) (docs/THEORY.md §1.1);
//! * [`Proposal`]: something that draws x ~ q with an exact, normalized log q(x)
//!   (a normalizing flow, a Gaussian);
//! * [`HessianVector`]: targets with exact Hessian-vector products ∇²u·v of
//!   their energy u = −log p̃ ([`hessian`]; tests check them against
//!   finite differences of the score with the dev-only `fieldflow-testkit`);
//! * [`ExactSampler`]: targets that can also be sampled exactly (test beds);
//! * [`LocalKernel`]: one Markov update that leaves the target invariant,
//!   reporting an [`UpdateRecord`]; [`tuning`] adapts its step in warm-ups;
//! * [`Measure`]: per-configuration observables, so every sampler's output is
//!   measured through one interface;
//! * [`Seed`]: reproducible, thread-count independent random streams
//!   (Xoshiro256++);
//! * [`Par`] and [`par`]: deterministic data parallelism over the rows of a batch;
//! * [`ConfigError`]: the one-line "field = value: problem" error shared by all
//!   configuration validators.
//!
//! This crate depends on no other fieldflow crate.

pub mod error;
pub mod gaussian;
pub mod hessian;
pub mod kernel;
pub mod measure;
pub mod modes;
pub mod par;
pub mod proposal;
pub mod run;
pub mod seed;
pub mod target;
pub mod tuning;
pub mod update;

pub use error::ConfigError;
pub use gaussian::IsotropicGaussian;
pub use hessian::HessianVector;
pub use kernel::{LocalKernel, ScoreCache};
pub use measure::Measure;
pub use modes::Modes;
pub use par::Par;
pub use proposal::{ExactSampler, Proposal, ProposalDensity};
pub use seed::{Rng, Seed};
pub use target::Target;
pub use update::UpdateRecord;
