//! The LRDS sampler: the reference's exact reverse kernels shifted by a
//! learned drift correction, with exact path importance weights
//! (docs/THEORY.md §6.14.3–4).
//!
//! **Grid.** t_k = k T/K, k = 0…K. Path x_K → x_{K−1} → … → x₀:
//! x_K ~ p_T^ref (exact), then for k = K…1
//! x_{k−1} = y + γ_k h_θ(x_k, t_k),  y ~ p^ref(· | x_k)  (the exact reverse
//! kernel of the reference, [`GmmReference`]), γ_k = ∫_{t_{k−1}}^{t_k} β =
//! −2 log(α_{t_k}/α_{t_{k−1}}). In continuous time this is the reverse SDE
//! with drift ½βx + β∇log p_t^ref + β h_θ: the reference's backward drift
//! plus β times a learned correction of the score. The exact reference
//! kernel (instead of an Euler step with the reference score) makes h = 0
//! an exact sampler of μ_ref on any grid, so only the learned part carries
//! a discretization error, and the importance weights correct it.
//!
//! **Path density.** p^θ(x_{k−1} | x_k) = p^ref(x_{k−1} − γ_k h_θ(x_k, t_k) | x_k),
//! P^θ(x_{0:K}) = p_T^ref(x_K) Πₖ p^θ(x_{k−1} | x_k). The target path law is
//! Q(x_{0:K}) = π̃(x₀) Πₖ q(x_k | x_{k−1}) with the exact forward (OU)
//! transitions q = N(a_k x_{k−1}, (1 − a_k²) I), a_k = α_{t_k}/α_{t_{k−1}}; its
//! mass is Z. The log importance weight of a path,
//! log w = log π̃(x₀) + Σ log q − log p_T^ref(x_K) − Σ log p^θ,
//! satisfies E_{P^θ}[w] = Z for every θ. As a [`Proposal`] the model hands
//! out log q_path = log π̃(x₀) − log w (no target evaluation needed), so
//! importance sampling and IMH on the path are exact.
//!
//! **Parts** (`per_component`, §6.14.7). One part per reference component
//! instead of one for the whole reference: part j's chain uses component
//! j's own Gaussian kernels and its own correction network. A proposal
//! draws part j with the reference weight πⱼ and is weighted with the
//! mixture's path density P = Σⱼ πⱼ Pⱼ, evaluated by running every part's
//! network on the path (the balance heuristic; exact for any corrections).
//! Training draws path i from the (i mod T)-th of the T trained parts and
//! needs only the own part's density.
//!
//! **Correction network.** h_θ(x, t) = MLP([x, cos(πft/T), sin(πft/T)]_{f=1…F})
//! ([`Net::mlp`], SiLU, last layer zero so training starts at the
//! reference). Time enters as a few smooth features shared by all grid
//! levels rather than as parameters per level: the parameter count does not
//! grow with K and neighbouring levels share what they learn.

use crate::reference::GmmReference;
use fieldflow_core::{ConfigError, Modes, Par, Proposal, Rng, Seed, Target};
use fieldflow_diffusion::NoiseSchedule;
use fieldflow_flows::{Act, Boundary, Locate, Net, NetTape, Scratch};
use fieldflow_imh::isir_select;
use fieldflow_losses::clusters::walker_ends;
use fieldflow_losses::laplace::laplace_from_starts;
use fieldflow_slips::{fit_mixture, EmFit, EmSettings};
use fieldflow_stats::log_sum_exp;
use fieldflow_targets::{Covariance, GaussianMixture};
use ndarray::{s, Array1, Array2, ArrayViewMut1, ArrayViewMut2};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The sampler's settings (`[lrds]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrdsConfig {
    /// Reverse steps K.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// End time T of the forward process.
    #[serde(default = "default_t_end")]
    pub t_end: f64,
    /// Forward process (variance preserving).
    #[serde(default)]
    pub schedule: NoiseSchedule,
    /// Hidden widths of the correction network.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Time frequencies F of the network's input (2F features).
    #[serde(default = "default_frequencies")]
    pub frequencies: usize,
    /// Mixture components K of the reference (default: the target's number
    /// of modes when it has them, else 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<usize>,
    /// MALA walkers whose end points the reference is fitted to.
    #[serde(default = "default_walkers")]
    pub walkers: usize,
    /// Standard deviation of the walkers' Gaussian start N(0, σ² I).
    #[serde(default = "default_walker_sigma")]
    pub walker_sigma: f64,
    /// MALA updates per walker (step tuned toward acceptance 0.574).
    #[serde(default = "default_walker_steps")]
    pub walker_steps: usize,
    /// Ridge ε added to every fitted covariance (EM).
    #[serde(default = "default_ridge")]
    pub em_ridge: f64,
    /// EM restarts from independent seedings (the fit of highest likelihood
    /// is kept).
    #[serde(default = "default_restarts")]
    pub em_restarts: usize,
    /// Instead of walkers and EM: the reference from Laplace approximations
    /// (docs/THEORY.md §6.14.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laplace: Option<LaplaceReference>,
    /// One correction per reference component instead of one for the
    /// whole reference: part j starts from component j alone, is trained
    /// on its own paths against π̃ ρⱼ (ρⱼ the component's responsibility),
    /// and the proposal is the parts' mixture with the reference's weights
    /// and its exact path density (docs/THEORY.md §6.14.7).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_component: bool,
    /// With `per_component`: components whose correction is not trained
    /// (h = 0, the component's exact reverse chain), e.g. a boundary
    /// component that must keep sampling both sides of the boundary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen: Vec<usize>,
    /// The fitted reference (written by [`LrdsConfig::fit_reference`]; given,
    /// it is used as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<FittedReference>,
}

/// A reference made of Laplace approximations (`[lrds] laplace = { starts
/// = [1.0, -1.0], boundary = { site = 49, value = 0.0 } }`): one Gaussian
/// N(x*, H⁻¹) per mode Newton reaches from c·𝟙, one per start c, and with
/// `boundary` a last one on the mode boundary x_site = value
/// ([`fieldflow_losses::laplace::laplace_from_starts`], as the flow
/// mixture's `mixture.starts`); equal weights (docs/THEORY.md §6.14.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaplaceReference {
    /// The constants c of the Newton starts c·𝟙, one per mode.
    pub starts: Vec<f64>,
    /// A last component on this mode boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Boundary>,
}

/// A Gaussian mixture as plain data (the reference stored in a model file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedReference {
    /// Weights πⱼ.
    pub weights: Vec<f64>,
    /// Means mⱼ.
    pub means: Vec<Vec<f64>>,
    /// Covariances Σⱼ (rows).
    pub covs: Vec<Vec<Vec<f64>>>,
}

impl FittedReference {
    /// The mixture.
    ///
    /// # Errors
    /// Inconsistent sizes or a covariance that is not positive definite
    /// (named `reference.…`).
    pub fn mixture(&self) -> Result<GaussianMixture, ConfigError> {
        let mut covs = Vec::with_capacity(self.covs.len());
        for (j, c) in self.covs.iter().enumerate() {
            let d = c.len();
            if c.iter().any(|r| r.len() != d) {
                return Err(ConfigError::new(format!("reference.covs[{j}]"), "…", "is not square"));
            }
            let flat: Vec<f64> = c.iter().flatten().copied().collect();
            covs.push(Covariance::Full(Array2::from_shape_vec((d, d), flat).expect("square")));
        }
        GaussianMixture::new(
            self.means.iter().map(|m| Array1::from(m.clone())).collect(),
            covs,
            self.weights.clone(),
        )
        .map_err(|mut e| {
            e.field = format!("reference.{}", e.field);
            e
        })
    }

    /// The plain data of a fit.
    pub fn from_fit(fit: &EmFit) -> Self {
        FittedReference {
            weights: fit.weights.clone(),
            means: fit.means.iter().map(|m| m.to_vec()).collect(),
            covs: fit
                .covs
                .iter()
                .map(|c| c.rows().into_iter().map(|r| r.to_vec()).collect())
                .collect(),
        }
    }
}

fn default_steps() -> usize {
    32
}
fn default_t_end() -> f64 {
    1.0
}
fn default_hidden() -> Vec<usize> {
    vec![64, 64]
}
fn default_frequencies() -> usize {
    2
}
fn default_walkers() -> usize {
    1024
}
fn default_walker_sigma() -> f64 {
    3.0
}
fn default_walker_steps() -> usize {
    200
}
fn default_ridge() -> f64 {
    1e-6
}
fn default_restarts() -> usize {
    5
}

impl Default for LrdsConfig {
    fn default() -> Self {
        LrdsConfig {
            steps: default_steps(),
            t_end: default_t_end(),
            schedule: NoiseSchedule::default(),
            hidden: default_hidden(),
            frequencies: default_frequencies(),
            components: None,
            walkers: default_walkers(),
            walker_sigma: default_walker_sigma(),
            walker_steps: default_walker_steps(),
            em_ridge: default_ridge(),
            em_restarts: default_restarts(),
            laplace: None,
            per_component: false,
            frozen: Vec::new(),
            reference: None,
        }
    }
}

impl LrdsConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// A one-line error naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.steps == 0 {
            return Err(ConfigError::new("steps", 0, "must be >= 1"));
        }
        if !(self.t_end.is_finite() && self.t_end > 0.0) {
            return Err(ConfigError::new("t_end", self.t_end, "must be finite and > 0"));
        }
        if let Some(w) = self.hidden.iter().find(|&&w| w == 0) {
            return Err(ConfigError::new("hidden", w, "every width must be >= 1"));
        }
        if self.components == Some(0) {
            return Err(ConfigError::new("components", 0, "must be >= 1"));
        }
        if self.walkers == 0 {
            return Err(ConfigError::new("walkers", 0, "must be >= 1"));
        }
        if self.em_restarts == 0 {
            return Err(ConfigError::new("em_restarts", 0, "must be >= 1"));
        }
        if !(self.walker_sigma.is_finite() && self.walker_sigma > 0.0) {
            return Err(ConfigError::new(
                "walker_sigma",
                self.walker_sigma,
                "must be finite and > 0",
            ));
        }
        if !(self.em_ridge.is_finite() && self.em_ridge >= 0.0) {
            return Err(ConfigError::new("em_ridge", self.em_ridge, "must be finite and >= 0"));
        }
        if !self.frozen.is_empty() && !self.per_component {
            return Err(ConfigError::new(
                "frozen",
                format!("{:?}", self.frozen),
                "only with per_component = true",
            ));
        }
        if let Some(l) = &self.laplace {
            let starts = format!("{:?}", l.starts);
            if l.starts.is_empty() {
                return Err(ConfigError::new("laplace.starts", starts, "needs at least one start"));
            }
            if l.starts.iter().any(|c| !c.is_finite()) {
                return Err(ConfigError::new("laplace.starts", starts, "must be finite"));
            }
            let k = l.starts.len() + usize::from(l.boundary.is_some());
            if self.components.is_some_and(|c| c != k) {
                return Err(ConfigError::new(
                    "components",
                    self.components.unwrap_or(0),
                    format!("the laplace reference has {k} (one per start, and the boundary's)"),
                ));
            }
            if let Some(b) = l.boundary.filter(|b| !b.value.is_finite()) {
                return Err(ConfigError::new(
                    "laplace.boundary",
                    b.to_string(),
                    "value must be finite",
                ));
            }
        }
        self.schedule.validate()
    }

    /// Fits the reference (unless one is given): with `laplace`, its
    /// Gaussians with equal weights (no randomness); else `walkers` MALA
    /// walkers from N(0, `walker_sigma`² I) ([`walker_ends`], stream
    /// `seed.child(0)`), then EM with `components` components and
    /// `em_restarts` seedings on their end points (stream `seed.child(1)`).
    ///
    /// # Errors
    /// Invalid settings, EM fails (named `em.…`), or Newton does (named
    /// `laplace…`).
    pub fn fit_reference(
        &mut self,
        target: &dyn Target,
        modes: Option<&dyn Modes>,
        seed: Seed,
    ) -> Result<(), ConfigError> {
        self.validate()?;
        if self.reference.is_some() {
            return Ok(());
        }
        if let Some(l) = &self.laplace {
            let gaussians = laplace_from_starts(target, target.dim(), &l.starts, l.boundary).map_err(|mut e| {
                if e.field == "boundary" {
                    e.field = "laplace.boundary".into();
                } else {
                    e.field = "laplace.starts".into();
                    e.value = format!("{:?}", l.starts);
                }
                e
            })?;
            let k = gaussians.len();
            self.reference = Some(FittedReference {
                weights: vec![1.0 / k as f64; k],
                means: gaussians.iter().map(|g| g.mode.to_vec()).collect(),
                covs: gaussians
                    .iter()
                    .map(|g| {
                        let c = g.t.dot(&g.t.t());
                        let c = (&c + &c.t()) * 0.5;
                        c.rows().into_iter().map(|r| r.to_vec()).collect()
                    })
                    .collect(),
            });
            return Ok(());
        }
        let locate = Locate {
            walkers: self.walkers,
            sigma: self.walker_sigma,
            steps: self.walker_steps,
        };
        let ends = walker_ends(target, &locate, seed.child(0));
        let components = self.components.unwrap_or(modes.map_or(2, |m| m.n_modes()));
        let settings = EmSettings {
            components,
            ridge: self.em_ridge,
            restarts: self.em_restarts,
            ..EmSettings::default()
        };
        let fit = fit_mixture(ends.view(), &settings, seed.child(1))?;
        self.reference = Some(FittedReference::from_fit(&fit));
        Ok(())
    }

    /// The untrained model on the fitted reference (h = 0, hidden layers
    /// from `seed`).
    ///
    /// # Errors
    /// Invalid settings, or no reference yet ([`LrdsConfig::fit_reference`]).
    pub fn build(&self, seed: Seed) -> Result<LrdsModel, ConfigError> {
        let Some(r) = &self.reference else {
            return Err(ConfigError::new("reference", "none", "fit it first (fit_reference)"));
        };
        let reference = GmmReference::new(&r.mixture()?, self.schedule)?;
        self.build_on(reference, seed)
    }

    /// The model with trained parameters `params` (all parts, in order).
    ///
    /// # Errors
    /// As [`LrdsConfig::build`], or a wrong number of parameters.
    pub fn rebuild(&self, params: Vec<f64>) -> Result<LrdsModel, ConfigError> {
        let mut m = self.build(Seed::new(0))?;
        if params.len() != m.params.len() {
            return Err(ConfigError::new(
                "params",
                params.len(),
                format!("the correction networks have {} parameters", m.params.len()),
            ));
        }
        m.params = params;
        Ok(m)
    }

    /// The untrained model on `reference` (h = 0); the hidden layers are
    /// initialized from `seed` (one stream for all parts, in order).
    ///
    /// # Errors
    /// Invalid settings.
    pub fn build_on(&self, reference: GmmReference, seed: Seed) -> Result<LrdsModel, ConfigError> {
        self.validate()?;
        if reference.schedule() != self.schedule {
            return Err(ConfigError::new(
                "schedule",
                format!("{:?}", self.schedule),
                "differs from the reference's",
            ));
        }
        let parts = if self.per_component {
            reference.components()?
        } else {
            vec![reference.clone()]
        };
        let mut frozen = self.frozen.clone();
        frozen.sort_unstable();
        frozen.dedup();
        if frozen.last().is_some_and(|&j| j >= parts.len()) || frozen.len() == parts.len() {
            return Err(ConfigError::new(
                "frozen",
                format!("{:?}", self.frozen),
                format!(
                    "must name some, not all, of the reference's {} components (0-based)",
                    parts.len()
                ),
            ));
        }
        let trained = (0..parts.len()).filter(|j| !frozen.contains(j)).collect();
        let log_weights = if self.per_component {
            reference.mixture().weights().iter().map(|w| w.ln()).collect()
        } else {
            vec![0.0]
        };
        let d = reference.dim();
        let net = Net::mlp(d + 2 * self.frequencies, &self.hidden, d, Act::Silu, Act::Identity);
        let np = net.n_params();
        let mut params = vec![0.0; np * parts.len()];
        let mut rng = seed.rng();
        for block in params.chunks_mut(np) {
            net.init_params(block, &mut rng, true);
        }
        let times = (0..=self.steps)
            .map(|k| self.t_end * k as f64 / self.steps as f64)
            .collect();
        Ok(LrdsModel {
            config: self.clone(),
            reference,
            parts,
            log_weights,
            trained,
            net,
            params,
            times,
        })
    }
}

/// A (trained or untrained) LRDS sampler: one part (the whole reference
/// and one correction), or with `per_component` one part per reference
/// component (module docs).
#[derive(Debug, Clone)]
pub struct LrdsModel {
    config: LrdsConfig,
    reference: GmmReference,
    /// The reference of each part: the whole mixture, or one component each.
    parts: Vec<GmmReference>,
    /// log πⱼ of each part in the proposal mixture (one part: 0).
    log_weights: Vec<f64>,
    /// The parts that are trained (all but the `frozen`).
    trained: Vec<usize>,
    net: Net,
    /// Parameters θ of the correction networks, part after part.
    pub params: Vec<f64>,
    times: Vec<f64>,
}

/// How paths are drawn ([`LrdsModel::sample_paths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathDraw {
    /// Draws of the proposal: each path's part drawn from the weights πⱼ
    /// (its own random stream), the mixture's path density computed, the
    /// states dropped.
    Proposal,
    /// Draws for the loss: path i from the (i mod T)-th of the T trained
    /// parts, every state kept, no mixture density (each part is trained
    /// on its own paths).
    Training,
}

/// A batch of paths: the end points x₀ and the parts of the log weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    /// x₀ of every path (rows).
    pub x0: Array2<f64>,
    /// Σₖ log q(x_k | x_{k−1}) − log p_T^ref(x_K) under the path's part
    /// (independent of θ).
    pub log_fixed: Array1<f64>,
    /// Σₖ log p^θ(x_{k−1} | x_k) of the path's part at the sampling
    /// parameters.
    pub log_kernel: Array1<f64>,
    /// The part each path was drawn from.
    pub part: Vec<usize>,
    /// log Σⱼ πⱼ Pⱼ(path) − log P_part(path): the proposal mixture's path
    /// density over the path's own part's (zero with one part; `None` for
    /// [`PathDraw::Training`] paths of several parts).
    pub log_balance: Option<Array1<f64>>,
    /// Every state when kept: row i(K+1) + k is x_k of path i.
    pub states: Option<Array2<f64>>,
}

impl Paths {
    /// log q_path = log π̃(x₀) − log w = log P(path) − Σ log q, with
    /// P the proposal's path density.
    ///
    /// # Panics
    /// For training paths of a model with several parts (no mixture density).
    pub fn log_q(&self) -> Array1<f64> {
        let balance = self
            .log_balance
            .as_ref()
            .expect("the mixture density of training paths was not computed");
        &self.log_kernel - &self.log_fixed + balance
    }
}

/// Per-chunk buffers of the path loops (allocated once per chunk and part).
struct ChunkWork {
    tape: NetTape,
    scratch: Scratch,
    x: Array2<f64>,
    prev: Array2<f64>,
    y: Vec<f64>,
    g: Vec<f64>,
    /// One reference scratch per part.
    rw: Vec<crate::reference::RefWork>,
}

/// What the walk of one chunk writes (rows of the chunk).
struct ChunkPaths {
    x0: Array2<f64>,
    fixed: Vec<f64>,
    kern: Vec<f64>,
    balance: Vec<f64>,
    states: Option<Array2<f64>>,
}

impl LrdsModel {
    /// The settings.
    pub fn config(&self) -> &LrdsConfig {
        &self.config
    }

    /// The reference.
    pub fn reference(&self) -> &GmmReference {
        &self.reference
    }

    /// The correction network (one architecture for every part).
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Number of parts: 1, or the reference's components with
    /// `per_component`.
    pub fn n_parts(&self) -> usize {
        self.parts.len()
    }

    /// Grid times t₀ = 0 < … < t_K = T.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Reverse steps K.
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// γ_k = ∫_{t_{k−1}}^{t_k} β = −2 log(α_{t_k}/α_{t_{k−1}}).
    pub fn gamma(&self, k: usize) -> f64 {
        let s = self.config.schedule;
        -2.0 * (s.alpha(self.times[k]) / s.alpha(self.times[k - 1])).ln()
    }

    /// The parameters of part `j` within `params`.
    fn part_params<'p>(&self, params: &'p [f64], j: usize) -> &'p [f64] {
        let np = self.net.n_params();
        &params[j * np..(j + 1) * np]
    }

    /// log ρ_{part}(x₀) of every path: the log-responsibility of the path's
    /// component under the reference at time 0 (zero with one part). Part j
    /// is trained against π̃ ρⱼ (module docs); Σⱼ ρⱼ = 1.
    pub fn log_share(&self, paths: &Paths) -> Array1<f64> {
        if self.parts.len() == 1 {
            return Array1::zeros(paths.x0.nrows());
        }
        let mut work = self.reference.work();
        paths
            .x0
            .rows()
            .into_iter()
            .zip(&paths.part)
            .map(|(x, &j)| self.reference.log_responsibilities(0.0, x, &mut work)[j])
            .collect()
    }

    fn chunk_work(&self, rows: usize) -> ChunkWork {
        let d = self.reference.dim();
        ChunkWork {
            tape: self.net.new_tape(rows, false),
            scratch: Scratch::default(),
            x: Array2::zeros((rows, d)),
            prev: Array2::zeros((rows, d)),
            y: vec![0.0; d],
            g: vec![0.0; d],
            rw: self.parts.iter().map(GmmReference::work).collect(),
        }
    }

    /// Writes [x, time features of t_k] of every row of `w.x` into the tape
    /// and runs the network with `params` (one part's): the output rows are
    /// h_θ(x, t_k).
    fn correction(&self, params: &[f64], k: usize, w: &mut ChunkWork) {
        let d = self.reference.dim();
        let tau = PI * self.times[k] / self.config.t_end;
        let mut input = w.tape.input_mut();
        for (mut row, x) in input.rows_mut().into_iter().zip(w.x.rows()) {
            row.slice_mut(s![..d]).assign(&x);
            for f in 0..self.config.frequencies {
                let a = tau * (f + 1) as f64;
                row[d + 2 * f] = a.cos();
                row[d + 2 * f + 1] = a.sin();
            }
        }
        self.net.forward(params, &mut w.tape, false, &mut w.scratch);
    }

    /// Draws `n` paths (path i from `seed.child(i)`, so the result does not
    /// depend on the chunking or the threads) as `draw` says.
    pub fn sample_paths(&self, n: usize, seed: Seed, par: Par, draw: PathDraw) -> Paths {
        let d = self.reference.dim();
        let kk = self.steps();
        let n_parts = self.parts.len();
        let keep = draw == PathDraw::Training;
        let chunks = par.map_chunks(n, |_, range| {
            let rows = range.len();
            let mut rngs: Vec<Rng> = range.clone().map(|i| seed.child(i as u64).rng()).collect();
            let part: Vec<usize> = range
                .clone()
                .zip(rngs.iter_mut())
                .map(|(i, rng)| match draw {
                    _ if n_parts == 1 => 0,
                    PathDraw::Training => self.trained[i % self.trained.len()],
                    PathDraw::Proposal => isir_select(&self.log_weights, rng.random::<f64>()),
                })
                .collect();
            let mut out = ChunkPaths {
                x0: Array2::zeros((rows, d)),
                fixed: vec![0.0; rows],
                kern: vec![0.0; rows],
                balance: vec![0.0; rows],
                states: keep.then(|| Array2::zeros((rows * (kk + 1), d))),
            };
            for j in 0..n_parts {
                let idx: Vec<usize> = (0..rows).filter(|&r| part[r] == j).collect();
                if !idx.is_empty() {
                    self.walk(j, &idx, &mut rngs, draw == PathDraw::Proposal, &mut out);
                }
            }
            (out, part)
        });
        let mut x0 = Array2::zeros((n, d));
        let mut log_fixed = Array1::zeros(n);
        let mut log_kernel = Array1::zeros(n);
        let mut log_balance = Array1::zeros(n);
        let mut parts = Vec::with_capacity(n);
        let mut states = keep.then(|| Array2::zeros((n * (kk + 1), d)));
        let mut first = 0;
        for (c, part) in chunks {
            let rows = c.x0.nrows();
            x0.slice_mut(s![first..first + rows, ..]).assign(&c.x0);
            log_fixed
                .slice_mut(s![first..first + rows])
                .assign(&Array1::from(c.fixed));
            log_kernel
                .slice_mut(s![first..first + rows])
                .assign(&Array1::from(c.kern));
            log_balance
                .slice_mut(s![first..first + rows])
                .assign(&Array1::from(c.balance));
            if let (Some(all), Some(st)) = (states.as_mut(), c.states) {
                all.slice_mut(s![first * (kk + 1)..(first + rows) * (kk + 1), ..])
                    .assign(&st);
            }
            parts.extend(part);
            first += rows;
        }
        Paths {
            x0,
            log_fixed,
            log_kernel,
            part: parts,
            log_balance: (draw == PathDraw::Proposal || n_parts == 1).then_some(log_balance),
            states,
        }
    }

    /// The reverse chain of part `j` for the chunk rows `idx` (their random
    /// streams in `rngs`), written into `out`; with `mixture` (several
    /// parts) every other part's path density is accumulated on the same
    /// states and `out.balance` gets log Σᵢ πᵢ Pᵢ − log Pⱼ.
    fn walk(&self, j: usize, idx: &[usize], rngs: &mut [Rng], mixture: bool, out: &mut ChunkPaths) {
        let d = self.reference.dim();
        let kk = self.steps();
        let t_end = self.times[kk];
        let n_parts = self.parts.len();
        let cross = mixture && n_parts > 1;
        let reference = &self.parts[j];
        let params = self.part_params(&self.params, j);
        let mut w = self.chunk_work(idx.len());
        // log Pᵢ(path) of every part i (only with `cross`).
        let mut log_p = Array2::<f64>::zeros((if cross { idx.len() } else { 0 }, n_parts));
        for (r, &row) in idx.iter().enumerate() {
            let x = w.x.row_mut(r).into_slice().expect("contiguous");
            let lp = reference.draw_marginal(t_end, &mut rngs[row], x, &mut w.rw[j]);
            out.fixed[row] = -lp;
            if cross {
                for (i, other) in self.parts.iter().enumerate() {
                    log_p[[r, i]] = if i == j {
                        lp
                    } else {
                        other.log_marginal(t_end, w.x.row(r), &mut w.rw[i])
                    };
                }
            }
        }
        for k in (1..=kk).rev() {
            if let Some(st) = out.states.as_mut() {
                for (r, &row) in idx.iter().enumerate() {
                    st.row_mut(row * (kk + 1) + k).assign(&w.x.row(r));
                }
            }
            self.correction(params, k, &mut w);
            let gamma = self.gamma(k);
            let a = self.config.schedule.alpha(self.times[k]) / self.config.schedule.alpha(self.times[k - 1]);
            let b2 = 1.0 - a * a;
            for (r, &row) in idx.iter().enumerate() {
                let xk = w.x.row(r);
                let xk = xk.as_slice().expect("contiguous");
                reference.prepare(self.times[k - 1], self.times[k], xk, &mut w.rw[j]);
                reference.draw_reverse(&mut w.rw[j], &mut rngs[row], &mut w.y);
                let lk = reference.log_reverse(&mut w.rw[j], &w.y, None);
                out.kern[row] += lk;
                if cross {
                    log_p[[r, j]] += lk;
                }
                // x_{k−1} = y + γ h; the forward transition q(x_k | x_{k−1}).
                let h = w.tape.output();
                let mut q = 0.0;
                for i in 0..d {
                    let prev = w.y[i] + gamma * h[[r, i]];
                    let e = xk[i] - a * prev;
                    q += e * e;
                    w.prev[[r, i]] = prev;
                }
                out.fixed[row] += -0.5 * (d as f64 * (LN_2PI + b2.ln()) + q / b2);
            }
            if cross {
                for (i, other) in self.parts.iter().enumerate().filter(|&(i, _)| i != j) {
                    self.correction(self.part_params(&self.params, i), k, &mut w);
                    for r in 0..idx.len() {
                        let xk = w.x.row(r);
                        other.prepare(
                            self.times[k - 1],
                            self.times[k],
                            xk.as_slice().expect("contiguous"),
                            &mut w.rw[i],
                        );
                        let h = w.tape.output();
                        for c in 0..d {
                            w.y[c] = w.prev[[r, c]] - gamma * h[[r, c]];
                        }
                        log_p[[r, i]] += other.log_reverse(&mut w.rw[i], &w.y, None);
                    }
                }
            }
            std::mem::swap(&mut w.x, &mut w.prev);
        }
        let mut terms = vec![0.0; n_parts];
        for (r, &row) in idx.iter().enumerate() {
            out.x0.row_mut(row).assign(&w.x.row(r));
            if let Some(st) = out.states.as_mut() {
                st.row_mut(row * (kk + 1)).assign(&w.x.row(r));
            }
            if cross {
                for ((t, lw), lp) in terms.iter_mut().zip(&self.log_weights).zip(log_p.row(r)) {
                    *t = lw + lp;
                }
                out.balance[row] = log_sum_exp(&terms) - log_p[[r, j]];
            }
        }
    }

    /// Σₖ log p^θ(x_{k−1} | x_k) of every kept path under its own part at
    /// parameters `params` (all parts, in order) and, with `coef`, the
    /// gradient Σᵢ coefᵢ ∇_θ Σₖ log p^θ(path i) (paths held fixed:
    /// ∂/∂h log p^θ = −γ_k ∇_y log p^ref(y | x_k) at y = x_{k−1} − γ_k h, then
    /// the network's reverse mode; each part's block from its own paths).
    ///
    /// # Panics
    /// If the paths were drawn without their states, or `coef` has the
    /// wrong length.
    pub fn kernel_terms(&self, params: &[f64], paths: &Paths, coef: Option<&[f64]>, par: Par) -> (Vec<f64>, Vec<f64>) {
        let n = paths.x0.nrows();
        if let Some(c) = coef {
            assert_eq!(c.len(), n, "one coefficient per path");
        }
        let np = self.net.n_params();
        let mut kern = vec![0.0; n];
        let mut grad = vec![0.0; if coef.is_some() { params.len() } else { 0 }];
        for j in 0..self.parts.len() {
            let idx: Vec<usize> = (0..n).filter(|&i| paths.part[i] == j).collect();
            let (k, g) = self.part_kernel_terms(j, self.part_params(params, j), paths, &idx, coef, par);
            for (&i, v) in idx.iter().zip(k) {
                kern[i] = v;
            }
            if coef.is_some() {
                grad[j * np..(j + 1) * np].copy_from_slice(&g);
            }
        }
        (kern, grad)
    }

    /// [`LrdsModel::kernel_terms`] of part `j` (parameters `params`) on the
    /// paths `idx`.
    fn part_kernel_terms(
        &self,
        j: usize,
        params: &[f64],
        paths: &Paths,
        idx: &[usize],
        coef: Option<&[f64]>,
        par: Par,
    ) -> (Vec<f64>, Vec<f64>) {
        let states = paths.states.as_ref().expect("paths drawn with their states");
        let d = self.reference.dim();
        let kk = self.steps();
        assert_eq!(states.nrows(), paths.x0.nrows() * (kk + 1), "paths of another grid");
        let reference = &self.parts[j];
        let np = self.net.n_params();
        let chunks = par.map_chunks(idx.len(), |_, range| {
            let rows = range.len();
            let mut w = self.chunk_work(rows);
            let mut kern = vec![0.0; rows];
            let mut grad = vec![0.0; if coef.is_some() { np } else { 0 }];
            let mut g_out = Array2::<f64>::zeros((rows, d));
            let mut g_in = Array2::<f64>::zeros((rows, self.net.n_in()));
            for k in (1..=kk).rev() {
                for (r, &i) in idx[range.clone()].iter().enumerate() {
                    w.x.row_mut(r).assign(&states.row(i * (kk + 1) + k));
                }
                self.correction(params, k, &mut w);
                let gamma = self.gamma(k);
                for (r, &i) in idx[range.clone()].iter().enumerate() {
                    let xk = w.x.row(r);
                    let xk = xk.as_slice().expect("contiguous");
                    reference.prepare(self.times[k - 1], self.times[k], xk, &mut w.rw[j]);
                    let prev = states.row(i * (kk + 1) + k - 1);
                    let h = w.tape.output();
                    for c in 0..d {
                        w.y[c] = prev[c] - gamma * h[[r, c]];
                    }
                    let want = coef.is_some();
                    kern[r] += reference.log_reverse(&mut w.rw[j], &w.y, want.then_some(&mut w.g[..]));
                    if let Some(c) = coef {
                        for e in 0..d {
                            g_out[[r, e]] = -c[i] * gamma * w.g[e];
                        }
                    }
                }
                if coef.is_some() {
                    self.net.backward(
                        params,
                        &w.tape,
                        g_out.view(),
                        None,
                        g_in.view_mut(),
                        None,
                        Some(&mut grad),
                        &mut w.scratch,
                    );
                }
            }
            (kern, grad)
        });
        let mut kern = Vec::with_capacity(idx.len());
        let mut grad = vec![0.0; if coef.is_some() { np } else { 0 }];
        for (k, g) in chunks {
            kern.extend(k);
            for (a, b) in grad.iter_mut().zip(&g) {
                *a += b;
            }
        }
        (kern, grad)
    }
}

impl Proposal for LrdsModel {
    fn dim(&self) -> usize {
        self.reference.dim()
    }

    /// x₀ of fresh paths with log q_path (module docs).
    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, mut log_q: ArrayViewMut1<f64>, par: Par) {
        let p = self.sample_paths(xs.nrows(), seed, par, PathDraw::Proposal);
        xs.assign(&p.x0);
        log_q.assign(&p.log_q());
    }
}
