//! Model files: a trained flow's parameters, optimizer and RNG state, metrics.
//!
//! # Layout (schema version 1)
//!
//! Root attributes as in [`crate::header`], with `fieldflow_schema` = `model`.
//!
//! | path                     | type | shape        | notes |
//! |--------------------------|------|--------------|-------|
//! | `/params`                | f64  | `[n_params]` | the flat parameter vector |
//! | `/params@architecture`   | UTF-8 string attribute | | JSON enough to rebuild the flow (opaque to this crate) |
//! | `/adam/m`                | f64  | `[n_params]` | Adam's first-moment estimate |
//! | `/adam/v`                | f64  | `[n_params]` | Adam's second-moment estimate |
//! | `/adam/step`             | u64  | scalar       | optimizer steps taken |
//! | `/rng_state`             | u64  | `[k]`        | the trainer's RNG state, any length |
//! | `/metrics`               | group |             | always present, possibly empty |
//! | `/metrics/<name>`        | f64  | `[len]`      | a training curve (loss parts, ESS, acceptance, …); chunked `[1024]`, unlimited; lengths may differ |
//!
//! # Writing
//!
//! A model file is always written whole: [`ModelWriter::save`] writes the
//! complete checkpoint with all metrics accumulated so far to `NAME.partial`
//! and renames it to `NAME`, so `NAME` is always a complete checkpoint. The
//! first save of a [`ModelWriter::create`]d writer replaces an existing `NAME`
//! only with `force` (and the check happens at creation too, so a training
//! run fails before it starts); later saves replace the writer's own previous
//! checkpoint.

use crate::error::{read_err, write_err, IoError, Result};
use crate::files::{open_fieldflow, prepare_output, publish};
use crate::header::{read_str_attr, write_str_attr, FileKind, Header};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{Extent, SimpleExtents};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Steps per chunk of a metrics dataset.
const METRICS_CHUNK: usize = 1024;

/// Everything needed to rebuild a flow and continue training it bit-identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// JSON description of the architecture (stored as `/params@architecture`).
    pub architecture: String,
    /// Flat parameter vector.
    pub params: Vec<f64>,
    /// Adam's first moments, same length as `params`.
    pub adam_m: Vec<f64>,
    /// Adam's second moments, same length as `params`.
    pub adam_v: Vec<f64>,
    /// Optimizer steps taken.
    pub adam_step: u64,
    /// The trainer's RNG state.
    pub rng_state: Vec<u64>,
}

impl ModelState {
    /// A fingerprint of the model itself — the architecture text and the
    /// parameters' bits, not the optimizer state — as `fnv1a64:` + 16 hex
    /// digits (64-bit FNV-1a: stable across platforms and Rust versions).
    /// Sample files record it, so a file names the exact model that made it
    /// and a resume can refuse a model that changed in between.
    ///
    /// ```
    /// # use fieldflow_io::ModelState;
    /// let mut m = ModelState { architecture: "{}".into(), params: vec![1.0, 2.0], adam_m: vec![],
    ///                          adam_v: vec![], adam_step: 0, rng_state: vec![] };
    /// let a = m.fingerprint();
    /// m.params[1] = 2.0 + 1e-15;
    /// assert!(a.starts_with("fnv1a64:") && a != m.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let bytes = self
            .architecture
            .bytes()
            .chain(self.params.iter().flat_map(|p| p.to_le_bytes()));
        let h = bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        format!("fnv1a64:{h:016x}")
    }
}

/// A whole model file in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Root attributes (`kind` = `Model`).
    pub header: Header,
    /// Parameters, optimizer and RNG state.
    pub state: ModelState,
    /// Training curves by name.
    pub metrics: BTreeMap<String, Vec<f64>>,
}

fn malformed(path: &Path, problem: String) -> IoError {
    IoError::Malformed {
        path: path.to_path_buf(),
        problem,
    }
}

impl ModelFile {
    /// Reads and validates a model file.
    pub fn read(path: impl AsRef<Path>) -> Result<ModelFile> {
        let path = path.as_ref();
        let (file, header) = open_fieldflow(path, false, &[FileKind::Model], "model")?;
        let rerr = read_err(path);
        let dataset = |name: &str, want: TypeDescriptor, ndim: usize| -> Result<hdf5::Dataset> {
            if !file.link_exists(name) {
                return Err(IoError::Missing {
                    path: path.to_path_buf(),
                    what: format!("dataset /{name}"),
                });
            }
            let ds = file.dataset(name).map_err(&rerr)?;
            let found = ds.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)?;
            if found != want || ds.ndim() != ndim {
                return Err(malformed(
                    path,
                    format!("/{name} is {found} {:?}, expected {want} of rank {ndim}", ds.shape()),
                ));
            }
            Ok(ds)
        };
        let f64_t = TypeDescriptor::Float(FloatSize::U8);
        let u64_t = TypeDescriptor::Unsigned(IntSize::U8);
        let params_ds = dataset("params", f64_t.clone(), 1)?;
        let params = params_ds.read_raw::<f64>().map_err(&rerr)?;
        let architecture = read_str_attr(&params_ds, "architecture", path)?;
        let adam_m = dataset("adam/m", f64_t.clone(), 1)?.read_raw::<f64>().map_err(&rerr)?;
        let adam_v = dataset("adam/v", f64_t.clone(), 1)?.read_raw::<f64>().map_err(&rerr)?;
        if adam_m.len() != params.len() || adam_v.len() != params.len() {
            return Err(malformed(
                path,
                format!(
                    "/adam/m and /adam/v have lengths {} and {}, /params has {}",
                    adam_m.len(),
                    adam_v.len(),
                    params.len()
                ),
            ));
        }
        let adam_step = dataset("adam/step", u64_t.clone(), 0)?
            .read_scalar::<u64>()
            .map_err(&rerr)?;
        let rng_state = dataset("rng_state", u64_t, 1)?.read_raw::<u64>().map_err(&rerr)?;
        if !file.link_exists("metrics") {
            return Err(IoError::Missing {
                path: path.to_path_buf(),
                what: "group /metrics".into(),
            });
        }
        let group = file.group("metrics").map_err(&rerr)?;
        let mut metrics = BTreeMap::new();
        for name in group.member_names().map_err(&rerr)? {
            let ds = dataset(&format!("metrics/{name}"), f64_t.clone(), 1)?;
            metrics.insert(name, ds.read_raw::<f64>().map_err(&rerr)?);
        }
        Ok(ModelFile {
            header,
            state: ModelState {
                architecture,
                params,
                adam_m,
                adam_v,
                adam_step,
                rng_state,
            },
            metrics,
        })
    }

    /// Writes the whole file atomically (`path.partial`, then rename).
    ///
    /// Fails with [`IoError::Exists`] if `path` exists and `force` is false.
    ///
    /// # Panics
    /// If `header.kind` is not `Model`, or `adam_m`/`adam_v` differ in length from `params`.
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        write_model(path.as_ref(), &self.header, &self.state, &self.metrics, force)
    }
}

/// Writes a complete model file to `path.partial` and renames it to `path`.
fn write_model(
    path: &Path,
    header: &Header,
    state: &ModelState,
    metrics: &BTreeMap<String, Vec<f64>>,
    force: bool,
) -> Result<()> {
    assert_eq!(header.kind, FileKind::Model, "a model file needs a model header");
    let s = state;
    assert!(
        s.adam_m.len() == s.params.len() && s.adam_v.len() == s.params.len(),
        "Adam moments must have the length of the parameter vector"
    );
    check_metric_names(metrics, path)?;
    // A stale .partial of a model is never resumable: always discard it.
    let partial = match prepare_output(path, force) {
        Err(IoError::PartialExists { path: p }) => {
            std::fs::remove_file(&p).map_err(|source| IoError::Fs {
                path: p.clone(),
                action: "remove".into(),
                source,
            })?;
            p
        }
        other => other?,
    };
    if let Err(e) = write_partial(&partial, header, state, metrics) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    publish(&partial, path, force)
}

fn write_partial(partial: &Path, header: &Header, s: &ModelState, metrics: &BTreeMap<String, Vec<f64>>) -> Result<()> {
    let werr = write_err(partial);
    let file = hdf5::File::create_excl(partial).map_err(&werr)?;
    header.write(&file, partial)?;
    let w = || -> hdf5::Result<()> {
        let params = file
            .new_dataset_builder()
            .with_data(s.params.as_slice())
            .create("params")?;
        write_str_attr(&params, "architecture", &s.architecture)?;
        let adam = file.create_group("adam")?;
        adam.new_dataset_builder().with_data(s.adam_m.as_slice()).create("m")?;
        adam.new_dataset_builder().with_data(s.adam_v.as_slice()).create("v")?;
        adam.new_dataset::<u64>().create("step")?.write_scalar(&s.adam_step)?;
        file.new_dataset_builder()
            .with_data(s.rng_state.as_slice())
            .create("rng_state")?;
        let group = file.create_group("metrics")?;
        for (name, values) in metrics {
            let ds = group
                .new_dataset::<f64>()
                .chunk(METRICS_CHUNK)
                .shape(SimpleExtents::from_vec(vec![Extent::new(values.len(), None)]))
                .create(name.as_str())?;
            if !values.is_empty() {
                ds.write_raw(values.as_slice())?;
            }
        }
        file.flush()
    };
    w().map_err(&werr)?;
    file.close().map_err(&werr)
}

fn check_metric_names(metrics: &BTreeMap<String, Vec<f64>>, path: &Path) -> Result<()> {
    for name in metrics.keys() {
        let problem = if name.is_empty() {
            "empty"
        } else if name.contains('/') || name == "." {
            "not a valid HDF5 link name"
        } else {
            continue;
        };
        return Err(IoError::InvalidName {
            path: path.to_path_buf(),
            name: name.clone(),
            problem,
        });
    }
    Ok(())
}

/// Saves the checkpoints of one training run, accumulating its metrics.
#[derive(Debug)]
pub struct ModelWriter {
    path: PathBuf,
    header: Header,
    replace: bool,
    metrics: BTreeMap<String, Vec<f64>>,
}

impl ModelWriter {
    /// Prepares to write `path`; fails now with [`IoError::Exists`] if it exists and `force` is false.
    ///
    /// # Panics
    /// If `header.kind` is not `Model`.
    pub fn create(path: impl AsRef<Path>, header: Header, force: bool) -> Result<Self> {
        let path = path.as_ref();
        assert_eq!(header.kind, FileKind::Model, "a model file needs a model header");
        if !force && path.exists() {
            return Err(IoError::Exists {
                path: path.to_path_buf(),
            });
        }
        Ok(ModelWriter {
            path: path.to_path_buf(),
            header,
            replace: force,
            metrics: BTreeMap::new(),
        })
    }

    /// Continues training from the checkpoint in `path`: returns the writer
    /// (holding the metrics so far; saves replace `path`) and the saved state.
    pub fn resume(path: impl AsRef<Path>) -> Result<(Self, ModelState)> {
        let path = path.as_ref();
        let model = ModelFile::read(path)?;
        let writer = ModelWriter {
            path: path.to_path_buf(),
            header: model.header,
            replace: true,
            metrics: model.metrics,
        };
        Ok((writer, model.state))
    }

    /// The output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mutable access to the root attributes written with every save.
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    /// Appends one value to the metric `name` (created empty if new).
    pub fn push_metric(&mut self, name: &str, value: f64) {
        self.metrics.entry(name.to_owned()).or_default().push(value);
    }

    /// Appends values to the metric `name` (created if new).
    pub fn extend_metric(&mut self, name: &str, values: &[f64]) {
        self.metrics
            .entry(name.to_owned())
            .or_default()
            .extend_from_slice(values);
    }

    /// The metrics accumulated so far.
    pub fn metrics(&self) -> &BTreeMap<String, Vec<f64>> {
        &self.metrics
    }

    /// Writes `state` and all metrics as a complete file (atomically).
    ///
    /// # Panics
    /// If `adam_m`/`adam_v` differ in length from `params`.
    pub fn save(&mut self, state: &ModelState) -> Result<()> {
        write_model(&self.path, &self.header, state, &self.metrics, self.replace)?;
        self.replace = true;
        Ok(())
    }
}
