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
//! through every adjoint, so they add nothing.
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
use ndarray::{ArrayView2, ArrayViewMut2};
use std::ops::{Add, Mul};

/// Scalar type of the lane path (f64 or f32).
pub(crate) trait Real: Copy + Default + Send + Sync + Add<Output = Self> + Mul<Output = Self> + 'static {
    /// Lanes per tile.
    const LN: usize;
    /// Rounds an f64.
    fn of(v: f64) -> Self;
    /// Widens to f64.
    fn wide(self) -> f64;
    /// self·a + b rounded once.
    fn fused(self, a: Self, b: Self) -> Self;
}

impl Real for f64 {
    const LN: usize = 8;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fused(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

impl Real for f32 {
    const LN: usize = 16;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn fused(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

/// a·b + c, fused when the instruction set has FMA.
#[inline(always)]
fn madd<T: Real, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA {
        a.fused(b, c)
    } else {
        a * b + c
    }
}

/// acc += a ⊙ b lane by lane (one SIMD multiply-add).
#[inline(always)]
fn fma_lanes<T: Real, const LN: usize, const FMA: bool>(acc: &mut [T; LN], a: &[T; LN], b: &[T; LN]) {
    for l in 0..LN {
        acc[l] = madd::<T, FMA>(a[l], b[l], acc[l]);
    }
}

/// acc += w · b lane by lane.
#[inline(always)]
fn fma_scalar_lanes<T: Real, const LN: usize, const FMA: bool>(acc: &mut [T; LN], w: T, b: &[T; LN]) {
    for l in 0..LN {
        acc[l] = madd::<T, FMA>(w, b[l], acc[l]);
    }
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
fn to_lanes<T: Real, const LN: usize>(a: ArrayView2<f64>, out: &mut [T]) {
    let (rows, w) = a.dim();
    for (tile, ot) in out.chunks_exact_mut(w * LN).enumerate() {
        for l in 0..LN {
            let r = tile * LN + l;
            if r < rows {
                for (i, &v) in a.row(r).iter().enumerate() {
                    ot[i * LN + l] = T::of(v);
                }
            } else {
                for i in 0..w {
                    ot[i * LN + l] = T::default();
                }
            }
        }
    }
}

/// Lane-major tiles back into the rows of `a`.
fn from_lanes<T: Real, const LN: usize>(src: &[T], mut a: ArrayViewMut2<f64>) {
    let (rows, w) = a.dim();
    for r in 0..rows {
        let (tile, l) = (r / LN, r % LN);
        let st = &src[tile * w * LN..(tile + 1) * w * LN];
        for (i, v) in a.row_mut(r).iter_mut().enumerate() {
            *v = st[i * LN + l].wide();
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
#[allow(clippy::too_many_arguments)] // the kernel's buffers and shape, all explicit
fn conv_tile<T: Real, const LN: usize, const FMA: bool>(
    u: &[T],
    w: &[T],
    bias: Option<&[T]>,
    nbr: &[usize],
    taps: usize,
    cin: usize,
    cout: usize,
    y: &mut [T],
) {
    let v = nbr.len() / taps;
    let mut o0 = 0;
    while o0 < cout {
        let left = cout - o0;
        let k = Kern {
            u,
            w,
            bias,
            nbr,
            taps,
            cin,
            cout,
        };
        // Accumulators of at most 64 scalars (OB·XB·LN), the most LLVM keeps
        // in registers: f64 (LN = 8) takes 8 outputs at a time, f32 (LN = 16) 4.
        if left >= 8 && LN <= 8 {
            k.sites::<LN, 8, 1, FMA>(o0, 0, v, y);
            o0 += 8;
        } else if left >= 4 && LN <= 8 {
            let x1 = v - v % 2;
            k.sites::<LN, 4, 2, FMA>(o0, 0, x1, y);
            k.sites::<LN, 4, 1, FMA>(o0, x1, v, y);
            o0 += 4;
        } else if left >= 4 {
            k.sites::<LN, 4, 1, FMA>(o0, 0, v, y);
            o0 += 4;
        } else if left >= 2 {
            let x1 = v - v % 2;
            k.sites::<LN, 2, 2, FMA>(o0, 0, x1, y);
            k.sites::<LN, 2, 1, FMA>(o0, x1, v, y);
            o0 += 2;
        } else {
            let x1 = v - v % 4;
            k.sites::<LN, 1, 4, FMA>(o0, 0, x1, y);
            k.sites::<LN, 1, 1, FMA>(o0, x1, v, y);
            o0 += 1;
        }
    }
}

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
    /// Output channels o0..o0+OB at sites x0..x1 (a multiple of XB apart).
    #[inline(always)]
    fn sites<const LN: usize, const OB: usize, const XB: usize, const FMA: bool>(
        &self,
        o0: usize,
        x0: usize,
        x1: usize,
        y: &mut [T],
    ) {
        let (taps, cin, cout) = (self.taps, self.cin, self.cout);
        let mut x = x0;
        while x < x1 {
            let mut acc = [[[T::default(); LN]; OB]; XB];
            if let Some(b) = self.bias {
                for a in acc.iter_mut() {
                    for (o, ao) in a.iter_mut().enumerate() {
                        *ao = [b[o0 + o]; LN];
                    }
                }
            }
            for t in 0..taps {
                let wt = &self.w[t * cin * cout..(t + 1) * cin * cout];
                let src: [usize; XB] = std::array::from_fn(|xi| self.nbr[(x + xi) * taps + t]);
                for c in 0..cin {
                    let wc: &[T; OB] = wt[c * cout + o0..c * cout + o0 + OB].try_into().unwrap();
                    for (xi, a) in acc.iter_mut().enumerate() {
                        let at = (src[xi] * cin + c) * LN;
                        let uv: &[T; LN] = self.u[at..at + LN].try_into().unwrap();
                        for (ao, &wo) in a.iter_mut().zip(wc) {
                            fma_scalar_lanes::<T, LN, FMA>(ao, wo, uv);
                        }
                    }
                }
            }
            for (xi, a) in acc.iter().enumerate() {
                let at = ((x + xi) * cout + o0) * LN;
                for (o, ao) in a.iter().enumerate() {
                    y[at + o * LN..at + (o + 1) * LN].copy_from_slice(ao);
                }
            }
            x += XB;
        }
    }
}

/// Adds one tile's W̄(o, t, c) += Σ_x Σ_l ȳ(x, o) u(x + δ_t, c) (and the pair
/// term dȳ du) to `gw` (layout of the parameters) and b̄ to `gb`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the kernel's buffers and shape, all explicit
fn weight_grad_tile<T: Real, const LN: usize, const FMA: bool>(
    gy: &[T],
    u: &[T],
    pair: Option<(&[T], &[T])>,
    nbr: &[usize],
    taps: usize,
    cin: usize,
    cout: usize,
    gw: &mut [f64],
    gb: &mut [f64],
) {
    let k = Kern {
        u,
        w: gy,
        bias: None,
        nbr,
        taps,
        cin,
        cout,
    };
    let mut o0 = 0;
    while o0 < cout {
        let left = cout - o0;
        // At most 64 accumulator scalars, as in `conv_tile`.
        if left >= 8 && LN <= 8 {
            k.weight_grad::<LN, 8, 1, FMA>(pair, o0, gw);
            o0 += 8;
        } else if left >= 4 {
            k.weight_grad::<LN, 4, 1, FMA>(pair, o0, gw);
            o0 += 4;
        } else if left >= 2 {
            k.weight_grad::<LN, 2, 2, FMA>(pair, o0, gw);
            o0 += 2;
        } else {
            k.weight_grad::<LN, 1, 4, FMA>(pair, o0, gw);
            o0 += 1;
        }
    }
    let v = nbr.len() / taps;
    for (o, g) in gb.iter_mut().enumerate() {
        let mut s = [T::default(); LN];
        for x in 0..v {
            let at = (x * cout + o) * LN;
            for (sl, &gl) in s.iter_mut().zip(&gy[at..at + LN]) {
                *sl = *sl + gl;
            }
        }
        *g += lane_sum(&s);
    }
}

fn lane_sum<T: Real>(s: &[T]) -> f64 {
    s.iter().fold(0.0, |a, &v| a + v.wide())
}

impl<T: Real> Kern<'_, T> {
    /// W̄ of output channels o0..o0+OB, with `self.w` holding ȳ: for each
    /// (t, c) the OB sums run over the sites in XU interleaved accumulator
    /// sets (more independent chains for small OB), added in a fixed order.
    #[inline(always)]
    fn weight_grad<const LN: usize, const OB: usize, const XU: usize, const FMA: bool>(
        &self,
        pair: Option<(&[T], &[T])>,
        o0: usize,
        gw: &mut [f64],
    ) {
        let (taps, cin, cout) = (self.taps, self.cin, self.cout);
        let v = self.nbr.len() / taps;
        let terms = std::iter::once((self.w, self.u)).chain(pair);
        for t in 0..taps {
            for c in 0..cin {
                let mut acc = [[[T::default(); LN]; OB]; XU];
                let x1 = v - v % XU;
                for (gy, u) in terms.clone() {
                    let mut x = 0;
                    while x < x1 {
                        for (xi, a) in acc.iter_mut().enumerate() {
                            self.weight_grad_site::<LN, OB, FMA>(gy, u, x + xi, t, c, o0, a);
                        }
                        x += XU;
                    }
                    for x in x1..v {
                        self.weight_grad_site::<LN, OB, FMA>(gy, u, x, t, c, o0, &mut acc[0]);
                    }
                }
                for o in 0..OB {
                    let mut s = 0.0;
                    for a in &acc {
                        s += lane_sum(&a[o]);
                    }
                    gw[(o0 + o) * taps * cin + t * cin + c] += s;
                }
            }
        }
    }
}

impl<T: Real> Kern<'_, T> {
    /// a(o) += ȳ(x, o0 + o) u(x + δ_t, c), lane by lane.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // the kernel's buffers and indices, all explicit
    fn weight_grad_site<const LN: usize, const OB: usize, const FMA: bool>(
        &self,
        gy: &[T],
        u: &[T],
        x: usize,
        t: usize,
        c: usize,
        o0: usize,
        a: &mut [[T; LN]; OB],
    ) {
        let src = (self.nbr[x * self.taps + t] * self.cin + c) * LN;
        let uv: &[T; LN] = u[src..src + LN].try_into().unwrap();
        let at = (x * self.cout + o0) * LN;
        for (ao, go) in a.iter_mut().zip(gy[at..at + OB * LN].chunks_exact(LN)) {
            fma_lanes::<T, LN, FMA>(ao, go.try_into().unwrap(), uv);
        }
    }
}

/// y = φ(u).
#[inline(always)]
fn act_forward<T: Real>(a: Act, u: &[T], y: &mut [T]) {
    if let Act::LeakyRelu(s) = a {
        let s = T::of(s);
        for (y, &u) in y.iter_mut().zip(u) {
            *y = if u.wide() > 0.0 { u } else { s * u };
        }
    } else {
        for (y, &u) in y.iter_mut().zip(u) {
            *y = T::of(a.value(u.wide()));
        }
    }
}

/// dy = φ'(v) du.
#[inline(always)]
fn act_tangent<T: Real>(a: Act, v: &[T], du: &[T], dy: &mut [T]) {
    for ((dy, &v), &du) in dy.iter_mut().zip(v).zip(du) {
        *dy = T::of(a.d1(v.wide())) * du;
    }
}

/// ū = ȳ φ'(v) (+ dȳ φ''(v) dv), dū = dȳ φ'(v) in pair mode.
#[inline(always)]
fn act_backward<T: Real>(a: Act, v: &[T], gy: &[T], gu: &mut [T], pair: Option<(&[T], &[T], &mut [T])>) {
    match pair {
        None => {
            if let Act::LeakyRelu(s) = a {
                let s = T::of(s);
                for ((gu, &gy), &v) in gu.iter_mut().zip(gy).zip(v) {
                    *gu = if v.wide() > 0.0 { gy } else { s * gy };
                }
            } else {
                for ((gu, &gy), &v) in gu.iter_mut().zip(gy).zip(v) {
                    *gu = gy * T::of(a.d1(v.wide()));
                }
            }
        }
        Some((dv, dgy, dgu)) => {
            for i in 0..gu.len() {
                let (d1, d2) = a.d1_d2(v[i].wide());
                let (d1, d2) = (T::of(d1), T::of(d2));
                gu[i] = gy[i] * d1 + dgy[i] * d2 * dv[i];
                dgu[i] = dgy[i] * d1;
            }
        }
    }
}

/// y = conv(u) (+ b) on every tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the kernel's buffers and shape, all explicit
fn conv_layer<T: Real, const LN: usize, const FMA: bool>(
    u: &[T],
    y: &mut [T],
    w: &[T],
    bias: Option<&[T]>,
    geom: &ConvGeometry,
    cin: usize,
    cout: usize,
) {
    let v = geom.sites;
    for (ut, yt) in u.chunks_exact(v * cin * LN).zip(y.chunks_exact_mut(v * cout * LN)) {
        conv_tile::<T, LN, FMA>(ut, w, bias, &geom.nbr, geom.taps, cin, cout, yt);
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
fn forward_body<T: Real, const LN: usize, const FMA: bool>(a: Forward<'_, T>) {
    assert_eq!(LN, T::LN);
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
    to_lanes::<T, LN>(input, &mut tape.acts[0]);
    if let Some(d) = dinput {
        to_lanes::<T, LN>(d, &mut tape.dacts[0]);
    }
    for (k, op) in s.ops.iter().enumerate() {
        match *op {
            Op::Conv { cin, cout, offset } => {
                let nw = cout * taps * cin;
                pack(&p[offset..offset + nw], taps, cin, cout, false, grow(&mut work.w, nw));
                for (bo, &pb) in grow(&mut work.b, cout).iter_mut().zip(&p[offset + nw..]) {
                    *bo = T::of(pb);
                }
                let (w, b) = (&work.w[..nw], &work.b[..cout]);
                let (lo, hi) = tape.acts.split_at_mut(k + 1);
                conv_layer::<T, LN, FMA>(&lo[k], &mut hi[0], w, Some(b), g, cin, cout);
                if tangent {
                    let (lo, hi) = tape.dacts.split_at_mut(k + 1);
                    conv_layer::<T, LN, FMA>(&lo[k], &mut hi[0], w, None, g, cin, cout);
                }
            }
            Op::Act(a) => {
                let (lo, hi) = tape.acts.split_at_mut(k + 1);
                act_forward(a, &lo[k], &mut hi[0]);
                if tangent {
                    let (dlo, dhi) = tape.dacts.split_at_mut(k + 1);
                    act_tangent(a, &tape.acts[k], &dlo[k], &mut dhi[0]);
                }
            }
            Op::Dense { .. } => unreachable!("the lane path runs convolutional networks only"),
        }
    }
    from_lanes::<T, LN>(tape.acts.last().unwrap(), output);
    if let Some(d) = doutput {
        from_lanes::<T, LN>(tape.dacts.last().unwrap(), d);
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
fn backward_body<T: Real, const LN: usize, const FMA: bool>(a: Backward<'_, T>) {
    assert_eq!(LN, T::LN);
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
    let tl = tape.tiles * LN;
    let wmax = *s.widths.iter().max().unwrap();
    let mut g0 = std::mem::take(&mut work.g[0]);
    let mut g1 = std::mem::take(&mut work.g[1]);
    let mut dg0 = std::mem::take(&mut work.dg[0]);
    let mut dg1 = std::mem::take(&mut work.dg[1]);
    grow(&mut g0, tl * wmax);
    grow(&mut g1, tl * wmax);
    let wl = *s.widths.last().unwrap();
    to_lanes::<T, LN>(g_out, &mut g0[..tl * wl]);
    if let Some(d) = dg_out {
        grow(&mut dg0, tl * wmax);
        grow(&mut dg1, tl * wmax);
        to_lanes::<T, LN>(d, &mut dg0[..tl * wl]);
    }
    for (k, op) in s.ops.iter().enumerate().rev() {
        let (wi, wo) = (s.widths[k], s.widths[k + 1]);
        let u = &tape.acts[k][..];
        let (gy, gu) = (&g0[..tl * wo], &mut g1[..tl * wi]);
        match *op {
            Op::Act(a) => {
                let pr = pair.then(|| (&tape.dacts[k][..], &dg0[..tl * wo], &mut dg1[..tl * wi]));
                act_backward(a, u, gy, gu, pr);
            }
            Op::Conv { cin, cout, offset } => {
                let nw = cout * taps * cin;
                if let Some(gp) = gp.as_deref_mut() {
                    let (gw, gb) = gp[offset..offset + nw + cout].split_at_mut(nw);
                    for t in 0..tape.tiles {
                        let (yo, uo) = (t * v * cout * LN, t * v * cin * LN);
                        let (ny, nu) = (v * cout * LN, v * cin * LN);
                        let pr = pair.then(|| (&dg0[yo..yo + ny], &tape.dacts[k][uo..uo + nu]));
                        weight_grad_tile::<T, LN, FMA>(
                            &gy[yo..yo + ny],
                            &u[uo..uo + nu],
                            pr,
                            &g.nbr,
                            taps,
                            cin,
                            cout,
                            gw,
                            gb,
                        );
                    }
                }
                let wt = grow(&mut work.w, nw);
                pack(&p[offset..offset + nw], taps, cin, cout, true, wt);
                conv_layer::<T, LN, FMA>(gy, gu, wt, None, g, cout, cin);
                if pair {
                    conv_layer::<T, LN, FMA>(&dg0[..tl * wo], &mut dg1[..tl * wi], wt, None, g, cout, cin);
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
    from_lanes::<T, LN>(&g0[..tl * w0], g_in);
    if let Some(d) = dg_in {
        from_lanes::<T, LN>(&dg0[..tl * w0], d);
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
        pub(crate) fn $name<T: Real, const LN: usize>(isa: Isa, a: $args<'_, T>) {
            assert!(isa.available(), "this machine cannot run {isa:?} kernels");
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512<T: Real, const LN: usize>(a: $args<'_, T>) {
                    $body::<T, LN, true>(a)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<T: Real, const LN: usize>(a: $args<'_, T>) {
                    $body::<T, LN, true>(a)
                }
                match isa {
                    // SAFETY: `Isa::best` found these features on this machine.
                    Isa::Avx512 => return unsafe { avx512::<T, LN>(a) },
                    // SAFETY: as above.
                    Isa::Avx2 => return unsafe { avx2::<T, LN>(a) },
                    Isa::Portable => {}
                }
            }
            let _ = isa;
            $body::<T, LN, false>(a)
        }
    };
}

dispatch!(forward, forward_body, Forward);
dispatch!(backward, backward_body, Backward);
