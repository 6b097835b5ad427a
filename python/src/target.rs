//! Targets from Python: a config dict (`{"phi4": {...}}` or `{"target":
//! {...}}`, the TOML sections) built by the CLI's [`RunTarget`], or a Python
//! function `f(x[n, d]) -> (log_p[n], score[n, d])` ([`CallableTarget`]).
//!
//! **A Python target is called once per batch.** It implements the batched
//! entry points of [`Target`] (`log_prob_batch`, `log_prob_and_score_batch`)
//! as one call of `f` on the whole batch, taking the GIL once; the
//! per-row entry points are batches of one row. Training passes the whole
//! minibatch as one chunk (the trainer's `Par` has `chunk_rows` = batch
//! size for a Python target), IMH one block of `batch` proposals, importance
//! sampling all draws: so the cost per batch is one Python call plus two
//! copies of the batch. Rust code that calls the target holds no GIL (the
//! Python entry points release it), so rayon threads can take it.
//!
//! `f` cannot raise through the `Target` trait: its first exception is kept
//! and the batch gets log p̃ = NaN (a NaN step is rejected by the trainer,
//! a NaN proposal by IMH); the Python entry point re-raises the kept
//! exception when the computation returns ([`TargetKind::take_error`]).

use crate::convert::{err, f64_array, rows, to_table, ArrayPair};
use fieldflow::target::RunTarget;
use fieldflow_core::{Par, Target};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A density given as a Python function of a batch.
pub struct CallableTarget {
    f: Py<PyAny>,
    dim: usize,
    name: String,
    error: Mutex<Option<PyErr>>,
    calls: AtomicU64,
}

impl CallableTarget {
    /// Calls `f` on `xs`; writes log p̃ into `out` and, if given, the score
    /// into `scores`. On any failure keeps the first error and writes NaN.
    fn call(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, scores: Option<ArrayViewMut2<f64>>) {
        let mut out = out;
        let res = Python::attach(|py| -> PyResult<()> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let x = xs.to_pyarray(py);
            let r = self.f.bind(py).call1((x,))?;
            let (lp, sc): (PyReadonlyArray1<f64>, PyReadonlyArray2<f64>) = r.extract().map_err(|_| {
                PyValueError::new_err(format!(
                    "{}: must return (log_p, score), float64 arrays of shapes [n] and [n, {}]",
                    self.name, self.dim
                ))
            })?;
            let (lp, sc) = (lp.as_array(), sc.as_array());
            if lp.len() != xs.nrows() || sc.dim() != xs.dim() {
                return Err(PyValueError::new_err(format!(
                    "{}: returned log_p of shape [{}] and score of shape {:?} for a batch of shape {:?}",
                    self.name,
                    lp.len(),
                    sc.shape(),
                    xs.shape()
                )));
            }
            out.assign(&lp);
            if let Some(mut s) = scores {
                s.assign(&sc);
            }
            Ok(())
        });
        if let Err(e) = res {
            out.fill(f64::NAN);
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
        }
    }
}

impl CallableTarget {
    /// The function's name (its `__name__`, or the name given).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The dimension of its argument's rows.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl Target for CallableTarget {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        let mut out = [0.0];
        let x = x.to_owned().insert_axis(ndarray::Axis(0));
        self.call(x.view(), ArrayViewMut1::from(&mut out[..]), None);
        out[0]
    }
    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let mut out = [0.0];
        let x = x.to_owned().insert_axis(ndarray::Axis(0));
        let mut s = Array2::zeros((1, self.dim));
        self.call(x.view(), ArrayViewMut1::from(&mut out[..]), Some(s.view_mut()));
        score.assign(&s.row(0));
        out[0]
    }
    fn describe(&self) -> String {
        format!("python: {} (d = {})", self.name, self.dim)
    }
    fn log_prob_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, _par: Par) {
        self.call(xs, out, None);
    }
    fn log_prob_and_score_batch(
        &self,
        xs: ArrayView2<f64>,
        scores: ArrayViewMut2<f64>,
        out: ArrayViewMut1<f64>,
        _par: Par,
    ) {
        self.call(xs, out, Some(scores));
    }
}

/// A built-in target or a Python function.
pub enum TargetKind {
    /// φ⁴ or a synthetic target, from its config section.
    Builtin(RunTarget, toml::Table),
    /// A Python function.
    Python(CallableTarget),
}

impl TargetKind {
    /// The density.
    pub fn as_target(&self) -> &dyn Target {
        match self {
            TargetKind::Builtin(t, _) => t.as_target(),
            TargetKind::Python(c) => c,
        }
    }

    /// The built-in target, if it is one.
    pub fn builtin(&self) -> Option<&RunTarget> {
        match self {
            TargetKind::Builtin(t, _) => Some(t),
            TargetKind::Python(_) => None,
        }
    }

    /// Shape of one configuration.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            TargetKind::Builtin(t, _) => t.shape(),
            TargetKind::Python(c) => vec![c.dim],
        }
    }

    /// Whether a Python target's function raised since the last
    /// [`TargetKind::take_error`] (long runs stop then: a KeyboardInterrupt
    /// arrives as an exception of the function when Python code runs).
    pub fn has_error(&self) -> bool {
        match self {
            TargetKind::Python(c) => c.error.lock().unwrap_or_else(|p| p.into_inner()).is_some(),
            TargetKind::Builtin(..) => false,
        }
    }

    /// Raises the first exception of a Python target since the last call.
    pub fn take_error(&self) -> PyResult<()> {
        match self {
            TargetKind::Python(c) => match c.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(e) => Err(e),
                None => Ok(()),
            },
            TargetKind::Builtin(..) => Ok(()),
        }
    }
}

/// A target density: `Target({"phi4": {"lattice": [8, 8], "m2": -4.0,
/// "lambda": 8.0}})`, `Target({"target": {"kind": "mog4"}})`, or
/// `Target.from_function(f, dim)`.
#[pyclass(name = "Target", module = "fieldflow._native", frozen)]
pub struct PyTarget {
    /// The density.
    pub kind: Arc<TargetKind>,
}

impl PyTarget {
    /// Builds a built-in target from the config table.
    pub fn from_config(table: toml::Table) -> anyhow::Result<Self> {
        let t = RunTarget::from_table(&table, "config")?;
        let mut section = toml::Table::new();
        for k in ["phi4", "target"] {
            if let Some(v) = table.get(k) {
                section.insert(k.into(), v.clone());
            }
        }
        Ok(PyTarget {
            kind: Arc::new(TargetKind::Builtin(t, section)),
        })
    }
}

/// `x` as rows of the target, or a ValueError.
fn batch(kind: &TargetKind, x: &PyReadonlyArrayDyn<'_, f64>) -> PyResult<Array2<f64>> {
    rows(x.as_array(), kind.as_target().dim(), "x")
}

#[pymethods]
impl PyTarget {
    /// A target from a config dict holding a `phi4` or a `target` section.
    #[new]
    fn new(config: &Bound<'_, PyDict>) -> PyResult<Self> {
        Self::from_config(to_table(config, "")?).map_err(err)
    }

    /// A target given by a Python function `f(x) -> (log_p, score)` of a
    /// batch `x` of shape `[n, dim]` (float64): `log_p` of shape `[n]`,
    /// `score` = ∇ log p̃ of shape `[n, dim]`. It is called once per batch.
    #[staticmethod]
    #[pyo3(signature = (f, dim, name = None))]
    fn from_function(f: Bound<'_, PyAny>, dim: usize, name: Option<String>) -> PyResult<Self> {
        if !f.is_callable() {
            return Err(PyValueError::new_err("f: not callable"));
        }
        if dim == 0 {
            return Err(PyValueError::new_err("dim = 0: must be >= 1"));
        }
        let name = match name {
            Some(n) => n,
            None => f
                .getattr("__name__")
                .and_then(|n| n.extract::<String>())
                .unwrap_or_else(|_| "f".into()),
        };
        Ok(PyTarget {
            kind: Arc::new(TargetKind::Python(CallableTarget {
                f: f.unbind(),
                dim,
                name,
                error: Mutex::new(None),
                calls: AtomicU64::new(0),
            })),
        })
    }

    /// Number of values of one configuration.
    #[getter]
    fn dim(&self) -> usize {
        self.kind.as_target().dim()
    }

    /// Shape of one configuration (lattice extents, or `[dim]`).
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.kind.shape()
    }

    /// log Z where it is known exactly, else None.
    #[getter]
    fn log_z(&self) -> Option<f64> {
        self.kind.as_target().log_z()
    }

    /// Calls of a Python target's function so far (0 for built-in targets).
    #[getter]
    fn calls(&self) -> u64 {
        match &*self.kind {
            TargetKind::Python(c) => c.calls.load(Ordering::Relaxed),
            TargetKind::Builtin(..) => 0,
        }
    }

    /// The target's config section (built-in targets), else None.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        match &*self.kind {
            TargetKind::Builtin(_, t) => Ok(Some(crate::convert::from_table(py, t)?)),
            TargetKind::Python(_) => Ok(None),
        }
    }

    /// log p̃ of every configuration of the batch `x` (`[n, *shape]`).
    fn log_prob<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let x = f64_array(x, "x")?;
        let xs = batch(&self.kind, &x)?;
        let kind = self.kind.clone();
        let out = py.detach(move || {
            let mut out = ndarray::Array1::zeros(xs.nrows());
            kind.as_target()
                .log_prob_batch(xs.view(), out.view_mut(), Par::default());
            out
        });
        self.kind.take_error()?;
        Ok(out.into_dyn().into_pyarray(py))
    }

    /// log p̃ and the score ∇ log p̃ (shaped like `x`) of the batch `x`.
    fn log_prob_and_score<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<ArrayPair<'py, PyArrayDyn<f64>, PyArrayDyn<f64>>> {
        let x = f64_array(x, "x")?;
        let shape = x.as_array().shape().to_vec();
        let xs = batch(&self.kind, &x)?;
        let kind = self.kind.clone();
        let (lp, sc) = py.detach(move || {
            let mut lp = ndarray::Array1::zeros(xs.nrows());
            let mut sc = Array2::zeros(xs.raw_dim());
            kind.as_target()
                .log_prob_and_score_batch(xs.view(), sc.view_mut(), lp.view_mut(), Par::default());
            (lp, sc)
        });
        self.kind.take_error()?;
        let sc = sc.into_shape_with_order(shape).map_err(crate::convert::value_error)?;
        Ok((lp.into_dyn().into_pyarray(py), sc.into_pyarray(py)))
    }

    /// The score ∇ log p̃ (shaped like `x`) of the batch `x`.
    fn score<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        Ok(self.log_prob_and_score(py, x)?.1)
    }

    /// The mode of every configuration of the batch `x` (φ⁴: 0 for M < 0,
    /// 1 for M ≥ 0; mixtures: the nearest mean); built-in targets only.
    fn modes<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, numpy::PyArray1<usize>>> {
        let Some(modes) = self.kind.builtin().and_then(|t| t.modes()) else {
            return Err(PyValueError::new_err("modes: a Python target has no mode structure"));
        };
        let x = f64_array(x, "x")?;
        let xs = batch(&self.kind, &x)?;
        Ok(modes.assign_batch(xs.view()).into_pyarray(py))
    }

    /// The exact weights of the modes where known (mixtures), else None.
    #[getter]
    fn mode_weights(&self) -> Option<Vec<f64>> {
        self.kind
            .builtin()
            .and_then(|t| t.modes())
            .and_then(|m| m.true_weights())
    }

    fn __repr__(&self) -> String {
        format!("Target({})", self.kind.as_target().describe())
    }
}
