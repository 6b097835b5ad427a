//! Score models s_θ(x, t) for lattice fields (docs/THEORY.md §6.11.3).
//!
//! Every model here is translation invariant. Its linear part is a
//! reflection-invariant linear map of the field, i.e. diagonal in momentum
//! space with multipliers m_k(t) (the exact score of a Gaussian field has
//! this form: s = −Σ_t⁻¹ x); the linear models differ in how m is
//! parametrized, which is what decides how fast gradient descent on the
//! denoising loss converges. Local-cubic and local-net add non-linear
//! local terms:
//!
//! * [`Architecture::OneLayer`]: one free multiplier per momentum,
//!   m_k = a_k (V parameters per time level; the "one-layer network matching
//!   the exact solution").
//! * [`Architecture::TwoLayer`]: the product of two such layers,
//!   m_k = b_k c_k (2V per level; same function class, different training
//!   dynamics). Initialized at b = −c = `init`.
//! * [`Architecture::Local`]: a periodic convolution of range R (offsets
//!   |δ_μ| ≤ R), reflection symmetric, so
//!   m_k = Σ_o w_o Σ_{δ ∈ o} cos(k·δ) over the orbits o = {δ, −δ}
//!   (((2R + 1)^D + 1)/2 parameters per level, independent of L).
//!   With `gaussian = true` the convolution is the *inverse propagator* K
//!   of a Gaussian field instead of the score itself: K_k = e^{w₀} +
//!   Σ_{o≠0} w_o Σ_{δ∈o} (cos(k·δ) − 1) (a log mass and a kinetic basis)
//!   and m_k(t) = −K_k(t)/(α_t² + σ_t² K_k(t)), the exact score at time t
//!   of N(0, K⁻¹), with K(t) interpolated between the levels (same
//!   parameter count; needs the schedule, [`ScoreModel::with_schedule`];
//!   the levels' gradient variables are the K_j, [`ScoreModel::mode_factors`]).
//!   A ratio of two local operators:
//!   translation invariant, independent of L, but of infinite range. The
//!   free field's exact score at every t is of this form at range 1
//!   (K = 2(p̂² + m²)), which a plain local model is not: near criticality
//!   the plain local model misses the infrared and generates a χ₂ tens of
//!   per cent low (docs/THEORY.md §6.11.8). Initialized at K ≡ 1 (the
//!   prior's score).
//!
//! * [`Architecture::LocalCubic`]: the local convolution plus c x_i³ on
//!   every site. Not linear: the φ⁴ score 2Σ_μ(φ_{x+μ} + φ_{x−μ}) −
//!   2(2d + m²)φ_x − 4λφ_x³ has exactly this form (range 1), so the model is
//!   exact at t → 0 for φ⁴.
//!
//! * [`Architecture::LocalNet`]: local-cubic plus a one-hidden-layer
//!   periodic convolutional network n(x) = Σ_c W2_c ⋆ tanh(W1_c ⋆ x) with C
//!   channels and kernels of range R_net ([`crate::net`]; 2 C (2R_net + 1)^D
//!   more parameters per level). Initialized with W2 = 0 (and a fixed small
//!   W1), so it starts as the local-cubic model and gradient descent can
//!   only add to it. Its divergence is exact in O(V C).
//!
//! Time conditioning: parameters θ_j at the levels t_j of a uniform
//! [`TimeGrid`], and s(x, t) = (1 − u) s_j(x) + u s_{j+1}(x) for
//! t = t_j + u (t_{j+1} − t_j). The gradient of anything that depends on
//! m(t) is pushed to the levels with the same weights, then through each
//! level's parametrization ([`ScoreModel::chain`]).

use crate::net::{LocalNet, NetWork};
use crate::schedule::NoiseSchedule;
use crate::spectrum::Spectrum;
use fieldflow_core::{ConfigError, Seed};
use fieldflow_lattice::Lattice;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A score of the form s(x, t)_i = (M(t) x)_i + c(t) x_i³: a
/// translation-invariant linear part (multipliers m_k(t)) and an on-site
/// cubic term (zero for the linear models).
pub trait FieldScore: Sync {
    /// The lattice's momentum space.
    fn spectrum(&self) -> &Spectrum;
    /// Writes the multipliers m_k(t) (momentum order) into `out`.
    fn multipliers(&self, t: f64, out: &mut [f64]);
    /// The on-site cubic coefficient c(t).
    fn cubic(&self, _t: f64) -> f64 {
        0.0
    }
    /// Whether c ≡ 0 and there is no network (then the generated law is
    /// Gaussian and known exactly).
    fn is_linear(&self) -> bool {
        true
    }
    /// Adds the score's part beyond M x + c x³ (a local network, if any) at
    /// time t to `s` and returns its exact divergence Σ_i ∂/∂x_i (0 when
    /// there is none).
    fn add_network(&self, _t: f64, _x: &[f64], _s: &mut [f64], _work: &mut NetWork) -> f64 {
        0.0
    }
}

/// The parametrization of the multipliers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    /// m_k = a_k.
    OneLayer,
    /// m_k = b_k c_k, initialized at b = −c = `init`.
    TwoLayer {
        /// Initial |b| = |c| (> 0; 0 is a saddle gradient descent never leaves).
        init: f64,
    },
    /// Reflection-symmetric periodic convolution of range `range`.
    Local {
        /// R ≥ 0, with 2R + 1 ≤ every extent.
        range: usize,
        /// The convolution is the inverse propagator K of a Gaussian field,
        /// m_k(t) = −K_k/(α_t² + σ_t² K_k) (see the module docs).
        #[serde(default, skip_serializing_if = "is_false")]
        gaussian: bool,
    },
    /// The local convolution plus an on-site cubic term c x_i³ (one more
    /// parameter per level): the form of the φ⁴ score −∂S/∂φ itself.
    LocalCubic {
        /// R ≥ 0, with 2R + 1 ≤ every extent.
        range: usize,
    },
    /// Local-cubic plus a periodic convolutional network with one hidden
    /// layer of `channels` tanh channels and kernels of range `net_range`
    /// (docs/THEORY.md §6.11.7).
    LocalNet {
        /// R ≥ 0 of the linear convolution, with 2R + 1 ≤ every extent.
        range: usize,
        /// Hidden channels C (1 ..= 64).
        channels: usize,
        /// Range of both network kernels, with 2·net_range + 1 ≤ every extent.
        net_range: usize,
    },
}

impl Architecture {
    /// The plain local model of range R.
    pub const fn local(range: usize) -> Self {
        Architecture::Local { range, gaussian: false }
    }

    /// The Gaussian local model of range R (docs/THEORY.md §6.11.8).
    pub const fn gaussian_local(range: usize) -> Self {
        Architecture::Local { range, gaussian: true }
    }

    /// Whether this is a Gaussian local model.
    pub fn is_gaussian(&self) -> bool {
        matches!(self, Architecture::Local { gaussian: true, .. })
    }

    /// Whether the score is linear in the field (one-layer, two-layer, local).
    pub fn is_linear(&self) -> bool {
        matches!(
            self,
            Architecture::OneLayer | Architecture::TwoLayer { .. } | Architecture::Local { .. }
        )
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Largest number of hidden channels of [`Architecture::LocalNet`].
pub const MAX_CHANNELS: usize = 64;

/// Uniform time levels t_j = t_min + j (1 − t_min)/(n − 1), j = 0..n − 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeGrid {
    /// The first level (where sampling stops), 0 < t_min < 1.
    pub t_min: f64,
    /// Number of levels n ≥ 2.
    pub levels: usize,
}

impl TimeGrid {
    /// Checks 0 < t_min < 1 and n ≥ 2.
    ///
    /// # Errors
    /// Naming the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.t_min > 0.0 && self.t_min < 1.0) {
            return Err(ConfigError::new("grid.t_min", self.t_min, "must be in (0, 1)"));
        }
        if self.levels < 2 {
            return Err(ConfigError::new("grid.levels", self.levels, "must be >= 2"));
        }
        Ok(())
    }

    /// Level t_j.
    pub fn level(&self, j: usize) -> f64 {
        self.t_min + j as f64 * (1.0 - self.t_min) / (self.levels - 1) as f64
    }

    /// (j, u) with t = (1 − u) t_j + u t_{j+1}, t clamped to [t_min, 1].
    pub fn locate(&self, t: f64) -> (usize, f64) {
        let pos = ((t - self.t_min) / (1.0 - self.t_min)).clamp(0.0, 1.0) * (self.levels - 1) as f64;
        let j = (pos.floor() as usize).min(self.levels - 2);
        (j, pos - j as f64)
    }
}

/// A trainable score model: architecture, time grid and flat parameters
/// (level-major).
#[derive(Debug, Clone)]
pub struct ScoreModel {
    arch: Architecture,
    grid: TimeGrid,
    spectrum: Arc<Spectrum>,
    /// Σ_{δ∈o} cos(k·δ) per orbit o (orbit-major), Local only; for a
    /// Gaussian model Σ_{δ∈o} (cos(k·δ) − 1) on the non-zero orbits.
    orbit_cos: Vec<f64>,
    /// The forward process of a Gaussian local model (`None` otherwise):
    /// its multipliers at time t are −K(t)/(α_t² + σ_t² K(t)), with K
    /// interpolated linearly between the levels.
    schedule: Option<NoiseSchedule>,
    per_level: usize,
    /// Index of the cubic coefficient within a level (local-cubic, local-net).
    cubic_at: Option<usize>,
    /// The network of local-net and the index of its first weight in a level.
    net: Option<(LocalNet, usize)>,
    /// The parameters θ (level-major).
    pub params: Vec<f64>,
}

impl ScoreModel {
    /// A model at its initialization.
    ///
    /// # Errors
    /// A bad grid, a non-positive two-layer `init`, a range too long for
    /// the lattice, or a Gaussian local model (which needs
    /// [`ScoreModel::with_schedule`]).
    pub fn new(arch: Architecture, grid: TimeGrid, spectrum: Arc<Spectrum>) -> Result<Self, ConfigError> {
        if arch.is_gaussian() {
            return Err(ConfigError::new(
                "model.gaussian",
                true,
                "a Gaussian local model needs its noise schedule (ScoreModel::with_schedule)",
            ));
        }
        Self::build(arch, grid, spectrum, None)
    }

    /// A model at its initialization whose parametrization may depend on
    /// the forward process (a Gaussian local model; any other architecture
    /// ignores it).
    ///
    /// # Errors
    /// As [`ScoreModel::new`], without the schedule error.
    pub fn with_schedule(
        arch: Architecture,
        grid: TimeGrid,
        spectrum: Arc<Spectrum>,
        schedule: &NoiseSchedule,
    ) -> Result<Self, ConfigError> {
        Self::build(arch, grid, spectrum, Some(schedule))
    }

    fn build(
        arch: Architecture,
        grid: TimeGrid,
        spectrum: Arc<Spectrum>,
        schedule: Option<&NoiseSchedule>,
    ) -> Result<Self, ConfigError> {
        grid.validate()?;
        let v = spectrum.volume();
        let lattice = spectrum.lattice();
        let mut cubic_at = None;
        let mut net = None;
        let gaussian = arch.is_gaussian();
        let (per_level, orbit_cos) = match arch {
            Architecture::OneLayer => (v, Vec::new()),
            Architecture::TwoLayer { init } => {
                if !(init.is_finite() && init > 0.0) {
                    return Err(ConfigError::new("model.init", init, "must be finite and > 0"));
                }
                (2 * v, Vec::new())
            }
            Architecture::Local { range, .. }
            | Architecture::LocalCubic { range }
            | Architecture::LocalNet { range, .. } => {
                let shape = lattice.shape();
                if let Some(&l) = shape.iter().find(|&&l| 2 * range + 1 > l) {
                    return Err(ConfigError::new(
                        "model.range",
                        range,
                        format!("2·range + 1 must not exceed the lattice extent {l}"),
                    ));
                }
                let orbits = orbits(shape.len(), range);
                let mut table = vec![0.0; orbits.len() * v];
                let mut cos = vec![0.0; v];
                for (o, delta) in orbits.iter().enumerate() {
                    spectrum.cosines(delta, &mut cos);
                    let zero = delta.iter().all(|&d| d == 0);
                    let mult = if zero { 1.0 } else { 2.0 };
                    // A Gaussian model's kernel in the basis 1, Σ_{δ∈o}(cos k·δ − 1):
                    // K₀ = w₀ is the mass term itself, not a small
                    // difference of O(1) weights (near criticality a
                    // 1 % error of the weights would be a 100 % error of m²).
                    let shift = if gaussian && !zero { mult } else { 0.0 };
                    for (t, c) in table[o * v..(o + 1) * v].iter_mut().zip(&cos) {
                        *t = mult * c - shift;
                    }
                }
                let n = orbits.len();
                let extra = match arch {
                    Architecture::LocalCubic { .. } => {
                        cubic_at = Some(n);
                        1
                    }
                    Architecture::LocalNet {
                        channels, net_range, ..
                    } => {
                        if !(1..=MAX_CHANNELS).contains(&channels) {
                            return Err(ConfigError::new(
                                "model.channels",
                                channels,
                                format!("must be in 1..={MAX_CHANNELS}"),
                            ));
                        }
                        if let Some(&l) = shape.iter().find(|&&l| 2 * net_range + 1 > l) {
                            return Err(ConfigError::new(
                                "model.net_range",
                                net_range,
                                format!("2·net_range + 1 must not exceed the lattice extent {l}"),
                            ));
                        }
                        cubic_at = Some(n);
                        let layer = LocalNet::new(lattice, net_range, channels);
                        let extra = 1 + layer.num_weights();
                        net = Some((layer, n + 1));
                        extra
                    }
                    _ => 0,
                };
                (n + extra, table)
            }
        };
        let mut params = vec![0.0; per_level * grid.levels];
        // A Gaussian model starts at K ≡ e⁰ = 1, the prior's score (all
        // weights zero).
        let schedule = schedule.filter(|_| gaussian).copied();
        if let Architecture::TwoLayer { init } = arch {
            for level in params.chunks_mut(per_level) {
                level[..v].fill(init);
                level[v..].fill(-init);
            }
        }
        if let Some((layer, at)) = &net {
            // W1 small and fixed (the same at every level, from a constant
            // seed: the initialization stays deterministic), W2 = 0: the
            // network's output is zero, the model starts as local-cubic.
            let kk = layer.taps();
            let scale = 0.5 / (kk as f64).sqrt();
            let mut rng = Seed::new(0x17_6e_65_74).rng();
            let w1: Vec<f64> = (0..layer.channels() * kk)
                .map(|_| scale * rng.random_range(-1.0..1.0))
                .collect();
            for level in params.chunks_mut(per_level) {
                level[*at..*at + w1.len()].copy_from_slice(&w1);
            }
        }
        Ok(ScoreModel {
            arch,
            grid,
            spectrum,
            orbit_cos,
            schedule,
            per_level,
            cubic_at,
            net,
            params,
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The time grid.
    pub fn grid(&self) -> TimeGrid {
        self.grid
    }

    /// Parameters per time level.
    pub fn params_per_level(&self) -> usize {
        self.per_level
    }

    /// m_k of level j.
    pub fn level_multipliers(&self, j: usize, out: &mut [f64]) {
        let v = self.spectrum.volume();
        let theta = &self.params[j * self.per_level..(j + 1) * self.per_level];
        match self.arch {
            Architecture::OneLayer => out.copy_from_slice(theta),
            Architecture::TwoLayer { .. } => {
                for ((o, b), c) in out.iter_mut().zip(&theta[..v]).zip(&theta[v..]) {
                    *o = b * c;
                }
            }
            Architecture::Local { .. } | Architecture::LocalCubic { .. } | Architecture::LocalNet { .. } => {
                if let Some(schedule) = &self.schedule {
                    let noise = level_noise(schedule, self.grid.level(j));
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = gaussian_multiplier(noise, self.kernel(theta, k)).0;
                    }
                } else {
                    out.fill(0.0);
                    for (w, cos) in theta.iter().zip(self.orbit_cos.chunks(v)) {
                        for (o, c) in out.iter_mut().zip(cos) {
                            *o += w * c;
                        }
                    }
                }
            }
        }
    }

    /// A Gaussian local model's inverse propagator at momentum k for one
    /// level's parameters `theta`: K_k = e^{θ₀} + Σ_{o≥1} θ_o b_o(k). The
    /// mass term e^{θ₀} > 0 is on a log scale, so Adam's steps are relative
    /// and a mass m² ∝ 1/L² is reached as fast as any other; the kinetic
    /// basis b_o(k) = Σ_{δ∈o}(cos k·δ − 1) vanishes at k = 0.
    fn kernel(&self, theta: &[f64], k: usize) -> f64 {
        let v = self.spectrum.volume();
        theta[0].exp()
            + self.orbit_cos[v..]
                .chunks(v)
                .zip(&theta[1..])
                .map(|(b, w)| w * b[k])
                .sum::<f64>()
    }

    /// K_k(t) of a Gaussian local model, linear in t between the levels.
    fn kernel_at(&self, j: usize, u: f64, k: usize) -> f64 {
        let theta = |lvl: usize| &self.params[lvl * self.per_level..(lvl + 1) * self.per_level];
        (1.0 - u) * self.kernel(theta(j), k) + u * self.kernel(theta(j + 1), k)
    }

    /// Adds the gradient with respect to θ of a quantity whose gradient with
    /// respect to every level's multipliers is `mode_grad` (levels × V,
    /// level-major) to `grad`.
    pub fn chain(&self, mode_grad: &[f64], grad: &mut [f64]) {
        let v = self.spectrum.volume();
        for (j, g) in mode_grad.chunks(v).enumerate() {
            let theta = &self.params[j * self.per_level..(j + 1) * self.per_level];
            let out = &mut grad[j * self.per_level..(j + 1) * self.per_level];
            match self.arch {
                Architecture::OneLayer => {
                    for (o, gk) in out.iter_mut().zip(g) {
                        *o += gk;
                    }
                }
                Architecture::TwoLayer { .. } => {
                    let (ob, oc) = out.split_at_mut(v);
                    for k in 0..v {
                        ob[k] += g[k] * theta[v + k];
                        oc[k] += g[k] * theta[k];
                    }
                }
                Architecture::Local { .. } | Architecture::LocalCubic { .. } | Architecture::LocalNet { .. } => {
                    if self.schedule.is_some() {
                        // A Gaussian model's level gradients are with respect
                        // to K_j (see `distribute`): ∂K/∂θ₀ = e^{θ₀},
                        // ∂K/∂θ_o = b_o(k).
                        out[0] += theta[0].exp() * g.iter().sum::<f64>();
                        for (o, b) in out[1..].iter_mut().zip(self.orbit_cos[v..].chunks(v)) {
                            *o += g.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
                        }
                    } else {
                        for (o, cos) in out.iter_mut().zip(self.orbit_cos.chunks(v)) {
                            *o += g.iter().zip(cos).map(|(a, b)| a * b).sum::<f64>();
                        }
                    }
                }
            }
        }
    }

    /// Adds the gradient with respect to θ of a quantity whose gradient with
    /// respect to the cubic coefficient of level j is `cubic_grad[j]`.
    pub fn chain_cubic(&self, cubic_grad: &[f64], grad: &mut [f64]) {
        if let Some(at) = self.cubic_at {
            for (j, g) in cubic_grad.iter().enumerate() {
                grad[j * self.per_level + at] += g;
            }
        }
    }

    /// The network of a local-net model.
    pub fn network(&self) -> Option<&LocalNet> {
        self.net.as_ref().map(|(n, _)| n)
    }

    /// Writes the network weights at time t (interpolated between levels)
    /// into `work.weights`; returns (j, u, first weight index) or None
    /// without a network.
    fn network_weights(&self, t: f64, work: &mut NetWork) -> Option<(usize, f64, usize)> {
        let (layer, at) = self.net.as_ref()?;
        let nw = layer.num_weights();
        let (j, u) = self.grid.locate(t);
        let lo = &self.params[j * self.per_level + at..j * self.per_level + at + nw];
        let hi = &self.params[(j + 1) * self.per_level + at..(j + 1) * self.per_level + at + nw];
        work.weights.clear();
        work.weights
            .extend(lo.iter().zip(hi).map(|(a, b)| (1.0 - u) * a + u * b));
        Some((j, u, *at))
    }

    /// Adds scale · ∂(Σ_i r_i n(x, t)_i)/∂θ to `grad` (the network part of
    /// the score; nothing without a network), with `work` left by
    /// [`FieldScore::add_network`] at the same (t, x).
    pub fn network_gradient(&self, t: f64, r: &[f64], scale: f64, grad: &mut [f64], work: &mut NetWork) {
        let Some((layer, _)) = self.net.as_ref() else {
            return;
        };
        let Some((j, u, at)) = self.network_weights(t, work) else {
            return;
        };
        let nw = layer.num_weights();
        let mut wgrad = std::mem::take(&mut work.wgrad);
        wgrad.clear();
        wgrad.resize(nw, 0.0);
        let weights = std::mem::take(&mut work.weights);
        layer.backward(&weights, r, scale, &mut wgrad, work);
        work.weights = weights;
        for (lvl, wl) in [(j, 1.0 - u), (j + 1, u)] {
            let base = lvl * self.per_level + at;
            for (g, d) in grad[base..base + nw].iter_mut().zip(&wgrad) {
                *g += wl * d;
            }
        }
        work.wgrad = wgrad;
    }

    /// Adds w·g to the levels' mode gradients for a time t, split between
    /// the two neighbouring levels as in the interpolation.
    ///
    /// For a Gaussian local model the levels' variables are the kernels
    /// K_j, and g is first multiplied by ∂m_k/∂K_k(t) ([`ScoreModel::mode_factors`]).
    pub fn distribute(&self, t: f64, w: f64, g: &[f64], mode_grad: &mut [f64]) {
        let v = self.spectrum.volume();
        let (j, u) = self.grid.locate(t);
        let mut f = if self.schedule.is_some() {
            vec![0.0; v]
        } else {
            Vec::new()
        };
        let factors = self.mode_factors(t, &mut f);
        for (lvl, wl) in [(j, w * (1.0 - u)), (j + 1, w * u)] {
            for (k, (o, gk)) in mode_grad[lvl * v..(lvl + 1) * v].iter_mut().zip(g).enumerate() {
                *o += wl * if factors { gk * f[k] } else { *gk };
            }
        }
    }

    /// For a Gaussian local model writes ∂m_k/∂K_k at time t into `out`
    /// and returns true (the levels' gradient variables are the kernels
    /// K_j, which the time interpolation blends); false for every other
    /// model (the variables are the multipliers themselves).
    pub fn mode_factors(&self, t: f64, out: &mut [f64]) -> bool {
        self.gaussian_at(t, None, Some(out))
    }

    /// The multipliers m_k(t) into `m` and, for a Gaussian local model,
    /// ∂m_k/∂K_k(t) into `factors` (returns whether it did): one pass over
    /// K(t) for the DSM gradient, which needs both.
    pub fn multipliers_and_factors(&self, t: f64, m: &mut [f64], factors: &mut [f64]) -> bool {
        if self.gaussian_at(t, Some(&mut *m), Some(factors)) {
            return true;
        }
        self.multipliers(t, m);
        false
    }

    /// For a Gaussian local model, m_k(t) and/or ∂m_k/∂K_k(t) from the
    /// interpolated kernel K(t), mapped at t itself (exact between the levels
    /// whenever K is constant in t, as for a Gaussian field); false (and
    /// nothing written) for every other model.
    fn gaussian_at(&self, t: f64, mut m: Option<&mut [f64]>, mut factors: Option<&mut [f64]>) -> bool {
        let Some(schedule) = &self.schedule else {
            return false;
        };
        let noise = level_noise(schedule, t);
        let (j, u) = self.grid.locate(t);
        for k in 0..self.spectrum.volume() {
            let (mk, fk) = gaussian_multiplier(noise, self.kernel_at(j, u, k));
            if let Some(m) = m.as_deref_mut() {
                m[k] = mk;
            }
            if let Some(f) = factors.as_deref_mut() {
                f[k] = fk;
            }
        }
        true
    }
}

impl FieldScore for ScoreModel {
    fn spectrum(&self) -> &Spectrum {
        &self.spectrum
    }

    fn multipliers(&self, t: f64, out: &mut [f64]) {
        let v = self.spectrum.volume();
        if self.gaussian_at(t, Some(&mut *out), None) {
            return;
        }
        let (j, u) = self.grid.locate(t);
        self.level_multipliers(j, out);
        if u > 0.0 {
            // Blend in level j + 1 without a scratch buffer: one k at a time.
            let theta = &self.params[(j + 1) * self.per_level..(j + 2) * self.per_level];
            for (k, o) in out.iter_mut().enumerate() {
                let next = match self.arch {
                    Architecture::OneLayer => theta[k],
                    Architecture::TwoLayer { .. } => theta[k] * theta[v + k],
                    Architecture::Local { .. } | Architecture::LocalCubic { .. } | Architecture::LocalNet { .. } => {
                        self.orbit_cos.chunks(v).zip(theta).map(|(cos, w)| w * cos[k]).sum()
                    }
                };
                *o = (1.0 - u) * *o + u * next;
            }
        }
    }

    fn cubic(&self, t: f64) -> f64 {
        let Some(at) = self.cubic_at else {
            return 0.0;
        };
        let (j, u) = self.grid.locate(t);
        let c = |lvl: usize| self.params[lvl * self.per_level + at];
        (1.0 - u) * c(j) + u * c(j + 1)
    }

    fn is_linear(&self) -> bool {
        self.arch.is_linear()
    }

    fn add_network(&self, t: f64, x: &[f64], s: &mut [f64], work: &mut NetWork) -> f64 {
        let Some((layer, _)) = self.net.as_ref() else {
            return 0.0;
        };
        if self.network_weights(t, work).is_none() {
            return 0.0;
        }
        let weights = std::mem::take(&mut work.weights);
        let div = layer.forward(&weights, x, s, work);
        work.weights = weights;
        div
    }
}

/// (α_t², σ_t²) of the forward process.
fn level_noise(schedule: &NoiseSchedule, t: f64) -> (f64, f64) {
    (schedule.alpha(t).powi(2), schedule.sigma2(t))
}

/// m = −K/(α² + σ² K) and ∂m/∂K = −α²/(α² + σ² K)² for `noise` = (α², σ²):
/// the exact score multiplier of a Gaussian field with inverse propagator K.
fn gaussian_multiplier((a, s): (f64, f64), kernel: f64) -> (f64, f64) {
    let den = a + s * kernel;
    (-kernel / den, -a / (den * den))
}

/// The full score s(x, t) = M x + c x³ + n(x) written to `s`, and its exact
/// divergence Σ_i ∂s_i/∂x_i = tr M + 3c Σ_i x_i² + div n. Allocates its
/// buffers: for tests and diagnostics, not for hot loops.
pub fn score_and_divergence(score: &impl FieldScore, t: f64, x: &[f64], s: &mut [f64]) -> f64 {
    let v = score.spectrum().volume();
    let mut m = vec![0.0; v];
    score.multipliers(t, &mut m);
    score
        .spectrum()
        .apply(&m, x, s, &mut crate::spectrum::SpectrumWork::default());
    let c = score.cubic(t);
    for (sv, &xv) in s.iter_mut().zip(x) {
        *sv += c * xv * xv * xv;
    }
    let dn = score.add_network(t, x, s, &mut NetWork::default());
    m.iter().sum::<f64>() + 3.0 * c * x.iter().map(|a| a * a).sum::<f64>() + dn
}

/// Representatives of the orbits {δ, −δ} of offsets with |δ_μ| ≤ R, in a
/// fixed order: the zero offset first, then every δ whose first non-zero
/// coordinate is positive.
fn orbits(dim: usize, range: usize) -> Vec<Vec<i64>> {
    let r = range as i64;
    let side = (2 * range + 1) as u64;
    let mut out = vec![vec![0i64; dim]];
    for code in 0..side.pow(dim as u32) {
        let mut c = code;
        let delta: Vec<i64> = (0..dim)
            .map(|_| {
                let d = (c % side) as i64 - r;
                c /= side;
                d
            })
            .collect();
        if delta.iter().find(|&&d| d != 0).is_some_and(|&d| d > 0) {
            out.push(delta);
        }
    }
    out
}

/// Builds the spectrum of a lattice of extents `shape`.
///
/// # Errors
/// An impossible shape.
pub fn spectrum_of(shape: &[usize]) -> Result<Arc<Spectrum>, ConfigError> {
    Ok(Arc::new(Spectrum::new(Lattice::new(shape)?)))
}
