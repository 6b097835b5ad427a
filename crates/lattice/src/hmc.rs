//! Hybrid Monte Carlo (docs/THEORY.md §2.5).
//!
//! One trajectory: draw π ~ N(0, I), integrate Hamilton's equations of
//! H(φ, π) = ½‖π‖² + S(φ) for `n_steps` steps of size ε with the chosen
//! [`Integrator`], and accept the end point with probability
//! min(1, e^{−ΔH}), ΔH = H(end) − H(start). A non-finite ΔH (a divergence)
//! is a rejection, recorded as data, never an error.
//!
//! The step size ε starts at `trajectory_length / n_steps`; if `tune` is on it
//! is adapted toward `target_acceptance` during thermalization only
//! ([`crate::tuning`], [`crate::chains::thermalize`]) and then frozen.
//! `n_steps` stays fixed, so after tuning the trajectory length is
//! n_steps · ε_tuned. HMC works for any [`Target`].

use crate::integrator::{integrate, Integrator};
use crate::update::UpdateRecord;
use fieldflow_core::{ConfigError, LocalKernel, Rng, ScoreCache, Target};
use ndarray::{ArrayView1, ArrayViewMut1};
use rand::Rng as _;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// User-facing HMC settings (`[hmc]` in a TOML config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HmcConfig {
    /// Initial trajectory length τ (default 1.0); ε₀ = τ / n_steps.
    pub trajectory_length: f64,
    /// Integration steps per trajectory (default 10).
    pub n_steps: usize,
    /// Integrator (default `omelyan`).
    pub integrator: Integrator,
    /// Acceptance the step-size tuning aims at (default 0.8).
    pub target_acceptance: f64,
    /// Tune ε during thermalization (default true).
    pub tune: bool,
    /// Trajectory-length jitter j ∈ [0, 1): each trajectory has length
    /// τ(1 − j u), u ~ U(0, 1) (default 0.2). Breaks the resonances of
    /// a fixed length (modes rotated by multiples of π keep their energy).
    pub jitter: f64,
}

impl Default for HmcConfig {
    fn default() -> Self {
        HmcConfig {
            trajectory_length: 1.0,
            n_steps: 10,
            integrator: Integrator::Omelyan,
            target_acceptance: 0.8,
            tune: true,
            jitter: 0.2,
        }
    }
}

impl HmcConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// `hmc.trajectory_length` not finite and > 0, `hmc.n_steps` = 0, or
    /// `hmc.target_acceptance` outside (0, 1).
    pub fn validate(&self) -> Result<Hmc, ConfigError> {
        if !(self.trajectory_length.is_finite() && self.trajectory_length > 0.0) {
            return Err(ConfigError::new(
                "hmc.trajectory_length",
                self.trajectory_length,
                "must be finite and > 0",
            ));
        }
        if self.n_steps == 0 {
            return Err(ConfigError::new("hmc.n_steps", 0, "must be >= 1"));
        }
        let t = self.target_acceptance;
        if !(t > 0.0 && t < 1.0) {
            return Err(ConfigError::new("hmc.target_acceptance", t, "must be in (0, 1)"));
        }
        if !(self.jitter >= 0.0 && self.jitter < 1.0) {
            return Err(ConfigError::new("hmc.jitter", self.jitter, "must be in [0, 1)"));
        }
        Ok(Hmc {
            jitter: self.jitter,
            trajectory_length: self.trajectory_length,
            n_steps: self.n_steps,
            integrator: self.integrator,
            target_acceptance: t,
            tune: self.tune,
            initial_step_size: self.trajectory_length / self.n_steps as f64,
        })
    }
}

/// Validated HMC settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hmc {
    /// Trajectory length τ, kept fixed while the step size is tuned.
    pub trajectory_length: f64,
    /// Trajectory-length jitter j: lengths τ(1 − j u), u ~ U(0, 1).
    pub jitter: f64,
    /// Integration steps per trajectory before tuning (ε₀ = τ/n_steps).
    pub n_steps: usize,
    /// Integrator.
    pub integrator: Integrator,
    /// Target acceptance of the tuning.
    pub target_acceptance: f64,
    /// Whether thermalization tunes ε.
    pub tune: bool,
    /// ε before tuning = trajectory_length / n_steps.
    pub initial_step_size: f64,
}

/// Per-chain scratch of HMC: momenta, the proposed field and the scores of
/// the current and proposed fields (sized once, reused by every trajectory).
#[derive(Debug, Clone)]
pub struct HmcWorkspace {
    pi: Vec<f64>,
    phi_new: Vec<f64>,
    score: Vec<f64>,
    score_new: Vec<f64>,
    /// log p̃ of the current field if `score` is valid for it.
    cached: Option<f64>,
}

impl HmcWorkspace {
    /// Scratch for a target of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        HmcWorkspace {
            pi: vec![0.0; dim],
            phi_new: vec![0.0; dim],
            score: vec![0.0; dim],
            score_new: vec![0.0; dim],
            cached: None,
        }
    }

    /// Forgets the cached score (call when the field was changed from outside).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }
}

/// One HMC trajectory from `phi` (updated in place): length
/// τ_k = τ(1 − j u) with u ~ U(0, 1), integrated in n = ⌈τ_k/ε⌉ steps of
/// τ_k/n (step size at most `eps`); momenta, u and the accept decision come
/// from `rng`. A random length independent of the state keeps detailed
/// balance (a mixture of reversible kernels).
///
/// Keeping τ fixed while ε is tuned matters: a trajectory of length ≈ π/ω
/// for a slow mode of frequency ω (e.g. the zero mode of the free field,
/// ω = √(2m²)) flips it and makes its autocorrelation oscillate.
///
/// The workspace caches the score of the current field between calls on the
/// same chain; the cache changes no result (the score is a deterministic
/// function of the field).
///
/// # Panics
/// If `phi` or the workspace do not match `target.dim()`.
pub fn trajectory<T: Target + ?Sized>(
    target: &T,
    hmc: &Hmc,
    eps: f64,
    phi: &mut [f64],
    ws: &mut HmcWorkspace,
    rng: &mut Rng,
) -> UpdateRecord {
    assert_eq!(
        phi.len(),
        target.dim(),
        "field length differs from the target's dimension"
    );
    assert_eq!(ws.pi.len(), phi.len(), "workspace size differs from the field's");
    let log_p0 = match ws.cached {
        Some(l) => l,
        None => target.log_prob_and_score(ArrayView1::from(&*phi), ArrayViewMut1::from(&mut ws.score[..])),
    };
    let record = trajectory_from(
        target,
        hmc,
        eps,
        phi,
        log_p0,
        [&mut ws.score, &mut ws.pi, &mut ws.phi_new, &mut ws.score_new],
        rng,
    );
    ws.cached = Some(record.log_p);
    record
}

/// The trajectory of [`trajectory`] from `phi` with log p̃(φ) = `log_p0`;
/// `bufs` = [score at φ (valid on entry), momenta, proposed field, its
/// score], each of length V. On acceptance `phi` and the score become the
/// end point's.
fn trajectory_from<T: Target + ?Sized>(
    target: &T,
    hmc: &Hmc,
    eps: f64,
    phi: &mut [f64],
    log_p0: f64,
    bufs: [&mut [f64]; 4],
    rng: &mut Rng,
) -> UpdateRecord {
    let [score, pi, phi_new, score_new] = bufs;
    let mut kinetic0 = 0.0;
    for p in pi.iter_mut() {
        *p = rng.sample(StandardNormal);
        kinetic0 += *p * *p;
    }
    let u: f64 = rng.random();
    phi_new.copy_from_slice(phi);
    score_new.copy_from_slice(score);
    let length = hmc.trajectory_length * (1.0 - hmc.jitter * rng.random::<f64>());
    let n_steps = ((length / eps).ceil() as usize).max(1);
    let log_p1 = integrate(
        target,
        hmc.integrator,
        length / n_steps as f64,
        n_steps,
        phi_new,
        pi,
        score_new,
        log_p0,
    );
    let kinetic1: f64 = pi.iter().map(|p| p * p).sum();
    // H = ½‖π‖² − log p̃.
    let delta_h = (0.5 * kinetic1 - log_p1) - (0.5 * kinetic0 - log_p0);
    let accepted = delta_h.is_finite() && (delta_h <= 0.0 || u < (-delta_h).exp());
    let log_p = if accepted {
        phi.copy_from_slice(phi_new);
        score.copy_from_slice(score_new);
        log_p1
    } else {
        log_p0
    };
    UpdateRecord {
        accepted,
        acceptance: if accepted { 1.0 } else { 0.0 },
        accept_prob: if delta_h.is_finite() {
            (-delta_h).exp().min(1.0)
        } else {
            0.0
        },
        delta_h,
        log_p,
    }
}

/// HMC trajectories of any [`Target`] with a score as a [`LocalKernel`]
/// (the local move of global–local flow samplers and of neutra-MCMC): one
/// update is one trajectory of [`trajectory`] with step size at most `eps`.
/// The chain's scratch caches the score of the current state
/// ([`ScoreCache`]).
pub struct HmcKernel<'a> {
    /// The target.
    pub target: &'a dyn Target,
    /// Trajectory length, jitter and integrator.
    pub hmc: Hmc,
    /// Step size ε.
    pub eps: f64,
}

impl LocalKernel for HmcKernel<'_> {
    fn update(&self, x: &mut [f64], scratch: &mut Vec<f64>, rng: &mut Rng) -> UpdateRecord {
        let c = ScoreCache::get(self.target, x, scratch, 3);
        let (pi, rest) = c.work.split_at_mut(x.len());
        let (phi_new, score_new) = rest.split_at_mut(x.len());
        let record = trajectory_from(
            self.target,
            &self.hmc,
            self.eps,
            x,
            *c.log_p,
            [c.score, pi, phi_new, score_new],
            rng,
        );
        c.x.copy_from_slice(x);
        *c.log_p = record.log_p;
        record
    }
}
