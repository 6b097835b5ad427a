//! The default φ⁴ training recipe and the lattice curriculum in the CLI
//! (issue 16): what a `[phi4]`-only RKL training resolves to (and that
//! every key given wins), a run interrupted in either stage of the
//! curriculum resumes bit for bit, and bad curricula are one-line errors
//! that leave no file.

use fieldflow_io::ModelFile;
use std::path::Path;

mod common;
use common::{fails, fieldflow, ok};

/// The stored config and the model of a model file.
fn stored(path: &str) -> (toml::Table, ModelFile) {
    let m = ModelFile::read(Path::new(path)).unwrap();
    (m.header.config.parse().unwrap(), m)
}

fn train_of(t: &toml::Table) -> &toml::Table {
    t["train"].as_table().unwrap()
}

const E8: [&str; 8] = ["--lattice", "8x8", "--m2", "-4", "--lambda", "8", "--loss", "rkl"];

#[test]
fn a_phi4_rkl_training_gets_the_recipe_and_every_given_key_wins() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // Only the target and a step count: the recipe scaled to 30 steps.
    let m = p("a.h5");
    let mut args = vec!["train"];
    args.extend(E8);
    args.extend(["--steps", "30", "--out", &m, "-q"]);
    ok(&args);
    let (t, model) = stored(&m);
    let tr = train_of(&t);
    assert_eq!(tr["lr"].as_float(), Some(4e-3));
    let s = tr["lr_schedule"].as_table().unwrap();
    assert_eq!(s["kind"].as_str(), Some("warmup_stable_decay"));
    assert_eq!(
        (
            s["warmup_steps"].as_integer(),
            s["decay_steps"].as_integer(),
            s["total_steps"].as_integer()
        ),
        (Some(3), Some(6), Some(30))
    );
    let stage = tr["curriculum"].as_array().unwrap()[0].as_table().unwrap();
    assert_eq!(stage["lattice"], toml::Value::from(vec![4, 4]));
    assert_eq!(stage["steps"].as_integer(), Some(10));
    assert_eq!(t["flow"]["dtype"].as_str(), Some("f32"));
    assert_eq!(t["flow"]["free_field"].as_bool(), Some(true));
    assert_eq!(model.state.adam_step, 30);

    // No step count: the budget for 64 sites (interrupted after the first
    // step; the checkpoint holds the resolved config).
    std::fs::write(p("b.toml"), "[phi4]\nlattice = [8, 8]\nm2 = -4.0\nlambda = 8.0\n").unwrap();
    let o = fieldflow(
        &["train", "--config", &p("b.toml"), "--out", &p("b.h5"), "-q"],
        &[("FIELDFLOW_STOP_AT_STEP", "1")],
    );
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    let (t, _) = stored(&p("b.h5"));
    assert_eq!(train_of(&t)["steps"].as_integer(), Some(50_000));
    assert_eq!(train_of(&t)["curriculum"][0]["steps"].as_integer(), Some(16_666));

    // Keys given win: a dtype, no free-field layer, an empty curriculum.
    std::fs::write(
        p("c.toml"),
        "[phi4]\nlattice = [8, 8]\nm2 = -4.0\nlambda = 8.0\n[flow]\ndtype = \"f64\"\nfree_field = false\n\
         [train]\nsteps = 12\ncurriculum = []\n",
    )
    .unwrap();
    ok(&["train", "--config", &p("c.toml"), "--out", &p("c.h5"), "-q"]);
    let (t, _) = stored(&p("c.h5"));
    let tr = train_of(&t);
    assert_eq!(tr["lr"].as_float(), Some(4e-3));
    assert_eq!(tr["lr_schedule"]["kind"].as_str(), Some("warmup_stable_decay"));
    assert!(tr.get("curriculum").is_none_or(|c| c.as_array().unwrap().is_empty()));
    assert!(t["flow"].get("dtype").is_none_or(|d| d.as_str() == Some("f64")));
    assert!(t["flow"].get("free_field").is_none_or(|f| f.as_bool() == Some(false)));
    // A learning rate (or schedule) of one's own: no recipe at all.
    let e = p("e.h5");
    let mut args = vec!["train"];
    args.extend(E8);
    args.extend(["--steps", "12", "--lr", "1e-3", "--out", &e, "-q"]);
    ok(&args);
    let (t, _) = stored(&e);
    let tr = train_of(&t);
    assert_eq!(tr["lr"].as_float(), Some(1e-3));
    assert!(tr
        .get("lr_schedule")
        .is_none_or(|s| s["kind"].as_str() == Some("constant")));
    assert!(tr.get("curriculum").is_none());
    assert!(t["flow"].get("dtype").is_none_or(|d| d.as_str() == Some("f64")));
    assert!(t["flow"].get("free_field").is_none_or(|f| f.as_bool() == Some(false)));
    // No curriculum (and f64) for an MLP flow.
    std::fs::write(
        p("d.toml"),
        "[phi4]\nlattice = [4, 4]\nm2 = -4.0\nlambda = 8.0\n\
         [flow]\nconditioner = { kind = \"mlp\", hidden = [8], activation = \"tanh\" }\n[train]\nsteps = 6\n",
    )
    .unwrap();
    ok(&["train", "--config", &p("d.toml"), "--out", &p("d.h5"), "-q"]);
    let (t, _) = stored(&p("d.h5"));
    assert!(train_of(&t).get("curriculum").is_none());
    assert!(t["flow"].get("dtype").is_none_or(|d| d.as_str() == Some("f64")));
}

#[test]
fn a_time_budget_without_steps_sizes_the_recipe_to_fit_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(
        p("a.toml"),
        "[phi4]\nlattice = [8, 8]\nm2 = -4.0\nlambda = 8.0\n[train]\nmax_minutes = 0.04\n",
    )
    .unwrap();
    ok(&["train", "--config", &p("a.toml"), "--out", &p("a.h5"), "-q"]);
    let (t, model) = stored(&p("a.h5"));
    let tr = train_of(&t);
    // The step count was measured, not the volume budget, and the
    // schedule and curriculum are sized to it.
    let steps = tr["steps"].as_integer().unwrap();
    assert!(steps >= 3 && steps != 50_000, "steps {steps}");
    assert_eq!(tr["lr_schedule"]["total_steps"].as_integer(), Some(steps));
    assert_eq!(tr["curriculum"][0]["steps"].as_integer(), Some(steps / 3));
    // The run ends at its steps or, on a machine slower than the probe
    // measured, at the budget (the time limit still holds).
    assert!(model.state.adam_step <= steps as u64 && model.state.adam_step > 0);
}

#[test]
fn a_run_interrupted_in_either_stage_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let run = |out: &str, stop: Option<&str>| {
        let mut args = vec!["train"];
        args.extend(E8);
        args.extend(["--steps", "24", "--out", out, "-q"]);
        match stop {
            None => {
                ok(&args);
            }
            Some(s) => {
                let o = fieldflow(&args, &[("FIELDFLOW_STOP_AT_STEP", s)]);
                assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
                ok(&["train", "--resume", "--out", out, "-q"]);
            }
        }
        stored(out).1
    };
    let straight = run(&p("s.h5"), None);
    assert_eq!(straight.state.adam_step, 24);
    // Stage 0 runs steps 0..8 on 4×4, stage 1 the rest on 8×8.
    for stop in ["3", "8", "15"] {
        let resumed = run(&p(&format!("r{stop}.h5")), Some(stop));
        assert_eq!(resumed.state.params, straight.state.params, "stopped at step {stop}");
        assert_eq!(resumed.metrics["ess"].len(), straight.metrics["ess"].len());
    }
}

#[test]
fn bad_curricula_are_one_line_errors_that_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let phi4 = "[phi4]\nlattice = [8, 8]\nm2 = -4.0\nlambda = 8.0\n";
    let stage = |l: &str, s: u32| format!("curriculum = [{{ lattice = {l}, steps = {s} }}]\n");
    let cases = [
        (
            format!("[target]\nkind = \"mog4\"\n[train]\nsteps = 10\n{}", stage("[4, 4]", 2)),
            "needs a [phi4] target",
        ),
        (
            format!("{phi4}[train]\nsteps = 10\n{}", stage("[0, 4]", 2)),
            "curriculum[0].lattice",
        ),
        (
            format!(
                "{phi4}[flow]\nconditioner = {{ kind = \"mlp\", hidden = [8], activation = \"tanh\" }}\n\
                 [train]\nsteps = 10\n{}",
                stage("[4, 4]", 2)
            ),
            "convolutional",
        ),
        (
            format!(
                "{phi4}[flow]\nmixture = {{ components = 2 }}\n[train]\nsteps = 10\n{}",
                stage("[4, 4]", 2)
            ),
            "only a flow",
        ),
        (
            format!("{phi4}[train]\nsteps = 10\n{}", stage("[4, 4]", 10)),
            "fewer than steps",
        ),
    ];
    for (k, (cfg, needle)) in cases.iter().enumerate() {
        let c = p(&format!("c{k}.toml"));
        let out = p(&format!("m{k}.h5"));
        std::fs::write(&c, cfg).unwrap();
        fails(&["train", "--config", &c, "--out", &out], needle);
        assert!(!Path::new(&out).exists(), "case {k} left {out}");
    }
}

#[test]
fn the_summary_warns_when_the_flow_is_too_poor_to_sample_with() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // Two steps on an ordered 8×8 lattice: ESS far below 0.01.
    let m = p("poor.h5");
    let mut args = vec!["train"];
    args.extend(E8);
    args.extend(["--steps", "2", "--out", &m]);
    let out = ok(&args);
    assert!(
        out.contains("warning           ESS") && out.contains("train longer"),
        "{out}"
    );
    // A flow that is its target at initialization (identity flow, standard
    // normal target): ESS 1, no warning.
    std::fs::write(
        p("g.toml"),
        "[target]\nkind = \"gaussian\"\nmean = [0.0, 0.0]\ncov = 1.0\n[train]\nsteps = 2\nlr = 1e-6\n",
    )
    .unwrap();
    let out = ok(&["train", "--config", &p("g.toml"), "--out", &p("g.h5")]);
    assert!(
        out.contains("ESS               1.0") && !out.contains("warning"),
        "{out}"
    );
}
