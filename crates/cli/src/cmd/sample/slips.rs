//! `fieldflow sample --method slips`: SLIPS (docs/THEORY.md §6.12), a
//! learning-free sampler that needs no model: the target is the `[target]`
//! or `[phi4]` section of `--config`, the settings are its `[sampler]`
//! table ([`SlipsSettings`]; `--n` overrides `sampler.particles`).
//!
//! The output is a samples file with one stream of independent particles
//! (the sample schema, series as in `fieldflow_slips::blocks`), written in
//! blocks of `sampler.block` particles; `--resume` continues an interrupted
//! run with exactly the particles it would have drawn. `analyze` reads it
//! unchanged: the samples are unweighted (method `slips`), modes by the
//! target's `Modes`. Where the target has two or more modes the file also
//! records each particle's start mode (series `start_mode`), and the run
//! prints the start-decided diagnostic (`fieldflow_slips::start_decided`),
//! warning when the weights were fixed at the start; `analyze` repeats it
//! for the whole file. One process only (the particles run in parallel on
//! the threads).

use super::settings::SampleArgs;
use crate::blocks::{ensemble_spec, run_blocks};
use crate::config;
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, check_resume_only, emit, num};
use crate::progress;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use fieldflow_core::run::ChainBlock;
use fieldflow_core::{Par, Seed};
use fieldflow_imh::SAMPLE_SERIES;
use fieldflow_io::{final_path, partial_path, AttrValue, EnsembleReader, EnsembleWriter, FileKind, Header, SeriesSpec};
use fieldflow_slips::{McmcDenoiser, Slips, SlipsBlocks, SlipsSettings, StartDecided, START_MODE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The method's name in files and flags.
const METHOD: &str = "slips";

/// Whether this invocation is a SLIPS run: `--method slips`, or `--resume`
/// of a partial file written by one.
pub(super) fn requested(args: &SampleArgs) -> bool {
    if !args.run.resume {
        return args.method.as_deref() == Some(METHOD);
    }
    let partial = partial_path(&final_path(&args.run.out));
    EnsembleReader::open(&partial)
        .map(|r| matches!(r.header().extra.get("method"), Some(AttrValue::Str(m)) if m == METHOD))
        .unwrap_or(false)
}

/// Refuses the flags of the flow-based methods (one line each).
fn refuse_other_flags(args: &SampleArgs) -> Result<()> {
    if args.model.is_some() {
        bail!("--model: method slips needs no model; its target is the [target] or [phi4] section of --config");
    }
    for (flag, given) in [
        ("--chains", args.chains.is_some()),
        ("--batch", args.batch.is_some()),
        ("--local-steps", args.local_steps.is_some()),
        ("--local-width", args.local_width.is_some()),
        ("--proposals", args.proposals.is_some()),
        ("--local", args.local.is_some()),
        ("--warmup", args.warmup.is_some()),
        ("--rounds", args.rounds.is_some()),
        ("--adapted-model", args.adapted_model.is_some()),
    ] {
        if given {
            bail!("{flag}: not a setting of method slips (its settings are the [sampler] table of --config; --n sets the particles)");
        }
    }
    Ok(())
}

/// The `[sampler]` table of `table` as SLIPS settings (`particles`
/// overridden by `n`), validated; unknown keys are refused.
fn settings(table: &toml::Table, n: Option<u64>) -> Result<SlipsSettings> {
    let mut t = match table.get("sampler") {
        Some(toml::Value::Table(t)) => t.clone(),
        Some(other) => bail!("sampler: expected a table, found `{other}`"),
        None => toml::Table::new(),
    };
    if let Some(n) = n {
        t.insert("particles".into(), (n as i64).into());
    }
    let mut known: Vec<String> = toml::Table::try_from(SlipsSettings::default())?
        .keys()
        .cloned()
        .collect();
    known.push("warmup".into());
    if let Some(key) = t.keys().find(|k| !known.contains(k)) {
        bail!(
            "sampler.{key}: not a setting of method slips (settings: {})",
            known.join(", ")
        );
    }
    let s: SlipsSettings = config::parse(&t, "sampler")?;
    s.validate()?;
    Ok(s)
}

/// The stored config: method, seed, the settings and the target section.
fn stored_config(seed: u64, s: &SlipsSettings, table: &toml::Table) -> Result<String> {
    let mut t = toml::Table::new();
    t.insert("method".into(), METHOD.into());
    t.insert("seed".into(), (seed as i64).into());
    t.insert("sampler".into(), toml::Value::Table(toml::Table::try_from(s)?));
    for key in ["phi4", "target"] {
        if let Some(v) = table.get(key) {
            t.insert(key.into(), v.clone());
        }
    }
    Ok(toml::to_string(&t)?)
}

/// Runs `fieldflow sample --method slips` (or resumes one).
pub(super) fn run(args: &SampleArgs, dist: &Dist) -> Result<()> {
    if dist.is_parallel() {
        bail!("method = slips runs on one process (its particles are parallel over threads); run it without MPI");
    }
    let (mut writer, table, seed, s) = if args.run.resume {
        check_resume_only(args.any_setting(), &args.run.out, "settings")?;
        let (writer, resumed) = EnsembleWriter::resume(&args.run.out, args.run.force)?;
        let table: toml::Table = resumed.header.config.parse().context("stored config is not TOML")?;
        let seed = resumed.header.seed;
        let s = settings(&table, None)?;
        (writer, table, seed, s)
    } else {
        refuse_other_flags(args)?;
        let table = config::load_table(args.config.as_deref())?;
        let s = settings(&table, args.n)?;
        let seed = args.run.seed.unwrap_or(1);
        let target = RunTarget::from_table(&table, "--config")?;
        check_new_output(&args.run.out, args.run.force)?;
        let header = Header::new(
            FileKind::Samples,
            stored_config(seed, &s, &table)?,
            seed,
            target.as_target().describe(),
        )
        .with_attr("method", METHOD);
        let mut spec = ensemble_spec(1, &target.shape(), &SAMPLE_SERIES);
        if multimodal(&target).is_some() {
            spec = spec.with_series(SeriesSpec::f64(START_MODE));
        }
        let writer = EnsembleWriter::create(&args.run.out, &header, &spec, args.run.force)?;
        (writer, table, seed, s)
    };
    let target = RunTarget::from_table(&table, &args.run.out.display().to_string())?;
    let density = target.as_target();
    // Files written before the series existed resume without it.
    let start_modes = multimodal(&target).filter(|_| writer.spec().series.iter().any(|x| x.name == START_MODE));
    let denoiser = McmcDenoiser {
        target: density,
        settings: s.mcmc,
    };
    let mut blocks = SlipsBlocks {
        slips: Slips::new(s.process, &denoiser, density.dim())?,
        target: density,
        seed: Seed::new(seed),
        // 16 particles per chunk: a chunk's buffers are allocated once and
        // reused; the samples do not depend on the chunking.
        par: Par {
            chunk_rows: 16,
            parallel: true,
        },
        evaluations: AtomicU64::new(0),
        start_modes,
        decided: StartDecided::new(start_modes.map_or(0, |m| m.n_modes())),
    };
    let done = writer.n_cfg() as u64;
    let pb = progress::bar(s.particles - done.min(s.particles), METHOD);
    if args.run.quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let (mut accept_sum, mut count) = (0.0, 0usize);
    let mut observe = |b: &ChainBlock, _: usize| {
        if let Some(a) = b.series("local_acceptance").and_then(|s| s.as_f64()) {
            accept_sum += a.sum();
            count += a.len();
        }
        pb.set_message(format!("MCMC acc {:.3}", accept_sum / count.max(1) as f64));
    };
    let start = Instant::now();
    run_blocks(
        &mut blocks,
        Some(&mut writer),
        dist,
        (s.particles as usize, s.block as usize),
        &mut observe,
        &|u| pb.inc(u),
    )
    .inspect_err(|_| pb.abandon())?;
    pb.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let new = (s.particles - done.min(s.particles)).max(1) as f64;
    let evaluations = blocks.evaluations.load(Ordering::Relaxed) as f64;
    writer.set_attr("seconds", seconds)?;
    let path = writer.finish()?;
    if !args.run.quiet {
        emit(&format!(
            "wrote {}\nparticles         {} ({} this run)\nMCMC acceptance   {} (this run)\ntarget evaluations per sample {} (log p̃ with the score)\nwall time         {} s ({} ms per sample)",
            path.display(),
            s.particles,
            new as u64,
            num(accept_sum / count.max(1) as f64, 4),
            num(evaluations / new, 0),
            num(seconds, 2),
            num(1e3 * seconds / new, 3),
        ));
        if blocks.decided.n > 0 {
            emit(&format!("start-decided     {} (this run)", blocks.decided.summary()));
        }
    }
    if let Some(w) = blocks.decided.warning() {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// The target's modes if it has at least two (the start-decided diagnostic
/// needs them).
fn multimodal(target: &RunTarget) -> Option<&dyn fieldflow_core::Modes> {
    target.modes().filter(|m| m.n_modes() >= 2)
}
