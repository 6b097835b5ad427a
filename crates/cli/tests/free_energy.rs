//! `fieldflow free-energy`: the tilted 1D φ⁴ chain's mode log ratio against
//! the transfer operator (within 4σ, with an error small enough to mean
//! something), the JSON output, and one-line errors for bad input.

use std::path::Path;

mod common;
use common::{fails, ok};

#[test]
fn free_energy_matches_the_transfer_operator_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // b = 0.05: w+ = 1.7e-7, far below what any sampler of the full density resolves.
    std::fs::write(
        p("c.toml"),
        "[target]\nkind = \"phi4_1d\"\nb = 0.05\n[free_energy]\nsamples = 300\nwarmup = 150\nfield_nodes = 6\n",
    )
    .unwrap();
    let out = ok(&["free-energy", "--config", &p("c.toml"), "--out", &p("r.json")]);
    assert!(out.contains("log(w+/w-)") && out.contains("transfer operator"), "{out}");
    // At b = 0.05 the + phase dominates the + mode: no fluctuation warning.
    assert!(!out.contains("crossing 0"), "{out}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("r.json")).unwrap()).unwrap();
    let (v, e) = (
        r["log_ratio"]["value"].as_f64().unwrap(),
        r["log_ratio"]["error"].as_f64().unwrap(),
    );
    let exact = r["exact_log_ratio"].as_f64().unwrap();
    assert!((exact - (-15.5665172513)).abs() < 1e-8, "oracle {exact}");
    assert!((v - exact).abs() < 4.0 * e, "{v} ± {e} vs {exact}");
    assert!(e < 0.05, "error {e}");
    assert_eq!(r["log_ratio"]["replicas"].as_array().unwrap().len(), 8);
    // What the phase split leaves out: e^{-7.9} of the + mode at b = 0.05.
    let left_out = r["log_left_out"][1].as_f64().unwrap();
    assert!((left_out + 7.86).abs() < 0.05, "{left_out}");
    // An existing output is kept.
    let before = std::fs::read(p("r.json")).unwrap();
    fails(
        &["free-energy", "--config", &p("c.toml"), "--out", &p("r.json")],
        "exists",
    );
    assert_eq!(std::fs::read(p("r.json")).unwrap(), before);
}

#[test]
fn free_energy_of_a_free_field_in_a_field_matches_its_gaussian_magnetization() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(
        p("f.toml"),
        "[phi4]\nlattice = [6, 6]\nm2 = 0.5\nlambda = 0.0\n[free_energy]\nfield = 0.05\nsamples = 600\nwarmup = 150\nfield_nodes = 6\n",
    )
    .unwrap();
    let out = ok(&["free-energy", "--config", &p("f.toml"), "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (v, e) = (
        r["log_ratio"]["value"].as_f64().unwrap(),
        r["log_ratio"]["error"].as_f64().unwrap(),
    );
    let exact = r["exact_log_ratio"].as_f64().unwrap();
    // Σφ ~ N(hV/(2m²), V/(2m²)): z = 0.05 · √36 = 0.3.
    assert!((exact - 0.48069).abs() < 1e-4, "oracle {exact}");
    assert!((v - exact).abs() < 4.0 * e && e < 0.02, "{v} ± {e} vs {exact}");
}

#[test]
fn bad_free_energy_configs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let cases = [
        ("[target]\nkind = \"gaussian\"\nmean = [0.0]\n", "kind = gaussian"),
        (
            "[phi4]\nlattice = [4, 4]\nm2 = -1.0\nlambda = 1.0\n",
            "free_energy.field: missing",
        ),
        (
            "[target]\nkind = \"phi4_1d\"\n[free_energy]\nfield = 0.1\n",
            "tilt, target.b",
        ),
        (
            "[target]\nkind = \"phi4_1d\"\n[phi4]\nlattice = [4]\nm2 = 1.0\nlambda = 0.0\n",
            "not both",
        ),
        ("[target]\nkind = \"phi4_1d\"\nn = 4\n", "target.n = 4"),
        (
            "[target]\nkind = \"phi4_1d\"\n[free_energy]\nchains = 1\n",
            "free_energy.chains = 1",
        ),
        (
            "[target]\nkind = \"phi4_1d\"\n[free_energy]\nchainz = 3\n",
            "unknown field `chainz`",
        ),
        (
            "[target]\nkind = \"phi4_1d\"\n[free_energy]\nprofile_min = -1.83\n",
            "multiple of profile_step",
        ),
        (
            "[target]\nkind = \"phi4_1d\"\n[free_energy]\nprofile_max = -0.5\n",
            "free_energy.profile_max",
        ),
        (
            "[target]\nkind = \"phi4_1d\"\n[sampler]\nx = 1\n",
            "sampler: not a section",
        ),
    ];
    for (i, (cfg, needle)) in cases.iter().enumerate() {
        let f = p(&format!("c{i}.toml"));
        std::fs::write(&f, cfg).unwrap();
        fails(&["free-energy", "--config", &f, "--out", &p("r.json")], needle);
        assert!(!Path::new(&p("r.json")).exists());
    }
}

#[test]
fn an_interrupted_free_energy_run_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(
        p("c.toml"),
        "[target]\nkind = \"phi4_1d\"\nb = 0.05\n[free_energy]\nsamples = 60\nwarmup = 40\nfield_nodes = 4\n",
    )
    .unwrap();
    let whole = ok(&["free-energy", "--config", &p("c.toml"), "--seed", "7", "--json"]);
    // Ctrl-C (simulated) after 5 computed nodes: exit 130, the checkpoint, no result.
    let run = common::fieldflow(
        &[
            "free-energy",
            "--config",
            &p("c.toml"),
            "--seed",
            "7",
            "--out",
            &p("r.json"),
        ],
        &[("FIELDFLOW_STOP_AFTER_BLOCKS", "5")],
    );
    assert_eq!(run.status.code(), Some(130), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--resume"));
    assert!(!Path::new(&p("r.json")).exists());
    let partial: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("r.json.partial")).unwrap()).unwrap();
    let saved = partial["nodes"].as_object().unwrap().len();
    assert!((5..98).contains(&saved), "{saved} nodes saved");
    // A new run refuses to overwrite the checkpoint; --resume takes no config.
    fails(
        &["free-energy", "--config", &p("c.toml"), "--out", &p("r.json")],
        "--resume",
    );
    fails(
        &[
            "free-energy",
            "--resume",
            "--config",
            &p("c.toml"),
            "--out",
            &p("r.json"),
        ],
        "pass only --out",
    );
    ok(&["free-energy", "--resume", "--out", &p("r.json")]);
    assert!(!Path::new(&p("r.json.partial")).exists());
    let a: serde_json::Value = serde_json::from_str(&whole).unwrap();
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("r.json")).unwrap()).unwrap();
    for key in ["log_ratio", "delta", "log_t_minus", "log_t_plus", "settings"] {
        assert_eq!(a[key], b[key], "{key} differs after resume");
    }
}
