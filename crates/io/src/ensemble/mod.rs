//! Ensemble and samples files: chains of configurations written in blocks.
//!
//! # Layout (schema version 1)
//!
//! Root attributes as in [`crate::header`], with `fieldflow_schema` =
//! `ensemble` (MCMC: HMC, Metropolis) or `samples` (flow samplers); both kinds
//! have the same layout. With `n_chains` chains, `n_cfg` stored steps per chain
//! and configurations of shape `shape` (the lattice shape, or `[dim]` for
//! vector targets):
//!
//! | path                         | type | shape                        | notes |
//! |------------------------------|------|------------------------------|-------|
//! | `/configs`                   | f64  | `[n_chains, n_cfg, *shape]`  | chunked `[1, c, *shape]` with c = clamp(8192 / dim, 1, 4096), unlimited along axis 1 |
//! | `/<series>` (any number)     | f64 or u8 | `[n_chains, n_cfg]`     | per-step series named by the caller (`log_p`, `accepted` (u8), `delta_h`, `log_q`, `log_w`, …); chunked `[1, 4096]`, unlimited along axis 1 |
//! | `/checkpoint`                | group |                             | always present |
//! | `/checkpoint@n_cfg_written`  | u64 attribute |                     | number of steps per chain that are complete |
//! | `/checkpoint/state`          | f64  | `[n_chains, dim]`            | current field of every chain after the last block (absent before the first block) |
//! | `/checkpoint@chains`         | UTF-8 string attribute |            | JSON written by the sampler (counters, tuned step sizes, RNG state); opaque to this crate; present with `state` |
//!
//! Every root-level dataset other than `/configs` is a per-step series; no
//! other root-level objects exist. dim = product of `shape`.
//!
//! # Writing, checkpoints and resume
//!
//! [`EnsembleWriter::create`] writes `NAME.partial` (see [`crate::files`]).
//! Each [`EnsembleWriter::append`] grows every dataset by a block of `k`
//! steps for all chains and flushes, then writes the checkpoint, sets
//! `n_cfg_written` last and flushes again, so a run killed at any point keeps
//! everything up to its last complete block (tested by aborting a writer
//! process). Flushing hands the data to the operating system without
//! `fsync`, so a power failure may lose more.
//!
//! `n_cfg_written` is authoritative: a run killed in the middle of a block
//! may leave datasets longer than it; readers ignore the extra steps and
//! [`EnsembleWriter::resume`] truncates them, so that appending the same
//! blocks again gives datasets identical to an uninterrupted run.
//! [`EnsembleWriter::finish`] renames `NAME.partial` to `NAME`; the checkpoint
//! stays in the finished file, so a chain can later be continued from its
//! final state.
//!
//! Limits: HDF5 1.10 has no journal, so a kill *during* the library's
//! metadata writes can in principle damage the file (readers then report
//! [`IoError::Corrupt`]). HDF5 locks files it writes: another process may be
//! unable to read the `.partial` of a run in progress unless
//! `HDF5_USE_FILE_LOCKING=FALSE` is set.

mod reader;
mod writer;

pub use reader::EnsembleReader;
pub use writer::{EnsembleWriter, Resumed};

use crate::error::{read_err, IoError, Result};
use crate::header::{read_str_attr, read_u64_attr};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{Dataset, Extent, Hyperslab, SimpleExtents, SliceOrIndex};
use ndarray::{Array2, ArrayView2, ArrayView3};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::path::Path;

/// Name of the configurations dataset.
pub const CONFIGS: &str = "configs";
/// Name of the checkpoint group.
pub const CHECKPOINT: &str = "checkpoint";
/// Steps per chunk of a series dataset.
const SERIES_CHUNK: usize = 4096;
/// Target number of f64 per chunk of `/configs` (64 KiB).
const CONFIGS_CHUNK_ELEMS: usize = 8192;

/// Element type of a per-step series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesType {
    /// 64-bit float (`log_p`, `delta_h`, `log_q`, `log_w`, `acceptance`, …).
    F64,
    /// Unsigned byte (flags such as `accepted`).
    U8,
}

impl fmt::Display for SeriesType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SeriesType::F64 => "f64",
            SeriesType::U8 => "u8",
        })
    }
}

/// A named per-step series `[n_chains, n_cfg]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesSpec {
    /// Dataset name at the root (no `/`, not `configs` or `checkpoint`).
    pub name: String,
    /// Element type.
    pub dtype: SeriesType,
}

impl SeriesSpec {
    /// An f64 series.
    pub fn f64(name: impl Into<String>) -> Self {
        SeriesSpec {
            name: name.into(),
            dtype: SeriesType::F64,
        }
    }

    /// A u8 series.
    pub fn u8(name: impl Into<String>) -> Self {
        SeriesSpec {
            name: name.into(),
            dtype: SeriesType::U8,
        }
    }
}

/// The shape of an ensemble: chains, configuration shape, series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    /// Number of chains (≥ 1).
    pub n_chains: usize,
    /// Shape of one configuration: the lattice shape, or `[dim]` (non-empty, no zero).
    pub shape: Vec<usize>,
    /// The per-step series, each supplied with every block. Readers and
    /// [`EnsembleWriter::resume`] list them in alphabetical order.
    pub series: Vec<SeriesSpec>,
}

impl EnsembleSpec {
    /// `n_chains` chains of configurations of shape `shape`, no series yet.
    pub fn new(n_chains: usize, shape: impl Into<Vec<usize>>) -> Self {
        EnsembleSpec {
            n_chains,
            shape: shape.into(),
            series: Vec::new(),
        }
    }

    /// Adds a series.
    pub fn with_series(mut self, series: SeriesSpec) -> Self {
        self.series.push(series);
        self
    }

    /// Number of degrees of freedom of one configuration (product of `shape`).
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// The series called `name`, if any.
    pub fn series_type(&self, name: &str) -> Option<SeriesType> {
        self.series.iter().find(|s| s.name == name).map(|s| s.dtype)
    }

    fn check_names(&self, path: &Path) -> Result<()> {
        for (i, s) in self.series.iter().enumerate() {
            let problem = if s.name.is_empty() {
                Some("empty")
            } else if s.name.contains('/') || s.name == "." {
                Some("not a valid HDF5 link name")
            } else if s.name == CONFIGS || s.name == CHECKPOINT {
                Some("reserved by the fieldflow schema")
            } else if self.series[..i].iter().any(|t| t.name == s.name) {
                Some("given twice")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(IoError::InvalidName {
                    path: path.to_path_buf(),
                    name: s.name.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// One block of a per-step series, `[n_chains, k]`.
#[derive(Debug, Clone, Copy)]
pub enum SeriesView<'a> {
    /// Values of an f64 series.
    F64(ArrayView2<'a, f64>),
    /// Values of a u8 series.
    U8(ArrayView2<'a, u8>),
}

impl SeriesView<'_> {
    fn dtype(&self) -> SeriesType {
        match self {
            SeriesView::F64(_) => SeriesType::F64,
            SeriesView::U8(_) => SeriesType::U8,
        }
    }

    fn dim(&self) -> (usize, usize) {
        match self {
            SeriesView::F64(v) => v.dim(),
            SeriesView::U8(v) => v.dim(),
        }
    }
}

/// `k` steps of all chains, and the checkpoint after them.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Configurations `[n_chains, k, dim]`, each flattened in C order.
    pub configs: ArrayView3<'a, f64>,
    /// Every series of the spec exactly once, by name, each `[n_chains, k]`.
    pub series: &'a [(&'a str, SeriesView<'a>)],
    /// Current field of every chain after the block, `[n_chains, dim]`.
    pub state: ArrayView2<'a, f64>,
    /// The sampler's per-chain state as JSON (stored as `/checkpoint@chains`).
    pub chains: &'a str,
}

/// The checkpoint stored after the last complete block.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Current field of every chain, `[n_chains, dim]`.
    pub state: Array2<f64>,
    /// The sampler's JSON from [`Block::chains`].
    pub chains: String,
    /// Steps per chain written when the checkpoint was taken.
    pub n_cfg: usize,
}

/// The datasets of an open ensemble file, validated against the schema.
#[derive(Debug)]
struct Layout {
    spec: EnsembleSpec,
    n_cfg: usize,
    configs: Dataset,
    series: Vec<Dataset>,
    checkpoint: hdf5::Group,
}

fn descriptor(ds: &Dataset, path: &Path) -> Result<TypeDescriptor> {
    ds.dtype().and_then(|t| t.to_descriptor()).map_err(read_err(path))
}

fn malformed(path: &Path, problem: String) -> IoError {
    IoError::Malformed {
        path: path.to_path_buf(),
        problem,
    }
}

fn missing(path: &Path, what: String) -> IoError {
    IoError::Missing {
        path: path.to_path_buf(),
        what,
    }
}

impl Layout {
    fn read(file: &hdf5::File, path: &Path) -> Result<Layout> {
        let rerr = read_err(path);
        if !file.link_exists(CONFIGS) {
            return Err(missing(path, format!("dataset /{CONFIGS}")));
        }
        if !file.link_exists(CHECKPOINT) {
            return Err(missing(path, format!("group /{CHECKPOINT}")));
        }
        let configs = file.dataset(CONFIGS).map_err(&rerr)?;
        let shape = configs.shape();
        if shape.len() < 3 || descriptor(&configs, path)? != TypeDescriptor::Float(FloatSize::U8) {
            return Err(malformed(
                path,
                format!("/{CONFIGS} must be f64 [n_chains, n_cfg, *shape], found {shape:?}"),
            ));
        }
        let n_chains = shape[0];
        let stored = shape[1];
        let checkpoint = file.group(CHECKPOINT).map_err(&rerr)?;
        let n_cfg = read_u64_attr(&checkpoint, "n_cfg_written", path)? as usize;
        if n_cfg > stored {
            return Err(malformed(
                path,
                format!("/{CONFIGS} holds {stored} steps, fewer than n_cfg_written = {n_cfg}"),
            ));
        }
        let mut spec = EnsembleSpec::new(n_chains, shape[2..].to_vec());
        let mut series = Vec::new();
        for name in file.member_names().map_err(&rerr)? {
            if name == CONFIGS || name == CHECKPOINT {
                continue;
            }
            let kind = file.loc_type_by_name(&name).map_err(&rerr)?;
            if kind != hdf5::LocationType::Dataset {
                return Err(malformed(path, format!("unexpected object /{name}")));
            }
            let ds = file.dataset(&name).map_err(&rerr)?;
            let dtype = match descriptor(&ds, path)? {
                TypeDescriptor::Float(FloatSize::U8) => SeriesType::F64,
                TypeDescriptor::Unsigned(IntSize::U1) => SeriesType::U8,
                other => {
                    return Err(malformed(
                        path,
                        format!("series /{name} has type {other}, expected f64 or u8"),
                    ))
                }
            };
            let sh = ds.shape();
            if sh.len() != 2 || sh[0] != n_chains || sh[1] < n_cfg {
                return Err(malformed(
                    path,
                    format!("series /{name} has shape {sh:?}, expected [{n_chains}, {n_cfg}]"),
                ));
            }
            spec.series.push(SeriesSpec { name, dtype });
            series.push(ds);
        }
        Ok(Layout {
            spec,
            n_cfg,
            configs,
            series,
            checkpoint,
        })
    }

    fn read_checkpoint(&self, path: &Path) -> Result<Option<Checkpoint>> {
        if !self.checkpoint.link_exists("state") {
            return Ok(None);
        }
        let ds = self.checkpoint.dataset("state").map_err(read_err(path))?;
        let want = [self.spec.n_chains, self.spec.dim()];
        if ds.shape() != want || descriptor(&ds, path)? != TypeDescriptor::Float(FloatSize::U8) {
            return Err(malformed(
                path,
                format!("/{CHECKPOINT}/state has shape {:?}, expected f64 {want:?}", ds.shape()),
            ));
        }
        Ok(Some(Checkpoint {
            state: ds.read_2d().map_err(read_err(path))?,
            chains: read_str_attr(&self.checkpoint, "chains", path)?,
            n_cfg: self.n_cfg,
        }))
    }
}

/// Selects `[chain or all, range, all, …]` of `/configs`.
fn configs_slab(ndim: usize, chain: Option<usize>, range: Range<usize>) -> Hyperslab {
    let mut v: Vec<SliceOrIndex> = Vec::with_capacity(ndim);
    v.push(chain.map_or(SliceOrIndex::from(..), SliceOrIndex::from));
    v.push(SliceOrIndex::from(range));
    v.extend((2..ndim).map(|_| SliceOrIndex::from(..)));
    Hyperslab::from(v)
}

/// Selects `[all, range]` of a series.
fn series_slab(range: Range<usize>) -> Hyperslab {
    Hyperslab::from(vec![SliceOrIndex::from(..), SliceOrIndex::from(range)])
}

fn extents(n_chains: usize, n_cfg: usize, shape: &[usize]) -> SimpleExtents {
    let mut e = vec![Extent::fixed(n_chains), Extent::new(n_cfg, None)];
    e.extend(shape.iter().map(|&s| Extent::fixed(s)));
    SimpleExtents::from_vec(e)
}
