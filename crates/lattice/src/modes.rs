//! The two modes of lattice φ⁴ in the broken phase: the sign of the
//! magnetization M = Σₓ φ(x). Mode 0 for M < 0, mode 1 for M ≥ 0; by the
//! φ → −φ symmetry of the action the exact weights are ½, ½.

use fieldflow_core::Modes;
use ndarray::ArrayView1;

/// φ⁴ modes by the sign of M (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Phi4Modes;

impl Modes for Phi4Modes {
    fn n_modes(&self) -> usize {
        2
    }
    fn true_weights(&self) -> Option<Vec<f64>> {
        Some(vec![0.5, 0.5])
    }
    fn assign(&self, x: ArrayView1<f64>) -> usize {
        (x.sum() >= 0.0) as usize
    }
}
