//! The free-field layer: a learned translation-invariant Gaussian map of a
//! periodic lattice field (docs/THEORY.md §4.12).
//!
//! # The map
//! On a periodic lattice with V sites, y = C x with C the circulant matrix
//! that is diagonal in momentum space with eigenvalues s_k = exp(u(|p̂_k|)):
//!
//!   C_ij = c(i − j),   c(r) = (1/V) Σ_k s_k cos(k·r),   k_d = 2π n_d / L_d,
//!
//! where p̂_k² = Σ_d 4 sin²(k_d/2) is the lattice momentum of the nearest-
//! neighbour Laplacian. The log-eigenvalue u is a piecewise-linear function
//! of |p̂| ∈ [0, 2√D] with [`KNOTS`] equally spaced knots, whose values are
//! the parameters: their number does not depend on the lattice size (a
//! lattice curriculum carries them over), and C is real, symmetric,
//! positive definite and commutes with the lattice's translations,
//! reflections and rotations. As the first layer of a flow it turns the
//! white base N(0, σ²I) into a free field with a learned propagator
//! ⟨φ̃_k φ̃_{−k}⟩ ∝ σ² s_k² (the free theory of mass m has
//! s_k = (p̂_k² + m²)^{−1/2}), so the couplings behind it model the
//! interaction rather than the long-range correlations, which 3 × 3
//! conditioners build slowly at large correlation length. Being linear it
//! is odd, so a Z₂-equivariant flow stays equivariant.
//!
//! # Derivatives
//! * log|det C| = Σ_k u_k, independent of x; the inverse is the same map
//!   with u → −u (eigenvalues e^{−u}).
//! * Reverse mode: x̄ = Cᵀȳ = Cȳ. With G(r) = Σ_rows Σ_i ȳ_i x_{i−r}
//!   (∂L/∂c(r)), ∂L/∂s_k = (1/V) Σ_r cos(k·r) G(r), and
//!   ∂L/∂u_k = σ s_k ∂L/∂s_k + σ Σ_rows ℓ̄, σ = +1 for the forward map and
//!   −1 for the inverse; ∂L/∂u_k goes to the two knots around |p̂_k| with
//!   the interpolation weights.
//! * Score matching: the inverse's tangent is dy = C⁻¹dx, d log|det| = 0;
//!   the reverse mode of (y, dy) adds (ȳ, x) and (dȳ, dx) to G.
//!
//! # Cost
//! The cosine transforms are separable (O(V Σ_d L_d) per call); C is laid
//! out once per call (its rows are rotated copies of the kernel) and applied
//! to the batch as one matrix product, O(V²) per sample: 1.5 % of the
//! tutorial couplings' flops at L = 14, 8 % at L = 32 (measured per RKL
//! step: within noise at L = 14, +10 % at L = 32).

use crate::layer::{take, Direction, Layer, ScoreLayer, Scratch};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// Knots of the log-eigenvalue u(|p̂|) on [0, 2√D].
pub const KNOTS: usize = 17;

/// The free-field layer on a periodic lattice (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FreeField {
    shape: Vec<usize>,
    dim: usize,
    /// Per momentum (row-major over `shape`): the knot j below |p̂| and the
    /// interpolation weight t of knot j + 1.
    knot: Vec<(usize, f64)>,
    /// Per axis: cos(2π n r / L) and sin(2π n r / L), row n, column r.
    cos: Vec<Vec<f64>>,
    sin: Vec<Vec<f64>>,
}

/// What the free-field layer records: its inputs (and tangents) and the
/// sign σ of the last pass (+1 forward, −1 inverse).
#[derive(Debug)]
pub struct FreeFieldTape {
    sign: f64,
    x: Array2<f64>,
    dx: Option<Array2<f64>>,
    tangent_used: bool,
}

impl FreeField {
    /// The layer on a periodic lattice of extents `shape` (1 to 8 axes).
    ///
    /// # Panics
    /// If the lattice has fewer than 2 sites or more than 8 axes.
    pub fn new(shape: &[usize]) -> Self {
        let dim: usize = shape.iter().product();
        assert!(
            dim >= 2 && !shape.contains(&0),
            "a free-field layer needs a lattice of ≥ 2 sites"
        );
        assert!(shape.len() <= 8, "a free-field layer needs at most 8 axes");
        let p_max = 2.0 * (shape.len() as f64).sqrt();
        let knot = (0..dim)
            .map(|i| {
                let c = coords(shape, i);
                let p2: f64 = shape
                    .iter()
                    .enumerate()
                    .map(|(d, &l)| 4.0 * (std::f64::consts::PI * c[d] as f64 / l as f64).sin().powi(2))
                    .sum();
                let pos = (p2.sqrt() / p_max * (KNOTS - 1) as f64).min((KNOTS - 1) as f64);
                let j = (pos.floor() as usize).min(KNOTS - 2);
                (j, pos - j as f64)
            })
            .collect();
        let table = |f: fn(f64) -> f64| {
            shape
                .iter()
                .map(|&l| {
                    (0..l * l)
                        .map(|nr| f(std::f64::consts::TAU * ((nr / l) * (nr % l)) as f64 / l as f64))
                        .collect()
                })
                .collect()
        };
        FreeField {
            shape: shape.to_vec(),
            dim,
            knot,
            cos: table(f64::cos),
            sin: table(f64::sin),
        }
    }

    /// Lattice extents.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The log-eigenvalue u_k of momentum k.
    fn u(&self, p: &[f64], k: usize) -> f64 {
        let (j, t) = self.knot[k];
        (1.0 - t) * p[j] + t * p[j + 1]
    }

    /// The eigenvalue e^{σu} of every momentum (row-major), into `s`.
    fn eigenvalues(&self, p: &[f64], sign: f64, s: &mut [f64]) {
        for (k, sk) in s.iter_mut().enumerate() {
            *sk = (sign * self.u(p, k)).exp();
        }
    }

    /// out(k) = Σ_r f(r) cos(k·r), separably (one naive DFT per axis);
    /// `work` holds 4V numbers.
    fn cosine_transform(&self, f: &[f64], out: &mut [f64], work: &mut [f64]) {
        let v = self.dim;
        let (re, rest) = work.split_at_mut(v);
        let (im, rest) = rest.split_at_mut(v);
        let (tre, rest) = rest.split_at_mut(v);
        let tim = &mut rest[..v];
        re.copy_from_slice(f);
        im.fill(0.0);
        let mut inner = v;
        for (axis, &l) in self.shape.iter().enumerate() {
            inner /= l;
            let (c, s) = (&self.cos[axis], &self.sin[axis]);
            for outer in 0..v / (inner * l) {
                for q in 0..inner {
                    let at = |n: usize| (outer * l + n) * inner + q;
                    for n in 0..l {
                        let (mut a, mut b) = (0.0, 0.0);
                        for r in 0..l {
                            let (cr, sr) = (c[n * l + r], s[n * l + r]);
                            // (re + i im)(cos − i sin)
                            a += re[at(r)] * cr + im[at(r)] * sr;
                            b += im[at(r)] * cr - re[at(r)] * sr;
                        }
                        tre[at(n)] = a;
                        tim[at(n)] = b;
                    }
                }
            }
            re.copy_from_slice(tre);
            im.copy_from_slice(tim);
        }
        out.copy_from_slice(re);
    }

    /// For site i, calls `f(j, r, len)` for the contiguous runs of sites
    /// j .. j + len whose differences j − i (mod L, per axis) are the sites
    /// r .. r + len: two runs per line of the last axis, so that a row of
    /// the circulant is laid out, or folded, by slice copies.
    fn runs(&self, i: usize, mut f: impl FnMut(usize, usize, usize)) {
        let nd = self.shape.len();
        let last = self.shape[nd - 1];
        let ci = coords(&self.shape, i);
        let s = ci[nd - 1];
        for line in 0..self.dim / last {
            // Line `line` of the outer axes, and its difference to i.
            let cl = coords(&self.shape[..nd - 1], line);
            let mut r_line = 0;
            for d in 0..nd - 1 {
                let l = self.shape[d];
                r_line = r_line * l + (cl[d] + l - ci[d]) % l;
            }
            let (j0, r0) = (line * last, r_line * last);
            f(j0 + s, r0, last - s);
            if s > 0 {
                f(j0, r0 + last - s, s);
            }
        }
    }

    /// C (eigenvalues e^{σu}) into `c_mat` (V × V, row-major); `work` holds 6V.
    fn circulant(&self, p: &[f64], sign: f64, c_mat: &mut [f64], work: &mut [f64]) {
        let v = self.dim;
        let (s, rest) = work.split_at_mut(v);
        let (kernel, rest) = rest.split_at_mut(v);
        self.eigenvalues(p, sign, s);
        self.cosine_transform(s, kernel, rest);
        kernel.iter_mut().for_each(|c| *c /= v as f64);
        // C_ij = c(i − j) = c(j − i): c is even.
        for i in 0..v {
            let row = &mut c_mat[i * v..(i + 1) * v];
            self.runs(i, |j, r, len| row[j..j + len].copy_from_slice(&kernel[r..r + len]));
        }
    }

    /// y ← x C (C symmetric), for the rows of x.
    fn multiply(&self, c_mat: &[f64], x: ArrayView2<f64>, mut y: ArrayViewMut2<f64>) {
        let c = ndarray::ArrayView2::from_shape((self.dim, self.dim), c_mat).unwrap();
        general_mat_mul(1.0, &x, &c, 0.0, &mut y);
    }

    /// gp[o] += ∂L/∂u_o from the correlation A = Σ_pairs ḡᵀx (V × V, in
    /// `a_mat`) and the summed log-det adjoint, for eigenvalues e^{σu};
    /// `work` holds 7V.
    fn param_grad(&self, p: &[f64], sign: f64, a_mat: &[f64], gld_sum: f64, gp: &mut [f64], work: &mut [f64]) {
        let v = self.dim;
        let (s, rest) = work.split_at_mut(v);
        let (g, rest) = rest.split_at_mut(v);
        let (gs, rest) = rest.split_at_mut(v);
        // G(j − i) += A_ij; the cosine transform below is even in r, so
        // folding on j − i instead of i − j changes nothing.
        g.fill(0.0);
        for i in 0..v {
            let row = &a_mat[i * v..(i + 1) * v];
            self.runs(i, |j, r, len| {
                for (gr, a) in g[r..r + len].iter_mut().zip(&row[j..j + len]) {
                    *gr += a;
                }
            });
        }
        self.cosine_transform(g, gs, rest);
        self.eigenvalues(p, sign, s);
        for k in 0..v {
            let gu = sign * (s[k] * gs[k] / v as f64 + gld_sum);
            let (j, t) = self.knot[k];
            gp[j] += (1.0 - t) * gu;
            gp[j + 1] += t * gu;
        }
    }

    fn log_det(&self, p: &[f64]) -> f64 {
        (0..self.dim).map(|k| self.u(p, k)).sum()
    }

    fn check_tape(&self, tape: &FreeFieldTape, rows: usize) {
        let made = tape.x.nrows();
        assert_eq!(made, rows, "tape made for {made} rows, called with {rows}");
    }

    /// Network-free flops of one sample (2 V² for the product).
    pub fn flops_per_sample(&self) -> f64 {
        2.0 * (self.dim * self.dim) as f64
    }
}

/// Coordinates of site `i` (row-major, last axis fastest).
fn coords(shape: &[usize], mut i: usize) -> [usize; 8] {
    let mut c = [0; 8];
    for d in (0..shape.len()).rev() {
        c[d] = i % shape[d];
        i /= shape[d];
    }
    c
}

/// Work for one pass: C or A (V²) and the transforms (7V).
fn work_len(v: usize) -> (usize, usize) {
    (v * v, 7 * v)
}

impl Layer for FreeField {
    type Tape = FreeFieldTape;

    fn dim(&self) -> usize {
        self.dim
    }

    fn n_params(&self) -> usize {
        KNOTS
    }

    fn new_tape(&self, rows: usize, tangent: bool) -> FreeFieldTape {
        FreeFieldTape {
            sign: 0.0,
            x: Array2::zeros((rows, self.dim)),
            dx: tangent.then(|| Array2::zeros((rows, self.dim))),
            tangent_used: false,
        }
    }

    fn apply(
        &self,
        dir: Direction,
        p: &[f64],
        x: ArrayView2<f64>,
        y: ArrayViewMut2<f64>,
        mut logdet: ArrayViewMut1<f64>,
        tape: &mut FreeFieldTape,
        scratch: &mut Scratch,
    ) {
        self.check_tape(tape, x.nrows());
        let sign = if dir == Direction::Forward { 1.0 } else { -1.0 };
        tape.sign = sign;
        tape.tangent_used = false;
        tape.x.assign(&x);
        let (mat, w) = work_len(self.dim);
        let c_mat = take(&mut scratch.a, mat);
        self.circulant(p, sign, c_mat, take(&mut scratch.b, w));
        self.multiply(c_mat, x, y);
        let ld = sign * self.log_det(p);
        logdet.iter_mut().for_each(|l| *l += ld);
    }

    fn backward(
        &self,
        p: &[f64],
        tape: &FreeFieldTape,
        gy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        gx: ArrayViewMut2<f64>,
        gp: Option<&mut [f64]>,
        scratch: &mut Scratch,
    ) {
        self.check_tape(tape, gy.nrows());
        assert!(
            tape.sign != 0.0 && !tape.tangent_used,
            "backward without a matching apply"
        );
        let (mat, w) = work_len(self.dim);
        let c_mat = take(&mut scratch.a, mat);
        let work = take(&mut scratch.b, w);
        self.circulant(p, tape.sign, c_mat, work);
        self.multiply(c_mat, gy, gx);
        if let Some(gp) = gp {
            let mut a = ndarray::ArrayViewMut2::from_shape((self.dim, self.dim), &mut c_mat[..]).unwrap();
            general_mat_mul(1.0, &gy.t(), &tape.x, 0.0, &mut a);
            self.param_grad(p, tape.sign, c_mat, gld.sum(), gp, work);
        }
    }
}

impl ScoreLayer for FreeField {
    fn inverse_jvp(
        &self,
        p: &[f64],
        x: ArrayView2<f64>,
        dx: ArrayView2<f64>,
        y: ArrayViewMut2<f64>,
        dy: ArrayViewMut2<f64>,
        mut logdet: ArrayViewMut1<f64>,
        _dlogdet: ArrayViewMut1<f64>,
        tape: &mut FreeFieldTape,
        scratch: &mut Scratch,
    ) {
        self.check_tape(tape, x.nrows());
        tape.sign = -1.0;
        tape.tangent_used = true;
        tape.x.assign(&x);
        tape.dx
            .as_mut()
            .expect("inverse_jvp needs a tape made with tangent = true")
            .assign(&dx);
        let (mat, w) = work_len(self.dim);
        let c_mat = take(&mut scratch.a, mat);
        self.circulant(p, -1.0, c_mat, take(&mut scratch.b, w));
        self.multiply(c_mat, x, y);
        self.multiply(c_mat, dx, dy);
        let ld = self.log_det(p);
        logdet.iter_mut().for_each(|l| *l -= ld);
        // d log|det| = 0: the log-determinant does not depend on x.
    }

    fn inverse_jvp_backward(
        &self,
        p: &[f64],
        tape: &FreeFieldTape,
        gy: ArrayView2<f64>,
        gdy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        _gdld: ArrayView1<f64>,
        gx: ArrayViewMut2<f64>,
        gdx: ArrayViewMut2<f64>,
        gp: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.check_tape(tape, gy.nrows());
        assert!(tape.tangent_used, "inverse_jvp_backward without a matching inverse_jvp");
        let dx = tape.dx.as_ref().unwrap();
        let (mat, w) = work_len(self.dim);
        let c_mat = take(&mut scratch.a, mat);
        let work = take(&mut scratch.b, w);
        self.circulant(p, -1.0, c_mat, work);
        self.multiply(c_mat, gy, gx);
        self.multiply(c_mat, gdy, gdx);
        let mut a = ndarray::ArrayViewMut2::from_shape((self.dim, self.dim), &mut c_mat[..]).unwrap();
        general_mat_mul(1.0, &gy.t(), &tape.x, 0.0, &mut a);
        general_mat_mul(1.0, &gdy.t(), dx, 1.0, &mut a);
        self.param_grad(p, -1.0, c_mat, gld.sum(), gp, work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_do_not_depend_on_the_lattice_and_u_is_interpolated() {
        for shape in [vec![6], vec![4, 4], vec![14, 14], vec![3, 4], vec![2, 3, 2]] {
            assert_eq!(FreeField::new(&shape).n_params(), KNOTS);
        }
        // Knot values 0, 1, 2, …: u = (KNOTS − 1) |p̂| / (2√D).
        let f = FreeField::new(&[8, 8]);
        let p: Vec<f64> = (0..KNOTS).map(|j| j as f64).collect();
        for k in 0..f.dim {
            let c = coords(&[8, 8], k);
            let p2: f64 = (0..2)
                .map(|d| 4.0 * (std::f64::consts::PI * c[d] as f64 / 8.0).sin().powi(2))
                .sum();
            let exact = (KNOTS - 1) as f64 * p2.sqrt() / (2.0 * 2f64.sqrt());
            assert!((f.u(&p, k) - exact).abs() < 1e-12, "{k}: {} vs {exact}", f.u(&p, k));
        }
        // The corner |p̂| = 2√D is the last knot.
        assert!((f.u(&p, 4 * 8 + 4) - (KNOTS - 1) as f64).abs() < 1e-12);
    }

    #[test]
    fn the_circulant_is_translation_invariant_symmetric_with_the_chosen_spectrum() {
        let f = FreeField::new(&[3, 4]);
        let p: Vec<f64> = (0..f.n_params()).map(|o| 0.3 * (o as f64).sin() - 0.1).collect();
        let v = f.dim;
        let mut c = vec![0.0; v * v];
        f.circulant(&p, 1.0, &mut c, &mut vec![0.0; 7 * v]);
        for i in 0..v {
            for j in 0..v {
                assert!((c[i * v + j] - c[j * v + i]).abs() < 1e-14);
            }
        }
        // A plane wave cos(k·r) is an eigenvector with eigenvalue e^{u_o(k)}.
        for k in 0..v {
            let ck = coords(&[3, 4], k);
            let wave: Vec<f64> = (0..v)
                .map(|r| {
                    let cr = coords(&[3, 4], r);
                    (std::f64::consts::TAU * (ck[0] * cr[0]) as f64 / 3.0
                        + std::f64::consts::TAU * (ck[1] * cr[1]) as f64 / 4.0)
                        .cos()
                })
                .collect();
            let lam = f.u(&p, k).exp();
            for i in 0..v {
                let cw: f64 = (0..v).map(|j| c[i * v + j] * wave[j]).sum();
                assert!((cw - lam * wave[i]).abs() < 1e-12, "k = {k}: {cw} vs {}", lam * wave[i]);
            }
        }
    }
}
