//! # fieldflow-targets
//!
//! The synthetic targets of docs/THEORY.md §3, test beds for normalizing-flow
//! samplers. Every target implements [`fieldflow_core::Target`] (log p̃, the
//! score ∇ₓ log p̃ in one fused pass, a description, and log Z where it is
//! known), [`Modes`] (mode assignment and exact mode weights) and
//! [`fieldflow_core::HessianVector`] (exact Hessian-vector products ∇²u·v of
//! the energy u = −log p̃, as stochastic normalizing flows need them); all
//! but the 1D φ⁴ field also implement [`fieldflow_core::ExactSampler`].
//!
//! | target | density | log Z | exact samples | modes |
//! |---|---|---|---|---|
//! | [`Gaussian`] | exp(−½ (x−μ)ᵀΣ⁻¹(x−μ)), unnormalized | ½ log det 2πΣ | μ + Lz | 1 |
//! | [`GaussianMixture`] | Σₖ wₖ N(μₖ, Σₖ), normalized | 0 | yes | nearest mean, weights wₖ |
//! | [`GaussianMixture::mog4`], [`mog8`](GaussianMixture::mog8), [`two_modes`](GaussianMixture::two_modes) | presets of docs/THEORY.md §3.3 | 0 | yes | nearest mean |
//! | [`GaussianMixture::separated`] | K isotropic modes on a line, separation s σ | 0 | yes | nearest mean, exact region weights |
//! | [`DoubleWell`] | exp(−a x₁ − b x₁² − c x₁⁴ − ½ x₂²) | quadrature (≈1e-14) | rejection | sign of x₁, weights by quadrature |
//! | [`Phi4Field1d`] | exp(−βU(φ)), Dirichlet ends | transfer operator ([`transfer_operator`], to rounding) | — | sign of the middle site, weights by the transfer operator |
//!
//! The densities are stated in each module's documentation. A run selects a
//! target through [`TargetConfig`] (serde, tagged by `kind`), whose
//! [`validate`](TargetConfig::validate) returns a `Box<dyn SyntheticTarget>`
//! or a [`fieldflow_core::ConfigError`] naming the offending field.
//!
//! Exact samplers follow core's convention: chunk k of a batch (as split by
//! [`fieldflow_core::Par`]) draws from stream `seed.child(k)`, so samples are
//! bit-identical for any number of threads.
//!
//! Covariances are factored once (Cholesky, inverse, log-determinant) through
//! ndarray-linalg / LAPACK; per-sample kernels allocate nothing.

pub mod config;
pub mod double_well;
pub mod gaussian;
mod linalg;
pub mod mixture;
pub mod modes;
pub mod phi4_1d;
mod presets;
pub mod quadrature;
#[cfg(test)]
mod testing;
pub mod transfer_operator;

pub use config::{CovarianceConfig, TargetConfig};
pub use double_well::DoubleWell;
pub use gaussian::Gaussian;
pub use mixture::{Covariance, GaussianMixture};
pub use modes::{Modes, SyntheticTarget};
pub use phi4_1d::Phi4Field1d;
pub use presets::SeparationAxis;
pub use quadrature::GaussLegendre;
