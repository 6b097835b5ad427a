//! Per-configuration observables.
//!
//! Every sampler (HMC, Metropolis, IMH, importance sampling) stores
//! configurations; a [`Measure`] turns one configuration into a fixed list of
//! primary observables (e.g. M, |M|, M², M⁴ for φ⁴), so all chains are measured
//! the same way and analysed by the same statistics code.

use ndarray::ArrayView1;

/// Maps one configuration to `names().len()` primary observables.
pub trait Measure: Send + Sync {
    /// Names of the primary observables, in output order.
    fn names(&self) -> Vec<String>;

    /// Writes the observables of configuration `x` into `out`.
    ///
    /// # Panics
    /// If `out.len() != names().len()`.
    fn measure(&self, x: ArrayView1<f64>, out: &mut [f64]);
}
