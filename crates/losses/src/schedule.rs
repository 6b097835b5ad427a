//! Schedules over training steps: the learning rate η(step) and the inverse
//! temperature β(step) of annealed training on p̃^β (docs/THEORY.md §5.5).
//!
//! Learning rate (base η₀, T total steps):
//! * constant: η₀;
//! * cosine: η_min + ½(η₀ − η_min)(1 + cos(π min(step, T)/T));
//! * step: η₀ γ^⌊step/every⌋;
//! * warm-up + cosine (W warm-up steps, W < T): η₀ (step + 1)/W for
//!   step < W (a linear ramp that reaches η₀ at the last warm-up step),
//!   then the cosine decay from η₀ to η_min over the remaining T − W
//!   steps, η_min + ½(η₀ − η_min)(1 + cos(π min(step − W, T − W)/(T − W))).
//!   The ramp keeps Adam's first updates small while its second-moment
//!   estimate is still noisy (Goyal et al., arXiv 1706.02677; Loshchilov and
//!   Hutter, arXiv 1608.03983 for the cosine);
//! * warm-up, stable, decay (W warm-up and D decay steps, W + D ≤ T): the
//!   same ramp, η₀ up to step T − D, then the cosine from η₀ to η_min over
//!   the last D steps (MiniCPM, arXiv 2404.06395). Unlike the cosine over
//!   the whole run it keeps the full rate for most of training; only the
//!   end, when the decay is due, depends on T.
//!
//! Annealing (β₀ ∈ (0, 1], reaching 1 after `steps` and staying there):
//! * constant: β = 1 throughout (no annealing);
//! * linear: β = β₀ + (1 − β₀) s, s = min(step/steps, 1);
//! * geometric: β = β₀^{1 − s} (equal ratios, the usual choice for
//!   temperatures).
//!
//! FKL decay (a factor on the FKL weight, `[train.fkl_decay]`; start t₀,
//! length T_d, final factor φ ∈ (0, 1]):
//! * φ(step) = 1 before t₀, then φ^{s} with s = min((step − t₀)/T_d, 1):
//!   geometric from 1 to φ, then φ for the rest of the run.
//!
//!   Why: FKL on a small ensemble is what sets the relative weights of
//!   separated modes, but once they are set it keeps fitting the ensemble's
//!   points (≈ 12 per mode for MOG-8 from 100 samples), an overfitting that
//!   the target terms (RKL, SM on flow samples), whose minimizer is the
//!   target itself, cannot undo while FKL keeps its weight. Decaying FKL
//!   after the weights are in place hands the shapes to the target terms
//!   (docs/THEORY.md §5.5).

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
    /// Linear warm-up to η₀ over `warmup_steps`, η₀ until the last
    /// `decay_steps` steps, then cosine decay to `min_lr` at `total_steps`.
    WarmupStableDecay {
        /// Steps of the linear ramp W.
        warmup_steps: u64,
        /// Steps of the final decay D (W + D ≤ `total_steps`).
        decay_steps: u64,
        /// Total steps T, warm-up and decay included.
        total_steps: u64,
        /// Final learning rate.
        min_lr: f64,
    },
    /// Linear warm-up to η₀ over `warmup_steps`, then cosine decay to
    /// `min_lr` at `total_steps` (counted from step 0).
    WarmupCosine {
        /// Steps of the linear ramp W (< `total_steps`).
        warmup_steps: u64,
        /// Total steps T, warm-up included.
        total_steps: u64,
        /// Final learning rate.
        min_lr: f64,
    },
}

impl LrSchedule {
    /// η at `step` for base rate `lr0`.
    pub fn lr(&self, lr0: f64, step: u64) -> f64 {
        match *self {
            LrSchedule::Constant => lr0,
            LrSchedule::Cosine { total_steps, min_lr } => cosine_decay(lr0, min_lr, step, total_steps),
            LrSchedule::Step { every, gamma } => lr0 * gamma.powi((step / every.max(1)) as i32),
            LrSchedule::WarmupCosine {
                warmup_steps,
                total_steps,
                min_lr,
            } => {
                if step < warmup_steps {
                    warm_up(lr0, step, warmup_steps)
                } else {
                    let span = total_steps.saturating_sub(warmup_steps).max(1);
                    cosine_decay(lr0, min_lr, step - warmup_steps, span)
                }
            }
            LrSchedule::WarmupStableDecay {
                warmup_steps,
                decay_steps,
                total_steps,
                min_lr,
            } => {
                let decay_start = total_steps.saturating_sub(decay_steps);
                if step < warmup_steps {
                    warm_up(lr0, step, warmup_steps)
                } else if step < decay_start {
                    lr0
                } else {
                    cosine_decay(lr0, min_lr, step - decay_start, decay_steps)
                }
            }
        }
    }

    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Cosine { total_steps, min_lr } => {
                positive("lr_schedule.total_steps", total_steps)?;
                min_lr_ok(min_lr)
            }
            LrSchedule::Step { every, gamma } => {
                positive("lr_schedule.every", every)?;
                if !(gamma > 0.0) {
                    return Err(ConfigError::new("lr_schedule.gamma", gamma, "must be > 0"));
                }
                Ok(())
            }
            LrSchedule::WarmupCosine {
                warmup_steps,
                total_steps,
                min_lr,
            } => {
                positive("lr_schedule.warmup_steps", warmup_steps)?;
                if total_steps <= warmup_steps {
                    return Err(ConfigError::new(
                        "lr_schedule.total_steps",
                        total_steps,
                        format!("must exceed warmup_steps = {warmup_steps}"),
                    ));
                }
                min_lr_ok(min_lr)
            }
            LrSchedule::WarmupStableDecay {
                warmup_steps,
                decay_steps,
                total_steps,
                min_lr,
            } => {
                positive("lr_schedule.warmup_steps", warmup_steps)?;
                positive("lr_schedule.decay_steps", decay_steps)?;
                if warmup_steps.saturating_add(decay_steps) > total_steps {
                    return Err(ConfigError::new(
                        "lr_schedule.total_steps",
                        total_steps,
                        format!(
                            "must be at least warmup_steps + decay_steps = {}",
                            warmup_steps + decay_steps
                        ),
                    ));
                }
                min_lr_ok(min_lr)
            }
        }
    }
}

/// A step count that must be > 0.
fn positive(field: &'static str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(field, v, "must be > 0"));
    }
    Ok(())
}

/// The final learning rate of a decay, ≥ 0.
fn min_lr_ok(min_lr: f64) -> Result<(), ConfigError> {
    if !(min_lr >= 0.0) {
        return Err(ConfigError::new("lr_schedule.min_lr", min_lr, "must be >= 0"));
    }
    Ok(())
}

/// Linear warm-up: η₀ (step + 1)/W.
fn warm_up(lr0: f64, step: u64, warmup_steps: u64) -> f64 {
    lr0 * (step + 1) as f64 / warmup_steps as f64
}

/// Cosine decay from η₀ to `min_lr`, `into` steps into a decay of `span` steps.
fn cosine_decay(lr0: f64, min_lr: f64, into: u64, span: u64) -> f64 {
    let s = into.min(span) as f64 / span.max(1) as f64;
    min_lr + 0.5 * (lr0 - min_lr) * (1.0 + (std::f64::consts::PI * s).cos())
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

/// A decay of the FKL weight over training (module docs): w_fkl(step) =
/// w_fkl·φ(step).
///
/// ```toml
/// [fkl_decay]
/// start = 1000     # first step of the decay
/// steps = 500      # its length
/// factor = 0.01    # final factor φ ∈ (0, 1]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FklDecay {
    /// First step t₀ of the decay.
    pub start: u64,
    /// Steps T_d from 1 to the final factor.
    pub steps: u64,
    /// Final factor φ ∈ (0, 1].
    pub factor: f64,
}

impl FklDecay {
    /// The factor φ(step) on the FKL weight.
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.start {
            return 1.0;
        }
        let s = ((step - self.start) as f64 / self.steps.max(1) as f64).min(1.0);
        self.factor.powf(s)
    }

    /// Checks φ ∈ (0, 1] and T_d > 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.factor > 0.0 && self.factor <= 1.0) {
            Err(ConfigError::new("fkl_decay.factor", self.factor, "must be in (0, 1]"))
        } else if self.steps == 0 {
            Err(ConfigError::new("fkl_decay.steps", 0, "must be > 0"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fkl_decay_holds_then_falls_geometrically_to_its_factor() {
        let d = FklDecay {
            start: 100,
            steps: 50,
            factor: 0.01,
        };
        assert_eq!((d.factor(0), d.factor(100)), (1.0, 1.0));
        assert!((d.factor(125) - 0.1).abs() < 1e-15);
        assert!((d.factor(150) - 0.01).abs() < 1e-15);
        assert!((d.factor(10_000) - 0.01).abs() < 1e-15);
        assert!(d.validate().is_ok());
        for bad in [0.0, 1.5, f64::NAN] {
            let e = FklDecay { factor: bad, ..d }.validate().unwrap_err();
            assert!(e.to_string().contains("fkl_decay.factor"), "{e}");
        }
        let e = FklDecay { steps: 0, ..d }.validate().unwrap_err();
        assert!(e.to_string().contains("fkl_decay.steps"), "{e}");
    }

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
    fn warmup_cosine_ramps_then_follows_the_shifted_cosine() {
        let wc = LrSchedule::WarmupCosine {
            warmup_steps: 10,
            total_steps: 110,
            min_lr: 0.01,
        };
        assert!((wc.lr(0.1, 0) - 0.01).abs() < 1e-15);
        assert!((wc.lr(0.1, 4) - 0.05).abs() < 1e-15);
        assert!((wc.lr(0.1, 9) - 0.1).abs() < 1e-15);
        // After the ramp: the cosine of 100 steps, shifted by 10.
        let cos = LrSchedule::Cosine {
            total_steps: 100,
            min_lr: 0.01,
        };
        for step in [10, 11, 35, 60, 109, 110, 1000] {
            assert_eq!(wc.lr(0.1, step), cos.lr(0.1, step - 10), "step {step}");
        }
        assert!((wc.lr(0.1, 110) - 0.01).abs() < 1e-15);
        // Rising during the ramp to η₀ at its last step, where the cosine starts.
        assert!((0..9).all(|t| wc.lr(0.1, t + 1) > wc.lr(0.1, t) && wc.lr(0.1, t) < 0.1));
        assert_eq!(wc.lr(0.1, 9), wc.lr(0.1, 10));
        assert!((10..200).all(|t| wc.lr(0.1, t + 1) <= wc.lr(0.1, t)));
        assert!(wc.validate().is_ok());
        let bad = |w, t, m| LrSchedule::WarmupCosine {
            warmup_steps: w,
            total_steps: t,
            min_lr: m,
        };
        assert_eq!(
            bad(0, 10, 0.0).validate().unwrap_err().field,
            "lr_schedule.warmup_steps"
        );
        assert_eq!(
            bad(10, 10, 0.0).validate().unwrap_err().field,
            "lr_schedule.total_steps"
        );
        assert_eq!(bad(1, 10, -1.0).validate().unwrap_err().field, "lr_schedule.min_lr");
        let parsed: LrSchedule =
            serde_json::from_str(r#"{"kind":"warmup_cosine","warmup_steps":10,"total_steps":110,"min_lr":0.01}"#)
                .unwrap();
        assert_eq!(parsed, wc);
    }

    #[test]
    fn warmup_stable_decay_holds_the_rate_until_the_decay() {
        let wsd = LrSchedule::WarmupStableDecay {
            warmup_steps: 10,
            decay_steps: 20,
            total_steps: 100,
            min_lr: 0.01,
        };
        assert!((wsd.lr(0.1, 0) - 0.01).abs() < 1e-15);
        assert!((0..9).all(|t| wsd.lr(0.1, t + 1) > wsd.lr(0.1, t)));
        assert!((9..=80).all(|t| wsd.lr(0.1, t) == 0.1));
        // The last 20 steps: a cosine of 20 steps from η₀ to η_min.
        let cos = LrSchedule::Cosine {
            total_steps: 20,
            min_lr: 0.01,
        };
        for step in [80, 81, 90, 99, 100, 500] {
            assert_eq!(wsd.lr(0.1, step), cos.lr(0.1, step - 80), "step {step}");
        }
        assert!((wsd.lr(0.1, 90) - 0.055).abs() < 1e-15);
        assert!(wsd.validate().is_ok());
        let bad = |w, d, t| LrSchedule::WarmupStableDecay {
            warmup_steps: w,
            decay_steps: d,
            total_steps: t,
            min_lr: 0.0,
        };
        assert_eq!(bad(0, 5, 10).validate().unwrap_err().field, "lr_schedule.warmup_steps");
        assert_eq!(bad(5, 0, 10).validate().unwrap_err().field, "lr_schedule.decay_steps");
        assert_eq!(bad(5, 6, 10).validate().unwrap_err().field, "lr_schedule.total_steps");
        assert!(bad(5, 5, 10).validate().is_ok());
        let parsed: LrSchedule = serde_json::from_str(
            r#"{"kind":"warmup_stable_decay","warmup_steps":10,"decay_steps":20,"total_steps":100,"min_lr":0.01}"#,
        )
        .unwrap();
        assert_eq!(parsed, wsd);
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
