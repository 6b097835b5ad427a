//! Interoperability: h5py reads every file kind (docs/FORMATS.md).
//!
//! If `python3` exists, a virtual environment with h5py and numpy is created
//! once under `$CARGO_TARGET_DIR/pyenv` (or `target/pyenv`) and reused; the
//! test FAILS if that environment cannot be created. Without `python3` the
//! test passes after saying so on stderr.

mod common;

use common::*;
use fieldflow_io::{AnalysisFile, AnalysisInput, AnalysisRecord, FileKind, ModelState, ModelWriter};
use std::path::{Path, PathBuf};
use std::process::Command;

fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("pyenv")
}

fn run(cmd: &mut Command) -> bool {
    match cmd.output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "{cmd:?} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("{cmd:?} could not start: {e}");
            false
        }
    }
}

/// The venv's python with h5py and numpy, creating the venv if needed.
fn python_with_h5py() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not found: h5py interoperability not tested");
        return None;
    }
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let ready = |p: &Path| run(Command::new(p).args(["-c", "import h5py, numpy"]));
    if python.exists() && ready(&python) {
        return Some(python);
    }
    assert!(
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir)),
        "cannot create a virtual environment at {}",
        dir.display()
    );
    assert!(
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "h5py",
            "numpy",
        ])),
        "cannot install h5py and numpy into {}",
        dir.display()
    );
    assert!(ready(&python), "h5py not importable after installation");
    Some(python)
}

fn write_files(dir: &Path) {
    write_ensemble(&dir.join("ens.h5"), &header(FileKind::Ensemble), &[5, 7], false);

    let n = 37;
    let state = ModelState {
        architecture: r#"{"layers":[],"n_params":37}"#.into(),
        params: (0..n).map(|i| i as f64).collect(),
        adam_m: vec![0.0; n],
        adam_v: vec![1e-8; n],
        adam_step: 3,
        rng_state: vec![u64::MAX, 1, 2, 3],
    };
    let mut w = ModelWriter::create(dir.join("model.h5"), header(FileKind::Model), false).unwrap();
    w.extend_metric("loss", &[1.5, 1.25]);
    w.save(&state).unwrap();

    let record = |name: &str, value: f64| AnalysisRecord {
        observable: name.into(),
        value,
        error: value * 0.01,
        tau_int: 2.5,
        tau_int_error: 0.25,
        window: 12,
        n: 1000,
        gamma: vec![1.0, 0.6, 0.36, 0.2],
    };
    AnalysisFile {
        header: header(FileKind::Analysis),
        inputs: vec![AnalysisInput {
            name: "ens.h5".into(),
            records: vec![record("|M|", 0.5), record("χ₂", 4.0)],
        }],
    }
    .write(dir.join("analysis.h5"), false)
    .unwrap();
}

#[test]
fn h5py_reads_every_file_kind() {
    let Some(python) = python_with_h5py() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h5py_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "h5py check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
