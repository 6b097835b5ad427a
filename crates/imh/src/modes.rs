//! Mode diagnostics (docs/THEORY.md §8.5–§8.6): how a sampler distributes its mass over
//! the modes of a multimodal target, against the truth.
//!
//! * raw weights from independent draws, with binomial errors
//!   √(ŵ(1 − ŵ)/N);
//! * reweighted weights ŵ_k = Σ wᵢ 1[mᵢ = k] / Σ wᵢ (self-normalized
//!   importance sampling, delta-method errors);
//! * weights from Markov chains (IMH, HMC), with Γ-method errors over the
//!   chains as replica;
//! * against the truth: total-variation distance, collapse and covering,
//!   defined once in [`fieldflow_stats::diagnostics`] (re-exported here).

use fieldflow_stats::diagnostics::{self, COLLAPSE_FRACTION};
pub use fieldflow_stats::diagnostics::{collapsed, total_variation};
use fieldflow_stats::{gamma_primary, self_normalized_mean, GammaConfig, StatsError};
use serde::Serialize;

/// Estimated mode weights with errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeWeights {
    /// ŵ_k.
    pub weights: Vec<f64>,
    /// Their errors.
    pub errors: Vec<f64>,
}

/// Raw weights of independent draws with mode labels `assign`.
pub fn raw_mode_weights(assign: &[usize], n_modes: usize) -> ModeWeights {
    let n = assign.len().max(1) as f64;
    let mut counts = vec![0usize; n_modes];
    for &m in assign {
        counts[m] += 1;
    }
    let weights: Vec<f64> = counts.iter().map(|&c| c as f64 / n).collect();
    let errors = weights.iter().map(|w| (w * (1.0 - w) / n).sqrt()).collect();
    ModeWeights { weights, errors }
}

/// Self-normalized importance-weighted mode weights.
pub fn reweighted_mode_weights(assign: &[usize], log_w: &[f64], n_modes: usize) -> Result<ModeWeights, StatsError> {
    let mut weights = Vec::with_capacity(n_modes);
    let mut errors = Vec::with_capacity(n_modes);
    for k in 0..n_modes {
        let ind: Vec<f64> = assign.iter().map(|&m| (m == k) as u8 as f64).collect();
        let r = self_normalized_mean(log_w, &ind)?;
        weights.push(r.value);
        errors.push(r.error);
    }
    Ok(ModeWeights { weights, errors })
}

/// Mode weights of Markov chains (one label sequence per chain), with
/// Γ-method errors that account for autocorrelation.
pub fn chain_mode_weights(chains: &[Vec<usize>], n_modes: usize) -> Result<ModeWeights, StatsError> {
    let mut weights = Vec::with_capacity(n_modes);
    let mut errors = Vec::with_capacity(n_modes);
    for k in 0..n_modes {
        let ind: Vec<Vec<f64>> = chains
            .iter()
            .map(|c| c.iter().map(|&m| (m == k) as u8 as f64).collect())
            .collect();
        let r = gamma_primary(&ind, &GammaConfig::default())?;
        weights.push(r.value);
        errors.push(r.error);
    }
    Ok(ModeWeights { weights, errors })
}

/// Fraction of `sampler_log_p` below the `quantile` (e.g. 0.001) of
/// `target_log_p` (a NaN draw counts as below; see
/// [`fieldflow_stats::diagnostics`]).
///
/// # Panics
/// If `target_log_p` is empty.
pub fn covering_fraction(sampler_log_p: &[f64], target_log_p: &[f64], quantile: f64) -> f64 {
    diagnostics::covering_fraction(sampler_log_p, diagnostics::covering_threshold(target_log_p, quantile))
}

/// Everything docs/THEORY.md §8.5–§8.6 asks about a sampler's modes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeReport {
    /// True weights.
    pub truth: Vec<f64>,
    /// Estimated weights.
    pub estimate: ModeWeights,
    /// Total-variation distance to the truth.
    pub tv: f64,
    /// Collapsed modes (weight < ½ truth).
    pub collapsed: Vec<bool>,
    /// Largest |ŵ − w|/σ over the modes.
    pub max_deviation_sigma: f64,
}

impl ModeReport {
    /// Compares `estimate` with `truth`.
    pub fn new(estimate: ModeWeights, truth: &[f64]) -> Self {
        let max_dev = estimate
            .weights
            .iter()
            .zip(&estimate.errors)
            .zip(truth)
            .map(|((w, e), t)| {
                if *e > 0.0 {
                    (w - t).abs() / e
                } else if w == t {
                    0.0
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0, f64::max);
        ModeReport {
            truth: truth.to_vec(),
            tv: total_variation(&estimate.weights, truth),
            collapsed: collapsed(&estimate.weights, truth, COLLAPSE_FRACTION),
            max_deviation_sigma: max_dev,
            estimate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_weights_count_and_binomial_errors() {
        let w = raw_mode_weights(&[0, 1, 1, 2, 1, 0, 1, 1], 3);
        assert_eq!(w.weights, vec![0.25, 0.625, 0.125]);
        assert!((w.errors[0] - (0.25f64 * 0.75 / 8.0).sqrt()).abs() < 1e-15);
        assert!((total_variation(&w.weights, &[0.25, 0.5, 0.25]) - 0.125).abs() < 1e-15);
        assert_eq!(collapsed(&w.weights, &[0.25, 0.5, 0.3], 0.5), vec![false, false, true]);
    }

    #[test]
    fn reweighting_with_equal_weights_equals_counting() {
        let a = [0, 1, 1, 0, 1];
        let r = reweighted_mode_weights(&a, &[0.3; 5], 2).unwrap();
        assert!((r.weights[1] - 0.6).abs() < 1e-15);
        // Doubling the weight of mode 0 draws shifts the estimate to 4/7.
        let lw: Vec<f64> = a.iter().map(|&m| if m == 0 { 2f64.ln() } else { 0.0 }).collect();
        let r = reweighted_mode_weights(&a, &lw, 2).unwrap();
        assert!((r.weights[0] - 4.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn covering_counts_draws_below_the_target_quantile() {
        let target: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        // The 0.1 % quantile of 0..999 is 1: draws at 0.5 and −3 are below it.
        assert_eq!(covering_fraction(&[0.5, -3.0, 10.0, 500.0], &target, 0.001), 0.5);
    }
}
