//! Ensemble files: round trip, blocks + resume, atomic output.

mod common;

use common::*;
use fieldflow_io::{
    partial_path, AttrValue, EnsembleReader, EnsembleSpec, EnsembleWriter, FileKind, IoError, SeriesSpec, SeriesType,
};
use ndarray::{Array2, Array3};
use std::path::Path;

/// Every array of a file, for bit-for-bit comparisons.
#[derive(Debug, PartialEq)]
struct Contents {
    configs: Array3<f64>,
    series: Vec<Array2<f64>>,
    accepted: Array2<u8>,
    chains: String,
    state: Array2<f64>,
}

fn contents(path: &Path) -> Contents {
    let r = EnsembleReader::open(path).unwrap();
    let series = r.series_names().iter().map(|n| r.series(n).unwrap()).collect();
    let cp = r.checkpoint().unwrap().unwrap();
    Contents {
        configs: r.configs_flat().unwrap(),
        series,
        accepted: r.series_u8("accepted").unwrap(),
        chains: cp.chains,
        state: cp.state,
    }
}

#[test]
fn round_trip_of_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let h = header(FileKind::Ensemble);
    let mut w = EnsembleWriter::create(&path, &h, &spec(), false).unwrap();
    assert!(partial_path(&path).exists() && !path.exists());
    let mut t = 0;
    for k in [4, 3, 5] {
        append(&mut w, t, k).unwrap();
        t += k;
        assert_eq!(w.n_cfg(), t);
    }
    w.set_attr("acceptance", 0.75).unwrap();
    assert_eq!(w.finish().unwrap(), path);
    assert!(path.exists() && !partial_path(&path).exists());

    let r = EnsembleReader::open(&path).unwrap();
    let mut h2 = h.clone();
    h2.extra.insert("acceptance".into(), AttrValue::F64(0.75));
    assert_eq!(r.header(), &h2);
    assert_eq!(r.kind(), FileKind::Ensemble);
    assert!(!r.is_partial());
    assert_eq!((r.n_chains(), r.n_cfg(), r.dim()), (2, 12, 16));
    assert_eq!(r.shape(), &[4, 4]);
    assert_eq!(r.series_names(), vec!["accepted", "delta_h", "log_p"]);
    assert_eq!(r.spec().series_type("accepted"), Some(SeriesType::U8));

    let all = block_data(0, 12);
    assert_eq!(r.configs_flat().unwrap(), all.configs);
    let full = r.configs().unwrap();
    assert_eq!(full.shape(), &[2, 12, 4, 4]);
    assert_eq!(full[[1, 7, 2, 3]], value(1, 7, 2 * 4 + 3));
    assert_eq!(r.chain_configs(1).unwrap(), all.configs.index_axis(ndarray::Axis(0), 1));
    assert_eq!(r.series("log_p").unwrap(), all.log_p);
    assert_eq!(r.series("delta_h").unwrap(), all.delta_h);
    assert_eq!(r.series_u8("accepted").unwrap(), all.accepted);
    assert_eq!(r.series("accepted").unwrap(), all.accepted.mapv(f64::from));
    assert!(matches!(r.series_u8("log_p"), Err(IoError::Malformed { .. })));
    assert!(matches!(r.series("log_q"), Err(IoError::Missing { .. })));
    let cp = r.checkpoint().unwrap().unwrap();
    assert_eq!(cp.n_cfg, 12);
    assert_eq!(cp.state, block_data(7, 5).state);
    assert_eq!(cp.chains, chains_json(12));
}

#[test]
fn vector_targets_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.h5");
    let spec = EnsembleSpec::new(3, [5]).with_series(SeriesSpec::f64("log_w"));
    let w = EnsembleWriter::create(&path, &header(FileKind::Samples), &spec, false).unwrap();
    w.finish().unwrap();
    let r = EnsembleReader::open(&path).unwrap();
    assert_eq!(r.kind(), FileKind::Samples);
    assert_eq!((r.n_chains(), r.n_cfg(), r.dim()), (3, 0, 5));
    assert_eq!(r.configs_flat().unwrap().dim(), (3, 0, 5));
    assert_eq!(r.chain_configs(2).unwrap().dim(), (0, 5));
    assert_eq!(r.series("log_w").unwrap().dim(), (3, 0));
    assert_eq!(r.checkpoint().unwrap(), None);
}

#[test]
fn blocks_with_resume_equal_a_single_write() {
    let dir = tempfile::tempdir().unwrap();
    let h = header(FileKind::Ensemble);
    let single = dir.path().join("single.h5");
    write_ensemble(&single, &h, &[15], false);

    let path = dir.path().join("resumed.h5");
    let mut w = EnsembleWriter::create(&path, &h, &spec(), false).unwrap();
    append(&mut w, 0, 5).unwrap();
    drop(w); // the run is killed after its first block

    // A partial file is readable and shows the complete blocks.
    let r = EnsembleReader::open(partial_path(&path)).unwrap();
    assert!(r.is_partial());
    assert_eq!(r.n_cfg(), 5);
    drop(r);

    let (mut w, resumed) = EnsembleWriter::resume(&path, false).unwrap();
    assert_eq!(resumed.header, h);
    assert_eq!(resumed.n_cfg, 5);
    let cp = resumed.checkpoint.unwrap();
    assert_eq!(cp.state, block_data(0, 5).state);
    assert_eq!(cp.chains, chains_json(5));
    let mut sorted = spec().series;
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(resumed.spec.series, sorted);
    append(&mut w, 5, 4).unwrap();
    drop(w);

    // Second kill, this time in the middle of a block: datasets grew, but
    // n_cfg_written was not updated. Simulate by growing them by hand.
    {
        let f = hdf5::File::open_rw(partial_path(&path)).unwrap();
        let c = f.dataset("configs").unwrap();
        c.resize([2, 11, 4, 4]).unwrap();
        let lp = f.dataset("log_p").unwrap();
        lp.resize([2, 11]).unwrap();
        let slab = hdf5::Hyperslab::from(vec![hdf5::SliceOrIndex::from(..), hdf5::SliceOrIndex::from(9..11)]);
        lp.write_slice(&Array2::<f64>::from_elem((2, 2), 7.0), slab).unwrap();
    }
    assert_eq!(EnsembleReader::open(partial_path(&path)).unwrap().n_cfg(), 9);
    let (mut w, resumed) = EnsembleWriter::resume(&path, false).unwrap();
    assert_eq!(resumed.n_cfg, 9);
    append(&mut w, 9, 6).unwrap();
    w.finish().unwrap();

    let a = contents(&single);
    let b = contents(&path);
    assert_eq!(a.configs.len(), 2 * 15 * 16);
    // Bit for bit: compare the f64 bit patterns, not just values.
    let bits = |x: &Array3<f64>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.configs), bits(&b.configs));
    assert_eq!(a, b);
    assert_eq!(
        EnsembleReader::open(&path).unwrap().header(),
        EnsembleReader::open(&single).unwrap().header()
    );
}

#[test]
fn refuses_to_overwrite_without_force_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.h5");
    let h = header(FileKind::Ensemble);
    write_ensemble(&path, &h, &[3], false);
    let before = std::fs::read(&path).unwrap();

    let err = EnsembleWriter::create(&path, &h, &spec(), false).err().unwrap();
    assert!(matches!(err, IoError::Exists { .. }));
    assert_eq!(
        err.to_string(),
        format!("{} exists; pass --force to overwrite", path.display())
    );
    assert!(!partial_path(&path).exists());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(EnsembleReader::open(&path).unwrap().n_cfg(), 3);
}

#[test]
fn force_replaces_only_on_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.h5");
    let h = header(FileKind::Ensemble);
    write_ensemble(&path, &h, &[3], false);
    let before = std::fs::read(&path).unwrap();

    // A forced run that dies before finishing leaves the old file untouched...
    let mut w = EnsembleWriter::create(&path, &h, &spec(), true).unwrap();
    append(&mut w, 0, 8).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    drop(w);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // ...its .partial blocks a new run without force, but not a resume...
    let err = EnsembleWriter::create(dir.path().join("out.h5"), &h, &spec(), false)
        .err()
        .unwrap();
    assert!(matches!(err, IoError::Exists { .. }));
    assert!(matches!(
        EnsembleWriter::resume(&path, false).err().unwrap(),
        IoError::Exists { .. }
    ));

    // ...and a forced resume replaces the old file at finish.
    let (mut w, resumed) = EnsembleWriter::resume(&path, true).unwrap();
    assert_eq!(resumed.n_cfg, 8);
    append(&mut w, 8, 2).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    w.finish().unwrap();
    assert_eq!(EnsembleReader::open(&path).unwrap().n_cfg(), 10);
    assert!(!partial_path(&path).exists());
}

#[test]
fn stale_partial_needs_resume_or_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let h = header(FileKind::Ensemble);
    let mut w = EnsembleWriter::create(&path, &h, &spec(), false).unwrap();
    append(&mut w, 0, 2).unwrap();
    drop(w);
    let err = EnsembleWriter::create(&path, &h, &spec(), false).err().unwrap();
    assert!(matches!(err, IoError::PartialExists { .. }));
    assert!(err.to_string().contains("ens.h5.partial exists"));
    // Forcing starts over.
    let w = EnsembleWriter::create(&path, &h, &spec(), true).unwrap();
    assert_eq!(w.n_cfg(), 0);
    w.finish().unwrap();
    assert_eq!(EnsembleReader::open(&path).unwrap().n_cfg(), 0);
}

#[test]
fn resume_without_partial_names_the_partial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let err = EnsembleWriter::resume(&path, false).err().unwrap();
    assert!(matches!(err, IoError::NothingToResume { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no unfinished run to resume (file not found)",
            partial_path(&path).display()
        )
    );
}

#[test]
fn bad_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let h = header(FileKind::Ensemble);
    for bad in ["", "a/b", "configs", "checkpoint"] {
        let spec = EnsembleSpec::new(1, [2]).with_series(SeriesSpec::f64(bad));
        let err = EnsembleWriter::create(&path, &h, &spec, false).err().unwrap();
        assert!(matches!(err, IoError::InvalidName { .. }), "{err}");
    }
    let spec = EnsembleSpec::new(1, [2])
        .with_series(SeriesSpec::f64("x"))
        .with_series(SeriesSpec::u8("x"));
    assert!(EnsembleWriter::create(&path, &h, &spec, false).is_err());
    let h = h.with_attr("seed", 3u64);
    let err = EnsembleWriter::create(&path, &h, &EnsembleSpec::new(1, [2]), false)
        .err()
        .unwrap();
    assert!(matches!(err, IoError::InvalidName { .. }), "{err}");
    assert!(!partial_path(&path).exists());
}

#[test]
#[should_panic(expected = "block lacks series")]
fn missing_series_in_a_block_is_a_programming_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens.h5");
    let mut w = EnsembleWriter::create(&path, &header(FileKind::Ensemble), &spec(), false).unwrap();
    let b = block_data(0, 1);
    let _ = w.append(&fieldflow_io::Block {
        configs: b.configs.view(),
        series: &[],
        state: b.state.view(),
        chains: "{}",
    });
}
