//! Mode assignment (docs/THEORY.md §3.8, §8.5): which mode of a multimodal target a sample
//! belongs to, and the exact weight of every mode where it is known.
//!
//! Mixtures assign a sample to the nearest mean (Euclidean distance), the
//! double well by the sign of x₁, the 1D φ⁴ field by the sign of its mean
//! M = (1/N) Σᵢ φᵢ. Mode weights estimated from samples are the fractions of
//! samples assigned to each mode ([`Modes::mode_fractions`]).

use fieldflow_core::{ExactSampler, HessianVector, Target};
use ndarray::{ArrayView1, ArrayView2, Axis};

/// A target whose probability mass splits into `n_modes()` labelled modes.
pub trait Modes: Send + Sync {
    /// Number of modes (1 for a unimodal target).
    fn n_modes(&self) -> usize;

    /// The exact probability of every mode, summing to 1, when known
    /// (mixtures: the mixture weights; double well: by quadrature; φ⁴ with
    /// b = 0: ½, ½ by symmetry); `None` otherwise.
    fn true_weights(&self) -> Option<Vec<f64>>;

    /// The mode `x` belongs to, in `0..n_modes()`.
    fn assign(&self, x: ArrayView1<f64>) -> usize;

    /// The mode of every row of `xs`.
    fn assign_batch(&self, xs: ArrayView2<f64>) -> Vec<usize> {
        xs.axis_iter(Axis(0)).map(|x| self.assign(x)).collect()
    }

    /// The fraction of the rows of `xs` assigned to each mode (all zero for
    /// an empty batch).
    fn mode_fractions(&self, xs: ArrayView2<f64>) -> Vec<f64> {
        let mut counts = vec![0usize; self.n_modes()];
        for k in self.assign_batch(xs) {
            counts[k] += 1;
        }
        let n = xs.nrows().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / n).collect()
    }
}

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
