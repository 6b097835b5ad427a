//! The Pareto-tail diagnostic end to end (docs/THEORY.md §7.10): a model
//! whose importance weights have a heavy tail is named as such by `train`,
//! by `sample --method is` and by `analyze` (text and JSON); one whose
//! weights have a variance is not.
//!
//! Oracle: an identity flow draws q = N(0, I₂); the target p = N(0, s² I₂)
//! gives log w = |x|²(1 − 1/s²)/2 + const with |x|² exponential of mean 2,
//! so P(w > t) ∝ t^{−1/k} exactly, k = 1 − 1/s² (no slowly varying factor
//! in two dimensions).

mod common;
use common::ok;

/// Trains the identity flow on N(0, `var` I₂) (two tiny steps), samples it
/// by importance sampling (2 × 20 000) and returns the three outputs
/// (train, sample, analyze --json).
fn run(dir: &std::path::Path, var: f64) -> (String, String, serde_json::Value) {
    let p = |n: &str| dir.join(format!("{var}_{n}")).display().to_string();
    std::fs::write(
        p("t.toml"),
        format!("[target]\nkind = \"gaussian\"\nmean = [0.0, 0.0]\ncov = {var:?}\n[train]\nsteps = 2\nlr = 1e-6\n"),
    )
    .unwrap();
    let train = ok(&["train", "--config", &p("t.toml"), "--out", &p("m.h5")]);
    let sample = ok(&[
        "sample",
        "--model",
        &p("m.h5"),
        "--method",
        "is",
        "--n",
        "20000",
        "--chains",
        "2",
        "--seed",
        "3",
        "--out",
        &p("s.h5"),
    ]);
    let json = ok(&["analyze", &p("s.h5"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    (train, sample, v[0].clone())
}

#[test]
fn heavy_tailed_weights_are_named_and_light_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    // s² = 25: k = 0.96, no finite variance. M = 3√40000 = 600 tail points;
    // the fit's standard error is ≈ (1 + k)/√M = 0.08.
    let (train, sample, a) = run(dir.path(), 25.0);
    let k = a["pareto_k"].as_f64().unwrap();
    assert!((k - 0.96).abs() < 4.0 * 1.96 / 600f64.sqrt(), "k̂ = {k}");
    assert!(train.contains("heavy tail (Pareto k̂"), "{train}");
    assert!(
        sample.contains("warning           the importance weights have a heavy tail"),
        "{sample}"
    );
    let warnings = a["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w.as_str().unwrap().contains("heavy tail")),
        "{a}"
    );

    // s² = 1.5: k = ⅓, a finite variance: no warning anywhere.
    let (train, sample, a) = run(dir.path(), 1.5);
    let k = a["pareto_k"].as_f64().unwrap();
    assert!((k - 1.0 / 3.0).abs() < 4.0 * (4.0 / 3.0) / 600f64.sqrt(), "k̂ = {k}");
    assert!(!train.contains("heavy tail") && train.contains("Pareto k̂"), "{train}");
    assert!(
        !sample.contains("heavy tail") && sample.contains("Pareto k̂"),
        "{sample}"
    );
    assert!(a["warnings"].as_array().unwrap().is_empty(), "{a}");
}
