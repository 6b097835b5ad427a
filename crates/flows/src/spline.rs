//! Monotone rational-quadratic (RQ) spline, the elementwise transform of
//! spline couplings (Durkan, Bekasov, Murray, Papamakarios 2019, "Neural
//! Spline Flows"; the interpolant is Gregory & Delbourgo 1982), with hand-
//! written first- and second-order derivatives.
//!
//! # Parametrization
//! One transformed coordinate has P = 3K − 1 raw parameters θ (conditioner
//! outputs): width logits a₀…a_{K−1}, height logits b₀…b_{K−1} and
//! derivative pre-activations c₁…c_{K−1} of the inner knots. With tail
//! bound B, minimum bin fraction m = [`RqSpline::MIN_BIN`] and minimum
//! derivative δ_min = [`RqSpline::MIN_DERIVATIVE`]:
//!
//! * widths  W_i = 2B [m + (1 − Km) softmax(a)_i], knots X₀ = −B,
//!   X_{i+1} = X_i + W_i (i < K − 1), X_K = B exactly (Σ W = 2B);
//! * heights H_i and knots Y_i the same from b;
//! * derivatives δ₀ = δ_K = 1 (so the map joins the identity tails with a
//!   continuous slope), δ_i = δ_min + softplus(c_i + c₀) for 0 < i < K with
//!   c₀ = ln(e^{1−δ_min} − 1), so that δ_i = 1 at c_i = 0.
//!
//! **Identity initialization**: θ = 0 gives equal bins, W_i = H_i = 2B/K,
//! X = Y and all δ = 1; then s = 1 below and T(x) = x (to rounding).
//!
//! # The map T (x → z) and its log-derivative
//! Outside [−B, B) T is the identity (linear tails, log T' = 0). In bin k
//! (X_k ≤ x < X_{k+1}) with w = X_{k+1} − X_k, h = Y_{k+1} − Y_k,
//! s = h/w, ξ = (x − X_k)/w ∈ [0, 1), η = ξ(1 − ξ):
//!
//!   T(x) = Y_k + h N/D,  N = s ξ² + δ_k η,  D = s + (δ_k + δ_{k+1} − 2s) η,
//!
//!   T'(x) = s² M / D²,   M = δ_{k+1} ξ² + 2 s η + δ_k (1 − ξ)²,
//!
//!   ℓ(x) = log T'(x) = 2 ln s + ln M − 2 ln D.
//!
//! T is strictly increasing (M, D > 0 for positive s, δ), C¹ on ℝ, with
//! T(X_i) = Y_i and T'(X_i) = δ_i.
//!
//! In a coupling ([`crate::coupling::Transform::Spline`]) the density
//! direction x → z (log q, score, score matching) evaluates T itself, so
//! the second-order term differentiates an explicit rational function;
//! the sampling direction solves the quadratic below.
//!
//! # The inverse T⁻¹ (z → x)
//! In bin k of the Y knots, with Δ = z − Y_k and σ = δ_k + δ_{k+1} − 2s,
//! z = T(x) is the quadratic α ξ² + β ξ + γ = 0 with
//! α = h(s − δ_k) + Δσ, β = hδ_k − Δσ, γ = −sΔ ≤ 0. The root in [0, 1] is
//! taken in the cancellation-free form ξ = 2γ / (−β − √(β² − 4αγ)), and
//! x = X_k + ξ w.
//!
//! # Derivatives: one pair-mode sweep
//! Everything the coupling needs is a derivative of (T, ℓ) with respect to
//! u = (x, X_k, w, Y_k, h, δ_k, δ_{k+1}) and, through the knots, θ:
//!
//! * JVP along a tangent v = (dx, dθ) (`RqSpline::rq`): each step of the
//!   chain q = x − X_k, ξ = q/w, s = h/w, η = ξ − ξ², σ, D, N, r = N/D,
//!   z = Y_k + h r, M, ℓ carries its tangent (e.g. dr = (dN − r dD)/D,
//!   dℓ = 2 ds/s + dM/M − 2 dD/D); the knots carry theirs,
//!   dp = p ⊙ (da − ⟨p, da⟩) for p = softmax(a), dX_{j} = Σ_{i<j} dW_i
//!   (dX_K = 0), dδ_i = sigmoid(c_i + c₀) dc_i.
//! * Reverse mode of that JVP (`RqSpline::adjoint`): given adjoints
//!   (z̄, dz̄, ℓ̄, dℓ̄) of (z, dz, ℓ, dℓ), every step y = f(u) with dy = f'(u)du
//!   is reversed by the pair rule ū += ȳ f'(u) + dȳ f''(u) du,
//!   dū += dȳ f'(u) (for several inputs, f'' is the Hessian of the step);
//!   e.g. for r = N/D: N̄ += r̄/D − dr̄ dD/D², dN̄ += dr̄/D,
//!   D̄ += −r̄ r/D + dr̄ (2r dD − dN)/D², dD̄ += −dr̄ r/D. Through the knots:
//!   X̄_k, X̄_{k+1} come from (X_k, w), then W̄_i = Σ_{j>i, j<K} X̄_j; for the
//!   softmax with p̄ = c_w W̄ (c_w = 2B(1 − Km)) and g = dp̄, G = ⟨g, p⟩:
//!   ā_j = p_j(p̄_j − ⟨p, p̄⟩) + dp_j(g_j − G) − p_j⟨g, dp⟩,
//!   dā_j = p_j(g_j − G); for δ_i: c̄_i = δ̄_i σ_i + dδ̄_i σ_i(1 − σ_i) dc_i,
//!   dc̄_i = dδ̄_i σ_i with σ_i = sigmoid(c_i + c₀).
//!
//! With zero tangents and dz̄ = dℓ̄ = 0 the same sweep is the plain reverse
//! mode x̄ = z̄ T' + ℓ̄ ℓ', θ̄ = z̄ ∂θT + ℓ̄ ∂θℓ, so first- and second-order
//! passes share one implementation.
//!
//! **Reverse mode of the inverse.** For x = T⁻¹(z) with log-determinant
//! −ℓ(x) and adjoints (x̄, λ̄): the total adjoint of x is x̃ = x̄ − λ̄ ℓ'(x),
//! and by the implicit-function theorem (∂x/∂z = 1/T', ∂x/∂θ = −∂θT/T')
//! z̄ = x̃/T' and θ̄ = (−x̃/T') ∂θT − λ̄ ∂θℓ: the sweep above at x with
//! z̄ ← −x̃/T', ℓ̄ ← −λ̄; T'(x) and ℓ'(x) are its JVP along dx = 1.

use crate::activation::Act;

/// Largest supported number of bins (K·m must stay well below 1).
pub const MAX_BINS: usize = 256;

/// A monotone rational-quadratic spline on [−B, B] with K bins and identity
/// tails (see the module docs). It only holds the shape; the knots come
/// from the raw parameters of each coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RqSpline {
    bins: usize,
    tail_bound: f64,
}

/// Working buffers of the spline for one coordinate (reused, held by
/// [`crate::Scratch`]): raw parameters, knots, their tangents and the
/// adjoints of the raw parameters.
#[derive(Debug, Default)]
pub struct SplineWork {
    /// Raw parameters θ (filled by the caller before [`RqSpline::knots`]).
    pub(crate) theta: Vec<f64>,
    /// Tangent dθ (read when `knots` is asked for tangents).
    pub(crate) dtheta: Vec<f64>,
    /// θ̄ written by [`RqSpline::adjoint`].
    pub(crate) g: Vec<f64>,
    /// dθ̄ written by [`RqSpline::adjoint`].
    pub(crate) dg: Vec<f64>,
    tangent: bool,
    pw: Vec<f64>,
    ph: Vec<f64>,
    dpw: Vec<f64>,
    dph: Vec<f64>,
    xs: Vec<f64>,
    ys: Vec<f64>,
    dxs: Vec<f64>,
    dys: Vec<f64>,
    ds: Vec<f64>,
    dds: Vec<f64>,
}

/// The six local parameters of one bin (or their tangents / adjoints).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bin {
    x: f64,
    w: f64,
    y: f64,
    h: f64,
    d0: f64,
    d1: f64,
}

impl RqSpline {
    /// Minimum bin width and height as a fraction m of the interval 2B.
    pub const MIN_BIN: f64 = 1e-3;
    /// Minimum derivative at the inner knots.
    pub const MIN_DERIVATIVE: f64 = 1e-3;

    /// A spline with `bins` bins on [−`tail_bound`, `tail_bound`].
    ///
    /// # Panics
    /// Unless 2 ≤ bins ≤ [`MAX_BINS`] and the tail bound is finite and > 0
    /// (the configuration validates both first).
    pub fn new(bins: usize, tail_bound: f64) -> Self {
        assert!((2..=MAX_BINS).contains(&bins), "bins = {bins} outside 2..={MAX_BINS}");
        assert!(tail_bound.is_finite() && tail_bound > 0.0, "tail bound {tail_bound}");
        RqSpline { bins, tail_bound }
    }

    /// Number of bins K.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Tail bound B.
    pub fn tail_bound(&self) -> f64 {
        self.tail_bound
    }

    /// Raw parameters per transformed coordinate, 3K − 1.
    pub fn n_params(&self) -> usize {
        3 * self.bins - 1
    }

    /// c₀ with δ_min + softplus(c₀) = 1.
    fn c0() -> f64 {
        (1.0 - Self::MIN_DERIVATIVE).exp_m1().ln()
    }

    /// Sizes the buffers of `w` for this spline.
    pub(crate) fn prepare(&self, w: &mut SplineWork) {
        let (k, p) = (self.bins, self.n_params());
        for v in [&mut w.theta, &mut w.dtheta, &mut w.g, &mut w.dg] {
            v.resize(p, 0.0);
        }
        for v in [&mut w.pw, &mut w.ph, &mut w.dpw, &mut w.dph] {
            v.resize(k, 0.0);
        }
        for v in [&mut w.xs, &mut w.ys, &mut w.dxs, &mut w.dys, &mut w.ds, &mut w.dds] {
            v.resize(k + 1, 0.0);
        }
    }

    /// Knots (X, Y, δ) from `w.theta`, and their tangents from `w.dtheta`
    /// when `tangent` (otherwise every tangent counts as zero).
    pub(crate) fn knots(&self, w: &mut SplineWork, tangent: bool) {
        let (k, b) = (self.bins, self.tail_bound);
        let cw = 2.0 * b * (1.0 - k as f64 * Self::MIN_BIN);
        let wmin = 2.0 * b * Self::MIN_BIN;
        w.tangent = tangent;
        for (off, p, dp, kn, dkn) in [
            (0, &mut w.pw, &mut w.dpw, &mut w.xs, &mut w.dxs),
            (k, &mut w.ph, &mut w.dph, &mut w.ys, &mut w.dys),
        ] {
            let a = &w.theta[off..off + k];
            softmax(a, p);
            kn[0] = -b;
            for i in 0..k - 1 {
                kn[i + 1] = kn[i] + (wmin + cw * p[i]);
            }
            kn[k] = b;
            if tangent {
                let da = &w.dtheta[off..off + k];
                let m: f64 = p.iter().zip(da).map(|(p, d)| p * d).sum();
                for i in 0..k {
                    dp[i] = p[i] * (da[i] - m);
                }
                dkn[0] = 0.0;
                for i in 0..k - 1 {
                    dkn[i + 1] = dkn[i] + cw * dp[i];
                }
                dkn[k] = 0.0;
            }
        }
        let c0 = Self::c0();
        w.ds[0] = 1.0;
        w.ds[k] = 1.0;
        w.dds[0] = 0.0;
        w.dds[k] = 0.0;
        for i in 1..k {
            let u = w.theta[2 * k + i - 1] + c0;
            w.ds[i] = Self::MIN_DERIVATIVE + Act::Softplus.value(u);
            w.dds[i] = if tangent {
                Act::Softplus.d1(u) * w.dtheta[2 * k + i - 1]
            } else {
                0.0
            };
        }
    }

    /// Bin of `v` among the knots `kn` (None in the tails).
    fn locate(&self, kn: &[f64], v: f64) -> Option<usize> {
        let b = self.tail_bound;
        (v >= -b && v < b).then(|| kn[1..self.bins].partition_point(|&t| t <= v))
    }

    /// Local parameters of bin `k` and their tangents.
    fn bin(&self, w: &SplineWork, k: usize) -> (Bin, Bin) {
        let p = Bin {
            x: w.xs[k],
            w: w.xs[k + 1] - w.xs[k],
            y: w.ys[k],
            h: w.ys[k + 1] - w.ys[k],
            d0: w.ds[k],
            d1: w.ds[k + 1],
        };
        let dp = if w.tangent {
            Bin {
                x: w.dxs[k],
                w: w.dxs[k + 1] - w.dxs[k],
                y: w.dys[k],
                h: w.dys[k + 1] - w.dys[k],
                d0: w.dds[k],
                d1: w.dds[k + 1],
            }
        } else {
            Bin::default()
        };
        (p, dp)
    }

    /// [z, dz, ℓ, dℓ]: z = T(x), ℓ = log T'(x) and their derivatives along
    /// (dx, dθ) (dθ as given to [`Self::knots`]).
    pub(crate) fn rq(&self, w: &SplineWork, x: f64, dx: f64) -> [f64; 4] {
        match self.locate(&w.xs, x) {
            None => [x, dx, 0.0, 0.0],
            Some(k) => {
                let (p, dp) = self.bin(w, k);
                rq_bin(&p, &dp, x, dx)
            }
        }
    }

    /// (x, ℓ(x)) with x = T⁻¹(z) (root of the quadratic) and ℓ = log T'(x).
    pub(crate) fn solve(&self, w: &SplineWork, z: f64) -> (f64, f64) {
        match self.locate(&w.ys, z) {
            None => (z, 0.0),
            Some(k) => {
                let (p, _) = self.bin(w, k);
                let s = p.h / p.w;
                let delta = z - p.y;
                let sg = p.d0 + p.d1 - 2.0 * s;
                let a = p.h * (s - p.d0) + delta * sg;
                let b = p.h * p.d0 - delta * sg;
                let c = -s * delta;
                let disc = (b * b - 4.0 * a * c).max(0.0);
                let xi = (2.0 * c / (-b - disc.sqrt())).clamp(0.0, 1.0);
                let x = p.x + xi * p.w;
                let l = rq_bin(&p, &Bin::default(), x, 0.0)[2];
                (x, l)
            }
        }
    }

    /// Reverse mode of [`Self::rq`] at (x, dx) with adjoints `bar` of
    /// [z, dz, ℓ, dℓ]: returns (x̄, dx̄) and overwrites `w.g` ← θ̄,
    /// `w.dg` ← dθ̄ (knots as last computed by [`Self::knots`]).
    pub(crate) fn adjoint(&self, w: &mut SplineWork, x: f64, dx: f64, bar: [f64; 4]) -> (f64, f64) {
        w.g.fill(0.0);
        w.dg.fill(0.0);
        let Some(k) = self.locate(&w.xs, x) else {
            return (bar[0], bar[1]);
        };
        let (p, dp) = self.bin(w, k);
        let (xb, dxb, pb, pt) = rq_bin_adjoint(&p, &dp, x, dx, bar);
        let nb = self.bins;
        let cw = 2.0 * self.tail_bound * (1.0 - nb as f64 * Self::MIN_BIN);
        // Knot adjoints: X_k from (X_k, w), X_{k+1} from w (X_K is constant).
        for (off, p, dp, kb, kt) in [
            (0, &w.pw, &w.dpw, (pb.x - pb.w, pb.w), (pt.x - pt.w, pt.w)),
            (nb, &w.ph, &w.dph, (pb.y - pb.h, pb.h), (pt.y - pt.h, pt.h)),
        ] {
            // W̄_i = [i < k] X̄_k + [i ≤ k < K−1] X̄_{k+1}; p̄ = c_w W̄.
            let wbar = |i: usize, (lo, hi): (f64, f64)| {
                let mut v = 0.0;
                if i < k {
                    v += lo;
                }
                if i <= k && k + 1 < nb {
                    v += hi;
                }
                cw * v
            };
            let (mut pp, mut gdp, mut big_g) = (0.0, 0.0, 0.0);
            for i in 0..nb {
                let (pbar, g) = (wbar(i, kb), wbar(i, kt));
                pp += p[i] * pbar;
                big_g += p[i] * g;
                if w.tangent {
                    gdp += g * dp[i];
                }
            }
            for i in 0..nb {
                let (pbar, g) = (wbar(i, kb), wbar(i, kt));
                let mut a = p[i] * (pbar - pp);
                if w.tangent {
                    a += dp[i] * (g - big_g) - p[i] * gdp;
                }
                w.g[off + i] = a;
                w.dg[off + i] = p[i] * (g - big_g);
            }
        }
        let c0 = Self::c0();
        for (i, db, dt) in [(k, pb.d0, pt.d0), (k + 1, pb.d1, pt.d1)] {
            if i == 0 || i == nb {
                continue;
            }
            let j = 2 * nb + i - 1;
            let (s1, s2) = Act::Softplus.d1_d2(w.theta[j] + c0);
            let dc = if w.tangent { w.dtheta[j] } else { 0.0 };
            w.g[j] += db * s1 + dt * s2 * dc;
            w.dg[j] += dt * s1;
        }
        (xb, dxb)
    }
}

/// p ← softmax(a), shifted by max a.
fn softmax(a: &[f64], p: &mut [f64]) {
    let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (p, &a) in p.iter_mut().zip(a) {
        *p = (a - m).exp();
        sum += *p;
    }
    p.iter_mut().for_each(|p| *p /= sum);
}

/// The intermediates of the forward sweep inside one bin, each with its
/// tangent (`d…`): shared by [`rq_bin`] and its reverse [`rq_bin_adjoint`].
struct BinSweep {
    dq: f64,
    xi: f64,
    dxi: f64,
    s: f64,
    ds: f64,
    eta: f64,
    deta: f64,
    sg: f64,
    dsg: f64,
    den: f64,
    dden: f64,
    dnum: f64,
    r: f64,
    dr: f64,
    om: f64,
    m: f64,
    dm: f64,
}

/// The forward sweep inside one bin at x along the tangent (dx, dp).
fn rq_sweep(p: &Bin, dp: &Bin, x: f64, dx: f64) -> BinSweep {
    let q = x - p.x;
    let dq = dx - dp.x;
    let xi = q / p.w;
    let dxi = (dq - xi * dp.w) / p.w;
    let s = p.h / p.w;
    let ds = (dp.h - s * dp.w) / p.w;
    let eta = xi - xi * xi;
    let deta = (1.0 - 2.0 * xi) * dxi;
    let sg = p.d0 + p.d1 - 2.0 * s;
    let dsg = dp.d0 + dp.d1 - 2.0 * ds;
    let den = s + sg * eta;
    let dden = ds + dsg * eta + sg * deta;
    let num = s * xi * xi + p.d0 * eta;
    let dnum = ds * xi * xi + 2.0 * s * xi * dxi + dp.d0 * eta + p.d0 * deta;
    let r = num / den;
    let dr = (dnum - r * dden) / den;
    let om = 1.0 - xi;
    let m = p.d1 * xi * xi + 2.0 * s * eta + p.d0 * om * om;
    let dm = dp.d1 * xi * xi + 2.0 * p.d1 * xi * dxi + 2.0 * ds * eta + 2.0 * s * deta + dp.d0 * om * om
        - 2.0 * p.d0 * om * dxi;
    BinSweep {
        dq,
        xi,
        dxi,
        s,
        ds,
        eta,
        deta,
        sg,
        dsg,
        den,
        dden,
        dnum,
        r,
        dr,
        om,
        m,
        dm,
    }
}

/// [z, dz, ℓ, dℓ] inside one bin (module docs).
fn rq_bin(p: &Bin, dp: &Bin, x: f64, dx: f64) -> [f64; 4] {
    let BinSweep {
        s,
        ds,
        den,
        dden,
        r,
        dr,
        m,
        dm,
        ..
    } = rq_sweep(p, dp, x, dx);
    [
        p.y + p.h * r,
        dp.y + dp.h * r + p.h * dr,
        2.0 * s.ln() + m.ln() - 2.0 * den.ln(),
        2.0 * ds / s + dm / m - 2.0 * dden / den,
    ]
}

/// Pair-mode reverse of [`rq_bin`]: (x̄, dx̄, ū, dū) for the bin parameters.
fn rq_bin_adjoint(p: &Bin, dp: &Bin, x: f64, dx: f64, bar: [f64; 4]) -> (f64, f64, Bin, Bin) {
    let [zb, zt, lb, lt] = bar;
    let BinSweep {
        dq,
        xi,
        dxi,
        s,
        ds,
        eta,
        deta,
        sg,
        dsg,
        den,
        dden,
        dnum,
        r,
        dr,
        om,
        m,
        dm,
    } = rq_sweep(p, dp, x, dx);

    // Reverse sweep: `_b` adjoint of a value, `_t` adjoint of its tangent.
    let mut ub = Bin::default();
    let mut ut = Bin::default();
    // ℓ = 2 ln s + ln M − 2 ln D.
    let mut s_b = 2.0 * lb / s - 2.0 * lt * ds / (s * s);
    let mut s_t = 2.0 * lt / s;
    let m_b = lb / m - lt * dm / (m * m);
    let m_t = lt / m;
    let mut den_b = -2.0 * lb / den + 2.0 * lt * dden / (den * den);
    let mut den_t = -2.0 * lt / den;
    // z = Y_k + h r.
    ub.y = zb;
    ut.y = zt;
    ub.h = zb * r + zt * dr;
    ut.h = zt * r;
    let r_b = zb * p.h + zt * dp.h;
    let r_t = zt * p.h;
    // r = N / D.
    let num_b = r_b / den - r_t * dden / (den * den);
    let num_t = r_t / den;
    den_b += -r_b * r / den + r_t * (2.0 * r * dden - dnum) / (den * den);
    den_t += -r_t * r / den;
    // M = δ₁ ξ² + 2 s η + δ₀ (1 − ξ)².
    ub.d1 = m_b * xi * xi + m_t * 2.0 * xi * dxi;
    ut.d1 = m_t * xi * xi;
    let mut xi_b = m_b * (2.0 * p.d1 * xi - 2.0 * p.d0 * om)
        + m_t * (2.0 * dp.d1 * xi + 2.0 * p.d1 * dxi - 2.0 * dp.d0 * om + 2.0 * p.d0 * dxi);
    let mut xi_t = m_t * (2.0 * p.d1 * xi - 2.0 * p.d0 * om);
    s_b += m_b * 2.0 * eta + m_t * 2.0 * deta;
    s_t += m_t * 2.0 * eta;
    let mut eta_b = m_b * 2.0 * s + m_t * 2.0 * ds;
    let mut eta_t = m_t * 2.0 * s;
    ub.d0 = m_b * om * om - m_t * 2.0 * om * dxi;
    ut.d0 = m_t * om * om;
    // N = s ξ² + δ₀ η.
    s_b += num_b * xi * xi + num_t * 2.0 * xi * dxi;
    s_t += num_t * xi * xi;
    xi_b += num_b * 2.0 * s * xi + num_t * (2.0 * ds * xi + 2.0 * s * dxi);
    xi_t += num_t * 2.0 * s * xi;
    ub.d0 += num_b * eta + num_t * deta;
    ut.d0 += num_t * eta;
    eta_b += num_b * p.d0 + num_t * dp.d0;
    eta_t += num_t * p.d0;
    // D = s + σ η.
    s_b += den_b;
    s_t += den_t;
    let sg_b = den_b * eta + den_t * deta;
    let sg_t = den_t * eta;
    eta_b += den_b * sg + den_t * dsg;
    eta_t += den_t * sg;
    // σ = δ₀ + δ₁ − 2s.
    ub.d0 += sg_b;
    ub.d1 += sg_b;
    s_b -= 2.0 * sg_b;
    ut.d0 += sg_t;
    ut.d1 += sg_t;
    s_t -= 2.0 * sg_t;
    // η = ξ − ξ².
    xi_b += eta_b * (1.0 - 2.0 * xi) - eta_t * 2.0 * dxi;
    xi_t += eta_t * (1.0 - 2.0 * xi);
    // s = h / w.
    let w2 = p.w * p.w;
    ub.h += s_b / p.w - s_t * dp.w / w2;
    ut.h += s_t / p.w;
    ub.w = -s_b * s / p.w + s_t * (2.0 * s * dp.w - dp.h) / w2;
    ut.w = -s_t * s / p.w;
    // ξ = q / w.
    let q_b = xi_b / p.w - xi_t * dp.w / w2;
    let q_t = xi_t / p.w;
    ub.w += -xi_b * xi / p.w + xi_t * (2.0 * xi * dp.w - dq) / w2;
    ut.w += -xi_t * xi / p.w;
    // q = x − X_k.
    ub.x = -q_b;
    ut.x = -q_t;
    (q_b, q_t, ub, ut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::Seed;
    use fieldflow_testkit::{assert_close, central_gradient, central_gradient_with_steps, central_jvp, FD_REL_TOL};
    use rand_distr::{Distribution, StandardNormal};

    const H: f64 = 1e-6;

    fn work(sp: &RqSpline, theta: &[f64], dtheta: Option<&[f64]>) -> SplineWork {
        let mut w = SplineWork::default();
        sp.prepare(&mut w);
        w.theta.copy_from_slice(theta);
        if let Some(d) = dtheta {
            w.dtheta.copy_from_slice(d);
        }
        sp.knots(&mut w, dtheta.is_some());
        w
    }

    fn normals(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut rng = Seed::new(seed).rng();
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                scale * z
            })
            .collect()
    }

    /// Arguments: interior points of several bins, both tails, a knot region.
    fn points(b: f64) -> Vec<f64> {
        vec![-1.7 * b, -0.93 * b, -0.41 * b, 0.05 * b, 0.37 * b, 0.88 * b, 1.3 * b]
    }

    fn splines() -> Vec<RqSpline> {
        vec![RqSpline::new(2, 1.0), RqSpline::new(5, 3.0), RqSpline::new(8, 2.5)]
    }

    #[test]
    fn inverse_undoes_the_map_and_the_map_is_monotone_and_continuous() {
        for sp in splines() {
            let theta = normals(sp.n_params(), 1, 1.5);
            let w = work(&sp, &theta, None);
            let b = sp.tail_bound();
            let mut prev = f64::NEG_INFINITY;
            for i in 0..=2000 {
                let x = -1.2 * b + 2.4 * b * i as f64 / 2000.0;
                let [z, _, l, _] = sp.rq(&w, x, 0.0);
                assert!(z > prev, "not increasing at {x}");
                prev = z;
                let (x2, l2) = sp.solve(&w, z);
                assert!((x2 - x).abs() < 1e-10 * (1.0 + x.abs()), "{x} → {z} → {x2}");
                assert!((l2 - l).abs() < 1e-9, "log-derivative {l} vs {l2}");
            }
            // Knots are interpolated with the prescribed slopes.
            for k in 0..=sp.bins() {
                let [z, dz, ..] = sp.rq(&w, w.xs[k], 1.0);
                assert!((z - w.ys[k]).abs() < 1e-12, "knot {k}: {z} vs {}", w.ys[k]);
                assert!((dz - w.ds[k]).abs() < 1e-9, "slope at knot {k}: {dz} vs {}", w.ds[k]);
            }
        }
    }

    #[test]
    fn zero_parameters_give_the_identity() {
        for sp in splines() {
            let w = work(&sp, &vec![0.0; sp.n_params()], None);
            for x in points(sp.tail_bound()) {
                let [z, _, l, _] = sp.rq(&w, x, 0.0);
                assert!((z - x).abs() < 1e-14 && l.abs() < 1e-14, "T({x}) = {z}, ℓ = {l}");
            }
        }
    }

    /// (4D(h/2) − D(h))/3 of a central-difference estimate D(h).
    fn richardson(d: impl Fn(f64) -> Vec<f64>, h: f64) -> Vec<f64> {
        let (fine, coarse) = (d(h / 2.0), d(h));
        fine.iter().zip(&coarse).map(|(f, c)| (4.0 * f - c) / 3.0).collect()
    }

    /// Checks at (x, dx; θ, dθ): the JVP (dz, dℓ) against central
    /// differences of (z, ℓ) along (dx, dθ), and the reverse mode of the
    /// JVP (adjoints `bar` of [z, dz, ℓ, dℓ]) against central differences of
    /// ⟨bar, rq⟩ in (x, θ) and in (dx, dθ) (F is linear in (dx, dθ)):
    /// Richardson-extrapolated central differences (4D(h/2) − D(h))/3,
    /// error O(h⁴), with step `hx` in x and `ht` in θ; relative error below
    /// [`FD_REL_TOL`].
    #[allow(clippy::too_many_arguments)] // the point, its tangent and the two steps
    fn check_point(sp: &RqSpline, theta: &[f64], dtheta: &[f64], x: f64, dx: f64, hx: f64, ht: f64, what: &str) {
        let bar = [0.7, -1.3, 0.4, 0.9];
        // u = (x, θ), v = (dx, dθ); F(u, v) = ⟨bar, rq(u; v)⟩.
        let f = |u: &[f64], v: &[f64]| {
            let w = work(sp, &u[1..], Some(&v[1..]));
            let o = sp.rq(&w, u[0], v[0]);
            o.iter().zip(bar).map(|(a, b)| a * b).sum::<f64>()
        };
        let mut u = vec![x];
        u.extend(theta);
        let mut v = vec![dx];
        v.extend(dtheta);
        let mut steps = vec![ht; u.len()];
        steps[0] = hx;
        // JVP: its coefficients, (dz, dℓ) along each unit tangent e_i of
        // (x, θ), against differences of (z, ℓ) along e_i (compared as
        // vectors, so that a JVP along v that cancels to a small number
        // does not turn rounding into a large relative error).
        let z_l = |u: &[f64]| {
            let r = sp.rq(&work(sp, &u[1..], None), u[0], 0.0);
            vec![r[0], r[2]]
        };
        let (mut an_z, mut an_l, mut fd_z, mut fd_l) = (vec![], vec![], vec![], vec![]);
        for i in 0..u.len() {
            let mut e = vec![0.0; u.len()];
            e[i] = 1.0;
            let w = work(sp, theta, Some(&e[1..]));
            let [_, dz, _, dl] = sp.rq(&w, x, e[0]);
            an_z.push(dz);
            an_l.push(dl);
            let fd = richardson(|h| central_jvp(z_l, &u, &e, h), steps[i]);
            fd_z.push(fd[0]);
            fd_l.push(fd[1]);
        }
        assert_close(&format!("{what} dz"), &an_z, &fd_z, FD_REL_TOL);
        assert_close(&format!("{what} dℓ"), &an_l, &fd_l, FD_REL_TOL);
        // Reverse mode of the JVP.
        let mut w = work(sp, theta, Some(dtheta));
        let (xb, dxb) = sp.adjoint(&mut w, x, dx, bar);
        let mut an_u = vec![xb];
        an_u.extend(&w.g);
        let mut an_v = vec![dxb];
        an_v.extend(&w.dg);
        let fd_u = richardson(
            |c| {
                let st: Vec<f64> = steps.iter().map(|s| c * s).collect();
                central_gradient_with_steps(|u| f(u, &v), &u, &st)
            },
            1.0,
        );
        let fd_v = richardson(|h| central_gradient(|v| f(&u, v), &v, h), 1e-3);
        assert_close(&format!("{what} ∂u"), &an_u, &fd_u, FD_REL_TOL);
        assert_close(&format!("{what} ∂v"), &an_v, &fd_v, FD_REL_TOL);
    }

    #[test]
    fn jvp_and_its_reverse_mode_match_finite_differences() {
        for (n, sp) in splines().into_iter().enumerate() {
            let np = sp.n_params();
            let theta = normals(np, 10 + n as u64, 1.2);
            let dtheta = normals(np, 20 + n as u64, 1.0);
            for (j, x) in points(sp.tail_bound()).into_iter().enumerate() {
                let dx = 0.3 - 0.2 * j as f64;
                check_point(&sp, &theta, &dtheta, x, dx, H, H, &format!("K={} x={x}", sp.bins()));
            }
        }
    }

    /// The second-order term in the regions the smooth test above does not
    /// reach: (i) 5 % of a bin width on either side of every inner knot
    /// (T is C¹ but not C², so the score jumps at knots and only one-sided
    /// derivatives exist there), and exactly at every knot, −B included, by
    /// one-sided differences in x; (ii) just and far outside the tail
    /// bound; (iii) with large conditioner outputs (raw parameters of scale
    /// 6: widths and heights at their floor, slopes from 10⁻³ to 10²). The
    /// steps keep central differences from crossing a knot.
    #[test]
    fn second_order_term_matches_finite_differences_near_knots_in_the_tails_and_for_large_outputs() {
        // (smallest and largest inner slope, narrowest bin / 2B) at scale 6
        let mut extreme = (f64::INFINITY, 0.0f64, f64::INFINITY);
        for (n, sp) in splines().into_iter().enumerate() {
            let np = sp.n_params();
            let b = sp.tail_bound();
            for (scale, seed) in [(1.2, 30), (6.0, 40)] {
                let theta = normals(np, seed + n as u64, scale);
                let dtheta = normals(np, seed + 5 + n as u64, 1.0);
                let w = work(&sp, &theta, None);
                let widths: Vec<f64> = w.xs.windows(2).map(|p| p[1] - p[0]).collect();
                let wmin = widths.iter().copied().fold(f64::INFINITY, f64::min);
                // Points with their step in x: 10 % of the distance to the
                // nearest knot (5 % of the bin width) in the bins, relative
                // to |x| in the tails. The step in θ is 10⁻⁴: it moves a
                // knot by at most 10⁻⁴ B/2, below 5 % of the narrowest bin
                // (≥ 2B·10⁻³), and keeps the rounding of z ≈ B far below
                // the small gradients of squashed bins.
                let ht = 1e-4;
                let mut xs = vec![(-b + 5e-2 * widths[0], 1e-3 * widths[0])];
                for x in [-1.0001 * b, 1.0001 * b, 3.0 * b, -40.0 * b] {
                    xs.push((x, H * x.abs()));
                }
                for k in 1..sp.bins() {
                    xs.push((w.xs[k] + 5e-2 * widths[k], 1e-3 * widths[k]));
                    xs.push((w.xs[k] - 5e-2 * widths[k - 1], 1e-3 * widths[k - 1]));
                }
                for (j, &(x, hx)) in xs.iter().enumerate() {
                    let dx = 0.3 - 0.1 * j as f64;
                    let what = format!("K={} scale {scale} x={x} (min width {wmin:.2e})", sp.bins());
                    check_point(&sp, &theta, &dtheta, x, dx, hx, ht, &what);
                }
                // Exactly at a knot X_k (k < K, −B included) x lies in bin k:
                // its x-derivatives are the right-sided ones (T'' and ℓ' jump
                // there), checked by Richardson-extrapolated one-sided
                // differences (8D(h/4) − 6D(h/2) + D(h))/3 (error O(h³)),
                // D(h) = (f(x + h) − f(x))/h.
                // (θ-derivatives do not exist there: θ moves the knot.) Only
                // for the moderate outputs: beside bins 10⁻³ of 2B wide with
                // slopes 10⁻³, one-sided differences do not reach 10⁻⁶.
                for k in (0..sp.bins()).filter(|_| scale < 5.0) {
                    let x = w.xs[k];
                    let hk = 1e-5 * widths[k];
                    let right = |f: &dyn Fn(f64) -> f64| {
                        let d = |h: f64| (f(x + h) - f(x)) / h;
                        (8.0 * d(hk / 4.0) - 6.0 * d(hk / 2.0) + d(hk)) / 3.0
                    };
                    let what = format!("K={} scale {scale} at knot {k}", sp.bins());
                    let [_, dz, _, dl] = sp.rq(&w, x, 1.0);
                    let fd_z = right(&|x| sp.rq(&w, x, 0.0)[0]);
                    let fd_l = right(&|x| sp.rq(&w, x, 0.0)[2]);
                    assert_close(&format!("{what} T'"), &[dz], &[fd_z], FD_REL_TOL);
                    assert_close(&format!("{what} ℓ'"), &[dl], &[fd_l], FD_REL_TOL);
                    let bar = [0.7, -1.3, 0.4, 0.9];
                    let wt = work(&sp, &theta, Some(&dtheta));
                    let f = |x: f64| {
                        let o = sp.rq(&wt, x, 0.4);
                        o.iter().zip(bar).map(|(a, b)| a * b).sum::<f64>()
                    };
                    let mut wa = work(&sp, &theta, Some(&dtheta));
                    let (xb, _) = sp.adjoint(&mut wa, x, 0.4, bar);
                    assert_close(&format!("{what} x̄"), &[xb], &[right(&f)], FD_REL_TOL);
                }
                if scale > 5.0 {
                    for &d in &w.ds[1..sp.bins()] {
                        extreme.0 = extreme.0.min(d);
                        extreme.1 = extreme.1.max(d);
                    }
                    extreme.2 = extreme.2.min(wmin / (2.0 * b));
                }
            }
        }
        // The large outputs reach the extremes the test is about.
        let (lo, hi, wfrac) = extreme;
        assert!(
            lo < 0.05 && hi > 5.0 && wfrac < 0.01,
            "slopes {lo}..{hi}, narrowest bin {wfrac} of 2B"
        );
    }
}
