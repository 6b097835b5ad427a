//! Statistical tests of the Γ-method on AR(1) chains with known τ_int
//! (τ_int = (1 + ρ)/(2(1 − ρ)) for AR(1) with coefficient ρ). Seeds are fixed; tolerances derive from the
//! reported errors.

mod common;

use common::{ar1, ar1_pair, tau_ar1};
use fieldflow_core::Seed;
use fieldflow_stats::gamma::REPLICA_Q_MIN;
use fieldflow_stats::{
    gamma_derived, gamma_derived_with_gradient, gamma_primary, AutocovMethod, GammaConfig, GammaWarning,
};
use ndarray::Array2;

fn fft() -> GammaConfig {
    GammaConfig {
        method: AutocovMethod::Fft,
        ..GammaConfig::default()
    }
}

#[test]
fn tau_int_of_ar1_is_recovered_within_its_error() {
    let n = 1_000_000;
    for (k, rho) in [0.0, 0.5, 0.9, 0.99].into_iter().enumerate() {
        let x = ar1(n, rho, Seed::new(100).with_stream(k as u64));
        let r = gamma_primary(&[x.as_slice()], &fft()).unwrap();
        let tau = tau_ar1(rho);
        // τ_int within 3 of its reported errors (plus the truncation bias
        // ρ^{W+1}/(1−ρ) of the window, which is far below δτ here).
        let trunc = rho.powi(r.window as i32 + 1) / (1.0 - rho);
        assert!(
            (r.tau_int - tau).abs() < 3.0 * r.tau_int_error + trunc,
            "rho {rho}: tau_int {} ± {} (W = {}), exact {tau}",
            r.tau_int,
            r.tau_int_error,
            r.window
        );
        // The error itself against the exact σ = √(2τ/N) (unit variance).
        let sigma = (2.0 * tau / n as f64).sqrt();
        assert!(
            (r.error - sigma).abs() < 3.0 * r.error_of_error,
            "rho {rho}: error {} ± {}, exact {sigma}",
            r.error,
            r.error_of_error
        );
        // The mean (true value 0) within 4σ.
        assert!(r.value.abs() < 4.0 * sigma, "rho {rho}: mean {}", r.value);
        assert!(r.is_clean(), "rho {rho}: {:?}", r.warnings);
        // ρ(t) follows ρ^t at small lags.
        assert!((r.rho[1] - rho).abs() < 0.02 + 5.0 * r.tau_int_error / tau);
    }
}

#[test]
fn fft_and_direct_give_the_same_analysis() {
    let x = ar1(20_000, 0.7, Seed::new(7));
    let d = gamma_primary(
        &[x.as_slice()],
        &GammaConfig {
            method: AutocovMethod::Direct,
            ..GammaConfig::default()
        },
    )
    .unwrap();
    let f = gamma_primary(&[x.as_slice()], &fft()).unwrap();
    assert_eq!(d.window, f.window);
    assert_eq!(d.gamma.len(), f.gamma.len());
    for t in 0..d.gamma.len() {
        assert!((d.gamma[t] - f.gamma[t]).abs() < 1e-10 * d.gamma[0], "lag {t}");
    }
    assert!((d.error - f.error).abs() < 1e-10 * d.error);
    assert!((d.tau_int - f.tau_int).abs() < 1e-10 * d.tau_int);
}

#[test]
fn error_bars_cover_the_true_mean_68_percent_of_the_time() {
    // 1000 independent AR(1) chains (ρ = 0.9, τ_int = 9.5, N = 5000). The
    // coverage of ±1σ is Binomial(1000, 0.6827)/1000 with sd 0.0147: the
    // tolerance ±0.05 is 3.4 sd. The reported errors must also match the
    // spread of the means over the chains (sd known to 1/√(2·999) = 2.2 %).
    let (chains, n) = (1000, 5000);
    let mut hits = 0;
    let (mut sum_err, mut sum_sq) = (0.0, 0.0);
    for c in 0..chains {
        let x = ar1(n, 0.9, Seed::new(200).with_stream(c));
        let r = gamma_primary(&[x.as_slice()], &GammaConfig::default()).unwrap();
        if r.value.abs() < r.error {
            hits += 1;
        }
        sum_err += r.error;
        sum_sq += r.value * r.value;
    }
    let coverage = hits as f64 / chains as f64;
    assert!(
        (coverage - 0.6827).abs() < 0.05,
        "coverage {coverage} over {chains} chains"
    );
    let spread = (sum_sq / chains as f64).sqrt();
    let mean_err = sum_err / chains as f64;
    assert!(
        (mean_err / spread - 1.0).abs() < 0.07,
        "mean reported error {mean_err} vs spread of means {spread}"
    );
}

#[test]
fn derived_ratio_error_bars_cover_the_true_ratio() {
    // R = ⟨a⟩/⟨b⟩ with a = 1 + x, b = 2 + y, (x, y) correlated AR(1)
    // (ρ = 0.9, equal-time correlation 0.6): true ratio ½. Same binomial
    // tolerance as the primary test; the brute-force spread of the ratio over
    // the chains must match the mean reported error.
    let (chains, n) = (1000, 5000);
    let mut hits = 0;
    let (mut sum_err, mut sum_sq) = (0.0, 0.0);
    for c in 0..chains {
        let (x, y) = ar1_pair(n, 0.9, 0.6, Seed::new(300).with_stream(c));
        let m = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { 1.0 + x[i] } else { 2.0 + y[i] });
        let r = gamma_derived(&[m.view()], |a| a[0] / a[1], &GammaConfig::default()).unwrap();
        if (r.value - 0.5).abs() < r.error {
            hits += 1;
        }
        sum_err += r.error;
        sum_sq += (r.value - 0.5).powi(2);
    }
    let coverage = hits as f64 / chains as f64;
    assert!(
        (coverage - 0.6827).abs() < 0.05,
        "coverage {coverage} over {chains} chains"
    );
    let spread = (sum_sq / chains as f64).sqrt();
    let mean_err = sum_err / chains as f64;
    assert!(
        (mean_err / spread - 1.0).abs() < 0.07,
        "mean reported error {mean_err} vs spread {spread}"
    );
}

#[test]
fn analytic_and_numerical_gradients_agree() {
    let (x, y) = ar1_pair(50_000, 0.8, 0.3, Seed::new(9));
    let m = Array2::from_shape_fn((50_000, 2), |(i, j)| if j == 0 { 1.0 + x[i] } else { 2.0 + y[i] });
    let num = gamma_derived(&[m.view()], |a| a[0] / a[1], &fft()).unwrap();
    let ana = gamma_derived_with_gradient(
        &[m.view()],
        |a| a[0] / a[1],
        |a| vec![1.0 / a[1], -a[0] / (a[1] * a[1])],
        &fft(),
    )
    .unwrap();
    assert_eq!(num.value, ana.value);
    // Central differences with h = σ(mean) ~ 0.01: relative error ~h² ~ 1e-4.
    assert!((num.error / ana.error - 1.0).abs() < 1e-3);
}

#[test]
fn splitting_a_chain_into_replica_is_consistent() {
    // One chain of 400k (ρ = 0.9) and the same chain cut into 4 replica of
    // unequal lengths: identical mean, and error / τ_int agreeing far within
    // their own uncertainties (only ~R·W of N pairs differ).
    let x = ar1(400_000, 0.9, Seed::new(11));
    let whole = gamma_primary(&[x.as_slice()], &GammaConfig::default()).unwrap();
    let cuts = [0, 50_000, 150_000, 270_000, 400_000];
    let parts: Vec<&[f64]> = cuts.windows(2).map(|w| &x[w[0]..w[1]]).collect();
    let split = gamma_primary(&parts, &GammaConfig::default()).unwrap();
    assert_eq!(split.n_replica, 4);
    assert_eq!(split.n, 400_000);
    assert!((split.value - whole.value).abs() < 1e-12);
    assert!(
        (split.error - whole.error).abs() < 0.25 * whole.error_of_error,
        "split {} vs whole {} ± {}",
        split.error,
        whole.error,
        whole.error_of_error
    );
    assert!((split.tau_int - whole.tau_int).abs() < 0.25 * whole.tau_int_error);
    // The replica means scatter around the global mean as their errors say:
    // Wolff's Q (3 degrees of freedom) is not tiny.
    let q = split.replica_q.expect("4 replica");
    assert!(q > REPLICA_Q_MIN, "Q = {q}");
    assert!(split.is_clean(), "{:?}", split.warnings);

    // Derived ratio: replica bias cancellation keeps the value consistent.
    let (a, b) = ar1_pair(400_000, 0.9, 0.5, Seed::new(12));
    let m = Array2::from_shape_fn((400_000, 2), |(i, j)| if j == 0 { 1.0 + a[i] } else { 2.0 + b[i] });
    let f = |v: &[f64]| v[0] / v[1];
    let whole = gamma_derived(&[m.view()], f, &GammaConfig::default()).unwrap();
    let views: Vec<_> = cuts
        .windows(2)
        .map(|w| m.slice_axis(ndarray::Axis(0), ndarray::Slice::from(w[0]..w[1])))
        .collect();
    let split = gamma_derived(&views, f, &GammaConfig::default()).unwrap();
    assert!((split.value - whole.value).abs() < 0.1 * whole.error);
    assert!((split.error - whole.error).abs() < 0.25 * whole.error_of_error);
}

#[test]
fn independent_replica_of_different_lengths_give_correct_errors() {
    // 6 independent chains of lengths 20k … 120k (ρ = 0.5): the combined
    // error must match √(2τ/N) within 3 errors of the error.
    let lens = [20_000, 40_000, 60_000, 80_000, 100_000, 120_000];
    let chains: Vec<Vec<f64>> = lens
        .iter()
        .enumerate()
        .map(|(k, &n)| ar1(n, 0.5, Seed::new(13).with_stream(k as u64)))
        .collect();
    let r = gamma_primary(&chains, &GammaConfig::default()).unwrap();
    let n: usize = lens.iter().sum();
    let sigma = (2.0 * tau_ar1(0.5) / n as f64).sqrt();
    assert!((r.error - sigma).abs() < 3.0 * r.error_of_error);
    assert!((r.tau_int - 1.5).abs() < 3.0 * r.tau_int_error);
    assert!(r.value.abs() < 4.0 * sigma);
}

#[test]
fn anticorrelated_chain_gets_a_conservative_error_not_zero() {
    // AR(1) with ρ = −0.9: ρ(1) < −½, so C_F(W = 1) < 0 and the window search
    // stops at once. The report must fall back to the naive error, which
    // exceeds the true error σ_x √(2τ/N) with τ = (1+ρ)/(2(1−ρ)).
    let n = 100_000;
    let x = ar1(n, -0.9, Seed::new(77));
    let r = gamma_primary(&[x], &GammaConfig::default()).unwrap();
    assert!(r
        .warnings
        .iter()
        .any(|w| matches!(w, GammaWarning::NonPositiveCf { .. })));
    let tau = (1.0 - 0.9) / (2.0 * (1.0 + 0.9));
    let true_err = (2.0 * tau / n as f64).sqrt();
    assert!(r.error > true_err && r.error.is_finite(), "{} vs {}", r.error, true_err);
    assert!((r.error - (1.0 / n as f64).sqrt()).abs() < 0.05 * r.error);
    assert!(r.value.abs() < 4.0 * true_err.max(r.error));
}

#[test]
fn replica_q_is_uniform_when_chains_agree_and_tiny_when_one_is_stuck() {
    // 400 trials of 4 independent AR(1) chains (ρ = 0.5) of unequal lengths:
    // Q ~ U(0, 1), so its mean is ½ ± 4·(1/√12)/√400 and the fraction below
    // 0.1 is 0.1 ± 4·√(0.09/400); Q < 10⁻³ (the warning) is Poisson(0.4)
    // in 400 trials: at most 4 (P(≥ 5) < 10⁻⁴).
    let lens = [2000, 4000, 6000, 8000];
    let trials = 400;
    let qs: Vec<f64> = (0..trials)
        .map(|t| {
            let chains: Vec<Vec<f64>> = lens
                .iter()
                .enumerate()
                .map(|(k, &n)| ar1(n, 0.5, Seed::new(300 + t).with_stream(k as u64)))
                .collect();
            gamma_primary(&chains, &GammaConfig::default())
                .unwrap()
                .replica_q
                .unwrap()
        })
        .collect();
    let mean = qs.iter().sum::<f64>() / trials as f64;
    let below = qs.iter().filter(|&&q| q < 0.1).count() as f64 / trials as f64;
    let alarms = qs.iter().filter(|&&q| q < REPLICA_Q_MIN).count();
    let sd_mean = (1.0f64 / 12.0).sqrt() / (trials as f64).sqrt();
    assert!((mean - 0.5).abs() < 4.0 * sd_mean, "mean Q {mean}");
    assert!(
        (below - 0.1).abs() < 4.0 * (0.09f64 / trials as f64).sqrt(),
        "P(Q < 0.1) = {below}"
    );
    assert!(alarms <= 4, "{alarms} false alarms");

    // One chain stuck away from the others (a mode the others never see):
    // its mean is off by 10 of its own errors → Q ≈ 0 and the warning.
    let mut chains: Vec<Vec<f64>> = (0..4).map(|k| ar1(5000, 0.5, Seed::new(9).with_stream(k))).collect();
    let own_err = (2.0 * tau_ar1(0.5) / 5000.0).sqrt();
    chains[2].iter_mut().for_each(|x| *x += 10.0 * own_err);
    let r = gamma_primary(&chains, &GammaConfig::default()).unwrap();
    assert!(r.replica_q.unwrap() < 1e-6, "Q = {:?}", r.replica_q);
    assert!(r
        .warnings
        .iter()
        .any(|w| matches!(w, GammaWarning::ReplicaDisagreement { q } if *q < 1e-6)));
    // One replica has no Q.
    let one = gamma_primary(&chains[..1], &GammaConfig::default()).unwrap();
    assert_eq!(one.replica_q, None);
}
