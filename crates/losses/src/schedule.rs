//! Schedules over training steps: the learning rate η(step) and the inverse
//! temperature β(step) of annealed training on p̃^β (docs/THEORY.md §5.5).
//!
//! Learning rate (base η₀, T total steps):
//! * constant: η₀;
//! * cosine: η_min + ½(η₀ − η_min)(1 + cos(π min(step, T)/T));
//! * step: η₀ γ^⌊step/every⌋.
//!
//! Annealing (β₀ ∈ (0, 1], reaching 1 after `steps` and staying there):
//! * constant: β = 1 throughout (no annealing);
//! * linear: β = β₀ + (1 − β₀) s, s = min(step/steps, 1);
//! * geometric: β = β₀^{1 − s} (equal ratios, the usual choice for
//!   temperatures).

use fieldflow_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// η = η₀.
    Constant,
    /// Cosine decay from η₀ to `min_lr` over `total_steps`.
    Cosine {
        /// Steps over which η decays.
        total_steps: u64,
        /// Final learning rate.
        min_lr: f64,
    },
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Period in steps.
        every: u64,
        /// Factor per period.
        gamma: f64,
    },
}

impl LrSchedule {
    /// η at `step` for base rate `lr0`.
    pub fn lr(&self, lr0: f64, step: u64) -> f64 {
        match *self {
            LrSchedule::Constant => lr0,
            LrSchedule::Cosine { total_steps, min_lr } => {
                let s = step.min(total_steps) as f64 / total_steps.max(1) as f64;
                min_lr + 0.5 * (lr0 - min_lr) * (1.0 + (std::f64::consts::PI * s).cos())
            }
            LrSchedule::Step { every, gamma } => lr0 * gamma.powi((step / every.max(1)) as i32),
        }
    }

    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Cosine { total_steps, min_lr } => {
                if total_steps == 0 {
                    Err(ConfigError::new("lr_schedule.total_steps", total_steps, "must be > 0"))
                } else if !(min_lr >= 0.0) {
                    Err(ConfigError::new("lr_schedule.min_lr", min_lr, "must be >= 0"))
                } else {
                    Ok(())
                }
            }
            LrSchedule::Step { every, gamma } => {
                if every == 0 {
                    Err(ConfigError::new("lr_schedule.every", every, "must be > 0"))
                } else if !(gamma > 0.0) {
                    Err(ConfigError::new("lr_schedule.gamma", gamma, "must be > 0"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Annealing schedule β(step) for training on p̃^β.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Annealing {
    /// β = 1 (no annealing).
    Constant,
    /// β rises linearly from `beta0` to 1 over `steps`.
    Linear {
        /// Initial β₀ ∈ (0, 1].
        beta0: f64,
        /// Steps to reach β = 1.
        steps: u64,
    },
    /// β rises geometrically from `beta0` to 1 over `steps`.
    Geometric {
        /// Initial β₀ ∈ (0, 1].
        beta0: f64,
        /// Steps to reach β = 1.
        steps: u64,
    },
}

impl Annealing {
    /// β at `step`.
    pub fn beta(&self, step: u64) -> f64 {
        let frac = |steps: u64| (step as f64 / steps.max(1) as f64).min(1.0);
        match *self {
            Annealing::Constant => 1.0,
            Annealing::Linear { beta0, steps } => beta0 + (1.0 - beta0) * frac(steps),
            Annealing::Geometric { beta0, steps } => beta0.powf(1.0 - frac(steps)),
        }
    }

    /// Checks β₀ ∈ (0, 1] and steps > 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Annealing::Constant => Ok(()),
            Annealing::Linear { beta0, steps } | Annealing::Geometric { beta0, steps } => {
                if !(beta0 > 0.0 && beta0 <= 1.0) {
                    Err(ConfigError::new("annealing.beta0", beta0, "must be in (0, 1]"))
                } else if steps == 0 {
                    Err(ConfigError::new("annealing.steps", steps, "must be > 0"))
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_schedules_hit_their_end_points() {
        assert_eq!(LrSchedule::Constant.lr(0.1, 999), 0.1);
        let cos = LrSchedule::Cosine {
            total_steps: 100,
            min_lr: 0.01,
        };
        assert!((cos.lr(0.1, 0) - 0.1).abs() < 1e-15);
        assert!((cos.lr(0.1, 50) - 0.055).abs() < 1e-15);
        assert!((cos.lr(0.1, 100) - 0.01).abs() < 1e-15);
        assert!((cos.lr(0.1, 500) - 0.01).abs() < 1e-15);
        let st = LrSchedule::Step { every: 10, gamma: 0.5 };
        assert_eq!((st.lr(1.0, 9), st.lr(1.0, 10), st.lr(1.0, 25)), (1.0, 0.5, 0.25));
    }

    #[test]
    fn annealing_rises_monotonically_to_one() {
        for a in [
            Annealing::Linear { beta0: 0.1, steps: 100 },
            Annealing::Geometric { beta0: 0.1, steps: 100 },
        ] {
            assert!((a.beta(0) - 0.1).abs() < 1e-15);
            assert_eq!(a.beta(100), 1.0);
            assert_eq!(a.beta(1000), 1.0);
            let mut prev = 0.0;
            for s in 0..=100 {
                assert!(a.beta(s) > prev);
                prev = a.beta(s);
            }
        }
        // Geometric: equal ratios β(s+1)/β(s).
        let g = Annealing::Geometric { beta0: 0.01, steps: 4 };
        let r: Vec<f64> = (0..4).map(|s| g.beta(s + 1) / g.beta(s)).collect();
        assert!(r.iter().all(|x| (x - r[0]).abs() < 1e-12));
        assert_eq!(
            Annealing::Linear { beta0: 0.0, steps: 5 }.validate().unwrap_err().field,
            "annealing.beta0"
        );
    }

    #[test]
    fn schedules_parse_from_toml_like_json() {
        let s: LrSchedule = serde_json::from_str(r#"{"kind":"cosine","total_steps":10,"min_lr":0.0}"#).unwrap();
        assert_eq!(
            s,
            LrSchedule::Cosine {
                total_steps: 10,
                min_lr: 0.0
            }
        );
        assert!(serde_json::from_str::<Annealing>(r#"{"kind":"linear","beta0":0.5,"steps":3,"typo":1}"#).is_err());
    }
}
