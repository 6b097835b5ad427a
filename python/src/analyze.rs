//! `analyze(data)`: Wolff's Γ-method (crates/stats `gamma_primary`) on the
//! Monte Carlo history of one observable: a 1-D array (one chain) or a 2-D
//! array `[replica, n]` (independent chains of equal length).

use crate::convert::value_error;
use fieldflow::analysis::{row, Row};
use fieldflow_stats::{gamma_primary, GammaConfig};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Mean with its Γ-method error, τ_int ± error, the window W, and more:
/// `value`, `error`, `error_of_error`, `tau_int`, `tau_int_error`,
/// `window`, `n`, `n_replica`, `naive_error`, `warnings`, `replica_q`
/// (Wolff's Q of the chains' means: ≈ uniform when they agree, None for
/// one chain) (and `exact`: None, as in `analyze_file`'s rows). `s_tau` is
/// Wolff's S (1.5 by default).
#[pyfunction]
#[pyo3(signature = (data, s_tau = 1.5))]
pub fn analyze<'py>(py: Python<'py>, data: PyReadonlyArrayDyn<'py, f64>, s_tau: f64) -> PyResult<Bound<'py, PyDict>> {
    let a = data.as_array();
    let replica: Vec<Vec<f64>> = match data.ndim() {
        1 => vec![a.iter().copied().collect()],
        2 => a.outer_iter().map(|r| r.iter().copied().collect()).collect(),
        k => {
            return Err(value_error(format!(
                "data: {k}-dimensional; expected one chain [n] or chains [replica, n]"
            )))
        }
    };
    let cfg = GammaConfig {
        s_tau,
        ..GammaConfig::default()
    };
    let r = py
        .detach(|| gamma_primary(&replica, &cfg))
        .map_err(|e| value_error(format!("data: {e}")))?;
    let d = row_dict(py, &row("data", &r, None))?;
    d.set_item("error_of_error", r.error_of_error)?;
    d.set_item("n_replica", r.n_replica)?;
    d.set_item("naive_error", r.naive_error)?;
    Ok(d)
}

/// One estimate (a line of the CLI's table) as a dict.
fn row_dict<'py>(py: Python<'py>, r: &Row) -> PyResult<Bound<'py, PyDict>> {
    let o = PyDict::new(py);
    o.set_item("value", r.value)?;
    o.set_item("error", r.error)?;
    o.set_item("tau_int", r.tau_int)?;
    o.set_item("tau_int_error", r.tau_int_error)?;
    o.set_item("window", r.window)?;
    o.set_item("n", r.n)?;
    o.set_item("exact", r.exact)?;
    o.set_item("warnings", &r.warnings)?;
    o.set_item("replica_q", r.replica_q)?;
    Ok(o)
}

/// The command line's `analyze` of an ensemble or sample file: every
/// observable of its target (φ⁴: M, |M|, M², χ₂, ξ₂, C(t), …; vectors: the
/// first coordinates, ‖x‖²/d, mode indicators) with Γ-method error, τ_int
/// and window, and the exact value where known. Returns a dict: `target`,
/// `method`, `chains`, `n_per_chain`, `warnings` and `observables` (name →
/// dict of `value`, `error`, `tau_int`, `tau_int_error`, `window`, `n`,
/// `exact`).
#[pyfunction]
#[pyo3(signature = (path, skip = 0))]
pub fn analyze_file<'py>(py: Python<'py>, path: std::path::PathBuf, skip: usize) -> PyResult<Bound<'py, PyDict>> {
    let a = py
        .detach(|| fieldflow::analysis::analyze_file(&path, skip, &GammaConfig::default()))
        .map_err(crate::convert::err)?;
    let d = PyDict::new(py);
    d.set_item("file", &a.file)?;
    d.set_item("target", &a.target)?;
    d.set_item("method", &a.method)?;
    d.set_item("chains", a.chains)?;
    d.set_item("n_per_chain", a.n_per_chain)?;
    d.set_item("warnings", &a.warnings)?;
    d.set_item("pareto_k", a.pareto_k)?;
    d.set_item("start_decided", a.start_decided)?;
    let obs = PyDict::new(py);
    for r in &a.rows {
        obs.set_item(&r.observable, row_dict(py, r)?)?;
    }
    d.set_item("observables", obs)?;
    Ok(d)
}
