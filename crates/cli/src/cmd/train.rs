//! `fieldflow train`: fit a normalizing flow to a target.
//!
//! The first training needs no config: a φ⁴ target from flags, as for
//! `generate` (module `phi4_args`), and reverse KL, which needs no data:
//!
//! ```text
//! fieldflow train --lattice 8x8 --m2 -4 --lambda 8 --loss rkl --out m.h5
//! ```
//!
//! Config (TOML; flags override keys, the φ⁴ flags those of `[phi4]` or of
//! the data file's target; `--data` gives the target when neither does):
//!
//! ```toml
//! seed = 1
//! checkpoint_every = 200      # steps between checkpoints (and at the end)
//! [phi4]                      # or [target] kind = "mog4" | "gaussian" | …
//! lattice = [8, 8]
//! m2 = -4.0
//! lambda = 8.0
//! [flow]                      # fieldflow_flows::FlowConfig; default: the
//! # tutorial architecture for φ⁴, MLP couplings for vector targets
//! [data]                      # optional: training / held-out samples
//! file = "ens.h5"             # an ensemble from `generate` …
//! n_train = 100               # … of which n_train configurations train
//! n_heldout = 1000            # and n_heldout others measure the NLL
//! skip = 0                    # thermalization to drop per chain
//! exact = 0                   # or: draw n_train / n_heldout exact samples
//! [train]                     # fieldflow_losses::TrainConfig
//! loss = { preset = "scorenf" }  # default with data (annealing β 0.1 → 1 over steps/2 added)
//! batch_size = 64
//! steps = 1000
//! lr = 1e-3
//! ```
//!
//! Training and held-out configurations are taken evenly spaced over the
//! chains (after `skip`), so a small `n_train` still spans the whole ensemble
//! and is as decorrelated as the ensemble allows. A loss with a data term
//! (FKL, SM on data) without data is refused before anything is written.
//!
//! `train.max_minutes` is a wall-clock budget per invocation: the run ends
//! normally (exit 0, final metrics and checkpoint) at the first step past
//! it, and says at which step; `--resume` goes on toward `train.steps`.
//!
//! The closing summary prints a part the loss does not use, or the NLL
//! without held-out data, as "–" (the metrics store them as NaN).
//!
//! The model file (docs/FORMATS.md) is rewritten atomically at every checkpoint:
//! parameters, Adam state, the trainer's full state (step, rejection
//! counters: randomness is a function of (seed, step)), the resolved config
//! and the metrics so far; `MODEL.metrics.csv` beside it holds the same
//! metrics as CSV. `--resume` continues bit-identically; Ctrl-C writes a
//! checkpoint and exits with 130.

pub mod data;
pub mod recipe;
mod settings;
pub mod sink;

use crate::interrupt::{self, Interrupted};
use crate::model::{asks_auto_components, curriculum_targets, resolve_auto_components, ModelConfig, Sampler};
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, emit};
use crate::plots;
use crate::target::RunTarget;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use fieldflow_io::{FileKind, Header, ModelState, ModelWriter};
use fieldflow_losses::{RunError, RunSchedule, TrainData, TrainRun};
pub use settings::{legacy_loss, with_defaults, TrainRunConfig};
pub use sink::csv_path;
use std::path::{Path, PathBuf};

/// Arguments of `fieldflow train`.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// TOML config (see data/configs/train_*.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The φ⁴ target (sets the config's `[phi4]` keys; no config needed).
    #[command(flatten)]
    pub phi4: crate::cmd::phi4_args::Phi4Args,
    /// Ensemble file with training data (sets data.file).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training configurations taken from the data (sets data.n_train).
    #[arg(long)]
    pub n_train: Option<u64>,
    /// Loss preset: fkl, rkl, sm, scorenf (FKL + 0.1 RKL + 0.1 SM on flow
    /// samples, annealed) or rkl_sm (RKL + SM on data) (sets train.loss).
    #[arg(long)]
    pub loss: Option<String>,
    /// Training steps (sets train.steps).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Learning rate (sets train.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Output, seed, resume, verbosity.
    #[command(flatten)]
    pub run: crate::cmd::run_args::RunArgs,
    /// Write training figures (SVG) into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// Runs `fieldflow train`.
pub fn run(args: TrainArgs) -> Result<()> {
    interrupt::install();
    let dist = Dist::init()?;
    if dist.is_parallel() {
        let r = run_parallel(&args, &dist);
        return dist.finish(r);
    }
    run_single(args)
}

/// `fieldflow train` on the ranks of an MPI job (docs/MPI.md): the batch of
/// every step is shared among the ranks, the result is bit-identical to a
/// one-process run; rank 0 writes the model file and prints.
fn run_parallel(args: &TrainArgs, dist: &Dist) -> Result<()> {
    if args.run.resume {
        bail!("--resume is not supported with several MPI ranks yet: resume with one process");
    }
    if args.plots.is_some() {
        bail!("--plots is not supported with several MPI ranks: run `fieldflow train` plots from one process");
    }
    let (table, _) = settings::resolve(args)?;
    // Rank 0's resolution for all: a step count sized by timing
    // (`train.max_minutes` without `train.steps`) differs between ranks.
    let text = dist.broadcast_bytes(toml::to_string(&table)?.into_bytes());
    let table: toml::Table = String::from_utf8(text)?.parse()?;
    let c: TrainRunConfig = crate::config::parse(&table, "train")?;
    let created = if dist.is_root() {
        check_new_output(&args.run.out, args.run.force)
    } else {
        Ok(())
    };
    dist.agree(created)?;
    let quiet = args.run.quiet || !dist.is_root();
    let summary = train(&args.run.out, &table, &c, None, args.run.force, quiet, dist)?;
    if !quiet {
        emit(&summary.render(&args.run.out, &format!(" ({} MPI ranks)", dist.size())));
    }
    Ok(())
}

fn run_single(args: TrainArgs) -> Result<()> {
    let (table, c, resumed) = if args.run.resume {
        let (table, c, writer, state) = settings::stored(&args)?;
        (table, c, Some((writer, state)))
    } else {
        let (t, c) = settings::resolve(&args)?;
        check_new_output(&args.run.out, args.run.force)?;
        (t, c, None)
    };
    let summary = train(
        &args.run.out,
        &table,
        &c,
        resumed,
        args.run.force,
        args.run.quiet,
        &Dist::single(),
    )?;
    if let Some(dir) = &args.plots {
        let model = fieldflow_io::ModelFile::read(&args.run.out)?;
        let target = RunTarget::from_table(&table, "config")?;
        let sampler = Sampler::from_parts(&model.state.architecture, model.state.params.clone(), &target)?;
        for f in plots::training_figures(&model.metrics, &target, &sampler, dir, "train")? {
            if !args.run.quiet {
                emit(&format!("figure: {}", f.display()));
            }
        }
    }
    if !args.run.quiet {
        emit(&summary.render(&args.run.out, ""));
    }
    Ok(())
}

/// Builds model, data and trainer and runs them to `train.steps` on the
/// processes of `dist` ([`TrainRun`]); rank 0 writes the model file.
fn train(
    out: &Path,
    table: &toml::Table,
    c: &TrainRunConfig,
    resumed: Option<(ModelWriter, ModelState)>,
    force: bool,
    quiet: bool,
    dist: &Dist,
) -> Result<sink::TrainSummary> {
    let target = RunTarget::from_table(table, "config")?;
    // The model's sections are checked before any data is read, unless the
    // mixture's number of components comes from the data.
    let (early, auto) = if asks_auto_components(c.flow.as_ref()) {
        let d = data::load_data(c, &target)?;
        let auto = resolve_auto_components(c.flow.as_ref(), d.0.as_ref(), target.as_target(), c.train.seed)?;
        (Some(d), auto)
    } else {
        (None, None)
    };
    if let (Some((_, choice)), false) = (&auto, quiet) {
        emit(&auto_components_line(choice));
    }
    let flow = auto.as_ref().map(|a| &a.0).or(c.flow.as_ref());
    let model = ModelConfig::from_sections(flow, c.diffusion.as_ref(), c.lrds.as_ref(), &target, c.seed)?;
    let (train_data, held_out) = match early {
        Some(d) => d,
        None => data::load_data(c, &target)?,
    };
    let data = TrainData {
        train: train_data,
        held_out,
        modes: target.modes(),
    };
    let stages = curriculum_targets(table, &c.train)?;
    let mut trainer = model.trainer(&c.train, c.seed, &target, &stages, data, dist)?;
    let schedule = RunSchedule {
        steps: c.train.steps,
        metrics_every: c.train.metrics_every,
        checkpoint_every: c.checkpoint_every,
    };
    let stop = |t: u64| interrupt::requested() || simulated_stop(t);
    let mut run = TrainRun::new(trainer.as_mut(), schedule)?.with_stop(&stop);
    if let Some(minutes) = c.train.max_minutes {
        run = run.with_deadline(std::time::Duration::from_secs_f64(60.0 * minutes));
    }
    let writer = match resumed {
        Some((mut w, saved)) => {
            run.resume(sink::restore_state(&mut w, saved, out)?)?;
            Some(w)
        }
        None if dist.is_root() => {
            // The resolved architecture, so the stored config rebuilds this model.
            let mut stored = table.clone();
            stored.insert(model.section_name().into(), model.to_section()?);
            let header = Header::new(
                FileKind::Model,
                toml::to_string(&stored)?,
                c.seed,
                target.as_target().describe(),
            );
            Some(dist.agree(ModelWriter::create(out, header, force).map_err(anyhow::Error::from))?)
        }
        None => {
            dist.agree(Ok(()))?;
            None
        }
    };
    let mut file = sink::ModelSink {
        writer,
        architecture: model.to_json()?,
        seed: c.train.seed,
        csv: csv_path(out),
    };
    let mut progress = sink::Progress::new(quiet);
    let mut exchange = dist;
    let summary = run
        .run(&mut exchange, &mut [&mut progress], &mut file)
        .map_err(|e| run_error(e, out))?;
    let mixture_weights = trainer.mixture_weights().map(sink::mixture_weights_line);
    Ok(sink::TrainSummary {
        mixture_weights,
        last: summary.last,
        seconds: summary.seconds,
        rejections: summary.rejections,
        snf: !model.has_density(),
        out_of_time: summary.out_of_time.map(|t| sink::OutOfTime {
            step: t,
            steps: c.train.steps,
            minutes: c.train.max_minutes.unwrap_or(f64::NAN),
            lr: c.train.lr_schedule.lr(c.train.lr, t),
            final_lr: c.train.lr_schedule.lr(c.train.lr, c.train.steps),
        }),
    })
}

/// What `flow.mixture.components = "auto"` chose, in one line.
fn auto_components_line(choice: &fieldflow_stats::kmeans::KChoice) -> String {
    let bics: Vec<String> = choice
        .bic
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{}: {b:.0}", i + 1))
        .collect();
    format!(
        "flow.mixture.components = \"auto\": K = {} (smallest BIC; K: BIC = {})",
        choice.k,
        bics.join(", ")
    )
}

/// The command's error for a run that ended early.
fn run_error(e: RunError<anyhow::Error>, out: &Path) -> anyhow::Error {
    match e {
        RunError::Train(e) => anyhow::Error::from(e).context(format!("{}: last good checkpoint kept", out.display())),
        RunError::Sink(e) => e,
        RunError::OtherProcess => anyhow!("another rank failed"),
        RunError::Interrupted { step, steps } => Interrupted(format!(
            "interrupted at step {step} of {steps}; checkpoint in {}; continue with --resume",
            out.display()
        ))
        .into(),
        RunError::Diverged { rank } => {
            anyhow!("MPI rank {rank}'s parameters differ from rank 0's: the ranks diverged (please report)")
        }
    }
}

/// Test hook: `FIELDFLOW_STOP_AT_STEP=t` interrupts training after step t.
fn simulated_stop(t: u64) -> bool {
    std::env::var("FIELDFLOW_STOP_AT_STEP")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| t >= s)
}
