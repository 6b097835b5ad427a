//! Where SLIPS loses the mode weights: MOG-4 (weights 0.1, 0.2, 0.3, 0.4)
//! with (1) the MCMC denoiser and the paper's start, (2) the exact denoiser
//! and the paper's start, (3) the MCMC denoiser and an oracle start from an
//! exact observation Y_{t₀} (docs/THEORY.md §6.12,
//! data/experiments/slips/README.md).
//!
//! `cargo run --release -p fieldflow-slips --example start_diagnosis -- [t0 …]`

use fieldflow_core::{Modes, Par, Seed};
use fieldflow_slips::{ExactDenoiser, McmcDenoiser, McmcSettings, Slips, SlipsConfig};
use fieldflow_targets::GaussianMixture;

fn main() {
    let t0s: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("t0 values"))
        .collect();
    let target = GaussianMixture::mog4();
    let exact = ExactDenoiser::mixture(&target).expect("MOG-4 is a valid mixture");
    let mcmc = McmcDenoiser {
        target: &target,
        settings: McmcSettings::default(),
    };
    let n = 1024;
    println!(
        "MOG-4, {n} particles, σ = √16.5, 256 steps; exact weights {:?}",
        target.true_weights()
    );
    for t0 in if t0s.is_empty() { vec![0.1, 0.4, 0.7] } else { t0s } {
        let config = SlipsConfig {
            sigma: 16.5f64.sqrt(),
            t0,
            steps: 256,
            ..SlipsConfig::default()
        };
        let seed = Seed::new(1);
        let weights = |xs: ndarray::Array2<f64>| -> Vec<f64> {
            target
                .mode_fractions(xs.view())
                .iter()
                .map(|w| (w * 1e3).round() / 1e3)
                .collect()
        };
        let a = Slips::new(config, &mcmc, 2)
            .expect("valid")
            .sample(seed, 0, n, Par::default());
        let b = Slips::new(config, &exact, 2)
            .expect("valid")
            .sample(seed, 0, n, Par::default());
        let c = Slips::new(config, &mcmc, 2)
            .expect("valid")
            .with_oracle_start(&target)
            .sample(seed, 0, n, Par::default());
        println!("t0 = {t0}: MCMC denoiser, paper's start   {:?}", weights(a.xs));
        println!("t0 = {t0}: exact denoiser, paper's start  {:?}", weights(b.xs));
        println!("t0 = {t0}: MCMC denoiser, oracle start    {:?}", weights(c.xs));
    }
}
