//! What a new user meets first (issue 16, "On the way"): a φ⁴ training from
//! flags alone, whose summary shows the parts its loss does not use as "–";
//! the flags' rule against a config file and `--resume`; bad flags as
//! one-line errors that leave no output; and the cost per proposal that
//! `sample` reports for every method, its evaluation counts checked
//! against the known batching of the proposals.

use fieldflow_io::ModelFile;
use std::path::Path;

mod common;
use common::{fails, fieldflow, ok};

/// The first training of the README: a φ⁴ target from flags, reverse KL.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--lattice",
        "4x4",
        "--m2",
        "-4",
        "--lambda",
        "8",
        "--loss",
        "rkl",
        "--steps",
        "20",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

/// The `[phi4]` table of a model file's stored config.
fn stored_phi4(path: &str) -> toml::Table {
    let m = ModelFile::read(Path::new(path)).unwrap();
    let t: toml::Table = m.header.config.parse().unwrap();
    t["phi4"].as_table().unwrap().clone()
}

/// The numbers of the summary line that starts with `label`.
fn numbers(text: &str, label: &str) -> Vec<f64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {text}"));
    line[label.len()..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn a_flag_only_rkl_training_needs_no_config_and_its_model_samples() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let m = p("m.h5");
    let out = ok(&train_args(&m, &[]));
    // The parts RKL does not use, and the NLL without held-out data, are
    // "–" on screen and NaN in the file.
    assert!(!out.contains("NaN"), "{out}");
    assert!(out.contains("(fkl –, rkl ") && out.contains(", sm –)"), "{out}");
    assert!(out.contains("held-out NLL      – (no held-out data)"), "{out}");
    let model = ModelFile::read(Path::new(&m)).unwrap();
    for part in ["fkl", "sm", "nll"] {
        assert!(model.metrics[part].iter().all(|v| v.is_nan()), "{part}");
    }
    // (The record before the first step has no loss at all.)
    assert!(model.metrics["rkl"].last().unwrap().is_finite());
    let phi4 = stored_phi4(&m);
    assert_eq!(phi4["lattice"], toml::Value::from(vec![4, 4]));
    assert_eq!(
        (phi4["m2"].as_float(), phi4["lambda"].as_float()),
        (Some(-4.0), Some(8.0))
    );

    // `sample` accepts it, for every method, and states the cost per proposal.
    for (method, extra) in [
        ("imh", &[][..]),
        ("hybrid", &[][..]),
        ("is", &[][..]),
        ("isir", &["--proposals", "4"][..]),
        ("global-local", &["--local", "hmc"][..]),
        ("neutra", &[][..]),
        ("adaptive", &["--rounds", "1"][..]),
    ] {
        let s = p(&format!("{method}.h5"));
        let mut args = vec![
            "sample", "--model", &m, "--method", method, "--n", "64", "--chains", "2", "--batch", "32", "--out", &s,
        ];
        args.extend_from_slice(extra);
        let text = ok(&args);
        assert!(!text.contains("NaN"), "{method}: {text}");
        let (flow, local) = match method {
            "imh" | "is" => (1.0, 0.0),
            "isir" => (4.0, 0.0),
            "neutra" => (0.0, 1.0),
            _ => (1.0, 1.0),
        };
        // 64 steps × 2 chains × (G + k) proposals.
        let n = numbers(&text, "proposals");
        assert_eq!(n[0], 128.0 * (flow + local), "{method}: {text}");
        let t = numbers(&text, "time per proposal");
        assert!(t[0] > 0.0, "{method}: {text}");
        // Batches of 32 steps tile the 64 steps: every flow draw is used
        // (G per step) and each is evaluated by the target once.
        let e = numbers(&text, "per proposal");
        let (log_p, draws) = (e[0], e[2]);
        let per_step = |x: f64| x * (flow + local);
        if method != "neutra" {
            assert_eq!(per_step(draws), flow, "{method}: {text}");
            assert!(per_step(log_p) >= flow, "{method}: {text}");
        } else {
            // One pulled-back density (with its target score) per MALA
            // proposal, plus one per chain where the block starts (the
            // kernel's score cache is per block): 130 / 128.
            assert_eq!(draws, 0.0, "{method}: {text}");
            assert!(
                text.contains("log p̃ + ∇ 1.02") && text.contains("pull-back 1.02"),
                "{method}: {text}"
            );
        }
        if method == "imh" || method == "isir" || method == "is" {
            assert_eq!(log_p, 1.0, "{method}: {text}");
        }
    }
    // A batch that does not tile the run draws proposals no step uses, and
    // the count says so: 64 steps in batches of 48 draw 96 per chain.
    let s = p("imh48.h5");
    let text = ok(&[
        "sample", "--model", &m, "--n", "64", "--chains", "2", "--batch", "48", "--out", &s,
    ]);
    assert_eq!(numbers(&text, "per proposal")[2], 1.5, "{text}");
    // With the default batch (256) the write blocks are tiled by the
    // batches: over several blocks every draw is used.
    let s = p("imh_default.h5");
    let text = ok(&["sample", "--model", &m, "--n", "2048", "--chains", "2", "--out", &s]);
    let e = numbers(&text, "per proposal");
    assert_eq!((e[0], e[2]), (1.0, 1.0), "{text}");
}

#[test]
fn flags_override_the_config_target_key_by_key_and_resume_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(
        p("c.toml"),
        "[phi4]\nlattice = [4, 4]\nkappa = 0.3\nlambda_hat = 0.02\n[train]\nsteps = 2\n",
    )
    .unwrap();
    // Standard-form flags replace the file's hopping-form couplings.
    ok(&[
        "train",
        "--config",
        &p("c.toml"),
        "--m2",
        "-3",
        "--lambda",
        "5",
        "--out",
        &p("a.h5"),
        "-q",
    ]);
    let phi4 = stored_phi4(&p("a.h5"));
    assert_eq!(
        (phi4["m2"].as_float(), phi4["lambda"].as_float()),
        (Some(-3.0), Some(5.0))
    );
    assert!(!phi4.contains_key("kappa") && !phi4.contains_key("lambda_hat"));
    // --lattice alone keeps the file's couplings.
    ok(&[
        "train",
        "--config",
        &p("c.toml"),
        "--lattice",
        "2x6",
        "--out",
        &p("b.h5"),
        "-q",
    ]);
    let phi4 = stored_phi4(&p("b.h5"));
    assert_eq!(phi4["lattice"], toml::Value::from(vec![2, 6]));
    assert_eq!(phi4["kappa"].as_float(), Some(0.3));
    // φ⁴ flags cannot turn a synthetic [target] into a lattice.
    std::fs::write(p("s.toml"), "[target]\nkind = \"mog4\"\n").unwrap();
    fails(
        &[
            "train",
            "--config",
            &p("s.toml"),
            "--m2",
            "1",
            "--lambda",
            "1",
            "--out",
            &p("c.h5"),
        ],
        "[target] section",
    );
    assert!(!Path::new(&p("c.h5")).exists());

    // An interrupted flag-only training resumes to the uninterrupted model;
    // --resume refuses target flags (the stored config decides).
    let straight = p("straight.h5");
    ok(&train_args(&straight, &["-q"]));
    let resumed = p("resumed.h5");
    let stopped = fieldflow(&train_args(&resumed, &["-q"]), &[("FIELDFLOW_STOP_AT_STEP", "10")]);
    assert_eq!(stopped.status.code(), Some(130));
    for flag in [["--lattice", "4x4"], ["--m2", "-4"], ["--lambda-hat", "0.1"]] {
        fails(
            &["train", "--resume", flag[0], flag[1], "--out", &resumed],
            "--resume continues with the config stored",
        );
    }
    ok(&["train", "--resume", "--out", &resumed, "-q"]);
    let (a, b) = (
        ModelFile::read(Path::new(&straight)).unwrap(),
        ModelFile::read(Path::new(&resumed)).unwrap(),
    );
    assert_eq!(a.state.params, b.state.params, "resumed training differs");
}

#[test]
fn bad_target_flags_are_one_line_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.h5").display().to_string();
    let t = |extra: &[&str], needle: &str| {
        let mut a = vec!["train", "--steps", "2", "--out", &out];
        a.extend_from_slice(extra);
        fails(&a, needle);
        assert!(!Path::new(&out).exists() && !Path::new(&format!("{out}.partial")).exists());
    };
    t(&["--lattice", "8y8", "--m2", "-4", "--lambda", "8"], "--lattice 8y8");
    t(&["--lattice", "4x4", "--m2", "-4", "--lambda", "-1"], "phi4.lambda");
    t(&["--lattice", "4x0", "--m2", "1", "--lambda", "1"], "phi4.lattice");
    t(&["--lattice", "4x4", "--m2", "-4"], "phi4.lambda missing");
    t(&["--m2", "-4", "--lambda", "8"], "phi4.lattice missing");
    t(
        &["--lattice", "4x4", "--m2", "1", "--lambda", "1", "--kappa", "0.1"],
        "two forms",
    );
    t(&[], "no target");
    // A loss that trains on target samples names the missing data.
    for loss in ["fkl", "sm", "scorenf", "scorenf_modes", "rkl_sm"] {
        t(
            &["--lattice", "4x4", "--m2", "-4", "--lambda", "8", "--loss", loss],
            "pass --data",
        );
    }
    // A malformed number is clap's usage error (exit 2), also one line.
    let o = fieldflow(&["train", "--lattice", "4x4", "--m2", "x", "--out", &out], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!Path::new(&out).exists());
}
