//! SLIPS with the closed-form denoiser reproduces its target (issue 18):
//! a Gaussian's mean and covariance, a mixture's mode weights, within 4σ
//! (fixed seeds); and the samples do not depend on the thread count or on
//! how the particles are split into calls.

use fieldflow_core::{Modes, Par, Seed};
use fieldflow_slips::{ExactDenoiser, Integrator, McmcDenoiser, McmcSettings, Schedule, Slips, SlipsConfig};
use fieldflow_targets::{Gaussian, GaussianMixture};
use ndarray::{array, Array2, Axis};
use ndarray_linalg::{Eigh, UPLO};

fn run<D: fieldflow_slips::Denoiser>(config: SlipsConfig, d: &D, dim: usize, n: usize, seed: u64) -> Array2<f64> {
    let slips = Slips::new(config, d, dim).unwrap();
    slips.sample(Seed::new(seed), 0, n, Par::default()).xs
}

#[test]
fn exact_denoiser_reproduces_a_gaussian() {
    gaussian_within_4_sigma(Integrator::AlphaIncrement, 200);
}

/// The paper's plain Euler drift (t′ − t) α′(t) m̂ at its 1024 steps.
#[test]
fn exact_denoiser_with_the_euler_drift_reproduces_a_gaussian() {
    gaussian_within_4_sigma(Integrator::Euler, 1024);
}

fn gaussian_within_4_sigma(integrator: Integrator, steps: usize) {
    let mean = array![1.0, -0.5, 2.0];
    let cov = array![[1.0, 0.3, 0.1], [0.3, 0.5, -0.1], [0.1, -0.1, 0.8]];
    let g = Gaussian::new(mean.clone(), cov.clone()).unwrap();
    let den = ExactDenoiser::gaussian(&g).unwrap();
    // t₀ small: the start N(0, σ²t₀) is then close to the law of Y_{t₀}.
    let config = SlipsConfig {
        t0: 1e-3,
        steps,
        integrator,
        ..SlipsConfig::default()
    };
    let n = 4000;
    let xs = run(config, &den, 3, n, 11);
    // The output E[X | Y_{t_K}] has covariance C − Cov(X | Y_{t_K}), with
    // Cov(X | y) = U diag(e v/(α² e + v)) Uᵀ.
    let obs = config.observation(config.t_end);
    let (e, u) = cov.eigh(UPLO::Lower).unwrap();
    let post = Array2::from_diag(&e.mapv(|e| e * obs.var / (obs.alpha * obs.alpha * e + obs.var)));
    let want = &cov - &u.dot(&post).dot(&u.t());
    let m = xs.mean_axis(Axis(0)).unwrap();
    let c = (&xs - &m).t().dot(&(&xs - &m)) / (n as f64 - 1.0);
    let nf = n as f64;
    for i in 0..3 {
        let sd = (want[[i, i]] / nf).sqrt();
        assert!(
            (m[i] - mean[i]).abs() < 4.0 * sd,
            "mean {i}: {} vs {} (sd {sd})",
            m[i],
            mean[i]
        );
        for j in 0..3 {
            let sd = ((want[[i, i]] * want[[j, j]] + want[[i, j]].powi(2)) / nf).sqrt();
            assert!(
                (c[[i, j]] - want[[i, j]]).abs() < 4.0 * sd,
                "cov {i}{j}: {} vs {} (sd {sd})",
                c[[i, j]],
                want[[i, j]]
            );
        }
    }
}

#[test]
fn exact_denoiser_reproduces_mixture_weights() {
    let mog = GaussianMixture::mog4();
    let den = ExactDenoiser::mixture(&mog).unwrap();
    for schedule in [
        Schedule::Geometric { a: 1.0, b: 1.0 },
        Schedule::Geometric { a: 2.0, b: 1.0 },
    ] {
        let config = SlipsConfig {
            schedule,
            sigma: 4.0,
            t0: 1e-3,
            steps: 200,
            ..SlipsConfig::default()
        };
        let n = 4000;
        let xs = run(config, &den, 2, n, 5);
        let got = mog.mode_fractions(xs.view());
        let want = mog.true_weights().unwrap();
        for (k, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let sd = (w * (1.0 - w) / n as f64).sqrt();
            assert!((g - w).abs() < 4.0 * sd, "{schedule:?} mode {k}: {g} vs {w} (sd {sd})");
        }
    }
}

/// The oracle start (exact observations Y_{t₀} = α X + σ√t₀ ξ, a
/// diagnostic) with the exact denoiser keeps the mixture's weights, even
/// from a late t₀ where the paper's start would need the right law of
/// Y_{t₀} from Langevin steps.
#[test]
fn oracle_start_keeps_mixture_weights() {
    let mog = GaussianMixture::mog4();
    let den = ExactDenoiser::mixture(&mog).unwrap();
    let config = SlipsConfig {
        sigma: 4.0,
        t0: 0.9,
        steps: 50,
        ..SlipsConfig::default()
    };
    let n = 4000;
    let xs = Slips::new(config, &den, 2)
        .unwrap()
        .with_oracle_start(&mog)
        .sample(Seed::new(8), 0, n, Par::default())
        .xs;
    let got = mog.mode_fractions(xs.view());
    for (k, (&g, &w)) in got.iter().zip(&mog.true_weights().unwrap()).enumerate() {
        let sd = (w * (1.0 - w) / n as f64).sqrt();
        assert!((g - w).abs() < 4.0 * sd, "mode {k}: {g} vs {w} (sd {sd})");
    }
}

#[test]
fn samples_do_not_depend_on_threads_or_blocks() {
    let target = GaussianMixture::two_modes(4).unwrap();
    let den = McmcDenoiser {
        target: &target,
        settings: McmcSettings {
            mcmc_steps: 6,
            mcmc_chains: 2,
            warmup: Some(20),
            ..McmcSettings::default()
        },
    };
    let config = SlipsConfig {
        sigma: 1.35,
        steps: 20,
        ..SlipsConfig::default()
    };
    let slips = Slips::new(config, &den, 4).unwrap();
    let par = Par {
        chunk_rows: 5,
        parallel: true,
    };
    let draw = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| slips.sample(Seed::new(3), 0, 24, par))
    };
    let one = draw(1);
    let two = draw(2);
    assert_eq!(one, two);
    let (evals, one, two) = (one.evaluations, one.xs, two.xs);
    let bits = |a: &Array2<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two));
    // Particles 10..24 on their own give the same rows.
    let tail = slips.sample(Seed::new(3), 10, 14, Par::serial(3)).xs;
    assert_eq!(bits(&one.slice(ndarray::s![10.., ..]).to_owned()), bits(&tail));
    // Evaluations: 2 chains × ((20 + 6 + 1) first call + 30 × (6 + 1)).
    assert_eq!(evals[0], 2 * (27 + 30 * 7));
    assert!(one.iter().all(|v| v.is_finite()));
}
