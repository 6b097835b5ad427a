//! `fieldflow generate`: MCMC ensembles of lattice φ⁴ (HMC or local Metropolis).
//!
//! The configuration comes from a TOML file (`--config`, see data/configs/)
//! and/or flags; flags override single keys. Configurations are written in
//! blocks of `block` per chain, each followed by a checkpoint and a flush, to
//! `OUT.partial`, renamed to OUT at the end. A killed or interrupted run
//! continues with `--resume` and produces exactly the file an uninterrupted
//! run would have produced: update t of chain c always uses the random stream
//! `seed.child(c).child(t)`, so the chains' state (field, update counter,
//! frozen step size) is all a resume needs.

mod settings;
use settings::resolve;
pub use settings::{GenerateArgs, GenerateConfig, Resolved};

use crate::blocks::{ensemble_spec, run_blocks};
use crate::config::{self};
use crate::interrupt;
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, check_resume_only};
use crate::progress;
use anyhow::{bail, Context, Result};
use fieldflow_core::run::ChainBlock;
use fieldflow_core::{Seed, Target};
use fieldflow_io::{EnsembleWriter, FileKind, Header};
use fieldflow_lattice::{init_states, thermalize, ChainState, Phi4Blocks, ENSEMBLE_SERIES};
use std::path::Path;
use std::time::Instant;

/// Runs `fieldflow generate` (one process, or the ranks of an MPI job).
pub fn run(args: GenerateArgs) -> Result<()> {
    interrupt::install();
    let dist = Dist::init()?;
    let r = run_on(&args, &dist);
    dist.finish(r)
}

/// The settings given with `--resume` (which takes only `--out`).
fn any_setting(args: &GenerateArgs) -> bool {
    args.config.is_some()
        || args.phi4.any()
        || args.algorithm.is_some()
        || args.n_therm.is_some()
        || args.n_cfg.is_some()
        || args.thin.is_some()
        || args.chains.is_some()
        || args.run.seed.is_some()
}

/// A resumed run: the writer, the stored configuration and the chains.
fn resume(args: &GenerateArgs) -> Result<(EnsembleWriter, Resolved, Vec<ChainState>)> {
    let (writer, resumed) = EnsembleWriter::resume(&args.run.out, args.run.force)?;
    let config: GenerateConfig = toml::from_str(&resumed.header.config).map_err(|e| {
        anyhow::anyhow!(
            "{}: stored config unreadable: {}",
            args.run.out.display(),
            config::one_line(&e.to_string())
        )
    })?;
    let resolved = config.validate()?;
    let states = match resumed.checkpoint {
        Some(cp) => serde_json::from_str::<Vec<ChainState>>(&cp.chains)
            .with_context(|| format!("{}: checkpoint unreadable", args.run.out.display()))?,
        None => Vec::new(),
    };
    Ok((writer, resolved, states))
}

/// A new output file for `resolved`.
fn create(args: &GenerateArgs, resolved: &Resolved) -> Result<EnsembleWriter> {
    create_writer(&args.run.out, args.run.force, resolved)
}

/// A new ensemble file at `out` for `resolved` (an existing file is refused
/// unless `force`).
pub fn create_writer(out: &Path, force: bool, resolved: &Resolved) -> Result<EnsembleWriter> {
    check_new_output(out, force)?;
    let c = &resolved.config;
    let header = Header::new(
        FileKind::Ensemble,
        toml::to_string(c)?,
        c.seed,
        resolved.target.describe(),
    )
    .with_attr("algorithm", resolved.algorithm.describe());
    Ok(EnsembleWriter::create(
        out,
        &header,
        &ensemble_spec(c.chains as usize, &c.phi4.lattice, &ENSEMBLE_SERIES),
        force,
    )?)
}

/// `fieldflow generate` on this process: rank r runs the contiguous block
/// of chains [`Dist::block`] (all of them in one process); chain c's
/// updates use the streams of (seed, c) whichever process runs it, so the
/// file rank 0 writes (it gathers every block) is the one-process file.
fn run_on(args: &GenerateArgs, dist: &Dist) -> Result<()> {
    let (mut writer, resolved, states) = if args.run.resume {
        if dist.is_parallel() {
            bail!("--resume is not supported with several MPI ranks: resume with one process (the file is the same)");
        }
        check_resume_only(any_setting(args), &args.run.out, "configuration")?;
        let (writer, resolved, states) = resume(args)?;
        (Some(writer), resolved, states)
    } else {
        let resolved = resolve(args)?.validate()?;
        let writer = if dist.is_root() {
            Some(dist.agree(create(args, &resolved))?)
        } else {
            dist.agree(Ok(()))?;
            None
        };
        (writer, resolved, Vec::new())
    };
    let quiet = args.run.quiet || !dist.is_root();
    let summary = generate(writer.as_mut(), &resolved, states, quiet, dist)?;
    let path = dist.agree(match writer {
        Some(w) => w.finish().map_err(anyhow::Error::from).map(Some),
        None => Ok(None),
    })?;
    if let (Some(path), false) = (path, quiet) {
        let mut text = summary.render(&path);
        if dist.is_parallel() {
            text += &format!("\n({} MPI ranks)", dist.size());
        }
        crate::output::emit(&text);
    }
    Ok(())
}

/// What a finished run prints.
pub struct GenerateSummary {
    /// Mean acceptance over all saved updates.
    pub acceptance: f64,
    /// ⟨ΔH⟩ (NaN for Metropolis).
    pub mean_delta_h: f64,
    /// ⟨e^{−ΔH}⟩ with its Γ-method error (NaN for Metropolis).
    pub exp_delta_h: (f64, f64),
    /// Frozen step size / width per chain.
    pub tuned: Vec<f64>,
    /// Seconds per update (all chains, wall clock / updates per chain).
    pub seconds_per_update: f64,
}

impl GenerateSummary {
    fn render(&self, path: &Path) -> String {
        let tuned: Vec<String> = self.tuned.iter().map(|t| format!("{t:.4}")).collect();
        let mut s = format!(
            "wrote {}\nacceptance        {:.4}\ntuned step/width  {}\n",
            path.display(),
            self.acceptance,
            tuned.join(" ")
        );
        if self.mean_delta_h.is_finite() {
            s += &format!(
                "<dH>              {:.5}\n<exp(-dH)>        {:.5} +- {:.5}  (Creutz: 1)\n",
                self.mean_delta_h, self.exp_delta_h.0, self.exp_delta_h.1
            );
        }
        s += &format!(
            "time per update   {:.3} ms (wall clock, chains in parallel)",
            1e3 * self.seconds_per_update
        );
        s
    }
}

/// Thermalizes this process's chains (unless they already are: a resumed
/// run) and writes the remaining blocks (rank 0; the others send theirs);
/// returns the run's summary (complete on rank 0).
pub fn generate(
    mut writer: Option<&mut EnsembleWriter>,
    r: &Resolved,
    mut states: Vec<ChainState>,
    quiet: bool,
    dist: &Dist,
) -> Result<GenerateSummary> {
    let c = &r.config;
    let seed = Seed::new(c.seed);
    let mine = dist.block(c.chains as usize, dist.rank());
    let start = Instant::now();
    if states.is_empty() {
        states = init_states(c.chains as usize, r.target.dim(), c.start, seed, &r.algorithm)
            .drain(mine.clone())
            .collect();
    }
    if !states[0].thermalized {
        let pb = progress::bar(c.n_therm * mine.len() as u64, "therm");
        if quiet {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        thermalize(&r.target, &r.algorithm, seed, &mut states, c.n_therm, &|k| pb.inc(k));
        pb.finish_and_clear();
    }
    let total = c.n_cfg as usize;
    let done = writer.as_ref().map_or(0, |w| w.n_cfg());
    let pb = progress::bar((total - done) as u64 * c.thin * mine.len() as u64, "generate");
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t_run = Instant::now();
    let mut stats = AcceptanceStats::default();
    let mut last_states = String::new();
    let mut observe = |b: &ChainBlock, _: usize| {
        stats.add(b);
        last_states = b.checkpoint_json();
        pb.set_message(format!("acc {:.3}", stats.acceptance()));
    };
    let mut chains = Phi4Blocks {
        target: &r.target,
        algorithm: &r.algorithm,
        seed,
        thin: c.thin,
        states,
    };
    run_blocks(
        &mut chains,
        writer.as_deref_mut(),
        dist,
        (total, c.block as usize),
        &mut observe,
        &|u| pb.inc(u),
    )
    .inspect_err(|_| pb.abandon())?;
    pb.finish_and_clear();
    let secs = t_run.elapsed().as_secs_f64();
    // Rank 0 knows every chain's frozen step size from the last block.
    let tuned: Vec<f64> = match serde_json::from_str::<Vec<ChainState>>(&last_states) {
        Ok(all) => all.iter().map(|s| s.tuned).collect(),
        Err(_) => chains.states.iter().map(|s| s.tuned).collect(),
    };
    dist.agree(match writer {
        Some(w) => w
            .set_attr("seconds", start.elapsed().as_secs_f64())
            .and_then(|()| w.set_attr("tuned", serde_json::to_string(&tuned).unwrap_or_default()))
            .map_err(anyhow::Error::from),
        None => Ok(()),
    })?;
    let updates = (total - done) as u64 * c.thin;
    Ok(GenerateSummary {
        acceptance: stats.acceptance(),
        mean_delta_h: stats.mean_delta_h(),
        exp_delta_h: stats.creutz(),
        tuned,
        seconds_per_update: if updates > 0 { secs / updates as f64 } else { f64::NAN },
    })
}

/// Accumulates acceptance and ΔH over the blocks of this run.
#[derive(Default)]
struct AcceptanceStats {
    acceptance: Vec<f64>,
    delta_h: Vec<Vec<f64>>,
}

impl AcceptanceStats {
    fn add(&mut self, block: &ChainBlock) {
        let series = |name| block.series(name).and_then(|s| s.as_f64()).expect("a generate block");
        self.acceptance.extend(series("acceptance").iter());
        let delta_h = series("delta_h");
        if self.delta_h.is_empty() {
            self.delta_h = vec![Vec::new(); delta_h.nrows()];
        }
        for (c, row) in delta_h.outer_iter().enumerate() {
            self.delta_h[c].extend(row.iter().filter(|v| !v.is_nan()));
        }
    }
    fn acceptance(&self) -> f64 {
        self.acceptance.iter().sum::<f64>() / self.acceptance.len().max(1) as f64
    }
    fn mean_delta_h(&self) -> f64 {
        let n: usize = self.delta_h.iter().map(Vec::len).sum();
        if n == 0 {
            return f64::NAN;
        }
        self.delta_h.iter().flatten().sum::<f64>() / n as f64
    }
    /// ⟨e^{−ΔH}⟩ over all chains (replica) with its Γ-method error.
    fn creutz(&self) -> (f64, f64) {
        let replica: Vec<Vec<f64>> = self
            .delta_h
            .iter()
            .filter(|d| d.len() > 1)
            .map(|d| d.iter().map(|x| (-x).exp()).collect())
            .collect();
        if replica.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        match fieldflow_stats::gamma_primary(&replica, &Default::default()) {
            Ok(r) => (r.value, r.error),
            Err(_) => (f64::NAN, f64::NAN),
        }
    }
}
