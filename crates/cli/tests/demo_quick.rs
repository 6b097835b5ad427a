//! `fieldflow demo --quick` (the README's main job at reduced size): its
//! numbers are checked against exact values, not only its exit code.

use std::process::Command;

#[test]
fn quick_demo_reproduces_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run = Command::new(env!("CARGO_BIN_EXE_fieldflow"))
        .args(["demo", "--quick", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let truth: Vec<f64> = s["mog_truth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mog = s["mog"].as_array().unwrap();
    assert_eq!(
        mog[0]["loss"], "mixture",
        "the recommended method leads the MOG-4 table"
    );
    for run in mog {
        let loss = run["loss"].as_str().unwrap();
        let collapsed = run["n_collapsed"].as_u64().unwrap();
        if collapsed == 0 {
            // Every mode proposed: IMH is exact, so its weights match the truth.
            for (k, w) in run["imh_weights"].as_array().unwrap().iter().enumerate() {
                let (v, e) = (w[0].as_f64().unwrap(), w[1].as_f64().unwrap());
                assert!(
                    e > 0.0 && (v - truth[k]).abs() < 4.0 * e,
                    "{loss}: mode {k}: {v} ± {e} vs {}",
                    truth[k]
                );
            }
        }
        if loss == "mixture" {
            // The recommended method: every mode, weights and density right.
            // Entropy of MOG-4: 1 + ln(2π·0.5) + H(0.1, 0.2, 0.3, 0.4) = 3.4246.
            let (ess, nll) = (run["ess"].as_f64().unwrap(), run["nll"].as_f64().unwrap());
            assert!(
                collapsed == 0 && ess > 0.5 && (nll - 3.4246).abs() < 0.2,
                "mixture: {run}"
            );
        }
        if loss == "scorenf" {
            // The best single flow (spline couplings, FKL handed over to its
            // own samples): issue 14's single-flow line, even at 300 steps.
            let (ess, nll) = (run["ess"].as_f64().unwrap(), run["nll"].as_f64().unwrap());
            assert!(
                collapsed == 0 && ess > 0.5 && (nll - 3.4246).abs() < 0.2,
                "scorenf: {run}"
            );
        }
        if loss == "rkl" {
            // Pure RKL from an unimodal start collapses; the diagnostics must say so.
            assert!(collapsed >= 1, "RKL collapse not flagged: {run}");
        }
        if loss == "fkl" {
            assert_eq!(collapsed, 0, "FKL covers all modes: {run}");
        }
    }
    for row in s["free_field"].as_array().unwrap() {
        let (name, v, e, exact) = (
            row[0].as_str().unwrap(),
            row[1].as_f64().unwrap(),
            row[2].as_f64().unwrap(),
            row[3].as_f64().unwrap(),
        );
        assert!(
            (v - exact).abs() < 4.0 * e.max(1e-12),
            "free field {name}: {v} ± {e} vs {exact}"
        );
    }
    // The tilted chain's mode log ratio (w+ = 1.7e-7) against the transfer operator.
    let fe = &s["free_energy"];
    let (v, e) = (
        fe["log_ratio"]["value"].as_f64().unwrap(),
        fe["log_ratio"]["error"].as_f64().unwrap(),
    );
    let exact = fe["exact_log_ratio"].as_f64().unwrap();
    assert!(
        (v - exact).abs() < 4.0 * e && e < 0.05,
        "free energy {v} ± {e} vs {exact}"
    );
    // The same chain by the Laplace-flow mixture and importance sampling.
    let c = &s["chain_mixture"];
    let (v, e) = (c["log_ratio"][0].as_f64().unwrap(), c["log_ratio"][1].as_f64().unwrap());
    let exact = c["exact_log_ratio"].as_f64().unwrap();
    assert!((exact + 15.5665).abs() < 1e-3, "{exact}");
    assert!(
        (v - exact).abs() < 4.0 * e && e < 0.1,
        "flow mixture {v} ± {e} vs {exact}"
    );
    let mut compared = 0;
    for c in s["phi4"].as_array().unwrap() {
        if ["abs_M", "chi2", "U4", "action_density"].contains(&c["observable"].as_str().unwrap()) {
            let d = c["deviation_sigma"].as_f64().unwrap();
            assert!(d.abs() < 4.0, "φ⁴ HMC vs flow IMH disagree: {c}");
            compared += 1;
        }
    }
    assert_eq!(compared, 4);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("MOG-4") && report.contains("tutorial") && report.contains("1.7·10⁻⁷"));
    assert!(out.join("figures/phi4_hmc_histogram_M.svg").exists());
}
