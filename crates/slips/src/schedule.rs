//! Schedules α(t) of the observation process Y_t = α(t) X + σ W_t and the
//! signal-to-noise-adapted time grid (docs/THEORY.md §6.12).
//!
//! Every schedule is written α(t) = g(t) √t: since W_t has variance t, the
//! signal-to-noise ratio of Y_t is α(t)²/t = g(t)² (in units of 1/σ², the
//! noise scale σ being a separate setting). SLIPS (Grenioux, Noble, Gabrié,
//! Durmus, ICML 2024, arXiv 2402.10758) uses two families:
//!
//! * **classic** stochastic localization, α(t) = t (g(t)² = t), on the
//!   infinite horizon t ∈ (0, ∞), stopped at a large t_end;
//! * **geometric**, on the finite horizon t ∈ (0, 1):
//!   g(t) = t^{a/2} (1 − t)^{−b/2}, i.e. α(t) = t^{(a+1)/2} (1 − t)^{−b/2},
//!   with a ≥ 1, b > 0; the paper's experiments use (a, b) = (1, 1) and (2, 1).
//!
//! The log-SNR λ(t) = log g(t)² increases strictly from −∞ to +∞, so it has
//! an inverse. The **SNR-adapted grid** of K steps places K + 1 times so that
//! λ is uniform between λ(t₀) and λ(t_end): the steps are short where the
//! posterior changes fast (high SNR) and long where it does not.

use fieldflow_core::ConfigError;
use serde::{Deserialize, Serialize};

/// A schedule α(t) = g(t) √t (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// α(t) = t on (0, ∞).
    Classic,
    /// α(t) = t^{(a+1)/2} (1 − t)^{−b/2} on (0, 1).
    Geometric {
        /// Exponent a ≥ 1 of t.
        a: f64,
        /// Exponent b > 0 of 1/(1 − t).
        b: f64,
    },
}

impl Default for Schedule {
    /// The paper's geometric schedule with (a, b) = (1, 1).
    fn default() -> Self {
        Schedule::Geometric { a: 1.0, b: 1.0 }
    }
}

impl Schedule {
    /// Checks the parameters; `field` prefixes the error's field name.
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if let Schedule::Geometric { a, b } = *self {
            if !(a >= 1.0) || !a.is_finite() {
                return Err(ConfigError::new(format!("{field}.a"), a, "must be a finite number ≥ 1"));
            }
            if !(b > 0.0) || !b.is_finite() {
                return Err(ConfigError::new(format!("{field}.b"), b, "must be a finite number > 0"));
            }
        }
        Ok(())
    }

    /// The end of the time domain: 1 (geometric) or +∞ (classic).
    pub fn horizon(&self) -> f64 {
        match self {
            Schedule::Classic => f64::INFINITY,
            Schedule::Geometric { .. } => 1.0,
        }
    }

    /// α(t).
    pub fn alpha(&self, t: f64) -> f64 {
        match *self {
            Schedule::Classic => t,
            Schedule::Geometric { a, b } => t.powf(0.5 * (a + 1.0)) * (1.0 - t).powf(-0.5 * b),
        }
    }

    /// α′(t) = α(t) [(a + 1)/(2t) + b/(2(1 − t))] (geometric), 1 (classic).
    pub fn alpha_dot(&self, t: f64) -> f64 {
        match *self {
            Schedule::Classic => 1.0,
            Schedule::Geometric { a, b } => self.alpha(t) * (0.5 * (a + 1.0) / t + 0.5 * b / (1.0 - t)),
        }
    }

    /// The log signal-to-noise ratio λ(t) = log g(t)² = log(α(t)²/t).
    pub fn log_snr(&self, t: f64) -> f64 {
        match *self {
            Schedule::Classic => t.ln(),
            Schedule::Geometric { a, b } => a * t.ln() - b * (-t).ln_1p(),
        }
    }

    /// The time t with λ(t) = `lambda` (closed form for classic and for
    /// geometric with a = b, where λ = a log(t/(1 − t)); bisection in log
    /// t/(1 − t) otherwise, to full f64 precision).
    pub fn time_of_log_snr(&self, lambda: f64) -> f64 {
        match *self {
            Schedule::Classic => lambda.exp(),
            Schedule::Geometric { a, b } if a == b => sigmoid(lambda / a),
            Schedule::Geometric { .. } => {
                // λ is increasing in u = logit(t); bracket then bisect.
                let (mut lo, mut hi) = (-1.0, 1.0);
                while self.log_snr(sigmoid(lo)) > lambda {
                    lo *= 2.0;
                }
                while self.log_snr(sigmoid(hi)) < lambda {
                    hi *= 2.0;
                }
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if mid <= lo || mid >= hi {
                        break;
                    }
                    if self.log_snr(sigmoid(mid)) < lambda {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                sigmoid(0.5 * (lo + hi))
            }
        }
    }

    /// The SNR-adapted grid t₀ < t₁ < … < t_K = t_end: λ(t_k) uniform
    /// between λ(t₀) and λ(t_end) (module docs). The first and last points
    /// are exactly `t0` and `t_end`.
    pub fn snr_grid(&self, t0: f64, t_end: f64, steps: usize) -> Vec<f64> {
        let (l0, l1) = (self.log_snr(t0), self.log_snr(t_end));
        let mut ts: Vec<f64> = (0..=steps)
            .map(|k| self.time_of_log_snr(l0 + (l1 - l0) * k as f64 / steps as f64))
            .collect();
        ts[0] = t0;
        ts[steps] = t_end;
        ts
    }
}

fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_testkit::{central_derivative, rel_err, FD_REL_TOL, FD_STEP};

    const SCHEDULES: [Schedule; 4] = [
        Schedule::Classic,
        Schedule::Geometric { a: 1.0, b: 1.0 },
        Schedule::Geometric { a: 2.0, b: 1.0 },
        Schedule::Geometric { a: 1.5, b: 0.5 },
    ];

    #[test]
    fn alpha_dot_matches_central_differences() {
        for s in SCHEDULES {
            for t in [0.05, 0.3, 0.5, 0.9] {
                let fd = central_derivative(|u| s.alpha(u), t, FD_STEP * t.min(1.0 - t));
                let e = rel_err(&[s.alpha_dot(t)], &[fd]);
                assert!(e < FD_REL_TOL, "{s:?} t = {t}: {} vs {fd} (rel {e})", s.alpha_dot(t));
            }
        }
    }

    #[test]
    fn log_snr_is_log_alpha_squared_over_t_and_inverts() {
        for s in SCHEDULES {
            for t in [1e-3, 0.1, 0.5, 0.99] {
                let l = s.log_snr(t);
                assert!((l - (s.alpha(t).powi(2) / t).ln()).abs() < 1e-12, "{s:?} t = {t}");
                let back = s.time_of_log_snr(l);
                assert!((back - t).abs() < 1e-12 * t.max(1e-3) + 1e-15, "{s:?} t = {t}: {back}");
            }
        }
    }

    #[test]
    fn snr_grid_is_increasing_with_uniform_log_snr() {
        for s in SCHEDULES {
            let ts = s.snr_grid(0.1, 0.99, 50);
            assert_eq!(ts.len(), 51);
            assert_eq!((ts[0], ts[50]), (0.1, 0.99));
            let dl = (s.log_snr(0.99) - s.log_snr(0.1)) / 50.0;
            for k in 0..50 {
                assert!(ts[k + 1] > ts[k]);
                let step = s.log_snr(ts[k + 1]) - s.log_snr(ts[k]);
                assert!((step - dl).abs() < 1e-9, "{s:?} k = {k}: {step} vs {dl}");
            }
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = Schedule::Geometric { a: 0.5, b: 1.0 }
            .validate("sampler.schedule")
            .unwrap_err();
        assert_eq!(e.field, "sampler.schedule.a");
        let e = Schedule::Geometric { a: 1.0, b: f64::NAN }.validate("s").unwrap_err();
        assert_eq!(e.field, "s.b");
    }
}
