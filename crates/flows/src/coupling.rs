//! Coupling layers with hand-written first- and second-order derivatives:
//! the conditioner and mask logic is shared, the elementwise map of the
//! transformed coordinates is a [`Transform`]: affine (RealNVP, docs/THEORY.md
//! §4.2, optionally Z₂-equivariant, documented below) or a monotone
//! rational-quadratic spline ([`crate::spline`], whose docs give its map
//! and derivatives; the coupling only gathers each coordinate's 3K − 1 raw
//! conditioner outputs and scatters their adjoints).
//!
//! # Raw-output layout
//! With n raw outputs per transformed coordinate (2 for affine), raw output
//! q of the k-th transformed coordinate j is MLP output q·|B| + k, or
//! channel q of site j of the CNN (output n·j + q).
//!
//! # The map
//! With a mask splitting x into a frozen part A and a transformed part B
//! ([`crate::mask`]), a conditioner network g (MLP on x_A, or periodic CNN
//! on the masked field m⊙x, see [`crate::net`]) gives raw outputs
//! (ŝ, t) = g(u), u = x_A. The scale is bounded, s = h(ŝ) with
//! h(v) = c tanh(v/c) (soft clamp), tanh, or the identity, so e^s cannot
//! overflow. For j ∈ B:
//!
//! * forward  y_j = x_j e^{s_j} + t_j,        log|det| = +Σ_{j∈B} s_j;
//! * inverse  y_j = (x_j − t_j) e^{−s_j},     log|det| = −Σ_{j∈B} s_j;
//!
//! and y_i = x_i for i ∈ A. The Jacobian is triangular (B depends on A, not
//! on B), hence the log-determinant.
//!
//! **Z₂-equivariant variant** (φ⁴): the raw outputs are symmetrized,
//! ŝ(u) = ½(g_s(u) + g_s(−u)) (even), t(u) = ½(g_t(u) − g_t(−u)) (odd),
//! so f(−x) = −f(x) and log|det| is even: with a symmetric base,
//! q(−φ) = q(φ) exactly (bit for bit: floating-point + is commutative and
//! negation exact). It costs two network passes. Below, the network adjoint
//! of the symmetrized outputs is split as ḡ⁺_s = ḡ⁻_s = ½ŝ̄ and
//! ḡ⁺_t = −ḡ⁻_t = ½t̄, and ū = ū⁺ − ū⁻ (the second pass sees −u).
//!
//! **Identity initialization**: the last linear primitive of g is zero and
//! its output activation vanishes at 0, so s = t = 0 and the layer is the
//! identity.
//!
//! # Reverse mode (both directions)
//! Given ȳ and ℓ̄ = ∂L/∂logdet, with e_j = e^{±s_j} as applied:
//!
//! * forward: x̄_j = ȳ_j e_j,  s̄_j = ȳ_j (y_j − t_j) + ℓ̄,  t̄_j = ȳ_j;
//! * inverse: x̄_j = ȳ_j e_j,  s̄_j = −ȳ_j y_j − ℓ̄,         t̄_j = −ȳ_j e_j;
//!
//! then ŝ̄ = s̄ h'(ŝ), the network's reverse mode gives ū and θ̄, and
//! x̄_A = ȳ_A + ū.
//!
//! # Forward mode of the inverse (JVP along dx)
//! du = dx_A, (dŝ, dt) = J_g du, ds = h'(ŝ) dŝ, and for j ∈ B
//!
//!   dy_j = (dx_j − dt_j) e_j − y_j ds_j,   d logdet = −Σ_j ds_j,
//!
//! dy_A = dx_A (differentiate y_j = (x_j − t_j) e^{−s_j}).
//!
//! # Reverse mode of the JVP (second-order term of score matching)
//! Outputs (y, dy, ℓ, dℓ) with adjoints (Ȳ, D̄, ℓ̄, λ̄). Treat y_j as an
//! intermediate that also feeds dy_j. From dy_j = (dx_j − dt_j) e_j − y_j ds_j
//! and y_j = (x_j − t_j) e_j, e_j = e^{−s_j}, ℓ = −Σ s, dℓ = −Σ ds:
//!
//! * ȳ_j   = Ȳ_j − D̄_j ds_j                  (total adjoint of y_j)
//! * x̄_j   = ȳ_j e_j,          dx̄_j = D̄_j e_j
//! * t̄_j   = −ȳ_j e_j,         dt̄_j = −D̄_j e_j
//! * s̄_j   = −D̄_j (dx_j − dt_j) e_j − ȳ_j y_j − ℓ̄
//! * ds̄_j  = −D̄_j y_j − λ̄
//!
//! then through the bound: ŝ̄ = s̄ h'(ŝ) + ds̄ h''(ŝ) dŝ, dŝ̄ = ds̄ h'(ŝ)
//! (the activation rule of [`crate::activation`]), through the network in
//! pair mode ([`crate::net`]) to (ū, dū, θ̄), and x̄_A = Ȳ_A + ū,
//! dx̄_A = D̄_A + dū.

use crate::activation::Act;
use crate::config::Dtype;
use crate::layer::{Direction, Layer, ScoreLayer, Scratch};
use crate::net::{ConvGeometry, ConvKernel, Net, NetTape};
use crate::spline::{RqSpline, SplineWork};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// Which network conditions a coupling.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionerSpec {
    /// MLP on the frozen coordinates x_A → (ŝ, t) on B.
    Mlp {
        /// Hidden widths.
        hidden: Vec<usize>,
        /// Hidden activation.
        act: Act,
        /// Output activation (applied to ŝ and t).
        out_act: Act,
    },
    /// Periodic CNN on the masked field (1 channel) → 2 channels (ŝ, t).
    Conv {
        /// Neighbour table of the lattice and kernel.
        geom: ConvGeometry,
        /// Hidden channel counts.
        hidden: Vec<usize>,
        /// Hidden activation.
        act: Act,
        /// Output activation (applied to ŝ and t).
        out_act: Act,
        /// Precision of the network ([`ConvKernel::auto`] picks its kernel).
        dtype: Dtype,
    },
}

/// The elementwise bijection a coupling applies to each transformed
/// coordinate, given that coordinate's raw conditioner outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// y = x e^{h(ŝ)} + t with the scale bound h (`Act::ScaledTanh(c)` or
    /// `Act::Identity`); raw outputs (ŝ, t).
    Affine(Act),
    /// Monotone rational-quadratic spline ([`crate::spline`]): the density
    /// direction (`Inverse`) applies the spline T, the sampling direction
    /// (`Forward`) its inverse; 3K − 1 raw outputs.
    Spline(RqSpline),
}

impl Transform {
    /// Raw conditioner outputs per transformed coordinate.
    pub fn n_raw(&self) -> usize {
        match self {
            Transform::Affine(_) => 2,
            Transform::Spline(sp) => sp.n_params(),
        }
    }
}

/// Where the raw outputs of one transformed coordinate live: raw output q
/// of coordinate x is network output `s + q·stride`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OutEntry {
    /// Index of the transformed coordinate j ∈ B.
    x: usize,
    /// Position of raw output 0 (ŝ_j for the affine map).
    s: usize,
    /// Distance between consecutive raw outputs (t_j = s + stride).
    stride: usize,
}

impl OutEntry {
    /// Position of raw output q.
    #[inline]
    fn at(self, q: usize) -> usize {
        self.s + q * self.stride
    }
}

/// An affine coupling layer (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Coupling {
    dim: usize,
    net: Net,
    frozen: Vec<usize>,
    /// (network input position, coordinate in A).
    in_map: Vec<(usize, usize)>,
    out_map: Vec<OutEntry>,
    transform: Transform,
    equivariant: bool,
}

/// What a coupling records for its derivatives (rows fixed at creation).
#[derive(Debug)]
pub struct CouplingTape {
    rows: usize,
    dir: Option<Direction>,
    tangent_room: bool,
    tangent_used: bool,
    net_p: NetTape,
    net_m: Option<NetTape>,
    shat: Array2<f64>,
    ex: Array2<f64>,
    t: Array2<f64>,
    y: Array2<f64>,
    dshat: Array2<f64>,
    ds: Array2<f64>,
    dt: Array2<f64>,
    dx: Array2<f64>,
    /// Spline argument per transformed coordinate: the input x of the
    /// inverse (T) pass, the output of the forward (T⁻¹) pass.
    arg: Array2<f64>,
}

impl Coupling {
    /// A coupling freezing the coordinates where `frozen_mask` is true.
    ///
    /// `scale` is the bound h on ŝ (`Act::ScaledTanh(c)` or `Act::Identity`).
    ///
    /// # Panics
    /// If the mask freezes nothing or everything, or a convolution's lattice
    /// size differs from the mask length.
    pub fn new(frozen_mask: &[bool], cond: ConditionerSpec, scale: Act, equivariant: bool) -> Self {
        Self::with_transform(frozen_mask, cond, Transform::Affine(scale), equivariant)
    }

    /// A coupling with elementwise transform `transform` (affine or spline).
    ///
    /// # Panics
    /// As [`Coupling::new`], and for a Z₂-equivariant spline coupling (not
    /// supported: the configuration refuses it).
    pub fn with_transform(
        frozen_mask: &[bool],
        cond: ConditionerSpec,
        transform: Transform,
        equivariant: bool,
    ) -> Self {
        assert!(
            !(equivariant && matches!(transform, Transform::Spline(_))),
            "spline couplings are not Z₂-equivariant"
        );
        let n_raw = transform.n_raw();
        let dim = frozen_mask.len();
        let frozen: Vec<usize> = (0..dim).filter(|&i| frozen_mask[i]).collect();
        let free: Vec<usize> = (0..dim).filter(|&i| !frozen_mask[i]).collect();
        assert!(!frozen.is_empty() && !free.is_empty(), "mask must split x");
        let (net, in_map, out_map) = match cond {
            ConditionerSpec::Mlp { hidden, act, out_act } => {
                let nb = free.len();
                let net = Net::mlp(frozen.len(), &hidden, n_raw * nb, act, out_act);
                let in_map = frozen.iter().enumerate().map(|(k, &i)| (k, i)).collect();
                let out_map = free
                    .iter()
                    .enumerate()
                    .map(|(k, &j)| OutEntry { x: j, s: k, stride: nb })
                    .collect();
                (net, in_map, out_map)
            }
            ConditionerSpec::Conv {
                geom,
                hidden,
                act,
                out_act,
                dtype,
            } => {
                assert_eq!(geom.sites, dim, "lattice size differs from the mask");
                let mut net = Net::conv(geom, 1, &hidden, n_raw, act, out_act);
                net.set_kernel(ConvKernel::auto(dtype, net.max_channels()));
                let in_map = frozen.iter().map(|&i| (i, i)).collect();
                let out_map = free
                    .iter()
                    .map(|&j| OutEntry {
                        x: j,
                        s: n_raw * j,
                        stride: 1,
                    })
                    .collect();
                (net, in_map, out_map)
            }
        };
        Coupling {
            dim,
            net,
            frozen,
            in_map,
            out_map,
            transform,
            equivariant,
        }
    }

    /// Evaluates a convolutional conditioner by `kernel` (no-op for an MLP).
    pub fn set_conv_kernel(&mut self, kernel: ConvKernel) {
        if self.net.kernel().is_some() {
            self.net.set_kernel(kernel);
        }
    }

    /// The elementwise transform.
    pub fn transform(&self) -> Transform {
        self.transform
    }

    /// The conditioner network.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Whether the layer is Z₂-equivariant.
    pub fn is_equivariant(&self) -> bool {
        self.equivariant
    }

    /// Network flops ×2 per sample and pass (both passes if equivariant).
    pub fn flops_per_sample(&self) -> f64 {
        self.net.flops_per_sample() * if self.equivariant { 2.0 } else { 1.0 }
    }

    /// Fills the network input(s) from x (and their tangents from dx).
    fn load_inputs(&self, tape: &mut CouplingTape, x: ArrayView2<f64>, dx: Option<ArrayView2<f64>>) {
        let fill = |a: &mut Array2<f64>, src: ArrayView2<f64>| {
            a.fill(0.0);
            for r in 0..src.nrows() {
                for &(np, xi) in &self.in_map {
                    a[(r, np)] = src[(r, xi)];
                }
            }
        };
        fill(&mut tape.net_p.acts[0], x);
        if let Some(dx) = dx {
            fill(&mut tape.net_p.dacts[0], dx);
        }
        if let Some(m) = tape.net_m.as_mut() {
            m.acts[0].assign(&tape.net_p.acts[0]);
            m.acts[0].mapv_inplace(|v| -v);
            if dx.is_some() {
                m.dacts[0].assign(&tape.net_p.dacts[0]);
                m.dacts[0].mapv_inplace(|v| -v);
            }
        }
    }

    /// (ŝ, t) of entry `e` in row `r` from the network output(s).
    #[inline]
    fn raw(&self, op: &Array2<f64>, om: Option<&Array2<f64>>, r: usize, e: OutEntry) -> (f64, f64) {
        match om {
            Some(om) => (
                0.5 * (op[(r, e.s)] + om[(r, e.s)]),
                0.5 * (op[(r, e.at(1))] - om[(r, e.at(1))]),
            ),
            None => (op[(r, e.s)], op[(r, e.at(1))]),
        }
    }

    /// Writes the adjoints (ŝ̄, t̄) of entry `e` of row `r` into the network
    /// output adjoint(s).
    #[inline]
    fn scatter(
        &self,
        gp: &mut ArrayViewMut2<f64>,
        gm: &mut Option<ArrayViewMut2<f64>>,
        r: usize,
        e: OutEntry,
        gs: f64,
        gt: f64,
    ) {
        match gm {
            Some(gm) => {
                gp[(r, e.s)] = 0.5 * gs;
                gp[(r, e.at(1))] = 0.5 * gt;
                gm[(r, e.s)] = 0.5 * gs;
                gm[(r, e.at(1))] = -0.5 * gt;
            }
            None => {
                gp[(r, e.s)] = gs;
                gp[(r, e.at(1))] = gt;
            }
        }
    }

    /// Runs the network adjoint(s) and adds ū (and dū) to the frozen
    /// coordinates of gx (and gdx). `bufs` holds the network output
    /// adjoints filled by [`Self::scatter`].
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    fn net_backward(
        &self,
        p: &[f64],
        tape: &CouplingTape,
        bufs: &mut [Vec<f64>; 8],
        pair: bool,
        gx: &mut ArrayViewMut2<f64>,
        mut gdx: Option<&mut ArrayViewMut2<f64>>,
        mut gp: Option<&mut [f64]>,
        scratch: &mut Scratch,
    ) {
        let rows = tape.rows;
        let (no, ni) = (self.net.n_out(), self.net.n_in());
        let [go_p, go_m, dgo_p, dgo_m, gi_p, gi_m, dgi_p, dgi_m] = bufs;
        let passes: &[(&NetTape, f64)] = &match &tape.net_m {
            Some(m) => vec![(&tape.net_p, 1.0), (m, -1.0)],
            None => vec![(&tape.net_p, 1.0)],
        };
        for (k, &(nt, sign)) in passes.iter().enumerate() {
            let (go, dgo, gi, dgi) = if k == 0 {
                (&*go_p, &*dgo_p, &mut *gi_p, &mut *dgi_p)
            } else {
                (&*go_m, &*dgo_m, &mut *gi_m, &mut *dgi_m)
            };
            let go = ArrayView2::from_shape((rows, no), &go[..rows * no]).unwrap();
            let gi_v = ArrayViewMut2::from_shape((rows, ni), &mut gi[..rows * ni]).unwrap();
            if pair {
                let dgo = ArrayView2::from_shape((rows, no), &dgo[..rows * no]).unwrap();
                let dgi_v = ArrayViewMut2::from_shape((rows, ni), &mut dgi[..rows * ni]).unwrap();
                self.net
                    .backward(p, nt, go, Some(dgo), gi_v, Some(dgi_v), gp.as_deref_mut(), scratch);
            } else {
                self.net
                    .backward(p, nt, go, None, gi_v, None, gp.as_deref_mut(), scratch);
            }
            for r in 0..rows {
                for &(np, xi) in &self.in_map {
                    gx[(r, xi)] += sign * gi[r * ni + np];
                    if let Some(gdx) = gdx.as_deref_mut() {
                        gdx[(r, xi)] += sign * dgi[r * ni + np];
                    }
                }
            }
        }
    }

    fn check_tape(&self, tape: &CouplingTape, rows: usize) {
        assert_eq!(tape.rows, rows, "tape rows differ from the batch rows");
    }

    /// Loads the raw outputs of entry `e` in row `r` (and their tangents)
    /// into the spline buffers and computes the knots.
    fn spline_knots(
        &self,
        sp: &RqSpline,
        w: &mut SplineWork,
        op: &Array2<f64>,
        dop: Option<&Array2<f64>>,
        r: usize,
        e: OutEntry,
    ) {
        for (q, v) in w.theta.iter_mut().enumerate() {
            *v = op[(r, e.at(q))];
        }
        if let Some(dop) = dop {
            for (q, v) in w.dtheta.iter_mut().enumerate() {
                *v = dop[(r, e.at(q))];
            }
        }
        sp.knots(w, dop.is_some());
    }
}

/// Writes raw-output adjoints `g` of entry `e` in row `r` into `go`.
fn scatter_raw(go: &mut ArrayViewMut2<f64>, r: usize, e: OutEntry, g: &[f64]) {
    for (q, &v) in g.iter().enumerate() {
        go[(r, e.at(q))] = v;
    }
}

/// Zeroed views of the first `rows·w` entries of the coupling buffers.
fn prepare(bufs: &mut [Vec<f64>; 8], rows: usize, no: usize, ni: usize) {
    for (k, b) in bufs.iter_mut().enumerate() {
        let len = rows * if k < 4 { no } else { ni };
        if b.len() < len {
            b.resize(len, 0.0);
        }
        b[..len].fill(0.0);
    }
}

impl Layer for Coupling {
    type Tape = CouplingTape;

    fn dim(&self) -> usize {
        self.dim
    }

    fn n_params(&self) -> usize {
        self.net.n_params()
    }

    fn new_tape(&self, rows: usize, tangent: bool) -> CouplingTape {
        let nb = self.out_map.len();
        let affine = matches!(self.transform, Transform::Affine(_));
        let sized = |on: bool| {
            if on {
                Array2::zeros((rows, nb))
            } else {
                Array2::zeros((0, 0))
            }
        };
        let z = || sized(affine);
        let zt = || sized(affine && tangent);
        CouplingTape {
            rows,
            dir: None,
            tangent_room: tangent,
            tangent_used: false,
            net_p: self.net.new_tape(rows, tangent),
            net_m: self.equivariant.then(|| self.net.new_tape(rows, tangent)),
            shat: z(),
            ex: z(),
            t: z(),
            y: z(),
            dshat: zt(),
            ds: zt(),
            dt: zt(),
            dx: sized(tangent),
            arg: sized(!affine),
        }
    }

    fn apply(
        &self,
        dir: Direction,
        p: &[f64],
        x: ArrayView2<f64>,
        mut y: ArrayViewMut2<f64>,
        mut logdet: ArrayViewMut1<f64>,
        tape: &mut CouplingTape,
        scratch: &mut Scratch,
    ) {
        let rows = x.nrows();
        self.check_tape(tape, rows);
        assert_eq!(x.ncols(), self.dim);
        assert_eq!(y.dim(), x.dim());
        assert_eq!(logdet.len(), rows);
        tape.dir = Some(dir);
        tape.tangent_used = false;
        self.load_inputs(tape, x, None);
        self.net.forward(p, &mut tape.net_p, false, scratch);
        if let Some(m) = tape.net_m.as_mut() {
            self.net.forward(p, m, false, scratch);
        }
        let op = tape.net_p.acts.last().unwrap();
        let om = tape.net_m.as_ref().map(|m| m.acts.last().unwrap());
        let sw = &mut scratch.spline;
        if let Transform::Spline(sp) = &self.transform {
            sp.prepare(sw);
        }
        for r in 0..rows {
            let mut ld = 0.0;
            for (k, &e) in self.out_map.iter().enumerate() {
                let a = x[(r, e.x)];
                y[(r, e.x)] = match &self.transform {
                    Transform::Affine(scale) => {
                        let (sh, t) = self.raw(op, om, r, e);
                        let s = scale.value(sh);
                        let (ex, b) = match dir {
                            Direction::Forward => {
                                let ex = s.exp();
                                ld += s;
                                (ex, a * ex + t)
                            }
                            Direction::Inverse => {
                                let ex = (-s).exp();
                                ld -= s;
                                (ex, (a - t) * ex)
                            }
                        };
                        tape.shat[(r, k)] = sh;
                        tape.ex[(r, k)] = ex;
                        tape.t[(r, k)] = t;
                        tape.y[(r, k)] = b;
                        b
                    }
                    Transform::Spline(sp) => {
                        self.spline_knots(sp, sw, op, None, r, e);
                        let (b, arg, l) = match dir {
                            Direction::Inverse => {
                                let [z, _, l, _] = sp.rq(sw, a, 0.0);
                                (z, a, l)
                            }
                            Direction::Forward => {
                                let (u, l) = sp.solve(sw, a);
                                (u, u, -l)
                            }
                        };
                        tape.arg[(r, k)] = arg;
                        ld += l;
                        b
                    }
                };
            }
            for &i in &self.frozen {
                y[(r, i)] = x[(r, i)];
            }
            logdet[r] += ld;
        }
    }

    fn backward(
        &self,
        p: &[f64],
        tape: &CouplingTape,
        gy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        mut gx: ArrayViewMut2<f64>,
        gp: Option<&mut [f64]>,
        scratch: &mut Scratch,
    ) {
        let rows = gy.nrows();
        self.check_tape(tape, rows);
        let dir = tape.dir.expect("backward before apply");
        let (no, ni) = (self.net.n_out(), self.net.n_in());
        let mut bufs = std::mem::take(&mut scratch.coupling);
        prepare(&mut bufs, rows, no, ni);
        {
            let [go_p, go_m, ..] = &mut bufs;
            let mut gop = ArrayViewMut2::from_shape((rows, no), &mut go_p[..rows * no]).unwrap();
            let mut gom = self
                .equivariant
                .then(|| ArrayViewMut2::from_shape((rows, no), &mut go_m[..rows * no]).unwrap());
            let op = tape.net_p.acts.last().unwrap();
            let sw = &mut scratch.spline;
            if let Transform::Spline(sp) = &self.transform {
                sp.prepare(sw);
            }
            for r in 0..rows {
                let gl = gld[r];
                for (k, &e) in self.out_map.iter().enumerate() {
                    let gb = gy[(r, e.x)];
                    gx[(r, e.x)] = match &self.transform {
                        Transform::Affine(scale) => {
                            let ex = tape.ex[(r, k)];
                            let (gs, gt) = match dir {
                                Direction::Forward => (gb * (tape.y[(r, k)] - tape.t[(r, k)]) + gl, gb),
                                Direction::Inverse => (-gb * tape.y[(r, k)] - gl, -gb * ex),
                            };
                            let gsh = gs * scale.d1(tape.shat[(r, k)]);
                            self.scatter(&mut gop, &mut gom, r, e, gsh, gt);
                            gb * ex
                        }
                        Transform::Spline(sp) => {
                            self.spline_knots(sp, sw, op, None, r, e);
                            let a = tape.arg[(r, k)];
                            let ga = match dir {
                                Direction::Inverse => sp.adjoint(sw, a, 0.0, [gb, 0.0, gl, 0.0]).0,
                                Direction::Forward => {
                                    // x = T⁻¹(z) at a = x: x̃ = x̄ − λ̄ ℓ'(x), z̄ = x̃/T'.
                                    let [_, t1, _, l1] = sp.rq(sw, a, 1.0);
                                    let xt = gb - gl * l1;
                                    sp.adjoint(sw, a, 0.0, [-xt / t1, 0.0, -gl, 0.0]);
                                    xt / t1
                                }
                            };
                            scatter_raw(&mut gop, r, e, &sw.g);
                            ga
                        }
                    };
                }
                for &i in &self.frozen {
                    gx[(r, i)] = gy[(r, i)];
                }
            }
        }
        self.net_backward(p, tape, &mut bufs, false, &mut gx, None, gp, scratch);
        scratch.coupling = bufs;
    }
}

impl ScoreLayer for Coupling {
    fn inverse_jvp(
        &self,
        p: &[f64],
        x: ArrayView2<f64>,
        dx: ArrayView2<f64>,
        mut y: ArrayViewMut2<f64>,
        mut dy: ArrayViewMut2<f64>,
        mut logdet: ArrayViewMut1<f64>,
        mut dlogdet: ArrayViewMut1<f64>,
        tape: &mut CouplingTape,
        scratch: &mut Scratch,
    ) {
        let rows = x.nrows();
        self.check_tape(tape, rows);
        assert!(tape.tangent_room, "tape made without tangents");
        assert_eq!(x.ncols(), self.dim);
        assert_eq!(dx.dim(), x.dim());
        assert_eq!(y.dim(), x.dim());
        assert_eq!(dy.dim(), x.dim());
        tape.dir = Some(Direction::Inverse);
        tape.tangent_used = true;
        self.load_inputs(tape, x, Some(dx));
        self.net.forward(p, &mut tape.net_p, true, scratch);
        if let Some(m) = tape.net_m.as_mut() {
            self.net.forward(p, m, true, scratch);
        }
        let op = tape.net_p.acts.last().unwrap();
        let dop = tape.net_p.dacts.last().unwrap();
        let om = tape.net_m.as_ref().map(|m| m.acts.last().unwrap());
        let dom = tape.net_m.as_ref().map(|m| m.dacts.last().unwrap());
        let sw = &mut scratch.spline;
        if let Transform::Spline(sp) = &self.transform {
            sp.prepare(sw);
        }
        for r in 0..rows {
            let (mut ld, mut dld) = (0.0, 0.0);
            for (k, &e) in self.out_map.iter().enumerate() {
                let a = x[(r, e.x)];
                let da = dx[(r, e.x)];
                let (b, db) = match &self.transform {
                    Transform::Affine(scale) => {
                        let (sh, t) = self.raw(op, om, r, e);
                        let (dsh, dt) = self.raw(dop, dom, r, e);
                        let (h1, _) = scale.d1_d2(sh);
                        let s = scale.value(sh);
                        let ds = h1 * dsh;
                        let ex = (-s).exp();
                        let b = (a - t) * ex;
                        let db = (da - dt) * ex - b * ds;
                        ld -= s;
                        dld -= ds;
                        tape.shat[(r, k)] = sh;
                        tape.ex[(r, k)] = ex;
                        tape.t[(r, k)] = t;
                        tape.y[(r, k)] = b;
                        tape.dshat[(r, k)] = dsh;
                        tape.ds[(r, k)] = ds;
                        tape.dt[(r, k)] = dt;
                        (b, db)
                    }
                    Transform::Spline(sp) => {
                        self.spline_knots(sp, sw, op, Some(dop), r, e);
                        let [z, dz, l, dl] = sp.rq(sw, a, da);
                        tape.arg[(r, k)] = a;
                        ld += l;
                        dld += dl;
                        (z, dz)
                    }
                };
                y[(r, e.x)] = b;
                dy[(r, e.x)] = db;
                tape.dx[(r, k)] = da;
            }
            for &i in &self.frozen {
                y[(r, i)] = x[(r, i)];
                dy[(r, i)] = dx[(r, i)];
            }
            logdet[r] += ld;
            dlogdet[r] += dld;
        }
    }

    fn inverse_jvp_backward(
        &self,
        p: &[f64],
        tape: &CouplingTape,
        gy: ArrayView2<f64>,
        gdy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        gdld: ArrayView1<f64>,
        mut gx: ArrayViewMut2<f64>,
        mut gdx: ArrayViewMut2<f64>,
        gp: &mut [f64],
        scratch: &mut Scratch,
    ) {
        let rows = gy.nrows();
        self.check_tape(tape, rows);
        assert!(tape.tangent_used, "inverse_jvp_backward needs an inverse_jvp tape");
        let (no, ni) = (self.net.n_out(), self.net.n_in());
        let mut bufs = std::mem::take(&mut scratch.coupling);
        prepare(&mut bufs, rows, no, ni);
        {
            let [go_p, go_m, dgo_p, dgo_m, ..] = &mut bufs;
            let mut gop = ArrayViewMut2::from_shape((rows, no), &mut go_p[..rows * no]).unwrap();
            let mut gom = self
                .equivariant
                .then(|| ArrayViewMut2::from_shape((rows, no), &mut go_m[..rows * no]).unwrap());
            let mut dgop = ArrayViewMut2::from_shape((rows, no), &mut dgo_p[..rows * no]).unwrap();
            let mut dgom = self
                .equivariant
                .then(|| ArrayViewMut2::from_shape((rows, no), &mut dgo_m[..rows * no]).unwrap());
            let op = tape.net_p.acts.last().unwrap();
            let dop = tape.net_p.dacts.last().unwrap();
            let sw = &mut scratch.spline;
            if let Transform::Spline(sp) = &self.transform {
                sp.prepare(sw);
            }
            for r in 0..rows {
                let (lbar, lambar) = (gld[r], gdld[r]);
                for (k, &e) in self.out_map.iter().enumerate() {
                    let ybar_out = gy[(r, e.x)];
                    let dbar = gdy[(r, e.x)];
                    let da = tape.dx[(r, k)];
                    let (xb, dxb) = match &self.transform {
                        Transform::Affine(scale) => {
                            let ex = tape.ex[(r, k)];
                            let b = tape.y[(r, k)];
                            let ds = tape.ds[(r, k)];
                            let dt = tape.dt[(r, k)];
                            let ybar = ybar_out - dbar * ds;
                            let gt = -ybar * ex;
                            let gdt = -dbar * ex;
                            let gs = -dbar * (da - dt) * ex - ybar * b - lbar;
                            let gds = -dbar * b - lambar;
                            let (h1, h2) = scale.d1_d2(tape.shat[(r, k)]);
                            let gsh = gs * h1 + gds * h2 * tape.dshat[(r, k)];
                            let gdsh = gds * h1;
                            self.scatter(&mut gop, &mut gom, r, e, gsh, gt);
                            self.scatter(&mut dgop, &mut dgom, r, e, gdsh, gdt);
                            (ybar * ex, dbar * ex)
                        }
                        Transform::Spline(sp) => {
                            self.spline_knots(sp, sw, op, Some(dop), r, e);
                            let bar = [ybar_out, dbar, lbar, lambar];
                            let xb = sp.adjoint(sw, tape.arg[(r, k)], da, bar);
                            scatter_raw(&mut gop, r, e, &sw.g);
                            scatter_raw(&mut dgop, r, e, &sw.dg);
                            xb
                        }
                    };
                    gx[(r, e.x)] = xb;
                    gdx[(r, e.x)] = dxb;
                }
                for &i in &self.frozen {
                    gx[(r, i)] = gy[(r, i)];
                    gdx[(r, i)] = gdy[(r, i)];
                }
            }
        }
        self.net_backward(p, tape, &mut bufs, true, &mut gx, Some(&mut gdx), Some(gp), scratch);
        scratch.coupling = bufs;
    }
}

#[cfg(test)]
#[path = "coupling_tests.rs"]
mod tests;
