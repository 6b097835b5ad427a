//! The PyTorch CPU peer's Python environment: a venv under
//! `target/torch-venv` with the pinned packages of
//! `xtask/peers/requirements-torch.txt`, created once and reused.
//!
//! The CPU-only torch wheels (≈ 200 MB) live on PyTorch's own package index;
//! where that index cannot be reached, pip falls back to PyPI, whose default
//! torch wheel is the CUDA build (≈ 5 GB installed; it runs on the CPU all
//! the same). The step prints which index it used.

use crate::workspace_root;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the venv lives (under target/, never part of CI).
pub const VENV: &str = "target/torch-venv";
/// The pinned requirements of the peer (relative to the workspace root).
pub const REQUIREMENTS: &str = "xtask/peers/requirements-torch.txt";
/// PyTorch's index of CPU-only wheels, tried first.
const CPU_INDEX: &str = "https://download.pytorch.org/whl/cpu";

/// The venv's python if torch and numpy import, else None.
fn ready(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import numpy, torch; print(torch.__version__)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run(program: &Path, args: &[&str]) -> Result<bool> {
    eprintln!("xtask: $ {} {}", program.display(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("could not start `{}`", program.display()))?;
    Ok(status.success())
}

/// Returns the venv's python, creating the venv and installing the pinned
/// torch first when they are missing (idempotent: an existing working venv
/// is used as it is).
pub fn ensure() -> Result<PathBuf> {
    let root = workspace_root();
    let venv = root.join(VENV);
    let python = venv.join("bin/python");
    if let Some(version) = ready(&python) {
        eprintln!("xtask: PyTorch {version} already installed in {VENV}");
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("xtask: creating the venv {VENV}");
        if !run(
            Path::new("python3"),
            &["-m", "venv", venv.to_str().context("non-UTF-8 path")?],
        )? {
            bail!("`python3 -m venv {VENV}` failed (Debian: apt-get install python3-venv)");
        }
    }
    let req = root.join(REQUIREMENTS);
    let req = req.to_str().context("non-UTF-8 path")?;
    eprintln!("xtask: installing PyTorch into {VENV}: CPU-only wheels first ({CPU_INDEX})");
    let cpu_ok = run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--retries",
            "0",
            "--timeout",
            "15",
            "--extra-index-url",
            CPU_INDEX,
            "--only-binary",
            ":all:",
            "torch==2.15.0+cpu",
        ],
    )?;
    if cpu_ok {
        eprintln!("xtask: installed the CPU-only torch wheel");
    } else {
        eprintln!(
            "xtask: the CPU-only index is not reachable; installing PyPI's default torch wheel (CUDA build, ≈ 5 GB)"
        );
    }
    if !run(&python, &["-m", "pip", "install", "-r", req])? {
        bail!("`pip install -r {REQUIREMENTS}` failed in {VENV}");
    }
    match ready(&python) {
        Some(version) => {
            eprintln!("xtask: PyTorch {version} installed in {VENV}");
            Ok(python)
        }
        None => bail!("torch does not import in {VENV} after the install"),
    }
}
