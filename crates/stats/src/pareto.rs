//! The Pareto-tail diagnostic of importance weights (docs/THEORY.md §7.10):
//! how heavy the upper tail of w = p̃/q is under q, read as the shape k of a
//! generalized Pareto distribution fitted to the largest weights.
//!
//! **Why.** The ESS and the delta-method errors of self-normalized
//! estimates assume Var_q(w) < ∞. Under q the weights' tail behaves like
//! P(w > t) ∝ t^{−1/k}: moments of order ≥ 1/k diverge, so for k ≥ ½ the
//! variance is infinite and for k ≥ 1 even the mean. Then importance
//! sampling, and IMH with the same q, converge slowly or not at all, and the
//! error bars computed from the sample are too small — the failure measured
//! on φ⁴ E4 and with diffusion proposals (docs/RESULTS.md). The sample's own
//! ESS cannot reveal it: a heavy tail is exactly what a finite sample has
//! not seen yet. The fitted k can, from the shape of the tail it has seen
//! (Vehtari, Simpson, Gelman, Yao, Gabry, "Pareto smoothed importance
//! sampling", JMLR 2024): k̂ < 0.5 the weights have a variance; up to
//! min(1 − 1/log₁₀ N, 0.7) estimates are usable; above it they are not.
//! Example: q = N(0, 1), p = N(0, s²) has k = 1 − 1/s² for s > 1.
//!
//! **Fit.** Of N log-weights ℓᵢ take the M = ⌈min(0.2 N, 3√N)⌉ largest; with
//! u the (M+1)-th largest weight, the exceedances yⱼ = wⱼ − u > 0 (weights
//! scaled by e^{−max ℓ}, which changes no shape) are fitted by the
//! generalized Pareto distribution F(y) = 1 − (1 + k y/σ)^{−1/k} with the
//! empirical-Bayes estimator of Zhang and Stephens (Technometrics 51, 2009):
//! in their parameters b = −k/σ and k_ZS = −k the profile likelihood is
//!
//!   k_ZS(b) = −(1/M) Σⱼ ln(1 − b yⱼ),  ℓ(b) = M [ln(b / k_ZS(b)) + k_ZS(b) − 1],
//!
//! evaluated on the grid
//! b_i = 1/y_max + (1 − √(G/(i − ½)))/(3 y_q), i = 1 … G, G = 30 + ⌊√M⌋,
//! y_q the first quartile of the yⱼ; b̂ = Σᵢ bᵢ e^{ℓ(bᵢ)}/Σᵢ e^{ℓ(bᵢ)} (the
//! posterior mean under their prior) and k̂ = (1/M) Σⱼ ln(1 − b̂ yⱼ). Last,
//! k̂ is shrunk toward ½ by ten pseudo-observations, (M k̂ + 5)/(M + 10)
//! (the weakly informative prior of Vehtari et al., which removes most of
//! the estimator's small-M variance). Our implementation of the published
//! formulas.

use crate::StatsError;

/// The fitted tail of a set of importance weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoTail {
    /// The shape k̂ (larger: heavier tail; ≤ 0: bounded-looking tail).
    pub k: f64,
    /// Number of weights in the fitted tail, M.
    pub tail: usize,
    /// Number of weights N.
    pub n: usize,
}

impl ParetoTail {
    /// The largest k̂ at which estimates are still usable for this N:
    /// min(1 − 1/log₁₀ N, 0.7).
    pub fn threshold(&self) -> f64 {
        pareto_k_threshold(self.n)
    }

    /// Whether the tail is too heavy for importance-weighted estimates (and
    /// their errors) to be trusted: k̂ > [`Self::threshold`].
    pub fn unreliable(&self) -> bool {
        self.k > self.threshold()
    }
}

/// The largest usable k̂ for large N (Vehtari et al.).
pub const PARETO_K_MAX: f64 = 0.7;

/// min(1 − 1/log₁₀ N, [`PARETO_K_MAX`]): the sample-size dependent limit on
/// k̂ of Vehtari et al. (module docs).
pub fn pareto_k_threshold(n: usize) -> f64 {
    let n = n.max(2) as f64;
    (1.0 - 1.0 / n.log10()).min(PARETO_K_MAX)
}

/// Fewest weights the diagnostic is computed from (a tail of ≥ 5 points).
pub const PARETO_MIN_SAMPLES: usize = 25;

/// k̂ of the upper tail of the weights exp(`log_w`) (module docs).
///
/// # Errors
/// Fewer than [`PARETO_MIN_SAMPLES`] finite log-weights
/// ([`StatsError::TooFewSamples`]; −∞ entries, zero weights, count as
/// weights, NaN and +∞ are refused as by the other weight tools).
pub fn pareto_k(log_w: &[f64]) -> Result<ParetoTail, StatsError> {
    crate::weights::refuse_nan_and_infinity(log_w)?;
    let n = log_w.len();
    if n < PARETO_MIN_SAMPLES {
        return Err(StatsError::TooFewSamples {
            what: "the Pareto-tail diagnostic",
            n,
            min: PARETO_MIN_SAMPLES,
        });
    }
    let m = ((0.2 * n as f64).min(3.0 * (n as f64).sqrt())).ceil() as usize;
    let mut sorted = log_w.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top = sorted[0];
    if top == f64::NEG_INFINITY {
        return Err(StatsError::ZeroWeights);
    }
    let u = (sorted[m] - top).exp();
    // Exceedances in increasing order.
    let mut y: Vec<f64> = sorted[..m].iter().rev().map(|l| (l - top).exp() - u).collect();
    y.retain(|&v| v > 0.0);
    if y.len() < 5 {
        // The tail is (nearly) constant: no tail at all.
        return Ok(ParetoTail {
            k: f64::NEG_INFINITY,
            tail: m,
            n,
        });
    }
    let k = zhang_stephens(&y);
    let mf = y.len() as f64;
    Ok(ParetoTail {
        k: (mf * k + 10.0 * 0.5) / (mf + 10.0),
        tail: m,
        n,
    })
}

/// The Zhang–Stephens estimate of the generalized Pareto shape k from
/// positive exceedances `y` in increasing order (module docs).
fn zhang_stephens(y: &[f64]) -> f64 {
    let m = y.len();
    let mf = m as f64;
    let y_max = y[m - 1];
    let y_q = y[((mf / 4.0 + 0.5).floor() as usize).saturating_sub(1)];
    let grid = 30 + mf.sqrt().floor() as usize;
    let k_of = |b: f64| -> f64 { y.iter().map(|&v| (-b * v).ln_1p()).sum::<f64>() / mf };
    let bs: Vec<f64> = (1..=grid)
        .map(|i| 1.0 / y_max + (1.0 - (grid as f64 / (i as f64 - 0.5)).sqrt()) / (3.0 * y_q))
        .collect();
    // ℓ(b) = M [ln(b / k_ZS) + k_ZS − 1] with k_ZS(b) = −k_of(b).
    let ll: Vec<f64> = bs
        .iter()
        .map(|&b| {
            let kzs = -k_of(b);
            mf * ((b / kzs).ln() + kzs - 1.0)
        })
        .collect();
    let top = ll
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let (mut num, mut den) = (0.0, 0.0);
    for (&b, &l) in bs.iter().zip(&ll) {
        if l.is_finite() {
            let w = (l - top).exp();
            num += w * b;
            den += w;
        }
    }
    k_of(num / den)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::Seed;
    use rand::Rng as _;
    use rand_distr::{Distribution, StandardNormal};

    /// Mean and standard error of k̂ over `reps` seeded data sets.
    fn k_stats(reps: u64, mut draw: impl FnMut(u64) -> Vec<f64>) -> (f64, f64) {
        let ks: Vec<f64> = (0..reps).map(|s| pareto_k(&draw(s)).unwrap().k).collect();
        let mean = ks.iter().sum::<f64>() / reps as f64;
        let var = ks.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / (reps as f64 - 1.0);
        (mean, (var / reps as f64).sqrt())
    }

    #[test]
    fn recovers_the_shape_of_generalized_pareto_weights() {
        // w = σ((1 − U)^{−k} − 1)/k exactly GPD(k, σ): the fit is unbiased up
        // to the shrinkage toward ½ by 10 of M ≈ 950 pseudo-points (≤ 0.004).
        for k_true in [0.2, 0.5, 0.8] {
            let (mean, se) = k_stats(20, |s| {
                let mut rng = Seed::new(100 + s).rng();
                (0..100_000)
                    .map(|_| {
                        let u: f64 = rng.random();
                        (2.0 * ((1.0 - u).powf(-k_true) - 1.0) / k_true).ln()
                    })
                    .collect()
            });
            assert!(
                (mean - k_true).abs() < 4.0 * se + 0.01,
                "k = {k_true}: k̂ = {mean} ± {se}"
            );
            assert!(se < 0.02, "k = {k_true}: spread {se}");
        }
    }

    #[test]
    fn gaussian_proposals_have_the_known_tail_index() {
        // q = N(0, 1), p = N(0, s²): log w = x²(1 − 1/s²)/2 + const, tail
        // P(w > t) ∝ t^{−1/k} (ln t)^{−1/2} with k = 1 − 1/s². The slowly
        // varying factor biases a finite-N fit; the class must be right:
        // s² = 10 (k = 0.9) unreliable, s² = 1.5 (k = ⅓) reliable, and a
        // narrower p (bounded weights) k̂ < 0.
        let draw = |s2: f64, seed: u64| -> Vec<f64> {
            let mut rng = Seed::new(seed).rng();
            (0..40_000)
                .map(|_| {
                    let x: f64 = StandardNormal.sample(&mut rng);
                    0.5 * x * x * (1.0 - 1.0 / s2)
                })
                .collect()
        };
        for seed in 0..5 {
            let heavy = pareto_k(&draw(10.0, seed)).unwrap();
            assert!(heavy.unreliable() && (heavy.k - 0.9).abs() < 0.15, "{heavy:?}");
            let light = pareto_k(&draw(1.5, 10 + seed)).unwrap();
            assert!(!light.unreliable() && (light.k - 1.0 / 3.0).abs() < 0.15, "{light:?}");
            let bounded = pareto_k(&draw(0.5, 20 + seed)).unwrap();
            assert!(bounded.k < 0.0, "{bounded:?}");
        }
    }

    #[test]
    fn threshold_sizes_and_bad_input() {
        assert!((pareto_k_threshold(100) - 0.5).abs() < 1e-12);
        assert!((pareto_k_threshold(1_000_000) - 0.7).abs() < 1e-12);
        let t = pareto_k(&vec![0.0; 100]).unwrap();
        assert_eq!((t.k, t.tail, t.n), (f64::NEG_INFINITY, 20, 100));
        assert!(!t.unreliable());
        assert!(matches!(pareto_k(&[0.0; 10]), Err(StatsError::TooFewSamples { .. })));
        let mut w = vec![0.0; 100];
        w[3] = f64::NAN;
        assert!(matches!(pareto_k(&w), Err(StatsError::NonFinite { index: 3, .. })));
        assert!(matches!(
            pareto_k(&[f64::NEG_INFINITY; 50]),
            Err(StatsError::ZeroWeights)
        ));
        // Tail size M = ⌈min(0.2 N, 3√N)⌉.
        let w: Vec<f64> = (0..10_000).map(|i| (i as f64).ln_1p()).collect();
        assert_eq!(pareto_k(&w).unwrap().tail, 300);
    }
}
