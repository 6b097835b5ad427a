//! The start-decided diagnostic (`fieldflow_slips::start_decided`) on two
//! modes in d = 8: with the MCMC denoiser every particle keeps the mode of
//! its start estimate and the output shares do not follow the target's
//! weights (the same shares for weights ⅔/⅓ and ⅓/⅔: the mechanism of
//! docs/THEORY.md §6.12), and the diagnostic warns; with the exact denoiser
//! the first estimate is a weighted average over the modes, particles
//! settle later (measured κ 0.51–0.63), the weights come out right and it
//! does not warn.

use fieldflow_core::{Modes, Par, Seed};
use fieldflow_slips::{Denoiser, ExactDenoiser, McmcDenoiser, McmcSettings, Slips, SlipsConfig, StartDecided};
use fieldflow_targets::{Covariance, GaussianMixture};
use ndarray::Array1;

const DIM: usize = 8;
const N: usize = 256;

/// Two modes as in `GaussianMixture::two_modes`, with weight `w0` on mode 0.
fn two_modes(w0: f64) -> GaussianMixture {
    let means = vec![Array1::from_elem(DIM, -2.0 / 3.0), Array1::from_elem(DIM, 4.0 / 3.0)];
    GaussianMixture::new(means, vec![Covariance::Isotropic(0.05); 2], vec![w0, 1.0 - w0]).unwrap()
}

/// The paper's two-modes settings at the t₀ where the start's share of
/// mode 0 is ⅔ in d = 8 (data/experiments/slips/README.md), fewer steps.
fn config() -> SlipsConfig {
    SlipsConfig {
        sigma: (16.0f64 / 9.0 + 0.05).sqrt(),
        t0: 0.286,
        steps: 64,
        ..SlipsConfig::default()
    }
}

/// Runs SLIPS with `den` on `target`; the diagnostic and the output share
/// of mode 0.
fn run<D: Denoiser>(target: &GaussianMixture, den: &D) -> (StartDecided, f64) {
    let batch = Slips::new(config(), den, DIM)
        .unwrap()
        .sample(Seed::new(11), 0, N, Par::default());
    let mut d = StartDecided::new(2);
    let start = target.assign_batch(batch.starts.view());
    d.add(start.iter().map(|&m| m as f64), target.assign_batch(batch.xs.view()));
    let share = target.mode_fractions(batch.xs.view())[0];
    (d, share)
}

fn sd(w: f64) -> f64 {
    (w * (1.0 - w) / N as f64).sqrt()
}

#[test]
fn mcmc_denoiser_keeps_the_start_modes_whatever_the_weights() {
    let settings = McmcSettings::default();
    let mut shares = Vec::new();
    for w0 in [2.0 / 3.0, 1.0 / 3.0] {
        let target = two_modes(w0);
        let den = McmcDenoiser {
            target: &target,
            settings,
        };
        let (d, share) = run(&target, &den);
        eprintln!("w0 = {w0:.3}: {}", d.summary());
        assert!(d.kept_fraction() >= 0.95, "w0 = {w0}: {}", d.summary());
        assert!(d.warning().is_some(), "w0 = {w0}: no warning for {}", d.summary());
        shares.push(share);
    }
    // The output share of mode 0 is the start's (≈ ⅔) for either weight:
    // equal within 4σ, and 1/3 is missed by far.
    let (a, b) = (shares[0], shares[1]);
    assert!((a - b).abs() < 4.0 * 2f64.sqrt() * sd(a), "shares {a} and {b}");
    assert!((b - 1.0 / 3.0).abs() > 8.0 * sd(1.0 / 3.0), "share {b} for weight 1/3");
}

#[test]
fn exact_denoiser_moves_particles_after_the_start_and_is_not_flagged() {
    for w0 in [2.0 / 3.0, 1.0 / 3.0] {
        let target = two_modes(w0);
        let den = ExactDenoiser::mixture(&target).unwrap();
        let (d, share) = run(&target, &den);
        eprintln!("w0 = {w0:.3}: {}", d.summary());
        assert!(d.kept_fraction() < 0.9, "w0 = {w0}: {}", d.summary());
        assert_eq!(d.warning(), None);
        assert!((share - w0).abs() < 4.0 * sd(w0), "w0 = {w0}: share {share}");
    }
}
