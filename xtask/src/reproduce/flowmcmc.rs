//! `reproduce flowmcmc`: the flow-MCMC benchmark of issue 15 (docs/RESULTS.md,
//! "Flow-MCMC benchmark"). Per target (two modes in d = 8 … 128, MOG-4,
//! MOG-8) and seed: adaptive flow-MCMC from a practically untrained flow and
//! walkers spread by a broad Gaussian, then IMH, i-SIR and neutra-MCMC with
//! the adapted flow; mode weights with Γ-method errors, τ_int of the mode
//! indicator, acceptance, wall time and time per independent sample.
//!
//! The runs are made by `data/experiments/flowmcmc/driver.py` (resumable: a
//! run already in `flowmcmc.jsonl` of the results folder is skipped) and
//! tabulated by `table.py --default`. `--quick`: two modes in d = 16 and
//! MOG-4, 20 rounds.

use super::runner::{Captured, Runner};
use crate::workspace_root;
use anyhow::{bail, Result};
use std::path::Path;

/// Runs the driver into the results folder and adds its table.
pub fn run(r: &mut Runner) -> Result<()> {
    let dir = workspace_root().join("data/experiments/flowmcmc");
    let records = r.out.join("flowmcmc.jsonl");
    let mut args: Vec<String> = vec![
        dir.join("driver.py").display().to_string(),
        "--out".into(),
        records.display().to_string(),
        "--seeds".into(),
    ];
    args.extend((1..=r.scale.seeds).map(|s| s.to_string()));
    if r.scale.quick {
        args.extend(["--only", "two_modes:16", "mog4", "--rounds", "20"].map(String::from));
    }
    let python = Path::new("python3");
    let run = Captured::run(python, &args)?;
    if !run.ok {
        bail!("flowmcmc driver failed: {}", run.stderr.trim());
    }
    let table = Captured::run(
        python,
        &[
            dir.join("table.py").display().to_string(),
            records.display().to_string(),
            "--default".into(),
        ],
    )?;
    if !table.ok {
        bail!("flowmcmc table failed: {}", table.stderr.trim());
    }
    r.sections.push((
        "Flow-MCMC benchmark (adaptive, IMH, i-SIR, neutra; issue 15)".into(),
        table.stdout,
    ));
    Ok(())
}
