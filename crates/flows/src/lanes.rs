//! Lane-major direct periodic convolution: the fast path of convolutional
//! conditioners, in f64 or f32.
//!
//! # Layout
//! A chunk of `rows` samples is cut into tiles of `LN` samples, the *lanes*
//! (the last tile is padded with zero rows). Inside a tile an activation of C
//! channels on V sites is stored `[site][channel][lane]`. Every operation of
//! a convolutional network is then, for each (site, channel), the same
//! arithmetic on `LN` independent samples: one SIMD vector (LN = 16 in f32,
//! 8 in f64: one AVX-512 register). Row r of a site-major batch (entry
//! `site·C + c`) maps to tile r / LN, lane r mod LN, position
//! `(tile·V·C + site·C + c)·LN + lane`.
//!
//! # Direct convolution (docs/THEORY.md §4.4 for the network itself)
//! y(x, o) = b(o) + Σ_t Σ_c W(o, t, c) u(x + δ_t, c), t over the kᵈ taps.
//! The kernel keeps a block of OB output channels (for XB sites) in
//! registers and streams the taps: no im2col copy, and each loaded input
//! vector feeds OB fused multiply-adds.
//!
//! Adjoint in the input: ū(x, c) = Σ_t Σ_o W(o, t, c) ȳ(x − δ_t, o). The
//! tap of −δ_t is t̄ = kᵈ − 1 − t (negating every offset reverses each
//! base-k digit of the row-major tap index), so
//! ū(x, c) = Σ_t Σ_o W(o, t̄, c) ȳ(x + δ_t, o): the same kernel, from C_out
//! to C_in channels, with the weights transposed and tap-reversed.
//!
//! Adjoint in the weights: W̄(o, t, c) = Σ_x Σ_lanes ȳ(x, o) u(x + δ_t, c),
//! b̄(o) = Σ_x Σ_lanes ȳ(x, o); the pair mode adds dȳ(x, o) du(x + δ_t, c)
//! (the tangent is linear in W: [`crate::net`]). Padded lanes carry ȳ = 0
//! through every adjoint, so they add nothing. The kernel treats W̄ as a
//! matrix (row o, column j = t·c_in + c) and keeps OB × JB lane-wise sums in
//! registers over one sweep of the sites (docs/THEORY.md §4.10).
//!
//! # Precision
//! `T = f64` or `f32`. Parameters stay f64 and are rounded to T when packed
//! for a pass; activations, tangents and adjoints of the network are T; the
//! per-tile weight-gradient sums are T, added to the f64 gradient in tile
//! order. Everything outside the network (the coupling's scale and shift,
//! log-determinants, losses, Adam) stays f64.
//!
//! # Instruction sets
//! The kernels are compiled three times — AVX-512, AVX2 + FMA, portable —
//! and picked at run time, so one binary runs on any x86-64 machine (and
//! any other architecture, portable). The FMA builds round once per
//! multiply-add and the portable one twice, so results agree to round-off
//! across machines; on one machine they are bit-identical for any number of
//! threads (each lane does the same operations in the same order whatever
//! its tile, and reductions run in a fixed order).

use crate::activation::Act;
use crate::net::{ConvGeometry, Op};
use crate::simd::{self, Arr, Simd};
use ndarray::{ArrayView2, ArrayViewMut2};
use std::ops::{Add, Mul};

/// Scalar type of the lane path (f64 or f32).
pub(crate) trait Real:
    Copy + Default + PartialOrd + Send + Sync + Add<Output = Self> + Mul<Output = Self> + 'static
{
    /// Lanes per tile: the width of the vectors below (every family has
    /// the same, checked at compile time in the dispatch).
    const LN: usize = <Self::Portable as Simd>::N;
    /// The vector of `LN` lanes per instruction-set family.
    type Portable: Simd<T = Self>;
    /// As above, AVX-512 (the portable type off x86-64; never dispatched there).
    type Avx512: Simd<T = Self>;
    /// As above, AVX2 + FMA.
    type Avx2: Simd<T = Self>;
    /// Rounds an f64.
    fn of(v: f64) -> Self;
    /// Widens to f64.
    fn wide(self) -> f64;
    /// tanh in this precision.
    fn tanh(self) -> Self;
}

impl Real for f64 {
    type Portable = Arr<f64, 8>;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = simd::Avx512F64;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = simd::Avx2F64;
    #[cfg(not(target_arch = "x86_64"))]
    type Avx512 = Arr<f64, 8>;
    #[cfg(not(target_arch = "x86_64"))]
    type Avx2 = Arr<f64, 8>;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
}

impl Real for f32 {
    type Portable = Arr<f32, 16>;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = simd::Avx512F32;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = simd::Avx2F32;
    #[cfg(not(target_arch = "x86_64"))]
    type Avx512 = Arr<f32, 16>;
    #[cfg(not(target_arch = "x86_64"))]
    type Avx2 = Arr<f32, 16>;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f32(self)
    }
}

/// tanh in f32 by arithmetic alone (so a loop of it vectorizes):
/// tanh x = 1 − 2/(e^{2x} + 1) with e^{2x} = 2ᵏ e^r, k = round(2x/ln 2),
/// |r| ≤ ln2/2, e^r by its Taylor series to r⁷ (truncation < 6e-9), and x
/// clamped to ±9 (tanh 9 = 1 − 3e-8). Absolute error ≤ 2.4e-7 (tested
/// against f64 tanh): the order of f32 rounding of outputs of order 1,
/// which is what the conditioner's outputs ŝ, t are.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let y = 2.0 * x.clamp(-9.0, 9.0);
    let k = (y * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 + r / 7.0;
    p = 1.0 + r / 6.0 * p;
    p = 1.0 + r / 5.0 * p;
    p = 1.0 + r / 4.0 * p;
    p = 1.0 + r / 3.0 * p;
    p = 1.0 + r / 2.0 * p;
    p = 1.0 + r * p;
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    1.0 - 2.0 / (p * scale + 1.0)
}

/// The activations (and tangents) of one chunk, lane-major: `acts[k]` is the
/// input of op k, the last entry the output.
#[derive(Debug)]
pub(crate) struct LaneTape<T> {
    rows: usize,
    tiles: usize,
    pub(crate) acts: Vec<Vec<T>>,
    pub(crate) dacts: Vec<Vec<T>>,
}

impl<T: Real> LaneTape<T> {
    /// A tape for `rows` rows of a network with row widths `widths`.
    pub(crate) fn new(rows: usize, widths: &[usize], tangent: bool) -> Self {
        let tiles = rows.div_ceil(T::LN);
        let acts: Vec<Vec<T>> = widths.iter().map(|&w| vec![T::default(); tiles * w * T::LN]).collect();
        let dacts = if tangent { acts.clone() } else { Vec::new() };
        LaneTape {
            rows,
            tiles,
            acts,
            dacts,
        }
    }
}

/// Reusable buffers of the lane path: packed weights and the adjoints.
#[derive(Debug, Default)]
pub(crate) struct LaneWork<T> {
    w: Vec<T>,
    b: Vec<T>,
    g: [Vec<T>; 2],
    dg: [Vec<T>; 2],
}

fn grow<T: Real>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// The shape facts the kernels need.
#[derive(Clone, Copy)]
pub(crate) struct Shape<'a> {
    pub(crate) ops: &'a [Op],
    pub(crate) widths: &'a [usize],
    pub(crate) geom: &'a ConvGeometry,
}

/// Rows of `a` (site-major) into lane-major tiles `out` (zero padding).
fn to_lanes<T: Real>(a: ArrayView2<f64>, out: &mut [T]) {
    let ln = T::LN;
    let (rows, w) = a.dim();
    for (tile, ot) in out.chunks_exact_mut(w * ln).enumerate() {
        for l in 0..ln {
            let r = tile * ln + l;
            if r < rows {
                for (i, &v) in a.row(r).iter().enumerate() {
                    ot[i * ln + l] = T::of(v);
                }
            } else {
                for i in 0..w {
                    ot[i * ln + l] = T::default();
                }
            }
        }
    }
}

/// Lane-major tiles back into the rows of `a`.
fn from_lanes<T: Real>(src: &[T], mut a: ArrayViewMut2<f64>) {
    let ln = T::LN;
    let (rows, w) = a.dim();
    for r in 0..rows {
        let (tile, l) = (r / ln, r % ln);
        let st = &src[tile * w * ln..(tile + 1) * w * ln];
        for (i, v) in a.row_mut(r).iter_mut().enumerate() {
            *v = st[i * ln + l].wide();
        }
    }
}

/// Packs W(o, t, c) (row-major c_out × (kᵈ·c_in), column t·c_in + c) as
/// `w[(t·c_in + c)·c_out + o]`, or, `transposed`, the input-adjoint weights
/// `w[(t·c_out + o)·c_in + c] = W(o, t̄, c)`.
fn pack<T: Real>(p: &[f64], taps: usize, cin: usize, cout: usize, transposed: bool, w: &mut [T]) {
    for o in 0..cout {
        for t in 0..taps {
            for c in 0..cin {
                let v = T::of(p[o * taps * cin + t * cin + c]);
                if transposed {
                    w[((taps - 1 - t) * cout + o) * cin + c] = v;
                } else {
                    w[(t * cin + c) * cout + o] = v;
                }
            }
        }
    }
}

/// One tile of y = conv(u) (+ bias): u has `cin` channels, y `cout`, `w`
/// packed as [`pack`] (forward layout).
#[inline(always)]
fn conv_tile<V: Simd>(k: &Kern<'_, V::T>, y: &mut [V::T]) {
    let mut o0 = 0;
    while o0 < k.cout {
        let left = k.cout - o0;
        // Accumulators: OB outputs × XB sites; with 32 registers 16 sums + OB
        // weights + XB inputs, otherwise ≤ 8 sums.
        o0 += match (V::MANY_REGS, left) {
            (true, 8..) => k.site_blocks::<V, 8, 2>(o0, y),
            (true, 4..) => k.site_blocks::<V, 4, 4>(o0, y),
            (true, 2..) => k.site_blocks::<V, 2, 8>(o0, y),
            (true, _) => k.site_blocks::<V, 1, 8>(o0, y),
            (false, 8..) => k.site_blocks::<V, 8, 1>(o0, y),
            (false, 4..) => k.site_blocks::<V, 4, 2>(o0, y),
            (false, 2..) => k.site_blocks::<V, 2, 4>(o0, y),
            (false, _) => k.site_blocks::<V, 1, 4>(o0, y),
        };
    }
}

/// The pair-mode operands of a weight adjoint: (dȳ, du).
type Pair<'a, T> = (&'a [T], &'a [T]);

/// A convolution's operands: input tile `u`, packed weights `w` (or, for the
/// weight adjoint, the output adjoint ȳ), optional bias, the lattice.
struct Kern<'a, T> {
    u: &'a [T],
    w: &'a [T],
    bias: Option<&'a [T]>,
    nbr: &'a [usize],
    taps: usize,
    cin: usize,
    cout: usize,
}

impl<T: Real> Kern<'_, T> {
    /// Output channels o0..o0+OB at every site: blocks of XB sites, then the
    /// remaining sites one by one. Returns OB.
    #[inline(always)]
    fn site_blocks<V: Simd<T = T>, const OB: usize, const XB: usize>(&self, o0: usize, y: &mut [T]) -> usize {
        let v = self.nbr.len() / self.taps;
        let x1 = v - v % XB;
        self.sites::<V, OB, XB>(o0, 0, x1, y);
        self.sites::<V, OB, 1>(o0, x1, v, y);
        OB
    }

    /// Output channels o0..o0+OB at sites x0..x1 (a multiple of XB apart).
    #[inline(always)]
    fn sites<V: Simd<T = T>, const OB: usize, const XB: usize>(&self, o0: usize, x0: usize, x1: usize, y: &mut [T]) {
        let (taps, cin, cout, n) = (self.taps, self.cin, self.cout, V::N);
        let mut x = x0;
        while x < x1 {
            let mut acc = [[V::zero(); OB]; XB];
            if let Some(b) = self.bias {
                for a in acc.iter_mut() {
                    for (o, ao) in a.iter_mut().enumerate() {
                        *ao = V::splat(b[o0 + o]);
                    }
                }
            }
            for t in 0..taps {
                let wt = &self.w[t * cin * cout..(t + 1) * cin * cout];
                let src: [usize; XB] = std::array::from_fn(|xi| self.nbr[(x + xi) * taps + t] * cin);
                for c in 0..cin {
                    let wc: &[T; OB] = wt[c * cout + o0..c * cout + o0 + OB].try_into().unwrap();
                    for (xi, a) in acc.iter_mut().enumerate() {
                        let uv = V::load(&self.u[(src[xi] + c) * n..]);
                        for (ao, &wo) in a.iter_mut().zip(wc) {
                            *ao = V::splat(wo).mul_add(uv, *ao);
                        }
                    }
                }
            }
            for (xi, a) in acc.iter().enumerate() {
                let at = ((x + xi) * cout + o0) * n;
                for (o, ao) in a.iter().enumerate() {
                    ao.store(&mut y[at + o * n..]);
                }
            }
            x += XB;
        }
    }

    /// W̄(o, j) for output channels o0..o0+OB and columns j0..j0+JB of the
    /// weight matrix (column j = t·c_in + c), with `self.w` holding ȳ: one
    /// sweep over the sites keeps the OB × JB sums in registers and loads,
    /// per site, OB adjoint vectors and JB input vectors — OB + JB loads for
    /// OB·JB multiply-adds, where a sweep per column would load OB + 1 for
    /// OB. The sums are added to `gw` in a fixed order.
    #[inline(always)]
    fn weight_grad<V: Simd<T = T>, const OB: usize, const JB: usize>(
        &self,
        pair: Option<Pair<'_, T>>,
        o0: usize,
        j0: usize,
        gw: &mut [f64],
    ) {
        let (taps, cin) = (self.taps, self.cin);
        let tap: [usize; JB] = std::array::from_fn(|jj| (j0 + jj) / cin);
        let chan: [usize; JB] = std::array::from_fn(|jj| (j0 + jj) % cin);
        let mut acc = self.weight_sums::<V, OB, JB>(self.w, self.u, o0, tap, chan, [[V::zero(); JB]; OB]);
        if let Some((dgy, du)) = pair {
            acc = self.weight_sums::<V, OB, JB>(dgy, du, o0, tap, chan, acc);
        }
        for (o, a) in acc.iter().enumerate() {
            let row = (o0 + o) * taps * cin + j0;
            for (gwj, aj) in gw[row..row + JB].iter_mut().zip(a) {
                *gwj += aj.sum();
            }
        }
    }

    /// `acc` plus Σ_x ȳ(x, o0 + o) u(x + δ_{tap[j]}, chan[j]) lane by lane,
    /// with the sums passed by value so that they stay in registers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // the kernel's buffers and indices, all explicit
    fn weight_sums<V: Simd<T = T>, const OB: usize, const JB: usize>(
        &self,
        gy: &[T],
        u: &[T],
        o0: usize,
        tap: [usize; JB],
        chan: [usize; JB],
        mut acc: [[V; JB]; OB],
    ) -> [[V; JB]; OB] {
        let (taps, cin, cout, n) = (self.taps, self.cin, self.cout, V::N);
        // Per site: the sites' neighbours and the OB adjoint vectors of
        // channels o0.. as slices checked once.
        let offs: [usize; JB] = std::array::from_fn(|jj| chan[jj] * n);
        for (nbr, gx) in self.nbr.chunks_exact(taps).zip(gy.chunks_exact(cout * n)) {
            let gx = &gx[o0 * n..(o0 + OB) * n];
            let g: [V; OB] = std::array::from_fn(|o| V::load(&gx[o * n..]));
            for jj in 0..JB {
                let uv = V::load(&u[nbr[tap[jj]] * cin * n + offs[jj]..]);
                for o in 0..OB {
                    acc[o][jj] = g[o].mul_add(uv, acc[o][jj]);
                }
            }
        }
        acc
    }

    /// [`Self::weight_grad`] over every column: blocks of JB, then one by one.
    /// Returns OB.
    #[inline(always)]
    fn weight_grad_columns<V: Simd<T = T>, const OB: usize, const JB: usize>(
        &self,
        pair: Option<Pair<'_, T>>,
        o0: usize,
        gw: &mut [f64],
    ) -> usize {
        let cols = self.taps * self.cin;
        let full = cols - cols % JB;
        for j0 in (0..full).step_by(JB) {
            self.weight_grad::<V, OB, JB>(pair, o0, j0, gw);
        }
        for j0 in full..cols {
            self.weight_grad::<V, OB, 1>(pair, o0, j0, gw);
        }
        OB
    }
}

/// Adds one tile's W̄(o, t, c) += Σ_x Σ_l ȳ(x, o) u(x + δ_t, c) (and the pair
/// term dȳ du) to `gw` (layout of the parameters) and b̄ to `gb`; `k.w` is ȳ.
#[inline(always)]
fn weight_grad_tile<V: Simd>(k: &Kern<'_, V::T>, pair: Option<Pair<'_, V::T>>, gw: &mut [f64], gb: &mut [f64]) {
    // Register blocks (sums + adjoint vectors + one input vector): with 32
    // registers 4×4 + 4 + 1, 2×8 + 2 + 1 and 1×8 + 1 + 1; with 8 values
    // 2×2 + 2 + 1 and 1×4 + 1 + 1.
    let mut o0 = 0;
    while o0 < k.cout {
        o0 += match (V::MANY_REGS, k.cout - o0) {
            (true, 4..) => k.weight_grad_columns::<V, 4, 4>(pair, o0, gw),
            (true, 2..) => k.weight_grad_columns::<V, 2, 8>(pair, o0, gw),
            (true, _) => k.weight_grad_columns::<V, 1, 8>(pair, o0, gw),
            (false, 2..) => k.weight_grad_columns::<V, 2, 2>(pair, o0, gw),
            (false, _) => k.weight_grad_columns::<V, 1, 4>(pair, o0, gw),
        };
    }
    let (v, n) = (k.nbr.len() / k.taps, V::N);
    for (o, g) in gb.iter_mut().enumerate() {
        let mut s = V::zero();
        for x in 0..v {
            s = s.add(V::load(&k.w[(x * k.cout + o) * n..]));
        }
        *g += s.sum();
    }
}

/// y = φ(u).
#[inline(always)]
fn act_forward<T: Real>(a: Act, u: &[T], y: &mut [T]) {
    match a {
        Act::LeakyRelu(s) => {
            let s = T::of(s);
            let zero = T::default();
            for (y, &u) in y.iter_mut().zip(u) {
                *y = if u > zero { u } else { s * u };
            }
        }
        Act::ScaledTanh(c) => {
            let (c, ic) = (T::of(c), T::of(1.0 / c));
            for (y, &u) in y.iter_mut().zip(u) {
                *y = c * (u * ic).tanh();
            }
        }
        _ => {
            for (y, &u) in y.iter_mut().zip(u) {
                *y = T::of(a.value(u.wide()));
            }
        }
    }
}

/// (φ'(v), φ''(v)) from the input v and the output y = φ(v): the scaled
/// tanh needs no transcendental given y (φ' = 1 − (y/c)², φ'' = −(2/c)(y/c)φ').
#[inline(always)]
fn act_d1_d2<T: Real>(a: Act, v: T, y: T) -> (T, T) {
    match a {
        Act::LeakyRelu(s) => (T::of(if v.wide() > 0.0 { 1.0 } else { s }), T::default()),
        Act::ScaledTanh(c) => {
            let r = y.wide() / c;
            let d1 = 1.0 - r * r;
            (T::of(d1), T::of(-2.0 / c * r * d1))
        }
        _ => {
            let (d1, d2) = a.d1_d2(v.wide());
            (T::of(d1), T::of(d2))
        }
    }
}

/// dy = φ'(v) du.
#[inline(always)]
fn act_tangent<T: Real>(a: Act, v: &[T], y: &[T], du: &[T], dy: &mut [T]) {
    // The plain adjoint is the same map (ȳ ↦ φ' ȳ), so reuse it.
    act_backward(a, v, y, du, dy, None);
}

/// ū = ȳ φ'(v) (+ dȳ φ''(v) dv), dū = dȳ φ'(v) in pair mode (y = φ(v)).
#[inline(always)]
fn act_backward<T: Real>(a: Act, v: &[T], y: &[T], gy: &[T], gu: &mut [T], pair: Option<(&[T], &[T], &mut [T])>) {
    match (pair, a) {
        // The plain adjoints of the two activations of lattice conditioners,
        // as branch-free loops over the lanes.
        (None, Act::LeakyRelu(s)) => {
            let (s, zero) = (T::of(s), T::default());
            for ((gu, &gy), &v) in gu.iter_mut().zip(gy).zip(v) {
                *gu = if v > zero { gy } else { s * gy };
            }
        }
        (None, Act::ScaledTanh(c)) => {
            let (ic, one, minus) = (T::of(1.0 / c), T::of(1.0), T::of(-1.0));
            for ((gu, &gy), &y) in gu.iter_mut().zip(gy).zip(y) {
                let r = y * ic;
                *gu = gy * (one + minus * r * r);
            }
        }
        (None, _) => {
            for (((gu, &gy), &v), &y) in gu.iter_mut().zip(gy).zip(v).zip(y) {
                *gu = gy * act_d1_d2(a, v, y).0;
            }
        }
        (Some((_, dgy, dgu)), Act::LeakyRelu(s)) => {
            // φ'' = 0: ū = ȳ φ', dū = dȳ φ'.
            let (s, zero) = (T::of(s), T::default());
            for i in 0..gu.len() {
                let d1 = if v[i] > zero { T::of(1.0) } else { s };
                gu[i] = gy[i] * d1;
                dgu[i] = dgy[i] * d1;
            }
        }
        (Some((dv, dgy, dgu)), Act::ScaledTanh(c)) => {
            let (ic, one, minus, m2c) = (T::of(1.0 / c), T::of(1.0), T::of(-1.0), T::of(-2.0 / c));
            for i in 0..gu.len() {
                let r = y[i] * ic;
                let d1 = one + minus * r * r;
                let d2 = m2c * r * d1;
                gu[i] = gy[i] * d1 + dgy[i] * d2 * dv[i];
                dgu[i] = dgy[i] * d1;
            }
        }
        (Some((dv, dgy, dgu)), _) => {
            for i in 0..gu.len() {
                let (d1, d2) = act_d1_d2(a, v[i], y[i]);
                gu[i] = gy[i] * d1 + dgy[i] * d2 * dv[i];
                dgu[i] = dgy[i] * d1;
            }
        }
    }
}

/// y = conv(u) (+ b) on every tile.
#[inline(always)]
fn conv_layer<V: Simd>(
    u: &[V::T],
    y: &mut [V::T],
    w: &[V::T],
    bias: Option<&[V::T]>,
    geom: &ConvGeometry,
    cin: usize,
    cout: usize,
) {
    let (v, n) = (geom.sites, V::N);
    for (ut, yt) in u.chunks_exact(v * cin * n).zip(y.chunks_exact_mut(v * cout * n)) {
        let k = Kern {
            u: ut,
            w,
            bias,
            nbr: &geom.nbr,
            taps: geom.taps,
            cin,
            cout,
        };
        conv_tile::<V>(&k, yt);
    }
}

/// The arguments of a forward pass on lane tiles: reads `input` (and
/// `dinput` for the tangent), writes `output` (and `doutput`).
pub(crate) struct Forward<'a, T> {
    pub(crate) shape: Shape<'a>,
    pub(crate) p: &'a [f64],
    pub(crate) tape: &'a mut LaneTape<T>,
    pub(crate) work: &'a mut LaneWork<T>,
    pub(crate) input: ArrayView2<'a, f64>,
    pub(crate) dinput: Option<ArrayView2<'a, f64>>,
    pub(crate) output: ArrayViewMut2<'a, f64>,
    pub(crate) doutput: Option<ArrayViewMut2<'a, f64>>,
}

#[inline(always)]
fn forward_body<V: Simd>(a: Forward<'_, V::T>) {
    let Forward {
        shape: s,
        p,
        tape,
        work,
        input,
        dinput,
        output,
        doutput,
    } = a;
    assert_eq!(input.nrows(), tape.rows);
    let g = s.geom;
    let taps = g.taps;
    let tangent = dinput.is_some();
    assert!(!tangent || !tape.dacts.is_empty(), "tape has no room for tangents");
    to_lanes(input, &mut tape.acts[0]);
    if let Some(d) = dinput {
        to_lanes(d, &mut tape.dacts[0]);
    }
    for (k, op) in s.ops.iter().enumerate() {
        match *op {
            Op::Conv { cin, cout, offset } => {
                let nw = cout * taps * cin;
                pack(&p[offset..offset + nw], taps, cin, cout, false, grow(&mut work.w, nw));
                for (bo, &pb) in grow(&mut work.b, cout).iter_mut().zip(&p[offset + nw..]) {
                    *bo = <V::T as Real>::of(pb);
                }
                let (w, b) = (&work.w[..nw], &work.b[..cout]);
                let (lo, hi) = tape.acts.split_at_mut(k + 1);
                conv_layer::<V>(&lo[k], &mut hi[0], w, Some(b), g, cin, cout);
                if tangent {
                    let (lo, hi) = tape.dacts.split_at_mut(k + 1);
                    conv_layer::<V>(&lo[k], &mut hi[0], w, None, g, cin, cout);
                }
            }
            Op::Act(a) => {
                let (lo, hi) = tape.acts.split_at_mut(k + 1);
                act_forward(a, &lo[k], &mut hi[0]);
                if tangent {
                    let (dlo, dhi) = tape.dacts.split_at_mut(k + 1);
                    act_tangent(a, &tape.acts[k], &tape.acts[k + 1], &dlo[k], &mut dhi[0]);
                }
            }
            Op::Dense { .. } => unreachable!("the lane path runs convolutional networks only"),
        }
    }
    from_lanes(tape.acts.last().unwrap(), output);
    if let Some(d) = doutput {
        from_lanes(tape.dacts.last().unwrap(), d);
    }
}

/// The arguments of a reverse pass on lane tiles (see `Net::backward`).
pub(crate) struct Backward<'a, T> {
    pub(crate) shape: Shape<'a>,
    pub(crate) p: &'a [f64],
    pub(crate) tape: &'a LaneTape<T>,
    pub(crate) work: &'a mut LaneWork<T>,
    pub(crate) g_out: ArrayView2<'a, f64>,
    pub(crate) dg_out: Option<ArrayView2<'a, f64>>,
    pub(crate) g_in: ArrayViewMut2<'a, f64>,
    pub(crate) dg_in: Option<ArrayViewMut2<'a, f64>>,
    pub(crate) gp: Option<&'a mut [f64]>,
}

#[inline(always)]
fn backward_body<V: Simd>(a: Backward<'_, V::T>) {
    let ln = V::N;
    let Backward {
        shape: s,
        p,
        tape,
        work,
        g_out,
        dg_out,
        g_in,
        dg_in,
        mut gp,
    } = a;
    let g = s.geom;
    let (v, taps) = (g.sites, g.taps);
    let pair = dg_out.is_some();
    assert!(!pair || !tape.dacts.is_empty(), "pair mode needs a tangent tape");
    let tl = tape.tiles * ln;
    let wmax = *s.widths.iter().max().unwrap();
    let mut g0 = std::mem::take(&mut work.g[0]);
    let mut g1 = std::mem::take(&mut work.g[1]);
    let mut dg0 = std::mem::take(&mut work.dg[0]);
    let mut dg1 = std::mem::take(&mut work.dg[1]);
    grow(&mut g0, tl * wmax);
    grow(&mut g1, tl * wmax);
    let wl = *s.widths.last().unwrap();
    to_lanes(g_out, &mut g0[..tl * wl]);
    if let Some(d) = dg_out {
        grow(&mut dg0, tl * wmax);
        grow(&mut dg1, tl * wmax);
        to_lanes(d, &mut dg0[..tl * wl]);
    }
    for (k, op) in s.ops.iter().enumerate().rev() {
        let (wi, wo) = (s.widths[k], s.widths[k + 1]);
        let u = &tape.acts[k][..];
        let (gy, gu) = (&g0[..tl * wo], &mut g1[..tl * wi]);
        match *op {
            Op::Act(a) => {
                let pr = pair.then(|| (&tape.dacts[k][..], &dg0[..tl * wo], &mut dg1[..tl * wi]));
                act_backward(a, u, &tape.acts[k + 1], gy, gu, pr);
            }
            Op::Conv { cin, cout, offset } => {
                let nw = cout * taps * cin;
                if let Some(gp) = gp.as_deref_mut() {
                    let (gw, gb) = gp[offset..offset + nw + cout].split_at_mut(nw);
                    for t in 0..tape.tiles {
                        let (yo, uo) = (t * v * cout * ln, t * v * cin * ln);
                        let (ny, nu) = (v * cout * ln, v * cin * ln);
                        let pr = pair.then(|| (&dg0[yo..yo + ny], &tape.dacts[k][uo..uo + nu]));
                        let k = Kern {
                            u: &u[uo..uo + nu],
                            w: &gy[yo..yo + ny],
                            bias: None,
                            nbr: &g.nbr,
                            taps,
                            cin,
                            cout,
                        };
                        weight_grad_tile::<V>(&k, pr, gw, gb);
                    }
                }
                let wt = grow(&mut work.w, nw);
                pack(&p[offset..offset + nw], taps, cin, cout, true, wt);
                conv_layer::<V>(gy, gu, wt, None, g, cout, cin);
                if pair {
                    conv_layer::<V>(&dg0[..tl * wo], &mut dg1[..tl * wi], wt, None, g, cout, cin);
                }
            }
            Op::Dense { .. } => unreachable!("the lane path runs convolutional networks only"),
        }
        std::mem::swap(&mut g0, &mut g1);
        if pair {
            std::mem::swap(&mut dg0, &mut dg1);
        }
    }
    let w0 = s.widths[0];
    from_lanes(&g0[..tl * w0], g_in);
    if let Some(d) = dg_in {
        from_lanes(&dg0[..tl * w0], d);
    }
    work.g = [g0, g1];
    work.dg = [dg0, dg1];
}

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F + FMA.
    Avx512,
    /// AVX2 + FMA.
    Avx2,
    /// Whatever the build targets (no FMA assumed).
    Portable,
}

impl Isa {
    /// The best instruction set of this machine (detected once).
    pub(crate) fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let fma = std::arch::is_x86_feature_detected!("fma");
                if fma && std::arch::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                if fma && std::arch::is_x86_feature_detected!("avx2") {
                    return Isa::Avx2;
                }
            }
            Isa::Portable
        })
    }

    /// The instruction set of the next pass on this thread: the best one,
    /// unless a test forced another ([`Isa::force`]).
    pub(crate) fn current() -> Isa {
        #[cfg(test)]
        if let Some(isa) = FORCED.with(|f| f.get()) {
            return isa;
        }
        Isa::best()
    }

    /// Makes this thread's passes run with `isa` (`None`: the best again).
    #[cfg(test)]
    pub(crate) fn force(isa: Option<Isa>) {
        FORCED.with(|f| f.set(isa));
    }

    /// Whether this machine can run `self`.
    pub(crate) fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => Isa::best() != Isa::Portable,
            Isa::Avx512 => Isa::best() == Isa::Avx512,
        }
    }
}

#[cfg(test)]
thread_local! {
    static FORCED: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

// The only `unsafe` of the workspace: calling a `#[target_feature]`
// function, after checking at run time that the machine has the features.
macro_rules! dispatch {
    ($name:ident, $body:ident, $args:ident) => {
        /// Runs the pass with instruction set `isa` (which the machine must have).
        ///
        /// # Panics
        /// If this machine lacks `isa`.
        #[allow(unsafe_code)]
        pub(crate) fn $name<T: Real>(isa: Isa, a: $args<'_, T>) {
            const {
                assert!(<T::Avx512 as Simd>::N == T::LN && <T::Avx2 as Simd>::N == T::LN);
            }
            assert!(isa.available(), "this machine cannot run {isa:?} kernels");
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn avx512<T: Real>(a: $args<'_, T>) {
                    $body::<T::Avx512>(a)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<T: Real>(a: $args<'_, T>) {
                    $body::<T::Avx2>(a)
                }
                match isa {
                    // SAFETY: `isa.available()` checked the features above.
                    Isa::Avx512 => return unsafe { avx512::<T>(a) },
                    // SAFETY: as above.
                    Isa::Avx2 => return unsafe { avx2::<T>(a) },
                    Isa::Portable => {}
                }
            }
            $body::<T::Portable>(a)
        }
    };
}

dispatch!(forward, forward_body, Forward);
dispatch!(backward, backward_body, Backward);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_precision_tanh_is_accurate_to_f32_rounding() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f64 * 1e-4; // [−20, 20]
            let t = tanh_f32(x as f32);
            assert!(
                t.abs() <= 1.0 && t.signum() == (x as f32).signum() || t == 0.0,
                "tanh({x}) = {t}"
            );
            worst = worst.max((t as f64 - (x as f32 as f64).tanh()).abs());
        }
        assert!(worst < 2.4e-7, "worst absolute error {worst:e}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!((tanh_f32(f32::MAX) - 1.0).abs() < 1e-7 && (tanh_f32(f32::MIN) + 1.0).abs() < 1e-7);
    }
}
