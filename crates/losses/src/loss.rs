//! Training objectives and their hand-written gradients (REFERENCE §5).
//!
//! Notation: a flow q_θ with x = f_θ(z), z ~ N(0, σ²I); a target
//! p̃(x) = exp(−S(x)) with score s_p(x) = ∇ₓ log p̃(x); the flow's score
//! s_θ(x) = ∇ₓ log q_θ(x); an inverse temperature β ∈ (0, 1] from the
//! annealing schedule (training on p̃^β, whose score is β s_p). β multiplies
//! the *target* terms only; data never see β (they are samples of p, β = 1).
//! Every term is a mean over its batch; N is the batch's row count.
//!
//! # Forward KL (maximum likelihood on data D)
//! FKL = −(1/N) Σ_{x∈D} log q_θ(x).
//! Gradient: ∂θ FKL = Σᵢ wᵢ ∂θ log q_θ(xᵢ) with wᵢ = −1/N, one reverse sweep
//! of the density (inverse) pass ([`Flow::log_q_grad_batch`]).
//!
//! # Reverse KL (self-training, reparametrized)
//! RKL = (1/N) Σ_z [log q_θ(f_θ(z)) − β log p̃(f_θ(z))], z fixed.
//! With log q_θ(f_θ(z)) = log N(z) − log|det ∂f_θ/∂z|, the θ-dependence
//! enters through x = f_θ(z) and the log-determinant; the reverse sweep of
//! the sampling pass ([`Flow::forward_vjp_batch`]) is seeded with the
//! cotangents x̄ᵢ = −β s_p(xᵢ)/N and ∂L/∂log qᵢ = 1/N.
//! Its value is an estimate of KL(q‖p^β/Z_β) − log Z_β.
//!
//! # Score matching (Fisher divergence with the known target score)
//! SM = (1/N) Σ_x ‖s_θ(x) − β s_p(x)‖², over data x ∈ D (`sm_on = "data"`)
//! or over the flow's own samples x = f_θ(z) (`sm_on = "flow"`). Flow
//! samples are then treated as fixed points: no gradient flows through the
//! sampling path x = f_θ(z), only through s_θ at fixed x (the usual
//! "stop-gradient on samples" choice; it is the gradient of the Fisher
//! divergence at fixed sample locations).
//! Gradient: with rᵢ = stop_grad(2(s_θ(xᵢ) − β s_p(xᵢ))/N),
//! ∂θ SM = Σᵢ ∂θ ⟨rᵢ, s_θ(xᵢ)⟩, the reverse mode of the forward-mode
//! derivative of log q along rᵢ ([`ScoreModel::score_param_vjp_batch`]).
//!
//! # Weighted sum (ScoreNF and the presets)
//! L = w_fkl·FKL + w_rkl·RKL + w_sm·SM. The weights are folded into the
//! cotangents of each sweep (wᵢ = −w_fkl/N, x̄ᵢ = −w_rkl β s_p/N,
//! rᵢ = 2 w_sm (s_θ − β s_p)/N), so the gradient costs one sweep per active
//! term. Presets:
//!
//! | preset | w_fkl | w_rkl | w_sm | sm_on | needs data |
//! |---|---|---|---|---|---|
//! | `fkl` | 1 | 0 | 0 | — | yes |
//! | `rkl` | 0 | 1 | 0 | — | no |
//! | `sm` | 0 | 0 | 1 | data | yes |
//! | `scorenf` | 0 | 1 | [`SCORENF_DEFAULT_W_SM`] | data | yes |
//!
//! Explicit `w_fkl`, `w_rkl`, `w_sm`, `sm_on` override the preset's values;
//! without a preset an unspecified weight is 0.
//!
//! # The ScoreNF default weight (chosen by experiment)
//! ScoreNF (arXiv 2510.21330) adds w·SM on a small ensemble to RKL; its
//! weights are not published here, so w was scanned
//! (`cargo run --release -p fieldflow-losses --example scorenf_weight -- STEPS [mog4|phi4]`):
//! RKL + w·SM(data), same flow, seed, optimizer and step budget for every
//! w, on (a) MOG-4 with 100 exact samples (2000 steps) and (b) φ⁴ on a 4×4
//! lattice (m² = −4, λ = 8) with 100 HMC configurations (400 steps), judged
//! by the ESS of a fresh flow batch, the held-out NLL, the RKL estimate and
//! (MOG-4) the mode weights. Result: w = 1. See
//! [`SCORENF_DEFAULT_W_SM`] for the numbers and the choice.
//!
//! # By-products
//! The flow batch of RKL (or of SM on flow samples) comes with
//! log wᵢ = log p̃(xᵢ) − log q_θ(xᵢ) at β = 1, the importance log-weights
//! from which the trainer reports the ESS of the training batch.

use fieldflow_core::{ConfigError, Par, Target};
use fieldflow_flows::{Flow, Layer, ScoreLayer, ScoreModel};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Default weight of the score-matching term of the `scorenf` preset
/// (L = RKL + w·SM on data).
///
/// Chosen by the scan of the module docs: L = RKL + w·SM(data), 100
/// training samples, Adam, lr 2e-3 with cosine decay to 1e-5, batch 256,
/// clip 100, seed 1, the same flow initialization for every w; metrics of
/// the trained flow on 4096 fresh flow samples (ESS, IMH acceptance, RKL
/// estimate mean(log q − log p̃)) and 5000 held-out target samples (NLL).
///
/// (a) MOG-4, 100 exact samples, MLP couplings (8 layers, hidden [32, 32],
/// SiLU), 2000 steps; entropy of the target 3.42 nats; TV = total-variation
/// distance of the flow's mode weights to (0.1, 0.2, 0.3, 0.4):
///
/// | w | ESS | NLL | RKL est. | TV | modes collapsed |
/// |---|---|---|---|---|---|
/// | 0 (pure RKL) | 0.999 | 92.9 | 0.916 | 0.600 | 3 of 4 |
/// | 0.01 | 0.998 | 11.8 | 0.919 | 0.600 | 3 |
/// | 0.1 | 0.998 | 13.8 | 0.917 | 0.600 | 3 |
/// | 0.3 | 0.003 | 9.73 | 0.928 | 0.599 | 3 |
/// | 1 | 0.027 | 6.04 | 0.485 | 0.297 | 2 |
/// | 3 | 0.530 | 5.27 | 0.425 | 0.245 | 2 |
///
/// (pure RKL collapses onto the heaviest mode: RKL est. = −ln 0.4 = 0.916,
/// and its ESS ≈ 1 only measures the one mode it covers.)
///
/// (b) φ⁴ on 4×4, m² = −4, λ = 8 (⟨|M|⟩ = 0.17), 100 HMC configurations
/// (spacing 10 trajectories), 8 checkerboard couplings with periodic conv
/// conditioners (hidden [8, 8], SiLU, tanh outputs), 400 steps:
///
/// | w | ESS | NLL | IMH acc. | RKL est. |
/// |---|---|---|---|---|
/// | 0 (pure RKL) | 0.103 | 5.853 | 0.316 | −1.163 |
/// | 0.01 | 0.116 | 5.852 | 0.305 | −1.131 |
/// | 0.1 | 0.192 | 5.545 | 0.384 | −1.170 |
/// | 0.3 | 0.191 | 5.413 | 0.391 | −1.288 |
/// | 1 | 0.332 | 5.266 | 0.461 | −1.552 |
/// | 3 | 0.297 | 5.291 | 0.449 | −1.485 |
///
/// w = 1 is best on φ⁴ on every figure and second best on MOG-4 (where
/// w ≥ 1 is needed to start pulling mass into the modes RKL misses; w = 3
/// is a little better there but worse on φ⁴). Small w (≤ 0.1) behaves like
/// pure RKL. One seed per w and short budgets: differences of a few
/// hundredths in ESS are within noise; the trend in w is not. Score
/// matching is blind to the relative weights of well-separated modes, so
/// on MOG-4 no w fixes the weights within this budget: use annealing or
/// FKL for that.
pub const SCORENF_DEFAULT_W_SM: f64 = 1.0;

/// Named loss presets (see the module docs' table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossPreset {
    /// Maximum likelihood on data: FKL.
    Fkl,
    /// Self-training: RKL.
    Rkl,
    /// Score matching on data: SM.
    Sm,
    /// RKL + w·SM on data, w = [`SCORENF_DEFAULT_W_SM`].
    Scorenf,
}

/// Where the score-matching term is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmOn {
    /// On the data minibatch.
    #[default]
    Data,
    /// On the flow's own samples x = f(z), held fixed (no gradient through
    /// the sampling path).
    Flow,
}

/// The loss as configured (`[loss]` in a TOML config): a preset and/or
/// explicit weights.
///
/// ```toml
/// [loss]
/// preset = "scorenf"   # fkl | rkl | sm | scorenf
/// w_sm = 0.3           # optional override of the preset's weight
/// sm_on = "data"       # data | flow
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Named preset; `None` means all weights default to 0.
    #[serde(default)]
    pub preset: Option<LossPreset>,
    /// Weight of FKL (overrides the preset).
    #[serde(default)]
    pub w_fkl: Option<f64>,
    /// Weight of RKL (overrides the preset).
    #[serde(default)]
    pub w_rkl: Option<f64>,
    /// Weight of SM (overrides the preset).
    #[serde(default)]
    pub w_sm: Option<f64>,
    /// Where SM is evaluated (overrides the preset; default `data`).
    #[serde(default)]
    pub sm_on: Option<SmOn>,
}

impl LossConfig {
    /// The configuration of a named preset with no overrides.
    pub fn preset(p: LossPreset) -> Self {
        LossConfig {
            preset: Some(p),
            ..Default::default()
        }
    }

    /// Explicit weights, no preset.
    pub fn weights(w_fkl: f64, w_rkl: f64, w_sm: f64, sm_on: SmOn) -> Self {
        LossConfig {
            preset: None,
            w_fkl: Some(w_fkl),
            w_rkl: Some(w_rkl),
            w_sm: Some(w_sm),
            sm_on: Some(sm_on),
        }
    }

    /// Resolves the preset and overrides into a [`Loss`].
    ///
    /// # Errors
    /// `loss.w_fkl`, `loss.w_rkl` or `loss.w_sm` not finite or negative;
    /// `loss` when every weight is 0.
    pub fn validate(&self) -> Result<Loss, ConfigError> {
        let (f, r, s) = match self.preset {
            None => (0.0, 0.0, 0.0),
            Some(LossPreset::Fkl) => (1.0, 0.0, 0.0),
            Some(LossPreset::Rkl) => (0.0, 1.0, 0.0),
            Some(LossPreset::Sm) => (0.0, 0.0, 1.0),
            Some(LossPreset::Scorenf) => (0.0, 1.0, SCORENF_DEFAULT_W_SM),
        };
        let loss = Loss {
            w_fkl: self.w_fkl.unwrap_or(f),
            w_rkl: self.w_rkl.unwrap_or(r),
            w_sm: self.w_sm.unwrap_or(s),
            sm_on: self.sm_on.unwrap_or_default(),
        };
        for (name, w) in [
            ("loss.w_fkl", loss.w_fkl),
            ("loss.w_rkl", loss.w_rkl),
            ("loss.w_sm", loss.w_sm),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(ConfigError::new(name, w, "must be finite and >= 0"));
            }
        }
        if loss.w_fkl == 0.0 && loss.w_rkl == 0.0 && loss.w_sm == 0.0 {
            return Err(ConfigError::new(
                "loss",
                "w_fkl = w_rkl = w_sm = 0",
                "choose a preset or give at least one positive weight",
            ));
        }
        Ok(loss)
    }
}

/// A resolved loss L = w_fkl·FKL + w_rkl·RKL + w_sm·SM (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Weight of FKL.
    pub w_fkl: f64,
    /// Weight of RKL.
    pub w_rkl: f64,
    /// Weight of SM.
    pub w_sm: f64,
    /// Where SM is evaluated.
    pub sm_on: SmOn,
}

/// Errors of evaluating a loss on a batch (recoverable, unlike shape bugs).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// A term that needs data (FKL, SM on data) was given none.
    #[error("the {term} term needs training data, but none was given")]
    MissingData {
        /// `fkl` or `sm`.
        term: &'static str,
    },
    /// A term that needs flow samples (RKL, SM on flow samples) was given no base noise.
    #[error("the {term} term needs base noise z, but none was given")]
    MissingNoise {
        /// `rkl` or `sm`.
        term: &'static str,
    },
    /// Data or noise of the wrong width.
    #[error("{what} has {got} columns, the flow's dimension is {expected}")]
    Dimension {
        /// `data` or `noise`.
        what: &'static str,
        /// The flow's dimension.
        expected: usize,
        /// Columns supplied.
        got: usize,
    },
    /// An empty batch.
    #[error("{what} has no rows")]
    Empty {
        /// `data` or `noise`.
        what: &'static str,
    },
}

/// The inputs of one evaluation: a data minibatch and base draws z.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossInputs<'a> {
    /// Target samples (rows), for FKL and SM on data.
    pub data: Option<ArrayView2<'a, f64>>,
    /// Base draws z ~ N(0, σ²I) (rows), for RKL and SM on flow samples.
    pub noise: Option<ArrayView2<'a, f64>>,
}

/// Value, parts, gradient and by-products of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct LossReport {
    /// L = w_fkl·FKL + w_rkl·RKL + w_sm·SM (inactive terms contribute 0).
    pub total: f64,
    /// FKL = −mean log q on the data (NaN when inactive).
    pub fkl: f64,
    /// RKL = mean[log q − β log p̃] on flow samples (NaN when inactive).
    pub rkl: f64,
    /// SM = mean ‖s_θ − β s_p‖² (NaN when inactive).
    pub sm: f64,
    /// ∂L/∂θ, length n_params.
    pub grad: Vec<f64>,
    /// log w = log p̃ − log q (β = 1) of the flow batch; empty when no flow
    /// batch was drawn.
    pub log_w: Vec<f64>,
}

impl Loss {
    /// Whether a data minibatch is needed (FKL, or SM on data).
    pub fn needs_data(&self) -> bool {
        self.w_fkl > 0.0 || (self.w_sm > 0.0 && self.sm_on == SmOn::Data)
    }

    /// Whether base noise is needed (RKL, or SM on flow samples).
    pub fn needs_noise(&self) -> bool {
        self.w_rkl > 0.0 || (self.w_sm > 0.0 && self.sm_on == SmOn::Flow)
    }

    /// Evaluates L and ∂L/∂θ at the flow's current parameters, with inverse
    /// temperature `beta` on the target terms (module docs).
    ///
    /// Non-finite values are returned as they are (the trainer rejects the
    /// step); only missing or mis-shaped inputs are errors.
    pub fn value_and_grad<L: ScoreLayer>(
        &self,
        flow: &Flow<L>,
        target: &dyn Target,
        inputs: LossInputs<'_>,
        beta: f64,
        par: Par,
    ) -> Result<LossReport, LossError> {
        assert_eq!(target.dim(), flow.dim(), "target and flow dimensions differ");
        let data = if self.needs_data() {
            let term = if self.w_fkl > 0.0 { "fkl" } else { "sm" };
            Some(check_batch(inputs.data, flow.dim(), "data", term)?)
        } else {
            None
        };
        let noise = if self.needs_noise() {
            let term = if self.w_rkl > 0.0 { "rkl" } else { "sm" };
            let z = inputs.noise.ok_or(LossError::MissingNoise { term })?;
            check_width(z, flow.dim(), "noise")?;
            Some(z)
        } else {
            None
        };
        let mut grad = vec![0.0; flow.n_params()];
        let (mut fkl, mut rkl, mut sm) = (f64::NAN, f64::NAN, f64::NAN);
        let mut total = 0.0;
        if self.w_fkl > 0.0 {
            let x = data.expect("checked above");
            fkl = fkl_value_and_grad(flow, x, self.w_fkl, &mut grad, par);
            total += self.w_fkl * fkl;
        }
        let mut log_w = Vec::new();
        let mut flow_x = None;
        if let Some(z) = noise {
            let (x, lw, value) = if self.w_rkl > 0.0 {
                let out = rkl_value_and_grad(flow, target, z, beta, self.w_rkl, &mut grad, par);
                (out.xs, out.log_w, out.value)
            } else {
                let (x, lw) = flow_samples(flow, target, z, par);
                (x, lw, f64::NAN)
            };
            if self.w_rkl > 0.0 {
                rkl = value;
                total += self.w_rkl * rkl;
            }
            log_w = lw;
            flow_x = Some(x);
        }
        if self.w_sm > 0.0 {
            let x = match self.sm_on {
                SmOn::Data => data.expect("checked above"),
                SmOn::Flow => flow_x.as_ref().expect("drawn above").view(),
            };
            sm = sm_value_and_grad(flow, target, x, beta, self.w_sm, &mut grad, par);
            total += self.w_sm * sm;
        }
        Ok(LossReport {
            total,
            fkl,
            rkl,
            sm,
            grad,
            log_w,
        })
    }
}

fn check_width(x: ArrayView2<f64>, dim: usize, what: &'static str) -> Result<(), LossError> {
    if x.ncols() != dim {
        return Err(LossError::Dimension {
            what,
            expected: dim,
            got: x.ncols(),
        });
    }
    if x.nrows() == 0 {
        return Err(LossError::Empty { what });
    }
    Ok(())
}

fn check_batch<'a>(
    x: Option<ArrayView2<'a, f64>>,
    dim: usize,
    what: &'static str,
    term: &'static str,
) -> Result<ArrayView2<'a, f64>, LossError> {
    let x = x.ok_or(LossError::MissingData { term })?;
    check_width(x, dim, what)?;
    Ok(x)
}

/// FKL = −mean log q_θ(x) over the rows of `xs`; adds `weight`·∂θ FKL to
/// `grad` and returns FKL.
pub fn fkl_value_and_grad<L: Layer>(
    flow: &Flow<L>,
    xs: ArrayView2<f64>,
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> f64 {
    let n = xs.nrows();
    let w = Array1::from_elem(n, -weight / n as f64);
    let mut log_q = Array1::zeros(n);
    flow.log_q_grad_batch(xs, w.view(), log_q.view_mut(), grad, par);
    -mean(log_q.iter().copied())
}

/// Result of [`rkl_value_and_grad`].
#[derive(Debug, Clone)]
pub struct RklOutput {
    /// RKL = mean[log q − β log p̃].
    pub value: f64,
    /// The flow samples x = f(z).
    pub xs: Array2<f64>,
    /// log q(x) per sample.
    pub log_q: Vec<f64>,
    /// log w = log p̃(x) − log q(x) per sample (β = 1).
    pub log_w: Vec<f64>,
}

/// RKL = mean_z[log q_θ(f(z)) − β log p̃(f(z))] at the fixed base draws `zs`
/// (reparametrized); adds `weight`·∂θ RKL to `grad`.
pub fn rkl_value_and_grad<L: Layer>(
    flow: &Flow<L>,
    target: &dyn Target,
    zs: ArrayView2<f64>,
    beta: f64,
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> RklOutput {
    let n = zs.nrows();
    let inv_n = 1.0 / n as f64;
    let log_p: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let mut xs = Array2::zeros(zs.raw_dim());
    let mut log_q = Array1::zeros(n);
    flow.forward_vjp_batch(
        zs,
        xs.view_mut(),
        log_q.view_mut(),
        grad,
        par,
        |first, x, _lq, mut gx, mut glq| {
            for (i, (xr, gr)) in x.rows().into_iter().zip(gx.rows_mut()).enumerate() {
                let lp = target.log_prob_and_score(xr, gr);
                log_p[first + i].store(lp.to_bits(), Ordering::Relaxed);
            }
            gx.mapv_inplace(|s| -weight * beta * inv_n * s);
            glq.fill(weight * inv_n);
        },
    );
    let log_p: Vec<f64> = log_p.into_iter().map(|a| f64::from_bits(a.into_inner())).collect();
    let value = mean(log_q.iter().zip(&log_p).map(|(q, p)| q - beta * p));
    let log_w = log_p.iter().zip(log_q.iter()).map(|(p, q)| p - q).collect();
    RklOutput {
        value,
        xs,
        log_q: log_q.to_vec(),
        log_w,
    }
}

/// Flow samples x = f(z) and their log-weights log p̃ − log q, no gradient.
pub fn flow_samples<L: Layer>(
    flow: &Flow<L>,
    target: &dyn Target,
    zs: ArrayView2<f64>,
    par: Par,
) -> (Array2<f64>, Vec<f64>) {
    let n = zs.nrows();
    let mut xs = Array2::zeros(zs.raw_dim());
    let mut log_q = Array1::zeros(n);
    flow.forward_batch(zs, xs.view_mut(), log_q.view_mut(), par);
    let mut log_p = Array1::zeros(n);
    target.log_prob_batch(xs.view(), log_p.view_mut(), par);
    let log_w = log_p.iter().zip(log_q.iter()).map(|(p, q)| p - q).collect();
    (xs, log_w)
}

/// SM = mean ‖s_θ(x) − β s_p(x)‖² over the rows of `xs` (held fixed); adds
/// `weight`·∂θ SM to `grad` and returns SM.
pub fn sm_value_and_grad<M: ScoreModel + ?Sized>(
    model: &M,
    target: &dyn Target,
    xs: ArrayView2<f64>,
    beta: f64,
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> f64 {
    let n = xs.nrows();
    let mut s_q = Array2::zeros(xs.raw_dim());
    let mut log_q = Array1::zeros(n);
    model.score_batch(xs, s_q.view_mut(), log_q.view_mut(), par);
    let mut s_p = Array2::zeros(xs.raw_dim());
    let mut log_p = Array1::zeros(n);
    target.log_prob_and_score_batch(xs, s_p.view_mut(), log_p.view_mut(), par);
    // r = s_θ − β s_p, then SM = mean ‖r‖², cotangent 2 w r / N.
    let mut r = s_q;
    r.scaled_add(-beta, &s_p);
    let value = mean(r.axis_iter(Axis(0)).map(|row| row.dot(&row)));
    let c = 2.0 * weight / n as f64;
    r.mapv_inplace(|v| c * v);
    model.score_param_vjp_batch(xs, r.view(), grad, par);
    value
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for v in it {
        s += v;
        n += 1;
    }
    s / n as f64
}

#[cfg(test)]
#[path = "loss_tests.rs"]
mod tests;
