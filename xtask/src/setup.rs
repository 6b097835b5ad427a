//! System packages the project needs, installed from Debian's archive.
//!
//! fieldflow links the system libhdf5 (through hdf5-metno) and OpenBLAS
//! (through ndarray-linalg, feature openblas-system); both are found by
//! pkg-config. On a fresh machine none of them is present, so every xtask
//! command first checks them with `dpkg-query` and, when running as root,
//! installs the missing ones with `apt-get` (refreshing the package lists
//! first: a fresh machine's lists are stale). Without root it prints the
//! exact command and fails.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Debian packages the build needs.
pub const PACKAGES: &[&str] = &["libhdf5-dev", "libopenblas-dev", "pkg-config"];

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Debian packages of the optional `mpi` feature (DEPENDENCIES.md): OpenMPI
/// (runtime, `mpirun`, headers) and libclang for rsmpi's bindgen.
pub const MPI_PACKAGES: &[&str] = &["openmpi-bin", "libopenmpi-dev", "libclang-dev"];

/// Debian packages of the Python package's tests where python3 is Debian's
/// (a venv, and the headers maturin builds against).
pub const PYTHON_PACKAGES: &[&str] = &["python3-venv", "python3-dev"];

/// Installs what is missing of [`PYTHON_PACKAGES`] (root) or explains how.
pub fn ensure_python_packages() -> Result<()> {
    ensure_packages(PYTHON_PACKAGES)
}

/// Installs what is missing of [`PACKAGES`] (root) or explains how (non-root).
pub fn ensure_system_packages() -> Result<()> {
    ensure_packages(PACKAGES)
}

/// Installs what is missing of [`MPI_PACKAGES`] (root) or explains how.
pub fn ensure_mpi_packages() -> Result<()> {
    ensure_packages(MPI_PACKAGES)
}

fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!(
            "missing system packages: {}\nrun as root:\n    {install}",
            missing.join(", ")
        );
    }
    eprintln!("xtask: installing system packages: {}", missing.join(" "));
    let status = Command::new("sh")
        .args(["-c", &install])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("could not run apt-get")?;
    if !status.success() {
        bail!("`{install}` failed with {status}");
    }
    let still: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p)).collect();
    if !still.is_empty() {
        bail!("packages still missing after apt-get: {}", still.join(", "));
    }
    Ok(())
}
