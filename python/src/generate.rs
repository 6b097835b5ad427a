//! `generate(config)`: an MCMC ensemble of lattice φ⁴ (HMC or Metropolis)
//! by the CLI's `generate` (same config dict as the TOML of `fieldflow
//! generate`, same file), returned as an array `[chains, n_cfg, *lattice]`.
//! Without `out` the file is a temporary one, read back and removed.

use crate::convert::{err, to_table};
use fieldflow::cmd::generate::{create_writer, generate as run_generate, GenerateConfig};
use fieldflow::mpi_dist::Dist;
use fieldflow_io::EnsembleReader;
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Runs the chains of `config` and returns the configurations.
#[pyfunction]
#[pyo3(signature = (config, out = None, force = false))]
pub fn generate<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyDict>,
    out: Option<PathBuf>,
    force: bool,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let table = to_table(config, "")?;
    let configs = py
        .detach(move || -> anyhow::Result<_> {
            let c: GenerateConfig = fieldflow::config::parse(&table, "generate")?;
            let resolved = c.validate()?;
            let tmp;
            let path = match out {
                Some(p) => p,
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().join("ensemble.h5")
                }
            };
            let mut writer = create_writer(&path, force, &resolved)?;
            run_generate(Some(&mut writer), &resolved, Vec::new(), true, &Dist::single())?;
            let path = writer.finish()?;
            let configs = EnsembleReader::open(&path)?.configs()?;
            Ok(configs)
        })
        .map_err(err)?;
    Ok(configs.into_pyarray(py))
}
