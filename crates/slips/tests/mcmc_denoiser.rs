//! The MCMC denoiser converges to the closed-form one on a Gaussian mixture
//! as the number of MCMC steps grows (issue 18): the root-mean-square error
//! over independent replicates decreases with the steps, and at the largest
//! number the replicates' mean agrees with the exact posterior mean within
//! 4 standard errors and the error is small.

use fieldflow_core::Seed;
use fieldflow_slips::{Denoiser, ExactDenoiser, McmcDenoiser, McmcSettings, Observation, Schedule, StepAdaptation};
use fieldflow_targets::{Covariance, GaussianMixture};
use ndarray::array;

/// Three overlapping unit-variance components (a skewed, non-Gaussian but
/// connected posterior that MALA can explore), an observation at t = 0.5,
/// and the exact posterior mean E[X | Y = y] there.
fn posterior() -> (GaussianMixture, Observation, [f64; 2], [f64; 2]) {
    let means = vec![array![0.0, 0.0], array![1.5, 0.0], array![0.0, 1.5]];
    let mix = GaussianMixture::new(means, vec![Covariance::Isotropic(1.0); 3], vec![0.5, 0.3, 0.2]).unwrap();
    let exact = ExactDenoiser::mixture(&mix).unwrap();
    let t = 0.5;
    let obs = Observation {
        alpha: Schedule::default().alpha(t),
        var: t,
    };
    let y = [1.2, 0.4];
    let mut want = [0.0; 2];
    exact.denoise(&y, obs, &mut exact.new_state(), &mut Seed::new(0).rng(), &mut want);
    (mix, obs, y, want)
}

#[test]
fn mcmc_denoiser_converges_to_the_exact_one() {
    let (mix, obs, y, want) = posterior();

    let replicates = 200;
    let mut rms = Vec::new();
    let mut last = (vec![0.0; 2], vec![0.0; 2]);
    for steps in [4, 16, 64, 256, 1024] {
        let den = McmcDenoiser {
            target: &mix,
            settings: McmcSettings {
                mcmc_steps: steps,
                mcmc_chains: 1,
                burn_in: 0.5,
                mcmc_step: 0.5,
                warmup: Some(0),
                ..McmcSettings::default()
            },
        };
        let mut state = den.new_state();
        let (mut sq, mut sum, mut sum2) = (0.0, [0.0; 2], [0.0; 2]);
        for r in 0..replicates {
            den.reset(&mut state);
            let mut m = [0.0; 2];
            den.denoise(&y, obs, &mut state, &mut Seed::new(9).child(r).rng(), &mut m);
            for i in 0..2 {
                sq += (m[i] - want[i]).powi(2);
                sum[i] += m[i];
                sum2[i] += m[i] * m[i];
            }
        }
        let n = replicates as f64;
        rms.push((sq / n).sqrt());
        last = (
            sum.iter().map(|s| s / n).collect(),
            (0..2)
                .map(|i| ((sum2[i] / n - (sum[i] / n).powi(2)) / (n - 1.0)).sqrt())
                .collect(),
        );
    }
    for w in rms.windows(2) {
        assert!(w[1] < w[0], "error does not decrease with the MCMC steps: {rms:?}");
    }
    assert!(rms[4] < 0.1, "error at 1024 steps: {rms:?}");
    for i in 0..2 {
        let (m, se) = (last.0[i], last.1[i]);
        assert!(
            (m - want[i]).abs() < 4.0 * se,
            "coordinate {i}: {m} ± {se} vs exact {}",
            want[i]
        );
    }
}

/// The paper's step rule (one step per chain, ×/÷ 1.01 after every update,
/// from a tiny first step and a long first run) also gives the exact
/// posterior mean: replicates' mean within 4 standard errors, small error.
#[test]
fn per_chain_step_rule_gives_the_exact_posterior_mean() {
    let (mix, obs, y, want) = posterior();
    let den = McmcDenoiser {
        target: &mix,
        settings: McmcSettings {
            mcmc_steps: 512,
            mcmc_chains: 2,
            burn_in: 0.5,
            mcmc_step: 1e-5,
            warmup: Some(1600),
            step_adaptation: StepAdaptation::PerChain,
            ..McmcSettings::default()
        },
    };
    let mut state = den.new_state();
    let replicates = 200;
    let (mut sq, mut sum, mut sum2) = (0.0, [0.0; 2], [0.0; 2]);
    for r in 0..replicates {
        den.reset(&mut state);
        let mut m = [0.0; 2];
        den.denoise(&y, obs, &mut state, &mut Seed::new(21).child(r).rng(), &mut m);
        for i in 0..2 {
            sq += (m[i] - want[i]).powi(2);
            sum[i] += m[i];
            sum2[i] += m[i] * m[i];
        }
    }
    // The rule moved the steps far from 1e-5 (to the posterior's scale).
    assert!(
        state.steps.iter().all(|&s| s > 0.05 && s < 5.0),
        "steps {:?}",
        state.steps
    );
    let n = replicates as f64;
    let rms = (sq / n).sqrt();
    assert!(rms < 0.15, "rms error {rms}");
    for i in 0..2 {
        let m = sum[i] / n;
        let se = ((sum2[i] / n - m * m) / (n - 1.0)).sqrt();
        assert!(
            (m - want[i]).abs() < 4.0 * se,
            "coordinate {i}: {m} ± {se} vs exact {}",
            want[i]
        );
    }
}
