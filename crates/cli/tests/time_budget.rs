//! `train.max_minutes`: a wall-clock budget ends the run normally at the
//! first step past it (exit 0, final checkpoint, the step said), and the
//! model at that step is bit for bit the model of a run asked for exactly
//! that many steps; a schedule cut before its decay is said to be; a
//! non-positive budget is a one-line error.

use fieldflow_io::ModelFile;
use std::path::Path;

mod common;
use common::{fails, ok};

const CFG: &str = "seed = 4\n[phi4]\nlattice = [4, 4]\nm2 = 1.0\nlambda = 0.0\n[flow]\nn_layers = 2\n\
[train]\nloss = { preset = \"rkl\" }\nbatch_size = 16\nlr = 1e-3\nmetrics_every = 50\n\
lr_schedule = { kind = \"constant\" }\n";

#[test]
fn a_time_budget_stops_training_where_a_step_count_would() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("a.toml"), format!("{CFG}steps = 10000000\nmax_minutes = 0.005\n")).unwrap();
    let out = ok(&["train", "--config", &p("a.toml"), "--out", &p("a.h5")]);
    assert!(out.contains("time budget"), "{out}");
    assert!(
        !out.contains("learning rate is still"),
        "a constant rate has no decay: {out}"
    );
    let a = ModelFile::read(Path::new(&p("a.h5"))).unwrap();
    let t = a.state.adam_step;
    assert!(t > 0 && t < 10_000_000, "stopped at step {t}");
    std::fs::write(p("b.toml"), format!("{CFG}steps = {t}\n")).unwrap();
    ok(&["train", "--config", &p("b.toml"), "--out", &p("b.h5"), "-q"]);
    let b = ModelFile::read(Path::new(&p("b.h5"))).unwrap();
    assert_eq!(
        a.state.params, b.state.params,
        "the budget changed the parameters at step {t}"
    );

    // A schedule cut before its decay is said to be (the decay is where
    // most of the final quality comes).
    let cosine = CFG.replace(
        "kind = \"constant\"",
        "kind = \"cosine\", total_steps = 10000000, min_lr = 1e-6",
    );
    std::fs::write(p("d.toml"), format!("{cosine}steps = 10000000\nmax_minutes = 0.005\n")).unwrap();
    let out = ok(&["train", "--config", &p("d.toml"), "--out", &p("d.h5")]);
    assert!(out.contains("the learning rate is still 0.001"), "{out}");

    std::fs::write(p("c.toml"), format!("{CFG}steps = 10\nmax_minutes = 0.0\n")).unwrap();
    fails(&["train", "--config", &p("c.toml"), "--out", &p("c.h5")], "max_minutes");
    assert!(!Path::new(&p("c.h5")).exists());
}
