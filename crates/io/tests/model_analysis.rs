//! Model and analysis files, and `inspect`.

mod common;

use common::*;
use fieldflow_io::{
    inspect, partial_path, AnalysisFile, AnalysisInput, AnalysisRecord, EnsembleWriter, FileKind, IoError, ModelFile,
    ModelState, ModelWriter,
};

fn state(step: u64) -> ModelState {
    let n = 37;
    ModelState {
        architecture: r#"{"layers":[{"kind":"affine_coupling","mask":"checkerboard"}],"n_params":37}"#.into(),
        params: (0..n).map(|i| (i as f64 + step as f64).sin()).collect(),
        adam_m: (0..n).map(|i| i as f64 * 1e-3).collect(),
        adam_v: (0..n).map(|i| i as f64 * 1e-6).collect(),
        adam_step: step,
        rng_state: vec![u64::MAX, 1, 2, step],
    }
}

#[test]
fn model_checkpoints_round_trip_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.h5");
    // One header for writing and comparing (its creation time has a
    // resolution of a second: a second header could differ).
    let written = header(FileKind::Model);
    let mut w = ModelWriter::create(&path, written.clone(), false).unwrap();
    w.push_metric("loss", 1.5);
    w.push_metric("loss", 1.25);
    w.extend_metric("ess", &[0.1]);
    w.save(&state(2)).unwrap();
    w.push_metric("loss", 1.0);
    w.save(&state(3)).unwrap(); // replaces its own checkpoint without force
    assert!(!partial_path(&path).exists());
    drop(w);

    let m = ModelFile::read(&path).unwrap();
    assert_eq!(m.header, written);
    assert_eq!(m.state, state(3));
    assert_eq!(m.metrics["loss"], vec![1.5, 1.25, 1.0]);
    assert_eq!(m.metrics["ess"], vec![0.1]);

    let (mut w, s) = ModelWriter::resume(&path).unwrap();
    assert_eq!(s, state(3));
    w.push_metric("loss", 0.5);
    w.save(&state(4)).unwrap();
    let m = ModelFile::read(&path).unwrap();
    assert_eq!(m.state.adam_step, 4);
    assert_eq!(m.metrics["loss"], vec![1.5, 1.25, 1.0, 0.5]);

    // Existing output: refused without force, replaced at the first save with force.
    let before = std::fs::read(&path).unwrap();
    let e = ModelWriter::create(&path, header(FileKind::Model), false)
        .err()
        .unwrap();
    assert!(matches!(e, IoError::Exists { .. }));
    let mut w = ModelWriter::create(&path, header(FileKind::Model), true).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    w.save(&state(0)).unwrap();
    let m = ModelFile::read(&path).unwrap();
    assert_eq!(m.state, state(0));
    assert!(m.metrics.is_empty());

    // The one-shot writer.
    let other = dir.path().join("copy.h5");
    m.write(&other, false).unwrap();
    assert_eq!(ModelFile::read(&other).unwrap(), m);
    assert!(matches!(m.write(&other, false), Err(IoError::Exists { .. })));
    let mut bad = m.clone();
    bad.metrics.insert("a/b".into(), vec![]);
    assert!(matches!(
        bad.write(dir.path().join("bad.h5"), false),
        Err(IoError::InvalidName { .. })
    ));
}

fn record(name: &str, x: f64) -> AnalysisRecord {
    AnalysisRecord {
        observable: name.into(),
        value: x,
        error: x * 0.01,
        tau_int: 2.5,
        tau_int_error: 0.25,
        window: 12,
        n: 1000,
        gamma: vec![1.0, 0.6, 0.36, 0.2],
    }
}

#[test]
fn analysis_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("analysis.h5");
    let file = AnalysisFile {
        header: header(FileKind::Analysis),
        inputs: vec![
            AnalysisInput {
                name: "ens.h5".into(),
                records: vec![record("|M|", 0.5), record("chi2", 3.0), record("χ₂", 4.0)],
            },
            AnalysisInput {
                name: "samples.h5".into(),
                records: vec![record("chi2", 3.1)],
            },
        ],
    };
    file.write(&path, false).unwrap();
    let back = AnalysisFile::read(&path).unwrap();
    assert_eq!(back, file); // in the order written, not name order
    assert!(matches!(file.write(&path, false), Err(IoError::Exists { .. })));
    file.write(&path, true).unwrap();

    let mut bad = file.clone();
    bad.inputs[0].name = "runs/ens.h5".into();
    let e = bad.write(dir.path().join("bad.h5"), false).err().unwrap();
    assert!(matches!(e, IoError::InvalidName { .. }), "{e}");
    let mut bad = file.clone();
    bad.inputs[1].records.push(record("chi2", 1.0));
    assert!(bad.write(dir.path().join("bad.h5"), false).is_err());
    assert!(!dir.path().join("bad.h5").exists());
}

#[test]
fn inspect_summarizes_a_partial_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let mut w = EnsembleWriter::create(&path, &header(FileKind::Ensemble), &spec(), false).unwrap();
    append(&mut w, 0, 12).unwrap();
    drop(w);
    let s = inspect(partial_path(&path)).unwrap();
    assert!(s.partial);
    assert_eq!(s.header.seed, 42);
    let configs = s.datasets.iter().find(|d| d.path == "/configs").unwrap();
    assert_eq!(
        (configs.shape.as_slice(), configs.dtype.as_str()),
        (&[2, 12, 4, 4][..], "f64")
    );
    let acc = s.datasets.iter().find(|d| d.path == "/accepted").unwrap();
    assert_eq!(acc.dtype, "u8");
    let text = s.to_string();
    for needle in [
        "fieldflow ensemble file, schema version 1",
        "UNFINISHED",
        "program   fieldflow 0.1.0",
        "seed      42",
        "target    phi4 d=2 L=4x4",
        "| [lattice]",
        "more lines)",
        "sampler = \"hmc\"",
        "step_size = 0.1",
        "/checkpoint/state",
        "[2, 16]",
        "/checkpoint@n_cfg_written = 12",
        "/checkpoint@chains = \"{\\\"n_steps\\\":12",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("n_leapfrog = 10\n[run]"), "config not abbreviated");

    // Model and analysis files are summarized too.
    let mpath = dir.path().join("model.h5");
    let mut w = ModelWriter::create(&mpath, header(FileKind::Model), false).unwrap();
    w.push_metric("loss", 1.0);
    w.save(&state(1)).unwrap();
    let text = inspect(&mpath).unwrap().to_string();
    assert!(text.contains("fieldflow model file"), "{text}");
    assert!(text.contains("/adam/step"), "{text}");
    assert!(text.contains("/metrics/loss"), "{text}");
    assert!(text.contains("/params@architecture"), "{text}");
    assert!(!inspect(&mpath).unwrap().partial);
}
