//! The local kernels (random walk, MALA, HMC for any target) leave the
//! target invariant, their reported acceptance is consistent with the
//! Metropolis–Hastings ratio (the Creutz check ⟨e^{−ΔH}⟩ = 1), the step-size
//! warm-up reaches its target acceptance, and the score cache changes no
//! result.

use fieldflow_core::{ExactSampler, LocalKernel, Par, Seed, Target};
use fieldflow_imh::{tune_step, Mala, RandomWalk, StepTuning};
use fieldflow_lattice::{HmcConfig, HmcKernel, Integrator};
use fieldflow_stats::{gamma_primary, GammaConfig};
use fieldflow_targets::Gaussian;
use ndarray::{array, Array2};

/// A correlated, shifted 2D Gaussian: mean (1, −2), covariance [[1, ½], [½, 2]].
fn target() -> Gaussian {
    Gaussian::new(array![1.0, -2.0], array![[1.0, 0.5], [0.5, 2.0]]).unwrap()
}

/// `n` exact draws of the target as starting points.
fn exact_starts(t: &Gaussian, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut xs = Array2::zeros((n, 2));
    t.sample_batch(Seed::new(seed), xs.view_mut(), Par::serial(8));
    xs.outer_iter().map(|r| r.to_vec()).collect()
}

/// Runs `chains` chains of `n` updates from exact draws; returns the series
/// x₀, x₁, x₀² per chain and the acceptance.
fn run_chains(kernel: &dyn LocalKernel, chains: usize, n: usize, seed: u64) -> ([Vec<Vec<f64>>; 3], f64) {
    let t = target();
    let mut out: [Vec<Vec<f64>>; 3] = Default::default();
    let mut acc = 0.0;
    for (c, mut x) in exact_starts(&t, chains, seed).into_iter().enumerate() {
        let mut scratch = Vec::new();
        let mut series: [Vec<f64>; 3] = Default::default();
        for i in 0..n {
            let mut rng = Seed::new(seed).child(c as u64).child(i as u64).rng();
            acc += kernel.update(&mut x, &mut scratch, &mut rng).acceptance;
            series[0].push(x[0]);
            series[1].push(x[1]);
            series[2].push(x[0] * x[0]);
        }
        for (o, s) in out.iter_mut().zip(series) {
            o.push(s);
        }
    }
    (out, acc / (chains * n) as f64)
}

/// Mean of x₀, x₁ and x₀² within 4σ (Γ-method) of 1, −2 and 2.
fn assert_exact(name: &str, kernel: &dyn LocalKernel) -> f64 {
    let (series, acc) = run_chains(kernel, 4, 10_000, 11);
    for (s, exact) in series.iter().zip([1.0, -2.0, 2.0]) {
        let r = gamma_primary(s, &GammaConfig::default()).unwrap();
        assert!(
            (r.value - exact).abs() < 4.0 * r.error && r.error < 0.1,
            "{name}: {} ± {} vs {exact} (acceptance {acc})",
            r.value,
            r.error
        );
    }
    acc
}

#[test]
fn every_kernel_leaves_a_correlated_gaussian_invariant() {
    let t = target();
    let acc = assert_exact("random walk", &RandomWalk { target: &t, width: 1.0 });
    assert!(acc > 0.2 && acc < 0.9, "random walk acceptance {acc}");
    let acc = assert_exact("MALA", &Mala { target: &t, step: 0.4 });
    assert!(acc > 0.3 && acc < 0.99, "MALA acceptance {acc}");
    let hmc = HmcConfig {
        trajectory_length: 1.5,
        n_steps: 2,
        integrator: Integrator::Leapfrog,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let acc = assert_exact(
        "HMC",
        &HmcKernel {
            target: &t,
            hmc,
            eps: 1.0,
        },
    );
    assert!(acc > 0.3 && acc < 0.999, "HMC acceptance {acc}");
}

/// From exact draws (equilibrium), one update each: ⟨e^{−ΔH}⟩ = ⟨r⟩ = 1 and
/// the mean of min(1, r) equals the acceptance rate, within 4σ.
fn creutz(name: &str, kernel: &dyn LocalKernel) {
    let t = target();
    let n = 20_000;
    let (mut ratio, mut prob, mut acc) = (Vec::new(), Vec::new(), Vec::new());
    for (i, mut x) in exact_starts(&t, n, 3).into_iter().enumerate() {
        let mut rng = Seed::new(4).child(i as u64).rng();
        let r = kernel.update(&mut x, &mut Vec::new(), &mut rng);
        ratio.push((-r.delta_h).exp());
        prob.push(r.accept_prob);
        acc.push(r.acceptance);
    }
    let mean_err = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (m, (var / v.len() as f64).sqrt())
    };
    let (m, e) = mean_err(&ratio);
    assert!((m - 1.0).abs() < 4.0 * e && e < 0.05, "{name}: <exp(-dH)> = {m} ± {e}");
    let diff: Vec<f64> = prob.iter().zip(&acc).map(|(p, a)| p - a).collect();
    let (m, e) = mean_err(&diff);
    assert!(m.abs() < 4.0 * e, "{name}: <min(1,r)> − acceptance = {m} ± {e}");
    let (a, _) = mean_err(&acc);
    assert!(a > 0.2 && a < 0.95, "{name}: acceptance {a} leaves the check toothless");
}

#[test]
fn creutz_check_of_mala_and_hmc() {
    let t = target();
    creutz("MALA", &Mala { target: &t, step: 0.6 });
    let hmc = HmcConfig {
        trajectory_length: 2.0,
        n_steps: 2,
        integrator: Integrator::Leapfrog,
        ..Default::default()
    }
    .validate()
    .unwrap();
    creutz(
        "HMC",
        &HmcKernel {
            target: &t,
            hmc,
            eps: 1.0,
        },
    );
    creutz("random walk", &RandomWalk { target: &t, width: 1.5 });
}

#[test]
fn warm_up_reaches_the_target_acceptance_of_mala() {
    let t = target();
    for aim in [0.4, 0.75] {
        let mut states = exact_starts(&t, 8, 5);
        let tuning = StepTuning {
            initial: 2.0,
            target_acceptance: aim,
            updates: 400,
        };
        let step = tune_step(|s| Mala { target: &t, step: s }, &mut states, tuning, Seed::new(6));
        let (_, acc) = run_chains(&Mala { target: &t, step }, 8, 2000, 7);
        assert!(
            (acc - aim).abs() < 0.05,
            "aim {aim}: step {step} gives acceptance {acc}"
        );
    }
}

#[test]
fn the_score_cache_changes_no_result() {
    let t = target();
    let kernels: [Box<dyn LocalKernel + '_>; 2] = [
        Box::new(Mala { target: &t, step: 0.5 }),
        Box::new(HmcKernel {
            target: &t,
            hmc: HmcConfig::default().validate().unwrap(),
            eps: 0.3,
        }),
    ];
    for k in &kernels {
        let (mut a, mut b) = (vec![0.3, -1.0], vec![0.3, -1.0]);
        let mut kept = Vec::new();
        for i in 0..300 {
            // Every 7th step a "global move" changes the state behind the
            // cache's back.
            if i % 7 == 0 {
                a[0] += 0.25;
                b[0] += 0.25;
            }
            let ra = k.update(&mut a, &mut kept, &mut Seed::new(9).child(i).rng());
            let rb = k.update(&mut b, &mut Vec::new(), &mut Seed::new(9).child(i).rng());
            assert_eq!(a, b);
            assert_eq!(ra, rb);
        }
        assert!(t.log_prob(ndarray::ArrayView1::from(&a[..])).is_finite());
    }
}
