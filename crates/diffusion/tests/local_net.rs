//! The local-net score (docs/THEORY.md §6.11.7): DSM gradient, exact
//! divergence and ODE log q against finite differences; the initialization
//! is the local-cubic model; bit-identical results for 1 and 2 threads.

mod common;
use common::{assert_second_order, dsm_gradient_and_differences, on_threads, random_model};
use fieldflow_core::{Par, Seed};
use fieldflow_diffusion::{
    dsm, score_and_divergence, spectrum_of, Architecture, FieldScore, Integrator, NoiseSchedule, ReverseSampler,
    ScoreModel, TimeGrid,
};
use fieldflow_testkit::{assert_close, rel_err, FD_REL_TOL};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};

const VP: NoiseSchedule = NoiseSchedule::VariancePreserving {
    beta_min: 0.1,
    beta_max: 20.0,
};
const VE: NoiseSchedule = NoiseSchedule::VarianceExploding {
    sigma_min: 0.01,
    sigma_max: 5.0,
};

fn net(range: usize, channels: usize, net_range: usize) -> Architecture {
    Architecture::LocalNet {
        range,
        channels,
        net_range,
    }
}

#[test]
fn dsm_gradient_matches_central_differences() {
    for (shape, arch) in [
        (vec![4usize, 3], net(1, 2, 1)),
        (vec![5], net(2, 3, 2)),
        (vec![3, 3, 3], net(0, 1, 1)),
        (vec![4, 4], net(1, 2, 0)),
    ] {
        let v: usize = shape.iter().product();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let data = Array2::from_shape_fn((7, v), |_| rng.random_range(-1.5..1.5));
        for s in [VP, VE] {
            let model = random_model(arch, &shape, 11, -0.5..0.5);
            let (grad, fd) = dsm_gradient_and_differences(&model, &s, data.view());
            eprintln!(
                "DSM gradient {arch:?} {shape:?}: rel. error {:.2e}",
                rel_err(&grad, &fd)
            );
            assert_close(&format!("DSM gradient {arch:?} {s:?}"), &grad, &fd, FD_REL_TOL);
        }
    }
}

#[test]
fn divergence_matches_central_differences_of_the_score() {
    for (shape, arch) in [
        (vec![5usize, 4], net(1, 3, 1)),
        (vec![7], net(2, 2, 3)),
        (vec![3, 3, 3], net(1, 2, 1)),
    ] {
        let v: usize = shape.iter().product();
        let model = random_model(arch, &shape, 7, -1.0..1.0);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        let x: Vec<f64> = (0..v).map(|_| rng.random_range(-1.5..1.5)).collect();
        for t in [0.01, 0.37, 0.9] {
            let mut s = vec![0.0; v];
            let div = score_and_divergence(&model, t, &x, &mut s);
            let h = 1e-5;
            let mut fd = 0.0;
            let (mut sp, mut sm) = (vec![0.0; v], vec![0.0; v]);
            for i in 0..v {
                let mut y = x.clone();
                y[i] = x[i] + h;
                score_and_divergence(&model, t, &y, &mut sp);
                y[i] = x[i] - h;
                score_and_divergence(&model, t, &y, &mut sm);
                fd += (sp[i] - sm[i]) / (2.0 * h);
            }
            eprintln!(
                "divergence {arch:?} t = {t}: {div} vs FD {fd}, rel. error {:.2e}",
                rel_err(&[div], &[fd])
            );
            assert_close(&format!("divergence {arch:?} t = {t}"), &[div], &[fd], FD_REL_TOL);
        }
    }
}

#[test]
fn network_is_odd_and_translation_equivariant() {
    let shape = [5usize, 4];
    let model = random_model(net(1, 3, 1), &shape, 5, -1.0..1.0);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
    let x: Vec<f64> = (0..20).map(|_| rng.random_range(-1.5..1.5)).collect();
    let (mut s, mut s_neg, mut s_shift) = (vec![0.0; 20], vec![0.0; 20], vec![0.0; 20]);
    score_and_divergence(&model, 0.3, &x, &mut s);
    let neg: Vec<f64> = x.iter().map(|a| -a).collect();
    score_and_divergence(&model, 0.3, &neg, &mut s_neg);
    let back: Vec<f64> = s_neg.iter().map(|a| -a).collect();
    assert_close("s(−x) = −s(x)", &back, &s, 1e-14);
    // Shift by one site along the first axis (row-major: i → i + 4).
    let shifted: Vec<f64> = (0..20).map(|i| x[(i + 4) % 20]).collect();
    score_and_divergence(&model, 0.3, &shifted, &mut s_shift);
    let expect: Vec<f64> = (0..20).map(|i| s[(i + 4) % 20]).collect();
    assert_close("translation", &s_shift, &expect, 1e-12);
}

#[test]
fn initialization_is_the_local_cubic_model() {
    // With the same linear and cubic parameters, the untrained local-net
    // score equals the local-cubic score exactly (W2 = 0), the DSM losses
    // agree bit for bit, and the W2 gradient is non-zero (training can
    // move away from local-cubic). The parameter count does not grow with L.
    let grid = TimeGrid { t_min: 1e-3, levels: 5 };
    let shape = [6usize, 6];
    let cubic = {
        let mut m = ScoreModel::new(
            Architecture::LocalCubic { range: 1 },
            grid,
            spectrum_of(&shape).unwrap(),
        )
        .unwrap();
        for (i, p) in m.params.iter_mut().enumerate() {
            *p = 0.1 * ((i * 7 % 11) as f64) - 0.5;
        }
        m
    };
    let mut local_net = ScoreModel::new(net(1, 4, 1), grid, spectrum_of(&shape).unwrap()).unwrap();
    let (pc, pn) = (cubic.params_per_level(), local_net.params_per_level());
    assert_eq!(pn, pc + 2 * 4 * 9);
    for j in 0..grid.levels {
        local_net.params[j * pn..j * pn + pc].copy_from_slice(&cubic.params[j * pc..(j + 1) * pc]);
    }
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
    let data = Array2::from_shape_fn((16, 36), |_| rng.random_range(-1.5..1.5));
    let x = data.row(0).to_vec();
    for t in [0.001, 0.2, 0.77] {
        let (mut a, mut b) = (vec![0.0; 36], vec![0.0; 36]);
        let da = score_and_divergence(&cubic, t, &x, &mut a);
        let db = score_and_divergence(&local_net, t, &x, &mut b);
        assert_eq!(a, b);
        assert_eq!(da, db);
    }
    let (la, ga) = dsm::loss_and_gradient(&cubic, &VP, data.view(), Seed::new(3), Par::default());
    let (lb, gb) = dsm::loss_and_gradient(&local_net, &VP, data.view(), Seed::new(3), Par::default());
    assert_eq!(la, lb);
    let w2 = pc + 1 + 4 * 9;
    for j in 0..grid.levels {
        assert_eq!(&ga[j * pc..(j + 1) * pc], &gb[j * pn..j * pn + pc]);
        assert!(
            gb[j * pn + w2..(j + 1) * pn].iter().any(|g| g.abs() > 1e-8),
            "level {j}: no gradient on W2"
        );
    }
    let bigger = ScoreModel::new(net(1, 4, 1), grid, spectrum_of(&[16, 16]).unwrap()).unwrap();
    assert_eq!(bigger.params_per_level(), pn);
}

#[test]
fn ode_log_q_converges_to_the_jacobian_of_the_map() {
    // The ODE's log q (integrated exact divergence, trapezoid rule per Heun
    // step) against the exact change of variables of the discrete map x₁ →
    // x₀, its log-determinant by central differences: the error falls about
    // fourfold per doubling of the steps.
    let mut model = random_model(net(1, 2, 1), &[3, 3], 4, -0.3..0.3);
    // A stable linear part: on-site weight −1.5 at every level.
    let per = model.params_per_level();
    for j in 0..4 {
        model.params[j * per] = -1.5 - 0.2 * j as f64;
    }
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(6);
    let x1: Vec<f64> = (0..9).map(|_| rng.random_range(-1.2..1.2)).collect();
    let errs: Vec<f64> = [20, 40, 80]
        .iter()
        .map(|&steps| {
            let s = ReverseSampler {
                schedule: VP,
                integrator: Integrator::ProbabilityFlowHeun,
                steps,
                t_min: 1e-3,
            };
            let map = |x: &[f64]| -> (Vec<f64>, f64) {
                let mut xs = Array2::from_shape_vec((1, 9), x.to_vec()).unwrap();
                let mut lq = Array1::zeros(1);
                s.transport(&model, xs.view_mut(), lq.view_mut(), Seed::new(0), Par::serial(1));
                (xs.row(0).to_vec(), lq[0])
            };
            let (_, approx) = map(&x1);
            let jac = fieldflow_testkit::central_jacobian(|x| map(x).0, &x1, 1e-6);
            let exact = -fieldflow_testkit::log_abs_det(jac, 9);
            eprintln!("steps {steps}: log q error {:.3e}", (approx - exact).abs());
            (approx - exact).abs()
        })
        .collect();
    assert_second_order(&errs);
}

#[test]
fn gradient_and_draws_are_bit_identical_for_one_and_two_threads() {
    let shape = [6usize, 6];
    let model = random_model(net(2, 3, 1), &shape, 8, -0.3..0.3);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
    let data = Array2::from_shape_fn((50, 36), |_| rng.random_range(-1.5..1.5));
    let s = ReverseSampler {
        schedule: VP,
        integrator: Integrator::ProbabilityFlowHeun,
        steps: 20,
        t_min: 1e-3,
    };
    let par = Par {
        chunk_rows: 8,
        parallel: true,
    };
    let run = |threads| {
        on_threads(threads, || {
            let g = dsm::loss_and_gradient(&model, &VP, data.view(), Seed::new(2), par);
            let d = s.sample(&model, 30, Seed::new(4), par);
            (g, d.xs, d.log_q)
        })
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.0 .0, b.0 .0);
    assert_eq!(a.0 .1, b.0 .1);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    assert!(a.2.iter().all(|l| l.is_finite()));
    assert!(!model.is_linear());
}

#[test]
fn bad_local_net_settings_are_config_errors() {
    let grid = TimeGrid { t_min: 1e-3, levels: 3 };
    let sp = spectrum_of(&[4, 4]).unwrap();
    let e = ScoreModel::new(net(1, 0, 1), grid, sp.clone()).unwrap_err();
    assert_eq!(e.field, "model.channels");
    let e = ScoreModel::new(net(1, 65, 1), grid, sp.clone()).unwrap_err();
    assert_eq!(e.field, "model.channels");
    let e = ScoreModel::new(net(1, 2, 2), grid, sp.clone()).unwrap_err();
    assert_eq!(e.field, "model.net_range");
    let e = ScoreModel::new(net(2, 2, 1), grid, sp).unwrap_err();
    assert_eq!(e.field, "model.range");
}
