//! Integrator properties: reversibility, ΔH = O(ε²), Creutz equality.

mod common;

use fieldflow_core::{Seed, Target};
use fieldflow_lattice::integrator::integrate;
use fieldflow_lattice::{
    advance, init_states, thermalize, AlgorithmConfig, ChainRecords, HmcConfig, Integrator, Phi4, Phi4Config, Start,
};
use ndarray::{ArrayView1, ArrayViewMut1};
use rand_distr::{Distribution, StandardNormal};

fn gaussian(n: usize, seed: Seed, sigma: f64) -> Vec<f64> {
    let mut rng = seed.rng();
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            sigma * z
        })
        .collect()
}

/// An equilibrium-like field of `target` from a short HMC run.
fn thermal_field(target: &Phi4, seed: u64) -> Vec<f64> {
    let alg = AlgorithmConfig::Hmc(HmcConfig::default()).validate().unwrap();
    let mut st = init_states(1, target.dim(), Start::Hot { sigma: 0.5 }, Seed::new(seed), &alg);
    thermalize(target, &alg, Seed::new(seed), &mut st, 100, &|_| {});
    st.pop().unwrap().phi
}

/// Runs the integrator and returns (final φ, final π, ΔH).
fn run(target: &Phi4, integ: Integrator, eps: f64, n: usize, phi0: &[f64], pi0: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
    let mut phi = phi0.to_vec();
    let mut pi = pi0.to_vec();
    let mut score = vec![0.0; phi.len()];
    let lp0 = target.log_prob_and_score(ArrayView1::from(&phi[..]), ArrayViewMut1::from(&mut score[..]));
    let lp1 = integrate(target, integ, eps, n, &mut phi, &mut pi, &mut score, lp0);
    let k0: f64 = pi0.iter().map(|p| p * p).sum::<f64>() * 0.5;
    let k1: f64 = pi.iter().map(|p| p * p).sum::<f64>() * 0.5;
    (phi, pi, (k1 - lp1) - (k0 - lp0))
}

#[test]
fn leapfrog_and_omelyan_are_reversible() {
    for shape in [&[8usize, 8][..], &[6, 4, 5]] {
        let t = Phi4Config::standard(shape, -1.0, 0.8).validate().unwrap();
        let phi0 = thermal_field(&t, 1);
        let pi0 = gaussian(t.dim(), Seed::new(2), 1.0);
        for integ in [Integrator::Leapfrog, Integrator::Omelyan] {
            let (phi1, pi1, dh) = run(&t, integ, 0.05, 20, &phi0, &pi0);
            assert!(dh.abs() < 1.0, "{integ:?}: ΔH = {dh}");
            let moved: f64 = phi1.iter().zip(&phi0).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(moved > 0.1, "the trajectory must go somewhere");
            let flipped: Vec<f64> = pi1.iter().map(|p| -p).collect();
            let (phi2, pi2, dh2) = run(&t, integ, 0.05, 20, &phi1, &flipped);
            let e_phi = phi2.iter().zip(&phi0).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let e_pi = pi2.iter().zip(&pi0).map(|(a, b)| (a + b).abs()).fold(0.0, f64::max);
            assert!(e_phi < 1e-12 && e_pi < 1e-12, "{integ:?} {shape:?}: {e_phi} {e_pi}");
            assert!((dh + dh2).abs() < 1e-10);
        }
    }
}

#[test]
fn energy_error_scales_as_step_size_squared() {
    let t = Phi4Config::standard(&[8, 8], -1.0, 0.8).validate().unwrap();
    let phi0 = thermal_field(&t, 3);
    for integ in [Integrator::Leapfrog, Integrator::Omelyan] {
        // Fixed trajectory length 1; RMS of ΔH over a few momenta per ε.
        let ns = [16usize, 23, 32, 45, 64, 90, 128];
        let pts: Vec<(f64, f64)> = ns
            .iter()
            .map(|&n| {
                let eps = 1.0 / n as f64;
                let ms: f64 = (0..6)
                    .map(|k| {
                        let pi0 = gaussian(t.dim(), Seed::new(10 + k), 1.0);
                        run(&t, integ, eps, n, &phi0, &pi0).2.powi(2)
                    })
                    .sum::<f64>()
                    / 6.0;
                (eps.ln(), 0.5 * ms.ln())
            })
            .collect();
        let n = pts.len() as f64;
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        assert!((slope - 2.0).abs() < 0.3, "{integ:?}: slope {slope}");
    }
}

#[test]
fn creutz_equality_holds() {
    // Tutorial parameters (docs/THEORY.md §2.10), deliberately coarse steps so that
    // e^{−ΔH} fluctuates: ⟨e^{−ΔH}⟩ = 1 exactly for a reversible,
    // area-preserving integrator in equilibrium.
    let t = Phi4Config::standard(&[8, 8], -4.0, 8.0).validate().unwrap();
    for integ in [Integrator::Leapfrog, Integrator::Omelyan] {
        let cfg = HmcConfig {
            trajectory_length: 1.0,
            n_steps: if integ == Integrator::Leapfrog { 12 } else { 6 },
            integrator: integ,
            tune: false,
            ..Default::default()
        };
        let alg = AlgorithmConfig::Hmc(cfg).validate().unwrap();
        let seed = Seed::new(77);
        let mut st = init_states(8, t.dim(), Start::Hot { sigma: 0.5 }, seed, &alg);
        thermalize(&t, &alg, seed, &mut st, 200, &|_| {});
        let mut rec = ChainRecords::new(8, 2000, t.dim());
        advance(&t, &alg, seed, &mut st, 1, &mut rec, &|_| {});
        let acc = rec.acceptance.mean().unwrap();
        assert!(
            acc > 0.4 && acc < 0.97,
            "{integ:?}: acceptance {acc} not in a useful range"
        );
        let series: Vec<Vec<f64>> = rec
            .delta_h
            .outer_iter()
            .map(|r| r.iter().map(|d| (-d).exp()).collect())
            .collect();
        let est = common::binned_mean_err(&series, 10);
        common::assert_within_4_sigma(&format!("{integ:?} <exp(-dH)>"), est, 1.0, 0.05, 1.0);
    }
}
