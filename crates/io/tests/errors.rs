//! Bad files give one-line errors that name the file, never panics.

mod common;

use common::*;
use fieldflow_io::{inspect, AnalysisFile, EnsembleReader, FileKind, IoError, ModelFile, SCHEMA_VERSION};
use std::path::Path;

/// Opens `path` with every reader; all must fail with the same kind of error.
fn all_readers_fail(path: &Path, check: impl Fn(&IoError) -> bool) -> IoError {
    let e1 = EnsembleReader::open(path).expect_err("ensemble reader");
    let e2 = ModelFile::read(path).expect_err("model reader");
    let e3 = AnalysisFile::read(path).expect_err("analysis reader");
    for e in [&e1, &e2, &e3] {
        assert!(check(e), "unexpected error: {e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line message: {msg}");
        assert!(
            msg.starts_with(&path.display().to_string()),
            "message does not name the file: {msg}"
        );
        assert_eq!(e.path(), path);
    }
    e1
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.h5");
    let e = all_readers_fail(&path, |e| matches!(e, IoError::NotFound { .. }));
    assert_eq!(e.to_string(), format!("{}: no such file", path.display()));
    assert!(matches!(inspect(&path), Err(IoError::NotFound { .. })));
}

#[test]
fn not_an_hdf5_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    std::fs::write(&path, "step,log_p\n0,-1.5\n1,-1.7\n".repeat(100)).unwrap();
    let e = all_readers_fail(&path, |e| matches!(e, IoError::NotHdf5 { .. }));
    assert_eq!(e.to_string(), format!("{}: not an HDF5 file", path.display()));
    assert!(matches!(inspect(&path), Err(IoError::NotHdf5 { .. })));
    // A directory is not an HDF5 file either.
    all_readers_fail(dir.path(), |e| matches!(e, IoError::NotHdf5 { .. }));
}

#[test]
fn hdf5_file_from_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.h5");
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset_builder()
            .with_data(&[1.0f64, 2.0, 3.0])
            .create("data")
            .unwrap();
        f.new_attr::<u64>()
            .create("version")
            .unwrap()
            .write_scalar(&3u64)
            .unwrap();
    }
    let e = all_readers_fail(&path, |e| matches!(e, IoError::NotFieldflow { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a fieldflow file (missing attribute fieldflow_schema)",
            path.display()
        )
    );
    assert!(matches!(inspect(&path), Err(IoError::NotFieldflow { .. })));
}

#[test]
fn truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    write_ensemble(&path, &header(FileKind::Ensemble), &[40, 40], false);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 20_000, "{}", bytes.len());
    for keep in [bytes.len() / 2, bytes.len() - 1, 100, 4, 0] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let e = all_readers_fail(&path, |e| matches!(e, IoError::Corrupt { .. }));
        assert!(e.to_string().contains("truncated or corrupt HDF5 file"), "{e}");
        assert!(matches!(inspect(&path), Err(IoError::Corrupt { .. })));
    }
    // The signature followed by garbage.
    let mut garbage = bytes[..8].to_vec();
    garbage.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&path, garbage).unwrap();
    all_readers_fail(&path, |e| matches!(e, IoError::Corrupt { .. }));
}

#[test]
fn newer_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    write_ensemble(&path, &header(FileKind::Ensemble), &[2], false);
    {
        let f = hdf5::File::open_rw(&path).unwrap();
        f.delete_attr("schema_version").unwrap();
        f.new_attr::<u64>()
            .create("schema_version")
            .unwrap()
            .write_scalar(&(SCHEMA_VERSION + 1))
            .unwrap();
    }
    let e = EnsembleReader::open(&path).err().unwrap();
    assert!(matches!(e, IoError::NewerSchema { found: 2, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: schema_version 2 is newer than this fieldflow supports (1); upgrade fieldflow",
            path.display()
        )
    );
    // inspect still shows what it can.
    let s = inspect(&path).unwrap();
    assert_eq!(s.header.schema_version, 2);
}

#[test]
fn wrong_kind_and_missing_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    write_ensemble(&path, &header(FileKind::Ensemble), &[2], false);
    let e = ModelFile::read(&path).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!("{}: is a fieldflow ensemble file, expected model", path.display())
    );
    assert!(matches!(AnalysisFile::read(&path), Err(IoError::WrongKind { .. })));

    hdf5::File::open_rw(&path).unwrap().unlink("configs").unwrap();
    let e = EnsembleReader::open(&path).err().unwrap();
    assert_eq!(e.to_string(), format!("{}: missing dataset /configs", path.display()));

    let path = dir.path().join("ens2.h5");
    write_ensemble(&path, &header(FileKind::Ensemble), &[2], false);
    hdf5::File::open_rw(&path).unwrap().delete_attr("seed").unwrap();
    let e = EnsembleReader::open(&path).err().unwrap();
    assert_eq!(e.to_string(), format!("{}: missing attribute seed", path.display()));

    // A series whose length disagrees with the checkpoint.
    let path = dir.path().join("ens3.h5");
    write_ensemble(&path, &header(FileKind::Ensemble), &[4], false);
    hdf5::File::open_rw(&path)
        .unwrap()
        .dataset("log_p")
        .unwrap()
        .resize([2, 3])
        .unwrap();
    let e = EnsembleReader::open(&path).err().unwrap();
    assert!(matches!(e, IoError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("/log_p"), "{e}");
}
