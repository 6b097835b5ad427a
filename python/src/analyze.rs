//! `analyze(data)`: Wolff's Γ-method (crates/stats `gamma_primary`) on the
//! Monte Carlo history of one observable: a 1-D array (one chain) or a 2-D
//! array `[replica, n]` (independent chains of equal length).

use crate::convert::value_error;
use fieldflow_stats::{gamma_primary, GammaConfig};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Mean with its Γ-method error, τ_int ± error, the window W, and more:
/// `value`, `error`, `error_of_error`, `tau_int`, `tau_int_error`,
/// `window`, `n`, `n_replica`, `naive_error`, `warnings`. `s_tau` is
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
    let d = PyDict::new(py);
    d.set_item("value", r.value)?;
    d.set_item("error", r.error)?;
    d.set_item("error_of_error", r.error_of_error)?;
    d.set_item("tau_int", r.tau_int)?;
    d.set_item("tau_int_error", r.tau_int_error)?;
    d.set_item("window", r.window)?;
    d.set_item("n", r.n)?;
    d.set_item("n_replica", r.n_replica)?;
    d.set_item("naive_error", r.naive_error)?;
    let warnings: Vec<String> = r.warnings.iter().map(|w| format!("{w:?}")).collect();
    d.set_item("warnings", warnings)?;
    Ok(d)
}
