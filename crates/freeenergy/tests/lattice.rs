//! Modes = phases: lattice φ⁴ in an external field h, modes by the sign of
//! the magnetization. Checked against the free field's Gaussian
//! magnetization (exact) and, for an interacting double well shallow enough
//! that plain HMC crosses M = 0 all the time, against HMC's direct count.

use fieldflow_core::Seed;
use fieldflow_freeenergy::*;
use fieldflow_lattice::{FreeField, Lattice, Phi4};

fn problem(v: usize, h: f64, start: f64) -> PhaseProblem {
    PhaseProblem {
        field_direction: LinearCv::sum(v),
        field: h,
        order_parameters: vec![LinearCv::sum(v)],
        mode_site: None,
        start: vec![start; v],
        field_nodes: 6,
        profile_grid: Vec::new(),
    }
}

fn settings() -> ChainSettings {
    ChainSettings {
        warmup: 200,
        samples: 1000,
        ..ChainSettings::default()
    }
}

#[test]
fn free_field_mode_ratio_matches_its_gaussian_magnetization() {
    // Σφ ~ N(hVχ₂, Vχ₂): log(w+/w-) = log Φ(z) − log Φ(−z), z = h √(Vχ₂).
    let (shape, m2, h) = ([6, 6], 0.5, 0.05);
    let target = Phi4::new(Lattice::new(&shape).unwrap(), m2, 0.0).unwrap();
    let v = 36;
    let chi2 = FreeField::new(&shape, m2).unwrap().chi2();
    let exact = gaussian_log_mode_ratio(h * (v as f64 * chi2).sqrt());
    let e = estimate(&target, &problem(v, h, 0.3), &settings(), Seed::new(4), &NoHooks).expect("no stop requested");
    let (est, err) = (e.log_ratio.mean(), e.log_ratio.error());
    println!("free field: {est:.5} ± {err:.5}, exact {exact:.5}");
    assert!((est - exact).abs() < 4.0 * err, "{est} ± {err} vs {exact}");
    assert!(err < 0.01);
    assert!(e.profiles.is_none() && e.log_t_minus.values.iter().all(|t| *t == f64::NEG_INFINITY));
}

#[test]
fn interacting_mode_ratio_matches_direct_hmc_where_hmc_tunnels() {
    // 4×4, m² = −0.5, λ = 0.5: a barrier of ≈ 2 nats, crossed by HMC
    // constantly, so the fraction of positive magnetizations estimates w+.
    let (shape, h) = ([4, 4], 0.05);
    let v = 16;
    let target = Phi4::new(Lattice::new(&shape).unwrap(), -0.5, 0.5).unwrap();
    let e = estimate(&target, &problem(v, h, 0.7), &settings(), Seed::new(6), &NoHooks).expect("no stop requested");
    let (est, err) = (e.log_ratio.mean(), e.log_ratio.error());
    let biased = Conditioned::new(&target).with_field(Field { h, g: LinearCv::sum(v) });
    let direct = ChainSettings {
        samples: 20_000,
        ..settings()
    };
    let sign = |x: &[f64]| f64::from(x.iter().sum::<f64>() >= 0.0);
    let run = run_node(&biased, &vec![0.7; v], &sign, &direct, Seed::new(8));
    let w = Replicas { values: run.means };
    let (wp, we) = (w.mean(), w.error());
    let (direct_ratio, direct_err) = ((wp / (1.0 - wp)).ln(), we / (wp * (1.0 - wp)));
    println!("phases {est:.4} ± {err:.4}; direct HMC {direct_ratio:.4} ± {direct_err:.4} (w+ = {wp:.4} ± {we:.4})");
    let combined = (err * err + direct_err * direct_err).sqrt();
    assert!((est - direct_ratio).abs() < 4.0 * combined, "{est} vs {direct_ratio}");
    assert!(combined < 0.05 && est > 0.2, "the test must be able to fail");
}
