//! Stochastic normalizing flows through the command line: an SNF is a
//! `[flow]` with `stages`; `train`, `sample` (IMH and importance sampling on
//! exact path weights), `analyze` and `--resume` work unchanged, and what an
//! SNF cannot do is refused with one-line errors.

use fieldflow_io::ModelFile;
use fieldflow_targets::{DoubleWell, Modes};
use std::path::Path;

mod common;
use common::{assert_mode_weights, fails, fieldflow, ok, rows};

/// Double well (docs/THEORY.md §3.4: a = −0.5, b = −6, c = 1), default MLP
/// couplings split around a MALA block and a random-walk Metropolis block.
const SNF: &str = "seed = 5\ncheckpoint_every = 10\n[target]\nkind = \"double_well\"\n[data]\nexact = true\nn_train = 400\nn_heldout = 400\n\
[flow]\nstages = [\n  { flow = { n_layers = 2 } },\n  { langevin = { steps = 4, eps = 0.02, mala = true } },\n\
  { flow = { n_layers = 2 } },\n  { metropolis = { steps = 3, width = 0.4 } },\n]\n\
[train]\nloss = { w_fkl = 1.0, w_rkl = 1.0 }\nbatch_size = 64\nsteps = 40\nlr = 3e-3\nmetrics_every = 10\n";

#[test]
fn snf_trains_samples_exactly_and_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("snf.toml"), SNF).unwrap();
    let out = ok(&[
        "train",
        "--config",
        &p("snf.toml"),
        "--out",
        &p("m.h5"),
        "--plots",
        &p("figs"),
    ]);
    assert!(out.contains("held-out NLL"), "{out}");
    // Figures: curves, the target density and the SNF's samples; no q map
    // (an SNF has no tractable marginal).
    for f in ["train_loss", "train_target_density", "train_samples"] {
        assert!(Path::new(&p(&format!("figs/{f}.svg"))).exists(), "{f}");
    }
    assert!(!Path::new(&p("figs/train_flow_density.svg")).exists());
    // The model file stores the SNF architecture (stages) and its config.
    let m = ModelFile::read(Path::new(&p("m.h5"))).unwrap();
    assert!(m.state.architecture.contains("\"stages\""), "{}", m.state.architecture);
    assert!(m.header.config.contains("langevin"), "{}", m.header.config);
    let nll = m.metrics["nll"].last().copied().unwrap();
    assert!(nll.is_finite(), "path NLL {nll}");

    // Interrupted at step 20 and resumed: the same parameters, bit for bit.
    let out = fieldflow(
        &["train", "--config", &p("snf.toml"), "--out", &p("r.h5")],
        &[("FIELDFLOW_STOP_AT_STEP", "20")],
    );
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&["train", "--resume", "--out", &p("r.h5"), "-q"]);
    let r = ModelFile::read(Path::new(&p("r.h5"))).unwrap();
    assert_eq!(r.state.params, m.state.params);

    // IMH and importance sampling on path weights are exact: the mode
    // weights (quadrature) within 4σ.
    let truth = DoubleWell::default().true_weights().unwrap();
    for method in ["imh", "is"] {
        let s = p(&format!("{method}.h5"));
        ok(&[
            "sample",
            "--model",
            &p("m.h5"),
            "--n",
            "3000",
            "--chains",
            "2",
            "--method",
            method,
            "--out",
            &s,
            "-q",
        ]);
        let r = rows(&ok(&["analyze", &s, "--json"]));
        assert_mode_weights(method, &r, &truth, 0.05);
    }

    // What an SNF cannot do: hybrid sampling (no log q of a moved state).
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
        "method = hybrid",
    );
    assert!(!Path::new(&p("h.h5")).exists());
}

#[test]
fn snf_configs_that_cannot_work_are_refused_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    for (text, needle) in [
        (
            SNF.replace("{ w_fkl = 1.0, w_rkl = 1.0 }", "{ preset = \"scorenf\" }"),
            "loss.w_sm",
        ),
        (SNF.replace("eps = 0.02", "eps = -0.02"), "flow.stages[1].langevin.eps"),
        (
            SNF.replace("{ steps = 3, width = 0.4 }", "{ steps = 3 }"),
            "flow.stages",
        ),
        (
            SNF.replace("[flow]\n", "[flow]\nschedule = { list = [0.5] }\n"),
            "flow.schedule.list",
        ),
        (SNF.replace("[flow]\n", "[flow]\nn_layers = 3\n"), "flow.n_layers = 3"),
    ] {
        std::fs::write(p("bad.toml"), text).unwrap();
        fails(&["train", "--config", &p("bad.toml"), "--out", &p("m.h5")], needle);
        assert!(!Path::new(&p("m.h5")).exists(), "{needle}");
    }
}

#[test]
fn the_shipped_snf_config_trains() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.h5").display().to_string();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/configs/train_snf_double_well.toml");
    let text = ok(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "3",
        "--out",
        &out,
    ]);
    assert!(text.contains("steps             3"), "{text}");
    let m = ModelFile::read(Path::new(&out)).unwrap();
    assert!(m.state.architecture.contains("langevin"));
}
