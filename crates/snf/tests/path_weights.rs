//! Path weights against brute force: the closed-form Langevin transition
//! densities on a 1D Gaussian, the identity E[w] = Z (normalized base; with
//! the unnormalized base energy ‖z‖²/2σ² it reads E[w] = Z_target/Z_base) for
//! Langevin, MALA and Metropolis blocks, and log w = log p̃ − log q exactly
//! when every stage is deterministic.

mod common;

use common::*;
use fieldflow_core::{Par, Proposal, Seed, Target};
use fieldflow_flows::{Flow, FlowLayer};
use fieldflow_snf::{PathProposal, Snf, Stage};
use fieldflow_targets::{DoubleWell, Gaussian};
use ndarray::{array, Array1};

const MU: f64 = 0.7;
const S2: f64 = 0.5;

/// Unnormalized N(μ, s²) in 1D: Z = √(2π s²).
fn gauss_1d() -> Gaussian {
    Gaussian::new(array![MU], array![[S2]]).unwrap()
}

fn snf_1d(stages: Vec<Stage>) -> Snf<Gaussian> {
    Snf::new(gauss_1d(), 1.0, Vec::<FlowLayer>::new(), vec![], stages)
}

fn log_normal(x: f64, mean: f64, var: f64) -> f64 {
    -0.5 * (x - mean).powi(2) / var - 0.5 * (2.0 * std::f64::consts::PI * var).ln()
}

#[test]
fn one_langevin_step_weight_equals_the_closed_form_transition_ratio() {
    let (eps, lambda) = (0.15, 0.6);
    let snf = snf_1d(vec![langevin(1, eps, false, lambda)]);
    // u_λ'(y) = (1 − λ) y + λ (y − μ)/s² (σ = 1).
    let du = |y: f64| (1.0 - lambda) * y + lambda * (y - MU) / S2;
    let b = snf.sample_paths(Seed::new(11), 1000, Par::default());
    let t = gauss_1d();
    for i in 0..1000 {
        let (z, x) = (b.zs[[i, 0]], b.xs[[i, 0]]);
        let brute = t.log_prob(b.xs.row(i)) - log_normal(z, 0.0, 1.0) + log_normal(z, x - eps * du(x), 2.0 * eps)
            - log_normal(x, z - eps * du(z), 2.0 * eps);
        assert!(
            (b.log_w[i] - brute).abs() < 1e-12 * (1.0 + brute.abs()),
            "row {i}: {} vs {brute}",
            b.log_w[i]
        );
        assert!((b.log_q_eff[i] - (t.log_prob(b.xs.row(i)) - b.log_w[i])).abs() < 1e-12);
    }
}

/// Mean of w within 4 standard errors of Z (returns (mean, se)).
fn assert_mean_weight_is_z(snf: &Snf<impl Target>, n: usize, seed: u64) -> (f64, f64) {
    let z = snf.target().log_z().unwrap().exp();
    let b = snf.sample_paths(Seed::new(seed), n, Par::default());
    let w: Vec<f64> = b.log_w.iter().map(|l| l.exp()).collect();
    let mean = w.iter().sum::<f64>() / n as f64;
    let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    let se = (var / n as f64).sqrt();
    assert!((mean - z).abs() < 4.0 * se, "E[w] = {mean} ± {se}, Z = {z}");
    assert!(se < 0.05 * z, "test too weak: se = {se}");
    (mean, se)
}

#[test]
fn mean_weight_is_the_normalizing_constant_for_every_block_kind() {
    let n = 100_000;
    // One Langevin step at λ = 1, several steps along a schedule, MALA, Metropolis.
    assert_mean_weight_is_z(&snf_1d(vec![langevin(1, 0.1, false, 1.0)]), n, 1);
    assert_mean_weight_is_z(
        &snf_1d(vec![langevin(4, 0.05, false, 0.5), langevin(4, 0.05, false, 1.0)]),
        n,
        2,
    );
    assert_mean_weight_is_z(
        &snf_1d(vec![langevin(5, 0.2, true, 0.5), langevin(5, 0.2, true, 1.0)]),
        n,
        3,
    );
    assert_mean_weight_is_z(&snf_1d(vec![metropolis(10, 0.8, 1.0)]), n, 4);
    // The weight is not trivial: a large step size makes a poor sampler, yet E[w] = Z.
    let (_, se) = assert_mean_weight_is_z(&snf_1d(vec![langevin(1, 0.6, false, 1.0)]), n, 5);
    assert!(se > 1e-4);
}

#[test]
fn deterministic_stages_give_log_p_minus_log_q_exactly() {
    for n_layers in [1, 3] {
        let snf = snf_with(DoubleWell::default(), n_layers, vec![Stage::Flow(0..n_layers)], 7, 1.3);
        let flow = Flow::from_layers(1.3, snf.layers().to_vec(), snf.params().to_vec());
        let b = snf.sample_paths(Seed::new(3), 200, Par::default());
        let mut log_q = Array1::zeros(200);
        fieldflow_core::ProposalDensity::log_q_batch(&flow, b.xs.view(), log_q.view_mut(), Par::default());
        let t = snf.target();
        for i in 0..200 {
            let exact = t.log_prob(b.xs.row(i)) - log_q[i];
            assert!(
                (b.log_w[i] - exact).abs() < 1e-11 * (1.0 + exact.abs()),
                "{} vs {exact}",
                b.log_w[i]
            );
        }
        // Reverse paths of a deterministic SNF: path NLL = −log q(x).
        let r = snf.reverse_paths(Seed::new(4), b.xs.view(), Par::default());
        for i in 0..200 {
            assert!((r.path_nll[i] + log_q[i]).abs() < 1e-11 * (1.0 + log_q[i].abs()));
            assert!((&r.zs.row(i) - &b.zs.row(i)).iter().all(|d| d.abs() < 1e-10));
        }
    }
}

#[test]
fn path_proposal_reports_the_effective_log_q() {
    let snf = snf_with(
        DoubleWell::default(),
        2,
        vec![Stage::Flow(0..1), langevin(3, 0.01, false, 0.5), Stage::Flow(1..2)],
        1,
        1.0,
    );
    let p = PathProposal(&snf);
    let mut xs = ndarray::Array2::zeros((50, 2));
    let mut lq = Array1::zeros(50);
    p.draw_batch(Seed::new(9), xs.view_mut(), lq.view_mut(), Par::default());
    let mut lw = Array1::zeros(50);
    let mut xs2 = ndarray::Array2::zeros((50, 2));
    snf.draw_batch_with_log_w(Seed::new(9), xs2.view_mut(), lw.view_mut(), Par::default());
    assert_eq!(xs, xs2);
    for i in 0..50 {
        let lp = snf.target().log_prob(xs.row(i));
        assert!((lp - lq[i] - lw[i]).abs() < 1e-12 * (1.0 + lw[i].abs()));
    }
}

#[test]
fn detailed_balance_block_at_lambda_one_carries_the_weight_of_its_start_point() {
    // For a Metropolis or MALA block at λ = 1, u_λ = −log p̃, so
    // log w = log p̃(x) − log N(z) + u(x) − u(z) = log p̃(z) − log N(z) on
    // every path, whatever the block did (sign convention ΔS = u(out) − u(in)).
    for block in [metropolis(20, 0.5, 1.0), langevin(20, 0.05, true, 1.0)] {
        let snf = snf_1d(vec![block]);
        let b = snf.sample_paths(Seed::new(17), 500, Par::default());
        let t = gauss_1d();
        let mut moved = 0;
        for i in 0..500 {
            let expect = t.log_prob(b.zs.row(i)) - log_normal(b.zs[[i, 0]], 0.0, 1.0);
            assert!((b.log_w[i] - expect).abs() < 1e-12 * (1.0 + expect.abs()));
            moved += usize::from(b.xs[[i, 0]] != b.zs[[i, 0]]);
        }
        assert!(moved > 450, "the block barely moved: {moved}");
    }
}
