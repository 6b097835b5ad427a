//! The CI-sized multimodal benchmark (issue 14): two well-separated modes
//! with weights ⅔, ⅓ in d = 8 (the modes are 2√8/σ ≈ 25 standard deviations
//! apart), 100 exact training samples, the `scorenf` preset (its annealing
//! added by `fieldflow train`); IMH must recover the exact weights within 4σ
//! with an error below 0.01. The `rkl_sm` preset (the first reading of
//! ScoreNF) puts all its mass on one mode here (docs/RESULTS.md), which IMH
//! cannot repair.

mod common;
use common::{ok, rows};
use std::path::Path;

/// Trains `dir/config` into `dir/m.h5`, runs IMH 4 × 5000 into `dir/s.h5`
/// and returns the rows of its analysis.
fn train_and_imh(dir: &Path, config: &str) -> Vec<serde_json::Value> {
    let p = |n: &str| dir.join(n).display().to_string();
    ok(&["train", "--config", &p(config), "--out", &p("m.h5"), "-q"]);
    ok(&[
        "sample",
        "--model",
        &p("m.h5"),
        "--n",
        "5000",
        "--chains",
        "4",
        "--out",
        &p("s.h5"),
        "-q",
    ]);
    rows(&ok(&["analyze", &p("s.h5"), "--json"]))
}

const TWO_MODES: &str = "seed = 1
[target]
kind = \"two_modes\"
dim = 8
[data]
exact = true
n_train = 100
n_heldout = 1000
[train]
loss = { preset = \"scorenf\" }
batch_size = 256
steps = 2000
lr = 2e-3
[train.lr_schedule]
kind = \"cosine\"
total_steps = 2000
min_lr = 1e-5
";

#[test]
fn scorenf_recovers_the_weights_of_two_separated_modes() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("two.toml"), TWO_MODES).unwrap();
    let r = train_and_imh(dir.path(), "two.toml");
    common::assert_mode_weights("scorenf IMH", &r, &[2.0 / 3.0, 1.0 / 3.0], 0.01);
    // The preset's annealing (over the first half) and its resolved weights
    // are written into the stored config.
    let m = fieldflow_io::ModelFile::read(dir.path().join("m.h5")).unwrap();
    let t: toml::Table = m.header.config.parse().unwrap();
    let train = t["train"].as_table().unwrap();
    let a = train["annealing"].as_table().unwrap();
    assert_eq!(a["kind"].as_str(), Some("geometric"));
    assert_eq!(
        (a["beta0"].as_float(), a["steps"].as_integer()),
        (Some(0.1), Some(1000))
    );
    let loss = train["loss"].as_table().unwrap();
    let w = |k: &str| loss[k].as_float().unwrap();
    assert_eq!((w("w_fkl"), w("w_rkl"), w("w_sm")), (1.0, 0.1, 0.1));
    assert_eq!(loss["sm_on"].as_str(), Some("flow"));
}

/// A mixture of flows, one per k-means cluster of the 100 samples, trained by
/// reverse KL, weights by importance sampling (docs/THEORY.md §4.11), on
/// MOG-4 (weights 0.1 … 0.4): IMH weights within 4σ with errors below 0.01,
/// held-out NLL within 0.1 nats of the entropy, resumption bit-identical,
/// and the samplers that need a bijection refuse it with one line.
#[test]
fn a_mixture_of_flows_gets_mog4_weights_density_and_resumes_exactly() {
    use fieldflow_io::ModelFile;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let cfg = "seed = 2
[target]
kind = \"mog4\"
[data]
exact = true
n_train = 100
n_heldout = 2000
[flow]
n_layers = 4
mixture = { components = 4, weight_samples = 2000 }
[train]
loss = { preset = \"rkl\" }
batch_size = 128
steps = 300
lr = 2e-3
metrics_every = 300
";
    std::fs::write(p("m.toml"), cfg).unwrap();
    let r = train_and_imh(dir.path(), "m.toml");
    common::assert_mode_weights("mixture IMH", &r, &[0.1, 0.2, 0.3, 0.4], 0.01);
    let m = ModelFile::read(Path::new(&p("m.h5"))).unwrap();
    assert!(m.state.architecture.contains("\"mixture\""), "{}", m.state.architecture);
    // Entropy of MOG-4: 1 + ln(2π·0.5) + H(0.1, 0.2, 0.3, 0.4). The NLL
    // on 2000 held-out draws has a standard error of √(Var log p / 2000),
    // Var log p ≈ 1 (χ²₂/2 within a mode) + 0.2 (between modes): ≈ 0.025,
    // so 0.1 is 4σ on top of KL(p‖q) ≥ 0.
    let h = 1.0 + (std::f64::consts::PI).ln() + [0.1f64, 0.2, 0.3, 0.4].iter().map(|w| -w * w.ln()).sum::<f64>();
    let nll = m.metrics["nll"].last().copied().unwrap();
    assert!((nll - h).abs() < 0.1, "held-out NLL {nll} vs entropy {h}");

    // Interrupted at step 120 and resumed: the same parameters, bit for bit.
    let args = ["train", "--config", &p("m.toml"), "--out", &p("r.h5"), "-q"];
    let out = common::fieldflow(&args, &[("FIELDFLOW_STOP_AT_STEP", "120")]);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&["train", "--resume", "--out", &p("r.h5"), "-q"]);
    let again = ModelFile::read(Path::new(&p("r.h5"))).unwrap();
    assert_eq!(again.state.params, m.state.params);

    // `components = "auto"`: BIC on the same 100 samples picks K = 4, the
    // stored config says 4, and the run is the K = 4 run, bit for bit (the
    // choice uses the set-up's own k-means partitions).
    std::fs::write(p("auto.toml"), cfg.replace("components = 4", "components = \"auto\"")).unwrap();
    let said = ok(&["train", "--config", &p("auto.toml"), "--out", &p("a.h5")]);
    assert!(said.contains("components = \"auto\": K = 4"), "{said}");
    let auto = ModelFile::read(Path::new(&p("a.h5"))).unwrap();
    assert!(
        auto.state.architecture.contains("\"components\":4"),
        "{}",
        auto.state.architecture
    );
    assert_eq!(auto.state.params, m.state.params);
    std::fs::write(p("bad.toml"), cfg.replace("components = 4", "components = \"many\"")).unwrap();
    common::fails(
        &["train", "--config", &p("bad.toml"), "--out", &p("x.h5")],
        "expected a number or \"auto\"",
    );

    // A mixture is not a bijection; without data there is nothing to cluster.
    common::fails(
        &[
            "sample",
            "--model",
            &p("m.h5"),
            "--method",
            "neutra",
            "--n",
            "10",
            "--out",
            &p("n.h5"),
        ],
        "flow",
    );
    std::fs::write(p("nodata.toml"), cfg.replace("exact = true\n", "")).unwrap();
    common::fails(&["train", "--config", &p("nodata.toml"), "--out", &p("x.h5")], "data");
    std::fs::write(p("many.toml"), cfg.replace("components = 4", "components = 60")).unwrap();
    common::fails(
        &["train", "--config", &p("many.toml"), "--out", &p("x.h5")],
        "components",
    );
}

/// Without a single target sample: the mixture's modes found by MALA walkers
/// (`mixture.locate`), weights by importance sampling; two modes in d = 16
/// (⅔, ⅓) within 4σ with errors below 0.01. A loss that needs data is
/// refused (walker end points are locations, not samples).
#[test]
fn a_mixture_of_flows_finds_the_modes_with_walkers_when_there_are_no_samples() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let cfg = "seed = 3
[target]
kind = \"two_modes\"
dim = 16
[flow]
n_layers = 4
mixture = { components = 2, weight_samples = 2000, locate = { walkers = 64, sigma = 3.0, steps = 200 } }
[train]
loss = { preset = \"rkl\" }
batch_size = 128
steps = 300
lr = 2e-3
";
    std::fs::write(p("m.toml"), cfg).unwrap();
    let r = train_and_imh(dir.path(), "m.toml");
    common::assert_mode_weights("mixture (walkers) IMH", &r, &[2.0 / 3.0, 1.0 / 3.0], 0.01);
    // K from the walkers' end points: 2, and the same run as `components = 2`.
    std::fs::write(p("auto.toml"), cfg.replace("components = 2", "components = \"auto\"")).unwrap();
    let said = ok(&["train", "--config", &p("auto.toml"), "--out", &p("a.h5")]);
    assert!(said.contains("K = 2"), "{said}");
    let read = |f: &str| fieldflow_io::ModelFile::read(Path::new(&p(f))).unwrap().state.params;
    assert_eq!(read("a.h5"), read("m.h5"));
    std::fs::write(p("fkl.toml"), cfg.replace("\"rkl\"", "\"fkl\"")).unwrap();
    common::fails(&["train", "--config", &p("fkl.toml"), "--out", &p("x.h5")], "data");
}

/// The stiff 1D φ⁴ chain (N = 100, a = 0.1, β = 20; docs/RESULTS.md "Why
/// flows fail on the 1D φ⁴ chain"), where coupling flows from N(0, I) stay
/// tens of nats away: with `affine = "laplace"` each component starts as the
/// Laplace Gaussian of one phase (found from the walkers' clusters). At
/// b = 0 IMH then crosses between the phases (weights ½ within 4σ, error
/// below 0.01); at b = 0.025 the training summary's log(π₂/π₁) is
/// ±log(w₊/w₋) of the transfer operator (−7.7917) within 4σ, and from
/// `starts = [1.0, −1.0]` (Newton from the ordered phases, no walkers) at
/// b = 0.05 it is 15.5665 within 4σ. Two components on one mode, an
/// unknown map family and a start count that is not K are one-line errors.
#[test]
fn laplace_components_sample_the_stiff_phi4_chain_across_its_phases() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let cfg = "seed = 2
[target]
kind = \"phi4_1d\"
b = 0.0
[flow]
n_layers = 4
mixture = { components = 2, weight_samples = 2000, affine = \"laplace\", locate = { walkers = 64, sigma = 1.0, steps = 300 } }
[train]
loss = { preset = \"rkl\" }
batch_size = 64
steps = 100
lr = 1e-3
";
    std::fs::write(p("m.toml"), cfg).unwrap();
    let r = train_and_imh(dir.path(), "m.toml");
    common::assert_mode_weights("Laplace mixture IMH, chain b = 0", &r, &[0.5, 0.5], 0.01);
    // At b = 0.025 these 64 walkers all fall into the favoured phase: both
    // clusters reach the same mode, which is refused (it would miss the
    // other phase); 256 walkers find both.
    let tilt = cfg.replace("b = 0.0", "b = 0.025");
    std::fs::write(p("one.toml"), &tilt).unwrap();
    common::fails(&["train", "--config", &p("one.toml"), "--out", &p("o.h5")], "same mode");
    std::fs::write(p("tilt.toml"), tilt.replace("walkers = 64", "walkers = 256")).unwrap();
    let said = ok(&["train", "--config", &p("tilt.toml"), "--out", &p("t.h5")]);
    let (value, error) = log_ratio(&said);
    let exact = 7.7917;
    assert!(
        (value.abs() - exact).abs() < 4.0 * error && error < 0.1,
        "log ratio {value} ± {error} vs ±{exact}"
    );
    std::fs::write(p("bad.toml"), cfg.replace("\"laplace\"", "\"full\"")).unwrap();
    common::fails(&["train", "--config", &p("bad.toml"), "--out", &p("x.h5")], "affine");
    // Newton from the ordered phases φ = ±1 instead of walkers, b = 0.05
    // (exact log(w₋/w₊) = 15.5665): component 2 is the − phase.
    let starts = cfg.replace("b = 0.0", "b = 0.05").replace(
        "locate = { walkers = 64, sigma = 1.0, steps = 300 }",
        "starts = [1.0, -1.0]",
    );
    std::fs::write(p("starts.toml"), &starts).unwrap();
    let said = ok(&["train", "--config", &p("starts.toml"), "--out", &p("s2.h5")]);
    let (value, error) = log_ratio(&said);
    assert!(
        (value - 15.5665).abs() < 4.0 * error && error < 0.1,
        "{value} ± {error}"
    );
    // The − phase's weight itself, 1.736e-7: importance sampling with the
    // trained weights never draws it (ŵ₁ = 0); with equal weights half the
    // draws come from its component and analyze measures it (and the heavy
    // mode's error is the light one's: they are complements).
    let is = |name: &str, extra: &[&str]| {
        let (model, out) = (p("s2.h5"), p(name));
        let mut args = vec![
            "sample", "--model", &model, "--method", "is", "--chains", "2", "--n", "4000",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", &out, "-q"]);
        ok(&args);
        rows(&ok(&["analyze", &out, "--json"]))
    };
    let trained = is("trained.h5", &[]);
    assert_eq!(common::value_error(&trained, "mode_1").0, 0.0);
    let equal = is("equal.h5", &["--mixture-weights", "equal"]);
    let light = equal.iter().find(|r| r["observable"] == "mode_1").unwrap();
    let (v, e, exact) = (
        light["value"].as_f64().unwrap(),
        light["error"].as_f64().unwrap(),
        light["exact"].as_f64().unwrap(),
    );
    assert!((v - exact).abs() < 4.0 * e && e < 0.05 * exact, "{v} ± {e} vs {exact}");
    let (_, e0) = common::value_error(&equal, "mode_0");
    assert!((e0 / e - 1.0).abs() < 1e-6, "{e0} vs {e}");
    common::fails(
        &[
            "sample",
            "--model",
            &p("s2.h5"),
            "--mixture-weights",
            "most",
            "--out",
            &p("x.h5"),
        ],
        "mixture_weights",
    );
    std::fs::write(
        p("single.toml"),
        cfg.replace("mixture = {", "# mixture = {")
            .replace("steps = 100", "steps = 2"),
    )
    .unwrap();
    ok(&["train", "--config", &p("single.toml"), "--out", &p("single.h5"), "-q"]);
    common::fails(
        &[
            "sample",
            "--model",
            &p("single.h5"),
            "--mixture-weights",
            "equal",
            "--out",
            &p("x.h5"),
        ],
        "not a mixture",
    );
    // b = 0.075 (exact w₊ = 2.7154e-10): the light mode's mass lies where the
    // − phase's field dips through zero at the middle, not in the + phase,
    // so the two phase components alone are confidently wrong (> 50σ); a
    // third on the boundary φ₄₉ = 0 gets it within 4σ.
    let light_weight = |config: &str, name: &str| {
        std::fs::write(p(&format!("{name}.toml")), config).unwrap();
        let (model, out) = (p(&format!("{name}.h5")), p(&format!("{name}_is.h5")));
        let said = ok(&["train", "--config", &p(&format!("{name}.toml")), "--out", &model]);
        let args = [
            "sample",
            "--model",
            &model,
            "--method",
            "is",
            "--mixture-weights",
            "equal",
        ];
        ok(&[&args[..], &["--chains", "2", "--n", "4000", "--out", &out, "-q"]].concat());
        let r = rows(&ok(&["analyze", &out, "--json"]));
        let row = r.iter().find(|r| r["observable"] == "mode_1").unwrap().clone();
        let f = |k: &str| row[k].as_f64().unwrap();
        (f("value"), f("error"), f("exact"), said)
    };
    let tilted = starts.replace("b = 0.05", "b = 0.075");
    let (v, e, exact, _) = light_weight(&tilted, "phases");
    assert!((v - exact).abs() > 50.0 * e, "{v} ± {e} vs {exact}");
    let with_boundary = tilted.replace("components = 2", "components = 3").replace(
        "starts = [1.0, -1.0]",
        "starts = [1.0, -1.0], boundary = { site = 49, value = 0.0 }",
    );
    let (v, e, exact, said) = light_weight(&with_boundary, "boundary");
    assert!((v - exact).abs() < 4.0 * e && e < 0.1 * exact, "{v} ± {e} vs {exact}");
    // The training's own weight draws give the mode weights too (its
    // component weights are three numbers, none of them the + mode's).
    let line = said
        .lines()
        .find(|l| l.starts_with("mode weights"))
        .expect("a mode weights line");
    let tail = line.split("ln(w₁/w₀) = ").nth(1).expect("two modes: the log ratio");
    let mut it = tail.split([' ', ')']).filter_map(|x| x.parse::<f64>().ok());
    let (lr, lr_err) = (it.next().unwrap(), it.next().unwrap());
    assert!(
        (lr + 22.0269).abs() < 4.0 * lr_err && lr_err < 0.2,
        "train summary: {lr} ± {lr_err}"
    );
    for (bad, needle) in [
        (
            with_boundary.replace("components = 3", "components = \"auto\""),
            "with starts the components are known",
        ),
        (
            with_boundary.replace("site = 49", "site = 100"),
            "site must be < d = 100",
        ),
        (
            with_boundary.replace("[1.0, -1.0]", "[1.0, -1.0, 0.5]"),
            "but the boundary's",
        ),
        (
            cfg.replace("components = 2", "components = 3")
                .replace("steps = 300 }", "steps = 300 }, boundary = { site = 49 }"),
            "a boundary component needs flow.mixture.starts",
        ),
    ] {
        std::fs::write(p("bad.toml"), bad).unwrap();
        common::fails(&["train", "--config", &p("bad.toml"), "--out", &p("x.h5")], needle);
    }
    std::fs::write(p("one.toml"), starts.replace("[1.0, -1.0]", "[1.0]")).unwrap();
    common::fails(
        &["train", "--config", &p("one.toml"), "--out", &p("x.h5")],
        "one start per component",
    );
}

/// The training summary's log(π₂/π₁) and its error.
fn log_ratio(said: &str) -> (f64, f64) {
    let line = said
        .lines()
        .find(|l| l.starts_with("mixture weights"))
        .unwrap_or_else(|| panic!("no weights line in {said}"));
    let tail = line.split("log(π₂/π₁) = ").nth(1).expect("K = 2 prints the log ratio");
    let mut it = tail.split([' ', ';']);
    let value: f64 = it.next().unwrap().parse().unwrap();
    let error: f64 = it.find(|s| s.parse::<f64>().is_ok()).unwrap().parse().unwrap();
    (value, error)
}
