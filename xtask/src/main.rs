//! Project chores for fieldflow: `cargo xtask <command>`.
//!
//! * `setup`    – check the system packages (libhdf5, OpenBLAS, pkg-config) and
//!   install the missing ones with apt-get when running as root; otherwise print
//!   the exact command and exit non-zero. Every other command runs it first.
//! * `test`     – the whole test suite (formatting check, all unit, integration
//!   and doc tests in release mode, the Python package's pytest suite in a
//!   venv under target/, see `python.rs`). `.ci/run` calls this.
//! * `pytest`   – only the Python package's part of `test`.
//! * `demo`     – the main job: a complete small pipeline into `results/demo/`.
//! * `lint`     – `cargo fmt --check` and `cargo clippy --all-targets -D warnings`.
//! * `bench`    – the criterion benches (optionally one crate: `bench lattice`).
//! * `reproduce` – the seed papers' experiments (see `reproduce/mod.rs`).
//! * `compare`  – fieldflow against a peer on this machine (`compare torch`:
//!   PyTorch CPU in a venv under target/, see `compare/mod.rs`); never in CI.
//! * `validate` – the long validation tests (`#[ignore]`d in the default
//!   suite because they take minutes), in release mode, then the pytest
//!   suite with its opt-in notebook check (python/tests/test_notebook.py).

mod compare;
mod python;
mod reproduce;
mod setup;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    // `cargo xtask CMD --help` prints the command's usage and does nothing
    // else (the commands' own parsers would read `--help` as a flag).
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", command_help(cmd));
        return Ok(());
    }
    match cmd {
        "setup" => setup::ensure_system_packages(),
        "test" => {
            setup::ensure_system_packages()?;
            test(rest)
        }
        "pytest" => {
            setup::ensure_system_packages()?;
            python::test()
        }
        "lint" => {
            setup::ensure_system_packages()?;
            lint()
        }
        "demo" => {
            setup::ensure_system_packages()?;
            demo(rest)
        }
        "bench" => {
            setup::ensure_system_packages()?;
            bench(rest)
        }
        "validate" => {
            setup::ensure_system_packages()?;
            run_cmd("cargo", &["test", "--release", "--workspace", "--", "--ignored"])?;
            // The opt-in pytest check (progress bars in a real notebook kernel).
            python::test()?;
            python::notebook()
        }
        "reproduce" => {
            setup::ensure_system_packages()?;
            reproduce::run(rest)
        }
        "compare" => {
            setup::ensure_system_packages()?;
            compare::run(rest)
        }
        "help" | "-h" | "--help" => {
            println!("{}", HELP);
            Ok(())
        }
        other => bail!("unknown command `{other}`\n{HELP}"),
    }
}

const HELP: &str = "usage: cargo xtask <command>
  setup            install missing system packages (apt-get, as root)
  test             the whole test suite (fmt check, unit, integration, doc tests, pytest)
  pytest           only the Python package's tests (venv in target/py-venv, maturin, pytest)
  demo [--quick]   the main job: generate, analyze ... into results/demo/
  lint             cargo fmt --check and clippy -D warnings
  bench [crate]    criterion benches (all, or one crate: lattice, stats, flows)
  validate         the long validation tests (ignored in `test`; minutes)
  reproduce [mog4|mog8|phi4|snf|modes|all] [--quick] [--seeds N] [--out DIR] …
                   the papers' experiments: tables in results/reproduce/
  compare torch [--quick] [--threads 1,2] [--batches 64,1024] [--lattice 8] …
                   fieldflow vs PyTorch CPU (venv under target/), steps/s; not in CI";

/// The usage of command `cmd` (the whole list for an unknown one).
fn command_help(cmd: &str) -> String {
    match cmd {
        "reproduce" => format!("usage: cargo xtask {}", reproduce::HELP),
        "compare" => format!("usage: cargo xtask {}", compare::HELP),
        _ => HELP
            .lines()
            .skip(1)
            .find(|l| l.split_whitespace().next() == Some(cmd))
            .map_or_else(
                || HELP.to_string(),
                |l| format!("usage: cargo xtask {}", l.trim_start()),
            ),
    }
}

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Runs `program args…` in the workspace root, failing with its exit status.
pub fn run_cmd(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn test(rest: &[String]) -> Result<()> {
    run_cmd("cargo", &["fmt", "--all", "--check"])?;
    // Lints are part of the suite (the release profile, so the build is
    // shared with the tests below).
    run_cmd(
        "cargo",
        &[
            "clippy",
            "--release",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // fieldflow-py (python/) has no Rust tests: its tests are the pytest
    // suite below, and maturin builds it (as an extension module) there.
    let mut args = vec![
        "test",
        "--release",
        "--workspace",
        "--exclude",
        "fieldflow-py",
        "--all-targets",
    ];
    args.extend(rest.iter().map(String::as_str));
    run_cmd("cargo", &args)?;
    run_cmd("cargo", &["test", "--release", "--workspace", "--doc"])?;
    // The Python package (python/): venv under target/, maturin build,
    // pytest. FIELDFLOW_SKIP_PYTHON=1 skips this part.
    if std::env::var_os("FIELDFLOW_SKIP_PYTHON").is_some() {
        eprintln!("xtask: FIELDFLOW_SKIP_PYTHON set: Python tests skipped");
    } else {
        python::test()?;
    }
    // The MPI feature (docs/MPI.md): OpenMPI from apt, the CLI rebuilt with
    // rsmpi, and its tests launching `mpirun -n 2` on loopback.
    // FIELDFLOW_SKIP_MPI=1 skips this part.
    if std::env::var_os("FIELDFLOW_SKIP_MPI").is_some() {
        eprintln!("xtask: FIELDFLOW_SKIP_MPI set: MPI tests skipped");
        return Ok(());
    }
    setup::ensure_mpi_packages()?;
    run_cmd(
        "cargo",
        &[
            "test",
            "--release",
            "--package",
            "fieldflow",
            "--features",
            "mpi",
            "--test",
            "mpi",
        ],
    )
}

fn lint() -> Result<()> {
    run_cmd("cargo", &["fmt", "--all", "--check"])?;
    run_cmd(
        "cargo",
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    )
}

fn bench(rest: &[String]) -> Result<()> {
    let mut args = vec!["bench".to_string()];
    match rest.first() {
        Some(krate) => args.extend(["-p".into(), format!("fieldflow-{krate}")]),
        None => args.push("--workspace".into()),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_cmd("cargo", &args)
}

fn demo(rest: &[String]) -> Result<()> {
    let quick = rest.iter().any(|a| a == "--quick");
    run_cmd("cargo", &["build", "--release", "--package", "fieldflow"])?;
    let exe = workspace_root().join("target/release/fieldflow");
    let out = workspace_root().join(if quick { "results/demo-quick" } else { "results/demo" });
    let mut args = vec![
        "demo".to_string(),
        "--out".into(),
        out.display().to_string(),
        "--force".into(),
    ];
    if quick {
        args.push("--quick".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_cmd(exe.to_str().context("non-UTF-8 path")?, &args)
}

#[cfg(test)]
mod tests {
    use super::command_help;

    #[test]
    fn every_command_has_its_own_usage_line() {
        assert!(command_help("compare").starts_with("usage: cargo xtask compare torch"));
        assert!(command_help("reproduce").starts_with("usage: cargo xtask reproduce [mog4"));
        assert!(command_help("demo").starts_with("usage: cargo xtask demo [--quick]"));
        assert!(command_help("bench").starts_with("usage: cargo xtask bench [crate]"));
        // An unknown command gets the whole list.
        assert!(command_help("frobnicate").starts_with("usage: cargo xtask <command>"));
    }
}
