//! Analysis files: Γ-method results per input file and observable.
//!
//! # Layout (schema version 1)
//!
//! Root attributes as in [`crate::header`], with `fieldflow_schema` = `analysis`.
//! For every input (a name such as `ens.h5`) and observable (such as `chi2`):
//!
//! | path                         | type | notes |
//! |------------------------------|------|-------|
//! | `/<input>`                   | group | one per analysed input file |
//! | `/<input>/<observable>`      | group | one per observable |
//! | `…/<observable>@value`       | f64 attribute | estimate |
//! | `…/<observable>@error`       | f64 attribute | its statistical error |
//! | `…/<observable>@tau_int`     | f64 attribute | integrated autocorrelation time |
//! | `…/<observable>@tau_int_error` | f64 attribute | its error |
//! | `…/<observable>@window`      | u64 attribute | summation window W of the Γ method |
//! | `…/<observable>@n`           | u64 attribute | number of measurements |
//! | `…/<observable>/gamma`       | f64 `[len]` | normalized autocorrelation function Γ(t)/Γ(0), t = 0, 1, … |
//!
//! Group names are UTF-8 and must be non-empty, without `/`, and not `.`.
//! The root and the input groups track link creation order, so readers
//! (including h5py) list inputs and observables in the order they were
//! written; for files without that index, readers fall back to name order.

use crate::error::{read_err, write_err, IoError, Result};
use crate::files::{open_fieldflow, prepare_output, publish};
use crate::header::{read_f64_attr, read_u64_attr, write_f64_attr, write_u64_attr};
use crate::header::{FileKind, Header};
use hdf5::plist::group_create::LinkCreationOrder;
use hdf5::plist::link_create::CharEncoding;
use hdf5::types::{FloatSize, TypeDescriptor};
use hdf5::{Group, IndexType, IterationOrder};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Γ-method result of one observable of one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRecord {
    /// Name of the observable (a group name).
    pub observable: String,
    /// Estimate.
    pub value: f64,
    /// Statistical error of the estimate.
    pub error: f64,
    /// Integrated autocorrelation time τ_int.
    pub tau_int: f64,
    /// Error of τ_int.
    pub tau_int_error: f64,
    /// Summation window W.
    pub window: usize,
    /// Number of measurements.
    pub n: usize,
    /// Normalized autocorrelation function Γ(t)/Γ(0) for t = 0, 1, ….
    pub gamma: Vec<f64>,
}

/// The records of one input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisInput {
    /// Name of the input (e.g. the input file's name without directories).
    pub name: String,
    /// One record per observable.
    pub records: Vec<AnalysisRecord>,
}

/// A whole analysis file in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisFile {
    /// Root attributes (`kind` = `Analysis`).
    pub header: Header,
    /// The analysed inputs.
    pub inputs: Vec<AnalysisInput>,
}

fn check_name(name: &str, path: &Path) -> Result<()> {
    let problem = if name.is_empty() {
        "empty"
    } else if name.contains('/') || name == "." {
        "not a valid HDF5 link name"
    } else {
        return Ok(());
    };
    Err(IoError::InvalidName {
        path: path.to_path_buf(),
        name: name.to_owned(),
        problem,
    })
}

/// Member names in creation order if the group tracks it, else in name order.
fn ordered_names(g: &Group) -> hdf5::Result<Vec<String>> {
    g.member_names_by(IndexType::CreationOrder, IterationOrder::Increasing)
        .or_else(|_| g.member_names())
}

const SCALARS: [&str; 4] = ["value", "error", "tau_int", "tau_int_error"];

impl AnalysisFile {
    /// Writes the whole file atomically (`path.partial`, then rename).
    ///
    /// Fails with [`IoError::Exists`] if `path` exists and `force` is false,
    /// and with [`IoError::InvalidName`] for unusable or repeated names.
    ///
    /// # Panics
    /// If `header.kind` is not `Analysis`.
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        assert_eq!(
            self.header.kind,
            FileKind::Analysis,
            "an analysis file needs an analysis header"
        );
        for (i, input) in self.inputs.iter().enumerate() {
            check_name(&input.name, path)?;
            if self.inputs[..i].iter().any(|o| o.name == input.name) {
                return Err(IoError::InvalidName {
                    path: path.to_path_buf(),
                    name: input.name.clone(),
                    problem: "given twice",
                });
            }
            for (j, r) in input.records.iter().enumerate() {
                check_name(&r.observable, path)?;
                if input.records[..j].iter().any(|o| o.observable == r.observable) {
                    return Err(IoError::InvalidName {
                        path: path.to_path_buf(),
                        name: r.observable.clone(),
                        problem: "given twice",
                    });
                }
            }
        }
        let partial = prepare_output(path, force)?;
        if let Err(e) = self.write_partial(&partial) {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        publish(&partial, path, force)
    }

    fn write_partial(&self, partial: &Path) -> Result<()> {
        let werr = write_err(partial);
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.link_creation_order(LinkCreationOrder::Indexed))
            .create_excl(partial)
            .map_err(&werr)?;
        self.header.write(&file, partial)?;
        let w = || -> hdf5::Result<()> {
            for input in &self.inputs {
                let g = file
                    .create_group_builder()
                    .with_gcpl(|p| p.link_creation_order(LinkCreationOrder::Indexed))
                    .char_encoding(CharEncoding::Utf8)
                    .create(input.name.as_str())?;
                for r in &input.records {
                    let o = g
                        .create_group_builder()
                        .char_encoding(CharEncoding::Utf8)
                        .create(r.observable.as_str())?;
                    let values = [r.value, r.error, r.tau_int, r.tau_int_error];
                    for (name, v) in SCALARS.iter().zip(values) {
                        write_f64_attr(&o, name, v)?;
                    }
                    write_u64_attr(&o, "window", r.window as u64)?;
                    write_u64_attr(&o, "n", r.n as u64)?;
                    o.new_dataset_builder().with_data(r.gamma.as_slice()).create("gamma")?;
                }
            }
            file.flush()
        };
        w().map_err(&werr)?;
        file.close().map_err(&werr)
    }

    /// Reads and validates an analysis file.
    pub fn read(path: impl AsRef<Path>) -> Result<AnalysisFile> {
        let path = path.as_ref();
        let (file, header) = open_fieldflow(path, false, &[FileKind::Analysis], "analysis")?;
        let rerr = read_err(path);
        let mut inputs = Vec::new();
        for name in ordered_names(&file).map_err(&rerr)? {
            let g = file.group(&name).map_err(|_| IoError::Malformed {
                path: path.to_path_buf(),
                problem: format!("/{name} is not a group"),
            })?;
            let mut records = Vec::new();
            for obs in ordered_names(&g).map_err(&rerr)? {
                let o = g.group(&obs).map_err(|_| IoError::Malformed {
                    path: path.to_path_buf(),
                    problem: format!("/{name}/{obs} is not a group"),
                })?;
                let mut v = [0.0; 4];
                for (slot, attr) in v.iter_mut().zip(SCALARS) {
                    *slot = read_f64_attr(&o, attr, path)?;
                }
                if !o.link_exists("gamma") {
                    return Err(IoError::Missing {
                        path: path.to_path_buf(),
                        what: format!("dataset /{name}/{obs}/gamma"),
                    });
                }
                let ds = o.dataset("gamma").map_err(&rerr)?;
                let t = ds.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)?;
                if t != TypeDescriptor::Float(FloatSize::U8) || ds.ndim() != 1 {
                    return Err(IoError::Malformed {
                        path: path.to_path_buf(),
                        problem: format!("/{name}/{obs}/gamma is not a 1-d f64 array"),
                    });
                }
                records.push(AnalysisRecord {
                    observable: obs,
                    value: v[0],
                    error: v[1],
                    tau_int: v[2],
                    tau_int_error: v[3],
                    window: read_u64_attr(&o, "window", path)? as usize,
                    n: read_u64_attr(&o, "n", path)? as usize,
                    gamma: ds.read_raw().map_err(&rerr)?,
                });
            }
            inputs.push(AnalysisInput { name, records });
        }
        Ok(AnalysisFile { header, inputs })
    }
}
