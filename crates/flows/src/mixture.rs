//! A mixture of normalizing flows, one per mode of the target
//! (docs/THEORY.md §4.11):
//!
//!   q(x) = Σₖ πₖ qₖ(x),   qₖ(x) = q_{fₖ}((x − μₖ) ⊘ sₖ) / Πᵢ sₖᵢ,
//!
//! i.e. component k draws x = μₖ + sₖ ⊙ fₖ(z), z ~ N(0, σ²I), with its own
//! flow fₖ (all of one architecture) and a fixed affine map (μₖ, sₖ) that
//! puts the flow's base on the k-th mode: the mode's mean and per-coordinate
//! spread, from a clustering of target samples. Each flow is trained on the
//! target seen through its affine map, [`ComponentTarget`]: p̃ₖ(y) =
//! p̃(μₖ + sₖ ⊙ y) Πᵢ sₖᵢ (the same Z), where reverse KL is mode-seeking
//! *within* a mode, which is what it should be.
//!
//! **The weights** πₖ are not trained by gradient: the reverse-KL optimum of
//! the weights with fixed components is πₖ ∝ Zₖ e^{−KLₖ}, biased by each
//! component's own error. They are estimated by importance sampling instead
//! ([`FlowMixture::estimate_weights`]): n draws from every component, the
//! balance-heuristic weights wᵢ = p̃(xᵢ)/q̄(xᵢ), q̄ = (1/K) Σⱼ qⱼ (unbiased
//! for ∫ f p̃ whatever the components), and the weights that minimize the
//! importance-sampling estimate of KL(p‖q_π) over π, the fixed point of
//! the EM update πⱼ ← Σᵢ wᵢ rᵢⱼ(π) / Σᵢ wᵢ, rᵢⱼ = πⱼ qⱼ(xᵢ)/q_π(xᵢ)
//! (population Monte Carlo's mixture-weight update, Cappé et al. 2008).
//! When the components do not overlap this is πₖ = Zₖ/Z, the target's mass
//! in mode k, whatever the components' shapes; their standard errors come
//! from the per-draw variance within each component's draws (delta method
//! for a ratio, stratified sampling). The ESS reported is that of the
//! balance-heuristic weights, 1/(K Σₖ πₖ²) at best (equal allocation).
//! Given the target's modes, the same draws also give the *mode* weights
//! Σᵢ wᵢ 1[xᵢ ∈ j] / Σᵢ wᵢ with errors — the target's, whatever the
//! components cover (a component on a mode boundary straddles two modes).
//!
//! **Full affine maps** (`affine = "laplace"`): xₖ = μₖ + Tₖ y with Tₖ
//! lower triangular, diagonal sₖ, so the flow's base sees a mode whose
//! correlations are already undone (a stiff chain or lattice field, where a
//! coupling flow from N(0, I) would first have to learn a strongly
//! correlated linear map). The trainer sets μₖ to a local maximum of p̃ and
//! TₖTₖᵀ to the inverse Hessian of −log p̃ there (the Laplace approximation;
//! `fieldflow_losses::laplace`). log|det Tₖ| = Σᵢ log sₖᵢ as before;
//! y = Tₖ⁻¹(x − μₖ) by forward substitution and ∇_y log p̃ₖ = Tₖᵀ ∇ₓ log p̃,
//! O(d²) per row (docs/THEORY.md §4.11).
//!
//! **Where the modes are** comes from target samples (k-means; see
//! `fieldflow_losses::mixture`) or, without samples, from the end points of
//! MALA walkers started broadly ([`Locate`]).
//!
//! **Parameters**, one flat vector: [θ₁ … θ_K, μ₁ … μ_K, log s₁ … log s_K,
//! log π₁ … log π_K], then with full maps the strictly lower triangles of
//! T₁ … T_K (row by row, d(d − 1)/2 each); the architecture is [`MixtureConfig`] (JSON
//! `{"mixture": {...}}` in a model file).
//!
//! **Draws** ([`fieldflow_core::Proposal`]): component labels from
//! categorical(π) with the uniforms of `seed.child(0)`, base draws from
//! `seed.child(1)`, x = μ_c + s_c ⊙ f_c(z); log q(x) = log Σₖ πₖ qₖ(x)
//! evaluated by every component's inverse pass. A mixture is a density,
//! not a bijection: neutra-MCMC and adaptive flow-MCMC do not apply.

use crate::config::FlowConfig;
use crate::flow::{Flow, FlowError};
use fieldflow_core::{ConfigError, Modes, Par, Proposal, ProposalDensity, Seed, Target};
use fieldflow_stats::{inverse_cdf, log_sum_exp, LogZReport};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// The architecture of a [`FlowMixture`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixtureConfig {
    /// Number of components K (one per mode).
    pub components: usize,
    /// Architecture of every component's flow.
    pub flow: FlowConfig,
    /// Draws per component of the importance-sampling weight estimate.
    #[serde(default = "default_weight_samples")]
    pub weight_samples: usize,
    /// Without training samples: find the modes with MALA walkers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locate: Option<Locate>,
    /// The components' affine maps (default diagonal, omitted from the
    /// serialized form when diagonal).
    #[serde(default, skip_serializing_if = "Affine::is_diagonal")]
    pub affine: Affine,
    /// With [`Affine::Laplace`] and neither samples nor walkers: Newton
    /// starts from the constant configurations c·𝟙, one c per component
    /// (e.g. `[1.0, -1.0]` for the two ordered phases of a φ⁴ field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts: Vec<f64>,
    /// With `starts`: the last component sits on the boundary between the
    /// modes, the hyperplane x_site = value (docs/THEORY.md §4.11), where a
    /// light mode's mass can lie when its own minimum carries little of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Boundary>,
}

/// The mode boundary x_site = value of [`MixtureConfig::boundary`] (for the
/// 1D φ⁴ chain, whose modes are the sign of the middle site:
/// `{ site = 49, value = 0.0 }` at N = 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boundary {
    /// The coordinate held fixed.
    pub site: usize,
    /// Its value on the boundary.
    #[serde(default)]
    pub value: f64,
}

impl std::fmt::Display for Boundary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{ site = {}, value = {} }}", self.site, self.value)
    }
}

/// The family of the components' affine maps x = μₖ + Tₖ y (module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Affine {
    /// Tₖ = diag(sₖ): the cluster's mean and per-coordinate spread.
    #[default]
    Diagonal,
    /// Tₖ lower triangular, TₖTₖᵀ the inverse Hessian of −log p̃ at the
    /// mode found from the cluster's mean (the Laplace approximation).
    Laplace,
}

impl Affine {
    /// Whether this is the default, [`Affine::Diagonal`].
    pub fn is_diagonal(&self) -> bool {
        *self == Affine::Diagonal
    }
}

/// Largest dimension a full affine map is allowed for (d(d − 1)/2
/// parameters per component and an O(d³) set-up).
pub const LAPLACE_MAX_DIM: usize = 4096;

/// MALA walkers that find the modes when no target samples exist: `walkers`
/// starts from N(0, `sigma`² I), `steps` MALA updates each with the step
/// adapted toward acceptance 0.574 all along; their end points are
/// clustered like samples. Only *where* they end matters: the weights come
/// from importance sampling, so walkers that fill the basins in the wrong
/// proportions do no harm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locate {
    /// Number of walkers.
    pub walkers: usize,
    /// Standard deviation of their starting points.
    pub sigma: f64,
    /// MALA updates per walker.
    pub steps: usize,
}

fn default_weight_samples() -> usize {
    4096
}

impl MixtureConfig {
    /// Checks the settings and the flow architecture.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `mixture.components` (0),
    /// `mixture.weight_samples` (< 2) or the flow's field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.components == 0 {
            return Err(ConfigError::new("mixture.components", 0, "must be ≥ 1"));
        }
        if self.weight_samples < 2 {
            return Err(ConfigError::new(
                "mixture.weight_samples",
                self.weight_samples,
                "must be ≥ 2",
            ));
        }
        if let Some(l) = &self.locate {
            if l.walkers < 2 * self.components {
                return Err(ConfigError::new(
                    "mixture.locate.walkers",
                    l.walkers,
                    "must be at least 2 per component",
                ));
            }
            if !(l.sigma.is_finite() && l.sigma > 0.0) {
                return Err(ConfigError::new(
                    "mixture.locate.sigma",
                    l.sigma,
                    "must be finite and > 0",
                ));
            }
        }
        if !self.starts.is_empty() {
            let bad = |why: &str| Err(ConfigError::new("mixture.starts", format!("{:?}", self.starts), why));
            if self.affine != Affine::Laplace {
                return bad("starts are where Newton begins: they need affine = \"laplace\"");
            }
            let expected = self.components - usize::from(self.boundary.is_some());
            if self.starts.len() != expected {
                return bad(if self.boundary.is_some() {
                    "one start per component but the boundary's (the last)"
                } else {
                    "one start per component"
                });
            }
            if self.starts.iter().any(|c| !c.is_finite()) {
                return bad("must be finite");
            }
            if self.locate.is_some() {
                return bad("give starts or locate walkers, not both");
            }
        }
        self.flow.validate()?;
        let d = self.flow.dim();
        if let Some(b) = self.boundary {
            let bad = |why: String| Err(ConfigError::new("mixture.boundary", b.to_string(), why));
            if self.starts.is_empty() {
                return bad("a boundary component needs mixture.starts for the modes beside it".into());
            }
            if self.components < 2 {
                return bad("needs at least one mode component besides the boundary's".into());
            }
            if b.site >= d {
                return bad(format!("site must be < d = {d}"));
            }
            if !b.value.is_finite() {
                return bad("value must be finite".into());
            }
        }
        if self.affine == Affine::Laplace && d > LAPLACE_MAX_DIM {
            return Err(ConfigError::new(
                "mixture.affine",
                "laplace",
                format!("full affine maps are limited to d ≤ {LAPLACE_MAX_DIM} (this flow has d = {d})"),
            ));
        }
        Ok(())
    }
}

/// Where each part of the flat parameter vector lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixtureLayout {
    /// Components K.
    pub k: usize,
    /// Dimension d.
    pub d: usize,
    /// Parameters of one component's flow.
    pub p: usize,
    /// Whether the affine maps are full lower-triangular ([`Affine::Laplace`]).
    pub full: bool,
}

impl MixtureLayout {
    /// θₖ.
    pub fn theta(&self, k: usize) -> std::ops::Range<usize> {
        k * self.p..(k + 1) * self.p
    }
    /// μₖ.
    pub fn shift(&self, k: usize) -> std::ops::Range<usize> {
        let o = self.k * self.p + k * self.d;
        o..o + self.d
    }
    /// log sₖ.
    pub fn log_scale(&self, k: usize) -> std::ops::Range<usize> {
        let o = self.k * (self.p + self.d) + k * self.d;
        o..o + self.d
    }
    /// log π₁ … log π_K.
    pub fn log_weights(&self) -> std::ops::Range<usize> {
        let o = self.k * (self.p + 2 * self.d);
        o..o + self.k
    }
    /// Entries of one strictly lower triangle (0 for diagonal maps).
    pub fn lower_len(&self) -> usize {
        if self.full {
            self.d * (self.d - 1) / 2
        } else {
            0
        }
    }
    /// The strictly lower triangle of Tₖ, row by row (empty for diagonal maps).
    pub fn lower(&self, k: usize) -> std::ops::Range<usize> {
        let o = self.k * (self.p + 2 * self.d + 1) + k * self.lower_len();
        o..o + self.lower_len()
    }
    /// Length of the flat vector.
    pub fn len(&self) -> usize {
        self.k * (self.p + 2 * self.d + 1 + self.lower_len())
    }
    /// Whether the vector is empty (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mixture of flows (module docs).
#[derive(Debug, Clone)]
pub struct FlowMixture {
    config: MixtureConfig,
    layout: MixtureLayout,
    flows: Vec<Flow>,
    params: Vec<f64>,
}

/// The importance-sampling estimate of the mixture weights
/// ([`FlowMixture::estimate_weights`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightEstimate {
    /// The weights πₖ (sum 1).
    pub weights: Vec<f64>,
    /// Their standard errors.
    pub errors: Vec<f64>,
    /// log Ẑ = log mean of the balance-heuristic weights.
    pub log_z: f64,
    /// Normalized ESS of the balance-heuristic weights.
    pub ess: f64,
    /// EM iterations used.
    pub iterations: usize,
    /// With the target's modes: the mode weights ŵⱼ = Σᵢ wᵢ 1[xᵢ ∈ j] / Σᵢ wᵢ
    /// of the same balance-heuristic draws, and their standard errors (the
    /// same stratified delta method). Unlike πₖ they are the target's
    /// weights whatever the components cover (a boundary component
    /// straddles two modes).
    pub mode_weights: Option<(Vec<f64>, Vec<f64>)>,
}

impl FlowMixture {
    /// A fresh mixture: flow k from `seed.child(k)`, μₖ = 0, sₖ = 1, equal
    /// weights.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(config: MixtureConfig, seed: Seed) -> Result<Self, ConfigError> {
        config.validate()?;
        let flows: Vec<Flow> = (0..config.components)
            .map(|k| config.flow.build(seed.child(k as u64)))
            .collect::<Result<_, _>>()?;
        let d = flows[0].dim();
        let layout = MixtureLayout {
            k: config.components,
            d,
            p: flows[0].n_params(),
            full: config.affine == Affine::Laplace,
        };
        let mut params = vec![0.0; layout.len()];
        for (k, f) in flows.iter().enumerate() {
            params[layout.theta(k)].copy_from_slice(f.params());
        }
        let lw = -(config.components as f64).ln();
        params[layout.log_weights()].fill(lw);
        Ok(FlowMixture {
            config,
            layout,
            flows,
            params,
        })
    }

    /// Rebuilds a mixture from its configuration and flat parameters.
    ///
    /// # Errors
    /// An invalid configuration or a parameter vector of the wrong length.
    pub fn from_parts(config: MixtureConfig, params: Vec<f64>) -> Result<Self, FlowError> {
        let mut m = FlowMixture::new(config, Seed::new(0))?;
        if params.len() != m.layout.len() {
            return Err(FlowError::ParamLength {
                expected: m.layout.len(),
                got: params.len(),
            });
        }
        m.set_params(&params);
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &MixtureConfig {
        &self.config
    }

    /// The parameter layout.
    pub fn layout(&self) -> MixtureLayout {
        self.layout
    }

    /// The flat parameter vector (module docs).
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// Replaces every parameter (and the component flows' copies).
    ///
    /// # Panics
    /// If `params` has the wrong length.
    pub fn set_params(&mut self, params: &[f64]) {
        assert_eq!(params.len(), self.layout.len(), "mixture parameter count");
        self.params.copy_from_slice(params);
        for (k, f) in self.flows.iter_mut().enumerate() {
            f.params_mut().copy_from_slice(&params[self.layout.theta(k)]);
        }
    }

    /// Component k's flow fₖ.
    pub fn flow(&self, k: usize) -> &Flow {
        &self.flows[k]
    }

    /// μₖ.
    pub fn shift(&self, k: usize) -> ArrayView1<'_, f64> {
        ArrayView1::from(&self.params[self.layout.shift(k)])
    }

    /// log sₖ.
    pub fn log_scale(&self, k: usize) -> ArrayView1<'_, f64> {
        ArrayView1::from(&self.params[self.layout.log_scale(k)])
    }

    /// log πₖ of every component.
    pub fn log_weights(&self) -> &[f64] {
        &self.params[self.layout.log_weights()]
    }

    /// Sets component k's affine map x = μₖ + sₖ ⊙ y.
    ///
    /// # Panics
    /// If a vector has the wrong length or a scale is not finite and > 0.
    pub fn set_affine(&mut self, k: usize, shift: ArrayView1<f64>, scale: ArrayView1<f64>) {
        assert!(scale.iter().all(|s| s.is_finite() && *s > 0.0), "scales must be > 0");
        let l = self.layout;
        for (p, v) in self.params[l.shift(k)].iter_mut().zip(shift) {
            *p = *v;
        }
        for (p, v) in self.params[l.log_scale(k)].iter_mut().zip(scale) {
            *p = v.ln();
        }
    }

    /// Sets component k's full affine map x = μₖ + T y from a lower
    /// triangular `t` (its upper triangle is ignored).
    ///
    /// # Panics
    /// If the mixture's maps are diagonal, a shape is wrong or a diagonal
    /// entry is not finite and > 0.
    pub fn set_affine_full(&mut self, k: usize, shift: ArrayView1<f64>, t: ArrayView2<f64>) {
        let l = self.layout;
        assert!(l.full, "the mixture's affine maps are diagonal");
        assert_eq!(t.dim(), (l.d, l.d), "T must be d × d");
        self.set_affine(k, shift, t.diag());
        let lower = &mut self.params[l.lower(k)];
        let mut o = 0;
        for i in 1..l.d {
            lower[o..o + i].copy_from_slice(&t.row(i).as_slice().expect("standard layout")[..i]);
            o += i;
        }
    }

    /// Component k's affine map (a copy, for [`ComponentTarget`] and the
    /// set-up's data).
    pub fn affine_map(&self, k: usize) -> AffineMap {
        AffineMap {
            shift: self.shift(k).to_owned(),
            scale: self.log_scale(k).mapv(f64::exp),
            lower: self.params[self.layout.lower(k)].to_vec(),
            log_det: self.log_det_scale(k),
        }
    }

    /// Sets the weights (normalized here).
    ///
    /// # Panics
    /// If a weight is negative or not finite, or all are 0.
    pub fn set_weights(&mut self, weights: &[f64]) {
        let total: f64 = weights.iter().sum();
        assert!(
            weights.iter().all(|w| w.is_finite() && *w >= 0.0) && total > 0.0,
            "weights must be ≥ 0 and not all 0"
        );
        let r = self.layout.log_weights();
        for (p, w) in self.params[r].iter_mut().zip(weights) {
            *p = (w / total).ln();
        }
    }

    /// Sets every weight to 1/K: the balance heuristic's q̄ = (1/K) Σₖ qₖ,
    /// which draws every component alike (importance sampling of light
    /// modes).
    pub fn set_equal_weights(&mut self) {
        self.set_weights(&vec![1.0; self.config.components]);
    }

    /// Σᵢ log sₖᵢ.
    fn log_det_scale(&self, k: usize) -> f64 {
        self.log_scale(k).sum()
    }

    /// Component k's draws: rows of `xs` ← μₖ + sₖ ⊙ fₖ(z), z from `seed`;
    /// `log_q` ← log qₖ(x).
    pub fn draw_component(
        &self,
        k: usize,
        seed: Seed,
        mut xs: ArrayViewMut2<f64>,
        mut log_q: ArrayViewMut1<f64>,
        par: Par,
    ) {
        let f = &self.flows[k];
        let mut zs = Array2::zeros(xs.raw_dim());
        f.sample_base_batch(seed, zs.view_mut(), par);
        let mut ys = Array2::zeros(xs.raw_dim());
        f.forward_batch(zs.view(), ys.view_mut(), log_q.view_mut(), par);
        let map = self.affine_map(k);
        for (y, mut x) in ys.rows().into_iter().zip(xs.rows_mut()) {
            map.to_x(y, x.as_slice_mut().expect("standard layout"));
        }
        log_q.mapv_inplace(|v| v - map.log_det);
    }

    /// log qₖ(x) of every row of `xs`.
    pub fn component_log_q(&self, k: usize, xs: ArrayView2<f64>, mut out: ArrayViewMut1<f64>, par: Par) {
        let map = self.affine_map(k);
        let ys = map.batch_to_y(xs);
        let mut zs = Array2::zeros(ys.raw_dim());
        self.flows[k].inverse_batch(ys.view(), zs.view_mut(), out.view_mut(), par);
        out.mapv_inplace(|v| v - map.log_det);
    }

    /// log qⱼ(xᵢ) for every row i and component j (n × K).
    pub fn component_log_qs(&self, xs: ArrayView2<f64>, par: Par) -> Array2<f64> {
        let mut lq = Array2::zeros((xs.nrows(), self.layout.k));
        for k in 0..self.layout.k {
            self.component_log_q(k, xs, lq.column_mut(k), par);
        }
        lq
    }

    /// The importance-sampling weights of the module docs:
    /// `n` = `weight_samples` draws per component (component k's from
    /// `seed.child(k)`), at most `max_iter` EM iterations (stop when no
    /// weight moves by more than 1e-12).
    ///
    /// # Errors
    /// If no draw has a finite weight (the components miss the target).
    pub fn estimate_weights(
        &self,
        target: &dyn Target,
        modes: Option<&dyn Modes>,
        seed: Seed,
        par: Par,
    ) -> Result<WeightEstimate, ConfigError> {
        let (k, d, n) = (self.layout.k, self.layout.d, self.config.weight_samples);
        let mut xs = Array2::zeros((k * n, d));
        let mut own = Array1::zeros(k * n);
        for c in 0..k {
            let rows = ndarray::Slice::from(c * n..(c + 1) * n);
            self.draw_component(
                c,
                seed.child(c as u64),
                xs.slice_axis_mut(Axis(0), rows),
                own.slice_axis_mut(Axis(0), rows),
                par,
            );
        }
        let lq = self.component_log_qs(xs.view(), par);
        let mut lp = Array1::zeros(k * n);
        target.log_prob_batch(xs.view(), lp.view_mut(), par);
        let ln_k = (k as f64).ln();
        // Balance-heuristic log weights log p̃ − log q̄ (a non-finite one is a
        // zero weight).
        let mut row_buf = vec![0.0; k];
        let log_w: Vec<f64> = lq
            .rows()
            .into_iter()
            .zip(lp.iter())
            .map(|(row, &p)| {
                row_buf.iter_mut().zip(row).for_each(|(b, l)| *b = *l);
                let v = p - (log_sum_exp(&row_buf) - ln_k);
                if v.is_finite() {
                    v
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let Ok(LogZReport { log_z, ess, .. }) = fieldflow_stats::log_z(&log_w) else {
            return Err(ConfigError::new(
                "mixture",
                "weights",
                "no component draw has a finite target density: the components miss the target",
            ));
        };
        let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = log_w.iter().map(|v| (v - m).exp()).collect();
        let sum_w: f64 = w.iter().sum();
        // EM on the weights.
        let mut pi = vec![1.0 / k as f64; k];
        let mut resp = Array2::<f64>::zeros((k * n, k));
        let mut iterations = 0;
        for it in 0..10_000 {
            iterations = it + 1;
            responsibilities(&lq, &pi, &mut resp);
            let mut new = vec![0.0; k];
            for (r, wi) in resp.rows().into_iter().zip(&w) {
                for j in 0..k {
                    new[j] += wi * r[j];
                }
            }
            new.iter_mut().for_each(|v| *v /= sum_w);
            let moved = new.iter().zip(&pi).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            pi = new;
            if moved < 1e-12 {
                break;
            }
        }
        responsibilities(&lq, &pi, &mut resp);
        let mean_w = sum_w / w.len() as f64;
        let errors = (0..k)
            .map(|j| stratified_ratio_error(&w, mean_w, k, n, pi[j], |i| resp[(i, j)]))
            .collect();
        let mode_weights = modes.map(|modes| {
            let label = modes.assign_batch(xs.view());
            let weights: Vec<f64> = (0..modes.n_modes())
                .map(|j| {
                    label
                        .iter()
                        .zip(&w)
                        .filter(|(l, _)| **l == j)
                        .map(|(_, wi)| wi)
                        .sum::<f64>()
                        / sum_w
                })
                .collect();
            let errors = (0..modes.n_modes())
                .map(|j| stratified_ratio_error(&w, mean_w, k, n, weights[j], |i| f64::from(u8::from(label[i] == j))))
                .collect();
            (weights, errors)
        });
        Ok(WeightEstimate {
            weights: pi,
            errors,
            log_z,
            ess,
            iterations,
            mode_weights,
        })
    }
}

/// The standard error of a self-normalized ratio r = Σ wᵢaᵢ / Σ wᵢ over
/// stratified draws (K components, n rows each, component-major; mean_w
/// the mean weight): delta
/// method with uᵢ = wᵢ(aᵢ − r), Var r ≈ Σₖ Varₖ(u)/(n K²) / mean(w)².
fn stratified_ratio_error(w: &[f64], mean_w: f64, k: usize, n: usize, r: f64, a: impl Fn(usize) -> f64) -> f64 {
    let var: f64 = (0..k)
        .map(|c| {
            let u: Vec<f64> = (c * n..(c + 1) * n).map(|i| w[i] * (a(i) - r)).collect();
            let m = u.iter().sum::<f64>() / n as f64;
            u.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64
        })
        .sum::<f64>()
        / (n * k * k) as f64;
    var.sqrt() / mean_w
}

/// rᵢⱼ = πⱼ qⱼ(xᵢ) / Σₗ πₗ qₗ(xᵢ) (rows with no finite term: uniform).
fn responsibilities(lq: &Array2<f64>, pi: &[f64], resp: &mut Array2<f64>) {
    let k = pi.len();
    let mut terms = vec![0.0; k];
    for (row, mut r) in lq.rows().into_iter().zip(resp.rows_mut()) {
        terms
            .iter_mut()
            .zip(row.iter().zip(pi))
            .for_each(|(t, (l, p))| *t = l + p.ln());
        let lse = log_sum_exp(&terms);
        if lse.is_finite() {
            for (rj, t) in r.iter_mut().zip(&terms) {
                *rj = (t - lse).exp();
            }
        } else {
            r.fill(1.0 / k as f64);
        }
    }
}

impl Proposal for FlowMixture {
    fn dim(&self) -> usize {
        self.layout.d
    }

    /// Labels from `seed.child(0)`, each component's rows from
    /// `seed.child(1).child(k)` (module docs).
    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, mut log_q: ArrayViewMut1<f64>, par: Par) {
        let n = xs.nrows();
        let pi: Vec<f64> = self.log_weights().iter().map(|l| l.exp()).collect();
        let mut rng = seed.child(0).rng();
        let labels: Vec<usize> = (0..n).map(|_| inverse_cdf(&pi, rng.random::<f64>())).collect();
        for k in 0..self.layout.k {
            let rows: Vec<usize> = (0..n).filter(|&i| labels[i] == k).collect();
            if rows.is_empty() {
                continue;
            }
            let mut xk = Array2::zeros((rows.len(), self.layout.d));
            let mut lk = Array1::zeros(rows.len());
            self.draw_component(k, seed.child(1).child(k as u64), xk.view_mut(), lk.view_mut(), par);
            for (r, &i) in rows.iter().enumerate() {
                xs.row_mut(i).assign(&xk.row(r));
            }
        }
        self.log_q_batch(xs.view(), log_q.view_mut(), par);
    }
}

impl ProposalDensity for FlowMixture {
    fn log_q_batch(&self, xs: ArrayView2<f64>, mut out: ArrayViewMut1<f64>, par: Par) {
        let lq = self.component_log_qs(xs, par);
        let lw = self.log_weights();
        let mut terms = vec![0.0; lw.len()];
        for (o, row) in out.iter_mut().zip(lq.rows()) {
            terms
                .iter_mut()
                .zip(row.iter().zip(lw))
                .for_each(|(t, (a, b))| *t = a + b);
            *o = log_sum_exp(&terms);
        }
    }
}

thread_local! {
    /// Per-thread buffer of x = μ + T y for [`ComponentTarget`]'s row methods.
    static POINT: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// One component's affine map x = μ + T y, T = diag(s) + the strictly lower
/// triangle `lower` (row by row; empty for a diagonal map).
#[derive(Debug, Clone, PartialEq)]
pub struct AffineMap {
    /// μ.
    pub shift: Array1<f64>,
    /// s, the diagonal of T.
    pub scale: Array1<f64>,
    /// The strictly lower triangle of T, row by row (empty: T diagonal).
    pub lower: Vec<f64>,
    /// log|det T| = Σᵢ log sᵢ.
    pub log_det: f64,
}

impl AffineMap {
    /// Row i of the strictly lower triangle (entries j < i).
    fn lower_row(&self, i: usize) -> &[f64] {
        if self.lower.is_empty() {
            &[]
        } else {
            let o = i * (i - 1) / 2;
            &self.lower[o..o + i]
        }
    }

    /// x ← μ + T y.
    pub fn to_x(&self, y: ArrayView1<f64>, x: &mut [f64]) {
        for (i, xi) in x.iter_mut().enumerate() {
            let off: f64 = self.lower_row(i).iter().zip(y.iter()).map(|(t, v)| t * v).sum();
            *xi = self.shift[i] + self.scale[i] * y[i] + off;
        }
    }

    /// y ← T⁻¹(x − μ) (forward substitution).
    pub fn to_y(&self, x: ArrayView1<f64>, y: &mut [f64]) {
        for i in 0..y.len() {
            let off: f64 = self.lower_row(i).iter().zip(y.iter()).map(|(t, v)| t * v).sum();
            y[i] = (x[i] - self.shift[i] - off) / self.scale[i];
        }
    }

    /// g ← Tᵀ g (a score in x to a score in y).
    pub fn pull_score(&self, mut g: ArrayViewMut1<f64>) {
        // Row j of Tᵀ g uses g_i for i ≥ j only: ascending j reads only
        // entries not yet overwritten.
        for j in 0..g.len() {
            let mut v = self.scale[j] * g[j];
            if !self.lower.is_empty() {
                for i in j + 1..g.len() {
                    v += self.lower[i * (i - 1) / 2 + j] * g[i];
                }
            }
            g[j] = v;
        }
    }

    /// Rows of `xs` mapped to y.
    pub fn batch_to_y(&self, xs: ArrayView2<f64>) -> Array2<f64> {
        let mut ys = Array2::zeros(xs.raw_dim());
        for (x, mut y) in xs.rows().into_iter().zip(ys.rows_mut()) {
            self.to_y(x, y.as_slice_mut().expect("standard layout"));
        }
        ys
    }

    /// Rows of `ys` mapped to x.
    pub fn batch_to_x(&self, ys: ArrayView2<f64>) -> Array2<f64> {
        let mut xs = Array2::zeros(ys.raw_dim());
        for (y, mut x) in ys.rows().into_iter().zip(xs.rows_mut()) {
            self.to_x(y, x.as_slice_mut().expect("standard layout"));
        }
        xs
    }
}

/// The target seen by component k's flow (module docs):
/// log p̃ₖ(y) = log p̃(μ + T y) + log|det T|, ∇ log p̃ₖ(y) = Tᵀ ∇ log p̃(x).
pub struct ComponentTarget<'a> {
    target: &'a dyn Target,
    map: AffineMap,
}

impl<'a> ComponentTarget<'a> {
    /// Component k of `mixture` on `target`.
    pub fn new(target: &'a dyn Target, mixture: &FlowMixture, k: usize) -> Self {
        ComponentTarget {
            target,
            map: mixture.affine_map(k),
        }
    }
}

impl Target for ComponentTarget<'_> {
    fn dim(&self) -> usize {
        self.target.dim()
    }

    fn log_prob(&self, y: ArrayView1<f64>) -> f64 {
        POINT.with(|b| {
            let mut b = b.borrow_mut();
            b.resize(y.len(), 0.0);
            self.map.to_x(y, &mut b);
            self.target.log_prob(ArrayView1::from(&b[..])) + self.map.log_det
        })
    }

    fn log_prob_and_score(&self, y: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let lp = POINT.with(|b| {
            let mut b = b.borrow_mut();
            b.resize(y.len(), 0.0);
            self.map.to_x(y, &mut b);
            self.target
                .log_prob_and_score(ArrayView1::from(&b[..]), score.view_mut())
        });
        self.map.pull_score(score);
        lp + self.map.log_det
    }

    fn log_z(&self) -> Option<f64> {
        self.target.log_z()
    }

    fn describe(&self) -> String {
        format!("{} seen through x = μ + T y", self.target.describe())
    }

    fn log_prob_batch(&self, ys: ArrayView2<f64>, mut out: ArrayViewMut1<f64>, par: Par) {
        let xs = self.map.batch_to_x(ys);
        self.target.log_prob_batch(xs.view(), out.view_mut(), par);
        out.mapv_inplace(|v| v + self.map.log_det);
    }

    fn log_prob_and_score_batch(
        &self,
        ys: ArrayView2<f64>,
        mut scores: ArrayViewMut2<f64>,
        mut out: ArrayViewMut1<f64>,
        par: Par,
    ) {
        let xs = self.map.batch_to_x(ys);
        self.target
            .log_prob_and_score_batch(xs.view(), scores.view_mut(), out.view_mut(), par);
        for row in scores.rows_mut() {
            self.map.pull_score(row);
        }
        out.mapv_inplace(|v| v + self.map.log_det);
    }
}
