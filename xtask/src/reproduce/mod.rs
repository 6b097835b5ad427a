//! `cargo xtask reproduce [mog4|mog8|phi4|snf|modes|flowmcmc|diffusion|all] [--quick] [--seeds N] [--out DIR] …`:
//! the seed papers' experiments, driven through the release `fieldflow`
//! binary and the configs under `data/configs/reproduce/`.
//!
//! * `mog4`, `mog8` ([`mog`]): FKL vs RKL vs SM vs ScoreNF from a small
//!   exact-sample set (`mogX.toml`), several seeds; last metrics record of
//!   each run (ESS, IMH acceptance, held-out NLL, mode TV, collapsed modes,
//!   covering) and an IMH chain's mode weights vs the exact ones; then
//!   annealed vs plain RKL (`mogX_annealed.toml` against the plain-RKL runs).
//! * `phi4` ([`phi4`], [`phi4_sweep`]): HMC ensembles of the tutorial set and
//!   E1–E5 (`data/configs/{tutorial,e1..e5}.toml`); the four losses trained on
//!   `n_train` configurations of each (`phi4.toml`), IMH-sampled and compared
//!   with HMC (`fieldflow compare`: ⟨|M|⟩, χ₂, U₄, τ_int ratios, cost per
//!   independent sample); a training-set size sweep (ScoreNF vs FKL) on the
//!   tutorial set.
//! * `snf` ([`snf`]): the double-well example of crates/snf (RealNVP vs SNF).
//! * `modes` ([`modes`]): the multimodal benchmark (issue 14 §1): mode
//!   weights after IMH and IS on MOG-4/8, two modes in d dimensions,
//!   separated mixtures and the tilted 1D φ⁴ chain, for every recipe of
//!   [`modes::RECIPES`] with affine and spline couplings, and SLIPS
//!   ([`modes_slips`], no training) (`--full`: every dimension; `--peers`:
//!   flowMC side by side).
//! * `flowmcmc` ([`flowmcmc`]): the flow-MCMC benchmark (issue 15): adaptive
//!   flow-MCMC from a broad start, then IMH, i-SIR and neutra-MCMC with the
//!   adapted flow, on two modes in d = 8 … 128 and MOG-4/8.
//! * `diffusion` ([`diffusion`]): critical slowing down of score training
//!   for the free field (issue 17): gradient-descent steps against L for
//!   one-layer, two-layer and local scores, d = 1 and 2.
//!
//! Every stage's output is kept (`ensembles/`, `models/`, `samples/`,
//! `configs/`, `logs/`) and reused by a later invocation when its resolved
//! config and inputs are unchanged (`--force` reruns everything). Tables
//! (Markdown and CSV), SVG figures (fieldflow-plot, from the same records as
//! the tables) and `summary.md` go to the results folder. Errors over seeds
//! are standard errors of the mean (sample std / √n).
//!
//! The shared pieces: [`runner`] runs the CLI stages (train, sample, analyze,
//! compare) resumably and writes tables and figures; [`records`] holds one
//! run's numbers and the grid of runs over methods × seeds; [`table`] and
//! [`stats`] turn records into mean ± s.e. tables (Markdown and CSV);
//! [`config`] edits the TOML configs; [`cli_json`] reads the CLI's `--json`
//! output; [`mode_weights`] turns an IMH chain's mode fractions into values,
//! a table and a figure.
//!
//! A new experiment is a module with a `run(&mut Runner)` and a line in
//! [`EXPERIMENTS`]. A benchmark over targets × methods × seeds calls
//! [`records::grid`] once per target (each run through
//! [`Runner::train_and_sample`], skipped when its outputs are up to date),
//! writes [`records::flatten`] of all targets with [`records::write_raw`],
//! and one [`table::Table::aggregate`] (mean ± s.e. over seeds) per target
//! through [`Runner::table`] (Markdown and CSV).

mod args;
pub use args::HELP;
mod cli_json;
mod config;
mod diffusion;
mod flowmcmc;
mod mode_weights;
mod modes;
mod modes_free_energy;
mod modes_lrds;
mod modes_slips;
mod mog;
mod phi4;
mod phi4_sweep;
mod records;
mod runner;
mod snf;
mod stats;
mod table;

use crate::{run_cmd, workspace_root};
use anyhow::{bail, Context, Result};
use runner::Runner;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// One experiment: `cargo xtask reproduce NAME` runs `run`.
pub struct Experiment {
    pub name: &'static str,
    pub run: fn(&mut Runner) -> Result<()>,
}

/// The experiments, in the order `all` (and no name) runs them.
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "mog4",
        run: |r| mog::run(r, "mog4"),
    },
    Experiment {
        name: "mog8",
        run: |r| mog::run(r, "mog8"),
    },
    Experiment {
        name: "phi4",
        run: phi4::run,
    },
    Experiment {
        name: "snf",
        run: snf::run,
    },
    Experiment {
        name: "modes",
        run: modes::run,
    },
    Experiment {
        name: "flowmcmc",
        run: flowmcmc::run,
    },
    Experiment {
        name: "diffusion",
        run: diffusion::run,
    },
];

/// Runs `cargo xtask reproduce …`.
pub fn run(rest: &[String]) -> Result<()> {
    let opts = args::parse_args(rest)?;
    run_cmd("cargo", &["build", "--release", "--package", "fieldflow"])?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { workspace_root().join(p) })
        .unwrap_or_else(|| workspace_root().join("target"));
    let exe = target_dir.join("release/fieldflow");
    if !exe.exists() {
        bail!("{}: not found after the build", exe.display());
    }
    for sub in ["configs", "ensembles", "models", "samples", "logs"] {
        let d = opts.out.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("{}: cannot create folder", d.display()))?;
    }
    let mut r = Runner::new(exe, opts.out.clone(), opts.force, opts.scale.clone());
    let mut timings = vec![];
    for e in &opts.experiments {
        let t0 = Instant::now();
        (e.run)(&mut r)?;
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("reproduce: {} done in {secs:.0} s", e.name);
        timings.push((e.name, secs));
    }
    let summary = summary(&r, &opts, &timings);
    let path = opts.out.join("summary.md");
    std::fs::write(&path, summary).with_context(|| format!("{}: cannot write", path.display()))?;
    eprintln!(
        "reproduce: tables in {}, overview {}",
        opts.out.display(),
        path.display()
    );
    Ok(())
}

/// `summary.md`: the invocation, the wall clock of every experiment and all
/// sections in order.
fn summary(r: &Runner, opts: &args::Opts, timings: &[(&str, f64)]) -> String {
    let s = &opts.scale;
    let names: Vec<&str> = opts.experiments.iter().map(|e| e.name).collect();
    let mut md = String::from("# fieldflow reproduce: results\n\n");
    let _ = writeln!(
        md,
        "`cargo xtask reproduce {}{}` — seeds {}, IMH {} chains × {} samples, φ⁴ sets {:?}, sweep {:?}, \
         mixture steps {}, φ⁴ steps {}, HMC n_cfg {}, {} threads available, {} run(s) at once.\n",
        names.join(" "),
        if s.quick { " --quick" } else { "" },
        s.seeds,
        s.chains,
        s.samples,
        s.sets,
        s.sweep,
        s.mix_steps.map_or("config".into(), |v| v.to_string()),
        s.phi4_steps.map_or("config".into(), |v| v.to_string()),
        s.n_cfg.map_or("config".into(), |v| v.to_string()),
        args::cores(),
        s.jobs
    );
    let _ = writeln!(md, "| mode | wall clock (s) |\n|---|---|");
    for (m, t) in timings {
        let _ = writeln!(md, "| {m} | {t:.0} |");
    }
    md.push('\n');
    for (title, body) in &r.sections {
        let _ = writeln!(md, "## {title}\n\n{body}");
    }
    md
}
