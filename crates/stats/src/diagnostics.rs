//! Sampler diagnostics from importance log-weights and mode assignments,
//! shared by training metrics and sampling reports.
//!
//! Draws x_i ~ q (i = 1 … N) of a sampler q for a target p ∝ p̃ carry
//! log-weights ℓ_i = log p̃(x_i) − log q(x_i).
//!
//! * **ESS**: the normalized effective sample size (Σw)²/(N Σw²), see
//!   [`ess_normalized`](crate::ess_normalized) (re-exported here).
//! * **IMH decision** ([`imh_accept`]): an independence-Metropolis chain at x
//!   proposes x′ ~ q and accepts with probability min(1, w(x′)/w(x)), i.e.
//!   accept ⇔ ln u < ℓ(x′) − ℓ(x), u ~ U(0, 1). Non-finite log-weights
//!   follow one rule:
//!   - a proposal with ℓ(x′) = NaN, −∞ **or +∞** is rejected. −∞ is exact
//!     (w = 0 is never accepted). NaN and +∞ are numerical failures, not
//!     weights: +∞ means log q(x′) = −∞ for a point q has just drawn, or an
//!     overflow of log p̃. Accepting it would also absorb the chain for good
//!     (from ℓ = +∞ no finite proposal is ever accepted), so it is rejected
//!     and shows up as a rejection;
//!   - a current state with a non-finite ℓ (possible only at the start of a
//!     chain, since non-finite proposals are never accepted) accepts the
//!     first proposal with a finite ℓ.
//! * **IMH acceptance estimate** ([`imh_acceptance`]): the rule above run
//!   through a batch of independent draws in order (the first starts the
//!   chain), accepted / (N − 1): an estimate of the acceptance rate of IMH
//!   with proposal q without running a sampler.
//! * **Total variation** ([`total_variation`]): ½ Σ_k |ŵ_k − w_k| between
//!   estimated and true mode weights.
//! * **Collapse** ([`collapsed`]): mode k is collapsed when its sampler
//!   weight is below `fraction` (conventionally [`COLLAPSE_FRACTION`] = ½)
//!   of its true weight.
//! * **Covering** ([`covering_threshold`], [`covering_fraction`]): the
//!   fraction of sampler draws whose log p̃ lies below the
//!   [`COVERING_QUANTILE`] (0.1 %) lower empirical quantile of log p̃ over
//!   target samples — mass spilled where the target has next to none. A
//!   draw whose log p̃ is NaN counts as spilled.

use fieldflow_core::Seed;
use rand::Rng as _;

pub use crate::weights::ess_normalized;

/// Quantile of log p̃ over target samples below which a sampler draw counts
/// as spilled (the covering figure): 0.1 %.
pub const COVERING_QUANTILE: f64 = 1e-3;

/// Fraction of its true weight below which a mode counts as collapsed: ½.
pub const COLLAPSE_FRACTION: f64 = 0.5;

/// The IMH decision for current log-weight `log_w_current`, proposed
/// `log_w_proposed` and a uniform `u` ∈ [0, 1) (module docs, including the
/// rule for non-finite log-weights).
pub fn imh_accept(log_w_current: f64, log_w_proposed: f64, u: f64) -> bool {
    if !log_w_proposed.is_finite() {
        return false;
    }
    if !log_w_current.is_finite() {
        return true;
    }
    u.ln() < log_w_proposed - log_w_current
}

/// Estimated IMH acceptance of a batch of independent log-weights visited
/// in order (module docs); the uniforms come from `seed`, one per later
/// draw. NaN for fewer than two draws.
pub fn imh_acceptance(log_w: &[f64], seed: Seed) -> f64 {
    if log_w.len() < 2 {
        return f64::NAN;
    }
    let mut rng = seed.rng();
    let mut current = log_w[0];
    let mut accepted = 0usize;
    for &proposed in &log_w[1..] {
        let u: f64 = rng.random();
        if imh_accept(current, proposed, u) {
            current = proposed;
            accepted += 1;
        }
    }
    accepted as f64 / (log_w.len() - 1) as f64
}

/// Total-variation distance ½ Σ |a_k − b_k|.
pub fn total_variation(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

/// Per-mode collapse flags: sampler weight below `fraction` × true weight.
pub fn collapsed(weights: &[f64], truth: &[f64], fraction: f64) -> Vec<bool> {
    weights.iter().zip(truth).map(|(w, t)| *w < fraction * t).collect()
}

/// The `quantile` lower empirical quantile of `target_log_p` (entry
/// ⌊q·N⌋ of the sorted values, NaNs last): the covering threshold.
///
/// # Panics
/// If `target_log_p` is empty.
pub fn covering_threshold(target_log_p: &[f64], quantile: f64) -> f64 {
    assert!(!target_log_p.is_empty(), "no target samples for the covering quantile");
    let mut sorted = target_log_p.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = ((quantile * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    sorted[k]
}

/// Fraction of `sampler_log_p` not at or above `threshold` (below it, or
/// NaN). NaN for no draws.
pub fn covering_fraction(sampler_log_p: &[f64], threshold: f64) -> f64 {
    let spilled = sampler_log_p.iter().filter(|&&l| !(l >= threshold)).count();
    spilled as f64 / sampler_log_p.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn imh_accept_is_the_metropolis_rule_for_finite_weights() {
        // ln u < Δ: with u = e^{-1}, Δ = −1 is a tie (rejected), −0.99 accepted.
        let u = (-1.0f64).exp();
        assert!(!imh_accept(0.0, -1.0, u));
        assert!(imh_accept(0.0, -0.99, u));
        assert!(imh_accept(3.0, 5.0, 0.999_999));
        // u = 0 (ln u = −∞) accepts any finite proposal.
        assert!(imh_accept(10.0, -10.0, 0.0));
    }

    #[test]
    fn non_finite_proposals_are_rejected_whatever_the_current_state() {
        for current in [0.0, -5.0, 7.0, f64::NEG_INFINITY, f64::NAN, INF] {
            for proposed in [INF, f64::NEG_INFINITY, f64::NAN] {
                for u in [0.0, 0.5, 0.999] {
                    assert!(
                        !imh_accept(current, proposed, u),
                        "current {current} proposed {proposed} u {u}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_non_finite_start_takes_the_first_finite_proposal() {
        for current in [f64::NEG_INFINITY, f64::NAN, INF] {
            assert!(imh_accept(current, -1e300, 0.999));
        }
        // A chain started at +∞ is not absorbed there.
        assert_eq!(imh_acceptance(&[INF, 0.0, 0.0], Seed::new(1)), 1.0);
        // +∞ proposals are rejections: (finite, +∞, finite equal) → 1 of 2.
        assert_eq!(imh_acceptance(&[0.0, INF, 0.0], Seed::new(1)), 0.5);
    }

    #[test]
    fn imh_acceptance_of_equal_weights_is_one_and_of_vanishing_ratios_zero() {
        assert_eq!(imh_acceptance(&[0.3; 100], Seed::new(4)), 1.0);
        assert!(imh_acceptance(&[1.0], Seed::new(4)).is_nan());
        // Ratios e^{-1000}: rejected for every u > e^{-1000}.
        assert_eq!(imh_acceptance(&[0.0, -1000.0, -1000.0, -2000.0], Seed::new(2)), 0.0);
    }

    #[test]
    fn imh_acceptance_matches_the_exact_rate_statistically() {
        // Alternating weights w = 1 (even draws) and w = ½ (odd draws). An
        // even proposal is always accepted (ratio ≥ 1), so every odd proposal
        // meets a current w = 1 and is accepted with probability ½: the
        // exact rate is (1 + ½)/2 = ¾, with binomial σ = √(¼·n_odd)/(n − 1).
        let n = 20_001;
        let lw: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 0.0 } else { -(2f64.ln()) }).collect();
        let acc = imh_acceptance(&lw, Seed::new(9));
        let exact = 0.75;
        let sigma = (0.25 * ((n - 1) / 2) as f64).sqrt() / (n - 1) as f64;
        assert!(
            (acc - exact).abs() < 4.0 * sigma,
            "acceptance {acc}, exact {exact} ± {sigma}"
        );
    }

    #[test]
    fn total_variation_and_collapse() {
        let w = [0.25, 0.625, 0.125];
        assert!((total_variation(&w, &[0.25, 0.5, 0.25]) - 0.125).abs() < 1e-15);
        assert_eq!(
            collapsed(&w, &[0.25, 0.5, 0.3], COLLAPSE_FRACTION),
            vec![false, false, true]
        );
    }

    #[test]
    fn covering_counts_draws_below_the_target_quantile_and_nan() {
        let target: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        // The 0.1 % quantile of 0..999 is 1: draws at 0.5 and −3 are below it.
        let th = covering_threshold(&target, COVERING_QUANTILE);
        assert_eq!(th, 1.0);
        assert_eq!(covering_fraction(&[0.5, -3.0, 10.0, 500.0], th), 0.5);
        assert_eq!(covering_fraction(&[f64::NAN, 1.0, 10.0, 500.0], th), 0.25);
    }
}
