//! The phase decomposition on the multimodal benchmark's tilted 1D φ⁴ chain
//! (N = 100, a = 0.1, β = 20) against the transfer-operator oracle.

use fieldflow_core::Seed;
use fieldflow_freeenergy::*;
use fieldflow_targets::transfer_operator::default_oracle;
use fieldflow_targets::Phi4Field1d;

#[test]
fn mode_ratio_of_the_tilted_chain_matches_the_transfer_operator() {
    // b = 0.075: both parts matter — the phases differ by Δ ≈ −23.3 and the
    // majority phase pushes the middle site across 0 with probability
    // ≈ e^{−22.3}, so the "+" mode is three quarters fluctuation of the "−"
    // phase. Neither part alone is within 0.2 of the exact −22.03.
    let (n, a, beta, b) = (100, 0.1, 20.0, 0.075);
    let exact = default_oracle(&Phi4Field1d::new(n, a, beta, b).unwrap())
        .unwrap()
        .log_ratio();
    let base = Phi4Field1d::new(n, a, beta, 0.0).unwrap();
    let start: Vec<f64> = (0..n).map(|i| ((i.min(n - 1 - i) + 1) as f64 / 7.0).tanh()).collect();
    let problem = PhaseProblem {
        field_direction: LinearCv::sum(n),
        field: -beta * b / (a * n as f64),
        order_parameters: vec![LinearCv::coordinate(n, n / 4), LinearCv::coordinate(n, 3 * n / 4)],
        mode_site: Some(base.middle_site()),
        start,
        field_nodes: 6,
        profile_grid: uniform_grid(-1.8, 0.4, 45),
    };
    let settings = ChainSettings {
        warmup: 150,
        samples: 400,
        ..ChainSettings::default()
    };
    let e = estimate(&base, &problem, &settings, Seed::new(2), &NoHooks).expect("no stop requested");
    let (est, err) = (e.log_ratio.mean(), e.log_ratio.error());
    println!(
        "log(w+/w-) = {est:.4} ± {err:.4} (exact {exact:.4}); Δ = {:.4} ± {:.4}, log t- = {:.4} ± {:.4}",
        e.delta.mean(),
        e.delta.error(),
        e.log_t_minus.mean(),
        e.log_t_minus.error()
    );
    assert!((est - exact).abs() < 4.0 * err, "{est} ± {err} vs {exact}");
    assert!(err < 0.1, "error {err} too large to test anything");
    // Both parts are needed: each alone misses the exact value.
    assert!((e.delta.mean() - exact).abs() > 0.2 && (e.log_t_minus.mean() - exact).abs() > 0.2);
    assert!(e.profiles.as_ref().unwrap()[1].log_edge() < -15.0);
}
