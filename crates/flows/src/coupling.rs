//! Affine coupling layer (RealNVP, REFERENCE §4) with hand-written first-
//! and second-order derivatives, optionally Z₂-equivariant.
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
use crate::layer::{Direction, Layer, ScoreLayer, Scratch};
use crate::net::{ConvGeometry, Net, NetTape};
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
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OutEntry {
    /// Index of the transformed coordinate j ∈ B.
    x: usize,
    /// Position of ŝ_j in the network output.
    s: usize,
    /// Position of t_j in the network output.
    t: usize,
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
    scale: Act,
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
        let dim = frozen_mask.len();
        let frozen: Vec<usize> = (0..dim).filter(|&i| frozen_mask[i]).collect();
        let free: Vec<usize> = (0..dim).filter(|&i| !frozen_mask[i]).collect();
        assert!(!frozen.is_empty() && !free.is_empty(), "mask must split x");
        let (net, in_map, out_map) = match cond {
            ConditionerSpec::Mlp { hidden, act, out_act } => {
                let nb = free.len();
                let net = Net::mlp(frozen.len(), &hidden, 2 * nb, act, out_act);
                let in_map = frozen.iter().enumerate().map(|(k, &i)| (k, i)).collect();
                let out_map = free
                    .iter()
                    .enumerate()
                    .map(|(k, &j)| OutEntry { x: j, s: k, t: nb + k })
                    .collect();
                (net, in_map, out_map)
            }
            ConditionerSpec::Conv {
                geom,
                hidden,
                act,
                out_act,
            } => {
                assert_eq!(geom.sites, dim, "lattice size differs from the mask");
                let net = Net::conv(geom, 1, &hidden, 2, act, out_act);
                let in_map = frozen.iter().map(|&i| (i, i)).collect();
                let out_map = free
                    .iter()
                    .map(|&j| OutEntry {
                        x: j,
                        s: 2 * j,
                        t: 2 * j + 1,
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
            scale,
            equivariant,
        }
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
            Some(om) => (0.5 * (op[(r, e.s)] + om[(r, e.s)]), 0.5 * (op[(r, e.t)] - om[(r, e.t)])),
            None => (op[(r, e.s)], op[(r, e.t)]),
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
                gp[(r, e.t)] = 0.5 * gt;
                gm[(r, e.s)] = 0.5 * gs;
                gm[(r, e.t)] = -0.5 * gt;
            }
            None => {
                gp[(r, e.s)] = gs;
                gp[(r, e.t)] = gt;
            }
        }
    }

    /// Runs the network adjoint(s) and adds ū (and dū) to the frozen
    /// coordinates of gx (and gdx). `bufs` holds the network output
    /// adjoints filled by [`Self::scatter`].
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
        let z = || Array2::zeros((rows, nb));
        let zt = || {
            if tangent {
                Array2::zeros((rows, nb))
            } else {
                Array2::zeros((0, 0))
            }
        };
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
            dx: zt(),
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
        for r in 0..rows {
            let mut ld = 0.0;
            for (k, &e) in self.out_map.iter().enumerate() {
                let (sh, t) = self.raw(op, om, r, e);
                let s = self.scale.value(sh);
                let a = x[(r, e.x)];
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
                y[(r, e.x)] = b;
                tape.shat[(r, k)] = sh;
                tape.ex[(r, k)] = ex;
                tape.t[(r, k)] = t;
                tape.y[(r, k)] = b;
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
            for r in 0..rows {
                let gl = gld[r];
                for (k, &e) in self.out_map.iter().enumerate() {
                    let gb = gy[(r, e.x)];
                    let ex = tape.ex[(r, k)];
                    let (gs, gt) = match dir {
                        Direction::Forward => (gb * (tape.y[(r, k)] - tape.t[(r, k)]) + gl, gb),
                        Direction::Inverse => (-gb * tape.y[(r, k)] - gl, -gb * ex),
                    };
                    gx[(r, e.x)] = gb * ex;
                    let gsh = gs * self.scale.d1(tape.shat[(r, k)]);
                    self.scatter(&mut gop, &mut gom, r, e, gsh, gt);
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
        for r in 0..rows {
            let (mut ld, mut dld) = (0.0, 0.0);
            for (k, &e) in self.out_map.iter().enumerate() {
                let (sh, t) = self.raw(op, om, r, e);
                let (dsh, dt) = self.raw(dop, dom, r, e);
                let (h1, _) = self.scale.d1_d2(sh);
                let s = self.scale.value(sh);
                let ds = h1 * dsh;
                let a = x[(r, e.x)];
                let da = dx[(r, e.x)];
                let ex = (-s).exp();
                let b = (a - t) * ex;
                let db = (da - dt) * ex - b * ds;
                ld -= s;
                dld -= ds;
                y[(r, e.x)] = b;
                dy[(r, e.x)] = db;
                tape.shat[(r, k)] = sh;
                tape.ex[(r, k)] = ex;
                tape.t[(r, k)] = t;
                tape.y[(r, k)] = b;
                tape.dshat[(r, k)] = dsh;
                tape.ds[(r, k)] = ds;
                tape.dt[(r, k)] = dt;
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
            for r in 0..rows {
                let (lbar, lambar) = (gld[r], gdld[r]);
                for (k, &e) in self.out_map.iter().enumerate() {
                    let ybar_out = gy[(r, e.x)];
                    let dbar = gdy[(r, e.x)];
                    let ex = tape.ex[(r, k)];
                    let b = tape.y[(r, k)];
                    let ds = tape.ds[(r, k)];
                    let dt = tape.dt[(r, k)];
                    let da = tape.dx[(r, k)];
                    let ybar = ybar_out - dbar * ds;
                    gx[(r, e.x)] = ybar * ex;
                    gdx[(r, e.x)] = dbar * ex;
                    let gt = -ybar * ex;
                    let gdt = -dbar * ex;
                    let gs = -dbar * (da - dt) * ex - ybar * b - lbar;
                    let gds = -dbar * b - lambar;
                    let (h1, h2) = self.scale.d1_d2(tape.shat[(r, k)]);
                    let gsh = gs * h1 + gds * h2 * tape.dshat[(r, k)];
                    let gdsh = gds * h1;
                    self.scatter(&mut gop, &mut gom, r, e, gsh, gt);
                    self.scatter(&mut dgop, &mut dgom, r, e, gdsh, gdt);
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
