//! `fieldflow._native`: the Rust side of the Python package (python/fieldflow).
//!
//! The API mirrors the command line's pipeline with numpy arrays and plain
//! dicts equal to the TOML sections (docs/FORMATS.md): targets
//! ([`target::PyTarget`]: lattice φ⁴, the synthetic targets, or a Python
//! function), `generate` (HMC / Metropolis ensembles), `train` (a flow, or an
//! SNF, → [`model::PyModel`]), the exact samplers `imh` (and i-SIR),
//! `importance`, and the CLI's `sample` methods with local moves (hybrid,
//! global-local, neutra, adaptive: [`sample::sample`], [`sample::adaptive`]),
//! `free_energy` (mode weights by free-energy integration) and `analyze`
//! (Γ-method). Every stage calls the library
//! functions the CLI calls (`fieldflow` crate's lib, crates/*).
//!
//! The GIL is released while Rust computes; a Python target takes it once
//! per batch (see [`target`]). Errors are `ValueError`s carrying the CLI's
//! one-line message.

mod analyze;
mod convert;
mod free_energy;
mod generate;
mod model;
mod sample;
mod target;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<target::PyTarget>()?;
    m.add_class::<model::PyModel>()?;
    m.add_function(wrap_pyfunction!(generate::generate, m)?)?;
    m.add_function(wrap_pyfunction!(model::train, m)?)?;
    m.add_function(wrap_pyfunction!(sample::imh, m)?)?;
    m.add_function(wrap_pyfunction!(sample::importance, m)?)?;
    m.add_function(wrap_pyfunction!(sample::sample, m)?)?;
    m.add_function(wrap_pyfunction!(sample::adaptive, m)?)?;
    m.add_function(wrap_pyfunction!(analyze::analyze, m)?)?;
    m.add_function(wrap_pyfunction!(free_energy::free_energy, m)?)?;
    m.add_function(wrap_pyfunction!(analyze::analyze_file, m)?)?;
    Ok(())
}
