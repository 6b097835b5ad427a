//! Importance-weight tools (docs/THEORY.md §7.9): log-sum-exp, effective sample
//! size, self-normalized estimators and the normalizing-constant estimate.
//!
//! Samples x_i ~ q (i = 1 … N, independent) carry log-weights
//! log w_i = log p̃(x_i) − log q(x_i).
//! - log-sum-exp: LSE(ℓ) = m + ln Σ_i exp(ℓ_i − m), m = max_i ℓ_i (no
//!   overflow, no underflow of the largest term).
//! - Normalized ESS = (Σw)²/(N Σw²) = exp(2 LSE(ℓ) − LSE(2ℓ) − ln N) ∈ [1/N, 1].
//! - Self-normalized estimator ⟨O⟩ ≈ Ô = Σ w_i O_i / Σ w_i = Σ w̃_i O_i with
//!   w̃_i = w_i/Σ_j w_j; delta-method error (first order in 1/N):
//!   Var Ô ≈ Σ_i w̃_i² (O_i − Ô)².
//! - log Ẑ = LSE(ℓ) − ln N (Ẑ = mean of w, unbiased for Z = ∫p̃; log Ẑ is
//!   biased by −Var(w)/(2N Z²) at first order). Delta method:
//!   Var log Ẑ ≈ Var(w)/(N w̄²) = (1/ESS − 1)/(N − 1) with the normalized ESS
//!   and the unbiased sample variance. Bootstrap variant: resample the N
//!   weights with replacement (seeded), standard deviation of log Ẑ*.
//! - Two complementary weights w₀ + w₁ = 1 with error σ (the same for
//!   both): ln(w₁/w₀) with error σ/(w₀w₁) (delta method,
//!   d ln(w₁/w₀)/dw₁ = 1/w₁ + 1/w₀).

use crate::StatsError;
use fieldflow_core::Seed;
use rand::Rng as _;

/// Numerically stable ln Σ_i exp(x_i).
///
/// Returns −∞ for an empty slice or when every entry is −∞, +∞ if an entry
/// is +∞, and NaN if an entry is NaN.
pub fn log_sum_exp(x: &[f64]) -> f64 {
    let mut m = f64::NEG_INFINITY;
    for &v in x {
        if v.is_nan() {
            return f64::NAN;
        }
        m = m.max(v);
    }
    if m.is_infinite() {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// The index drawn from the categorical distribution ∝ `weights` (≥ 0,
/// not all 0) by the uniform `u` ∈ [0, 1): the first i with
/// u Σw < w₀ + … + wᵢ, by subtraction (the last index if round-off leaves
/// nothing).
pub fn inverse_cdf(weights: &[f64], u: f64) -> usize {
    let mut t = u * weights.iter().sum::<f64>();
    for (i, &w) in weights.iter().enumerate() {
        if t < w {
            return i;
        }
        t -= w;
    }
    weights.len() - 1
}

/// Refuses a NaN or +∞ log-weight (−∞, a zero weight, is allowed), naming
/// the first.
pub(crate) fn refuse_nan_and_infinity(log_w: &[f64]) -> Result<(), StatsError> {
    match log_w
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_nan() || **v == f64::INFINITY)
    {
        Some((i, &v)) => Err(StatsError::NonFinite {
            replica: 0,
            index: i,
            observable: 0,
            value: v,
        }),
        None => Ok(()),
    }
}

/// Checks log-weights: non-empty, no NaN or +∞ (−∞, a zero weight, is
/// allowed), not all −∞. Returns LSE(ℓ).
fn check_log_weights(log_w: &[f64]) -> Result<f64, StatsError> {
    if log_w.is_empty() {
        return Err(StatsError::NoData);
    }
    refuse_nan_and_infinity(log_w)?;
    let lse = log_sum_exp(log_w);
    if lse == f64::NEG_INFINITY {
        return Err(StatsError::ZeroWeights);
    }
    Ok(lse)
}

/// ln(w₁/w₀) of two complementary weights (w₀ + w₁ = 1) and its error
/// σ/(w₀w₁) from their common error σ (module docs).
pub fn complement_log_ratio(w0: f64, w1: f64, sigma: f64) -> (f64, f64) {
    ((w1 / w0).ln(), sigma / (w0 * w1))
}

/// Normalized effective sample size (Σw)²/(N Σw²) ∈ [1/N, 1] from log-weights.
pub fn ess_normalized(log_w: &[f64]) -> Result<f64, StatsError> {
    let lse = check_log_weights(log_w)?;
    let twice: Vec<f64> = log_w.iter().map(|l| 2.0 * l).collect();
    let ess = (2.0 * lse - log_sum_exp(&twice) - (log_w.len() as f64).ln()).exp();
    Ok(ess.min(1.0))
}

/// A self-normalized importance-sampling estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightedMean {
    /// Ô = Σ w O / Σ w.
    pub value: f64,
    /// Delta-method error √(Σ w̃² (O − Ô)²).
    pub error: f64,
    /// Normalized ESS of the weights.
    pub ess: f64,
}

/// Self-normalized estimate of ⟨O⟩_p from log-weights and per-sample values.
pub fn self_normalized_mean(log_w: &[f64], obs: &[f64]) -> Result<WeightedMean, StatsError> {
    let lse = check_log_weights(log_w)?;
    if obs.len() != log_w.len() {
        return Err(StatsError::LengthMismatch {
            what: "observables",
            expected: log_w.len(),
            found: obs.len(),
        });
    }
    if let Some((i, &v)) = obs.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(StatsError::NonFinite {
            replica: 0,
            index: i,
            observable: 0,
            value: v,
        });
    }
    let wn: Vec<f64> = log_w.iter().map(|l| (l - lse).exp()).collect();
    let value: f64 = wn.iter().zip(obs).map(|(w, o)| w * o).sum();
    let var: f64 = wn.iter().zip(obs).map(|(w, o)| (w * (o - value)).powi(2)).sum();
    let sum_w2: f64 = wn.iter().map(|w| w * w).sum();
    Ok(WeightedMean {
        value,
        error: var.sqrt(),
        ess: (1.0 / (log_w.len() as f64 * sum_w2)).min(1.0),
    })
}

/// Estimate of log Z with its error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogZReport {
    /// log Ẑ = LSE(log w) − ln N.
    pub log_z: f64,
    /// Error of log Ẑ (delta method or bootstrap, see the producing function).
    pub error: f64,
    /// Normalized ESS of the weights.
    pub ess: f64,
    /// Number of samples N.
    pub n: usize,
}

/// log Ẑ = LSE(log w) − ln N with the delta-method error √((1/ESS − 1)/(N − 1)).
pub fn log_z(log_w: &[f64]) -> Result<LogZReport, StatsError> {
    let lse = check_log_weights(log_w)?;
    let n = log_w.len();
    if n < 2 {
        return Err(StatsError::TooFewSamples {
            what: "the error of log Z",
            n,
            min: 2,
        });
    }
    let ess = ess_normalized(log_w)?;
    Ok(LogZReport {
        log_z: lse - (n as f64).ln(),
        error: ((1.0 / ess - 1.0).max(0.0) / (n as f64 - 1.0)).sqrt(),
        ess,
        n,
    })
}

/// log Ẑ as [`log_z`], with the error from `n_boot` (≥ 2) seeded bootstrap
/// resamples of the weights.
pub fn log_z_bootstrap(log_w: &[f64], n_boot: usize, seed: Seed) -> Result<LogZReport, StatsError> {
    let mut rep = log_z(log_w)?;
    if n_boot < 2 {
        return Err(fieldflow_core::ConfigError::new("n_boot", n_boot, "must be >= 2").into());
    }
    let n = log_w.len();
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - m).exp()).collect();
    let mut rng = seed.rng();
    let reps: Vec<f64> = (0..n_boot)
        .map(|_| {
            let s: f64 = (0..n).map(|_| w[rng.random_range(0..n)]).sum();
            m + (s / n as f64).ln()
        })
        .collect();
    // A resample of only zero weights gives −∞: it is counted as such would
    // make the spread infinite, so such (astronomically rare) resamples are
    // skipped.
    let finite: Vec<f64> = reps.into_iter().filter(|v| v.is_finite()).collect();
    let k = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / k;
    rep.error = (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of ln(w₁/w₀) with w₀ = 1 − w₁ is σ |d ln(w₁/(1 − w₁))/dw₁|,
    /// against a central difference.
    #[test]
    fn complement_log_ratio_error_is_the_delta_method() {
        let (w1, sigma, h) = (0.3, 0.01, 1e-6);
        let f = |w: f64| (w / (1.0 - w)).ln();
        let (r, e) = complement_log_ratio(1.0 - w1, w1, sigma);
        assert!((r - f(w1)).abs() < 1e-15);
        let fd = sigma * (f(w1 + h) - f(w1 - h)) / (2.0 * h);
        assert!((e - fd).abs() < 1e-6 * fd, "{e} vs {fd}");
    }

    #[test]
    fn inverse_cdf_picks_by_cumulative_weight_and_never_a_zero_one() {
        // Weights 1, 1, 0, 2 (sum 4, exact in f64): index 0 on [0, ¼), 1 on
        // [¼, ½), 3 on [½, 1); index 2 never.
        let w = [1.0, 1.0, 0.0, 2.0];
        for (u, j) in [(0.0, 0), (0.2499, 0), (0.25, 1), (0.4999, 1), (0.5, 3), (0.9999, 3)] {
            assert_eq!(inverse_cdf(&w, u), j, "u = {u}");
        }
    }

    #[test]
    fn log_sum_exp_survives_huge_and_tiny_values() {
        let x = [1000.0, 1000.0];
        assert!((log_sum_exp(&x) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        let y = [-1000.0, -1000.0 + 3f64.ln()];
        assert!((log_sum_exp(&y) - (-1000.0 + 4f64.ln())).abs() < 1e-12);
        let z = [700.0, -700.0, f64::NEG_INFINITY];
        assert!((log_sum_exp(&z) - 700.0).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[1.0, f64::INFINITY]), f64::INFINITY);
        assert!(log_sum_exp(&[1.0, f64::NAN]).is_nan());
    }

    #[test]
    fn ess_limits() {
        let equal = vec![-3.7; 50];
        assert!((ess_normalized(&equal).unwrap() - 1.0).abs() < 1e-12);
        let mut dominant = vec![-800.0; 50];
        dominant[17] = 800.0;
        assert!((ess_normalized(&dominant).unwrap() - 1.0 / 50.0).abs() < 1e-12);
        // Two equal weights among zeros: ESS = 4/(N·2) = 2/N.
        let mut two = vec![f64::NEG_INFINITY; 10];
        two[1] = 5.0;
        two[8] = 5.0;
        assert!((ess_normalized(&two).unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(
            ess_normalized(&[f64::NEG_INFINITY; 4]).unwrap_err(),
            StatsError::ZeroWeights
        );
        assert!(matches!(
            ess_normalized(&[0.0, f64::NAN]).unwrap_err(),
            StatsError::NonFinite { index: 1, .. }
        ));
    }

    #[test]
    fn self_normalized_mean_by_hand() {
        // w = (1, 3): Ô = (1·2 + 3·4)/4 = 3.5; w̃ = (¼, ¾);
        // Var = (¼·1.5)² + (¾·0.5)² = 0.140625 + 0.140625.
        let lw = [0.0 + 100.0, 3f64.ln() + 100.0];
        let r = self_normalized_mean(&lw, &[2.0, 4.0]).unwrap();
        assert!((r.value - 3.5).abs() < 1e-12);
        assert!((r.error - 0.28125f64.sqrt()).abs() < 1e-12);
        assert!((r.ess - 16.0 / 20.0).abs() < 1e-12);
        assert!(self_normalized_mean(&lw, &[1.0]).is_err());
    }

    #[test]
    fn log_z_by_hand() {
        // w = (1, 3): Ẑ = 2, ESS = 16/(2·10) = 0.8, Var log Ẑ = (1/0.8 − 1)/1.
        let lw = [0.0, 3f64.ln()];
        let r = log_z(&lw).unwrap();
        assert!((r.log_z - 2f64.ln()).abs() < 1e-12);
        assert!((r.error - 0.5).abs() < 1e-12);
    }
}
