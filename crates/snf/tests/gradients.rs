//! Path-KL and path-ML gradients (hand-written reverse mode through flow
//! layers, Langevin, MALA and Metropolis blocks) against central finite
//! differences of the loss at fixed noise: relative error < 1e-6.

mod common;

use common::*;
use fieldflow_core::{ExactSampler, Par, Seed};
use fieldflow_snf::{Snf, Stage};
use fieldflow_targets::{DoubleWell, Gaussian};
use fieldflow_testkit::{FD_REL_TOL, FD_STEP};
use ndarray::{array, Array2};

const H: f64 = FD_STEP;
const TOL: f64 = FD_REL_TOL;

/// Which loss to check.
#[derive(Clone, Copy, Debug)]
enum Loss {
    Kl,
    Ml,
}

fn loss<T: fieldflow_snf::HessianVector>(
    snf: &Snf<T>,
    which: Loss,
    data: &Array2<f64>,
    seed: Seed,
    n: usize,
    par: Par,
) -> (f64, Vec<f64>) {
    let mut g = vec![0.0; snf.n_params()];
    let r = match which {
        Loss::Kl => snf.path_kl_grad_batch(seed, n, &mut g, par),
        Loss::Ml => snf.path_ml_grad_batch(seed, data.view(), &mut g, par),
    };
    assert_eq!(r.n_nonfinite, 0);
    (r.loss, r.acceptance)
}

/// Checks ∂L/∂θ on a spread of parameter indices; returns the relative error.
fn check<T: fieldflow_snf::HessianVector>(mut snf: Snf<T>, which: Loss, data: &Array2<f64>, n: usize) -> f64 {
    let seed = Seed::new(21);
    let par = Par::serial(7);
    let mut grad = vec![0.0; snf.n_params()];
    let rep = match which {
        Loss::Kl => snf.path_kl_grad_batch(seed, n, &mut grad, par),
        Loss::Ml => snf.path_ml_grad_batch(seed, data.view(), &mut grad, par),
    };
    // The loss of the gradient call is the loss of the plain sampling call.
    let plain = match which {
        Loss::Kl => -snf.sample_paths(seed, n, par).log_w.mean().unwrap(),
        Loss::Ml => snf.reverse_paths(seed, data.view(), par).path_nll.mean().unwrap(),
    };
    assert!(
        (rep.loss - plain).abs() < 1e-12 * (1.0 + plain.abs()),
        "{} vs {plain}",
        rep.loss
    );
    let np = snf.n_params();
    let idx: Vec<usize> = (0..np).step_by((np / 40).max(1)).collect();
    let (mut an, mut fd) = (Vec::new(), Vec::new());
    for &i in &idx {
        let p0 = snf.params()[i];
        snf.params_mut()[i] = p0 + H;
        let (lp, ap) = loss(&snf, which, data, seed, n, par);
        snf.params_mut()[i] = p0 - H;
        let (lm, am) = loss(&snf, which, data, seed, n, par);
        snf.params_mut()[i] = p0;
        // Accept decisions are held fixed by the gradient: make sure none flipped.
        assert_eq!(ap, am, "an accept decision flipped; choose another seed");
        an.push(grad[i]);
        fd.push((lp - lm) / (2.0 * H));
    }
    let e = rel_err(&an, &fd);
    assert!(
        e < TOL,
        "{which:?}: relative error {e:.2e}\n analytic {an:?}\n fd {fd:?}"
    );
    e
}

fn mixed_stages() -> Vec<Stage> {
    vec![
        Stage::Flow(0..2),
        langevin(3, 0.02, false, 0.3),
        Stage::Flow(2..3),
        langevin(2, 0.01, true, 0.6),
        metropolis(2, 0.2, 0.8),
        Stage::Flow(3..4),
        langevin(2, 0.01, false, 1.0),
    ]
}

#[test]
fn path_kl_gradient_matches_finite_differences_double_well() {
    let empty = Array2::zeros((0, 2));
    // Flow + plain Langevin only: the exact gradient.
    let stages = vec![
        Stage::Flow(0..2),
        langevin(4, 0.005, false, 0.5),
        Stage::Flow(2..4),
        langevin(3, 0.004, false, 1.0),
    ];
    check(snf_with(DoubleWell::default(), 4, stages, 3, 1.0), Loss::Kl, &empty, 24);
    // With MALA and Metropolis blocks (decisions fixed).
    check(
        snf_with(DoubleWell::default(), 4, mixed_stages(), 4, 1.0),
        Loss::Kl,
        &empty,
        24,
    );
}

#[test]
fn path_ml_gradient_matches_finite_differences_double_well() {
    let t = DoubleWell::default();
    let mut data = Array2::zeros((24, 2));
    t.sample_batch(Seed::new(8), data.view_mut(), Par::default());
    let stages = vec![
        Stage::Flow(0..2),
        langevin(4, 0.02, false, 0.5),
        Stage::Flow(2..4),
        langevin(3, 0.01, false, 1.0),
    ];
    check(snf_with(t.clone(), 4, stages, 5, 1.0), Loss::Ml, &data, 24);
    check(snf_with(t, 4, mixed_stages(), 6, 1.0), Loss::Ml, &data, 24);
}

#[test]
fn path_gradients_match_finite_differences_correlated_gaussian() {
    let g = Gaussian::new(array![1.0, -0.5], array![[1.5, 0.6], [0.6, 0.8]]).unwrap();
    let mut data = Array2::zeros((20, 2));
    g.sample_batch(Seed::new(2), data.view_mut(), Par::default());
    check(snf_with(g.clone(), 4, mixed_stages(), 9, 0.9), Loss::Kl, &data, 20);
    check(snf_with(g, 4, mixed_stages(), 10, 0.9), Loss::Ml, &data, 20);
}
