//! `fieldflow sample --method slips` end to end (issue 18): a run from a
//! config alone that `analyze` reads (mode weights of two modes in d = 16
//! within 4σ, and the start-decided warning: the weights were fixed by the
//! start draws), an interrupted run that resumes to the same particles, and bad settings
//! refused with one-line errors before any file is written.

mod common;
use common::{fails, fieldflow, ok, rows};

const CONFIG: &str = r#"
[target]
kind = "two_modes"
dim = 16

[sampler]
particles = 240
block = 60
steps = 64
mcmc_steps = 16
mcmc_chains = 2
sigma = 1.352
t0 = 0.15
"#;

#[test]
fn slips_samples_two_modes_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("c.toml"), CONFIG).unwrap();
    let run = |out: &str, env: &[(&str, &str)]| {
        fieldflow(
            &[
                "sample",
                "--method",
                "slips",
                "--config",
                &p("c.toml"),
                "--out",
                out,
                "--seed",
                "4",
                "-q",
            ],
            env,
        )
    };
    let a = run(&p("a.h5"), &[("FIELDFLOW_STOP_AFTER_BLOCKS", "2")]);
    assert_eq!(a.status.code(), Some(130), "{}", String::from_utf8_lossy(&a.stderr));
    ok(&["sample", "--resume", "--out", &p("a.h5"), "-q"]);
    let b = run(&p("b.h5"), &[]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let (x, y) = (
        fieldflow_io::EnsembleReader::open(p("a.h5")).unwrap(),
        fieldflow_io::EnsembleReader::open(p("b.h5")).unwrap(),
    );
    assert_eq!(x.configs().unwrap(), y.configs().unwrap());
    assert_eq!(x.configs().unwrap().shape(), &[1, 240, 16]);
    assert_eq!(x.series("start_mode").unwrap(), y.series("start_mode").unwrap());
    let json = ok(&["analyze", &p("b.h5"), "--json"]);
    let r = rows(&json);
    common::assert_mode_weights("slips two modes d = 16", &r, &[2.0 / 3.0, 1.0 / 3.0], 0.05);
    // The start-decided diagnostic: every particle keeps the mode of its
    // first denoiser estimate (fieldflow_slips::start_decided), and analyze
    // warns that the weights were fixed by the start.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["start_decided"].as_f64(), Some(1.0), "{json}");
    let warnings = v[0]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("fixed by its start draws")),
        "{json}"
    );
}

#[test]
fn bad_slips_settings_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let out = p("o.h5");
    for (i, (edit, needle)) in [
        ("t0 = 0.0", "sampler.t0 = 0"),
        ("t_end = 1.5", "sampler.t_end = 1.5"),
        ("burn_in = 1.0", "sampler.burn_in = 1"),
        ("mcmc_steps = 0", "sampler.mcmc_steps = 0"),
        ("sigma = -1.0", "sampler.sigma = -1"),
        (
            "schedule = { kind = \"geometric\", a = 0.5, b = 1.0 }",
            "sampler.schedule.a = 0.5",
        ),
        ("target_acceptance = 1.0", "sampler.target_acceptance = 1"),
        ("particles = 0", "sampler.particles = 0"),
        ("walkers = 3", "sampler.walkers: not a setting of method slips"),
        (
            "step_adaptation = \"fast\"",
            "unknown variant `fast`, expected `robbins_monro` or `per_chain`",
        ),
        (
            "integrator = \"rk4\"",
            "unknown variant `rk4`, expected `alpha_increment` or `euler`",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = p(&format!("bad{i}.toml"));
        // Replace the key's line if the config has it, else append it.
        let key = edit.split(" = ").next().unwrap();
        let text = match CONFIG.lines().find(|l| l.starts_with(&format!("{key} = "))) {
            Some(line) => CONFIG.replace(line, edit),
            None => format!("{CONFIG}{edit}\n"),
        };
        std::fs::write(&cfg, text).unwrap();
        fails(
            &["sample", "--method", "slips", "--config", &cfg, "--out", &out],
            needle,
        );
        assert!(!std::path::Path::new(&out).exists(), "{edit}: an output was written");
    }
    std::fs::write(p("c.toml"), CONFIG).unwrap();
    let c = p("c.toml");
    fails(
        &[
            "sample", "--method", "slips", "--config", &c, "--out", &out, "--model", &c,
        ],
        "--model: method slips needs no model",
    );
    fails(
        &[
            "sample", "--method", "slips", "--config", &c, "--out", &out, "--chains", "2",
        ],
        "--chains: not a setting of method slips",
    );
    std::fs::write(p("none.toml"), "[sampler]\nparticles = 10\n").unwrap();
    fails(
        &[
            "sample",
            "--method",
            "slips",
            "--config",
            &p("none.toml"),
            "--out",
            &out,
        ],
        "no target",
    );
    assert!(!std::path::Path::new(&out).exists());
    // An existing output is not overwritten.
    std::fs::write(&out, "keep").unwrap();
    fails(
        &["sample", "--method", "slips", "--config", &c, "--out", &out],
        "exists",
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep");
}
