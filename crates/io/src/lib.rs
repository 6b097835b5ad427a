//! # fieldflow-io
//!
//! The HDF5 files of fieldflow (layouts in docs/FORMATS.md), schema version 1, and the only
//! fieldflow crate that touches HDF5. Every file can be read with h5py:
//! strings are variable-length UTF-8 (Python `str`), numbers are native
//! little-endian f64, u64 and u8.
//!
//! ## Root attributes of every file ([`header`])
//!
//! `fieldflow_schema` (`ensemble` | `samples` | `model` | `analysis`),
//! `schema_version` (u64, = [`SCHEMA_VERSION`]), `fieldflow_version`,
//! `config` (resolved TOML or JSON text), `seed` (u64), `created`
//! (`YYYY-MM-DDTHH:MM:SSZ`, UTC), `target` (one-line description), plus any
//! extra string, f64 or u64 attributes the caller adds.
//!
//! ## File kinds
//!
//! * **ensemble / samples** ([`ensemble`]): `/configs` f64
//!   `[n_chains, n_cfg, *shape]`, per-step series `/<name>` f64 or u8
//!   `[n_chains, n_cfg]`, and `/checkpoint` (`state` f64 `[n_chains, dim]`,
//!   attributes `chains` (JSON) and `n_cfg_written`). Written in blocks,
//!   flushed after each block, resumable.
//! * **model** ([`model`]): `/params` (attribute `architecture`, JSON),
//!   `/adam/m`, `/adam/v`, `/adam/step`, `/rng_state`, `/metrics/<name>`.
//! * **analysis** ([`analysis`]): `/<input>/<observable>` groups with
//!   attributes `value`, `error`, `tau_int`, `tau_int_error`, `window`, `n`
//!   and dataset `gamma`.
//!
//! ## Safety of outputs ([`files`])
//!
//! New files are written as `NAME.partial` and renamed to `NAME` when
//! complete; an existing `NAME` is replaced only with `force`, and only at
//! that final rename. Readers report foreign, truncated, corrupt, older-kind
//! or newer-version files as one-line [`IoError`]s that name the file; they
//! never panic on a bad file.
//!
//! ## Example
//!
//! ```no_run
//! use fieldflow_io::*;
//! use ndarray::{Array2, Array3};
//! # fn main() -> Result<(), IoError> {
//! let header = Header::new(FileKind::Ensemble, "[hmc]\nstep_size = 0.1\n", 42, "phi4 L=4x4");
//! let spec = EnsembleSpec::new(2, [4, 4]).with_series(SeriesSpec::f64("log_p"));
//! let mut w = EnsembleWriter::create("ens.h5", &header, &spec, false)?;
//! let (cfg, logp, state) = (Array3::zeros((2, 10, 16)), Array2::zeros((2, 10)), Array2::zeros((2, 16)));
//! w.append(&Block { configs: cfg.view(), series: &[("log_p", SeriesView::F64(logp.view()))],
//!                   state: state.view(), chains: "{}" })?;
//! drop(w); // killed: ens.h5.partial holds 10 steps per chain
//! let (w, resumed) = EnsembleWriter::resume("ens.h5", false)?;
//! assert_eq!(resumed.n_cfg, 10);
//! w.finish()?;
//! let r = EnsembleReader::open("ens.h5")?;
//! let chain0 = r.chain_configs(0)?; // [10, 16]
//! let log_p = r.series("log_p")?;   // [2, 10]
//! # Ok(()) }
//! ```

pub mod analysis;
pub mod ensemble;
pub mod error;
pub mod files;
pub mod header;
pub mod inspect;
pub mod model;

pub use analysis::{AnalysisFile, AnalysisInput, AnalysisRecord};
pub use ensemble::{
    Block, Checkpoint, EnsembleReader, EnsembleSpec, EnsembleWriter, Resumed, SeriesSpec, SeriesType, SeriesView,
};
pub use error::IoError;
pub use files::{final_path, is_partial, partial_path};
pub use header::{AttrValue, FileKind, Header, SCHEMA_VERSION};
pub use inspect::{inspect, DatasetSummary, FileSummary};
pub use model::{ModelFile, ModelState, ModelWriter};
