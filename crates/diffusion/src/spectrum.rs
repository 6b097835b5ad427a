//! Translation-invariant linear maps of periodic lattice fields, applied in
//! momentum space (docs/THEORY.md §6.11.2).
//!
//! With x̂_k = Σ_i x_i e^{−ik·i} (unnormalized, [`FftNd`]), a map diagonal in
//! momentum space with real multipliers m_k is
//! (M x)_i = Re[(1/V) Σ_k m_k x̂_k e^{+ik·i}].
//! For a reflection-symmetric map (m_k = m_{−k}) the real part is exact and M
//! is symmetric with eigenvalues m_k; the real part makes the map well
//! defined for any m. Its derivative, for a loss ℓ with ∂ℓ/∂(Mx) = r, is
//! ∂ℓ/∂m_k = (1/V) Re(x̂_k conj r̂_k).

use fieldflow_lattice::fft::{FftNd, FftWork};
use fieldflow_lattice::Lattice;
use rustfft::num_complex::Complex;

/// The lattice and its planned Fourier transforms.
#[derive(Debug)]
pub struct Spectrum {
    lattice: Lattice,
    fft: FftNd,
}

/// Per-thread buffers of [`Spectrum`] (reused: no allocation per field).
#[derive(Debug, Default, Clone)]
pub struct SpectrumWork {
    /// x̂ of the last [`Spectrum::forward`].
    pub(crate) hat: Vec<Complex<f64>>,
    /// A second transform (e.g. r̂).
    pub(crate) hat2: Vec<Complex<f64>>,
    fft: FftWork,
}

impl Spectrum {
    /// The spectrum of `lattice`.
    pub fn new(lattice: Lattice) -> Self {
        let fft = FftNd::new(lattice.shape());
        Spectrum { lattice, fft }
    }

    /// The lattice.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// Number of sites V (= number of momenta).
    pub fn volume(&self) -> usize {
        self.lattice.volume()
    }

    /// Fills `work.hat` with x̂.
    pub(crate) fn forward(&self, x: &[f64], work: &mut SpectrumWork) {
        fill_complex(&mut work.hat, x);
        self.fft.transform_with(&mut work.hat, false, &mut work.fft);
    }

    /// Fills `work.hat2` with r̂.
    pub(crate) fn forward2(&self, r: &[f64], work: &mut SpectrumWork) {
        fill_complex(&mut work.hat2, r);
        self.fft.transform_with(&mut work.hat2, false, &mut work.fft);
    }

    /// out = M x for multipliers `m`; leaves x̂ in `work.hat`.
    pub fn apply(&self, m: &[f64], x: &[f64], out: &mut [f64], work: &mut SpectrumWork) {
        self.forward(x, work);
        self.apply_to_hat(m, out, work);
    }

    /// out = M x from x̂ already in `work.hat` (kept).
    pub(crate) fn apply_to_hat(&self, m: &[f64], out: &mut [f64], work: &mut SpectrumWork) {
        let v = self.volume();
        work.hat2.clear();
        work.hat2.extend(work.hat.iter().zip(m).map(|(h, &mk)| h * mk));
        self.fft.transform_with(&mut work.hat2, true, &mut work.fft);
        let inv_v = 1.0 / v as f64;
        for (o, z) in out.iter_mut().zip(&work.hat2) {
            *o = z.re * inv_v;
        }
    }

    /// Adds w · (1/V) Re(x̂_k conj r̂_k) (times `factors[k]` when given) to
    /// `grad[k]`, with x̂ in `work.hat` and r̂ in `work.hat2`.
    pub(crate) fn accumulate_mode_gradient(
        &self,
        w: f64,
        factors: Option<&[f64]>,
        grad: &mut [f64],
        work: &SpectrumWork,
    ) {
        let scale = w / self.volume() as f64;
        for (k, ((g, x), r)) in grad.iter_mut().zip(&work.hat).zip(&work.hat2).enumerate() {
            let d = scale * (x.re * r.re + x.im * r.im);
            *g += factors.map_or(d, |f| d * f[k]);
        }
    }

    /// Σ_k |x̂_k|² / (V v_k): the quadratic form xᵀ D⁻¹ x of the symmetric
    /// map with eigenvalues `v` (momentum order).
    pub fn quadratic_form(&self, v: &[f64], x: &[f64], work: &mut SpectrumWork) -> f64 {
        self.forward(x, work);
        let inv_v = 1.0 / self.volume() as f64;
        work.hat.iter().zip(v).map(|(h, &vk)| h.norm_sqr() / vk).sum::<f64>() * inv_v
    }

    /// cos(k·δ) of every momentum k (row-major) for the lattice offset δ.
    pub fn cosines(&self, delta: &[i64], out: &mut [f64]) {
        let shape = self.lattice.shape();
        let mut n = vec![0usize; shape.len()];
        for (k, o) in out.iter_mut().enumerate() {
            self.lattice.coords(k, &mut n);
            let phase: f64 = n
                .iter()
                .zip(shape)
                .zip(delta)
                .map(|((&nk, &l), &d)| std::f64::consts::TAU * nk as f64 * d as f64 / l as f64)
                .sum();
            *o = phase.cos();
        }
    }
}

fn fill_complex(buf: &mut Vec<Complex<f64>>, x: &[f64]) {
    buf.clear();
    buf.extend(x.iter().map(|&v| Complex::new(v, 0.0)));
}
