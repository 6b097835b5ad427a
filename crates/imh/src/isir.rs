//! The selection rule of i-SIR, iterated sampling importance resampling
//! (Andrieu, Lee and Vihola 2018; with flows: Samsonov et al. 2022,
//! Grenioux et al. arXiv 2302.04763), docs/THEORY.md §6.7.
//!
//! From the current state x₀ draw K proposals x₁ … x_K ~ q independently,
//! form the importance weights wⱼ = p̃(xⱼ)/q(xⱼ) for j = 0 … K (the current
//! state included) and move to x_J with
//!
//! ```text
//! P(J = j) = w̄ⱼ = wⱼ / Σ_{k=0}^{K} w_k .
//! ```
//!
//! The kernel leaves p invariant for every K ≥ 1; K = 1 is Barker's
//! acceptance w₁/(w₀ + w₁) with the independent proposal q.
//!
//! **Computation.** Only log-weights ℓⱼ = ln wⱼ are available and they
//! overflow as weights, so with m = maxⱼ ℓⱼ (over the finite ℓⱼ) the weights
//! are taken as ωⱼ = exp(ℓⱼ − m) ∈ (0, 1] (the largest is 1, so the sum
//! S = Σ ωⱼ ∈ [1, K + 1] neither overflows nor underflows), and J is drawn by
//! the inverse CDF with one uniform u ∈ [0, 1):
//!
//! ```text
//! J = min { j : Σ_{k ≤ j} ω_k > u S } .
//! ```
//!
//! **Non-finite weights** (NaN, ±∞; docs/THEORY.md §1.4) count as weight zero:
//! such a proposal is never selected, and a current state with a non-finite
//! weight is left for a proposal with certainty when one has a finite weight.
//! If no weight is finite the chain stays (J = 0).

/// The weight ωⱼ = exp(ℓⱼ − m) of log-weight `l` relative to the shift `m`;
/// zero for a non-finite `l`.
fn shifted_weight(l: f64, m: f64) -> f64 {
    if l.is_finite() {
        (l - m).exp()
    } else {
        0.0
    }
}

/// The shift m = max of the finite log-weights and the sum S of the shifted
/// weights; `None` if no log-weight is finite.
fn shift_and_sum(log_w: &[f64]) -> Option<(f64, f64)> {
    let m = log_w
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return None;
    }
    Some((m, log_w.iter().map(|&l| shifted_weight(l, m)).sum()))
}

/// The selection probabilities w̄ⱼ = wⱼ / Σ_k w_k of the i-SIR draw for the
/// log-weights `log_w` (index 0 = current state), written to `out`; with no
/// finite weight, all mass on index 0. These are the probabilities with which
/// [`isir_select`] picks each index.
///
/// # Panics
/// If `out.len() != log_w.len()` or `log_w` is empty.
pub fn isir_probabilities(log_w: &[f64], out: &mut [f64]) {
    assert_eq!(out.len(), log_w.len(), "one probability per log-weight");
    assert!(!log_w.is_empty(), "at least the current state's weight");
    match shift_and_sum(log_w) {
        Some((m, s)) => {
            for (o, &l) in out.iter_mut().zip(log_w) {
                *o = shifted_weight(l, m) / s;
            }
        }
        None => {
            out.fill(0.0);
            out[0] = 1.0;
        }
    }
}

/// The i-SIR draw: the index J ∈ 0 … K of the new state given the
/// log-weights ℓ₀ … ℓ_K (index 0 = current state) and a uniform `u` ∈ [0, 1),
/// with P(J = j) = wⱼ / Σ_k w_k (inverse CDF; see the module docs).
///
/// # Panics
/// If `log_w` is empty.
pub fn isir_select(log_w: &[f64], u: f64) -> usize {
    assert!(!log_w.is_empty(), "at least the current state's weight");
    let Some((m, s)) = shift_and_sum(log_w) else {
        return 0;
    };
    let threshold = u * s;
    let mut cumulative = 0.0;
    let mut last_positive = 0;
    for (j, &l) in log_w.iter().enumerate() {
        let w = shifted_weight(l, m);
        if w > 0.0 {
            cumulative += w;
            last_positive = j;
            if cumulative > threshold {
                return j;
            }
        }
    }
    // Round-off in the running sum (u S within an ulp of S): the last index
    // with positive weight, never a zero-weight one.
    last_positive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cdf_boundaries() {
        // Weights 1, 1, 0, 1, 1 (exact in f64 after the shift): J = 0 on
        // [0, ¼), 1 on [¼, ½), 3 on [½, ¾), 4 on [¾, 1); index 2 never.
        let lw = [700.0, 700.0, f64::NEG_INFINITY, 700.0, 700.0];
        for (u, j) in [
            (0.0, 0),
            (0.2499, 0),
            (0.25, 1),
            (0.4999, 1),
            (0.5, 3),
            (0.7499, 3),
            (0.75, 4),
        ] {
            assert_eq!(isir_select(&lw, u), j, "u = {u}");
        }
        assert_eq!(isir_select(&lw, 1.0 - f64::EPSILON / 2.0), 4);
        let mut p = [0.0; 5];
        isir_probabilities(&lw, &mut p);
        assert_eq!(p, [0.25, 0.25, 0.0, 0.25, 0.25]);
    }

    #[test]
    fn non_finite_weights_are_zero_weights() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        // A non-finite current state leaves for the only finite proposal.
        for cur in [nan, inf, -inf] {
            for u in [0.0, 0.5, 0.999] {
                assert_eq!(isir_select(&[cur, nan, -3.0, inf], u), 2);
            }
        }
        // Non-finite proposals are never chosen; with nothing finite, stay.
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(isir_select(&[-1e3, nan, -inf, inf], u), 0);
            assert_eq!(isir_select(&[nan, nan, -inf, inf], u), 0);
        }
        let mut p = [0.0; 4];
        isir_probabilities(&[nan, nan, -inf, inf], &mut p);
        assert_eq!(p, [1.0, 0.0, 0.0, 0.0]);
        isir_probabilities(&[inf, 1.0, -inf, 1.0], &mut p);
        assert_eq!(p, [0.0, 0.5, 0.0, 0.5]);
    }

    #[test]
    fn zero_weight_is_never_selected_at_the_top_of_the_cdf() {
        // The last index has weight exp(−800) = 0 in f64: u → 1 must not pick it.
        let lw = [0.0, 0.0, -800.0];
        assert_eq!(isir_select(&lw, 1.0 - f64::EPSILON / 2.0), 1);
    }
}
