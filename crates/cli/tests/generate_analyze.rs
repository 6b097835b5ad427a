//! End-to-end tests of `fieldflow generate`, `analyze` and `inspect` on tiny
//! problems: exact free-field answers, resume, determinism and bad input.

use fieldflow_io::EnsembleReader;
use fieldflow_lattice::FreeField;
use std::path::Path;

mod common;
use common::{fails, fieldflow, ok};

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn free_field_ensemble_reproduces_the_exact_results_within_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ens = p(dir.path(), "free.h5");
    let base = [
        "generate",
        "--lattice",
        "8x8",
        "--m2",
        "0.5",
        "--lambda",
        "0",
        "--n-therm",
        "200",
    ];
    ok(&[
        &base[..],
        &["--n-cfg", "3000", "--chains", "4", "--seed", "5", "--out", &ens],
    ]
    .concat());
    let json = ok(&["analyze", &ens, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v[0]["rows"].as_array().unwrap();
    let get = |name: &str| {
        rows.iter()
            .find(|r| r["observable"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let exact = FreeField::new(&[8, 8], 0.5).unwrap();
    let mut checked = 0;
    for (name, truth) in [
        ("chi2", exact.chi2()),
        ("action_density", exact.action_density()),
        ("xi2", exact.xi2(0).unwrap()),
        ("C(0)", exact.zero_momentum_correlator()[0]),
        ("C(2)", exact.zero_momentum_correlator()[2]),
        // The sign of M (the modes of the broken phase): ½ by symmetry.
        ("mode_0", 0.5),
    ] {
        let r = get(name);
        let (value, error) = (r["value"].as_f64().unwrap(), r["error"].as_f64().unwrap());
        assert!(
            error > 0.0 && error < 0.1 * truth.abs(),
            "{name}: error {error} useless"
        );
        assert!(
            (value - truth).abs() < 4.0 * error,
            "{name}: {value} ± {error} vs exact {truth}"
        );
        // The table shows the same exact value.
        assert!((r["exact"].as_f64().unwrap() - truth).abs() < 1e-12);
        checked += 1;
    }
    assert_eq!(checked, 6);
    let inspect = ok(&["inspect", &ens]);
    assert!(
        inspect.contains("ensemble") && inspect.contains("[4, 3000, 8, 8]"),
        "{inspect}"
    );
}

#[test]
fn interrupted_run_resumes_to_the_uninterrupted_file_and_threads_do_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &str| -> Vec<String> {
        [
            "generate",
            "--lattice",
            "6x4",
            "--m2",
            "-1",
            "--lambda",
            "0.5",
            "--n-therm",
            "50",
            "--n-cfg",
            "250",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            ["--chains", "3", "--seed", "9", "--out", out]
                .iter()
                .map(|s| s.to_string()),
        )
        .collect()
    };
    let straight = p(dir.path(), "straight.h5");
    let a: Vec<String> = args(&straight);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = fieldflow(&a, &[("RAYON_NUM_THREADS", "1")]);
    assert!(out.status.success());
    // Interrupted after 2 blocks of 100, then resumed, with 2 threads.
    let resumed = p(dir.path(), "resumed.h5");
    let b: Vec<String> = args(&resumed);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let out = fieldflow(&b, &[("FIELDFLOW_STOP_AFTER_BLOCKS", "2"), ("RAYON_NUM_THREADS", "2")]);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!Path::new(&resumed).exists());
    let partial = EnsembleReader::open(format!("{resumed}.partial")).unwrap();
    assert_eq!(partial.n_cfg(), 200);
    drop(partial);
    let out = fieldflow(
        &["generate", "--resume", "--out", &resumed],
        &[("RAYON_NUM_THREADS", "2")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (x, y) = (
        EnsembleReader::open(&straight).unwrap(),
        EnsembleReader::open(&resumed).unwrap(),
    );
    assert_eq!(x.configs().unwrap(), y.configs().unwrap());
    for s in ["log_p", "delta_h", "acceptance", "accepted"] {
        assert_eq!(x.series(s).unwrap(), y.series(s).unwrap(), "series {s}");
    }
}

#[test]
fn bad_input_gets_one_line_errors_and_damages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = p(dir.path(), "x.h5");
    let g = |extra: &[&str]| -> Vec<String> {
        [
            "generate",
            "--lattice",
            "4x4",
            "--n-cfg",
            "10",
            "--n-therm",
            "5",
            "--out",
            &out,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |extra: &[&str], needle: &str| {
        let a = g(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails(&a, needle);
    };
    run(&["--m2", "-4", "--lambda", "-1"], "phi4.lambda");
    run(&["--m2", "-1", "--lambda", "0"], "phi4.m2");
    run(&["--m2", "1", "--lambda", "1", "--chains", "0"], "chains");
    run(&["--m2", "1", "--lambda", "1", "--algorithm", "gibbs"], "gibbs");
    run(&["--m2", "1", "--kappa", "0.1"], "two forms");
    assert!(!Path::new(&out).exists() && !Path::new(&format!("{out}.partial")).exists());
    fails(
        &[
            "generate",
            "--lattice",
            "4x0",
            "--m2",
            "1",
            "--lambda",
            "1",
            "--out",
            &out,
        ],
        "phi4.lattice",
    );
    fails(
        &[
            "generate",
            "--lattice",
            "4x4x4x4x4",
            "--m2",
            "1",
            "--lambda",
            "1",
            "--out",
            &out,
        ],
        "phi4.lattice",
    );
    // Unknown config keys are named.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[phi4]\nlattice = [4, 4]\nm2 = 1.0\nlambda = 1.0\nlamda = 2.0\n").unwrap();
    fails(&["generate", "--config", cfg.to_str().unwrap(), "--out", &out], "lamda");
    let step = dir.path().join("step.toml");
    std::fs::write(
        &step,
        "[phi4]\nlattice = [4, 4]\nm2 = 1.0\nlambda = 1.0\n[algorithm.hmc]\ntrajectory_length = -0.1\n",
    )
    .unwrap();
    fails(
        &["generate", "--config", step.to_str().unwrap(), "--out", &out],
        "hmc.trajectory_length",
    );
    // An existing output is not overwritten without --force, and stays intact.
    std::fs::write(&out, b"precious").unwrap();
    let a = g(&["--m2", "1", "--lambda", "1"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    fails(&a, "--force");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // Missing, foreign and truncated files.
    fails(&["analyze", &p(dir.path(), "missing.h5")], "missing.h5");
    fails(&["analyze", &out], "x.h5");
    fails(&["inspect", &out], "x.h5");
    fails(
        &["generate", "--resume", "--out", &p(dir.path(), "never.h5")],
        "never.h5",
    );
}

#[test]
fn every_shipped_config_runs() {
    let dir = tempfile::tempdir().unwrap();
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") && !path.to_string_lossy().contains("train") {
            let out = p(dir.path(), "c.h5");
            ok(&[
                "generate",
                "--config",
                path.to_str().unwrap(),
                "--n-cfg",
                "5",
                "--n-therm",
                "2",
                "--out",
                &out,
                "--force",
                "-q",
            ]);
            n += 1;
        }
    }
    assert!(n >= 7, "only {n} configs found");
}
