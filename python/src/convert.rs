//! Conversions between Python values and the Rust side: dicts ↔ TOML tables
//! (a config dict is the TOML file's content), errors → Python exceptions,
//! and batches of configurations ↔ `[n, dim]` rows.

use ndarray::{Array2, ArrayViewD, Ix2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A library error as a `ValueError` with the CLI's one-line message.
pub fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{e:#}").replace('\n', "; "))
}

/// anyhow's `{:#}` (context: cause) as a `ValueError`.
pub fn err(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}").replace('\n', "; "))
}

/// A Python value as TOML (`None` is not a TOML value: dict entries that
/// are `None` are left out by [`to_table`]).
fn to_value(v: &Bound<'_, PyAny>, path: &str) -> PyResult<toml::Value> {
    if v.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        let i: i64 = v
            .extract()
            .map_err(|_| PyValueError::new_err(format!("{path} = {v}: does not fit a 64-bit integer")))?;
        return Ok(toml::Value::Integer(i));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(v.extract()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(v.extract()?));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        return Ok(toml::Value::Table(to_table(d, path)?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in v.try_iter()?.enumerate() {
            out.push(to_value(&item?, &format!("{path}[{i}]"))?);
        }
        return Ok(toml::Value::Array(out));
    }
    // numpy scalars and the like: as float or int when they convert.
    if let Ok(i) = v.extract::<i64>() {
        if v.hasattr("dtype")? && v.getattr("dtype")?.getattr("kind")?.extract::<String>()? == "i" {
            return Ok(toml::Value::Integer(i));
        }
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(toml::Value::Float(f));
    }
    Err(PyTypeError::new_err(format!(
        "{path}: a config value must be a bool, int, float, str, list or dict, not {}",
        v.get_type().name()?
    )))
}

/// A dict as a TOML table (keys must be strings; `None` values are left out).
pub fn to_table(d: &Bound<'_, PyDict>, path: &str) -> PyResult<toml::Table> {
    let mut t = toml::Table::new();
    for (k, v) in d.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{path}: config keys must be strings, found {k}")))?;
        if v.is_none() {
            continue;
        }
        let p = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        t.insert(key, to_value(&v, &p)?);
    }
    Ok(t)
}

/// A TOML value as a Python object.
pub fn from_value<'py>(py: Python<'py>, v: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        toml::Value::String(s) => s.into_pyobject(py)?.into_any(),
        toml::Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        toml::Value::Float(f) => f.into_pyobject(py)?.into_any(),
        toml::Value::Boolean(b) => b.into_pyobject(py)?.to_owned().into_any(),
        toml::Value::Datetime(d) => d.to_string().into_pyobject(py)?.into_any(),
        toml::Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(from_value(py, x)?)?;
            }
            l.into_any()
        }
        toml::Value::Table(t) => from_table(py, t)?.into_any(),
    })
}

/// A TOML table as a dict.
pub fn from_table<'py>(py: Python<'py>, t: &toml::Table) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in t {
        d.set_item(k, from_value(py, v)?)?;
    }
    Ok(d)
}

/// A batch `[n, *shape]` (or `[n, dim]`) as `[n, dim]` rows; `what` names
/// the argument in the error.
pub fn rows(x: ArrayViewD<'_, f64>, dim: usize, what: &str) -> PyResult<Array2<f64>> {
    let shape = x.shape().to_vec();
    let per_row: usize = shape.iter().skip(1).product();
    if shape.len() < 2 || per_row != dim {
        return Err(PyValueError::new_err(format!(
            "{what}: shape {shape:?} is not a batch [n, …] of configurations with {dim} values each"
        )));
    }
    let n = shape[0];
    let flat = x
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((n, dim))
        .map_err(value_error)?;
    flat.into_dimensionality::<Ix2>().map_err(value_error)
}

/// Any array-like (lists, float32, non-contiguous arrays) as a float64
/// numpy array, or a ValueError naming `what`.
pub fn f64_array<'py>(x: &Bound<'py, PyAny>, what: &str) -> PyResult<numpy::PyReadonlyArrayDyn<'py, f64>> {
    if let Ok(a) = x.extract::<numpy::PyReadonlyArrayDyn<'py, f64>>() {
        return Ok(a);
    }
    let np = x.py().import("numpy")?;
    let a = np
        .call_method1("asarray", (x, "float64"))
        .map_err(|e| PyValueError::new_err(format!("{what}: not convertible to a float64 array ({e})")))?;
    a.extract()
        .map_err(|e| PyValueError::new_err(format!("{what}: not convertible to a float64 array ({e})")))
}

/// Two arrays handed to Python together (a batch's values and draws, or
/// log p̃ and the score).
pub type ArrayPair<'py, A, B> = (pyo3::Bound<'py, A>, pyo3::Bound<'py, B>);
