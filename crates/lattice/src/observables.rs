//! Per-configuration observables of lattice φ⁴ (docs/THEORY.md §2.9).
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
//! their errors come by propagation (Γ-method / jackknife, docs/THEORY.md §7.5, §7.7):
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
use crate::geometry::{Lattice, MAX_DIM};
use fieldflow_core::Measure;
use ndarray::ArrayView1;
use rustfft::num_complex::Complex;
use std::cell::RefCell;
use std::f64::consts::PI;

/// Scratch of at most this many f64 (2L₀ + Σ_{μ≥1} L_μ) lives on the stack.
const STACK_SCRATCH: usize = 256;

/// `ct_t` sums computed side by side (independent chains of additions).
const CT_LANES: usize = 8;

thread_local! {
    /// Scratch for lattices too long for [`STACK_SCRATCH`]; grows once per thread.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The φ⁴ primaries of the module docs, for one model.
///
/// Measuring a contiguous configuration allocates nothing: the slice sums
/// s_μ(x_μ) live in a small stack buffer (or, for long lattices, a per-thread
/// buffer reused across calls), the phases e^{−2πik/L_μ} of `pmin2_μ` are
/// tabulated once, and the `ct_t` sums run over a doubled copy of s₀ instead
/// of taking `%`. Every sum is accumulated in the same order as the direct
/// definition, so the results are bit-for-bit those of the plain double loops.
#[derive(Debug, Clone, PartialEq)]
pub struct Phi4Observables {
    lattice: Lattice,
    m2: f64,
    lambda: f64,
    /// cos(−2πk/L_μ) and sin(−2πk/L_μ) for k = 0..L_μ, axes one after another.
    phases: Vec<(f64, f64)>,
}

impl Phi4Observables {
    /// Observables of `target` (its lattice and couplings).
    pub fn new(target: &Phi4) -> Self {
        let lattice = target.lattice().clone();
        let phases = lattice
            .shape()
            .iter()
            .flat_map(|&l| {
                (0..l).map(move |k| {
                    let arg = -2.0 * PI * k as f64 / l as f64;
                    (arg.cos(), arg.sin())
                })
            })
            .collect();
        Phi4Observables {
            lattice,
            m2: target.m2(),
            lambda: target.lambda(),
            phases,
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

    /// Length of the scratch of [`Self::measure_with`]: s₀ twice, then s₁, s₂, ….
    fn scratch_len(&self) -> usize {
        self.lattice.shape()[0] + self.lattice.shape().iter().sum::<usize>()
    }

    fn measure_slice(&self, phi: &[f64], out: &mut [f64]) {
        let n = self.scratch_len();
        if n <= STACK_SCRATCH {
            let mut buf = [0.0; STACK_SCRATCH];
            self.measure_with(phi, out, &mut buf[..n]);
        } else {
            SCRATCH.with(|cell| {
                let mut buf = cell.borrow_mut();
                buf.clear();
                buf.resize(n, 0.0);
                self.measure_with(phi, out, &mut buf);
            });
        }
    }

    /// Measures `phi` into `out`; `scratch` (zeroed, [`Self::scratch_len`]) holds
    /// the slice sums: s₀ at `[0, L₀)`, its copy at `[L₀, 2L₀)`, then s₁, s₂, ….
    fn measure_with(&self, phi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let lat = &self.lattice;
        let v = lat.volume() as f64;
        let l0 = lat.shape()[0];
        let (sum, kinetic, potential) = match lat.dim() {
            1 => self.site_sums::<1>(phi, scratch),
            2 => self.site_sums::<2>(phi, scratch),
            3 => self.site_sums::<3>(phi, scratch),
            4 => self.site_sums::<4>(phi, scratch),
            d => unreachable!("lattices have 1..={MAX_DIM} dimensions, not {d}"),
        };
        let m = sum / v;
        out[0] = m;
        out[1] = m.abs();
        out[2] = m * m;
        out[3] = m * m * m * m;
        out[4] = (kinetic + potential) / v;
        out[5] = kinetic / v;
        out[6] = potential / v;

        // ct_t = (1/V) Σ_τ s₀(τ) s₀(τ+t): with s₀ doubled, s₀((τ+t) mod L₀) =
        // s2[τ+t]. Each sum runs over τ = 0, 1, … starting from −0.0, exactly
        // as `Iterator::sum`; CT_LANES values of t advance together.
        let (s2, rest) = scratch.split_at_mut(2 * l0);
        let (s0, copy) = s2.split_at_mut(l0);
        copy.copy_from_slice(s0);
        let s2 = &*s2;
        let ct = &mut out[Self::CT_OFFSET..Self::CT_OFFSET + l0];
        let mut blocks = ct.chunks_exact_mut(CT_LANES);
        let mut t0 = 0;
        for block in &mut blocks {
            let mut c = [-0.0f64; CT_LANES];
            for tau in 0..l0 {
                let a = s2[tau];
                let b = &s2[tau + t0..tau + t0 + CT_LANES];
                for j in 0..CT_LANES {
                    c[j] += a * b[j];
                }
            }
            for (o, c) in block.iter_mut().zip(c) {
                *o = c / v;
            }
            t0 += CT_LANES;
        }
        for (t, o) in blocks.into_remainder().iter_mut().enumerate() {
            let t = t0 + t;
            let c: f64 = (0..l0).map(|tau| s2[tau] * s2[tau + t]).sum();
            *o = c / v;
        }

        // pmin2_μ = |Σ_k s_μ(k) e^{−2πik/L_μ}|² / V.
        let off = self.pmin2_offset();
        let mut phases = &self.phases[..];
        let mut slices = &rest[..];
        for (mu, &l) in lat.shape().iter().enumerate() {
            let s = if mu == 0 {
                &s2[..l]
            } else {
                let (s, tail) = slices.split_at(l);
                slices = tail;
                s
            };
            let (ph, tail) = phases.split_at(l);
            phases = tail;
            let (mut re, mut im) = (0.0, 0.0);
            for (&sk, &(cos, sin)) in s.iter().zip(ph) {
                re += sk * cos;
                im += sk * sin;
            }
            out[off + mu] = (re * re + im * im) / v;
        }
    }

    /// Σₓ φ, Σₓ Σ_μ (φ(x+μ̂) − φ(x))² and Σₓ (m² φ² + λ φ⁴) of a `D`-dimensional
    /// field, each summed over sites in index order (μ innermost), and the slice
    /// sums s_μ(x_μ) = Σ φ over the sites with coordinate x_μ, added into
    /// `scratch` (layout of [`Self::measure_with`]).
    ///
    /// Works row by row along the last axis: within a row, the forward
    /// neighbours along μ < D−1 form one other row, and s_μ(x_μ) for μ < D−1
    /// is one running value.
    fn site_sums<const D: usize>(&self, phi: &[f64], scratch: &mut [f64]) -> (f64, f64, f64) {
        let shape: [usize; D] = self.lattice.shape().try_into().expect("D axes");
        let strides: [usize; D] = self.lattice.strides().try_into().expect("D axes");
        let ld = shape[D - 1];
        // Offsets of s_μ in `scratch` (s₀ first, its copy after it).
        let mut offsets = [0usize; D];
        let mut next = 2 * shape[0];
        for mu in 1..D {
            offsets[mu] = next;
            next += shape[mu];
        }
        let (m2, lambda) = (self.m2, self.lambda);
        let (mut sum, mut kinetic, mut potential) = (0.0, 0.0, 0.0);
        let mut x = [0usize; D];
        for row_start in (0..phi.len()).step_by(ld) {
            let row = &phi[row_start..row_start + ld];
            let mut neighbours = [row; D];
            let mut running = [0.0; D];
            for mu in 0..D - 1 {
                let up = if x[mu] + 1 < shape[mu] {
                    row_start + strides[mu]
                } else {
                    row_start + strides[mu] - shape[mu] * strides[mu]
                };
                neighbours[mu] = &phi[up..up + ld];
                running[mu] = scratch[offsets[mu] + x[mu]];
            }
            let last = &mut scratch[offsets[D - 1]..offsets[D - 1] + ld];
            for j in 0..ld {
                let p = row[j];
                sum += p;
                let p2 = p * p;
                potential += p2 * (m2 + lambda * p2);
                for mu in 0..D - 1 {
                    let diff = neighbours[mu][j] - p;
                    kinetic += diff * diff;
                    running[mu] += p;
                }
                let diff = (if j + 1 < ld { row[j + 1] } else { row[0] }) - p;
                kinetic += diff * diff;
                last[j] += p;
            }
            for mu in 0..D - 1 {
                scratch[offsets[mu] + x[mu]] = running[mu];
            }
            // Next row: increment (x₀, …, x_{D−2}), last of them fastest.
            for mu in (0..D - 1).rev() {
                x[mu] += 1;
                if x[mu] < shape[mu] {
                    break;
                }
                x[mu] = 0;
            }
        }
        (sum, kinetic, potential)
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
