//! End-to-end tests of train → sample → analyze / compare on tiny problems.
//! IMH and importance sampling are exact whatever the flow, so even a
//! briefly trained flow must reproduce exact answers within errors.

use fieldflow_io::ModelFile;
use std::path::Path;

mod common;
use common::{fieldflow, ok, rows, value_error};

const MOG: &str = "seed = 3\n[target]\nkind = \"mog4\"\n[data]\nexact = true\nn_train = 500\nn_heldout = 500\n\
[train]\nloss = { preset = \"fkl\" }\nbatch_size = 128\nsteps = 60\nlr = 3e-3\nmetrics_every = 20\n";

#[test]
fn mog4_imh_and_importance_sampling_recover_the_exact_mode_weights() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("mog.toml"), MOG).unwrap();
    let out = ok(&[
        "train",
        "--config",
        &p("mog.toml"),
        "--out",
        &p("m.h5"),
        "--plots",
        &p("figs"),
    ]);
    assert!(out.contains("held-out NLL"), "{out}");
    assert!(Path::new(&p("m.h5.metrics.csv")).exists());
    assert!(Path::new(&p("figs/train_flow_density.svg")).exists());
    for method in ["imh", "is", "hybrid"] {
        let s = p(&format!("{method}.h5"));
        ok(&[
            "sample",
            "--model",
            &p("m.h5"),
            "--n",
            "4000",
            "--chains",
            "4",
            "--method",
            method,
            "--out",
            &s,
            "-q",
        ]);
        let r = rows(&ok(&["analyze", &s, "--json"]));
        common::assert_mode_weights(method, &r, &[0.1, 0.2, 0.3, 0.4], 0.02);
        // Mixture mean: Σ w_k μ_k = (0.8, 1.6).
        let (x0, e0) = value_error(&r, "x0");
        assert!((x0 - 0.8).abs() < 4.0 * e0, "{method}: <x0> = {x0} ± {e0}");
        // The mixture is normalized: log Z = 0, shown as the exact value;
        // IS estimates it from its draws, IMH and hybrid from their
        // proposals.
        let (lz, e) = value_error(&r, "log_Z");
        assert!(e > 0.0 && lz.abs() < 4.0 * e, "{method}: log Z = {lz} ± {e}, exact 0");
        let row = r.iter().find(|x| x["observable"] == "log_Z").unwrap();
        assert_eq!(row["exact"].as_f64(), Some(0.0));
    }
    let cmp = ok(&["compare", &p("imh.h5"), &p("is.h5")]);
    assert!(cmp.contains("mode_3") && cmp.contains("τ_B/τ_A"), "{cmp}");
}

#[test]
fn free_field_flow_pipeline_is_exact_and_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    ok(&[
        "generate",
        "--lattice",
        "4x4",
        "--m2",
        "1",
        "--lambda",
        "0",
        "--n-cfg",
        "2000",
        "--chains",
        "2",
        "--out",
        &p("e.h5"),
        "-q",
    ]);
    let train = |out: &str, env: &[(&str, &str)]| {
        fieldflow(
            &[
                "train",
                "--data",
                &p("e.h5"),
                "--n-train",
                "100",
                "--loss",
                "scorenf",
                "--steps",
                "40",
                "--lr",
                "2e-3",
                "--out",
                out,
                "-q",
            ],
            env,
        )
    };
    assert!(train(&p("straight.h5"), &[]).status.success());
    let stopped = train(
        &p("resumed.h5"),
        &[("FIELDFLOW_STOP_AT_STEP", "15"), ("RAYON_NUM_THREADS", "1")],
    );
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let resumed = fieldflow(&["train", "--resume", "--out", &p("resumed.h5"), "-q"], &[]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let (a, b) = (
        ModelFile::read(p("straight.h5")).unwrap(),
        ModelFile::read(p("resumed.h5")).unwrap(),
    );
    assert_eq!(a.state.params, b.state.params, "resumed training differs");
    assert_eq!(a.state.adam_m, b.state.adam_m);
    // IMH with the briefly trained flow reproduces χ₂ = 1/(2m²) = 0.5.
    ok(&[
        "sample",
        "--model",
        &p("straight.h5"),
        "--n",
        "5000",
        "--chains",
        "4",
        "--out",
        &p("s.h5"),
        "-q",
    ]);
    let r = rows(&ok(&["analyze", &p("s.h5"), "--json"]));
    let (chi2, e) = value_error(&r, "chi2");
    assert!(e < 0.05 && (chi2 - 0.5).abs() < 4.0 * e, "χ₂ = {chi2} ± {e}");
    // Interrupted and resumed sampling equals the straight run.
    let s2 = p("s2.h5");
    let args = [
        "sample",
        "--model",
        &p("straight.h5"),
        "--n",
        "2500",
        "--chains",
        "2",
        "--out",
        &s2,
        "-q",
    ];
    let out = fieldflow(&args, &[("FIELDFLOW_STOP_AFTER_BLOCKS", "1")]);
    assert_eq!(out.status.code(), Some(130));
    ok(&["sample", "--resume", "--out", &s2, "-q"]);
    let s3 = p("s3.h5");
    ok(&[
        "sample",
        "--model",
        &p("straight.h5"),
        "--n",
        "2500",
        "--chains",
        "2",
        "--out",
        &s3,
        "-q",
    ]);
    let (x, y) = (
        fieldflow_io::EnsembleReader::open(&s2).unwrap(),
        fieldflow_io::EnsembleReader::open(&s3).unwrap(),
    );
    assert_eq!(x.configs().unwrap(), y.configs().unwrap());
    assert_eq!(x.series("log_w").unwrap(), y.series("log_w").unwrap());
    // The sample file names its model by fingerprint; a model that changed
    // between the interruption and the resume is refused.
    let fp = ModelFile::read(p("straight.h5")).unwrap().state.fingerprint();
    assert_eq!(
        x.header().extra.get("model_fingerprint"),
        Some(&fieldflow_io::AttrValue::Str(fp))
    );
    let s4 = p("s4.h5");
    let args4: Vec<&str> = args.iter().map(|a| if *a == s2 { s4.as_str() } else { a }).collect();
    let out = fieldflow(&args4, &[("FIELDFLOW_STOP_AFTER_BLOCKS", "1")]);
    assert_eq!(out.status.code(), Some(130));
    ok(&["train", "--resume", "--steps", "45", "--out", &p("straight.h5"), "-q"]);
    common::fails(&["sample", "--resume", "--out", &s4], "the model changed");
}

#[test]
fn a_huge_learning_rate_is_handled_without_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("mog.toml"), MOG.replace("lr = 3e-3", "lr = 1e12")).unwrap();
    let out = fieldflow(&["train", "--config", &p("mog.toml"), "--out", &p("m.h5"), "-q"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{err}");
    if out.status.code() == Some(1) {
        assert!(
            err.contains("rejected") && err.contains("last good checkpoint"),
            "{err}"
        );
    }
    // Either way a readable model with finite parameters remains.
    let m = ModelFile::read(p("m.h5")).unwrap();
    assert!(m.state.params.iter().all(|v| v.is_finite()));
}

#[test]
fn train_rejects_bad_configs_with_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    for (text, needle) in [
        (MOG.replace("steps = 60", "steps = 0"), "steps"),
        (MOG.replace("kind = \"mog4\"", "kind = \"mog5\""), "mog5"),
        (MOG.replace("batch_size", "batchsize"), "batchsize"),
        (MOG.replace("preset = \"fkl\"", "preset = \"kl\""), "kl"),
    ] {
        std::fs::write(p("bad.toml"), text).unwrap();
        let out = fieldflow(&["train", "--config", &p("bad.toml"), "--out", &p("m.h5")], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(needle) && err.trim_end().lines().count() == 1,
            "{needle}: {err}"
        );
        assert!(!Path::new(&p("m.h5")).exists());
    }
}

/// `[flow]` keys replace those of the target's default architecture, so a
/// partial section is complete; unknown keys are refused.
#[test]
fn a_partial_flow_section_overrides_the_default_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let text = MOG
        .replace("steps = 60", "steps = 2")
        .replace("[train]", "[flow]\nn_layers = 2\n[train]");
    std::fs::write(p("mog.toml"), &text).unwrap();
    ok(&["train", "--config", &p("mog.toml"), "--out", &p("m.h5"), "-q"]);
    let m = ModelFile::read(Path::new(&p("m.h5"))).unwrap();
    let arch: serde_json::Value = serde_json::from_str(&m.state.architecture).unwrap();
    assert_eq!(arch["n_layers"], 2);
    assert_eq!(arch["shape"], serde_json::json!([2]));
    std::fs::write(p("bad.toml"), text.replace("n_layers = 2", "n_layerz = 2")).unwrap();
    common::fails(&["train", "--config", &p("bad.toml"), "--out", &p("b.h5")], "n_layerz");
}
