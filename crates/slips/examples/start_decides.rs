//! Per particle: does SLIPS's output mode equal the mode nearest to the
//! particle's start draw y ~ N(0, σ²t₀ I) (before any Langevin or MCMC
//! step)? The start is re-drawn from the particle's own stream (its first d
//! normals, as `Slips::sample` draws them), so the comparison is exact
//! (data/experiments/slips/README.md, "Where the weights are decided").
//!
//! `cargo run --release -p fieldflow-slips --example start_decides`

use fieldflow_core::{Modes, Par, Seed};
use fieldflow_slips::{McmcDenoiser, McmcSettings, Slips, SlipsConfig, StepAdaptation};
use fieldflow_targets::GaussianMixture;
use rand_distr::{Distribution, StandardNormal};

fn main() {
    let two_sigma = (16.0f64 / 9.0 + 0.05).sqrt();
    let cases: Vec<(&str, GaussianMixture, f64, f64)> = vec![
        (
            "two modes d = 16",
            GaussianMixture::two_modes(16).expect("valid"),
            two_sigma,
            0.15,
        ),
        (
            "two modes d = 64",
            GaussianMixture::two_modes(64).expect("valid"),
            two_sigma,
            0.05,
        ),
        ("MOG-4", GaussianMixture::mog4(), 16.5f64.sqrt(), 0.1),
        ("MOG-4", GaussianMixture::mog4(), 16.5f64.sqrt(), 0.4),
    ];
    let n = 512;
    for (rule, step) in [(StepAdaptation::RobbinsMonro, 1e-2), (StepAdaptation::PerChain, 1e-5)] {
        for (name, target, sigma, t0) in &cases {
            let d = target.n_components();
            let dim = target.mean(0).len();
            let mcmc = McmcDenoiser {
                target,
                settings: McmcSettings {
                    step_adaptation: rule,
                    mcmc_step: step,
                    ..McmcSettings::default()
                },
            };
            let config = SlipsConfig {
                sigma: *sigma,
                t0: *t0,
                steps: 256,
                ..SlipsConfig::default()
            };
            let seed = Seed::new(7);
            let slips = Slips::new(config, &mcmc, dim).expect("valid");
            let out = slips.sample(seed, 0, n, Par::default());
            let alpha = config.observation(*t0).alpha;
            let sd = sigma * t0.sqrt();
            let (mut same, mut counts) = (0, vec![0usize; d]);
            for i in 0..n {
                let mut rng = seed.child(i as u64).rng();
                let y: Vec<f64> = (0..dim)
                    .map(|_| {
                        let xi: f64 = StandardNormal.sample(&mut rng);
                        sd * xi / alpha
                    })
                    .collect();
                let nearest = (0..d)
                    .min_by(|&a, &b| {
                        let da: f64 = y.iter().zip(target.mean(a)).map(|(u, m)| (u - m).powi(2)).sum();
                        let db: f64 = y.iter().zip(target.mean(b)).map(|(u, m)| (u - m).powi(2)).sum();
                        da.total_cmp(&db)
                    })
                    .expect("components");
                let got = target.assign(out.xs.row(i));
                counts[got] += 1;
                same += usize::from(got == nearest);
            }
            println!(
                "{rule:?} {name:<16} t0 = {t0}: output mode = mode nearest to the start draw for {same}/{n} particles ({:.1} %); output counts {counts:?}",
                100.0 * same as f64 / n as f64
            );
        }
    }
}
