//! The non-linear part of the local-net score (docs/THEORY.md §6.11.7): a
//! translation-invariant, periodic one-hidden-layer convolutional network
//!
//! n(x)_i = Σ_c Σ_δ W2_c\[δ\] tanh(h_c(i + δ)),  h_c(y) = Σ_δ W1_c\[δ\] x_{y+δ},
//!
//! with C channels and kernels on the offsets |δ_μ| ≤ R (K = (2R + 1)^d
//! taps each). No bias: tanh is odd, so n(−x) = −n(x), the φ → −φ symmetry
//! of the φ⁴ score. The weights are those of one time t (the caller
//! interpolates between levels); layout `[W1 (C × K), W2 (C × K)]`,
//! channel-major. The field is gathered once into K shifted copies, after
//! which both layers are sums of contiguous axpys and dot products over the
//! sites (vectorizable); the cost is O(V K C) per field, like the direct
//! sums, with only 2 V K gathers.
//!
//! Derivatives by hand, with a_c = tanh(h_c) and a loss ℓ with
//! ∂ℓ/∂n_i = r_i:
//!
//! * ∂ℓ/∂W2_c\[δ\] = Σ_i r_i a_c(i + δ);
//! * ∂ℓ/∂a_c(y) = Σ_δ W2_c\[δ\] r_{y−δ}, g_c(y) = (1 − a_c(y)²) ∂ℓ/∂a_c(y);
//! * ∂ℓ/∂W1_c\[δ\] = Σ_y g_c(y) x_{y+δ}.
//!
//! The divergence is exact and cheap: ∂n_i/∂x_i = Σ_c Σ_δ W2_c\[δ\]
//! (1 − a_c(i + δ)²) W1_c\[−δ\] (the only path from x_i to n_i through the
//! hidden site y = i + δ uses the tap −δ of W1, as long as 2R + 1 ≤ every
//! extent so that no two taps reach the same site), hence
//!
//! Σ_i ∂n_i/∂x_i = Σ_c κ_c Σ_y (1 − a_c(y)²),  κ_c = Σ_δ W2_c\[δ\] W1_c\[−δ\]:
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
    /// The field gathered at every tap, x_{y+δ_k} (K × V).
    xg: Vec<f64>,
    /// Σ_c W2_c[k] a_c(y) (K × V).
    z: Vec<f64>,
    /// r gathered at every tap (K × V).
    rg: Vec<f64>,
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
    /// activations in `work.act` and the gathered field in `work.xg` for
    /// [`LocalNet::backward`].
    pub fn forward(&self, w: &[f64], x: &[f64], out: &mut [f64], work: &mut NetWork) -> f64 {
        let (v, kk, c_n) = (self.volume, self.taps, self.channels);
        let (w1, w2) = w.split_at(c_n * kk);
        // xg[k][y] = x_{y+δ_k}: the only gathers of the hidden layer, after
        // which every channel is a sum of K contiguous axpys.
        self.gather(x, &mut work.xg);
        work.act.resize(c_n * v, 0.0);
        let mut div = 0.0;
        for (c, a) in work.act.chunks_exact_mut(v).enumerate() {
            a.fill(0.0);
            for (&wk, xk) in w1[c * kk..(c + 1) * kk].iter().zip(work.xg.chunks_exact(v)) {
                axpy(wk, xk, a);
            }
            let mut slope = 0.0;
            for h in a.iter_mut() {
                *h = tanh(*h);
                slope += 1.0 - *h * *h;
            }
            // κ_c = Σ_k W2_c[k] W1_c[K − 1 − k] (δ_{K−1−k} = −δ_k).
            let k1 = &w1[c * kk..(c + 1) * kk];
            let kappa: f64 = w2[c * kk..(c + 1) * kk]
                .iter()
                .zip(k1.iter().rev())
                .map(|(p, q)| p * q)
                .sum();
            div += kappa * slope;
        }
        // z[k][y] = Σ_c W2_c[k] a_c(y); n_i = Σ_k z[k][i + δ_k].
        work.z.clear();
        work.z.resize(kk * v, 0.0);
        for (k, zk) in work.z.chunks_exact_mut(v).enumerate() {
            for (c, a) in work.act.chunks_exact(v).enumerate() {
                axpy(w2[c * kk + k], a, zk);
            }
        }
        for (i, o) in out.iter_mut().enumerate() {
            let nb = &self.nbr[i * kk..(i + 1) * kk];
            *o += nb
                .iter()
                .enumerate()
                .map(|(k, &n)| work.z[k * v + n as usize])
                .sum::<f64>();
        }
        div
    }

    /// grad += scale · ∂(Σ_i r_i n(x)_i)/∂w, with `work` left by the
    /// forward pass at the same (w, x).
    pub fn backward(&self, w: &[f64], r: &[f64], scale: f64, grad: &mut [f64], work: &mut NetWork) {
        let (v, kk, c_n) = (self.volume, self.taps, self.channels);
        let w2 = &w[c_n * kk..];
        let (g1, g2) = grad.split_at_mut(c_n * kk);
        // rg[k][y] = r_{y+δ_k}, so r_{y−δ_k} = rg[K−1−k][y].
        self.gather(r, &mut work.rg);
        work.back.resize(c_n * v, 0.0);
        for (c, (b, a)) in work.back.chunks_exact_mut(v).zip(work.act.chunks_exact(v)).enumerate() {
            // ∂/∂W2_c[k] = Σ_i r_i a_c(i + δ_k) = Σ_y a_c(y) r_{y−δ_k}.
            // g_c(y) = (1 − a²) Σ_k W2_c[k] r_{y−δ_k}.
            b.fill(0.0);
            for (k, rk) in work.rg.chunks_exact(v).rev().enumerate() {
                g2[c * kk + k] += scale * dot(a, rk);
                axpy(w2[c * kk + k], rk, b);
            }
            for (bc, &ac) in b.iter_mut().zip(a) {
                *bc *= 1.0 - ac * ac;
            }
            // ∂/∂W1_c[k] = Σ_y g_c(y) x_{y+δ_k}.
            for (g, xk) in g1[c * kk..(c + 1) * kk].iter_mut().zip(work.xg.chunks_exact(v)) {
                *g += scale * dot(b, xk);
            }
        }
    }

    /// out[k][y] = f_{y+δ_k} (K × V).
    fn gather(&self, f: &[f64], out: &mut Vec<f64>) {
        let (v, kk) = (self.volume, self.taps);
        out.resize(kk * v, 0.0);
        for (y, nb) in self.nbr.chunks_exact(kk).enumerate() {
            for (k, &n) in nb.iter().enumerate() {
                out[k * v + y] = f[n as usize];
            }
        }
    }
}

/// y += a x.
#[inline]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Σ_i x_i y_i.
#[inline]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// tanh by one exponential, (1 − e)/(1 + e) with e = exp(−2|h|) and the
/// sign of h restored: exactly odd, no overflow, absolute error a few ulp
/// (faster than the library's tanh, which dominated the network's cost).
#[inline]
fn tanh(h: f64) -> f64 {
    let e = (-2.0 * h.abs()).exp();
    ((1.0 - e) / (1.0 + e)).copysign(h)
}
