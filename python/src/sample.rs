//! Exact sampling with a trained model: `imh` (independent Metropolis–
//! Hastings chains, or i-SIR with `proposals = K`; crates/imh `ImhChain`)
//! and `importance` (self-normalized importance sampling,
//! `importance_sample`), as arrays.

use crate::convert::value_error;
use crate::model::PyModel;
use fieldflow_core::{Par, Seed};
use fieldflow_imh::{importance_sample, GlobalMove, ImhChain, ImhConfig};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// `chains` IMH chains of `n` steps each with the model as proposal; with
/// `proposals = K`, i-SIR (K proposals per step). Returns a dict: `x`
/// `[chains, n, *shape]`, `accepted`, `log_p`, `log_q` `[chains, n]` and the
/// `acceptance` rate.
/// `progress(done, total, message)` is called about every percent of the
/// `chains × n` steps.
#[pyfunction]
#[pyo3(signature = (model, n, chains = 4, seed = 1, batch = 256, proposals = None, progress = None))]
#[allow(clippy::too_many_arguments)] // the Python signature: model, run length, settings, callback
pub fn imh<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    n: usize,
    chains: usize,
    seed: u64,
    batch: usize,
    proposals: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = ImhConfig {
        batch,
        global: match proposals {
            Some(k) => GlobalMove::Isir { proposals: k },
            None => GlobalMove::Imh,
        },
        ..ImhConfig::default()
    };
    config.validate().map_err(value_error)?;
    if chains == 0 {
        return Err(value_error("chains = 0: must be >= 1"));
    }
    let m = model.get();
    let total = (chains * n) as u64;
    let stride = (total / 100).max(1);
    let done = AtomicU64::new(0);
    let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
    let report = |k: u64| {
        let d = done.fetch_add(k, Ordering::Relaxed) + k;
        if let (Some(cb), true) = (&progress, d.is_multiple_of(stride) || d == total) {
            if let Err(e) = Python::attach(|py| cb.bind(py).call1((d, total, "")).map(drop)) {
                callback_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        }
    };
    let run = py.detach(|| {
        let chain = ImhChain::new(m.target_kind().as_target(), m.proposal(), Seed::new(seed), config);
        let mut states = chain.initial_states(chains);
        chain.run(&mut states, n, &report)
    });
    m.target_kind().take_error()?;
    if let Some(e) = callback_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut shape = vec![chains, n];
    shape.extend(m.target_kind().shape());
    let acceptance = run.accepted.iter().map(|&a| a as f64).sum::<f64>() / (chains * n).max(1) as f64;
    let d = PyDict::new(py);
    d.set_item(
        "x",
        run.configs
            .into_shape_with_order(shape)
            .map_err(value_error)?
            .into_pyarray(py),
    )?;
    d.set_item("accepted", run.accepted.into_pyarray(py))?;
    d.set_item("log_p", run.log_p.into_pyarray(py))?;
    d.set_item("log_q", run.log_q.into_pyarray(py))?;
    d.set_item("acceptance", acceptance)?;
    Ok(d)
}

/// `n` independent draws of the model with importance weights. Returns a
/// dict: `x` `[n, *shape]`, `log_q`, `log_p`, `log_w`, the normalized `ess`
/// and `log_z` ± `log_z_error`.
#[pyfunction]
#[pyo3(signature = (model, n, seed = 1))]
pub fn importance<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    n: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    if n == 0 {
        return Err(value_error("n = 0: must be >= 1"));
    }
    let m = model.get();
    let b = py.detach(|| {
        importance_sample(
            m.target_kind().as_target(),
            m.proposal(),
            Seed::new(seed),
            n,
            Par::default(),
        )
    });
    m.target_kind().take_error()?;
    let ess = b.ess().map_err(value_error)?;
    let log_z = b.log_z().map_err(value_error)?;
    let log_w = b.log_w();
    let mut shape = vec![n];
    shape.extend(m.target_kind().shape());
    let d = PyDict::new(py);
    d.set_item(
        "x",
        b.xs.into_shape_with_order(shape).map_err(value_error)?.into_pyarray(py),
    )?;
    d.set_item("log_q", b.log_q.into_pyarray(py))?;
    d.set_item("log_p", b.log_p.into_pyarray(py))?;
    d.set_item("log_w", log_w.into_pyarray(py))?;
    d.set_item("ess", ess)?;
    d.set_item("log_z", log_z.log_z)?;
    d.set_item("log_z_error", log_z.error)?;
    Ok(d)
}
