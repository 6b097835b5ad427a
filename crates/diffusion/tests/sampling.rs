//! The reverse-time samplers against the Gaussian-field oracle: with the
//! exact score they reproduce the free field (KL → 0 at the integrator's
//! order; χ₂ and G(1) of actual draws within 4σ), their log q is exact, and
//! draws are bit-identical for 1 and 2 threads.

mod common;
use common::assert_second_order;
use fieldflow_core::{Par, Seed};
use fieldflow_diffusion::{
    spectrum_of, ExactScore, FieldScore, GaussianField, Integrator, NoiseSchedule, ReverseSampler, SpectrumWork,
};
use fieldflow_lattice::FreeField;

const VP: NoiseSchedule = NoiseSchedule::VariancePreserving {
    beta_min: 0.1,
    beta_max: 20.0,
};
const VE: NoiseSchedule = NoiseSchedule::VarianceExploding {
    sigma_min: 0.01,
    sigma_max: 10.0,
};

fn exact(shape: &[usize], m2: f64, schedule: NoiseSchedule) -> ExactScore {
    ExactScore {
        field: GaussianField::free_field(spectrum_of(shape).unwrap(), m2).unwrap(),
        schedule,
    }
}

fn sampler(schedule: NoiseSchedule, integrator: Integrator, steps: usize) -> ReverseSampler {
    ReverseSampler {
        schedule,
        integrator,
        steps,
        t_min: 1e-3,
    }
}

#[test]
fn exact_score_sampler_converges_at_the_integrators_order() {
    // Generated variances v_h against the same integrator at 6400 steps:
    // the largest relative deviation must at least halve per doubling of the
    // steps for the first-order SDE integrators and quarter for Heun
    // (Euler–Maruyama on the VE process converges faster here, at second
    // order: the Gaussian case is kind to it); and the KL
    // per site to the target at 400 steps must be small (its floor is set by
    // t_min and the prior).
    for schedule in [VP, VE] {
        let score = exact(&[8, 8], 0.25, schedule);
        for (integrator, order) in [
            (Integrator::EulerMaruyama, 1),
            (Integrator::ExponentialEuler, 1),
            (Integrator::ProbabilityFlowHeun, 2),
        ] {
            let reference = sampler(schedule, integrator, 6400).generated_variances(&score);
            let errs: Vec<f64> = [50, 100, 200, 400]
                .iter()
                .map(|&n| {
                    let v = sampler(schedule, integrator, n).generated_variances(&score);
                    v.iter()
                        .zip(&reference)
                        .map(|(a, b)| (a / b - 1.0).abs())
                        .fold(0.0, f64::max)
                })
                .collect();
            let expected = 0.5f64.powi(order);
            for w in errs.windows(2) {
                let ratio = w[1] / w[0];
                assert!(
                    ratio < 1.25 * expected,
                    "{schedule:?} {integrator:?}: errors {errs:?}, ratio {ratio} vs {expected}"
                );
            }
            let kl = score
                .field
                .kl_per_site(&sampler(schedule, integrator, 400).generated_variances(&score));
            assert!(kl < 1e-3, "{schedule:?} {integrator:?}: KL {kl}");
        }
    }
}

/// Sample mean and standard error of `xs`.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn exact_score_draws_reproduce_the_free_field() {
    // χ₂ = V⟨M²⟩ and G(1) = ⟨φ(x)φ(x + ê₀)⟩ of 4000 draws against the free
    // field's exact values, within 4σ, for each integrator at 400 steps.
    let shape = [8usize, 8];
    let m2 = 0.5;
    let free = FreeField::new(&shape, m2).unwrap();
    let score = exact(&shape, m2, VP);
    for integrator in [
        Integrator::EulerMaruyama,
        Integrator::ExponentialEuler,
        Integrator::ProbabilityFlowHeun,
    ] {
        let out = sampler(VP, integrator, 400).sample(&score, 4000, Seed::new(17), Par::default());
        let chi2: Vec<f64> = out.xs.rows().into_iter().map(|r| r.sum().powi(2) / 64.0).collect();
        let g1: Vec<f64> = out
            .xs
            .rows()
            .into_iter()
            .map(|r| (0..64).map(|i| r[i] * r[(i + 8) % 64]).sum::<f64>() / 64.0)
            .collect();
        for (name, xs, exact) in [("χ₂", chi2, free.chi2()), ("G(1)", g1, free.propagator_at(&[1, 0]))] {
            let (m, se) = mean_se(&xs);
            assert!(
                (m - exact).abs() < 4.0 * se,
                "{integrator:?} {name}: {m} ± {se} vs exact {exact}"
            );
        }
    }
}

#[test]
fn log_q_is_exact_and_importance_weights_give_log_z() {
    // The ODE's log q (prior density minus the map's log-det) equals the
    // density of the Gaussian it generates, and the self-normalized weights
    // of the normalized target give log Z = 0 within 4σ (delta method).
    let shape = [4usize, 4];
    let score = exact(&shape, 0.3, VP);
    let spectrum = score.spectrum();
    for integrator in [Integrator::ProbabilityFlowHeun, Integrator::EulerMaruyama] {
        let s = sampler(VP, integrator, 20);
        let out = s.sample(&score, 4000, Seed::new(3), Par::default());
        let var = s.generated_variances(&score);
        let mut work = SpectrumWork::default();
        let mut log_w = Vec::new();
        for (row, &lq) in out.xs.rows().into_iter().zip(&out.log_q) {
            let x = row.to_vec();
            let gauss = GaussianField::gaussian_log_density(spectrum, &var, &x, &mut work);
            assert!(
                (gauss - lq).abs() < 1e-9 * lq.abs().max(1.0),
                "{integrator:?}: {lq} vs {gauss}"
            );
            log_w.push(score.field.log_density(&x, &mut work) - lq);
        }
        // With only 20 steps the sampler is biased: weights are not flat.
        let max = log_w.iter().cloned().fold(f64::MIN, f64::max);
        let w: Vec<f64> = log_w.iter().map(|l| (l - max).exp()).collect();
        let (mean, se) = mean_se(&w);
        let log_z = mean.ln() + max;
        let err = se / mean;
        assert!(log_z.abs() < 4.0 * err, "{integrator:?}: log Z {log_z} ± {err}");
        assert!(err > 1e-4, "{integrator:?}: weights are flat, the test would not bite");
    }
}

#[test]
fn draws_are_bit_identical_for_one_and_two_threads() {
    let score = exact(&[6, 6], 0.4, VE);
    for integrator in [Integrator::ExponentialEuler, Integrator::ProbabilityFlowHeun] {
        let s = sampler(VE, integrator, 30);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    s.sample(
                        &score,
                        50,
                        Seed::new(8),
                        Par {
                            chunk_rows: 8,
                            parallel: true,
                        },
                    )
                })
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.xs, b.xs);
        assert_eq!(a.log_q, b.log_q);
    }
}

#[test]
fn non_linear_ode_log_q_converges_at_second_order() {
    // A local-cubic score on a 2 × 2 lattice: the ODE's log q from the
    // integrated divergence against the exact change of variables, the
    // log-determinant of the whole discrete map x₁ → x₀ by central
    // differences. The error must fall about fourfold per doubling of the
    // steps (the trapezoid rule on the divergence is second order).
    use fieldflow_diffusion::{Architecture, ScoreModel, TimeGrid};
    use ndarray::{Array1, Array2};
    let grid = TimeGrid { t_min: 1e-3, levels: 4 };
    let mut model = ScoreModel::new(
        Architecture::LocalCubic { range: 0 },
        grid,
        spectrum_of(&[2, 2]).unwrap(),
    )
    .unwrap();
    // Per level: the on-site weight and the cubic coefficient.
    for (j, p) in model.params.chunks_mut(2).enumerate() {
        p[0] = -1.5 - 0.2 * j as f64;
        p[1] = -0.3 + 0.05 * j as f64;
    }
    let x1 = [0.7, -0.4, 1.1, 0.2];
    let errs: Vec<f64> = [20, 40, 80]
        .iter()
        .map(|&steps| {
            let s = sampler(VP, Integrator::ProbabilityFlowHeun, steps);
            let map = |x: &[f64]| -> (Vec<f64>, f64) {
                let mut xs = Array2::from_shape_vec((1, 4), x.to_vec()).unwrap();
                let mut lq = Array1::zeros(1);
                s.transport(&model, xs.view_mut(), lq.view_mut(), Seed::new(0), Par::serial(1));
                (xs.row(0).to_vec(), lq[0])
            };
            let (_, approx) = map(&x1);
            let jac = fieldflow_testkit::central_jacobian(|x| map(x).0, &x1, 1e-6);
            let exact = -fieldflow_testkit::log_abs_det(jac, 4);
            (approx - exact).abs()
        })
        .collect();
    assert_second_order(&errs);
}
