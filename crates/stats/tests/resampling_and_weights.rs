//! Jackknife, bootstrap and importance-weight estimators against the
//! Γ-method and against exactly known answers. Seeds fixed; tolerances from
//! the reported errors.

mod common;

use common::{ar1, normal};
use fieldflow_core::Seed;
use fieldflow_stats::{
    bootstrap, gamma_derived, jackknife, jackknife_bin_scan, log_z, log_z_bootstrap, self_normalized_mean,
    BootstrapConfig, GammaConfig,
};
use ndarray::Array2;

/// Uncorrelated pairs (a, b) = (3 + ε₁, 2 + ε₂) with N rows.
fn iid_pairs(n: usize, seed: Seed) -> Array2<f64> {
    let mut rng = seed.rng();
    Array2::from_shape_fn((n, 2), |(_, j)| [3.0, 2.0][j] + normal(&mut rng))
}

#[test]
fn jackknife_bootstrap_and_gamma_agree_on_uncorrelated_data() {
    let m = iid_pairs(100_000, Seed::new(21));
    let f = |a: &[f64]| a[0] / a[1];
    let g = gamma_derived(&[m.view()], f, &GammaConfig::default()).unwrap();
    let j = jackknife(&[m.view()], 1, f).unwrap();
    // Same data, same σ up to the O(W/N) autocorrelation noise: a few %.
    assert!(
        (j.error / g.error - 1.0).abs() < 0.03,
        "jk {} vs Γ {}",
        j.error,
        g.error
    );
    assert!((j.value - g.value).abs() < 1e-3 * g.error);
    // Bins of 10 (harmless for independent data) keep the resampling cheap.
    let cfg = BootstrapConfig {
        n_boot: 2000,
        bin_size: 10,
        seed: Seed::new(22),
    };
    let b = bootstrap(&[m.view()], f, &cfg).unwrap();
    // Bootstrap sd of an sd from 2000 replicates: 1.6 %; allow 3.5 sd.
    assert!(
        (b.error / g.error - 1.0).abs() < 0.056,
        "boot {} vs Γ {}",
        b.error,
        g.error
    );
    // The exact σ of the ratio (delta method, unit variances):
    // σ² = (1/μ_b² + μ_a²/μ_b⁴)/N.
    let exact = ((1.0 / 4.0 + 9.0 / 16.0) / 100_000.0_f64).sqrt();
    assert!((g.error - exact).abs() < 3.0 * g.error_of_error);
}

#[test]
fn binned_jackknife_plateau_matches_gamma_on_ar1() {
    // ρ = 0.9 (τ_int = 9.5), N = 2¹⁷. Unbinned jackknife underestimates by
    // √(2τ) ≈ 4.4; the plateau (B = 512, K = 256) must agree with Γ within
    // the combined errors of the errors plus the O(τ/B) ≈ 2 % binning bias.
    let n = 1 << 17;
    let x = ar1(n, 0.9, Seed::new(31));
    let m = Array2::from_shape_vec((n, 1), x).unwrap();
    let g = gamma_derived(&[m.view()], |a| a[0], &GammaConfig::default()).unwrap();
    let scan = jackknife_bin_scan(&[m.view()], |a| a[0], 256).unwrap();
    assert_eq!(scan.first().unwrap().bin_size, 1);
    let last = scan.last().unwrap();
    assert_eq!((last.bin_size, last.n_bins), (512, 256));
    let ratio = g.error / scan[0].error;
    assert!((ratio - 19f64.sqrt()).abs() < 0.5, "Γ / naive = {ratio}");
    let tol = 3.0 * (last.error_of_error.powi(2) + g.error_of_error.powi(2)).sqrt() + 0.02 * g.error;
    assert!(
        (last.error - g.error).abs() < tol,
        "plateau {} vs Γ {} (tol {tol})",
        last.error,
        g.error
    );
    // Errors grow monotonically up to B ~ τ (bins still correlated).
    assert!(scan[0].error < scan[2].error && scan[2].error < scan[4].error);
    // Binned bootstrap agrees as well (2000 replicates: 1.6 % noise, K = 256).
    let cfg = BootstrapConfig {
        n_boot: 2000,
        bin_size: 512,
        seed: Seed::new(32),
    };
    let b = bootstrap(&[m.view()], |a| a[0], &cfg).unwrap();
    let tol_b = 3.0 * (last.error_of_error.powi(2) + (0.016 * g.error).powi(2)).sqrt()
        + 0.02 * g.error
        + 3.0 * g.error_of_error;
    assert!((b.error - g.error).abs() < tol_b, "boot {} vs Γ {}", b.error, g.error);
}

/// Importance sampling of p̃(x) = exp(−|x|²/2) in d = 4 (Z = (2π)²) from
/// q = N(0.3·𝟙, 1.3² I). Returns (log w, x₁).
fn gaussian_is(n: usize, seed: Seed) -> (Vec<f64>, Vec<f64>) {
    let (d, mu, s) = (4, 0.3, 1.3_f64);
    let log_norm_q = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s * s).ln();
    let mut rng = seed.rng();
    let mut log_w = Vec::with_capacity(n);
    let mut x1 = Vec::with_capacity(n);
    for _ in 0..n {
        let x: Vec<f64> = (0..d).map(|_| mu + s * normal(&mut rng)).collect();
        let log_p: f64 = -0.5 * x.iter().map(|v| v * v).sum::<f64>();
        let log_q = log_norm_q - 0.5 * x.iter().map(|v| ((v - mu) / s).powi(2)).sum::<f64>();
        log_w.push(log_p - log_q);
        x1.push(x[0]);
    }
    (log_w, x1)
}

#[test]
fn log_z_of_a_gaussian_is_recovered_within_4_sigma() {
    let (log_w, x1) = gaussian_is(50_000, Seed::new(41));
    let exact = 2.0 * (2.0 * std::f64::consts::PI).ln();
    let r = log_z(&log_w).unwrap();
    assert!(r.ess > 0.2 && r.ess < 0.9, "ess {}", r.ess);
    assert!(
        (r.log_z - exact).abs() < 4.0 * r.error,
        "log Z {} ± {} vs {exact}",
        r.log_z,
        r.error
    );
    let b = log_z_bootstrap(&log_w, 400, Seed::new(42)).unwrap();
    assert_eq!(b.log_z, r.log_z);
    // Bootstrap sd from 400 replicates: ±3.5 % noise; allow 15 %.
    assert!(
        (b.error / r.error - 1.0).abs() < 0.15,
        "boot {} delta {}",
        b.error,
        r.error
    );
    // Self-normalized ⟨x₁⟩ = 0 and ⟨x₁²⟩ = 1 under p.
    let m1 = self_normalized_mean(&log_w, &x1).unwrap();
    assert!(m1.value.abs() < 4.0 * m1.error, "<x1> = {} ± {}", m1.value, m1.error);
    let x1sq: Vec<f64> = x1.iter().map(|v| v * v).collect();
    let m2 = self_normalized_mean(&log_w, &x1sq).unwrap();
    assert!(
        (m2.value - 1.0).abs() < 4.0 * m2.error,
        "<x1²> = {} ± {}",
        m2.value,
        m2.error
    );
}

#[test]
fn self_normalized_error_covers_over_many_runs() {
    // 300 independent IS runs of N = 2000: the delta-method 1σ interval of
    // ⟨x₁⟩ = 0 and the one of log Z must each cover in 68 % ± 9 % (binomial
    // sd 2.7 % for n = 300, so 3.3 sd).
    let runs = 300;
    let exact = 2.0 * (2.0 * std::f64::consts::PI).ln();
    let (mut hit_m, mut hit_z) = (0, 0);
    for k in 0..runs {
        let (log_w, x1) = gaussian_is(2000, Seed::new(43).with_stream(k));
        let m = self_normalized_mean(&log_w, &x1).unwrap();
        if m.value.abs() < m.error {
            hit_m += 1;
        }
        let z = log_z(&log_w).unwrap();
        if (z.log_z - exact).abs() < z.error {
            hit_z += 1;
        }
    }
    for (name, hits) in [("<x1>", hit_m), ("log Z", hit_z)] {
        let cov = hits as f64 / runs as f64;
        assert!((cov - 0.6827).abs() < 0.09, "{name}: coverage {cov}");
    }
}
