//! Mode assignment: which mode of a multimodal target a sample belongs to,
//! and the exact weight of every mode where it is known (docs/THEORY.md §8).
//!
//! The relative weights of separated modes are what a multimodal sampler
//! must get right; every target with modes says how a sample is assigned
//! (mixtures: nearest mean; double well: sign of x₁; 1D φ⁴: sign of the
//! middle site; lattice φ⁴: sign of the magnetization) and, where known,
//! the exact weights. Mode weights estimated from samples are the fractions
//! of samples assigned to each mode ([`Modes::mode_fractions`]).

use ndarray::{ArrayView1, ArrayView2, Axis};

/// A target whose probability mass splits into `n_modes()` labelled modes.
pub trait Modes: Send + Sync {
    /// Number of modes (1 for a unimodal target).
    fn n_modes(&self) -> usize;

    /// The exact probability of every mode, summing to 1, when known
    /// (mixtures: the mixture weights; double well: by quadrature; 1D φ⁴:
    /// by the transfer operator, ½, ½ at b = 0 by symmetry); `None`
    /// otherwise.
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
