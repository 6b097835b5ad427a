//! A run killed without any cleanup (abort) keeps every complete block and
//! can be resumed to the same result as an uninterrupted run.
//!
//! The test re-executes its own binary as a child that writes two blocks,
//! starts growing a third, and aborts.

mod common;

use common::*;
use fieldflow_io::{partial_path, EnsembleReader, EnsembleWriter, FileKind};
use std::path::PathBuf;
use std::process::Command;

const CHILD_ENV: &str = "FIELDFLOW_IO_KILLED_CHILD";

#[test]
fn child_writer_that_aborts() {
    let Some(path) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return; // only does something when run by the parent test
    };
    let mut w = EnsembleWriter::create(&path, &header(FileKind::Ensemble), &spec(), false).unwrap();
    append(&mut w, 0, 6).unwrap();
    append(&mut w, 6, 4).unwrap();
    // Start a third block by hand: the datasets grow, the checkpoint does not.
    {
        let f = hdf5::File::open_rw(partial_path(&path)).unwrap();
        f.dataset("configs").unwrap().resize([2, 13, 4, 4]).unwrap();
        f.flush().unwrap();
    }
    std::process::abort();
}

#[test]
fn resume_after_abort_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer_that_aborts", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "the child should have aborted");
    assert!(!path.exists());

    let r = EnsembleReader::open(partial_path(&path)).unwrap();
    assert_eq!(r.n_cfg(), 10);
    assert_eq!(r.configs_flat().unwrap(), block_data(0, 10).configs);
    drop(r);

    let (mut w, resumed) = EnsembleWriter::resume(partial_path(&path), false).unwrap();
    assert_eq!(resumed.n_cfg, 10);
    assert_eq!(resumed.checkpoint.unwrap().chains, chains_json(10));
    append(&mut w, 10, 5).unwrap();
    assert_eq!(w.finish().unwrap(), path);

    let single = dir.path().join("single.h5");
    write_ensemble(&single, &header(FileKind::Ensemble), &[15], false);
    let (a, b) = (
        EnsembleReader::open(&single).unwrap(),
        EnsembleReader::open(&path).unwrap(),
    );
    assert_eq!(a.configs().unwrap(), b.configs().unwrap());
    for name in a.series_names() {
        assert_eq!(a.series(name).unwrap(), b.series(name).unwrap());
    }
    assert_eq!(a.checkpoint().unwrap(), b.checkpoint().unwrap());
}
