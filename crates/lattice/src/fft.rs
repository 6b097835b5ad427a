//! d-dimensional discrete Fourier transforms of row-major lattice fields.
//!
//! Forward: f̃(n) = Σₓ f(x) exp(−2πi Σ_μ n_μ x_μ / L_μ);
//! inverse: f(x) = Σ_n f̃(n) exp(+2πi Σ_μ n_μ x_μ / L_μ) (unnormalized: divide
//! by V yourself). Done axis by axis with rustfft (one 1-D transform per line
//! along each axis), so any extents work.

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Reusable buffers of [`FftNd::transform_with`]: one line of the lattice
/// and rustfft's in-place scratch.
#[derive(Debug, Default, Clone)]
pub struct FftWork {
    line: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

/// Planned forward and inverse transforms for one lattice shape.
pub struct FftNd {
    shape: Vec<usize>,
    forward: Vec<Arc<dyn Fft<f64>>>,
    inverse: Vec<Arc<dyn Fft<f64>>>,
}

impl std::fmt::Debug for FftNd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FftNd({:?})", self.shape)
    }
}

impl FftNd {
    /// Plans the transforms of a lattice of extents `shape` (all ≥ 1).
    pub fn new(shape: &[usize]) -> Self {
        let mut planner = FftPlanner::new();
        FftNd {
            shape: shape.to_vec(),
            forward: shape.iter().map(|&l| planner.plan_fft_forward(l)).collect(),
            inverse: shape.iter().map(|&l| planner.plan_fft_inverse(l)).collect(),
        }
    }

    /// Transforms `data` (row-major, length V) in place.
    ///
    /// # Panics
    /// If `data.len()` is not the volume.
    pub fn transform(&self, data: &mut [Complex<f64>], inverse: bool) {
        self.transform_with(data, inverse, &mut FftWork::default());
    }

    /// As [`FftNd::transform`], with caller-owned buffers (no allocation once
    /// `work` has served this shape).
    ///
    /// # Panics
    /// If `data.len()` is not the volume.
    pub fn transform_with(&self, data: &mut [Complex<f64>], inverse: bool, work: &mut FftWork) {
        let FftWork { line, scratch } = work;
        let volume: usize = self.shape.iter().product();
        assert_eq!(data.len(), volume, "data length differs from the volume");
        let d = self.shape.len();
        for mu in 0..d {
            let l = self.shape[mu];
            if l == 1 {
                continue;
            }
            let stride: usize = self.shape[mu + 1..].iter().product();
            let plan = if inverse { &self.inverse[mu] } else { &self.forward[mu] };
            line.resize(l, Complex::new(0.0, 0.0));
            scratch.resize(plan.get_inplace_scratch_len(), Complex::new(0.0, 0.0));
            // Line starts: all sites with x_μ = 0.
            let block = stride * l;
            for outer in (0..volume).step_by(block) {
                for inner in 0..stride {
                    let base = outer + inner;
                    for k in 0..l {
                        line[k] = data[base + k * stride];
                    }
                    plan.process_with_scratch(line, scratch);
                    for k in 0..l {
                        data[base + k * stride] = line[k];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_dft_on_a_non_square_lattice() {
        let shape = [3usize, 4, 2];
        let v = 24;
        let f: Vec<Complex<f64>> = (0..v)
            .map(|i| Complex::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
            .collect();
        let mut g = f.clone();
        let plan = FftNd::new(&shape);
        plan.transform(&mut g, false);
        let coord = |i: usize| [i / 8, (i / 2) % 4, i % 2];
        for n in 0..v {
            let nn = coord(n);
            let mut s = Complex::new(0.0, 0.0);
            for x in 0..v {
                let xx = coord(x);
                let ph: f64 = (0..3).map(|m| nn[m] as f64 * xx[m] as f64 / shape[m] as f64).sum();
                s += f[x] * Complex::from_polar(1.0, -2.0 * std::f64::consts::PI * ph);
            }
            assert!((s - g[n]).norm() < 1e-12);
        }
        plan.transform(&mut g, true);
        for (a, b) in g.iter().zip(&f) {
            assert!((a / v as f64 - b).norm() < 1e-13);
        }
    }
}
