//! Mode assignment (docs/THEORY.md §3.8, §8.5): which mode of a multimodal target a sample
//! belongs to, and the exact weight of every mode where it is known.
//!
//! Mixtures assign a sample to the nearest mean (Euclidean distance), the
//! double well by the sign of x₁, the 1D φ⁴ field by the sign of its middle
//! site φ_m, m = ⌈N/2⌉ (docs/THEORY.md §3.5). Mode weights estimated from samples are the fractions of
//! samples assigned to each mode ([`Modes::mode_fractions`]).

use fieldflow_core::{ExactSampler, HessianVector, Target};

pub use fieldflow_core::Modes;

/// Everything a synthetic target offers, behind one trait object: the
/// density ([`Target`]), its modes ([`Modes`]), exact Hessian-vector
/// products ([`HessianVector`]) and, where available, an exact sampler. [`crate::TargetConfig::validate`] returns a `Box<dyn SyntheticTarget>`.
///
/// The `as_*` methods exist because trait upcasting needs Rust ≥ 1.86 and
/// the workspace supports 1.85.
pub trait SyntheticTarget: Target + Modes {
    /// This target as a `&dyn Target`.
    fn as_target(&self) -> &dyn Target;
    /// This target's modes as a `&dyn Modes`.
    fn as_modes(&self) -> &dyn Modes;
    /// The exact sampler, if the target has one.
    fn exact_sampler(&self) -> Option<&dyn ExactSampler>;
    /// Exact Hessian-vector products ∇²u(x)·v of the energy u = −log p̃
    /// ([`HessianVector::hvp`]) when the target implements them; every
    /// synthetic target of this crate does.
    fn hessian_vector(&self) -> Option<&dyn HessianVector>;
}

/// Implements [`SyntheticTarget`] for a type that implements `Target`,
/// `Modes`, `HessianVector` and (with the `exact` form) `ExactSampler`.
macro_rules! impl_synthetic_target {
    ($t:ty, exact) => {
        impl $crate::modes::SyntheticTarget for $t {
            fn as_target(&self) -> &dyn fieldflow_core::Target {
                self
            }
            fn as_modes(&self) -> &dyn $crate::modes::Modes {
                self
            }
            fn exact_sampler(&self) -> Option<&dyn fieldflow_core::ExactSampler> {
                Some(self)
            }
            fn hessian_vector(&self) -> Option<&dyn fieldflow_core::HessianVector> {
                Some(self)
            }
        }
    };
    ($t:ty) => {
        impl $crate::modes::SyntheticTarget for $t {
            fn as_target(&self) -> &dyn fieldflow_core::Target {
                self
            }
            fn as_modes(&self) -> &dyn $crate::modes::Modes {
                self
            }
            fn exact_sampler(&self) -> Option<&dyn fieldflow_core::ExactSampler> {
                None
            }
            fn hessian_vector(&self) -> Option<&dyn fieldflow_core::HessianVector> {
                Some(self)
            }
        }
    };
}
pub(crate) use impl_synthetic_target;
