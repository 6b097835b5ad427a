//! Training objectives and their hand-written gradients (docs/THEORY.md §5).
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
//! # Forward KL on flow samples (FKL_IS, `w_fkl_is`)
//! FKL_IS = −Σᵢ w̄ᵢ log q_θ(xᵢ) over the flow batch xᵢ = f_θ(zᵢ), with
//! self-normalized importance weights w̄ᵢ ∝ exp(β log p̃(xᵢ) − log q_θ(xᵢ));
//! samples and weights are held fixed, so ∂θ FKL_IS = −Σᵢ w̄ᵢ ∂θ log q_θ(xᵢ):
//! one density sweep, as FKL, with row weights −w_fkl_is·w̄ᵢ. It estimates
//! the gradient of KL(p^β‖q_θ) with p's density instead of data: its
//! minimizer is p, not the empirical measure of a small ensemble, and it
//! corrects the relative weights of modes the flow covers. Each chunk
//! weights its rows by e^{log w − m_c} (m_c its largest log-weight) and the
//! combination rescales each chunk by e^{m_c − M}/S after the all-gather:
//! the batch's exact w̄, the same for any number of threads or processes
//! (docs/THEORY.md §5.4).
//!
//! # Weighted sum (ScoreNF and the presets)
//! L = w_fkl·FKL + w_rkl·RKL + w_sm·SM + w_fkl_is·FKL_IS. The weights are
//! folded into the cotangents of each sweep (wᵢ = −w_fkl/N,
//! x̄ᵢ = −w_rkl β s_p/N, rᵢ = 2 w_sm (s_θ − β s_p)/N, −w_fkl_is w̄ᵢ), so the
//! gradient costs one sweep per active term. Presets:
//!
//! | preset | w_fkl | w_rkl | w_sm | sm_on | w_fkl_is | needs data |
//! |---|---|---|---|---|---|---|
//! | `fkl` | 1 | 0 | 0 | — | 0 | yes |
//! | `rkl` | 0 | 1 | 0 | — | 0 | no |
//! | `sm` | 0 | 0 | 1 | data | 0 | yes |
//! | `scorenf` | 1 | 0.1 | 0.1 | flow, damped (c₀ = 100) | [`SCORENF_W_FKL_IS`] | yes |
//! | `rkl_sm` | 0 | 1 | [`RKL_SM_DEFAULT_W_SM`] | data | 0 | yes |
//!
//! `scorenf` ([`SCORENF_WEIGHTS`]) is fieldflow's ScoreNF: the relative
//! weights of separated modes from FKL on the small ensemble, the shapes
//! from SM on the flow's own samples (which stops FKL from overfitting the
//! ensemble), a little RKL against collapse, and geometric annealing
//! β₀ = [`SCORENF_BETA0`] → 1 over the first half of training (the CLI adds
//! it when `train.annealing` is absent); then, over the third quarter, the
//! FKL term hands over from the data to the flow's own samples
//! ([`scorenf_fkl_decay`], `train.fkl_decay`: w_fkl·φ(t) on the data,
//! w_fkl_is·(1 − φ(t)) on flow samples, φ → 0.01; the CLI adds it when
//! absent; a library caller sets both schedules,
//! [`crate::TrainConfig::loss_at`]). Without the handover w_fkl_is would act
//! from the first step, before the flow covers the modes. The weights were
//! chosen by the 201-run scan of docs/RESULTS.md ("Multimodal ScoreNF
//! scan") on MOG-4, MOG-8 and two modes in d dimensions, and measured on
//! lattice φ⁴ (as good as `rkl_sm` there: data/experiments/scorenf_phi4/);
//! the handover by data/experiments/scorenf_mog8 (RESULTS "FKL on the flow's
//! own samples"). Until 2026-12-02 it was called
//! `scorenf_modes` (still accepted) and `scorenf` meant `rkl_sm`, the
//! first design: RKL + SM on the data points, which collapses on separated
//! modes (score matching is blind to their relative weights).
//!
//! Explicit `w_fkl`, `w_rkl`, `w_sm`, `sm_on`, `w_fkl_is` override the
//! preset's values; without a preset an unspecified weight is 0.
//!
//! # A cheaper SM term (`sm_fraction`)
//! The SM gradient costs several passes per row (the score, then the
//! reverse mode of its forward-mode derivative), about 2.4 RKL steps per
//! row on lattice φ⁴. With `sm_fraction = f < 1` SM is evaluated on the
//! first ⌈f·n_c⌉ rows of every Par chunk of n_c rows (of the data minibatch
//! or of the flow batch) and averaged over those rows only: the rows are
//! i.i.d., so this is the same unbiased estimate of SM and its gradient
//! from fewer rows, at f of the cost. The prefix is per chunk, so the rows
//! used do not depend on the number of threads or MPI ranks.
//!
//! # A cheaper FKL_IS term (`fkl_is_fraction`)
//! The same for FKL_IS: with `fkl_is_fraction = f < 1` its density sweep
//! runs on the first ⌈f·n_c⌉ flow samples of every chunk, and the weights
//! are self-normalized over those rows only — the same self-normalized
//! estimate from a smaller i.i.d. batch (consistent, with the usual O(1/n)
//! bias of self-normalization), at about f of the term's cost. The flow
//! batch itself (RKL, SM on flow samples) is unchanged.
//!
//! # Damped score matching (`sm_cauchy_scale`)
//! With `sm_cauchy_scale = c₀` every row's residual u = ‖s_θ(x) − β s_p(x)‖²
//! enters through the Cauchy (Lorentzian) function ρ(u) = c ln(1 + u/c),
//! c = c₀·d (a per-coordinate scale, d the dimension):
//! SM_c = (1/N) Σ_x ρ(uₓ), cotangent rᵢ = 2 w_sm ρ'(uᵢ)(s_θ − β s_p)/N with
//! ρ'(u) = 1/(1 + u/c). ρ is increasing with ρ(0) = 0, so SM_c is still
//! minimized exactly where s_θ = β s_p on the rows' support (the minimizer
//! of the Fisher divergence is unchanged); rows with u ≲ c count as in plain
//! SM, a row with u ≫ c pulls with a force that falls like c/√u instead of
//! growing like √u. Why: SM on flow samples holds the samples fixed, so its
//! gradient is not the gradient of any function of θ (docs/THEORY.md §5.3)
//! and can run away — a few samples on a narrow spike of q have huge flow
//! scores, the update driven by them sharpens the spike, and in 50 steps
//! SM goes from 1 to 10¹² (MOG-8 with spline couplings, 3 of 3 seeds with
//! 16 bins; data/experiments/scorenf_mog8/). Gradient clipping does not
//! stop it (Adam's step is about lr whatever the gradient's norm); damping
//! the few rows does. The reported `sm` is SM_c (the term as it enters L).
//! The `scorenf` preset damps with c₀ = [`SCORENF_SM_CAUCHY_SCALE`];
//! `sm_cauchy_scale = inf` gives plain SM.
//!
//! # The `rkl_sm` weight (chosen by experiment)
//! The first reading of ScoreNF (arXiv 2510.21330) adds w·SM on a small
//! ensemble to RKL; its weights are not published here, so w was scanned
//! (`cargo run --release -p fieldflow-losses --example scorenf_weight -- STEPS [mog4|phi4]`):
//! RKL + w·SM(data), same flow, seed, optimizer and step budget for every
//! w, on (a) MOG-4 with 100 exact samples (2000 steps) and (b) φ⁴ on a 4×4
//! lattice (m² = −4, λ = 8) with 100 HMC configurations (400 steps), judged
//! by the ESS of a fresh flow batch, the held-out NLL, the RKL estimate and
//! (MOG-4) the mode weights. Result: w = 1. See
//! [`RKL_SM_DEFAULT_W_SM`] for the numbers and the choice.
//!
//! # By-products
//! The flow batch of RKL (or of SM on flow samples) comes with
//! log wᵢ = log p̃(xᵢ) − log q_θ(xᵢ) at β = 1, the importance log-weights
//! from which the trainer reports the ESS of the training batch.

use crate::exchange::{shard, Exchange, SingleProcess};
use crate::schedule::{Annealing, FklDecay};
use fieldflow_core::{ConfigError, Par, Target};
use fieldflow_flows::{Flow, Layer, ScoreLayer, ScoreModel};
use fieldflow_stats::weights::{log_sum_exp, self_normalized_mean};
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Default weight of the score-matching term of the `rkl_sm` preset
/// (L = RKL + w·SM on data; the `scorenf` preset before 2026-12-02).
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
pub const RKL_SM_DEFAULT_W_SM: f64 = 1.0;

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
    /// ScoreNF ([`SCORENF_WEIGHTS`]): FKL on data + 0.1 RKL + 0.1 SM on
    /// the flow's samples, with geometric annealing β [`SCORENF_BETA0`] → 1
    /// over the first half of training ([`scorenf_annealing`]), then FKL
    /// handed over to the flow's samples ([`scorenf_fkl_decay`]).
    /// `scorenf_modes` is its former name.
    #[serde(alias = "scorenf_modes")]
    Scorenf,
    /// RKL + w·SM on data, w = [`RKL_SM_DEFAULT_W_SM`] (the `scorenf`
    /// preset before 2026-12-02; collapses on separated modes).
    RklSm,
}

/// (w_fkl, w_rkl, w_sm) of the `scorenf` preset, SM on the flow's own
/// samples. Chosen by a scan of 201 runs (100 exact samples, 8 affine MLP
/// couplings, 2000 steps, geometric annealing β 0.1 → 1 over 1000 steps,
/// IMH 4 × 20 000; docs/RESULTS.md, "Multimodal ScoreNF scan"):
///
/// * FKL is what sets the relative weights of separated modes (score
///   matching is blind to them, RKL is mode-seeking), but alone it overfits
///   100 samples (held-out NLL up to 10¹¹);
/// * SM evaluated on the flow's own samples constrains the flow wherever it
///   puts mass, which removes the overfitting (NLL − H 0.1–0.3 on MOG-4); on
///   the data points only it does not;
/// * SM on flow samples is unstable early (samples between modes see huge
///   target scores): annealing is part of the recipe;
/// * a little RKL (0.1) prevents occasional collapse on MOG-4/MOG-8; more
///   RKL lowers the ESS in d = 16 (0.80, 0.72, 0.43, 0.04 for w_rkl = 0,
///   0.1, 0.3, 1).
///
/// Measured: MOG-4, 6 seeds: IMH TV ≤ 0.006, worst deviation 2.8σ, ESS
/// 0.61–0.77; two modes d = 16, 3 seeds: IMH ŵ₀ = 0.662, 0.666, 0.666
/// (± 0.003); breaks at d = 32 (ŵ₀ up to 0.93) and d = 64.
pub const SCORENF_WEIGHTS: (f64, f64, f64) = (1.0, 0.1, 0.1);

/// Per-coordinate scale c₀ of the `scorenf` preset's damped SM term
/// (module docs, "Damped score matching"): large enough to leave the rows of
/// a healthy batch as in plain SM (residuals ≈ 1 per coordinate), small
/// enough to stop a runaway. Measured (data/experiments/scorenf_mog8/, 100
/// samples, 2000 steps, 3 seeds): MOG-8 with 16-bin spline couplings, where
/// plain SM ran away and collapsed on 3 of 3 seeds, collapses on none with
/// c₀ = 100 (or 10); on the affine recipe c₀ = 100 leaves MOG-4 and two
/// modes d = 16 as they were, while c₀ = 10 weakened SM's hold on FKL's
/// overfitting (MOG-4 seed 3: held-out NLL − H 4.0 instead of 0.3).
pub const SCORENF_SM_CAUCHY_SCALE: f64 = 100.0;

/// Weight w_fkl_is of the `scorenf` preset's FKL on flow samples (module
/// docs, "Forward KL on flow samples"): the data FKL (weight 1) hands over
/// to it after the annealing ([`scorenf_fkl_decay`]), so the FKL weight
/// stays 1 throughout.
pub const SCORENF_W_FKL_IS: f64 = 1.0;

/// Initial inverse temperature of the `scorenf` preset's annealing.
pub const SCORENF_BETA0: f64 = 0.1;

/// The annealing that belongs to the `scorenf` preset in a run of `steps`
/// steps: geometric, β = [`SCORENF_BETA0`] → 1 over the first half (SM on
/// flow samples is unstable while the flow's samples still lie between
/// the modes, where target scores are huge; docs/RESULTS.md, "Multimodal
/// ScoreNF scan").
pub fn scorenf_annealing(steps: u64) -> Annealing {
    Annealing::Geometric {
        beta0: SCORENF_BETA0,
        steps: (steps / 2).max(1),
    }
}

/// The FKL handover that belongs to the `scorenf` preset in a run of
/// `steps` steps: from the end of the annealing (step T/2) the data FKL
/// falls geometrically to 1 % of its weight over T/4 steps while FKL on the
/// flow's samples (weight [`SCORENF_W_FKL_IS`]) rises as 1 − φ
/// ([`crate::TrainConfig::loss_at`]). Chosen by data/experiments/scorenf_mog8
/// (stages `fkl_decay`, `fkl_is`): docs/RESULTS.md, "FKL on the flow's own
/// samples".
pub fn scorenf_fkl_decay(steps: u64) -> FklDecay {
    FklDecay {
        start: steps / 2,
        steps: (steps / 4).max(1),
        factor: 0.01,
    }
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
/// preset = "scorenf"   # fkl | rkl | sm | scorenf | rkl_sm
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
    /// Fraction f ∈ (0, 1] of the rows SM is evaluated on (default 1; see
    /// the module docs, "A cheaper SM term").
    #[serde(default)]
    pub sm_fraction: Option<f64>,
    /// Per-coordinate scale c₀ > 0 of the Cauchy-damped SM term (module
    /// docs, "Damped score matching"); `inf`: plain SM; absent: the preset's
    /// ([`SCORENF_SM_CAUCHY_SCALE`] for `scorenf`, plain SM otherwise).
    #[serde(default)]
    pub sm_cauchy_scale: Option<f64>,
    /// Weight of FKL estimated by self-normalized importance sampling on
    /// the flow's own samples (module docs, "Forward KL on flow samples");
    /// default 0.
    #[serde(default)]
    pub w_fkl_is: Option<f64>,
    /// Fraction f ∈ (0, 1] of the flow batch's rows FKL_IS is evaluated on
    /// (default 1; module docs, "A cheaper FKL_IS term").
    #[serde(default)]
    pub fkl_is_fraction: Option<f64>,
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
            sm_fraction: None,
            sm_cauchy_scale: None,
            w_fkl_is: None,
            fkl_is_fraction: None,
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
            Some(LossPreset::Scorenf) => SCORENF_WEIGHTS,
            Some(LossPreset::RklSm) => (0.0, 1.0, RKL_SM_DEFAULT_W_SM),
        };
        let sm_on_default = match self.preset {
            Some(LossPreset::Scorenf) => SmOn::Flow,
            _ => SmOn::Data,
        };
        let loss = Loss {
            w_fkl: self.w_fkl.unwrap_or(f),
            w_rkl: self.w_rkl.unwrap_or(r),
            w_sm: self.w_sm.unwrap_or(s),
            sm_on: self.sm_on.unwrap_or(sm_on_default),
            sm_fraction: self.sm_fraction.unwrap_or(1.0),
            sm_cauchy_scale: match (self.sm_cauchy_scale, self.preset) {
                (Some(c), _) if c == f64::INFINITY => None,
                (Some(c), _) => Some(c),
                (None, Some(LossPreset::Scorenf)) => Some(SCORENF_SM_CAUCHY_SCALE),
                (None, _) => None,
            },
            w_fkl_is: self.w_fkl_is.unwrap_or(match self.preset {
                Some(LossPreset::Scorenf) => SCORENF_W_FKL_IS,
                _ => 0.0,
            }),
            fkl_is_fraction: self.fkl_is_fraction.unwrap_or(1.0),
        };
        if let Some(c) = loss.sm_cauchy_scale {
            if !(c.is_finite() && c > 0.0) {
                return Err(ConfigError::new(
                    "loss.sm_cauchy_scale",
                    c,
                    "must be > 0 (inf: plain score matching)",
                ));
            }
        }
        for (name, f) in [
            ("loss.sm_fraction", loss.sm_fraction),
            ("loss.fkl_is_fraction", loss.fkl_is_fraction),
        ] {
            if !(f > 0.0 && f <= 1.0) {
                return Err(ConfigError::new(name, f, "must be in (0, 1]"));
            }
        }
        for (name, w) in [
            ("loss.w_fkl", loss.w_fkl),
            ("loss.w_rkl", loss.w_rkl),
            ("loss.w_sm", loss.w_sm),
            ("loss.w_fkl_is", loss.w_fkl_is),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(ConfigError::new(name, w, "must be finite and >= 0"));
            }
        }
        if loss.w_fkl == 0.0 && loss.w_rkl == 0.0 && loss.w_sm == 0.0 && loss.w_fkl_is == 0.0 {
            return Err(ConfigError::new(
                "loss",
                "w_fkl = w_rkl = w_sm = w_fkl_is = 0",
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
    /// Fraction of every chunk's rows SM is evaluated on (1: all).
    #[serde(default = "full_fraction")]
    pub sm_fraction: f64,
    /// Per-coordinate scale c₀ of the Cauchy-damped SM term (None: plain
    /// SM; module docs, "Damped score matching").
    #[serde(default)]
    pub sm_cauchy_scale: Option<f64>,
    /// Weight of FKL by importance sampling on the flow's samples.
    #[serde(default)]
    pub w_fkl_is: f64,
    /// Fraction of every chunk's flow rows FKL_IS is evaluated on (1: all).
    #[serde(default = "full_fraction")]
    pub fkl_is_fraction: f64,
}

fn full_fraction() -> f64 {
    1.0
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
    /// L = w_fkl·FKL + w_rkl·RKL + w_sm·SM + w_fkl_is·FKL_IS (inactive
    /// terms contribute 0).
    pub total: f64,
    /// FKL = −mean log q on the data (NaN when inactive).
    pub fkl: f64,
    /// RKL = mean[log q − β log p̃] on flow samples (NaN when inactive).
    pub rkl: f64,
    /// SM = mean ‖s_θ − β s_p‖² (NaN when inactive).
    pub sm: f64,
    /// FKL_IS = −Σ w̄ log q on flow samples (NaN when inactive).
    pub fkl_is: f64,
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

    /// Whether base noise is needed (RKL, FKL_IS, or SM on flow samples).
    pub fn needs_noise(&self) -> bool {
        self.w_rkl > 0.0 || self.w_fkl_is > 0.0 || (self.w_sm > 0.0 && self.sm_on == SmOn::Flow)
    }

    /// Evaluates L and ∂L/∂θ at the flow's current parameters, with inverse
    /// temperature `beta` on the target terms (module docs): one process's
    /// [`Loss::value_and_grad_exchanged`].
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
        self.value_and_grad_exchanged(flow, target, inputs, beta, par, &mut SingleProcess)
    }

    /// [`Loss::value_and_grad`] with the batch shared among the processes
    /// of `exchange` ([`crate::exchange`]); every process passes the same
    /// inputs and gets the same report, bit-identical to one process's.
    ///
    /// # Evaluation order
    /// The active terms, in the order FKL (data), flow batch (x = f(z) with
    /// log q, log p̃ and the RKL gradient when w_rkl > 0), SM (data or flow
    /// samples), are each cut into Par chunks. This process evaluates its
    /// [`shard`] of every term's chunks (in parallel when `par.parallel`),
    /// each into a record [∂θ of the chunk's share of the weighted loss,
    /// per-row values]; one all-gather shares the records; then every
    /// process adds the gradients term by term, chunk by chunk (the order
    /// of a single process) and forms the means from the per-row values.
    ///
    /// # Errors
    /// As [`Loss::value_and_grad`].
    pub fn value_and_grad_exchanged<L: ScoreLayer>(
        &self,
        flow: &Flow<L>,
        target: &dyn Target,
        inputs: LossInputs<'_>,
        beta: f64,
        par: Par,
        exchange: &mut dyn Exchange,
    ) -> Result<LossReport, LossError> {
        assert_eq!(target.dim(), flow.dim(), "target and flow dimensions differ");
        let data = if self.needs_data() {
            let term = if self.w_fkl > 0.0 { "fkl" } else { "sm" };
            Some(check_batch(inputs.data, flow.dim(), "data", term)?)
        } else {
            None
        };
        let noise = if self.needs_noise() {
            let term = if self.w_rkl > 0.0 {
                "rkl"
            } else if self.w_fkl_is > 0.0 {
                "fkl_is"
            } else {
                "sm"
            };
            let z = inputs.noise.ok_or(LossError::MissingNoise { term })?;
            check_width(z, flow.dim(), "noise")?;
            Some(z)
        } else {
            None
        };
        let c = par.chunk_rows.max(1);
        let p = flow.n_params();
        let (rank, size) = (exchange.rank(), exchange.size());
        let terms = self.terms(data.map_or(0, |x| x.nrows()), noise.map_or(0, |z| z.nrows()));
        let rows_of = |n: usize, k: usize| k * c..((k + 1) * c).min(n);
        let record_len = |t: &TermBatch, k: usize| {
            let grad = if t.with_grad { p } else { 0 };
            grad + t.per_row * t.used(rows_of(t.rows, k).len())
        };
        let serial = Par::serial(c);
        let over_chunks = Par {
            chunk_rows: 1,
            parallel: par.parallel,
        };
        // This process's records, and its flow samples with their
        // log-weights β log p̃ − log q, per chunk (for SM and FKL_IS on them).
        let mut mine = Vec::new();
        let mut flow_xs: Vec<(Array2<f64>, Vec<f64>)> = Vec::new();
        for t in &terms {
            let chunks = shard(t.rows.div_ceil(c), rank, size);
            let parts = over_chunks.map_chunks(chunks.len(), |i, _| {
                let rows = rows_of(t.rows, chunks.start + i);
                let mut rec = vec![0.0; if t.with_grad { p } else { 0 }];
                let mut xs_out = None;
                match t.term {
                    Term::Fkl => {
                        let x = data.expect("fkl has data").slice_move(s![rows, ..]);
                        let lq = fkl_terms(flow, x, t.rows, self.w_fkl, &mut rec, serial);
                        rec.extend(lq);
                    }
                    Term::Flow => {
                        let z = noise.expect("noise checked").slice_move(s![rows, ..]);
                        let (xs, lq, lp) = if self.w_rkl > 0.0 {
                            rkl_terms(flow, target, z, t.rows, beta, self.w_rkl, &mut rec, serial)
                        } else {
                            let (xs, lq, lp) = flow_batch(flow, target, z, serial);
                            (xs, lq.to_vec(), lp.to_vec())
                        };
                        // Tempered log-weights, kept for FKL_IS only.
                        let lw = if self.w_fkl_is > 0.0 {
                            lq.iter().zip(&lp).map(|(q, p)| beta * p - q).collect()
                        } else {
                            Vec::new()
                        };
                        rec.extend(lq);
                        rec.extend(lp);
                        xs_out = Some((xs, lw));
                    }
                    Term::FklIs => {
                        let used = t.used(rows.len());
                        let (x, lw) = (flow_xs[i].0.slice(s![..used, ..]), &flow_xs[i].1[..used]);
                        let lq = fkl_is_terms(flow, x, lw, self.w_fkl_is, &mut rec, serial);
                        rec.extend(lq);
                        rec.extend_from_slice(lw);
                    }
                    Term::Sm => {
                        let used = t.used(rows.len());
                        let x = match self.sm_on {
                            SmOn::Data => data
                                .expect("sm on data has data")
                                .slice_move(s![rows.start..rows.start + used, ..]),
                            SmOn::Flow => flow_xs[i].0.slice(s![..used, ..]),
                        };
                        let n = t.used_total(c);
                        let c = self.sm_cauchy_scale.map(|c0| c0 * flow.dim() as f64);
                        let rho = sm_terms(flow, target, x, n, c, beta, self.w_sm, &mut rec, serial);
                        rec.extend(rho);
                    }
                }
                (rec, xs_out)
            });
            for (rec, xs) in parts {
                mine.extend(rec);
                flow_xs.extend(xs);
            }
        }
        let counts: Vec<usize> = (0..size)
            .map(|r| {
                terms
                    .iter()
                    .map(|t| {
                        shard(t.rows.div_ceil(c), r, size)
                            .map(|k| record_len(t, k))
                            .sum::<usize>()
                    })
                    .sum()
            })
            .collect();
        debug_assert_eq!(counts[rank], mine.len());
        let all = exchange.all_gather(mine, &counts);
        // Records arrive in (rank, term, chunk) order: regroup per term, in
        // chunk order.
        let mut records: Vec<Vec<&[f64]>> = terms.iter().map(|_| Vec::new()).collect();
        let mut at = 0;
        for r in 0..size {
            for (ti, t) in terms.iter().enumerate() {
                for k in shard(t.rows.div_ceil(c), r, size) {
                    let len = record_len(t, k);
                    records[ti].push(&all[at..at + len]);
                    at += len;
                }
            }
        }
        let mut grad = vec![0.0; p];
        let (mut fkl, mut rkl, mut sm, mut fkl_is) = (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
        let mut total = 0.0;
        let mut log_w = Vec::new();
        for (t, recs) in terms.iter().zip(&records) {
            let (mut first, mut second) = (Vec::new(), Vec::new());
            // FKL_IS chunks were weighted by e^{lw − m_c}: rescale each to
            // the batch's self-normalized weights (1 for the other terms).
            let scales = match t.term {
                Term::FklIs => is_chunk_scales(recs, p),
                _ => vec![1.0; recs.len()],
            };
            for (rec, f) in recs.iter().zip(&scales) {
                let vals = if t.with_grad {
                    for (g, v) in grad.iter_mut().zip(&rec[..p]) {
                        *g += f * v;
                    }
                    &rec[p..]
                } else {
                    rec
                };
                let m = vals.len() / t.per_row;
                first.extend_from_slice(&vals[..m]);
                second.extend_from_slice(&vals[m..]);
            }
            match t.term {
                Term::Fkl => {
                    fkl = -mean(first.iter().copied());
                    total += self.w_fkl * fkl;
                }
                Term::Flow => {
                    let (lq, lp) = (first, second);
                    if self.w_rkl > 0.0 {
                        rkl = mean(lq.iter().zip(&lp).map(|(q, p)| q - beta * p));
                        total += self.w_rkl * rkl;
                    }
                    log_w = lp.iter().zip(&lq).map(|(p, q)| p - q).collect();
                }
                Term::Sm => {
                    sm = mean(first.iter().copied());
                    total += self.w_sm * sm;
                }
                Term::FklIs => {
                    // A non-finite log-weight or log q makes the value NaN
                    // (the trainer rejects the step).
                    let (lq, lw) = (first, second);
                    fkl_is = self_normalized_mean(&lw, &lq).map_or(f64::NAN, |m| -m.value);
                    total += self.w_fkl_is * fkl_is;
                }
            }
        }
        Ok(LossReport {
            total,
            fkl,
            rkl,
            sm,
            fkl_is,
            grad,
            log_w,
        })
    }

    /// The active terms with their batch sizes, in evaluation order.
    fn terms(&self, n_data: usize, n_noise: usize) -> Vec<TermBatch> {
        let mut terms = Vec::new();
        if self.w_fkl > 0.0 {
            terms.push(TermBatch {
                term: Term::Fkl,
                rows: n_data,
                per_row: 1,
                with_grad: true,
                fraction: 1.0,
            });
        }
        if self.needs_noise() {
            terms.push(TermBatch {
                term: Term::Flow,
                rows: n_noise,
                per_row: 2,
                with_grad: self.w_rkl > 0.0,
                fraction: 1.0,
            });
        }
        if self.w_fkl_is > 0.0 {
            terms.push(TermBatch {
                term: Term::FklIs,
                rows: n_noise,
                per_row: 2,
                with_grad: true,
                fraction: self.fkl_is_fraction,
            });
        }
        if self.w_sm > 0.0 {
            let rows = match self.sm_on {
                SmOn::Data => n_data,
                SmOn::Flow => n_noise,
            };
            terms.push(TermBatch {
                term: Term::Sm,
                rows,
                per_row: 1,
                with_grad: true,
                fraction: self.sm_fraction,
            });
        }
        terms
    }
}

/// The parts of an evaluation, in the order their gradients are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    /// FKL on the data minibatch.
    Fkl,
    /// Flow samples of the base noise (with the RKL gradient when active).
    Flow,
    /// FKL by importance sampling on the flow samples.
    FklIs,
    /// Score matching on data or flow samples.
    Sm,
}

/// A term with its batch: rows, values per row in a chunk record (log q;
/// log q and log p̃; ‖r‖²) and whether the record starts with a gradient.
struct TermBatch {
    term: Term,
    rows: usize,
    per_row: usize,
    with_grad: bool,
    /// Fraction of every chunk's rows the term uses (a prefix of it).
    fraction: f64,
}

impl TermBatch {
    /// Rows used of a chunk of `len` rows: ⌈f·len⌉ (all when f = 1).
    fn used(&self, len: usize) -> usize {
        if self.fraction >= 1.0 {
            len
        } else {
            ((self.fraction * len as f64).ceil() as usize).clamp(1, len)
        }
    }

    /// Rows used in all, chunks of `c` rows.
    fn used_total(&self, c: usize) -> usize {
        (0..self.rows.div_ceil(c))
            .map(|k| self.used(((k + 1) * c).min(self.rows) - k * c))
            .sum()
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

/// The FKL share of the rows `xs` of an `n`-row batch: adds
/// `weight`·∂θ[−(1/n) Σ_{x∈xs} log q_θ(x)] to `grad`, returns log q per row.
fn fkl_terms<L: Layer>(
    flow: &Flow<L>,
    xs: ArrayView2<f64>,
    n: usize,
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> Vec<f64> {
    weighted_log_q_grad(flow, xs, Array1::from_elem(xs.nrows(), -weight / n as f64), grad, par)
}

/// The FKL_IS share of the flow samples `xs` (held fixed) with log-weights
/// `lw` (β log p̃ − log q): adds `weight`·∂θ[−Σᵢ e^{lwᵢ − m} log q_θ(xᵢ)] to
/// `grad`, m = max lw of these rows (the caller rescales by e^{m − LSE},
/// [`is_chunk_scales`]); returns log q_θ(xᵢ) per row. Rows are weighted 0
/// when every log-weight is −∞.
fn fkl_is_terms<L: Layer>(
    flow: &Flow<L>,
    xs: ArrayView2<f64>,
    lw: &[f64],
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> Vec<f64> {
    let m = chunk_max(lw);
    let w = Array1::from_iter(lw.iter().map(|&l| {
        if m == f64::NEG_INFINITY {
            0.0
        } else {
            -weight * (l - m).exp()
        }
    }));
    weighted_log_q_grad(flow, xs, w, grad, par)
}

/// Adds ∂θ Σᵢ wᵢ log q_θ(xᵢ) to `grad` (one density sweep); returns
/// log q_θ(xᵢ) per row. The data terms FKL and FKL_IS differ only in w.
fn weighted_log_q_grad<L: Layer>(
    flow: &Flow<L>,
    xs: ArrayView2<f64>,
    w: Array1<f64>,
    grad: &mut [f64],
    par: Par,
) -> Vec<f64> {
    let mut log_q = Array1::zeros(xs.nrows());
    flow.log_q_grad_batch(xs, w.view(), log_q.view_mut(), grad, par);
    log_q.to_vec()
}

/// max of the log-weights (−∞ for none; NaN entries are skipped here and
/// make the step's gradient NaN through their own row).
fn chunk_max(lw: &[f64]) -> f64 {
    lw.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Per-chunk factors e^{m_c − LSE} that turn the chunks' FKL_IS gradients
/// (rows weighted e^{lw − m_c}) into the batch's self-normalized weights
/// w̄ᵢ = e^{lwᵢ − LSE}, LSE = ln Σⱼ e^{lwⱼ} over the batch. Records are
/// [∂θ (p entries) | log q per row | lw per row].
fn is_chunk_scales(recs: &[&[f64]], p: usize) -> Vec<f64> {
    let lws: Vec<&[f64]> = recs
        .iter()
        .map(|rec| {
            let vals = &rec[p..];
            &vals[vals.len() / 2..]
        })
        .collect();
    let lse = log_sum_exp(&lws.concat());
    lws.iter()
        .map(|lw| match chunk_max(lw) {
            f64::NEG_INFINITY => 0.0,
            m => (m - lse).exp(),
        })
        .collect()
}

/// The RKL share of the base draws `zs` of an `n`-row batch: adds
/// `weight`·∂θ (1/n) Σ_{z∈zs} [log q_θ(f(z)) − β log p̃(f(z))] to `grad`;
/// returns x = f(z), log q and log p̃ per row.
#[allow(clippy::too_many_arguments)] // the loss's inputs, weight and batch size
fn rkl_terms<L: Layer>(
    flow: &Flow<L>,
    target: &dyn Target,
    zs: ArrayView2<f64>,
    n: usize,
    beta: f64,
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> (Array2<f64>, Vec<f64>, Vec<f64>) {
    let m = zs.nrows();
    let inv_n = 1.0 / n as f64;
    let log_p: Vec<AtomicU64> = (0..m).map(|_| AtomicU64::new(0)).collect();
    let mut xs = Array2::zeros(zs.raw_dim());
    let mut log_q = Array1::zeros(m);
    flow.forward_vjp_batch(
        zs,
        xs.view_mut(),
        log_q.view_mut(),
        grad,
        par,
        |first, x, _lq, mut gx, mut glq| {
            // One batched call per chunk: a target evaluated outside Rust (a
            // Python function) is called once per chunk, not once per row.
            let mut lp = Array1::zeros(x.nrows());
            target.log_prob_and_score_batch(x, gx.view_mut(), lp.view_mut(), Par::serial(x.nrows()));
            for (i, v) in lp.iter().enumerate() {
                log_p[first + i].store(v.to_bits(), Ordering::Relaxed);
            }
            gx.mapv_inplace(|s| -weight * beta * inv_n * s);
            glq.fill(weight * inv_n);
        },
    );
    let log_p = log_p.into_iter().map(|a| f64::from_bits(a.into_inner())).collect();
    (xs, log_q.to_vec(), log_p)
}

/// The SM share of the rows `xs` (held fixed) of an `n`-row batch: adds
/// `weight`·∂θ (1/n) Σ_{x∈xs} ρ(‖s_θ(x) − β s_p(x)‖²) to `grad`; returns
/// ρ(‖s_θ(x) − β s_p(x)‖²) per row, with ρ(u) = u (plain SM, `cauchy` =
/// None) or ρ(u) = c ln(1 + u/c) (`cauchy` = Some(c), the row scale).
#[allow(clippy::too_many_arguments)] // the loss's inputs, weight, damping and batch size
fn sm_terms<M: ScoreModel + ?Sized>(
    model: &M,
    target: &dyn Target,
    xs: ArrayView2<f64>,
    n: usize,
    cauchy: Option<f64>,
    beta: f64,
    weight: f64,
    grad: &mut [f64],
    par: Par,
) -> Vec<f64> {
    let m = xs.nrows();
    let mut s_q = Array2::zeros(xs.raw_dim());
    let mut log_q = Array1::zeros(m);
    model.score_batch(xs, s_q.view_mut(), log_q.view_mut(), par);
    let mut s_p = Array2::zeros(xs.raw_dim());
    let mut log_p = Array1::zeros(m);
    target.log_prob_and_score_batch(xs, s_p.view_mut(), log_p.view_mut(), par);
    // r = s_θ − β s_p, then SM = mean ρ(‖r‖²), cotangent 2 w ρ'(‖r‖²) r / n.
    let mut r = s_q;
    r.scaled_add(-beta, &s_p);
    let scale = 2.0 * weight / n as f64;
    let mut rho = Vec::with_capacity(m);
    for mut row in r.axis_iter_mut(Axis(0)) {
        let u = row.dot(&row);
        let (value, slope) = match cauchy {
            None => (u, 1.0),
            Some(c) => (c * (u / c).ln_1p(), 1.0 / (1.0 + u / c)),
        };
        rho.push(value);
        row.mapv_inplace(|v| scale * slope * v);
    }
    model.score_param_vjp_batch(xs, r.view(), grad, par);
    rho
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
    -mean(fkl_terms(flow, xs, xs.nrows(), weight, grad, par).into_iter())
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
    let (xs, log_q, log_p) = rkl_terms(flow, target, zs, zs.nrows(), beta, weight, grad, par);
    let value = mean(log_q.iter().zip(&log_p).map(|(q, p)| q - beta * p));
    let log_w = log_p.iter().zip(&log_q).map(|(p, q)| p - q).collect();
    RklOutput {
        value,
        xs,
        log_q,
        log_w,
    }
}

/// Flow samples x = f(z) with log q(x) and log p̃(x), no gradient.
fn flow_batch<L: Layer>(
    flow: &Flow<L>,
    target: &dyn Target,
    zs: ArrayView2<f64>,
    par: Par,
) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let n = zs.nrows();
    let mut xs = Array2::zeros(zs.raw_dim());
    let mut log_q = Array1::zeros(n);
    flow.forward_batch(zs, xs.view_mut(), log_q.view_mut(), par);
    let mut log_p = Array1::zeros(n);
    target.log_prob_batch(xs.view(), log_p.view_mut(), par);
    (xs, log_q, log_p)
}

/// Flow samples x = f(z) and their log-weights log p̃ − log q, no gradient.
pub fn flow_samples<L: Layer>(
    flow: &Flow<L>,
    target: &dyn Target,
    zs: ArrayView2<f64>,
    par: Par,
) -> (Array2<f64>, Vec<f64>) {
    let (xs, log_q, log_p) = flow_batch(flow, target, zs, par);
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
    mean(sm_terms(model, target, xs, xs.nrows(), None, beta, weight, grad, par).into_iter())
}

/// The mean as a sequential sum / n (the order fixes the rounding).
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
