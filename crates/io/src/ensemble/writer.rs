//! [`EnsembleWriter`]: creating, appending blocks, resuming and finishing.

use super::{configs_slab, extents, series_slab, Block, Checkpoint, EnsembleSpec, Layout};
use super::{SeriesType, SeriesView, CHECKPOINT, CONFIGS, CONFIGS_CHUNK_ELEMS, SERIES_CHUNK};
use crate::error::{write_err, IoError, Result};
use crate::files::{final_path, open_fieldflow, partial_path, prepare_output, publish};
use crate::header::{check_attr_name, write_attr, write_str_attr, write_u64_attr};
use crate::header::{AttrValue, FileKind, Header};
use hdf5::Dataset;
use ndarray::{Axis, IxDyn};
use std::path::{Path, PathBuf};

/// What [`EnsembleWriter::resume`] found in the unfinished file.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// The root attributes, as written by `create`.
    pub header: Header,
    /// Chains, shape and series (series in alphabetical order).
    pub spec: EnsembleSpec,
    /// The last checkpoint; `None` if no block was written.
    pub checkpoint: Option<Checkpoint>,
    /// Complete steps per chain; the next `append` continues from here.
    pub n_cfg: usize,
}

/// Writes an ensemble or samples file block by block (see the module docs).
///
/// Dropping a writer without [`finish`](EnsembleWriter::finish) leaves
/// `NAME.partial` with every complete block, ready for [`EnsembleWriter::resume`].
#[derive(Debug)]
pub struct EnsembleWriter {
    path: PathBuf,
    partial: PathBuf,
    force: bool,
    file: hdf5::File,
    spec: EnsembleSpec,
    n_cfg: usize,
    configs: Dataset,
    series: Vec<Dataset>,
    checkpoint: hdf5::Group,
}

impl EnsembleWriter {
    /// Starts `path` (written as `path.partial`) with the given header and layout.
    ///
    /// Fails with [`IoError::Exists`] if `path` exists and `force` is false,
    /// and with [`IoError::PartialExists`] if an unfinished `path.partial`
    /// exists and `force` is false. With `force`, a stale `.partial` is
    /// discarded and an existing `path` is replaced only by [`finish`](Self::finish).
    ///
    /// # Panics
    /// If `header.kind` is not `Ensemble` or `Samples`, `spec.n_chains` is 0,
    /// or `spec.shape` is empty or contains 0.
    pub fn create(path: impl AsRef<Path>, header: &Header, spec: &EnsembleSpec, force: bool) -> Result<Self> {
        let path = path.as_ref();
        assert!(
            matches!(header.kind, FileKind::Ensemble | FileKind::Samples),
            "an ensemble file needs an ensemble or samples header, not {}",
            header.kind
        );
        assert!(spec.n_chains > 0, "an ensemble needs at least one chain");
        assert!(
            !spec.shape.is_empty() && spec.shape.iter().all(|&s| s > 0),
            "invalid configuration shape {:?}",
            spec.shape
        );
        spec.check_names(path)?;
        let partial = prepare_output(path, force)?;
        let file = hdf5::File::create_excl(&partial).map_err(write_err(&partial))?;
        match Self::init(file, path, &partial, header, spec, force) {
            Ok(w) => Ok(w),
            Err(e) => {
                // Nothing of value was written: do not leave a stale .partial behind.
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    fn init(
        file: hdf5::File,
        path: &Path,
        partial: &Path,
        header: &Header,
        spec: &EnsembleSpec,
        force: bool,
    ) -> Result<Self> {
        let werr = write_err(partial);
        header.write(&file, partial)?;
        let dim = spec.dim();
        let c = (CONFIGS_CHUNK_ELEMS / dim).clamp(1, 4096);
        let mut chunk = vec![1, c];
        chunk.extend(&spec.shape);
        let configs = file
            .new_dataset::<f64>()
            .chunk(chunk)
            .shape(extents(spec.n_chains, 0, &spec.shape))
            .create(CONFIGS)
            .map_err(&werr)?;
        let mut series = Vec::with_capacity(spec.series.len());
        for s in &spec.series {
            let builder = match s.dtype {
                SeriesType::F64 => file.new_dataset::<f64>(),
                SeriesType::U8 => file.new_dataset::<u8>(),
            };
            let ds = builder
                .chunk(vec![1, SERIES_CHUNK])
                .shape(extents(spec.n_chains, 0, &[]))
                .create(s.name.as_str())
                .map_err(&werr)?;
            series.push(ds);
        }
        let checkpoint = file.create_group(CHECKPOINT).map_err(&werr)?;
        write_u64_attr(&checkpoint, "n_cfg_written", 0).map_err(&werr)?;
        file.flush().map_err(&werr)?;
        Ok(EnsembleWriter {
            path: path.to_path_buf(),
            partial: partial.to_path_buf(),
            force,
            file,
            spec: spec.clone(),
            n_cfg: 0,
            configs,
            series,
            checkpoint,
        })
    }

    /// Reopens the unfinished `path.partial` to continue a killed run.
    ///
    /// Steps beyond the last complete block are discarded, so the file ends
    /// exactly at the returned checkpoint; appending the same blocks as an
    /// uninterrupted run then gives identical datasets. `force` has the
    /// meaning of [`create`](Self::create): without it, an existing `path`
    /// is an error (checked now and again at [`finish`](Self::finish)).
    /// `path` may be given as `NAME` or as `NAME.partial`.
    pub fn resume(path: impl AsRef<Path>, force: bool) -> Result<(Self, Resumed)> {
        let path = final_path(path.as_ref());
        let path = path.as_path();
        let partial = partial_path(path);
        if !partial.exists() {
            return Err(IoError::NothingToResume { path: partial });
        }
        if !force && path.exists() {
            return Err(IoError::Exists {
                path: path.to_path_buf(),
            });
        }
        let (file, header) = open_fieldflow(
            &partial,
            true,
            &[FileKind::Ensemble, FileKind::Samples],
            "ensemble or samples",
        )?;
        let layout = Layout::read(&file, &partial)?;
        let checkpoint = layout.read_checkpoint(&partial)?;
        let werr = write_err(&partial);
        let n = layout.spec.n_chains;
        if layout.configs.shape()[1] > layout.n_cfg {
            let dims = extents(n, layout.n_cfg, &layout.spec.shape).dims();
            layout.configs.resize(dims).map_err(&werr)?;
        }
        for ds in &layout.series {
            if ds.shape()[1] > layout.n_cfg {
                ds.resize([n, layout.n_cfg]).map_err(&werr)?;
            }
        }
        file.flush().map_err(&werr)?;
        drop(werr);
        let resumed = Resumed {
            header,
            spec: layout.spec.clone(),
            checkpoint,
            n_cfg: layout.n_cfg,
        };
        let writer = EnsembleWriter {
            path: path.to_path_buf(),
            partial,
            force,
            file,
            spec: layout.spec,
            n_cfg: layout.n_cfg,
            configs: layout.configs,
            series: layout.series,
            checkpoint: layout.checkpoint,
        };
        Ok((writer, resumed))
    }

    /// The final output path `NAME`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file being written, `NAME.partial`.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// The layout being written.
    pub fn spec(&self) -> &EnsembleSpec {
        &self.spec
    }

    /// Complete steps per chain written so far.
    pub fn n_cfg(&self) -> usize {
        self.n_cfg
    }

    /// Appends `k` steps of every chain and the checkpoint after them, then flushes.
    ///
    /// # Panics
    /// If shapes disagree with the spec (`configs` `[n_chains, k, dim]`,
    /// `state` `[n_chains, dim]`, every series `[n_chains, k]`), or if the
    /// series are not exactly those of the spec, each once, with their types.
    pub fn append(&mut self, block: &Block<'_>) -> Result<()> {
        let n = self.spec.n_chains;
        let dim = self.spec.dim();
        let k = block.configs.len_of(Axis(1));
        assert_eq!(
            block.configs.dim(),
            (n, k, dim),
            "block configs must be [n_chains, k, dim]"
        );
        assert_eq!(block.state.dim(), (n, dim), "block state must be [n_chains, dim]");
        let mut views: Vec<Option<&SeriesView>> = vec![None; self.spec.series.len()];
        for (name, view) in block.series {
            let i = self
                .spec
                .series
                .iter()
                .position(|s| s.name == *name)
                .unwrap_or_else(|| panic!("series {name:?} is not in the ensemble spec"));
            assert!(views[i].is_none(), "series {name:?} given twice");
            assert_eq!(
                view.dtype(),
                self.spec.series[i].dtype,
                "series {name:?} has the wrong type"
            );
            assert_eq!(view.dim(), (n, k), "series {name:?} must be [n_chains, k]");
            views[i] = Some(view);
        }
        if let Some(i) = views.iter().position(Option::is_none) {
            panic!("block lacks series {:?}", self.spec.series[i].name);
        }

        let werr = write_err(&self.partial);
        let (start, end) = (self.n_cfg, self.n_cfg + k);
        if k > 0 {
            let ext = extents(n, end, &self.spec.shape);
            self.configs.resize(ext.dims()).map_err(&werr)?;
            let data = block.configs.as_standard_layout();
            let mut bshape = vec![n, k];
            bshape.extend(&self.spec.shape);
            let data = data
                .view()
                .into_shape_with_order(IxDyn(&bshape))
                .expect("standard layout reshapes");
            let slab = configs_slab(bshape.len(), None, start..end);
            self.configs.write_slice(&data, slab).map_err(&werr)?;
            for (ds, view) in self.series.iter().zip(&views) {
                ds.resize([n, end]).map_err(&werr)?;
                match view.expect("checked above") {
                    SeriesView::F64(v) => ds.write_slice(&v.as_standard_layout(), series_slab(start..end)),
                    SeriesView::U8(v) => ds.write_slice(&v.as_standard_layout(), series_slab(start..end)),
                }
                .map_err(&werr)?;
            }
            // The block's data reaches the file before the checkpoint that
            // declares it complete.
            self.file.flush().map_err(&werr)?;
        }
        let state = block.state.as_standard_layout();
        if self.checkpoint.link_exists("state") {
            let ds = self.checkpoint.dataset("state").map_err(&werr)?;
            ds.write(&state).map_err(&werr)?;
        } else {
            self.checkpoint
                .new_dataset_builder()
                .with_data(&state)
                .create("state")
                .map_err(&werr)?;
        }
        write_str_attr(&self.checkpoint, "chains", block.chains).map_err(&werr)?;
        write_u64_attr(&self.checkpoint, "n_cfg_written", end as u64).map_err(&werr)?;
        self.file.flush().map_err(&werr)?;
        self.n_cfg = end;
        Ok(())
    }

    /// Sets (or replaces) an extra root attribute, e.g. a final acceptance
    /// rate or the wall time, and flushes.
    pub fn set_attr(&mut self, name: &str, value: impl Into<AttrValue>) -> Result<()> {
        check_attr_name(name, &self.partial)?;
        let werr = write_err(&self.partial);
        write_attr(&self.file, name, &value.into()).map_err(&werr)?;
        self.file.flush().map_err(&werr)
    }

    /// Closes the file and renames `NAME.partial` to `NAME`; returns `NAME`.
    ///
    /// Without `force`, fails with [`IoError::Exists`] if `NAME` appeared in
    /// the meantime; the `.partial` is then kept.
    pub fn finish(self) -> Result<PathBuf> {
        let EnsembleWriter {
            path,
            partial,
            force,
            file,
            configs,
            series,
            checkpoint,
            ..
        } = self;
        file.flush().map_err(write_err(&partial))?;
        drop((configs, series, checkpoint));
        file.close().map_err(write_err(&partial))?;
        publish(&partial, &path, force)?;
        Ok(path)
    }
}

/// A writer is where a block run (`fieldflow_core::run`) stores its blocks:
/// each block is appended with the chains' JSON states as the checkpoint
/// ([`fieldflow_core::run::ChainBlock::checkpoint_json`]).
impl fieldflow_core::run::BlockSink for EnsembleWriter {
    fn append(
        &mut self,
        block: &fieldflow_core::run::ChainBlock,
    ) -> std::result::Result<(), fieldflow_core::run::RunError> {
        use fieldflow_core::run::Series;
        let views: Vec<(&str, SeriesView)> = block
            .series
            .iter()
            .map(|s| match s {
                Series::F64(name, a) => (*name, SeriesView::F64(a.view())),
                Series::U8(name, a) => (*name, SeriesView::U8(a.view())),
            })
            .collect();
        let chains = block.checkpoint_json();
        EnsembleWriter::append(
            self,
            &Block {
                configs: block.configs.view(),
                series: &views,
                state: block.state.view(),
                chains: &chains,
            },
        )
        .map_err(|e| fieldflow_core::run::RunError::Sink(e.to_string()))
    }
}
