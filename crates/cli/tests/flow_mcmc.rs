//! The flow-MCMC methods of `fieldflow sample` end to end (issue 15): an
//! adaptive run from walkers spread by a broad Gaussian learns the weights of
//! two separated modes in d = 16 (a flow that never saw a target sample),
//! every other method samples the adapted model exactly, an interrupted
//! adaptation resumes bit-identically, and bad settings are one-line errors.

mod common;
use common::{fails, fieldflow, ok, rows, value_error};

/// A practically untrained starting flow: one RKL step at a negligible rate.
const INIT: &str = "seed = 1
[target]
kind = \"two_modes\"
dim = 16
[train]
loss = { preset = \"rkl\" }
batch_size = 64
steps = 1
lr = 1e-12
";

fn sample(model: &str, method: &str, out: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "sample", "--model", model, "--method", method, "--n", "2000", "--chains", "4", "--out", out, "-q",
    ];
    args.extend_from_slice(extra);
    ok(&args);
    rows(&ok(&["analyze", out, "--json"]))
}

#[test]
fn adaptive_learns_two_modes_in_d16_and_every_method_samples_the_adapted_flow() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("init.toml"), INIT).unwrap();
    ok(&["train", "--config", &p("init.toml"), "--out", &p("init.h5"), "-q"]);
    // The target: the weights within 3σ and 0.02.
    let r = sample(&p("init.h5"), "adaptive", &p("ad.h5"), &["--rounds", "30"]);
    let (w, e) = value_error(&r, "mode_0");
    assert!(
        (w - 2.0 / 3.0).abs() < 3.0 * e && (w - 2.0 / 3.0).abs() < 0.02 && e < 0.02,
        "adaptive: {w} ± {e}"
    );
    let adapted = p("ad.model.h5");
    assert!(std::path::Path::new(&adapted).exists());
    assert!(!std::path::Path::new(&format!("{adapted}.adapt.json")).exists());
    // Every method with the adapted flow: exact weights within 4σ.
    for (method, extra) in [
        ("imh", &[][..]),
        ("isir", &["--proposals", "4"][..]),
        ("global-local", &["--local", "hmc"][..]),
        ("global-local", &["--local", "rw", "--config", &p("isir.toml")][..]),
        ("neutra", &[][..]),
    ] {
        std::fs::write(p("isir.toml"), "[sampler]\nglobal = \"isir\"\nproposals = 2\n").unwrap();
        let out = p(&format!("s_{method}_{}.h5", extra.len()));
        let r = sample(&adapted, method, &out, extra);
        let (w, e) = value_error(&r, "mode_0");
        // neutra moves between the modes only through the latent region
        // between them (τ_int of the mode ≈ 10–400, docs/RESULTS.md): its
        // error is several times larger.
        let max_err = if method == "neutra" { 0.1 } else { 0.03 };
        assert!(
            (w - 2.0 / 3.0).abs() < 4.0 * e && e < max_err,
            "{method} {extra:?}: {w} ± {e}"
        );
    }
}

#[test]
fn interrupted_adaptation_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("init.toml"), INIT.replace("dim = 16", "dim = 4")).unwrap();
    ok(&["train", "--config", &p("init.toml"), "--out", &p("init.h5"), "-q"]);
    let args = |out: &str| {
        vec![
            "sample".to_string(),
            "--model".into(),
            p("init.h5"),
            "--method".into(),
            "adaptive".into(),
            "--rounds".into(),
            "6".into(),
            "--n".into(),
            "500".into(),
            "--chains".into(),
            "2".into(),
            "--out".into(),
            out.into(),
            "-q".into(),
        ]
    };
    let a = args(&p("a.h5"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = fieldflow(&a, &[("FIELDFLOW_STOP_AFTER_BLOCKS", "2")]);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::path::Path::new(&p("a.model.h5.adapt.json")).exists());
    ok(&["sample", "--resume", "--out", &p("a.h5"), "-q"]);
    let b = args(&p("b.h5"));
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    ok(&b);
    let (x, y) = (
        fieldflow_io::EnsembleReader::open(p("a.h5")).unwrap(),
        fieldflow_io::EnsembleReader::open(p("b.h5")).unwrap(),
    );
    assert_eq!(x.configs().unwrap(), y.configs().unwrap());
    let (ma, mb) = (
        fieldflow_io::ModelFile::read(p("a.model.h5")).unwrap(),
        fieldflow_io::ModelFile::read(p("b.model.h5")).unwrap(),
    );
    assert_eq!(ma.state.params, mb.state.params);
}

#[test]
fn bad_flow_mcmc_settings_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("init.toml"), INIT.replace("dim = 16", "dim = 2")).unwrap();
    ok(&["train", "--config", &p("init.toml"), "--out", &p("m.h5"), "-q"]);
    let m = p("m.h5");
    let base = |method: &'static str, out: String| {
        vec![
            "sample".to_string(),
            "--model".into(),
            m.clone(),
            "--method".into(),
            method.into(),
            "--out".into(),
            out,
        ]
    };
    let run = |mut a: Vec<String>, extra: &[&str], needle: &str| {
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails(&a, needle);
    };
    run(base("isir", p("x1.h5")), &["--proposals", "0"], "sampler.proposals = 0");
    run(
        base("global-local", p("x2.h5")),
        &["--local", "metropolis"],
        "sampler.local = metropolis",
    );
    run(
        base("global-local", p("x3.h5")),
        &["--local", "leapfrog"],
        "--local leapfrog",
    );
    run(base("neutra", p("x4.h5")), &["--local-steps", "0"], "local_steps = 0");
    run(base("adaptive", p("x5.h5")), &["--rounds", "0"], "sampler.rounds = 0");
    std::fs::write(p("bad.toml"), "[sampler]\nwalkerz = 3\n").unwrap();
    run(base("adaptive", p("x6.h5")), &["--config", &p("bad.toml")], "walkerz");
    for x in ["x1.h5", "x2.h5", "x3.h5", "x4.h5", "x5.h5", "x6.h5"] {
        assert!(!std::path::Path::new(&p(x)).exists(), "{x} was written");
    }
}

#[test]
fn adaptive_continues_a_trained_model_at_its_own_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // Untrained (one step): the adaptation's own rate 3e-3; trained (20
    // steps at 2e-3): that rate, resolved into the stored config.
    let trained = INIT
        .replace("dim = 16", "dim = 2")
        .replace("steps = 1\nlr = 1e-12", "steps = 20\nlr = 2e-3");
    for (name, config, lr) in [
        ("untrained", INIT.replace("dim = 16", "dim = 2"), 3e-3),
        ("trained", trained, 2e-3),
    ] {
        std::fs::write(p(&format!("{name}.toml")), config).unwrap();
        ok(&[
            "train",
            "--config",
            &p(&format!("{name}.toml")),
            "--out",
            &p(&format!("{name}.h5")),
            "-q",
        ]);
        let out = p(&format!("{name}_ad.h5"));
        ok(&[
            "sample",
            "--model",
            &p(&format!("{name}.h5")),
            "--method",
            "adaptive",
            "--rounds",
            "2",
            "--n",
            "50",
            "--chains",
            "1",
            "--out",
            &out,
            "-q",
        ]);
        let stored: toml::Table = fieldflow_io::EnsembleReader::open(&out)
            .unwrap()
            .header()
            .config
            .parse()
            .unwrap();
        assert_eq!(stored["sampler"]["lr"].as_float(), Some(lr), "{name}");
        assert_eq!(stored["sampler"]["walkers"].as_integer(), Some(256), "{name}");
    }
}

#[test]
fn adaptive_starts_from_the_target_of_a_config_without_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(
        p("run.toml"),
        "[target]\nkind = \"two_modes\"\ndim = 4\n[sampler]\nrounds = 15\n",
    )
    .unwrap();
    let out = p("a.h5");
    let r = rows(&{
        ok(&[
            "sample",
            "--method",
            "adaptive",
            "--config",
            &p("run.toml"),
            "--n",
            "1500",
            "--chains",
            "4",
            "--out",
            &out,
            "-q",
        ]);
        ok(&["analyze", &out, "--json"])
    });
    let (w, e) = value_error(&r, "mode_0");
    assert!((w - 2.0 / 3.0).abs() < 4.0 * e && e < 0.03, "{w} ± {e}");
    // The untrained starting flow is a model file next to the output.
    let init = fieldflow_io::ModelFile::read(p("a.init.h5")).unwrap();
    assert_eq!(init.state.adam_step, 0);
    fails(
        &["sample", "--method", "adaptive", "--out", &p("b.h5")],
        "--model or --config is required",
    );
    assert!(!std::path::Path::new(&p("b.h5")).exists());
}
