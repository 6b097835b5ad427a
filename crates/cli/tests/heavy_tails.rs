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

/// Trains the identity flow on N(0, `var` I₂) (two tiny steps); returns
/// train's output.
fn train(dir: &std::path::Path, var: f64) -> String {
    let p = |n: &str| dir.join(format!("{var}_{n}")).display().to_string();
    std::fs::write(
        p("t.toml"),
        format!("[target]\nkind = \"gaussian\"\nmean = [0.0, 0.0]\ncov = {var:?}\n[train]\nsteps = 2\nlr = 1e-6\n"),
    )
    .unwrap();
    ok(&["train", "--config", &p("t.toml"), "--out", &p("m.h5")])
}

/// Samples the model of [`train`] with `method` (2 × 20 000) and returns
/// sample's output and analyze --json's first entry.
fn sample(dir: &std::path::Path, var: f64, method: &str) -> (String, serde_json::Value) {
    let p = |n: &str| dir.join(format!("{var}_{n}")).display().to_string();
    let out = p(&format!("{method}.h5"));
    let sample = ok(&[
        "sample",
        "--model",
        &p("m.h5"),
        "--method",
        method,
        "--n",
        "20000",
        "--chains",
        "2",
        "--seed",
        "3",
        "--out",
        &out,
    ]);
    let json = ok(&["analyze", &out, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    (sample, v[0].clone())
}

/// train, then importance sampling.
fn run(dir: &std::path::Path, var: f64) -> (String, String, serde_json::Value) {
    let train = train(dir, var);
    let (sample, a) = sample(dir, var, "is");
    (train, sample, a)
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

/// IMH with the same proposals: the tail of its proposals' weights (the
/// series `log_w_proposal`) is the same k̂, named by `sample`, `analyze`
/// and `compare` as a warning about the chains' error bars; light tails
/// are not named.
#[test]
fn imh_chains_with_heavy_tailed_proposal_weights_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (var, k_exact, heavy) in [(25.0, 0.96, true), (1.5, 1.0 / 3.0, false)] {
        train(dir.path(), var);
        sample(dir.path(), var, "is");
        let (sample, a) = sample(dir.path(), var, "imh");
        let k = a["pareto_k"].as_f64().unwrap();
        // Same tail size and standard error as in the importance test.
        assert!(
            (k - k_exact).abs() < 4.0 * (1.0 + k_exact) / 600f64.sqrt(),
            "s² = {var}: k̂ = {k}"
        );
        assert!(
            sample.contains("Pareto k̂") && sample.contains("(proposals)"),
            "{sample}"
        );
        let named = |text: &str| text.contains("proposals' importance weights have a heavy tail");
        assert_eq!(named(&sample), heavy, "{sample}");
        let warnings = a["warnings"].as_array().unwrap();
        assert_eq!(warnings.iter().any(|w| named(w.as_str().unwrap())), heavy, "{a}");
        let p = |n: &str| dir.path().join(format!("{var}_{n}")).display().to_string();
        let cmp = ok(&["compare", &p("is.h5"), &p("imh.h5")]);
        assert_eq!(
            cmp.lines().any(|l| l.starts_with("warning (B)") && named(l)),
            heavy,
            "{cmp}"
        );
    }
}
