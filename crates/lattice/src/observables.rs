//! Per-configuration observables of lattice φ⁴ (REFERENCE §2.4).
//!
//! [`Phi4Observables`] implements [`Measure`]; for a field φ on V sites with
//! M = (1/V) Σₓ φ(x) it returns these **primaries**, in this order:
//!
//! | name | value per configuration |
//! |---|---|
//! | `M`, `abs_M`, `M2`, `M4` | M, \|M\|, M², M⁴ |
//! | `action_density` | S/V |
//! | `kinetic_density` | (1/V) Σₓ Σ_μ (φ(x+μ̂) − φ(x))² |
//! | `potential_density` | (1/V) Σₓ (m² φ² + λ φ⁴) |
//! | `ct_{t}`, t = 0..L₀−1 | (1/V) Σ_τ s(τ) s(τ+t), s(τ) = Σ_{x₁…} φ(τ, x₁, …) (axis 0 is time) |
//! | `pmin2_{μ}`, μ = 0..d−1 | \|φ̃(p_min,μ)\|²/V, φ̃(p) = Σₓ φ(x) e^{−ipx}, p_min,μ = 2π/L_μ along μ |
//!
//! Ensemble quantities then follow from the **means** of the primaries, so
//! their errors come by propagation (Γ-method / jackknife, REFERENCE §7):
//!
//! * χ₂ = V⟨M²⟩; χ = V(⟨M²⟩ − ⟨|M|⟩²); U₄ = 1 − ⟨M⁴⟩/(3⟨M²⟩²);
//! * zero-momentum correlator C(t) = Σ_{x₁…} G_c(t, x₁, …)
//!   = ⟨ct_t⟩ − (V/L₀)⟨M⟩² ([`connected_correlator`]);
//!   m_eff(t) = arccosh[(C(t−1) + C(t+1)) / (2C(t))] ([`effective_mass`]);
//! * F_μ = Ĝ(p_min,μ) = ⟨pmin2_μ⟩ and ξ₂ = sqrt(χ₂/F_μ − 1) / (2 sin(π/L_μ))
//!   ([`xi2`]); for the free field these means are exactly
//!   [`crate::FreeField::chi2`], [`crate::FreeField::f_pmin`] and ξ₂ = 1/m.
//!
//! [`TwoPoint`] gives the full per-configuration two-point function
//! g(x) = (1/V) Σ_y φ(y) φ(y+x) for every separation x by FFT; its ensemble
//! mean is G(x), and G_c(x) = ⟨g(x)⟩ − ⟨M⟩².

use crate::action::Phi4;
use crate::fft::FftNd;
use crate::geometry::Lattice;
use fieldflow_core::Measure;
use ndarray::ArrayView1;
use rustfft::num_complex::Complex;
use std::f64::consts::PI;

/// The φ⁴ primaries of the module docs, for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Phi4Observables {
    lattice: Lattice,
    m2: f64,
    lambda: f64,
}

impl Phi4Observables {
    /// Observables of `target` (its lattice and couplings).
    pub fn new(target: &Phi4) -> Self {
        Phi4Observables {
            lattice: target.lattice().clone(),
            m2: target.m2(),
            lambda: target.lambda(),
        }
    }

    /// Index of the first `ct_t` primary.
    pub const CT_OFFSET: usize = 7;

    /// Index of the first `pmin2_μ` primary.
    pub fn pmin2_offset(&self) -> usize {
        Self::CT_OFFSET + self.lattice.shape()[0]
    }

    /// Number of primaries: 7 + L₀ + d.
    pub fn len(&self) -> usize {
        self.pmin2_offset() + self.lattice.dim()
    }

    /// Never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn measure_slice(&self, phi: &[f64], out: &mut [f64]) {
        let lat = &self.lattice;
        let v = lat.volume() as f64;
        let d = lat.dim();
        let mut sum = 0.0;
        let mut kinetic = 0.0;
        let mut potential = 0.0;
        let mut slices: Vec<Vec<f64>> = lat.shape().iter().map(|&l| vec![0.0; l]).collect();
        let mut x = vec![0usize; d];
        for (i, &p) in phi.iter().enumerate() {
            sum += p;
            let p2 = p * p;
            potential += p2 * (self.m2 + self.lambda * p2);
            for mu in 0..d {
                let diff = phi[lat.fwd(i, mu)] - p;
                kinetic += diff * diff;
                slices[mu][x[mu]] += p;
            }
            for mu in (0..d).rev() {
                x[mu] += 1;
                if x[mu] < lat.shape()[mu] {
                    break;
                }
                x[mu] = 0;
            }
        }
        let m = sum / v;
        out[0] = m;
        out[1] = m.abs();
        out[2] = m * m;
        out[3] = m * m * m * m;
        out[4] = (kinetic + potential) / v;
        out[5] = kinetic / v;
        out[6] = potential / v;
        let s = &slices[0];
        let l0 = s.len();
        for t in 0..l0 {
            let c: f64 = (0..l0).map(|tau| s[tau] * s[(tau + t) % l0]).sum();
            out[Self::CT_OFFSET + t] = c / v;
        }
        let off = self.pmin2_offset();
        for (mu, s) in slices.iter().enumerate() {
            let l = s.len() as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (k, &sk) in s.iter().enumerate() {
                let arg = -2.0 * PI * k as f64 / l;
                re += sk * arg.cos();
                im += sk * arg.sin();
            }
            out[off + mu] = (re * re + im * im) / v;
        }
    }
}

impl Measure for Phi4Observables {
    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = [
            "M",
            "abs_M",
            "M2",
            "M4",
            "action_density",
            "kinetic_density",
            "potential_density",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        n.extend((0..self.lattice.shape()[0]).map(|t| format!("ct_{t}")));
        n.extend((0..self.lattice.dim()).map(|mu| format!("pmin2_{mu}")));
        n
    }

    fn measure(&self, x: ArrayView1<f64>, out: &mut [f64]) {
        assert_eq!(
            out.len(),
            self.len(),
            "output length differs from the number of observables"
        );
        assert_eq!(x.len(), self.lattice.volume(), "field length differs from V");
        match x.as_slice() {
            Some(s) => self.measure_slice(s, out),
            None => self.measure_slice(&x.to_vec(), out),
        }
    }
}

/// C(t) = ⟨ct_t⟩ − (V/L₀)⟨M⟩² from the means of the `ct_t` primaries and ⟨M⟩.
pub fn connected_correlator(ct_means: &[f64], m_mean: f64, volume: usize) -> Vec<f64> {
    let l0 = ct_means.len() as f64;
    ct_means
        .iter()
        .map(|c| c - volume as f64 / l0 * m_mean * m_mean)
        .collect()
}

/// m_eff(t) = arccosh[(C(t−1) + C(t+1)) / (2C(t))] for t = 1..L₀−2 (periodic
/// neighbours are not used); NaN where the argument is below 1.
pub fn effective_mass(c: &[f64]) -> Vec<f64> {
    (1..c.len().saturating_sub(1))
        .map(|t| ((c[t - 1] + c[t + 1]) / (2.0 * c[t])).acosh())
        .collect()
}

/// ξ₂ = sqrt(χ₂/F − 1) / (2 sin(π/L)) with χ₂ = V⟨M²⟩ and F = ⟨pmin2_μ⟩ along
/// an axis of extent L (NaN if χ₂/F < 1 or L = 1).
pub fn xi2(chi2: f64, f: f64, l: usize) -> f64 {
    (chi2 / f - 1.0).sqrt() / (2.0 * (PI / l as f64).sin())
}

/// Per-configuration two-point function g(x) = (1/V) Σ_y φ(y) φ(y+x), for all
/// separations x (row-major), by FFT: g = IDFT(|φ̃|²)/V².
#[derive(Debug)]
pub struct TwoPoint {
    fft: FftNd,
    buf: Vec<Complex<f64>>,
}

impl TwoPoint {
    /// Plans the transforms for `lattice`.
    pub fn new(lattice: &Lattice) -> Self {
        TwoPoint {
            fft: FftNd::new(lattice.shape()),
            buf: vec![Complex::new(0.0, 0.0); lattice.volume()],
        }
    }

    /// Writes g(x) of field `phi` into `out` (both of length V).
    ///
    /// # Panics
    /// If `phi` or `out` do not have length V.
    pub fn compute(&mut self, phi: &[f64], out: &mut [f64]) {
        assert_eq!(phi.len(), self.buf.len(), "field length differs from V");
        assert_eq!(out.len(), self.buf.len(), "output length differs from V");
        for (b, &p) in self.buf.iter_mut().zip(phi) {
            *b = Complex::new(p, 0.0);
        }
        self.fft.transform(&mut self.buf, false);
        for b in self.buf.iter_mut() {
            *b = Complex::new(b.norm_sqr(), 0.0);
        }
        self.fft.transform(&mut self.buf, true);
        let v2 = (phi.len() * phi.len()) as f64;
        for (o, b) in out.iter_mut().zip(&self.buf) {
            *o = b.re / v2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Phi4Config;
    use fieldflow_core::Seed;
    use rand::Rng as _;

    #[test]
    fn primaries_match_direct_definitions_on_a_non_square_lattice() {
        let t = Phi4Config::standard(&[4, 6, 3], -0.7, 0.9).validate().unwrap();
        let lat = t.lattice().clone();
        let mut rng = Seed::new(3).rng();
        let phi: Vec<f64> = (0..lat.volume()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let obs = Phi4Observables::new(&t);
        let names = obs.names();
        assert_eq!(names.len(), obs.len());
        assert_eq!(names[Phi4Observables::CT_OFFSET], "ct_0");
        assert_eq!(names[obs.pmin2_offset() + 2], "pmin2_2");
        let mut out = vec![0.0; obs.len()];
        obs.measure(ArrayView1::from(&phi[..]), &mut out);
        let v = lat.volume() as f64;
        let m = phi.iter().sum::<f64>() / v;
        assert!((out[0] - m).abs() < 1e-14 && (out[3] - m.powi(4)).abs() < 1e-14);
        assert!((out[4] - t.action(&phi) / v).abs() < 1e-12);
        assert!((out[5] + out[6] - out[4]).abs() < 1e-12);
        // g(x) by FFT against the direct double sum; ct_t and pmin2 against g.
        let mut g = vec![0.0; lat.volume()];
        TwoPoint::new(&lat).compute(&phi, &mut g);
        let mut xy = [0usize; 3];
        let mut xx = [0usize; 3];
        for sep in 0..lat.volume() {
            lat.coords(sep, &mut xx);
            let mut direct = 0.0;
            for y in 0..lat.volume() {
                lat.coords(y, &mut xy);
                let z = lat.index(&[xy[0] + xx[0], xy[1] + xx[1], xy[2] + xx[2]]);
                direct += phi[y] * phi[z];
            }
            assert!((g[sep] - direct / v).abs() < 1e-12);
        }
        assert!((g.iter().sum::<f64>() - v * out[2]).abs() < 1e-12);
        for t0 in 0..4 {
            let s: f64 = g[t0 * 18..(t0 + 1) * 18].iter().sum();
            assert!((out[Phi4Observables::CT_OFFSET + t0] - s).abs() < 1e-12);
        }
        for mu in 0..3 {
            // |φ̃(p)|²/V = Σₓ g(x) e^{ipx}
            let l = lat.shape()[mu] as f64;
            let f: f64 = (0..lat.volume())
                .map(|i| {
                    lat.coords(i, &mut xx);
                    g[i] * (2.0 * PI * xx[mu] as f64 / l).cos()
                })
                .sum();
            assert!((out[obs.pmin2_offset() + mu] - f).abs() < 1e-12);
        }
    }

    #[test]
    fn derived_helpers() {
        let c = [1.0, (-0.5f64).exp(), (-1.0f64).exp(), (-1.5f64).exp()];
        // Pure exponential e^{−0.5 t}: m_eff(1) = arccosh(cosh 0.5) = 0.5
        assert!((effective_mass(&c)[0] - 0.5).abs() < 1e-12);
        assert_eq!(connected_correlator(&[2.0, 1.0], 0.5, 8), vec![1.0, 0.0]);
        let f = crate::FreeField::new(&[8, 8], 0.5).unwrap();
        assert!((xi2(f.chi2(), f.f_pmin(0), 8) - 1.0 / 0.5f64.sqrt()).abs() < 1e-12);
    }
}
