//! Helpers shared by the CLI's end-to-end tests.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `fieldflow` binary with `args` and extra environment variables.
pub fn fieldflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldflow"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("fieldflow runs")
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = fieldflow(args, &[]);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail: one-line error naming `needle`, exit 1, no panic.
pub fn fails(args: &[&str], needle: &str) {
    let out = fieldflow(args, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: expected exit 1, stderr {err}");
    assert!(
        err.contains(needle),
        "{args:?}: stderr {err:?} does not mention {needle:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{args:?}: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: error is not one line: {err}"
    );
}

/// The rows of the first table of `analyze --json` output.
pub fn rows(json: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v[0]["rows"].as_array().unwrap().clone()
}

/// (value, error) of observable `name` in `rows`.
pub fn value_error(rows: &[serde_json::Value], name: &str) -> (f64, f64) {
    let r = rows
        .iter()
        .find(|r| r["observable"] == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    (r["value"].as_f64().unwrap(), r["error"].as_f64().unwrap())
}

/// Asserts that the `mode_k` rows of `rows` match `truth` within 4σ, with
/// errors in (0, `max_err`) (`what` names the run in messages).
pub fn assert_mode_weights(what: &str, rows: &[serde_json::Value], truth: &[f64], max_err: f64) {
    for (k, w) in truth.iter().enumerate() {
        let (v, e) = value_error(rows, &format!("mode_{k}"));
        assert!(e > 0.0 && e < max_err, "{what}: mode {k}: error {e}");
        assert!((v - w).abs() < 4.0 * e, "{what}: mode {k}: {v} ± {e} vs {w}");
    }
}
