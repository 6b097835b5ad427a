//! Conditioner networks: dense layers, periodic convolutions, activations,
//! with three hand-written derivative modes.
//!
//! A network g(u; θ) maps one input row u to one output row through a chain
//! of primitives; a batch is an `Array2` with one sample per row. A field of
//! C channels on a lattice of V sites is stored **site-major**, entry
//! `site·C + c`, so a batch of fields (rows × V·C) is also a (rows·V × C)
//! matrix and a convolution is one GEMM.
//!
//! # Primitives and their derivatives
//!
//! Notation: u input, y output, du / dy tangents (forward mode along an input
//! direction), ū = ∂L/∂u adjoints, dū = ∂L/∂(du) adjoints of tangents. The
//! *pair* reverse mode propagates (ȳ, dȳ) → (ū, dū, θ̄) through the map
//! (u, du) ↦ (y, dy); it is what score matching needs (docs/THEORY.md §4.8): with
//! F(θ) = ⟨r, ∇ₓ log q_θ(x)⟩ = d/dε log q_θ(x + εr), F is the forward mode
//! of the network along du = r, and ∂θ F is the reverse mode of that forward
//! mode (reverse-over-forward = "forward-over-reverse" in the usual naming
//! of Hessian-vector products, Pearlmutter 1994).
//!
//! * **Dense** y = W u + b, W ∈ ℝ^{n_out×n_in}:
//!   dy = W du;  ū = Wᵀ ȳ;  dū = Wᵀ dȳ;
//!   W̄ += ȳ uᵀ + dȳ duᵀ;  b̄ += ȳ.
//!   (The tangent is linear in W, so W receives the adjoint of both the
//!   value and the tangent.)
//! * **Periodic convolution** (cross-correlation, circular padding, odd
//!   kernel k, d = 1, 2, 3): y(x, o) = Σ_{δ ∈ {−r..r}^d} Σ_c W(o, δ, c)
//!   u(x + δ mod L, c) + b(o), r = (k − 1)/2. With the im2col matrix
//!   P(u)[(x), (δ, c)] = u(x + δ, c) it is the dense map y = P(u) Wᵀ + b
//!   with P linear in u, so the dense rules hold with ū = Pᵀ(ȳ W) (col2im:
//!   scatter-add back to the neighbours x + δ) and W̄ += ȳᵀ P(u) + dȳᵀ P(du).
//! * **Activation** y = φ(v) elementwise: dy = φ'(v) dv;
//!   v̄ = ȳ φ'(v) + dȳ φ''(v) dv;  dv̄ = dȳ φ'(v)
//!   (differentiate dy = φ'(v) dv in v and dv). See [`crate::activation`].
//!
//! Plain reverse mode is the pair mode with dȳ = 0 and no tangent.
//!
//! Parameter layout per linear primitive, in order: W row-major
//! (n_out × n_in, or c_out × (kᵈ·c_in) with column δ·c_in + c), then b.

use crate::activation::Act;
use crate::config::Dtype;
use crate::lanes::{self, Isa, LaneTape};
use crate::layer::{take, Scratch};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

/// Neighbour table of a periodic lattice for a cubic kernel of odd size k.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvGeometry {
    /// Number of sites V.
    pub sites: usize,
    /// Taps per site, kᵈ.
    pub taps: usize,
    /// `nbr[site·taps + δ]` = index of site + δ (periodic, row-major coordinates).
    pub(crate) nbr: Vec<usize>,
}

impl ConvGeometry {
    /// The neighbour table for lattice extents `shape` and odd kernel size `kernel`.
    ///
    /// # Panics
    /// If `kernel` is even or zero, or `shape` is empty or has a zero extent.
    pub fn periodic(shape: &[usize], kernel: usize) -> Self {
        assert!(kernel % 2 == 1, "kernel size must be odd");
        assert!(!shape.is_empty() && shape.iter().all(|&l| l > 0));
        let d = shape.len();
        let sites: usize = shape.iter().product();
        let taps = kernel.pow(d as u32);
        let r = (kernel / 2) as isize;
        let mut nbr = Vec::with_capacity(sites * taps);
        let mut coord = vec![0usize; d];
        for site in 0..sites {
            // Row-major coordinates of `site`.
            let mut rem = site;
            for mu in (0..d).rev() {
                coord[mu] = rem % shape[mu];
                rem /= shape[mu];
            }
            for t in 0..taps {
                let mut rem_t = t;
                let mut idx = 0usize;
                let mut offs = vec![0isize; d];
                for mu in (0..d).rev() {
                    offs[mu] = (rem_t % kernel) as isize - r;
                    rem_t /= kernel;
                }
                for mu in 0..d {
                    let l = shape[mu] as isize;
                    let c = (coord[mu] as isize + offs[mu]).rem_euclid(l) as usize;
                    idx = idx * shape[mu] + c;
                }
                nbr.push(idx);
            }
        }
        ConvGeometry { sites, taps, nbr }
    }

    /// P = im2col(u): rows·V rows of kᵈ·c_in entries.
    fn im2col(&self, u: &[f64], rows: usize, cin: usize, p: &mut [f64]) {
        // Fixed-size copies for the usual channel counts: a memcpy call per
        // c_in-sized block would cost more than the copy itself.
        match cin {
            1 => self.im2col_c::<1>(u, rows, p),
            2 => self.im2col_c::<2>(u, rows, p),
            4 => self.im2col_c::<4>(u, rows, p),
            8 => self.im2col_c::<8>(u, rows, p),
            16 => self.im2col_c::<16>(u, rows, p),
            _ => self.im2col_any(u, rows, cin, p),
        }
    }

    fn im2col_c<const C: usize>(&self, u: &[f64], rows: usize, p: &mut [f64]) {
        let v = self.sites;
        let k = self.taps;
        for (r, pr) in p.chunks_exact_mut(v * k * C).take(rows).enumerate() {
            let ur = &u[r * v * C..(r + 1) * v * C];
            for (prow, nbr) in pr.chunks_exact_mut(k * C).zip(self.nbr.chunks_exact(k)) {
                for (dst, &src) in prow.chunks_exact_mut(C).zip(nbr) {
                    let s: &[f64; C] = ur[src * C..src * C + C].try_into().unwrap();
                    let d: &mut [f64; C] = dst.try_into().unwrap();
                    *d = *s;
                }
            }
        }
    }

    fn im2col_any(&self, u: &[f64], rows: usize, cin: usize, p: &mut [f64]) {
        let v = self.sites;
        let k = self.taps;
        for r in 0..rows {
            let ur = &u[r * v * cin..(r + 1) * v * cin];
            for site in 0..v {
                let prow = &mut p[(r * v + site) * k * cin..(r * v + site + 1) * k * cin];
                for t in 0..k {
                    let src = self.nbr[site * k + t];
                    prow[t * cin..(t + 1) * cin].copy_from_slice(&ur[src * cin..(src + 1) * cin]);
                }
            }
        }
    }

    /// ū = Pᵀ-scatter of p̄ (overwrites `gu`).
    fn col2im(&self, gp: &[f64], rows: usize, cin: usize, gu: &mut [f64]) {
        gu.fill(0.0);
        match cin {
            1 => self.col2im_c::<1>(gp, rows, gu),
            2 => self.col2im_c::<2>(gp, rows, gu),
            4 => self.col2im_c::<4>(gp, rows, gu),
            8 => self.col2im_c::<8>(gp, rows, gu),
            16 => self.col2im_c::<16>(gp, rows, gu),
            _ => self.col2im_any(gp, rows, cin, gu),
        }
    }

    fn col2im_c<const C: usize>(&self, gp: &[f64], rows: usize, gu: &mut [f64]) {
        let v = self.sites;
        let k = self.taps;
        for (r, pr) in gp.chunks_exact(v * k * C).take(rows).enumerate() {
            let gur = &mut gu[r * v * C..(r + 1) * v * C];
            for (prow, nbr) in pr.chunks_exact(k * C).zip(self.nbr.chunks_exact(k)) {
                for (src, &dst) in prow.chunks_exact(C).zip(nbr) {
                    let s: &[f64; C] = src.try_into().unwrap();
                    let d: &mut [f64; C] = (&mut gur[dst * C..dst * C + C]).try_into().unwrap();
                    for c in 0..C {
                        d[c] += s[c];
                    }
                }
            }
        }
    }

    fn col2im_any(&self, gp: &[f64], rows: usize, cin: usize, gu: &mut [f64]) {
        let v = self.sites;
        let k = self.taps;
        for r in 0..rows {
            let gur = &mut gu[r * v * cin..(r + 1) * v * cin];
            for site in 0..v {
                let prow = &gp[(r * v + site) * k * cin..(r * v + site + 1) * k * cin];
                for t in 0..k {
                    let dst = self.nbr[site * k + t];
                    for c in 0..cin {
                        gur[dst * cin + c] += prow[t * cin + c];
                    }
                }
            }
        }
    }
}

/// One primitive of a network.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Dense { n_in: usize, n_out: usize, offset: usize },
    Conv { cin: usize, cout: usize, offset: usize },
    Act(Act),
}

/// A feed-forward network: a chain of dense / convolution / activation primitives.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    ops: Vec<Op>,
    /// Row widths: `widths[k]` is the input width of op k, the last is the output width.
    widths: Vec<usize>,
    n_params: usize,
    geom: Option<ConvGeometry>,
    /// How convolutions are computed (`None` for an MLP).
    kernel: Option<ConvKernel>,
}

/// How a convolutional network is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// im2col copy + GEMM, f64 (wins for wide layers).
    Im2col,
    /// The lane-major direct kernel ([`crate::lanes`]) in the given precision
    /// (wins for the few channels of lattice conditioners).
    Direct(Dtype),
}

impl ConvKernel {
    /// Widest layer (channels) for which [`ConvKernel::auto`] picks the direct
    /// kernel in f64: measured with `examples/kernel_speed.rs` (L = 8, batch
    /// 256, one thread), direct over im2col 1.86× at 16 hidden channels,
    /// 1.47× at 32, 1.30× at 64.
    pub const DIRECT_MAX_CHANNELS: usize = 64;

    /// The kernel for a network of at most `channels` channels per layer in
    /// precision `dtype`: f32 always runs direct; f64 runs direct up to
    /// [`ConvKernel::DIRECT_MAX_CHANNELS`] channels, im2col above.
    pub fn auto(dtype: Dtype, channels: usize) -> Self {
        match dtype {
            Dtype::F32 => ConvKernel::Direct(Dtype::F32),
            Dtype::F64 if channels <= Self::DIRECT_MAX_CHANNELS => ConvKernel::Direct(Dtype::F64),
            Dtype::F64 => ConvKernel::Im2col,
        }
    }
}

/// Runs `$body` with `$tape` and `$work` bound to the lane tape of `$lt`
/// and the scratch's work buffers of the same precision.
macro_rules! on_lanes {
    ($lt:expr, $scratch:expr, |$tape:ident, $work:ident| $body:expr) => {
        match $lt {
            Lanes::F64($tape) => {
                let $work = &mut $scratch.lanes64;
                $body
            }
            Lanes::F32($tape) => {
                let $work = &mut $scratch.lanes32;
                $body
            }
        }
    };
}

/// The lane-major tape of a direct-kernel network, per precision.
#[derive(Debug)]
enum Lanes {
    F64(LaneTape<f64>),
    F32(LaneTape<f32>),
}

/// Intermediate rows of one network pass (and of its tangent pass).
#[derive(Debug)]
pub struct NetTape {
    rows: usize,
    /// `acts[k]` = input of op k; the last entry is the output. With the
    /// direct kernel only the input and the output (two entries): the
    /// network's own activations live in `lanes`.
    pub(crate) acts: Vec<Array2<f64>>,
    /// Tangents of `acts` (empty unless the tape was made for tangents).
    pub(crate) dacts: Vec<Array2<f64>>,
    lanes: Option<Lanes>,
}

impl NetTape {
    /// Whether the tape holds tangents.
    pub fn has_tangent(&self) -> bool {
        !self.dacts.is_empty()
    }

    /// Rows of the tape.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The input rows, to be written before [`Net::forward`].
    pub fn input_mut(&mut self) -> ArrayViewMut2<'_, f64> {
        self.acts[0].view_mut()
    }

    /// The output rows of the last [`Net::forward`].
    pub fn output(&self) -> ArrayView2<'_, f64> {
        self.acts.last().expect("a tape has an input and an output").view()
    }
}

fn push_act(ops: &mut Vec<Op>, widths: &mut Vec<usize>, act: Act) {
    if !act.is_identity() {
        let w = *widths.last().unwrap();
        ops.push(Op::Act(act));
        widths.push(w);
    }
}

impl Net {
    /// MLP n_in → hidden… → n_out with `act` after every hidden layer and
    /// `out_act` on the output.
    pub fn mlp(n_in: usize, hidden: &[usize], n_out: usize, act: Act, out_act: Act) -> Self {
        let mut ops = Vec::new();
        let mut widths = vec![n_in];
        let mut offset = 0;
        let mut prev = n_in;
        for (i, &w) in hidden.iter().chain(std::iter::once(&n_out)).enumerate() {
            ops.push(Op::Dense {
                n_in: prev,
                n_out: w,
                offset,
            });
            widths.push(w);
            offset += w * prev + w;
            prev = w;
            push_act(&mut ops, &mut widths, if i < hidden.len() { act } else { out_act });
        }
        Net {
            ops,
            widths,
            n_params: offset,
            geom: None,
            kernel: None,
        }
    }

    /// Periodic CNN with channels c_in → hidden… → c_out, `act` after every
    /// hidden convolution and `out_act` on the output, evaluated by
    /// `ConvKernel::auto(Dtype::F64, ·)` (see [`Net::with_kernel`]).
    pub fn conv(geom: ConvGeometry, c_in: usize, hidden: &[usize], c_out: usize, act: Act, out_act: Act) -> Self {
        let v = geom.sites;
        let k = geom.taps;
        let mut ops = Vec::new();
        let mut widths = vec![v * c_in];
        let mut offset = 0;
        let mut prev = c_in;
        for (i, &c) in hidden.iter().chain(std::iter::once(&c_out)).enumerate() {
            ops.push(Op::Conv {
                cin: prev,
                cout: c,
                offset,
            });
            widths.push(v * c);
            offset += c * k * prev + c;
            prev = c;
            push_act(&mut ops, &mut widths, if i < hidden.len() { act } else { out_act });
        }
        let channels = hidden.iter().chain([&c_in, &c_out]).copied().max().unwrap();
        Net {
            ops,
            widths,
            n_params: offset,
            geom: Some(geom),
            kernel: Some(ConvKernel::auto(Dtype::F64, channels)),
        }
    }

    /// The same convolutional network evaluated by `kernel`.
    ///
    /// # Panics
    /// If the network is an MLP.
    pub fn with_kernel(mut self, kernel: ConvKernel) -> Self {
        self.set_kernel(kernel);
        self
    }

    /// Evaluates the convolutions by `kernel` from now on.
    ///
    /// # Panics
    /// If the network is an MLP.
    pub fn set_kernel(&mut self, kernel: ConvKernel) {
        assert!(self.kernel.is_some(), "an MLP has no convolution kernel");
        self.kernel = Some(kernel);
    }

    /// How the convolutions are evaluated (`None` for an MLP).
    pub fn kernel(&self) -> Option<ConvKernel> {
        self.kernel
    }

    /// The largest channel count of any layer (1 for an MLP's "channel").
    pub fn max_channels(&self) -> usize {
        let v = self.geom.as_ref().map_or(1, |g| g.sites);
        self.widths.iter().map(|w| w / v).max().unwrap()
    }

    fn lane_shape(&self) -> lanes::Shape<'_> {
        lanes::Shape {
            ops: &self.ops,
            widths: &self.widths,
            geom: self.geom.as_ref().unwrap(),
        }
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// Input row width.
    pub fn n_in(&self) -> usize {
        self.widths[0]
    }

    /// Output row width.
    pub fn n_out(&self) -> usize {
        *self.widths.last().unwrap()
    }

    /// Multiply-adds ×2 of one forward pass of one sample (GEMM flops only).
    pub fn flops_per_sample(&self) -> f64 {
        let mut f = 0.0;
        for op in &self.ops {
            match *op {
                Op::Dense { n_in, n_out, .. } => f += 2.0 * (n_in * n_out) as f64,
                Op::Conv { cin, cout, .. } => {
                    let g = self.geom.as_ref().unwrap();
                    f += 2.0 * (g.sites * g.taps * cin * cout) as f64
                }
                Op::Act(_) => {}
            }
        }
        f
    }

    /// Default initialization: every weight and bias uniform in
    /// ±1/√fan_in; the last linear primitive zero when `zero_last` (so the
    /// network outputs φ_out(0)).
    pub fn init_params<R: rand::Rng>(&self, p: &mut [f64], rng: &mut R, zero_last: bool) {
        assert_eq!(p.len(), self.n_params);
        let last_linear = self.ops.iter().rposition(|o| !matches!(o, Op::Act(_))).unwrap();
        for (i, op) in self.ops.iter().enumerate() {
            let (fan_in, len, offset) = match *op {
                Op::Dense { n_in, n_out, offset } => (n_in, n_out * n_in + n_out, offset),
                Op::Conv { cin, cout, offset } => {
                    let k = self.geom.as_ref().unwrap().taps;
                    (k * cin, cout * k * cin + cout, offset)
                }
                Op::Act(_) => continue,
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            for w in &mut p[offset..offset + len] {
                *w = if zero_last && i == last_linear {
                    0.0
                } else {
                    rng.random_range(-bound..bound)
                };
            }
        }
    }

    /// A tape for `rows` rows (with room for tangents when `tangent`).
    pub fn new_tape(&self, rows: usize, tangent: bool) -> NetTape {
        let (ends, lanes) = match self.kernel {
            Some(ConvKernel::Direct(dtype)) => (
                true,
                Some(match dtype {
                    Dtype::F64 => Lanes::F64(LaneTape::new(rows, &self.widths, tangent)),
                    Dtype::F32 => Lanes::F32(LaneTape::new(rows, &self.widths, tangent)),
                }),
            ),
            _ => (false, None),
        };
        let acts: Vec<_> = if ends {
            vec![Array2::zeros((rows, self.n_in())), Array2::zeros((rows, self.n_out()))]
        } else {
            self.widths.iter().map(|&w| Array2::zeros((rows, w))).collect()
        };
        let dacts = if tangent { acts.clone() } else { Vec::new() };
        NetTape {
            rows,
            acts,
            dacts,
            lanes,
        }
    }

    /// Forward pass: reads `tape.acts[0]` (and `tape.dacts[0]` when
    /// `tangent`), fills the rest of the tape; the output is `tape.acts.last()`.
    pub fn forward(&self, p: &[f64], tape: &mut NetTape, tangent: bool, scratch: &mut Scratch) {
        assert_eq!(p.len(), self.n_params);
        assert!(!tangent || tape.has_tangent(), "tape has no room for tangents");
        if let Some(lt) = tape.lanes.as_mut() {
            let (input, output) = tape.acts.split_at_mut(1);
            let (dinput, doutput) = if tangent {
                let (a, b) = tape.dacts.split_at_mut(1);
                (Some(a[0].view()), Some(b[0].view_mut()))
            } else {
                (None, None)
            };
            let (input, output) = (input[0].view(), output[0].view_mut());
            let (shape, isa) = (self.lane_shape(), Isa::current());
            on_lanes!(lt, scratch, |tape, work| lanes::forward(
                isa,
                lanes::Forward {
                    shape,
                    p,
                    tape,
                    work,
                    input,
                    dinput,
                    output,
                    doutput,
                }
            ));
            return;
        }
        let rows = tape.rows;
        for k in 0..self.ops.len() {
            let (lo, hi) = tape.acts.split_at_mut(k + 1);
            self.apply_op(k, p, rows, lo[k].view(), hi[0].view_mut(), None, scratch);
            if tangent {
                let (lo, hi) = tape.dacts.split_at_mut(k + 1);
                let v = tape.acts[k].view();
                self.apply_op(k, p, rows, lo[k].view(), hi[0].view_mut(), Some(v), scratch);
            }
        }
    }

    /// Op k on rows `u` into `y`; with `primal = Some(v)` the tangent map
    /// du ↦ (∂y/∂u)(v) du instead (no bias, φ'(v) for activations).
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    fn apply_op(
        &self,
        k: usize,
        p: &[f64],
        rows: usize,
        u: ArrayView2<f64>,
        mut y: ArrayViewMut2<f64>,
        primal: Option<ArrayView2<f64>>,
        scratch: &mut Scratch,
    ) {
        match self.ops[k] {
            Op::Dense { n_in, n_out, offset } => {
                let w = ArrayView2::from_shape((n_out, n_in), &p[offset..offset + n_out * n_in]).unwrap();
                general_mat_mul(1.0, &u, &w.t(), 0.0, &mut y);
                if primal.is_none() {
                    let b = &p[offset + n_out * n_in..offset + n_out * n_in + n_out];
                    for mut row in y.rows_mut() {
                        for (yi, bi) in row.iter_mut().zip(b) {
                            *yi += bi;
                        }
                    }
                }
            }
            Op::Conv { cin, cout, offset } => {
                let g = self.geom.as_ref().unwrap();
                let (v, kc) = (g.sites, g.taps * cin);
                let w = ArrayView2::from_shape((cout, kc), &p[offset..offset + cout * kc]).unwrap();
                let b = &p[offset + cout * kc..offset + cout * kc + cout];
                let us = u.as_slice().unwrap();
                let ys = y.as_slice_mut().unwrap();
                let rb = conv_block_rows(v);
                for r0 in (0..rows).step_by(rb) {
                    let nr = rb.min(rows - r0);
                    let pm = take(&mut scratch.a, nr * v * kc);
                    g.im2col(&us[r0 * v * cin..(r0 + nr) * v * cin], nr, cin, pm);
                    let pm = ArrayView2::from_shape((nr * v, kc), &*pm).unwrap();
                    let mut y2 =
                        ArrayViewMut2::from_shape((nr * v, cout), &mut ys[r0 * v * cout..(r0 + nr) * v * cout])
                            .unwrap();
                    general_mat_mul(1.0, &pm, &w.t(), 0.0, &mut y2);
                    if primal.is_none() {
                        for mut row in y2.rows_mut() {
                            for (yi, bi) in row.iter_mut().zip(b) {
                                *yi += bi;
                            }
                        }
                    }
                }
            }
            Op::Act(a) => match primal {
                None => ndarray::Zip::from(&mut y).and(&u).for_each(|y, &v| *y = a.value(v)),
                Some(v) => ndarray::Zip::from(&mut y)
                    .and(&u)
                    .and(&v)
                    .for_each(|y, &dv, &v| *y = a.d1(v) * dv),
            },
        }
    }

    /// Reverse mode. Plain (`dg_out = None`): ū = (∂y/∂u)ᵀ ȳ. Pair mode
    /// (`dg_out = Some`, tape with tangents): adjoint of (u, du) ↦ (y, dy),
    /// writing ū into `g_in` and dū into `dg_in`. Adds θ̄ to `gp` when given.
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    pub fn backward(
        &self,
        p: &[f64],
        tape: &NetTape,
        g_out: ArrayView2<f64>,
        dg_out: Option<ArrayView2<f64>>,
        mut g_in: ArrayViewMut2<f64>,
        dg_in: Option<ArrayViewMut2<f64>>,
        mut gp: Option<&mut [f64]>,
        scratch: &mut Scratch,
    ) {
        let rows = tape.rows;
        let pair = dg_out.is_some();
        assert!(!pair || tape.has_tangent(), "pair mode needs a tangent tape");
        if let Some(lt) = tape.lanes.as_ref() {
            let (shape, isa) = (self.lane_shape(), Isa::current());
            on_lanes!(lt, scratch, |tape, work| lanes::backward(
                isa,
                lanes::Backward {
                    shape,
                    p,
                    tape,
                    work,
                    g_out,
                    dg_out,
                    g_in,
                    dg_in,
                    gp,
                }
            ));
            return;
        }
        let wmax = *self.widths.iter().max().unwrap();
        let mut g0 = std::mem::take(&mut scratch.b);
        let mut g1 = std::mem::take(&mut scratch.c);
        let mut dg0 = std::mem::take(&mut scratch.d);
        let mut dg1 = std::mem::take(&mut scratch.e);
        for buf in [&mut g0, &mut g1] {
            take(buf, rows * wmax);
        }
        if pair {
            for buf in [&mut dg0, &mut dg1] {
                take(buf, rows * wmax);
            }
        }
        let wl = self.n_out();
        copy_into(g_out, &mut g0[..rows * wl]);
        if let Some(d) = dg_out {
            copy_into(d, &mut dg0[..rows * wl]);
        }
        for (k, op) in self.ops.iter().enumerate().rev() {
            let (wi, wo) = (self.widths[k], self.widths[k + 1]);
            let u = tape.acts[k].view();
            let gy = ArrayView2::from_shape((rows, wo), &g0[..rows * wo]).unwrap();
            let mut gu = ArrayViewMut2::from_shape((rows, wi), &mut g1[..rows * wi]).unwrap();
            match *op {
                Op::Act(a) => {
                    if pair {
                        let du = tape.dacts[k].view();
                        let dgy = ArrayView2::from_shape((rows, wo), &dg0[..rows * wo]).unwrap();
                        let mut dgu = ArrayViewMut2::from_shape((rows, wi), &mut dg1[..rows * wi]).unwrap();
                        ndarray::Zip::from(&mut gu)
                            .and(&mut dgu)
                            .and(&gy)
                            .and(&dgy)
                            .and(&u)
                            .and(&du)
                            .for_each(|gu, dgu, &gy, &dgy, &v, &dv| {
                                let (d1, d2) = a.d1_d2(v);
                                *gu = gy * d1 + dgy * d2 * dv;
                                *dgu = dgy * d1;
                            });
                    } else {
                        ndarray::Zip::from(&mut gu)
                            .and(&gy)
                            .and(&u)
                            .for_each(|gu, &gy, &v| *gu = gy * a.d1(v));
                    }
                }
                Op::Dense { n_in, n_out, offset } => {
                    let nw = n_out * n_in;
                    let w = ArrayView2::from_shape((n_out, n_in), &p[offset..offset + nw]).unwrap();
                    general_mat_mul(1.0, &gy, &w, 0.0, &mut gu);
                    if let Some(gp) = gp.as_deref_mut() {
                        let (gw, gb) = gp[offset..offset + nw + n_out].split_at_mut(nw);
                        let mut gw = ArrayViewMut2::from_shape((n_out, n_in), gw).unwrap();
                        general_mat_mul(1.0, &gy.t(), &u, 1.0, &mut gw);
                        add_col_sums(gy, gb);
                        if pair {
                            let dgy = ArrayView2::from_shape((rows, wo), &dg0[..rows * wo]).unwrap();
                            general_mat_mul(1.0, &dgy.t(), &tape.dacts[k], 1.0, &mut gw);
                        }
                    }
                    if pair {
                        let dgy = ArrayView2::from_shape((rows, wo), &dg0[..rows * wo]).unwrap();
                        let mut dgu = ArrayViewMut2::from_shape((rows, wi), &mut dg1[..rows * wi]).unwrap();
                        general_mat_mul(1.0, &dgy, &w, 0.0, &mut dgu);
                    }
                }
                Op::Conv { cin, cout, offset } => {
                    let g = self.geom.as_ref().unwrap();
                    let (v, kc) = (g.sites, g.taps * cin);
                    let nw = cout * kc;
                    let w = ArrayView2::from_shape((cout, kc), &p[offset..offset + nw]).unwrap();
                    let us = u.as_slice().unwrap();
                    let rb = conv_block_rows(v);
                    for r0 in (0..rows).step_by(rb) {
                        let nr = rb.min(rows - r0);
                        let n2 = nr * v;
                        let (yo, uo) = (r0 * v * cout, r0 * v * cin);
                        let gy2 = ArrayView2::from_shape((n2, cout), &g0[yo..yo + n2 * cout]).unwrap();
                        let pm = take(&mut scratch.a, n2 * kc);
                        if let Some(gp) = gp.as_deref_mut() {
                            let (gw, gb) = gp[offset..offset + nw + cout].split_at_mut(nw);
                            let mut gw = ArrayViewMut2::from_shape((cout, kc), gw).unwrap();
                            g.im2col(&us[uo..uo + n2 * cin], nr, cin, pm);
                            let pv = ArrayView2::from_shape((n2, kc), &*pm).unwrap();
                            general_mat_mul(1.0, &gy2.t(), &pv, 1.0, &mut gw);
                            add_col_sums(gy2, gb);
                            if pair {
                                let dus = tape.dacts[k].as_slice().unwrap();
                                g.im2col(&dus[uo..uo + n2 * cin], nr, cin, pm);
                                let pv = ArrayView2::from_shape((n2, kc), &*pm).unwrap();
                                let dgy2 = ArrayView2::from_shape((n2, cout), &dg0[yo..yo + n2 * cout]).unwrap();
                                general_mat_mul(1.0, &dgy2.t(), &pv, 1.0, &mut gw);
                            }
                        }
                        {
                            let mut pv = ArrayViewMut2::from_shape((n2, kc), &mut *pm).unwrap();
                            general_mat_mul(1.0, &gy2, &w, 0.0, &mut pv);
                        }
                        g.col2im(pm, nr, cin, &mut g1[uo..uo + n2 * cin]);
                        if pair {
                            let dgy2 = ArrayView2::from_shape((n2, cout), &dg0[yo..yo + n2 * cout]).unwrap();
                            {
                                let mut pv = ArrayViewMut2::from_shape((n2, kc), &mut *pm).unwrap();
                                general_mat_mul(1.0, &dgy2, &w, 0.0, &mut pv);
                            }
                            g.col2im(pm, nr, cin, &mut dg1[uo..uo + n2 * cin]);
                        }
                    }
                }
            }
            std::mem::swap(&mut g0, &mut g1);
            if pair {
                std::mem::swap(&mut dg0, &mut dg1);
            }
        }
        let w0 = self.n_in();
        g_in.assign(&ArrayView2::from_shape((rows, w0), &g0[..rows * w0]).unwrap());
        if let Some(mut d) = dg_in {
            d.assign(&ArrayView2::from_shape((rows, w0), &dg0[..rows * w0]).unwrap());
        }
        scratch.b = g0;
        scratch.c = g1;
        scratch.d = dg0;
        scratch.e = dg1;
    }
}

/// Rows per convolution block: the im2col matrix of a block holds about
/// `CONV_BLOCK_SITES` lattice sites, so it stays in cache whatever L.
fn conv_block_rows(sites: usize) -> usize {
    const CONV_BLOCK_SITES: usize = 2048;
    (CONV_BLOCK_SITES / sites).max(1)
}

fn copy_into(a: ArrayView2<f64>, out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(a.iter()) {
        *o = *v;
    }
}

fn add_col_sums(a: ArrayView2<f64>, out: &mut [f64]) {
    for row in a.axis_iter(Axis(0)) {
        for (o, v) in out.iter_mut().zip(row.iter()) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::Seed;
    use fieldflow_testkit::{assert_close, central_gradient, FD_REL_TOL, FD_STEP};
    use rand::Rng as _;

    fn random(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
        let mut rng = Seed::new(seed).rng();
        Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
    }

    /// Runs the pair-mode sweep on `u`, `du` with output adjoints `a`, `c`;
    /// returns (y, dy, ū, dū, θ̄).
    fn sweep(
        net: &Net,
        p: &[f64],
        u: &Array2<f64>,
        du: &Array2<f64>,
        a: &Array2<f64>,
        c: &Array2<f64>,
    ) -> [Vec<f64>; 5] {
        let rows = u.nrows();
        let mut tape = net.new_tape(rows, true);
        tape.acts[0].assign(u);
        tape.dacts[0].assign(du);
        let mut scratch = Scratch::default();
        net.forward(p, &mut tape, true, &mut scratch);
        let (mut gu, mut gdu) = (Array2::zeros(u.raw_dim()), Array2::zeros(u.raw_dim()));
        let mut gp = vec![0.0; net.n_params()];
        net.backward(
            p,
            &tape,
            a.view(),
            Some(c.view()),
            gu.view_mut(),
            Some(gdu.view_mut()),
            Some(&mut gp),
            &mut scratch,
        );
        [
            tape.acts.last().unwrap().iter().copied().collect(),
            tape.dacts.last().unwrap().iter().copied().collect(),
            gu.into_raw_vec_and_offset().0,
            gdu.into_raw_vec_and_offset().0,
            gp,
        ]
    }

    #[test]
    fn blocked_convolution_equals_row_by_row_and_finite_differences() {
        for kernel in [ConvKernel::Im2col, ConvKernel::Direct(Dtype::F64)] {
            blocked_convolution_case(kernel);
        }
    }

    fn blocked_convolution_case(kernel: ConvKernel) {
        // V = 1024 sites: im2col blocks of 2 rows, so 5 rows make 3 blocks
        // (and one partial tile of lanes for the direct kernel).
        let geom = ConvGeometry::periodic(&[1024], 3);
        let net = Net::conv(geom, 1, &[2], 2, Act::Silu, Act::ScaledTanh(1.0)).with_kernel(kernel);
        let mut p = vec![0.0; net.n_params()];
        net.init_params(&mut p, &mut Seed::new(1).rng(), false);
        let (rows, w_in, w_out) = (5, net.n_in(), net.n_out());
        let (u, du) = (random(rows, w_in, 2), random(rows, w_in, 3));
        let (a, c) = (random(rows, w_out, 4), random(rows, w_out, 5));
        let all = sweep(&net, &p, &u, &du, &a, &c);
        let mut gp_sum = vec![0.0; p.len()];
        for r in 0..rows {
            let one = |m: &Array2<f64>| m.row(r).to_owned().insert_axis(Axis(0));
            let res = sweep(&net, &p, &one(&u), &one(&du), &one(&a), &one(&c));
            for (k, n) in [w_out, w_out, w_in, w_in].into_iter().enumerate() {
                assert_close("row vs block", &res[k], &all[k][r * n..(r + 1) * n], 1e-14);
            }
            gp_sum.iter_mut().zip(&res[4]).for_each(|(s, v)| *s += v);
        }
        assert_close("θ̄ row sum vs block", &all[4], &gp_sum, 1e-12);
        // θ̄ of L = ⟨a, y⟩ + ⟨c, dy⟩ against finite differences.
        let loss = |q: &[f64]| {
            let r = sweep(&net, q, &u, &du, &a, &c);
            let av = a.iter().zip(&r[0]).map(|(x, y)| x * y).sum::<f64>();
            av + c.iter().zip(&r[1]).map(|(x, y)| x * y).sum::<f64>()
        };
        assert_close("conv θ̄", &all[4], &central_gradient(loss, &p, FD_STEP), FD_REL_TOL);
    }

    /// A tutorial-like network (1 → 8 → 5 → 3 channels: every output block
    /// size of the direct kernel, and weight-gradient column counts 9, 72, 45
    /// with partial column blocks) on a 5×3 lattice (15 sites: a partial
    /// block of sites for every site block size) and on a 3-D 3×4×2 one.
    fn lattice_nets() -> Vec<(Net, Vec<f64>)> {
        [vec![5usize, 3], vec![3, 4, 2]]
            .into_iter()
            .enumerate()
            .map(|(i, shape)| {
                let geom = ConvGeometry::periodic(&shape, 3);
                let net = Net::conv(geom, 1, &[8, 5], 3, Act::LeakyRelu(0.1), Act::ScaledTanh(1.0));
                let mut p = vec![0.0; net.n_params()];
                net.init_params(&mut p, &mut Seed::new(10 + i as u64).rng(), false);
                (net, p)
            })
            .collect()
    }

    /// Inputs, input tangents and the two output adjoints of a sweep over 21
    /// rows: two full f64 tiles and a partial one, one full f32 tile and a
    /// partial one.
    fn inputs(net: &Net, seed: u64) -> [Array2<f64>; 4] {
        let rows = 21;
        [
            random(rows, net.n_in(), seed),
            random(rows, net.n_in(), seed + 1),
            random(rows, net.n_out(), seed + 2),
            random(rows, net.n_out(), seed + 3),
        ]
    }

    #[test]
    fn direct_kernel_equals_im2col_on_every_instruction_set() {
        for (net, p) in lattice_nets() {
            let [u, du, a, c] = inputs(&net, 2);
            let reference = sweep(&net.clone().with_kernel(ConvKernel::Im2col), &p, &u, &du, &a, &c);
            for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
                if !isa.available() {
                    eprintln!("{isa:?} not on this machine: skipped");
                    continue;
                }
                Isa::force(Some(isa));
                let direct = sweep(
                    &net.clone().with_kernel(ConvKernel::Direct(Dtype::F64)),
                    &p,
                    &u,
                    &du,
                    &a,
                    &c,
                );
                Isa::force(None);
                for (k, what) in ["y", "dy", "ū", "dū", "θ̄"].iter().enumerate() {
                    assert_close(&format!("{isa:?} {what}"), &direct[k], &reference[k], 1e-13);
                }
            }
        }
    }

    #[test]
    fn single_precision_agrees_with_double_to_its_rounding() {
        // f32 has 2⁻²⁴ ≈ 6e-8 relative rounding; a few hundred terms per sum
        // and three layers leave ≲ 1e-5 relative error. The bound 1e-4 would
        // still catch any wrong index (an O(1) error).
        for (net, p) in lattice_nets() {
            let [u, du, a, c] = inputs(&net, 6);
            let f64s = sweep(
                &net.clone().with_kernel(ConvKernel::Direct(Dtype::F64)),
                &p,
                &u,
                &du,
                &a,
                &c,
            );
            let f32s = sweep(
                &net.clone().with_kernel(ConvKernel::Direct(Dtype::F32)),
                &p,
                &u,
                &du,
                &a,
                &c,
            );
            for (k, what) in ["y", "dy", "ū", "dū", "θ̄"].iter().enumerate() {
                assert_close(&format!("f32 {what}"), &f32s[k], &f64s[k], 1e-4);
                let diff = f32s[k].iter().zip(&f64s[k]).any(|(x, y)| x != y);
                assert!(diff, "f32 {what} equals f64 bit for bit: the f32 path did not run");
            }
        }
    }
}
