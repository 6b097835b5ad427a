//! The non-linear part of the local-net score (docs/THEORY.md §6.11.7): a
//! translation-invariant, periodic one-hidden-layer convolutional network
//!
//! n(x)_i = Σ_c Σ_δ W2_c[δ] tanh(h_c(i + δ)),  h_c(y) = Σ_δ W1_c[δ] x_{y+δ},
//!
//! with C channels and kernels on the offsets |δ_μ| ≤ R (K = (2R + 1)^d
//! taps each). No bias: tanh is odd, so n(−x) = −n(x), the φ → −φ symmetry
//! of the φ⁴ score. The weights are those of one time t (the caller
//! interpolates between levels); layout `[W1 (C × K), W2 (C × K)]`,
//! channel-major.
//!
//! Derivatives by hand, with a_c = tanh(h_c) and a loss ℓ with
//! ∂ℓ/∂n_i = r_i:
//!
//! * ∂ℓ/∂W2_c[δ] = Σ_i r_i a_c(i + δ);
//! * ∂ℓ/∂a_c(y) = Σ_δ W2_c[δ] r_{y−δ}, g_c(y) = (1 − a_c(y)²) ∂ℓ/∂a_c(y);
//! * ∂ℓ/∂W1_c[δ] = Σ_y g_c(y) x_{y+δ}.
//!
//! The divergence is exact and cheap: ∂n_i/∂x_i = Σ_c Σ_δ W2_c[δ]
//! (1 − a_c(i + δ)²) W1_c[−δ] (the only path from x_i to n_i through the
//! hidden site y = i + δ uses the tap −δ of W1, as long as 2R + 1 ≤ every
//! extent so that no two taps reach the same site), hence
//!
//! Σ_i ∂n_i/∂x_i = Σ_c κ_c Σ_y (1 − a_c(y)²),  κ_c = Σ_δ W2_c[δ] W1_c[−δ]:
//!
//! O(V C) once the activations are known.

use fieldflow_lattice::Lattice;

/// The geometry of the network: neighbour table of the kernel offsets.
#[derive(Debug, Clone)]
pub struct LocalNet {
    channels: usize,
    taps: usize,
    volume: usize,
    /// `nbr[y·K + k]` = index of site y + δ_k (periodic). The offsets are
    /// enumerated so that δ_{K−1−k} = −δ_k.
    nbr: Vec<u32>,
}

/// Per-thread buffers of [`LocalNet`] (grown once, reused: no allocation
/// per field).
#[derive(Debug, Default, Clone)]
pub struct NetWork {
    /// Activations a_c(y) of the last forward pass (C × V).
    pub(crate) act: Vec<f64>,
    /// Back-propagated g_c(y) (C × V).
    pub(crate) back: Vec<f64>,
    /// Interpolated weights of the current time.
    pub(crate) weights: Vec<f64>,
    /// Their gradient.
    pub(crate) wgrad: Vec<f64>,
}

impl LocalNet {
    /// The network on `lattice` with `channels` channels and kernels of
    /// range `range` (the caller checks 2·range + 1 ≤ every extent).
    pub fn new(lattice: &Lattice, range: usize, channels: usize) -> Self {
        let shape = lattice.shape();
        let d = shape.len();
        let side = 2 * range + 1;
        let taps = side.pow(d as u32);
        let volume = lattice.volume();
        let mut nbr = Vec::with_capacity(volume * taps);
        let (mut x, mut y) = (vec![0usize; d], vec![0usize; d]);
        for site in 0..volume {
            lattice.coords(site, &mut x);
            for k in 0..taps {
                let mut code = k;
                for mu in 0..d {
                    let digit = code % side;
                    code /= side;
                    // x_μ + digit − R, reduced modulo L_μ.
                    y[mu] = (x[mu] + digit + shape[mu] * side - range) % shape[mu];
                }
                nbr.push(lattice.index(&y) as u32);
            }
        }
        LocalNet {
            channels,
            taps,
            volume,
            nbr,
        }
    }

    /// Channels C.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Taps per kernel K.
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// Number of weights 2 C K.
    pub fn num_weights(&self) -> usize {
        2 * self.channels * self.taps
    }

    /// out += n(x) for the weights `w`; returns Σ_i ∂n_i/∂x_i. Leaves the
    /// activations in `work.act` for [`LocalNet::backward`].
    pub fn forward(&self, w: &[f64], x: &[f64], out: &mut [f64], work: &mut NetWork) -> f64 {
        let (v, kk, c_n) = (self.volume, self.taps, self.channels);
        let (w1, w2) = w.split_at(c_n * kk);
        work.act.resize(c_n * v, 0.0);
        let mut div = 0.0;
        for c in 0..c_n {
            let k1 = &w1[c * kk..(c + 1) * kk];
            let k2 = &w2[c * kk..(c + 1) * kk];
            let act = &mut work.act[c * v..(c + 1) * v];
            let mut slope = 0.0;
            for (y, a) in act.iter_mut().enumerate() {
                let nb = &self.nbr[y * kk..(y + 1) * kk];
                let h: f64 = k1.iter().zip(nb).map(|(wk, &n)| wk * x[n as usize]).sum();
                *a = h.tanh();
                slope += 1.0 - *a * *a;
            }
            let kappa: f64 = k2.iter().zip(k1.iter().rev()).map(|(a, b)| a * b).sum();
            div += kappa * slope;
            for (i, o) in out.iter_mut().enumerate() {
                let nb = &self.nbr[i * kk..(i + 1) * kk];
                *o += k2.iter().zip(nb).map(|(wk, &n)| wk * act[n as usize]).sum::<f64>();
            }
        }
        div
    }

    /// grad += scale · ∂(Σ_i r_i n(x)_i)/∂w, with the activations of the
    /// forward pass at the same (w, x) in `work.act`.
    pub fn backward(&self, w: &[f64], x: &[f64], r: &[f64], scale: f64, grad: &mut [f64], work: &mut NetWork) {
        let (v, kk, c_n) = (self.volume, self.taps, self.channels);
        let w2 = &w[c_n * kk..];
        let (g1, g2) = grad.split_at_mut(c_n * kk);
        work.back.resize(v, 0.0);
        for c in 0..c_n {
            let k2 = &w2[c * kk..(c + 1) * kk];
            let act = &work.act[c * v..(c + 1) * v];
            let gw2 = &mut g2[c * kk..(c + 1) * kk];
            for (i, &ri) in r.iter().enumerate() {
                let nb = &self.nbr[i * kk..(i + 1) * kk];
                for (g, &n) in gw2.iter_mut().zip(nb) {
                    *g += scale * ri * act[n as usize];
                }
            }
            // g_c(y) = (1 − a²) Σ_k W2[k] r_{y − δ_k}, and y − δ_k = y + δ_{K−1−k}.
            for (y, (g, &a)) in work.back.iter_mut().zip(act).enumerate() {
                let nb = &self.nbr[y * kk..(y + 1) * kk];
                let s: f64 = k2.iter().zip(nb.iter().rev()).map(|(wk, &n)| wk * r[n as usize]).sum();
                *g = (1.0 - a * a) * s;
            }
            let gw1 = &mut g1[c * kk..(c + 1) * kk];
            for (y, &gy) in work.back.iter().enumerate() {
                let nb = &self.nbr[y * kk..(y + 1) * kk];
                for (g, &n) in gw1.iter_mut().zip(nb) {
                    *g += scale * gy * x[n as usize];
                }
            }
        }
    }
}
