//! The Python package's tests (python/, issue 19): a venv under
//! `target/py-venv` with the pinned test requirements from PyPI
//! (`python/requirements-test.txt`: maturin, numpy, pytest, pyerrors), the
//! extension built by maturin (in the workspace's target/, so it shares the
//! release build of `cargo test`) and installed with pip, then pytest on
//! `python/tests`.
//!
//! `python3 -m venv` needs Debian's python3-venv (and the build
//! python3-dev) where python3 is Debian's; they are installed like the
//! other system packages when the venv cannot be created.

use crate::{run_cmd, setup, workspace_root};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// Where the venv lives.
pub const VENV: &str = "target/py-venv";
/// The pinned test requirements.
pub const REQUIREMENTS: &str = "python/requirements-test.txt";

fn create_venv(venv: &Path) -> Result<bool> {
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("could not start python3 (install Python 3 with venv)")?;
    Ok(status.success())
}

/// Creates the venv (once), installs the requirements and the package, and
/// runs pytest.
pub fn test() -> Result<()> {
    let root = workspace_root();
    let venv = root.join(VENV);
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("xtask: creating the venv {VENV}");
        if !create_venv(&venv)? {
            setup::ensure_python_packages()?;
            if !create_venv(&venv)? {
                bail!("`python3 -m venv {VENV}` failed");
            }
        }
    }
    let py = python.to_str().context("non-UTF-8 path")?;
    run_cmd(py, &["-m", "pip", "install", "-q", "-r", REQUIREMENTS])?;
    // maturin (the build backend, run by pip) must be on PATH.
    let mut path = OsString::from(venv.join("bin"));
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    eprintln!("xtask: $ {py} -m pip install --no-build-isolation --force-reinstall --no-deps ./python");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-build-isolation",
            "--force-reinstall",
            "--no-deps",
            "./python",
        ])
        .env("PATH", &path)
        .current_dir(&root)
        .status()
        .context("could not run pip")?;
    if !status.success() {
        bail!("building and installing the Python package (./python) failed with {status}");
    }
    run_cmd(py, &["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"])
}

/// The notebook check that the default run skips (python/tests/
/// test_notebook.py: progress bars in a real Jupyter kernel): installs
/// python/requirements-notebook.txt into the venv of [`test`] (which must
/// have run) and runs it with FIELDFLOW_NOTEBOOK=1. Part of `cargo xtask
/// validate`.
pub fn notebook() -> Result<()> {
    let root = workspace_root();
    let python = root.join(VENV).join("bin/python");
    let py = python.to_str().context("non-UTF-8 path")?;
    run_cmd(
        py,
        &["-m", "pip", "install", "-q", "-r", "python/requirements-notebook.txt"],
    )?;
    eprintln!("xtask: $ FIELDFLOW_NOTEBOOK=1 {py} -m pytest -q -m slow python/tests/test_notebook.py");
    let status = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "slow",
            "python/tests/test_notebook.py",
        ])
        .env("FIELDFLOW_NOTEBOOK", "1")
        .current_dir(&root)
        .status()
        .context("could not run pytest")?;
    if !status.success() {
        bail!("the notebook check failed with {status}");
    }
    Ok(())
}
