//! [`EnsembleReader`]: validated, read-only access to ensemble and samples files.

use super::SeriesType;
use super::{configs_slab, malformed, missing, series_slab, Checkpoint, EnsembleSpec, Layout};
use crate::error::{read_err, Result};
use crate::files::{is_partial, open_fieldflow};
use crate::header::{FileKind, Header};
use hdf5::Dataset;
use ndarray::{Array2, Array3, ArrayD, IxDyn};
use std::path::{Path, PathBuf};

/// Reads an ensemble or samples file, finished or `.partial`.
#[derive(Debug)]
pub struct EnsembleReader {
    path: PathBuf,
    header: Header,
    layout: Layout,
    // Keeps the file open for the datasets in `layout`.
    _file: hdf5::File,
}

impl EnsembleReader {
    /// Opens and validates `path` (see [`crate::files`] for the checks).
    ///
    /// Of a `.partial`, only the complete blocks (`n_cfg_written`) are visible.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (file, header) = open_fieldflow(
            path,
            false,
            &[FileKind::Ensemble, FileKind::Samples],
            "ensemble or samples",
        )?;
        let layout = Layout::read(&file, path)?;
        Ok(EnsembleReader {
            path: path.to_path_buf(),
            header,
            layout,
            _file: file,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root attributes.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// `Ensemble` or `Samples`.
    pub fn kind(&self) -> FileKind {
        self.header.kind
    }

    /// Whether this is an unfinished `.partial` file.
    pub fn is_partial(&self) -> bool {
        is_partial(&self.path)
    }

    /// Chains, shape and series (alphabetical).
    pub fn spec(&self) -> &EnsembleSpec {
        &self.layout.spec
    }

    /// Number of chains.
    pub fn n_chains(&self) -> usize {
        self.layout.spec.n_chains
    }

    /// Complete steps per chain.
    pub fn n_cfg(&self) -> usize {
        self.layout.n_cfg
    }

    /// Shape of one configuration.
    pub fn shape(&self) -> &[usize] {
        &self.layout.spec.shape
    }

    /// Degrees of freedom of one configuration.
    pub fn dim(&self) -> usize {
        self.layout.spec.dim()
    }

    /// Names of the per-step series (alphabetical).
    pub fn series_names(&self) -> Vec<&str> {
        self.layout.spec.series.iter().map(|s| s.name.as_str()).collect()
    }

    fn read_configs(&self, chain: Option<usize>) -> Result<ArrayD<f64>> {
        let n = self.n_cfg();
        let mut shape = Vec::new();
        if chain.is_none() {
            shape.push(self.n_chains());
        }
        shape.push(n);
        shape.extend(self.shape());
        if n == 0 {
            return Ok(ArrayD::zeros(IxDyn(&shape)));
        }
        let slab = configs_slab(self.shape().len() + 2, chain, 0..n);
        let a: ArrayD<f64> = self.layout.configs.read_slice(slab).map_err(read_err(&self.path))?;
        debug_assert_eq!(a.shape(), shape.as_slice());
        Ok(a)
    }

    /// All configurations, `[n_chains, n_cfg, *shape]`.
    pub fn configs(&self) -> Result<ArrayD<f64>> {
        self.read_configs(None)
    }

    /// All configurations flattened per configuration, `[n_chains, n_cfg, dim]`.
    pub fn configs_flat(&self) -> Result<Array3<f64>> {
        let a = self.read_configs(None)?;
        let sh = (self.n_chains(), self.n_cfg(), self.dim());
        Ok(a.into_shape_with_order(sh).expect("standard layout"))
    }

    /// The configurations of one chain, flattened, `[n_cfg, dim]`.
    ///
    /// # Panics
    /// If `chain >= n_chains()`.
    pub fn chain_configs(&self, chain: usize) -> Result<Array2<f64>> {
        assert!(
            chain < self.n_chains(),
            "chain {chain} out of range (file has {})",
            self.n_chains()
        );
        let a = self.read_configs(Some(chain))?;
        let sh = (self.n_cfg(), self.dim());
        Ok(a.into_shape_with_order(sh).expect("standard layout"))
    }

    fn series_dataset(&self, name: &str) -> Result<(&Dataset, SeriesType)> {
        let i = self
            .layout
            .spec
            .series
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| missing(&self.path, format!("dataset /{name}")))?;
        Ok((&self.layout.series[i], self.layout.spec.series[i].dtype))
    }

    /// A series `[n_chains, n_cfg]` as f64 (u8 series are converted).
    pub fn series(&self, name: &str) -> Result<Array2<f64>> {
        let (ds, dtype) = self.series_dataset(name)?;
        let n = self.n_cfg();
        let rerr = read_err(&self.path);
        if n == 0 {
            return Ok(Array2::zeros((self.n_chains(), 0)));
        }
        Ok(match dtype {
            SeriesType::F64 => ds.read_slice_2d(series_slab(0..n)).map_err(rerr)?,
            SeriesType::U8 => ds
                .read_slice_2d::<u8, _>(series_slab(0..n))
                .map_err(rerr)?
                .mapv(f64::from),
        })
    }

    /// A u8 series `[n_chains, n_cfg]` (an error for f64 series).
    pub fn series_u8(&self, name: &str) -> Result<Array2<u8>> {
        let (ds, dtype) = self.series_dataset(name)?;
        if dtype != SeriesType::U8 {
            return Err(malformed(&self.path, format!("series /{name} is {dtype}, not u8")));
        }
        let n = self.n_cfg();
        if n == 0 {
            return Ok(Array2::zeros((self.n_chains(), 0)));
        }
        ds.read_slice_2d(series_slab(0..n)).map_err(read_err(&self.path))
    }

    /// The checkpoint after the last complete block; `None` if no block was written.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.layout.read_checkpoint(&self.path)
    }
}
