//! Denoisers: estimates of E[X | Y_t = y], the posterior mean that drives
//! the SLIPS dynamics (docs/THEORY.md §6.12).
//!
//! * [`McmcDenoiser`]: the estimate of SLIPS, for any target with a score:
//!   `mcmc_chains` MALA chains on the posterior p(x | y) ∝ p̃(x) e^{−‖y − αx‖²/(2σ²t)}
//!   ([`crate::Posterior`]), warm-started from where they stopped at the
//!   previous time step, `mcmc_steps` updates each per call; the first
//!   `burn_in` fraction of the updates is discarded and adapts the MALA step
//!   toward `target_acceptance` (log ε += γ (a − δ) after every update, a
//!   Robbins–Monro rule with constant gain γ = [`STEP_GAIN`]); the step is
//!   frozen while the remaining states are averaged, so that part is an
//!   exact MALA chain for the current posterior. The first call of a particle
//!   starts every chain at y/α and runs `warmup` adapting updates first.
//!   With `step_adaptation = "per_chain"` (the rule of the paper's code,
//!   data/experiments/slips/README.md) every chain has its own step, which
//!   changes after every update (the averaged ones too) by a fixed factor
//!   [`PER_CHAIN_FACTOR`]: up when the update's log Metropolis ratio ℓ
//!   (not clipped at 0) exceeds log δ + log(1 + [`PER_CHAIN_TOL`]), down when
//!   it is below log δ + log(1 − [`PER_CHAIN_TOL`]), unchanged in between.
//!   The averaged part is then not an exact MALA chain (the step still moves,
//!   by at most 1 % per update).
//! * [`ExactDenoiser`]: the closed form for a Gaussian mixture
//!   Σₖ wₖ N(mₖ, Cₖ) (a Gaussian is the case K = 1), the oracle of the
//!   tests. With Cₖ = Uₖ diag(eₖ) Uₖᵀ and v = σ²t: given the component k,
//!   Y ~ N(α mₖ, α² Cₖ + v I) and E[X | y, k] = mₖ + α Cₖ (α² Cₖ + v I)⁻¹
//!   (y − α mₖ) = mₖ + Uₖ diag(α e/(α² e + v)) Uₖᵀ (y − α mₖ); the
//!   component's posterior weight is ∝ wₖ N(y; α mₖ, α² Cₖ + v I).

use crate::posterior::{Observation, Posterior};
use fieldflow_core::{ConfigError, LocalKernel, Rng, Target};
use fieldflow_imh::Mala;
use ndarray::Array2;
use ndarray_linalg::{Eigh, UPLO};
use serde::{Deserialize, Serialize};

/// An estimator of E[X | Y_t = y] with per-particle state.
pub trait Denoiser: Sync {
    /// What one particle carries from one call to the next (MCMC chains,
    /// buffers).
    type State: Send;

    /// A fresh state for a particle (allocates; reused across particles
    /// through [`Denoiser::reset`]).
    fn new_state(&self) -> Self::State;

    /// Prepares `state` for a new particle (no allocation).
    fn reset(&self, state: &mut Self::State);

    /// Overwrites `mean` with the estimate of E[X | Y_t = y] for the
    /// observation `obs`, drawing from `rng`; returns the number of target
    /// evaluations (log p̃ and score) it cost.
    fn denoise(&self, y: &[f64], obs: Observation, state: &mut Self::State, rng: &mut Rng, mean: &mut [f64]) -> u64;

    /// The mean acceptance min(1, r) of the MCMC updates averaged since the
    /// last reset (NaN for a denoiser without MCMC).
    fn acceptance(&self, _state: &Self::State) -> f64 {
        f64::NAN
    }
}

/// Gain γ of the step adaptation in the burn-in: log ε += γ (a − δ) after
/// every MALA update (a = min(1, r) of the update, δ the target acceptance).
pub const STEP_GAIN: f64 = 0.05;

/// Factor of the per-chain rule ([`StepAdaptation::PerChain`]).
pub const PER_CHAIN_FACTOR: f64 = 1.01;

/// Relative tolerance band of the per-chain rule around the target acceptance.
pub const PER_CHAIN_TOL: f64 = 0.05;

/// How the MALA step of the denoiser's chains is adapted (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAdaptation {
    /// One step per particle shared by its chains, log ε += γ (min(1, r) − δ)
    /// during warm-up and burn-in only, frozen while averaging.
    #[default]
    RobbinsMonro,
    /// One step per chain, ×/÷ [`PER_CHAIN_FACTOR`] after every update by the
    /// update's log Metropolis ratio against a band around log δ.
    PerChain,
}

impl StepAdaptation {
    /// The per-chain rule: the new step after an update with log ratio `log_r`.
    pub fn per_chain(step: f64, log_r: f64, target_acceptance: f64) -> f64 {
        let l = if log_r.is_nan() { f64::NEG_INFINITY } else { log_r };
        let ld = target_acceptance.ln();
        if l - ld > PER_CHAIN_TOL.ln_1p() {
            step * PER_CHAIN_FACTOR
        } else if ld - l > -(-PER_CHAIN_TOL).ln_1p() {
            step / PER_CHAIN_FACTOR
        } else {
            step
        }
    }
}

/// Settings of the MCMC denoiser (module docs); defaults from the paper's
/// benchmark settings (arXiv 2402.10758: 32 MALA steps, 4 chains, half
/// discarded, acceptance 0.75, 50 × 32 adapting steps at the first call).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct McmcSettings {
    /// MALA updates of every chain per denoiser call.
    pub mcmc_steps: usize,
    /// Independent chains per particle (their averages are pooled).
    pub mcmc_chains: usize,
    /// Fraction of the updates discarded (and used to adapt the step).
    pub burn_in: f64,
    /// Acceptance the step adaptation aims at.
    pub target_acceptance: f64,
    /// MALA step ε at a particle's first call (then adapted).
    pub mcmc_step: f64,
    /// Adapting updates of every chain before the first estimate of a
    /// particle (`None`: 50 × `mcmc_steps`).
    pub warmup: Option<usize>,
    /// The step adaptation rule.
    pub step_adaptation: StepAdaptation,
}

impl Default for McmcSettings {
    fn default() -> Self {
        McmcSettings {
            mcmc_steps: 32,
            mcmc_chains: 4,
            burn_in: 0.5,
            target_acceptance: 0.75,
            mcmc_step: 1e-2,
            warmup: None,
            step_adaptation: StepAdaptation::RobbinsMonro,
        }
    }
}

impl McmcSettings {
    /// Checks every field; `field` prefixes the error's field name.
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let f = |name: &str| format!("{field}.{name}");
        if self.mcmc_steps == 0 {
            return Err(ConfigError::new(f("mcmc_steps"), 0, "must be ≥ 1"));
        }
        if self.mcmc_chains == 0 {
            return Err(ConfigError::new(f("mcmc_chains"), 0, "must be ≥ 1"));
        }
        if !(self.burn_in >= 0.0 && self.burn_in < 1.0) {
            return Err(ConfigError::new(f("burn_in"), self.burn_in, "must be in [0, 1)"));
        }
        if self.kept() == 0 {
            return Err(ConfigError::new(
                f("burn_in"),
                self.burn_in,
                format!("leaves no state of {} MCMC steps to average", self.mcmc_steps),
            ));
        }
        if !(self.target_acceptance > 0.0 && self.target_acceptance < 1.0) {
            return Err(ConfigError::new(
                f("target_acceptance"),
                self.target_acceptance,
                "must be in (0, 1)",
            ));
        }
        if !(self.mcmc_step > 0.0 && self.mcmc_step.is_finite()) {
            return Err(ConfigError::new(
                f("mcmc_step"),
                self.mcmc_step,
                "must be a finite number > 0",
            ));
        }
        Ok(())
    }

    /// Updates discarded per call.
    pub fn discarded(&self) -> usize {
        ((self.burn_in * self.mcmc_steps as f64).floor() as usize).min(self.mcmc_steps)
    }

    /// Updates averaged per call.
    pub fn kept(&self) -> usize {
        self.mcmc_steps - self.discarded()
    }

    /// Adapting updates of a particle's first call.
    pub fn warmup_updates(&self) -> usize {
        self.warmup.unwrap_or(50 * self.mcmc_steps)
    }
}

/// The MCMC estimate of E[X | Y_t = y] (module docs).
pub struct McmcDenoiser<'a> {
    /// The target p̃ (needs a score).
    pub target: &'a dyn Target,
    /// Chains, steps, burn-in, adaptation.
    pub settings: McmcSettings,
}

/// One particle's chains for [`McmcDenoiser`].
pub struct McmcState {
    /// The chains' states, `chains × d` row-major.
    xs: Vec<f64>,
    /// Each chain's MALA scratch (score cache).
    scratch: Vec<Vec<f64>>,
    /// The current MALA step ε (shared rule).
    pub step: f64,
    /// Every chain's MALA step (per-chain rule).
    pub steps: Vec<f64>,
    /// Whether the chains were started (first call done).
    started: bool,
    /// Sum of min(1, r) over the averaged updates (diagnostic).
    pub accept_sum: f64,
    /// Number of averaged updates (diagnostic).
    pub accept_count: u64,
}

impl McmcDenoiser<'_> {
    /// One MALA update of every chain (in chain order) on `post`; adapts
    /// the step if `adapt` (shared rule) or always (per-chain rule); adds the
    /// new states to `mean` unless `adapt`.
    fn sweep(&self, post: &Posterior<'_>, state: &mut McmcState, rng: &mut Rng, adapt: bool, mean: &mut [f64]) {
        let d = mean.len();
        let delta = self.settings.target_acceptance;
        let per_chain = self.settings.step_adaptation == StepAdaptation::PerChain;
        for ((x, scratch), chain_step) in state
            .xs
            .chunks_exact_mut(d)
            .zip(state.scratch.iter_mut())
            .zip(state.steps.iter_mut())
        {
            let kernel = Mala {
                target: post,
                step: if per_chain { *chain_step } else { state.step },
            };
            let rec = kernel.update(x, scratch, rng);
            let a = if rec.accept_prob.is_finite() {
                rec.accept_prob
            } else {
                0.0
            };
            if per_chain {
                *chain_step = StepAdaptation::per_chain(*chain_step, -rec.delta_h, delta);
            } else if adapt {
                state.step *= (STEP_GAIN * (a - delta)).exp();
            }
            if !adapt {
                state.accept_sum += a;
                state.accept_count += 1;
                for (m, &xi) in mean.iter_mut().zip(x.iter()) {
                    *m += xi;
                }
            }
        }
    }
}

impl Denoiser for McmcDenoiser<'_> {
    type State = McmcState;

    fn new_state(&self) -> McmcState {
        let d = self.target.dim();
        McmcState {
            xs: vec![0.0; self.settings.mcmc_chains * d],
            scratch: vec![Vec::new(); self.settings.mcmc_chains],
            step: self.settings.mcmc_step,
            steps: vec![self.settings.mcmc_step; self.settings.mcmc_chains],
            started: false,
            accept_sum: 0.0,
            accept_count: 0,
        }
    }

    fn reset(&self, state: &mut McmcState) {
        state.started = false;
        state.step = self.settings.mcmc_step;
        state.steps.fill(self.settings.mcmc_step);
        state.accept_sum = 0.0;
        state.accept_count = 0;
    }

    fn denoise(&self, y: &[f64], obs: Observation, state: &mut McmcState, rng: &mut Rng, mean: &mut [f64]) -> u64 {
        let s = &self.settings;
        let post = Posterior {
            target: self.target,
            y,
            obs,
        };
        // The posterior changed: the kernels' score caches are stale.
        for scratch in &mut state.scratch {
            scratch.clear();
        }
        mean.fill(0.0);
        let mut updates = s.mcmc_steps;
        if !state.started {
            for x in state.xs.chunks_exact_mut(y.len()) {
                for (xi, &yi) in x.iter_mut().zip(y) {
                    *xi = yi / obs.alpha;
                }
            }
            for _ in 0..s.warmup_updates() {
                self.sweep(&post, state, rng, true, mean);
            }
            updates += s.warmup_updates();
            state.started = true;
        }
        for u in 0..s.mcmc_steps {
            self.sweep(&post, state, rng, u < s.discarded(), mean);
        }
        let n = (s.kept() * s.mcmc_chains) as f64;
        for m in mean.iter_mut() {
            *m /= n;
        }
        // One evaluation per update, plus the first of every chain (the
        // score cache was emptied).
        (s.mcmc_chains * (updates + 1)) as u64
    }

    fn acceptance(&self, state: &McmcState) -> f64 {
        state.accept_sum / state.accept_count.max(1) as f64
    }
}

/// One component of [`ExactDenoiser`].
struct Component {
    mean: Vec<f64>,
    /// Eigenvectors of the covariance, as the columns of a d × d row-major matrix.
    basis: Vec<f64>,
    /// Eigenvalues of the covariance.
    eig: Vec<f64>,
    log_weight: f64,
}

/// The closed-form E[X | Y_t = y] of a Gaussian mixture (module docs).
pub struct ExactDenoiser {
    dim: usize,
    components: Vec<Component>,
}

/// Buffers of [`ExactDenoiser`]: Uₖᵀ(y − α mₖ) for every k, and the log
/// posterior weights.
pub struct ExactState {
    r: Vec<f64>,
    log_p: Vec<f64>,
}

impl ExactDenoiser {
    /// The denoiser of Σₖ wₖ N(mₖ, Cₖ) from (mₖ, Cₖ, wₖ).
    ///
    /// # Errors
    /// If a covariance is not symmetric positive definite or the shapes
    /// disagree.
    pub fn new(parts: &[(Vec<f64>, Array2<f64>, f64)]) -> Result<Self, ConfigError> {
        let dim = parts.first().map_or(0, |p| p.0.len());
        let mut components = Vec::with_capacity(parts.len());
        for (k, (mean, cov, w)) in parts.iter().enumerate() {
            if mean.len() != dim || cov.dim() != (dim, dim) {
                return Err(ConfigError::new(format!("component {k}"), dim, "shapes disagree"));
            }
            let (eig, vecs) = cov
                .eigh(UPLO::Lower)
                .map_err(|e| ConfigError::new(format!("component {k}.cov"), "…", e.to_string()))?;
            if eig.iter().any(|&e| !(e > 0.0)) {
                return Err(ConfigError::new(
                    format!("component {k}.cov"),
                    "…",
                    "not positive definite",
                ));
            }
            components.push(Component {
                mean: mean.clone(),
                basis: vecs.iter().copied().collect(),
                eig: eig.to_vec(),
                log_weight: w.ln(),
            });
        }
        Ok(ExactDenoiser { dim, components })
    }

    /// The denoiser of a [`fieldflow_targets::GaussianMixture`].
    ///
    /// # Errors
    /// As [`ExactDenoiser::new`].
    pub fn mixture(m: &fieldflow_targets::GaussianMixture) -> Result<Self, ConfigError> {
        let parts: Vec<_> = (0..m.n_components())
            .map(|k| (m.mean(k).to_vec(), m.cov(k), m.weights()[k]))
            .collect();
        Self::new(&parts)
    }

    /// The denoiser of a [`fieldflow_targets::Gaussian`].
    ///
    /// # Errors
    /// As [`ExactDenoiser::new`].
    pub fn gaussian(g: &fieldflow_targets::Gaussian) -> Result<Self, ConfigError> {
        Self::new(&[(g.mean().to_vec(), g.cov().to_owned(), 1.0)])
    }
}

impl Denoiser for ExactDenoiser {
    type State = ExactState;

    fn new_state(&self) -> ExactState {
        ExactState {
            r: vec![0.0; self.components.len() * self.dim],
            log_p: vec![0.0; self.components.len()],
        }
    }

    fn reset(&self, _: &mut ExactState) {}

    fn denoise(&self, y: &[f64], obs: Observation, state: &mut ExactState, _: &mut Rng, mean: &mut [f64]) -> u64 {
        let (d, a, v) = (self.dim, obs.alpha, obs.var);
        for ((c, r), lp) in self
            .components
            .iter()
            .zip(state.r.chunks_exact_mut(d))
            .zip(state.log_p.iter_mut())
        {
            // r = Uᵀ (y − α m); log N(y; α m, α² C + v I) up to −(d/2) log 2π.
            r.fill(0.0);
            for i in 0..d {
                let diff = y[i] - a * c.mean[i];
                for (j, rj) in r.iter_mut().enumerate() {
                    *rj += c.basis[i * d + j] * diff;
                }
            }
            let mut l = c.log_weight;
            for (&rj, &e) in r.iter().zip(&c.eig) {
                let s = a * a * e + v;
                l -= 0.5 * (rj * rj / s + s.ln());
            }
            *lp = l;
        }
        let max = state.log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = state.log_p.iter().map(|&l| (l - max).exp()).sum();
        mean.fill(0.0);
        for ((c, r), &lp) in self.components.iter().zip(state.r.chunks_exact(d)).zip(&state.log_p) {
            let p = (lp - max).exp() / total;
            for i in 0..d {
                let mut shift = 0.0;
                for j in 0..d {
                    shift += c.basis[i * d + j] * a * c.eig[j] / (a * a * c.eig[j] + v) * r[j];
                }
                mean[i] += p * (c.mean[i] + shift);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_chain_rule_moves_by_the_factor_outside_the_band() {
        let d: f64 = 0.75;
        let up = StepAdaptation::per_chain(1.0, 0.0, d);
        let down = StepAdaptation::per_chain(1.0, (0.5f64).ln(), d);
        let band = StepAdaptation::per_chain(1.0, d.ln(), d);
        assert_eq!((up, down, band), (PER_CHAIN_FACTOR, 1.0 / PER_CHAIN_FACTOR, 1.0));
        // Edges: log δ ± just inside the band keep the step.
        assert_eq!(StepAdaptation::per_chain(1.0, d.ln() + 0.9 * 0.05f64.ln_1p(), d), 1.0);
        assert_eq!(
            StepAdaptation::per_chain(1.0, d.ln() + 0.9 * (-0.05f64).ln_1p(), d),
            1.0
        );
        // A rejected-for-sure or invalid proposal shrinks the step.
        assert_eq!(
            StepAdaptation::per_chain(1.0, f64::NEG_INFINITY, d),
            1.0 / PER_CHAIN_FACTOR
        );
        assert_eq!(StepAdaptation::per_chain(1.0, f64::NAN, d), 1.0 / PER_CHAIN_FACTOR);
    }
}
