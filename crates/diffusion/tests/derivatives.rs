//! Every hand-written derivative of the diffusion crate against central
//! finite differences (relative error < 1e-6): the schedules' rates, the DSM
//! minibatch gradient and the population gradient, for every architecture.

mod common;
use common::{dsm_gradient_and_differences, random_model};
use fieldflow_core::{Par, Seed};
use fieldflow_diffusion::dsm;
use fieldflow_diffusion::{spectrum_of, Architecture, FieldScore, GaussianField, NoiseSchedule};
use fieldflow_testkit::{assert_close, central_derivative, central_gradient, FD_REL_TOL, FD_STEP};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

const SCHEDULES: [NoiseSchedule; 2] = [
    NoiseSchedule::VariancePreserving {
        beta_min: 0.1,
        beta_max: 20.0,
    },
    NoiseSchedule::VarianceExploding {
        sigma_min: 0.01,
        sigma_max: 5.0,
    },
];

#[test]
fn schedules_satisfy_the_moment_equations() {
    // dα/dt = f α and dσ²/dt = 2 f σ² + g².
    for s in SCHEDULES {
        for t in [0.05, 0.3, 0.7, 0.95] {
            let da = central_derivative(|t| s.alpha(t), t, 1e-6);
            assert_close("dα/dt", &[s.drift(t) * s.alpha(t)], &[da], FD_REL_TOL);
            let ds2 = central_derivative(|t| s.sigma2(t), t, 1e-6);
            assert_close(
                "dσ²/dt",
                &[2.0 * s.drift(t) * s.sigma2(t) + s.g2(t)],
                &[ds2],
                FD_REL_TOL,
            );
        }
    }
}

/// The plain local model of range 1.
const LOCAL_R1: Architecture = Architecture::local(1);

fn architectures() -> [Architecture; 4] {
    [
        Architecture::OneLayer,
        Architecture::TwoLayer { init: 0.5 },
        LOCAL_R1,
        Architecture::gaussian_local(1),
    ]
}

/// The spread of the random parameters: a Gaussian local model keeps its
/// inverse propagator K = e^{θ₀} + Σ θ_o b_o(k) positive (b_o ≤ 0, so
/// θ_o ≤ 0 suffices), away from the pole of −K/(α² + σ²K) where
/// differences lose their accuracy.
fn spread(arch: Architecture) -> std::ops::Range<f64> {
    match arch {
        Architecture::Local { gaussian: true, .. } => -0.5..0.0,
        _ => -0.8..0.2,
    }
}

#[test]
fn dsm_gradient_matches_central_differences() {
    let shape = [4, 3];
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
    let data = Array2::from_shape_fn((7, 12), |_| rng.random_range(-1.5..1.5));
    for s in SCHEDULES {
        for arch in architectures()
            .into_iter()
            .chain([Architecture::LocalCubic { range: 1 }])
        {
            let model = random_model(arch, &shape, 11, spread(arch));
            let (grad, fd) = dsm_gradient_and_differences(&model, &s, data.view());
            assert_close(&format!("DSM gradient {arch:?} {s:?}"), &grad, &fd, FD_REL_TOL);
        }
    }
}

#[test]
fn population_gradient_matches_central_differences() {
    let shape = [4, 4];
    for s in SCHEDULES {
        let field = GaussianField::free_field(spectrum_of(&shape).unwrap(), 0.3).unwrap();
        for arch in architectures() {
            let model = random_model(arch, &shape, 2, spread(arch));
            let (_, grad) = dsm::population(&model, &s, &field);
            let fd = central_gradient(
                |p| {
                    let mut m = model.clone();
                    m.params.copy_from_slice(p);
                    dsm::population(&m, &s, &field).0
                },
                &model.params,
                FD_STEP,
            );
            assert_close(&format!("population gradient {arch:?} {s:?}"), &grad, &fd, FD_REL_TOL);
            let t = 0.37;
            let (_, grad) = dsm::population_at(&model, &s, &field, t);
            let fd = central_gradient(
                |p| {
                    let mut m = model.clone();
                    m.params.copy_from_slice(p);
                    dsm::population_at(&m, &s, &field, t).0
                },
                &model.params,
                FD_STEP,
            );
            assert_close(
                &format!("one-time population gradient {arch:?} {s:?}"),
                &grad,
                &fd,
                FD_REL_TOL,
            );
        }
    }
}

#[test]
fn local_multipliers_are_the_real_space_convolution() {
    // A range-1 convolution on a 5 × 4 lattice applied in momentum space
    // equals Σ_δ w_{o(δ)} x_{i+δ} summed in real space.
    let shape = [5usize, 4];
    let model = random_model(LOCAL_R1, &shape, 9, -0.8..0.2);
    let w = &model.params[..model.params_per_level()];
    let spectrum = model.spectrum();
    let mut m = vec![0.0; 20];
    model.level_multipliers(0, &mut m);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
    let x: Vec<f64> = (0..20).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = vec![0.0; 20];
    spectrum.apply(&m, &x, &mut out, &mut Default::default());
    // Orbit order: zero, then δ with first non-zero coordinate positive,
    // enumerated with the first coordinate fastest.
    let mut reps = vec![[0i64, 0]];
    for code in 0..9i64 {
        let d = [code % 3 - 1, code / 3 - 1];
        if d.iter().find(|&&c| c != 0).is_some_and(|&c| c > 0) {
            reps.push(d);
        }
    }
    assert_eq!(reps.len(), w.len());
    let mut direct = vec![0.0; 20];
    for i in 0..5i64 {
        for j in 0..4i64 {
            let mut acc = 0.0;
            for (o, d) in reps.iter().enumerate() {
                for sign in [1i64, -1] {
                    if sign == -1 && d == &[0, 0] {
                        continue;
                    }
                    let (a, b) = ((i + sign * d[0]).rem_euclid(5), (j + sign * d[1]).rem_euclid(4));
                    acc += w[o] * x[(a * 4 + b) as usize];
                }
            }
            direct[(i * 4 + j) as usize] = acc;
        }
    }
    assert_close("local convolution", &out, &direct, 1e-12);
}

#[test]
fn minibatch_gradients_average_to_the_population_gradient() {
    // Mean of 400 independent DSM gradients on exact free-field data against
    // the exact population gradient, component by component within 4σ
    // (the t-quadrature error of the population objective is far below σ).
    use fieldflow_core::ExactSampler;
    let shape = [4, 4];
    let s = SCHEDULES[0];
    let field = GaussianField::free_field(spectrum_of(&shape).unwrap(), 0.5).unwrap();
    let model = random_model(LOCAL_R1, &shape, 4, -0.8..0.2);
    let (_, exact) = dsm::population(&model, &s, &field);
    let n = 400;
    let mut data = Array2::zeros((64, 16));
    let mut grads = Vec::with_capacity(n);
    for b in 0..n as u64 {
        field.sample_batch(Seed::new(100 + b), data.view_mut(), Par::default());
        grads.push(dsm::loss_and_gradient(&model, &s, data.view(), Seed::new(b), Par::default()).1);
    }
    for (c, &e) in exact.iter().enumerate() {
        let xs: Vec<f64> = grads.iter().map(|g| g[c]).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se = (var / n as f64).sqrt();
        assert!(
            (mean - e).abs() < 4.0 * se,
            "component {c}: minibatch mean {mean} ± {se} vs population {e}"
        );
    }
}
