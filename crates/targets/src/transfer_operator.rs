//! Transfer-operator oracle for the 1D φ⁴ / Allen–Cahn chain
//! ([`Phi4Field1d`], docs/THEORY.md §3.5): log Z and the exact weights of the
//! two modes defined by the sign of the middle site.
//!
//! # The factorization
//!
//! With Dirichlet ends φ₀ = φ_{N+1} = 0 the unnormalized density is a product
//! of nearest-neighbour kernels and one-site factors,
//!
//! p̃(φ₁…φ_N) = e^{−βU(φ)} = K(0, φ₁) Πᵢ₌₁^{N−1} K(φᵢ, φᵢ₊₁) K(φ_N, 0) Πᵢ₌₁^N w(φᵢ),
//!
//! K(u, v) = exp[−c (u − v)²], c = β aN/2,   w(φ) = exp[−β V(φ)],
//! V(φ) = ((1 − φ²)²/4 + bφ)/(aN),
//!
//! exactly the `log_prob` of [`Phi4Field1d`] (no constant dropped), so
//! Z = ∫ p̃ dφ₁…dφ_N is the normalization of that `log_prob`. Integrating the
//! sites one after the other from the left end defines the partial integrals
//!
//! f₁(u) = K(0, u),   f_{k+1}(u) = ∫ f_k(v) w(v) K(v, u) dv,
//!
//! where f_k(u) is the integral over φ₁…φ_{k−1} with φ_k = u fixed (without
//! site k's own factor w). The density is symmetric under the reversal
//! φᵢ → φ_{N+1−i}, so the integral over the sites right of site k, with φ_k = u
//! fixed, is f_{N+1−k}(u). With m the middle site (below),
//!
//! Z₋ = ∫_{−∞}^0 f_m(u) w(u) f_{N+1−m}(u) du,   Z₊ = ∫_0^∞ f_m(u) w(u) f_{N+1−m}(u) du,
//!
//! Z = Z₋ + Z₊, and the mode weights are w₋ = Z₋/Z (mode 0, φ_m < 0) and
//! w₊ = Z₊/Z (mode 1, φ_m > 0).
//!
//! # The middle site
//!
//! m = ⌈N/2⌉ in 1-based numbering, i.e. index ⌊(N − 1)/2⌋ of the 0-based
//! field vector ([`Phi4Field1d::middle_site`]): site 50 of 100 (index 49),
//! site 3 of 5 (index 2). For even N the other central site N/2 + 1 has the
//! same mode weights (by the reversal symmetry) but assigns individual
//! configurations differently; [`Phi4Field1d`]'s `Modes` impl uses m.
//!
//! # Quadrature
//!
//! * **Sites other than the middle one**: the trapezoid rule on the grid
//!   vⱼ = j h, |j| ≤ J = ⌈Φ/h⌉ (symmetric about 0, weight h at every node:
//!   the integrand is negligible at ±Φ, see the truncation check below). The
//!   integrand v ↦ f_k(v) w(v) K(v, u) is analytic and decays like a
//!   Gaussian, so the trapezoid rule converges spectrally: its relative
//!   error per site is of order exp(−π² σ²/h²) (the Fourier transform of the
//!   integrand at the aliasing frequency 2π/h), σ being its narrowest width
//!   — the kernel width σ_K = (β aN)^{−1/2} ([`kernel_width`]) or, for short
//!   stiff chains, the width σ_V = (aN/(2β))^{1/2} of one site's factor at its
//!   wells ([`well_width`]). The default h = min(σ_K, σ_V)/3 makes it
//!   e^{−9π²} ≈ 1e-39, far below rounding. Each step is a banded
//!   matrix–vector product with the Toeplitz kernel h K(vⱼ, vₗ) = h e^{−c h²(j−l)²},
//!   cut where it underflows (c h²(j−l)² > 745: those terms are exactly 0 in
//!   f64), so the sweep costs O(N · G · D) with G = 2J + 1 grid points and
//!   band half-width D ≈ √(745/c)/h (D = 115 at h = σ_K/3).
//! * **The middle site** is where the sign splits the integral. Integrating
//!   a half-line with the trapezoid rule would only be O(h²) accurate (the
//!   Euler–Maclaurin end correction h² g′(0)/12 does not vanish for b ≠ 0),
//!   so the grid point at 0 is not used there at all: each half [−Φ, 0] and
//!   [0, Φ] gets its own composite 16-point Gauss–Legendre rule (panels of
//!   width ≤ 4h), whose nodes never touch 0 (the set φ_m = 0 has measure
//!   zero; the `Modes` impl puts it in mode 1). f_m and f_{N+1−m} are
//!   evaluated at those nodes by the Nyström interpolation
//!   f_{k+1}(u) = h Σⱼ f_k(vⱼ) w(vⱼ) K(vⱼ, u) — the same trapezoid sum at an
//!   arbitrary point u, with the same spectral accuracy — so both halves are
//!   spectrally accurate too, and Z₋ + Z₊ = Z by construction.
//! * **Scaling**: after every step the vector is divided by its maximum and
//!   the logarithm of the factor is accumulated (w is also stored divided by
//!   its maximum); the middle integrals are log-sum-exps. log Z±, log Z and
//!   log(w₊/w₋) = log Z₊ − log Z₋ are therefore accurate even when
//!   w₊ ≈ 1e-10 (b = 0.1 below), where 1 − w₋ is mostly rounding. A mode
//!   whose relative weight is below ≈ e^{−745} (far beyond any benchmark)
//!   underflows to weight 0 and log Z± = −∞.
//! * **Truncation**: [`TransferResult::log_edge`] is log(p_m(±Φ)/max p_m),
//!   p_m being the middle site's marginal density (the site farthest from
//!   the pinned ends, whose field fluctuates most). The default Φ is the
//!   smallest of 2, 3, 4, … for which it is below [`EDGE_LOG_TOL`] (= −60);
//!   [`convergence`] checks Φ + 1 explicitly.
//!
//! # Convergence and the benchmark values
//!
//! [`convergence`] recomputes at h/2 and at Φ + 1 and reports the largest
//! change. For the benchmark of issue 14 (N = 100, a = 0.1, β = 20;
//! σ_K = 1/√200 ≈ 0.0707, σ_V = 0.5, default h = σ_K/3 ≈ 0.02357, Φ = 3,
//! G = 257 grid points; the middle site is site 50 of 100):
//!
//! | b | log Z | w₋ | w₊ | log(w₊/w₋) | change at h/2, Φ + 1: log Z; log ratio |
//! |---|---|---|---|---|---|
//! | 0 | −196.9122208055 | ½ | ½ | 0 | 3e-14; 0 |
//! | 0.025 | −193.6644464895 | 0.99958703850 | 4.1296150180e-4 | −7.7917431385 | 3e-14; 0 |
//! | 0.05 | −189.6410341451 | 0.99999982640 | 1.7359906427e-7 | −15.5665172513 | 3e-14; 0 |
//! | 0.075 | −185.5388052532 | 0.99999999973 | 2.7154316087e-10 | −22.0269000170 | 6e-14; 0 |
//! | 0.1 | −181.3623340524 | 0.99999999993 | 6.8723207791e-11 | −23.4009341601 | 1e-13; 0 |
//!
//! (The log ratio agrees to the last bit: the rounding of the shared log
//! scales cancels in it.) The convergence is spectral: at b = 0.05 the
//! change of log Z against the default grid is 2.5e-2 at h = 1.5 σ_K,
//! 1.1e-6 at h = σ_K and 5e-13 at h = 0.75 σ_K. One evaluation takes
//! 10–25 ms (release build, shared 2-core machine). The log ratio is not
//! linear in b: for large tilts the cheapest configurations with φ_m > 0
//! are a positive bubble around the middle of a negative field, whose cost
//! grows more slowly with b than that of the fully positive field.
//!
//! The tests check the oracle against direct quadrature of `log_prob`
//! (trapezoid on the other sites, Gauss–Legendre on the middle one) for
//! N = 1, 2, 3, 4, both at mild parameters and at the benchmark's a and β
//! (agreement 1e-9 or better, the brute force's own error), its symmetry at
//! b = 0, its convergence in h and Φ, and log Z and w₊ against
//! self-normalized importance sampling (within 4σ).

use crate::phi4_1d::Phi4Field1d;
use crate::quadrature::GaussLegendre;
use fieldflow_core::ConfigError;

/// The largest log(density at ±Φ / maximum) accepted by the default grid.
pub const EDGE_LOG_TOL: f64 = -60.0;
/// Default grid spacing in units of min(σ_K, σ_V) ([`kernel_width`],
/// [`well_width`]).
pub const H_PER_SIGMA: f64 = 1.0 / 3.0;
/// Largest number of grid points G the oracle accepts.
pub const MAX_GRID_POINTS: usize = 1 << 20;
/// Gauss–Legendre nodes per panel at the middle site.
const GL_NODES: usize = 16;
/// Middle-site panel width in units of h.
const PANEL_WIDTH_IN_H: f64 = 4.0;
/// exp(−x) underflows to 0 in f64 for x > 745.2.
const UNDERFLOW: f64 = 745.2;
/// Largest half-width Φ tried by the default grid.
const MAX_PHI: f64 = 64.0;

/// The quadrature grid: spacing h and half-width Φ of [−Φ, Φ].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferGrid {
    /// Grid spacing h > 0.
    pub h: f64,
    /// Half-width Φ > 0 of the integration range [−Φ, Φ].
    pub phi_max: f64,
}

impl TransferGrid {
    /// Checks h and Φ, and that the grid has at most [`MAX_GRID_POINTS`]
    /// points; returns J = ⌈Φ/h⌉.
    fn half_points(&self) -> Result<usize, ConfigError> {
        if !(self.h.is_finite() && self.h > 0.0) {
            return Err(ConfigError::new("h", self.h, "grid spacing must be finite and > 0"));
        }
        if !(self.phi_max.is_finite() && self.phi_max > 0.0) {
            return Err(ConfigError::new("phi_max", self.phi_max, "must be finite and > 0"));
        }
        let j = (self.phi_max / self.h).ceil();
        if 2.0 * j + 1.0 > MAX_GRID_POINTS as f64 {
            return Err(ConfigError::new(
                "h",
                self.h,
                format!(
                    "gives {} grid points on [-{}, {}], more than {MAX_GRID_POINTS}",
                    2.0 * j + 1.0,
                    self.phi_max,
                    self.phi_max
                ),
            ));
        }
        Ok(j as usize)
    }
}

/// The oracle's answer on one grid (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferResult {
    /// The grid used.
    pub grid: TransferGrid,
    /// log Z, Z = ∫ e^{log_prob}.
    pub log_z: f64,
    /// log Z₋: the integral restricted to a negative middle site (mode 0).
    pub log_z_minus: f64,
    /// log Z₊: the integral restricted to a positive middle site (mode 1).
    pub log_z_plus: f64,
    /// Truncation diagnostic: the largest log(value at ±Φ / maximum) over
    /// the partial integrals and the middle-site density.
    pub log_edge: f64,
}

impl TransferResult {
    /// The mode weights [w₋, w₊] (mode 0: middle site < 0; mode 1: > 0).
    pub fn weights(&self) -> [f64; 2] {
        [
            (self.log_z_minus - self.log_z).exp(),
            (self.log_z_plus - self.log_z).exp(),
        ]
    }

    /// log(w₊/w₋) = log Z₊ − log Z₋.
    pub fn log_ratio(&self) -> f64 {
        self.log_z_plus - self.log_z_minus
    }
}

/// The oracle at a grid and at two refinements (see [`convergence`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferConvergence {
    /// At the grid asked for.
    pub base: TransferResult,
    /// At spacing h/2.
    pub half_h: TransferResult,
    /// At half-width Φ + 1.
    pub wider: TransferResult,
}

impl TransferConvergence {
    /// max(|log Z(h/2) − log Z|, |log Z(Φ+1) − log Z|).
    pub fn log_z_change(&self) -> f64 {
        (self.half_h.log_z - self.base.log_z)
            .abs()
            .max((self.wider.log_z - self.base.log_z).abs())
    }

    /// The same for log(w₊/w₋).
    pub fn log_ratio_change(&self) -> f64 {
        let r = self.base.log_ratio();
        (self.half_h.log_ratio() - r)
            .abs()
            .max((self.wider.log_ratio() - r).abs())
    }
}

/// The kernel width σ_K = (β aN)^{−1/2}: K(u, v) = exp[−(u − v)²/(2σ_K²)].
pub fn kernel_width(target: &Phi4Field1d) -> f64 {
    1.0 / (target.beta() * target.a() * target.n() as f64).sqrt()
}

/// The width σ_V = (2β/(aN))^{−1/2} of one site's factor e^{−βV} at its
/// wells φ = ±1 (where V″ = 2/(aN)); narrower than σ_K for short, stiff
/// chains.
pub fn well_width(target: &Phi4Field1d) -> f64 {
    (target.a() * target.n() as f64 / (2.0 * target.beta())).sqrt()
}

/// The default grid: h = min(σ_K, σ_V)/3 and the smallest
/// Φ ∈ {2, 3, 4, …} whose truncation diagnostic is below [`EDGE_LOG_TOL`],
/// with the result there.
///
/// # Errors
/// A [`ConfigError`] naming `h` if the grid would exceed
/// [`MAX_GRID_POINTS`] points, or `phi_max` if the truncation check still
/// fails at Φ = 64.
pub fn default_oracle(target: &Phi4Field1d) -> Result<TransferResult, ConfigError> {
    let h = H_PER_SIGMA * kernel_width(target).min(well_width(target));
    let mut phi_max = 2.0;
    loop {
        let r = transfer_operator(target, TransferGrid { h, phi_max })?;
        if r.log_edge <= EDGE_LOG_TOL {
            return Ok(r);
        }
        phi_max += 1.0;
        if phi_max > MAX_PHI {
            return Err(ConfigError::new(
                "phi_max",
                phi_max,
                format!("the field still reaches the edge of [-{MAX_PHI}, {MAX_PHI}]"),
            ));
        }
    }
}

/// The oracle at `grid`, at spacing h/2 and at half-width Φ + 1.
///
/// # Errors
/// As [`transfer_operator`].
pub fn convergence(target: &Phi4Field1d, grid: TransferGrid) -> Result<TransferConvergence, ConfigError> {
    Ok(TransferConvergence {
        base: transfer_operator(target, grid)?,
        half_h: transfer_operator(
            target,
            TransferGrid {
                h: 0.5 * grid.h,
                ..grid
            },
        )?,
        wider: transfer_operator(
            target,
            TransferGrid {
                phi_max: grid.phi_max + 1.0,
                ..grid
            },
        )?,
    })
}

/// log Σ exp over an iterator, −∞ for no (or only −∞) terms.
fn log_sum_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// The chain discretized on one grid: the nodes vⱼ, the one-site factor
/// w = e^{−βV} on them (divided by its maximum e^{w_max}) and the Toeplitz
/// band of h K(vⱼ, vₗ), |j − l| ≤ band.
struct Discretized {
    h: f64,
    c: f64,
    jmax: usize,
    nodes: Vec<f64>,
    w: Vec<f64>,
    w_max: f64,
    band: usize,
    kern: Vec<f64>,
    beta: f64,
    b: f64,
    an: f64,
}

impl Discretized {
    fn new(target: &Phi4Field1d, grid: TransferGrid) -> Result<Self, ConfigError> {
        let jmax = grid.half_points()?;
        let h = grid.h;
        let an = target.a() * target.n() as f64;
        let (beta, b) = (target.beta(), target.b());
        let c = 0.5 * beta * an;
        let g = 2 * jmax + 1;
        let nodes: Vec<f64> = (0..g).map(|j| (j as f64 - jmax as f64) * h).collect();
        let mut d = Discretized {
            h,
            c,
            jmax,
            nodes,
            w: Vec::new(),
            w_max: 0.0,
            band: (((UNDERFLOW / c).sqrt() / h).floor() as usize).min(g - 1),
            kern: Vec::new(),
            beta,
            b,
            an,
        };
        let w_log: Vec<f64> = d.nodes.iter().map(|&v| d.log_w(v)).collect();
        d.w_max = w_log.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        d.w = w_log.iter().map(|l| (l - d.w_max).exp()).collect();
        d.kern = (0..=d.band).map(|k| h * (-c * (k as f64 * h).powi(2)).exp()).collect();
        Ok(d)
    }

    /// log e^{−βV(v)}.
    fn log_w(&self, v: f64) -> f64 {
        let q = 1.0 - v * v;
        -self.beta * (0.25 * q * q + self.b * v) / self.an
    }

    /// f₁(u) = K(0, u) on the grid.
    fn first(&self) -> Vec<f64> {
        self.nodes.iter().map(|&v| (-self.c * v * v).exp()).collect()
    }

    /// One site integrated: next(u) = h Σⱼ f(vⱼ) w(vⱼ) mⱼ K(vⱼ, u) (m a
    /// mask of the site's values, 1 without one), divided by its maximum;
    /// returns the log of that factor times e^{w_max}.
    fn step(&self, f: &[f64], mask: Option<&[f64]>, next: &mut [f64]) -> Result<f64, ConfigError> {
        let g = self.nodes.len();
        for (u, out) in next.iter_mut().enumerate() {
            let lo = u.saturating_sub(self.band);
            let hi = (u + self.band).min(g - 1);
            let mut s = 0.0;
            for j in lo..=hi {
                s += f[j] * self.w[j] * mask.map_or(1.0, |m| m[j]) * self.kern[u.abs_diff(j)];
            }
            *out = s;
        }
        let peak = next.iter().cloned().fold(0.0, f64::max);
        if !(peak.is_finite() && peak > 0.0) {
            return Err(ConfigError::new(
                "h",
                self.h,
                "the partial integrals of the chain under- or overflow on this grid",
            ));
        }
        next.iter_mut().for_each(|x| *x /= peak);
        Ok(peak.ln() + self.w_max)
    }
}

/// log ∫ p̃ over the configurations whose listed sites have the listed signs
/// (`(site, positive)`, 0-based sites; φ = 0 counts half on each side, so
/// the two signs of one site add up to the unrestricted integral exactly).
/// One trapezoid sweep over all sites with the one-site factors of the
/// constrained sites masked: the cut at 0 makes it accurate to O(h²) only
/// (unlike [`transfer_operator`]'s middle site), ≈ 1e-3 in log Z on the
/// default grid — enough to bound the weight of a set of configurations
/// (e.g. the states a phase decomposition leaves out, docs/THEORY.md §6.13).
///
/// # Errors
/// As [`transfer_operator`]; a site out of range names `site`.
pub fn log_z_with_signs(target: &Phi4Field1d, grid: TransferGrid, signs: &[(usize, bool)]) -> Result<f64, ConfigError> {
    let d = Discretized::new(target, grid)?;
    let n = target.n();
    let mut masks: Vec<Option<Vec<f64>>> = vec![None; n];
    for &(site, positive) in signs {
        if site >= n {
            return Err(ConfigError::new("site", site as f64, format!("must be < n = {n}")));
        }
        let m = masks[site].get_or_insert_with(|| vec![1.0; d.nodes.len()]);
        for (mj, &v) in m.iter_mut().zip(&d.nodes) {
            let keep = if v == 0.0 {
                0.5
            } else {
                f64::from((v > 0.0) == positive)
            };
            *mj *= keep;
        }
    }
    // f_{i+1} for i = 1 … N − 1, then Z = h Σⱼ f_N(vⱼ) w(vⱼ) m_N(vⱼ) K(vⱼ, 0).
    let mut f = d.first();
    let mut next = vec![0.0; f.len()];
    let mut log_scale = 0.0;
    for mask in masks.iter().take(n - 1) {
        log_scale += d.step(&f, mask.as_deref(), &mut next)?;
        std::mem::swap(&mut f, &mut next);
    }
    let last = masks[n - 1].as_deref();
    let z: f64 = (0..f.len())
        .map(|j| f[j] * d.w[j] * last.map_or(1.0, |m| m[j]) * d.h * (-d.c * d.nodes[j] * d.nodes[j]).exp())
        .sum();
    Ok(z.ln() + log_scale + d.w_max)
}

/// log Z, log Z± and the truncation diagnostic on `grid` (see the module
/// docs).
///
/// # Errors
/// A [`ConfigError`] naming `h` or `phi_max` if they are not finite and
/// > 0 or give more than [`MAX_GRID_POINTS`] grid points.
pub fn transfer_operator(target: &Phi4Field1d, grid: TransferGrid) -> Result<TransferResult, ConfigError> {
    let d = Discretized::new(target, grid)?;
    let (h, c, jmax, band, w_max) = (d.h, d.c, d.jmax, d.band, d.w_max);
    let (nodes, w) = (&d.nodes, &d.w);
    let n = target.n();
    let g = nodes.len();
    let log_w = |v: f64| d.log_w(v);

    // Middle site m (1-based) = index + 1. The left partial integral f_m
    // has m − 1 integrated sites, the right one f_{N+1−m} has N − m. The
    // sweep holds f_{k+1} on the grid (max-normalized, with its log scale)
    // at step k, and keeps the vectors f_{n_left} and f_{n_right} whose
    // Nyström interpolation is f_m resp. f_{N+1−m} (none if no site is
    // integrated: then f₁(u) = K(0, u) exactly).
    let m = target.middle_site() + 1;
    let (n_left, n_right) = (m - 1, n - m);
    let steps = n_left.max(n_right);
    let mut f = d.first();
    let mut log_scale = 0.0;
    let mut next = vec![0.0; g];
    let (mut left, mut right) = (None, None);
    for k in 0..steps {
        if k + 1 == n_left {
            left = Some((f.clone(), log_scale));
        }
        if k + 1 == n_right {
            right = Some((f.clone(), log_scale));
        }
        if k + 1 == steps {
            break;
        }
        // f_{k+2}(u) = h Σⱼ f_{k+1}(vⱼ) w(vⱼ) K(vⱼ, u), then renormalize.
        log_scale += d.step(&f, None, &mut next)?;
        std::mem::swap(&mut f, &mut next);
    }

    // log f(u) at an arbitrary u from the kept vector (Nyström).
    let log_at = |kept: &Option<(Vec<f64>, f64)>, u: f64| -> f64 {
        let Some((vec, scale)) = kept else {
            return -c * u * u;
        };
        let centre = ((u + jmax as f64 * h) / h).round() as i64;
        let lo = (centre - band as i64 - 1).max(0) as usize;
        let hi = ((centre + band as i64 + 1).max(0) as usize).min(g - 1);
        let mut s = 0.0;
        for j in lo..=hi {
            let d = u - nodes[j];
            s += vec[j] * w[j] * (-c * d * d).exp();
        }
        (h * s).ln() + scale + w_max
    };
    // The middle site: Gauss–Legendre on [−Φ, 0] and [0, Φ].
    let gl = GaussLegendre::new(GL_NODES);
    let phi = jmax as f64 * h;
    let panels = (phi / (PANEL_WIDTH_IN_H * h)).ceil().max(1.0) as usize;
    let log_density = |u: f64| log_at(&left, u) + log_w(u) + log_at(&right, u);
    let half = |lo: f64, hi: f64| {
        let mut terms = Vec::with_capacity(panels * GL_NODES);
        gl.for_each_node(lo, hi, panels, |u, wt| terms.push(log_density(u) + wt.ln()));
        log_sum_exp(&terms)
    };
    let log_z_minus = half(-phi, 0.0);
    let log_z_plus = half(0.0, phi);
    let log_z = log_sum_exp(&[log_z_minus, log_z_plus]);
    // Truncation: the middle-site density at ±Φ relative to its maximum
    // (over the Gauss–Legendre nodes and the two ends).
    let mut peak = f64::NEG_INFINITY;
    gl.for_each_node(-phi, phi, 2 * panels, |u, _| peak = peak.max(log_density(u)));
    let ends = log_density(-phi).max(log_density(phi));
    let log_edge = ends - peak.max(ends);
    Ok(TransferResult {
        grid,
        log_z,
        log_z_minus,
        log_z_plus,
        log_edge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::{Seed, Target};
    use ndarray::Array1;
    use rand_distr::{Distribution, StandardNormal};
    use std::time::Instant;

    /// Streaming log-sum-exp accumulator.
    #[derive(Clone, Copy)]
    struct Lse(f64, f64);
    impl Lse {
        fn new() -> Self {
            Lse(f64::NEG_INFINITY, 0.0)
        }
        fn push(&mut self, l: f64) {
            if l > self.0 {
                self.1 = self.1 * (self.0 - l).exp() + 1.0;
                self.0 = l;
            } else {
                self.1 += (l - self.0).exp();
            }
        }
        fn value(&self) -> f64 {
            self.0 + self.1.ln()
        }
    }

    /// Brute force, independent of the factorization: log ∫ e^{log_prob}
    /// over φ ∈ [−Φ, Φ]^N, split by the sign of the middle site, with the
    /// trapezoid rule of spacing `h` on every other site and composite
    /// 8-point Gauss–Legendre on each half-line of the middle site. Returns
    /// (log Z₋, log Z₊).
    fn brute_force(t: &Phi4Field1d, h: f64, phi: f64, gl_panels: usize) -> (f64, f64) {
        let n = t.n();
        let mid = t.middle_site();
        let others: Vec<usize> = (0..n).filter(|&i| i != mid).collect();
        let j = (phi / h).ceil() as i64;
        let grid: Vec<f64> = (-j..=j).map(|k| k as f64 * h).collect();
        let gl = GaussLegendre::new(8);
        let mut halves = [Vec::new(), Vec::new()];
        gl.for_each_node(-phi, 0.0, gl_panels, |u, w| halves[0].push((u, w)));
        gl.for_each_node(0.0, phi, gl_panels, |u, w| halves[1].push((u, w)));
        let mut out = [Lse::new(), Lse::new()];
        let mut x = Array1::zeros(n);
        let g = grid.len();
        let total = g.pow(others.len() as u32);
        let log_h = (others.len() as f64) * h.ln();
        for (s, half) in halves.iter().enumerate() {
            for &(u, w) in half {
                x[mid] = u;
                for idx in 0..total {
                    let mut r = idx;
                    for &i in &others {
                        x[i] = grid[r % g];
                        r /= g;
                    }
                    out[s].push(t.log_prob(x.view()) + w.ln() + log_h);
                }
            }
        }
        (out[0].value(), out[1].value())
    }

    fn check_against_brute_force(t: &Phi4Field1d, h: f64, gl_panels: usize, tol: f64) {
        let r = *t.oracle().unwrap();
        let phi = r.grid.phi_max;
        let start = Instant::now();
        let (lm, lp) = brute_force(t, h, phi, gl_panels);
        let lz = log_sum_exp(&[lm, lp]);
        println!(
            "{}: oracle log Z = {:.12}, log(w+/w-) = {:.12}; brute force ({:.2} s) log Z = {:.12}, log(w+/w-) = {:.12}; Φ = {phi}",
            t.describe(),
            r.log_z,
            r.log_ratio(),
            start.elapsed().as_secs_f64(),
            lz,
            lp - lm
        );
        assert!((r.log_z - lz).abs() < tol, "log Z {} vs {lz}", r.log_z);
        assert!((r.log_z_minus - lm).abs() < tol, "log Z- {} vs {lm}", r.log_z_minus);
        assert!((r.log_z_plus - lp).abs() < tol, "log Z+ {} vs {lp}", r.log_z_plus);
        let w = r.weights();
        assert!((w[1] - (lp - lz).exp()).abs() < tol);
    }

    #[test]
    fn agrees_with_brute_force_quadrature_on_short_chains() {
        // N = 4, mild: weights of the same order.
        let t = Phi4Field1d::new(4, 0.5, 2.0, 0.3).unwrap();
        check_against_brute_force(&t, 0.15, 8, 1e-9);
        // N = 3 and N = 4 at the benchmark's a and β (stiff wells, a tilt
        // that makes the weights differ by eight orders of magnitude).
        let t = Phi4Field1d::new(3, 0.1, 20.0, 0.05).unwrap();
        check_against_brute_force(&t, 0.03, 16, 1e-9);
        let t = Phi4Field1d::new(4, 0.1, 20.0, 0.05).unwrap();
        check_against_brute_force(&t, 0.06, 8, 1e-8);
        // The edge cases N = 1 (no kernel sums) and N = 2 (one on the right).
        let t = Phi4Field1d::new(1, 0.5, 3.0, 0.2).unwrap();
        check_against_brute_force(&t, 0.1, 32, 1e-12);
        let t = Phi4Field1d::new(2, 0.3, 5.0, 0.1).unwrap();
        check_against_brute_force(&t, 0.05, 32, 1e-11);
    }

    #[test]
    fn sign_constrained_integrals_agree_with_the_oracle_and_add_up() {
        let t = Phi4Field1d::new(100, 0.1, 20.0, 0.05).unwrap();
        let r = *t.oracle().unwrap();
        let all = log_z_with_signs(&t, r.grid, &[]).unwrap();
        assert!((all - r.log_z).abs() < 1e-10, "{all} vs {}", r.log_z);
        // The middle site's sign by the trapezoid cut: O(h²) close to the
        // oracle's Gauss–Legendre halves; the two signs add up exactly.
        let m = t.middle_site();
        let plus = log_z_with_signs(&t, r.grid, &[(m, true)]).unwrap();
        let minus = log_z_with_signs(&t, r.grid, &[(m, false)]).unwrap();
        assert!((plus - r.log_z_plus).abs() < 2e-3, "{plus} vs {}", r.log_z_plus);
        assert!((minus - r.log_z_minus).abs() < 1e-6);
        assert!((log_sum_exp(&[plus, minus]) - all).abs() < 1e-10);
        assert!(log_z_with_signs(&t, r.grid, &[(100, true)]).is_err());
    }

    #[test]
    fn the_phase_split_of_the_free_energy_estimate_leaves_out_a_negligible_weight() {
        // Phases by the signs of sites n/4 and 3n/4 (crates/freeenergy):
        // configurations where they differ belong to neither; their share of
        // the "+" mode (middle site > 0) bounds what the estimate leaves out.
        for (b, bound) in [(0.025, -9.0), (0.05, -7.0), (0.075, -5.5), (0.1, -7.5)] {
            let t = Phi4Field1d::new(100, 0.1, 20.0, b).unwrap();
            let grid = t.oracle().unwrap().grid;
            let m = t.middle_site();
            let plus = log_z_with_signs(&t, grid, &[(m, true)]).unwrap();
            let mixed = log_sum_exp(&[
                log_z_with_signs(&t, grid, &[(m, true), (25, true), (75, false)]).unwrap(),
                log_z_with_signs(&t, grid, &[(m, true), (25, false), (75, true)]).unwrap(),
            ]);
            println!("b = {b}: log P(neither phase | + mode) = {:.2}", mixed - plus);
            assert!(mixed - plus < bound, "b = {b}: {}", mixed - plus);
        }
    }

    #[test]
    fn symmetric_at_zero_tilt() {
        for t in [
            Phi4Field1d::default(),
            Phi4Field1d::new(4, 0.5, 2.0, 0.0).unwrap(),
            Phi4Field1d::new(7, 0.2, 10.0, 0.0).unwrap(),
        ] {
            let r = default_oracle(&t).unwrap();
            let w = r.weights();
            assert!((r.log_ratio()).abs() < 1e-12, "{}: {}", t.describe(), r.log_ratio());
            assert!((w[0] - 0.5).abs() < 1e-13 && (w[1] - 0.5).abs() < 1e-13, "{w:?}");
        }
        // A tilt b > 0 favours φ < 0, more so for larger b.
        let r1 = default_oracle(&Phi4Field1d::new(100, 0.1, 20.0, 0.01).unwrap()).unwrap();
        let r2 = default_oracle(&Phi4Field1d::new(100, 0.1, 20.0, 0.02).unwrap()).unwrap();
        assert!(r2.log_ratio() < r1.log_ratio() && r1.log_ratio() < 0.0);
    }

    #[test]
    fn converges_in_the_grid_spacing_and_range() {
        for b in [0.0, 0.05, 0.1] {
            let t = Phi4Field1d::new(100, 0.1, 20.0, b).unwrap();
            let r = default_oracle(&t).unwrap();
            assert!(r.log_edge <= EDGE_LOG_TOL);
            let c = convergence(&t, r.grid).unwrap();
            assert!(c.log_z_change() < 1e-10, "b = {b}: {}", c.log_z_change());
            assert!(c.log_ratio_change() < 1e-10, "b = {b}: {}", c.log_ratio_change());
            // Coarser grids: the error falls off fast (spectrally) and is
            // visible at h = 1.5 σ_K, so the comparison is not blind.
            let sigma = kernel_width(&t);
            let mut errors = Vec::new();
            for k in [1.5, 1.0, 0.75] {
                let coarse = transfer_operator(&t, TransferGrid { h: k * sigma, ..r.grid }).unwrap();
                errors.push((coarse.log_z - r.log_z).abs());
            }
            println!(
                "b = {b}: |Δ log Z| at h = 1.5, 1, 0.75 σ_K: {:.1e} {:.1e} {:.1e}",
                errors[0], errors[1], errors[2]
            );
            assert!(errors[0] > 1e-6, "{errors:?}");
            assert!(
                errors[1] < 1e-2 * errors[0] && errors[2] < 1e-2 * errors[1],
                "{errors:?}"
            );
            // Too narrow a range is seen by the truncation diagnostic.
            let narrow = transfer_operator(&t, TransferGrid { phi_max: 1.0, ..r.grid }).unwrap();
            assert!(narrow.log_edge > EDGE_LOG_TOL, "{}", narrow.log_edge);
        }
    }

    /// Self-normalized importance sampling from N(0, I) (i.i.d. draws, so
    /// the errors are the plain delta-method ones): log Z and w₊ within 4σ.
    #[test]
    fn agrees_with_importance_sampling() {
        let t = Phi4Field1d::new(4, 0.5, 2.0, 0.3).unwrap();
        let r = *t.oracle().unwrap();
        let n = 400_000;
        let mut rng = Seed::new(77).rng();
        let mid = t.middle_site();
        let mut x = Array1::zeros(4);
        let log_q_norm = -2.0 * (2.0 * std::f64::consts::PI).ln();
        let mut log_ratios = Vec::with_capacity(n);
        let mut plus = Vec::with_capacity(n);
        for _ in 0..n {
            x.mapv_inplace(|_| StandardNormal.sample(&mut rng));
            let log_q = log_q_norm - 0.5 * x.dot(&x);
            log_ratios.push(t.log_prob(x.view()) - log_q);
            plus.push(x[mid] >= 0.0);
        }
        let shift = log_ratios.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ws: Vec<f64> = log_ratios.iter().map(|l| (l - shift).exp()).collect();
        let sum: f64 = ws.iter().sum();
        let mean = sum / n as f64;
        let var = ws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let log_z = shift + mean.ln();
        let log_z_err = (var / n as f64).sqrt() / mean;
        let w_plus: f64 = ws.iter().zip(&plus).filter(|(_, &p)| p).map(|(w, _)| w).sum::<f64>() / sum;
        let w_plus_err = ws
            .iter()
            .zip(&plus)
            .map(|(w, &p)| (w * (f64::from(u8::from(p)) - w_plus)).powi(2))
            .sum::<f64>()
            .sqrt()
            / sum;
        let ess = sum * sum / ws.iter().map(|w| w * w).sum::<f64>();
        let exact = r.weights()[1];
        println!(
            "IS (ESS {ess:.0} of {n}): log Z {log_z:.5} ± {log_z_err:.5} vs {:.5}; w+ {w_plus:.5} ± {w_plus_err:.5} vs {exact:.5}",
            r.log_z
        );
        assert!((log_z - r.log_z).abs() < 4.0 * log_z_err);
        assert!((w_plus - exact).abs() < 4.0 * w_plus_err);
        // The test has power: the errors resolve the weight to 1 %.
        assert!(w_plus_err < 0.01 * exact && log_z_err < 0.01);
    }

    /// The benchmark of issue 14 (the table of the module docs); the
    /// values are pinned to 1e-9 and the convergence changes to 1e-10.
    #[test]
    fn benchmark_table() {
        let table = [
            (0.0, -196.9122208055, 0.0),
            (0.025, -193.6644464895, -7.7917431385),
            (0.05, -189.6410341451, -15.5665172513),
            (0.075, -185.5388052532, -22.0269000170),
            (0.1, -181.3623340524, -23.4009341601),
        ];
        for (b, log_z, log_ratio) in table {
            let t = Phi4Field1d::new(100, 0.1, 20.0, b).unwrap();
            let start = Instant::now();
            let r = default_oracle(&t).unwrap();
            let el = start.elapsed().as_secs_f64();
            let c = convergence(&t, r.grid).unwrap();
            let w = r.weights();
            println!(
                "| {b} | {:.10} | {:.10e} | {:.10e} | {:.10} | {:.1e}, {:.1e} | {:.1} ms | h = {:.5}, Φ = {}, edge {:.1}",
                r.log_z,
                w[0],
                w[1],
                r.log_ratio(),
                c.log_z_change(),
                c.log_ratio_change(),
                el * 1e3,
                r.grid.h,
                r.grid.phi_max,
                r.log_edge
            );
            assert!((r.log_z - log_z).abs() < 1e-9 && (r.log_ratio() - log_ratio).abs() < 1e-9);
            assert!(c.log_z_change() < 1e-10 && c.log_ratio_change() < 1e-10);
        }
    }
}
