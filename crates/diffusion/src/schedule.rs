//! Forward noising processes (docs/THEORY.md §6.11.1).
//!
//! A linear forward SDE dx = f(t) x dt + g(t) dW on t ∈ [0, 1] maps a field
//! x₀ to x_t = α_t x₀ + σ_t ε, ε ~ N(0, I), so a target of covariance C is
//! carried to one of covariance Σ_t = α_t² C + σ_t² I, and
//! dα/dt = f α, dσ²/dt = 2 f σ² + g².
//!
//! * **Variance preserving** (Ornstein–Uhlenbeck with a linear rate
//!   β(t) = β_min + t (β_max − β_min)): f = −β/2, g² = β,
//!   α_t = exp(−B(t)/2), σ_t² = 1 − exp(−B(t)), B(t) = ∫₀ᵗ β. Its end
//!   distribution is close to N(0, I), the sampler's prior.
//! * **Variance exploding** (σ_t = σ_min (σ_max/σ_min)ᵗ): f = 0, α = 1,
//!   g² = dσ²/dt = 2 σ_t² ln(σ_max/σ_min). Prior N(0, σ_max² I).

use fieldflow_core::ConfigError;
use serde::{Deserialize, Serialize};

/// The forward process and its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoiseSchedule {
    /// Variance-preserving Ornstein–Uhlenbeck process, β linear in t.
    VariancePreserving {
        /// β(0).
        beta_min: f64,
        /// β(1).
        beta_max: f64,
    },
    /// Variance-exploding Brownian noising, σ geometric in t.
    VarianceExploding {
        /// σ(0).
        sigma_min: f64,
        /// σ(1).
        sigma_max: f64,
    },
}

impl Default for NoiseSchedule {
    /// The usual VP schedule (β from 0.1 to 20).
    fn default() -> Self {
        NoiseSchedule::VariancePreserving {
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }
}

impl NoiseSchedule {
    /// Checks the parameters.
    ///
    /// # Errors
    /// A non-positive or non-finite rate or width, or a decreasing schedule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (lo_name, lo, hi_name, hi) = match *self {
            NoiseSchedule::VariancePreserving { beta_min, beta_max } => {
                ("schedule.beta_min", beta_min, "schedule.beta_max", beta_max)
            }
            NoiseSchedule::VarianceExploding { sigma_min, sigma_max } => {
                ("schedule.sigma_min", sigma_min, "schedule.sigma_max", sigma_max)
            }
        };
        if !(lo.is_finite() && lo > 0.0) {
            return Err(ConfigError::new(lo_name, lo, "must be finite and > 0"));
        }
        if !(hi.is_finite() && hi > lo) {
            return Err(ConfigError::new(
                hi_name,
                hi,
                format!("must be finite and > {lo_name} = {lo}"),
            ));
        }
        Ok(())
    }

    /// B(t) = ∫₀ᵗ β for VP (0 for VE).
    fn integrated_rate(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::VariancePreserving { beta_min, beta_max } => {
                beta_min * t + 0.5 * (beta_max - beta_min) * t * t
            }
            NoiseSchedule::VarianceExploding { .. } => 0.0,
        }
    }

    /// Signal scale α_t.
    pub fn alpha(&self, t: f64) -> f64 {
        (-0.5 * self.integrated_rate(t)).exp()
    }

    /// Noise variance σ_t².
    pub fn sigma2(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::VariancePreserving { .. } => -(-self.integrated_rate(t)).exp_m1(),
            NoiseSchedule::VarianceExploding { sigma_min, sigma_max } => {
                sigma_min * sigma_min * (sigma_max / sigma_min).powf(2.0 * t)
            }
        }
    }

    /// Drift coefficient f(t) of dx = f x dt + g dW.
    pub fn drift(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::VariancePreserving { beta_min, beta_max } => -0.5 * (beta_min + t * (beta_max - beta_min)),
            NoiseSchedule::VarianceExploding { .. } => 0.0,
        }
    }

    /// Diffusion coefficient squared g(t)².
    pub fn g2(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::VariancePreserving { beta_min, beta_max } => beta_min + t * (beta_max - beta_min),
            NoiseSchedule::VarianceExploding { sigma_min, sigma_max } => {
                2.0 * self.sigma2(t) * (sigma_max / sigma_min).ln()
            }
        }
    }

    /// Variance of the sampler's prior N(0, v I) at t = 1: 1 for VP (the
    /// process's stationary law), σ_max² for VE.
    pub fn prior_variance(&self) -> f64 {
        match *self {
            NoiseSchedule::VariancePreserving { .. } => 1.0,
            NoiseSchedule::VarianceExploding { sigma_max, .. } => sigma_max * sigma_max,
        }
    }
}
