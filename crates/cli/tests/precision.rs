//! `[flow] dtype = "f32"` end to end: a single-precision lattice flow trains,
//! is stored with its precision, and IMH with it is exact (the free field's
//! χ₂ = 1/(2m²) within 4σ); an MLP flow refuses f32 with a one-line error.

use fieldflow_io::ModelFile;

mod common;
use common::{fails, ok, rows, value_error};

const FREE_F32: &str = "seed = 4\n[phi4]\nlattice = [4, 4]\nm2 = 1.0\nlambda = 0.0\n[flow]\ndtype = \"f32\"\n\
[train]\nloss = { preset = \"rkl\" }\nbatch_size = 64\nsteps = 150\nlr = 2e-3\nmetrics_every = 50\n";

#[test]
fn a_single_precision_flow_trains_and_samples_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("f32.toml"), FREE_F32).unwrap();
    ok(&["train", "--config", &p("f32.toml"), "--out", &p("m.h5"), "-q"]);
    let model = ModelFile::read(p("m.h5")).unwrap();
    let arch = model.state.architecture.clone();
    assert!(
        arch.contains("\"dtype\":\"f32\""),
        "architecture without its precision: {arch}"
    );
    ok(&[
        "sample",
        "--model",
        &p("m.h5"),
        "--n",
        "4000",
        "--chains",
        "4",
        "--out",
        &p("s.h5"),
        "-q",
    ]);
    let r = rows(&ok(&["analyze", &p("s.h5"), "--json"]));
    let (chi2, e) = value_error(&r, "chi2");
    assert!(e < 0.05 && (chi2 - 0.5).abs() < 4.0 * e, "χ₂ = {chi2} ± {e}");
}

#[test]
fn single_precision_needs_a_convolutional_conditioner() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let mog = "seed = 3\n[target]\nkind = \"mog4\"\n[data]\nexact = true\nn_train = 100\n[flow]\ndtype = \"f32\"\n\
[train]\nloss = { preset = \"fkl\" }\nbatch_size = 64\nsteps = 5\nlr = 1e-3\n";
    std::fs::write(p("mog.toml"), mog).unwrap();
    fails(
        &["train", "--config", &p("mog.toml"), "--out", &p("m.h5")],
        "flow.dtype",
    );
    assert!(!std::path::Path::new(&p("m.h5")).exists());
}
