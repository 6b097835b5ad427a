//! `free_energy(config)`: the command line's `free-energy` (crates/freeenergy,
//! docs/THEORY.md §6.13) — the log ratio of a target's two mode weights
//! through its phases — on a config dict equal to the TOML (`target` or
//! `phi4`, and `free_energy`). The same code as the CLI
//! (`fieldflow::cmd::free_energy::evaluate`), without a checkpoint: a run
//! takes minutes; an interrupt is honoured between nodes only by the CLI.

use crate::convert::{err, to_table};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The report of `fieldflow free-energy --json` as a dict: `log_ratio`
/// (`value`, `error`, `replicas`), `exact_log_ratio`, `pull`, `delta`,
/// `log_t_minus`, `log_t_plus`, diagnostics and the resolved `settings`
/// (docs/FORMATS.md, "Free-energy results"). `seed` overrides
/// `free_energy.seed`.
#[pyfunction]
#[pyo3(signature = (config, seed = None))]
pub fn free_energy<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyDict>,
    seed: Option<u64>,
) -> PyResult<Bound<'py, PyAny>> {
    let table = to_table(config, "")?;
    let report = py
        .detach(|| fieldflow::cmd::free_energy::evaluate(&table, seed, || Ok(()), None))
        .map_err(err)?
        .ok_or_else(|| err(anyhow::anyhow!("free_energy: interrupted")))?;
    let json = serde_json::to_string(&report).map_err(|e| err(e.into()))?;
    py.import("json")?.call_method1("loads", (json,))
}
