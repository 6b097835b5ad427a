//! Thermodynamic integration and clamped profiles against Gaussians, where
//! every quantity is known in closed form.

use fieldflow_core::{Seed, Target};
use fieldflow_freeenergy::*;
use fieldflow_targets::{GaussLegendre, Gaussian};
use ndarray::{arr1, arr2};

/// Φ(z), the standard normal distribution function, by quadrature (≈1e-15).
fn normal_cdf(z: f64) -> f64 {
    let i = GaussLegendre::new(16).integrate(|t| (-0.5 * t * t).exp(), 0.0, z, 64);
    0.5 + i / (2.0 * std::f64::consts::PI).sqrt()
}

fn gaussian() -> Gaussian {
    Gaussian::new(
        arr1(&[0.5, -0.3, 1.0]),
        arr2(&[[1.0, 0.5, 0.2], [0.5, 2.0, 0.3], [0.2, 0.3, 0.5]]),
    )
    .unwrap()
}

fn matvec(g: &Gaussian, v: &[f64]) -> Vec<f64> {
    g.cov().dot(&arr1(v)).to_vec()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn settings() -> ChainSettings {
    ChainSettings {
        chains: 8,
        warmup: 200,
        samples: 2000,
        trajectory_length: 1.5,
        initial_step: 0.2,
        target_acceptance: 0.8,
    }
}

#[test]
fn field_integral_in_a_half_space_matches_the_closed_form() {
    // log Z_R(h) = log Z + h g·μ + ½h² gᵀΣg + log Φ(c·μ_h / √(cᵀΣc)),
    // μ_h = μ + hΣg, for R = {c·x ≥ 0}.
    let target = gaussian();
    let mu = target.mean().to_vec();
    let g = [1.0, -1.0, 0.5];
    let c = [1.0, 0.0, 0.0];
    let sg = matvec(&target, &g);
    let sigma_c = dot(&c, &matvec(&target, &c)).sqrt();
    let log_z_r = |h: f64| {
        let mu_h: Vec<f64> = mu.iter().zip(&sg).map(|(m, s)| m + h * s).collect();
        h * dot(&g, &mu) + 0.5 * h * h * dot(&g, &sg) + normal_cdf(dot(&c, &mu_h) / sigma_c).ln()
    };
    let h1 = 0.8;
    let exact = log_z_r(h1) - log_z_r(0.0);
    let region = [HalfSpace {
        cv: LinearCv { weights: c.to_vec() },
        side: Side::Positive,
    }];
    let r = field_integral(
        &target,
        &LinearCv { weights: g.to_vec() },
        &region,
        (0.0, h1),
        6,
        &[1.0, 0.0, 1.0],
        &settings(),
        Seed::new(11),
        "field",
        &NoHooks,
    )
    .expect("no stop requested");
    let (est, err) = (r.delta_log_z.mean(), r.delta_log_z.error());
    println!(
        "field integral {est:.5} ± {err:.5}, exact {exact:.5}; outside {}",
        r.runs.iter().map(|n| n.outside).sum::<u64>()
    );
    assert!((est - exact).abs() < 4.0 * err, "{est} ± {err} vs {exact}");
    assert!(err < 0.02, "error {err} too large to test anything");
    // The restriction acted (trajectories were rejected at the boundary).
    assert!(r.runs.iter().map(|n| n.outside).sum::<u64>() > 0);
    // Without the region the answer differs by far more than the error.
    let unrestricted = h1 * dot(&g, &mu) + 0.5 * h1 * h1 * dot(&g, &sg);
    assert!((unrestricted - exact).abs() > 10.0 * err);
}

#[test]
fn clamped_profile_gives_the_marginal_and_a_tail_probability() {
    // Under p̃ e^{h g·x} the marginal of x₂ is N(μ_h[2], Σ₂₂): F(u) is the
    // parabola (u − μ_h[2])²/(2Σ₂₂) and P(x₂ < −1.5) is a 2e-4 tail.
    let target = gaussian();
    let g = [0.3, 0.0, -1.0];
    let h = 0.4;
    let sg = matvec(&target, &g);
    let m = target.mean()[2] + h * sg[2];
    let s2 = target.cov()[[2, 2]];
    let grid = uniform_grid(-4.0, 6.0, 41);
    let field = Field {
        h,
        g: LinearCv { weights: g.to_vec() },
    };
    let p = constrained_profile(
        &target,
        Some(&field),
        &[],
        2,
        &grid,
        &[0.5, -0.3, 1.0],
        &settings(),
        Seed::new(5),
        "field",
        &NoHooks,
    )
    .expect("no stop requested");
    // Mean force −(u − m)/Σ₂₂ at every node, within 4σ over the replicas.
    for (i, &u) in grid.iter().enumerate() {
        let reps = Replicas {
            values: p.mean_force.iter().map(|f| f[i]).collect(),
        };
        let exact = -(u - m) / s2;
        assert!(
            (reps.mean() - exact).abs() < 4.0 * reps.error().max(1e-12),
            "u = {u}: {} ± {} vs {exact}",
            reps.mean(),
            reps.error()
        );
    }
    let threshold = -1.5;
    let exact = normal_cdf((threshold - m) / s2.sqrt()).ln();
    let tail = p.log_probability_replicas(threshold, false);
    println!(
        "log P(x2 < -1.5) = {:.4} ± {:.4}, exact {exact:.4}; edge {:.1}",
        tail.mean(),
        tail.error(),
        p.log_edge()
    );
    assert!(
        (tail.mean() - exact).abs() < 4.0 * tail.error() + 2e-3,
        "{} vs {exact}",
        tail.mean()
    );
    assert!(tail.error() < 0.05);
    assert!(p.log_edge() < -15.0);
    let above = p.log_probability_replicas(threshold, true);
    for (a, b) in above.values.iter().zip(&tail.values) {
        assert!(
            (a.exp() + b.exp() - 1.0).abs() < 1e-12,
            "the two sides do not add up to 1"
        );
    }
}

#[test]
fn conditioned_score_matches_finite_differences() {
    // Field + clamp + region (inside it): the score of the conditioned density
    // against central differences of its log density.
    let target = gaussian();
    let t = Conditioned::new(&target)
        .with_field(Field {
            h: 0.7,
            g: LinearCv {
                weights: vec![1.0, 2.0, -0.5],
            },
        })
        .with_clamp(Clamp { site: 1, value: 0.4 })
        .with_region(&[HalfSpace {
            cv: LinearCv::coordinate(3, 0),
            side: Side::Positive,
        }]);
    let y = [0.9, -0.2];
    let mut score = ndarray::Array1::zeros(2);
    let lp = t.log_prob_and_score(arr1(&y).view(), score.view_mut());
    assert_eq!(lp, t.log_prob(arr1(&y).view()));
    let fd = fieldflow_testkit::central_gradient(|v| t.log_prob(arr1(v).view()), &y, 1e-5);
    fieldflow_testkit::assert_close("conditioned score", score.as_slice().unwrap(), &fd, 1e-8);
    // The mean-force observable is ∂ log π / ∂x₁ of the full density.
    let mut x = Vec::new();
    t.embed(&y, &mut x);
    let full = Conditioned::new(&target).with_field(Field {
        h: 0.7,
        g: LinearCv {
            weights: vec![1.0, 2.0, -0.5],
        },
    });
    let fd_k = fieldflow_testkit::central_derivative(
        |u| {
            let mut z = x.clone();
            z[1] = u;
            full.log_prob(arr1(&z).view())
        },
        0.4,
        1e-5,
    );
    let mf = t.with_full(&y, |_, _, s| s[1]);
    assert!((mf - fd_k).abs() < 1e-8 * fd_k.abs().max(1.0), "{mf} vs {fd_k}");
    // Outside the region: −∞, with the unrestricted score.
    assert_eq!(t.log_prob(arr1(&[-0.1, 0.0]).view()), f64::NEG_INFINITY);
}

#[test]
fn estimates_do_not_depend_on_the_number_of_threads() {
    let target = gaussian();
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let s = ChainSettings {
                    samples: 200,
                    warmup: 50,
                    ..settings()
                };
                field_integral(
                    &target,
                    &LinearCv::sum(3),
                    &[],
                    (0.0, 0.5),
                    4,
                    &[0.0; 3],
                    &s,
                    Seed::new(3),
                    "field",
                    &NoHooks,
                )
                .expect("no stop requested")
                .delta_log_z
            })
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(
        a.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
