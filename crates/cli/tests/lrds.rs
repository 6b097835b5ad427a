//! An LRDS sampler through the CLI (issue 18): the `[lrds]` section fits
//! its Gaussian-mixture reference by EM on MALA walkers, trains the drift
//! correction, stores both in the model file, resumes bit-identically, and
//! `sample --method is|imh` with its exact path weights gives the two-modes
//! weights (and log Z = 0 by IS) within 4σ; `analyze` reads the output as
//! for any model. Bad sections and methods are one-line errors before any
//! file is written.

use fieldflow_io::ModelFile;
use std::path::Path;

mod common;
use common::{fails, fieldflow, ok, rows, value_error};

const LRDS: &str = "seed = 2\n[target]\nkind = \"two_modes\"\ndim = 4\n[lrds]\nsteps = 12\nhidden = [16, 16]\n\
walkers = 1024\nwalker_sigma = 1.0\n[train]\nsteps = 40\nlr = 3e-3\nbatch_size = 128\nmetrics_every = 20\n";

#[test]
fn an_lrds_sampler_trains_resumes_and_samples_exactly() {
    trains_resumes_and_samples_exactly(LRDS);
}

#[test]
fn an_lrds_sampler_with_one_correction_per_component_too() {
    let config = LRDS.replace("[train]", "per_component = true\n[train]");
    trains_resumes_and_samples_exactly(&config);
}

fn trains_resumes_and_samples_exactly(config: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("c.toml"), config).unwrap();
    ok(&["train", "--config", &p("c.toml"), "--out", &p("m.h5"), "-q"]);
    let m = ModelFile::read(Path::new(&p("m.h5"))).unwrap();
    assert!(m.state.architecture.contains("\"lrds\""), "{}", m.state.architecture);
    assert!(m.header.config.contains("[lrds.reference]"), "{}", m.header.config);
    assert_eq!(
        m.header.config.contains("per_component = true"),
        config.contains("per_component = true"),
        "{}",
        m.header.config
    );

    // Interrupted at step 15 and resumed: the same reference and parameters.
    let out = fieldflow(
        &["train", "--config", &p("c.toml"), "--out", &p("r.h5")],
        &[("FIELDFLOW_STOP_AT_STEP", "15")],
    );
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&["train", "--resume", "--out", &p("r.h5"), "-q"]);
    let r = ModelFile::read(Path::new(&p("r.h5"))).unwrap();
    assert_eq!(r.state.params, m.state.params);
    assert_eq!(r.state.architecture, m.state.architecture);

    for method in ["is", "imh"] {
        let s = p(&format!("{method}.h5"));
        ok(&[
            "sample",
            "--model",
            &p("m.h5"),
            "--n",
            "4000",
            "--chains",
            "2",
            "--method",
            method,
            "--out",
            &s,
            "-q",
        ]);
        let r = rows(&ok(&["analyze", &s, "--json"]));
        // IMH's log Z comes from its proposals' weights.
        for name in ["mode_0", "mode_1", "log_Z"] {
            let (v, e) = value_error(&r, name);
            let exact = r
                .iter()
                .find(|row| row["observable"] == *name)
                .and_then(|row| row["exact"].as_f64())
                .unwrap();
            assert!(
                (v - exact).abs() < 4.0 * e,
                "{method}: {name} = {v} ± {e}, exact {exact}"
            );
            assert!(e < 0.02, "{method}: {name} error {e}");
        }
    }
    fails(
        &[
            "sample",
            "--model",
            &p("m.h5"),
            "--n",
            "10",
            "--method",
            "hybrid",
            "--out",
            &p("h.h5"),
        ],
        "LRDS sampler",
    );
    assert!(!Path::new(&p("h.h5")).exists());
}

#[test]
fn bad_lrds_sections_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let t = "[target]\nkind = \"mog4\"\n";
    let cases = [
        (format!("{t}[flow]\nn_layers = 2\n[lrds]\n"), "one of [flow], [diffusion], [lrds]"),
        (format!("{t}[lrds]\nsteps = 0\n"), "lrds.steps = 0"),
        (format!("{t}[lrds]\nwalker_sigma = -1.0\n"), "lrds.walker_sigma"),
        (format!("{t}[lrds]\nstep = 3\n"), "lrds: unknown field `step`"),
        (format!("{t}[lrds]\ncomponents = 0\n"), "lrds.components = 0"),
        (format!("{t}[lrds]\nem_restarts = 0\n"), "lrds.em_restarts = 0"),
        (format!("{t}[lrds]\nfrozen = [0]\n"), "lrds.frozen = [0]: only with per_component"),
        (
            format!("{t}[lrds]\nper_component = true\ncomponents = 2\nfrozen = [0, 1]\n"),
            "lrds.frozen = [0, 1]: must name some, not all",
        ),
        (
            format!("{t}[lrds]\n[lrds.reference]\nweights = [1.0]\nmeans = [[0.0, 0.0]]\ncovs = [[[1.0, 2.0], [2.0, 1.0]]]\n"),
            "lrds.reference.covs",
        ),
        (format!("{t}[lrds]\nlaplace = {{ starts = [] }}\n"), "lrds.laplace.starts"),
        (
            format!("{t}[lrds]\nlaplace = {{ starts = [1.0], boundary = {{ site = 5 }} }}\n"),
            "lrds.laplace.boundary",
        ),
    ];
    for (i, (cfg, needle)) in cases.iter().enumerate() {
        let c = p(&format!("c{i}.toml"));
        std::fs::write(&c, cfg).unwrap();
        fails(&["train", "--config", &c, "--out", &p(&format!("m{i}.h5"))], needle);
        assert!(!Path::new(&p(&format!("m{i}.h5"))).exists(), "case {i} wrote a file");
    }
}
