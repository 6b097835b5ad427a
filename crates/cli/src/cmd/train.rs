//! `fieldflow train`: fit a normalizing flow to a target.
//!
//! Config (TOML; flags override keys):
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
//! loss = { preset = "scorenf" }
//! batch_size = 64
//! steps = 1000
//! lr = 1e-3
//! ```
//!
//! Training and held-out configurations are taken evenly spaced over the
//! chains (after `skip`), so a small `n_train` still spans the whole ensemble
//! and is as decorrelated as the ensemble allows.
//!
//! The model file (DESIGN §4) is rewritten atomically at every checkpoint:
//! parameters, Adam state, the trainer's full state (step, rejection
//! counters: randomness is a function of (seed, step)), the resolved config
//! and the metrics so far; `MODEL.metrics.csv` beside it holds the same
//! metrics as CSV. `--resume` continues bit-identically; Ctrl-C writes a
//! checkpoint and exits with 130.

use crate::config::{self};
use crate::interrupt::{self, Interrupted};
use crate::model::{ModelConfig, Sampler};
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, emit};
use crate::plots;
use crate::progress;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use clap::Args;
use fieldflow_core::{Par, Seed};
use fieldflow_flows::FlowConfig;
use fieldflow_io::{AttrValue, EnsembleReader, FileKind, Header, ModelState, ModelWriter};
use fieldflow_losses::{
    AdamState, MetricsRecord, StepOutcome, TrainConfig, TrainData, TrainLoop, Trainer, TrainerState,
};
use fieldflow_snf::SnfTrainer;
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `fieldflow train`.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// TOML config (see data/configs/train_*.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Ensemble file with training data (sets data.file).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training configurations taken from the data (sets data.n_train).
    #[arg(long)]
    pub n_train: Option<u64>,
    /// Loss preset: fkl, rkl, sm or scorenf (sets train.loss).
    #[arg(long)]
    pub loss: Option<String>,
    /// Training steps (sets train.steps).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Learning rate (sets train.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output model file.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing model file.
    #[arg(long)]
    pub force: bool,
    /// Continue training the checkpoint in OUT (up to train.steps).
    #[arg(long)]
    pub resume: bool,
    /// Write training figures (SVG) into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where training samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Ensemble file.
    #[serde(default)]
    pub file: Option<String>,
    /// Use exact samples of the target (synthetic targets with a sampler).
    #[serde(default)]
    pub exact: bool,
    /// Training configurations.
    #[serde(default = "default_n_train")]
    pub n_train: u64,
    /// Held-out configurations.
    #[serde(default = "default_n_heldout")]
    pub n_heldout: u64,
    /// Configurations dropped at the start of every chain.
    #[serde(default)]
    pub skip: u64,
}

fn default_n_train() -> u64 {
    1000
}
fn default_n_heldout() -> u64 {
    1000
}
fn default_checkpoint_every() -> u64 {
    200
}

/// The resolved `train` config (target section kept separately in the table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRunConfig {
    /// Master seed (flow initialization, data draws, training streams).
    #[serde(default = "one")]
    pub seed: u64,
    /// Steps between checkpoints.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Model architecture: a flow, or an SNF when it lists `stages`
    /// ([`ModelConfig::from_section`]; default: the target's flow).
    #[serde(default)]
    pub flow: Option<toml::Value>,
    /// Data.
    #[serde(default)]
    pub data: DataConfig,
    /// Training.
    pub train: TrainConfig,
    /// Lattice target (or `target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi4: Option<toml::Value>,
    /// Synthetic target (or `phi4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<toml::Value>,
}

fn one() -> u64 {
    1
}

/// Default architecture: the tutorial flow for lattices (REFERENCE §4), MLP
/// couplings for vectors.
pub fn default_flow(target: &RunTarget) -> FlowConfig {
    match target {
        RunTarget::Phi4(p) => {
            let mut f = FlowConfig::tutorial(p.lattice().shape()[0]);
            f.shape = p.lattice().shape().to_vec();
            f
        }
        RunTarget::Synthetic(t) => FlowConfig::mlp(t.dim(), 8, vec![32, 32]),
    }
}

fn resolve(args: &TrainArgs) -> Result<(toml::Table, TrainRunConfig)> {
    let mut t = config::load_table(args.config.as_deref())?;
    if let Some(d) = &args.data {
        config::set(&mut t, "data.file", d.display().to_string());
    }
    if let Some(n) = args.n_train {
        config::set(&mut t, "data.n_train", n as i64);
    }
    if let Some(l) = &args.loss {
        let mut loss = toml::Table::new();
        loss.insert("preset".into(), l.clone().into());
        config::set(&mut t, "train.loss", loss);
    }
    if let Some(s) = args.steps {
        config::set(&mut t, "train.steps", s as i64);
    }
    if let Some(lr) = args.lr {
        config::set(&mut t, "train.lr", lr);
    }
    if let Some(s) = args.seed {
        config::set(&mut t, "seed", s as i64);
        config::set(&mut t, "train.seed", s as i64);
    }
    // Targets defined by a data file: copy its [phi4]/[target] section.
    if !t.contains_key("phi4") && !t.contains_key("target") {
        let file = t
            .get("data")
            .and_then(|d| d.get("file"))
            .and_then(|f| f.as_str())
            .map(PathBuf::from);
        let Some(file) = file else {
            bail!("no target: give [phi4] or [target] in --config, or --data ENSEMBLE");
        };
        let r = EnsembleReader::open(&file)?;
        let stored: toml::Table = r
            .header()
            .config
            .parse()
            .context("data file's stored config is not TOML")?;
        for key in ["phi4", "target"] {
            if let Some(v) = stored.get(key) {
                t.insert(key.into(), v.clone());
            }
        }
    }
    // Defaults for what the user left out (written into the stored config).
    let has_data = t
        .get("data")
        .and_then(|d| d.as_table())
        .is_some_and(|d| d.contains_key("file") || d.get("exact").and_then(|e| e.as_bool()) == Some(true));
    let is_snf = t
        .get("flow")
        .and_then(|f| f.as_table())
        .is_some_and(|f| f.contains_key("stages"));
    // Without data: RKL; with data: ScoreNF for flows, path ML for SNFs
    // (score matching needs log q, which an SNF lacks).
    let preset = match (has_data, is_snf) {
        (false, _) => "rkl",
        (true, false) => "scorenf",
        (true, true) => "fkl",
    };
    let train = t
        .entry("train")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(train) = train.as_table_mut() {
        let defaults: [(&str, toml::Value); 4] = [
            ("batch_size", 64.into()),
            ("steps", 1000.into()),
            ("lr", 1e-3.into()),
            (
                "loss",
                toml::Value::Table(toml::Table::from_iter([("preset".to_string(), preset.into())])),
            ),
        ];
        for (k, v) in defaults {
            train.entry(k).or_insert(v);
        }
    }
    let c: TrainRunConfig = config::parse(&t, "train")?;
    Ok((t, c))
}

/// Evenly spaced picks: `n` indices out of `total`, avoiding `taken`.
fn spaced(total: usize, n: usize, offset: f64) -> Vec<usize> {
    (0..n)
        .map(|i| (((i as f64 + offset) * total as f64 / n as f64) as usize).min(total - 1))
        .collect()
}

/// Training and held-out samples (rows), each optional.
type Samples = (Option<Array2<f64>>, Option<Array2<f64>>);

/// Training and held-out samples.
fn load_data(c: &TrainRunConfig, target: &RunTarget) -> Result<Samples> {
    let d = &c.data;
    if d.exact {
        let RunTarget::Synthetic(t) = target else {
            bail!("data.exact: the lattice target has no exact sampler")
        };
        let sampler = t
            .exact_sampler()
            .context("data.exact: this target has no exact sampler")?;
        let draw = |n: u64, stream: u64| {
            let mut xs = Array2::zeros((n as usize, t.dim()));
            sampler.sample_batch(Seed::new(c.seed).child(100 + stream), xs.view_mut(), Par::default());
            xs
        };
        return Ok((Some(draw(d.n_train, 0)), Some(draw(d.n_heldout, 1))));
    }
    let Some(file) = &d.file else { return Ok((None, None)) };
    let r = EnsembleReader::open(file)?;
    let all = r.configs_flat()?;
    let skip = d.skip as usize;
    if skip >= r.n_cfg() {
        bail!(
            "data.skip = {skip}: leaves nothing of {} configurations per chain in {file}",
            r.n_cfg()
        );
    }
    if r.dim() != target.as_target().dim() {
        bail!(
            "{file}: configurations have {} sites, the target {}",
            r.dim(),
            target.as_target().dim()
        );
    }
    let per_chain = r.n_cfg() - skip;
    let pool: Vec<_> = (0..r.n_chains())
        .flat_map(|ch| (skip..r.n_cfg()).map(move |i| (ch, i)))
        .collect();
    let total = pool.len();
    let (nt, nh) = (d.n_train as usize, d.n_heldout as usize);
    if nt + nh > total {
        bail!(
            "data: n_train + n_heldout = {} exceeds the {total} configurations ({per_chain} per chain) in {file}",
            nt + nh
        );
    }
    let pick = |idx: &[usize]| {
        let mut x = Array2::zeros((idx.len(), r.dim()));
        for (row, &k) in idx.iter().enumerate() {
            let (ch, i) = pool[k];
            x.row_mut(row).assign(&all.index_axis(Axis(0), ch).row(i));
        }
        x
    };
    let train_idx = spaced(total, nt, 0.0);
    let mut used = vec![false; total];
    train_idx.iter().for_each(|&i| used[i] = true);
    let free: Vec<usize> = (0..total).filter(|&i| !used[i]).collect();
    let held_idx: Vec<usize> = spaced(free.len(), nh, 0.5).into_iter().map(|i| free[i]).collect();
    Ok(((nt > 0).then(|| pick(&train_idx)), (nh > 0).then(|| pick(&held_idx))))
}

/// Names of the scalar metrics stored per record (model file and CSV).
const METRIC_NAMES: [&str; 13] = [
    "step",
    "loss",
    "fkl",
    "rkl",
    "sm",
    "grad_norm",
    "lr",
    "beta",
    "ess",
    "acceptance",
    "nll",
    "rkl_estimate",
    "total_rejections",
];

fn metric_values(m: &MetricsRecord) -> Vec<(String, f64)> {
    let base = [
        m.step as f64,
        m.loss,
        m.fkl,
        m.rkl,
        m.sm,
        m.grad_norm,
        m.lr,
        m.beta,
        m.ess,
        m.acceptance,
        m.nll,
        m.rkl_estimate,
        m.total_rejections as f64,
    ];
    let mut v: Vec<(String, f64)> = METRIC_NAMES.iter().map(|s| s.to_string()).zip(base).collect();
    for (k, w) in m.mode_weights.iter().enumerate() {
        v.push((format!("mode_weight_{k}"), *w));
    }
    if !m.mode_weights.is_empty() {
        v.push(("tv_distance".into(), m.tv_distance));
        v.push(("n_collapsed".into(), m.n_collapsed as f64));
        v.push(("covering".into(), m.covering));
    }
    v
}

/// Writes the metrics as CSV (one row per record).
fn write_csv(path: &Path, metrics: &std::collections::BTreeMap<String, Vec<f64>>) -> Result<()> {
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort_by_key(|n| (METRIC_NAMES.iter().position(|m| m == n).unwrap_or(99), n.to_string()));
    let rows = metrics.get("step").map_or(0, Vec::len);
    let mut s = names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",") + "\n";
    for i in 0..rows {
        let line: Vec<String> = names
            .iter()
            .map(|n| metrics[*n].get(i).map_or(String::new(), |v| format!("{v}")))
            .collect();
        let _ = writeln!(s, "{}", line.join(","));
    }
    let tmp = path.with_extension("csv.partial");
    std::fs::write(&tmp, s).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// The CSV written beside a model file.
pub fn csv_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".metrics.csv");
    PathBuf::from(s)
}

/// What a finished training run reports.
pub struct TrainSummary {
    /// The last metrics record.
    pub last: MetricsRecord,
    /// Seconds spent in this run.
    pub seconds: f64,
    /// Rejected steps.
    pub rejections: u64,
    /// Whether the model is an SNF (its loss parts are path ML / path KL and
    /// its NLL the path NLL, an upper bound).
    pub snf: bool,
}

impl TrainSummary {
    /// The lines printed at the end of a run (`note` follows the file name).
    pub fn render(&self, out: &Path, note: &str) -> String {
        let m = &self.last;
        let parts = if self.snf {
            format!("path ML {:.4}, path KL {:.4}", m.fkl, m.rkl)
        } else {
            format!("fkl {:.4}, rkl {:.4}, sm {:.4}", m.fkl, m.rkl, m.sm)
        };
        let nll_note = if self.snf { " (path NLL, an upper bound)" } else { "" };
        format!(
            "wrote {}{note}\nsteps             {}\nloss              {:.5} ({parts})\n\
             ESS               {:.4}\nIMH acceptance    {:.4}\nheld-out NLL      {:.4}{nll_note}\n\
             rejected steps    {}\ntime              {:.1} s",
            out.display(),
            m.step,
            m.loss,
            m.ess,
            m.acceptance,
            m.nll,
            self.rejections,
            self.seconds
        )
    }
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
    if args.resume {
        bail!("--resume is not supported with several MPI ranks yet: resume with one process");
    }
    if args.plots.is_some() {
        bail!("--plots is not supported with several MPI ranks: run `fieldflow train` plots from one process");
    }
    let (table, c) = resolve(args)?;
    let created = if dist.is_root() {
        check_new_output(&args.out, args.force)
    } else {
        Ok(())
    };
    dist.agree(created)?;
    let quiet = args.quiet || !dist.is_root();
    let summary = train_on(&args.out, &table, &c, None, args.force, quiet, dist)?;
    if !quiet {
        emit(&summary.render(&args.out, &format!(" ({} MPI ranks)", dist.size())));
    }
    Ok(())
}

fn run_single(args: TrainArgs) -> Result<()> {
    let (table, c, resumed) = if args.resume {
        let any_setting = args.config.is_some()
            || args.data.is_some()
            || args.loss.is_some()
            || args.n_train.is_some()
            || args.lr.is_some()
            || args.seed.is_some();
        if any_setting {
            bail!(
                "--resume continues with the config stored in {}; pass only --out (and --steps to extend)",
                args.out.display()
            );
        }
        let (mut writer, state) = ModelWriter::resume(&args.out)?;
        let mut table: toml::Table = writer_config(&mut writer)?.parse()?;
        if let Some(s) = args.steps {
            config::set(&mut table, "train.steps", s as i64);
        }
        let c: TrainRunConfig = config::parse(&table, "stored train")?;
        (table, c, Some((writer, state)))
    } else {
        let (t, c) = resolve(&args)?;
        check_new_output(&args.out, args.force)?;
        (t, c, None)
    };
    let summary = train(&args.out, &table, &c, resumed, args.force, args.quiet)?;
    if let Some(dir) = &args.plots {
        let model = fieldflow_io::ModelFile::read(&args.out)?;
        let target = RunTarget::from_table(&table, "config")?;
        let sampler = Sampler::from_parts(&model.state.architecture, model.state.params.clone(), &target)?;
        for f in plots::training_figures(&model.metrics, &target, &sampler, dir, "train")? {
            if !args.quiet {
                emit(&format!("figure: {}", f.display()));
            }
        }
    }
    if !args.quiet {
        emit(&summary.render(&args.out, ""));
    }
    Ok(())
}

fn writer_config(w: &mut ModelWriter) -> Result<String> {
    Ok(w.header_mut().config.clone())
}

/// The training loop: builds flow, data and trainer, runs to `train.steps`
/// with metrics and checkpoints.
pub fn train(
    out: &Path,
    table: &toml::Table,
    c: &TrainRunConfig,
    resumed: Option<(ModelWriter, ModelState)>,
    force: bool,
    quiet: bool,
) -> Result<TrainSummary> {
    train_on(out, table, c, resumed, force, quiet, &Dist::single())
}

/// [`train`] on the processes of `dist`: every rank steps the same trainer
/// on its share of the batch ([`Trainer::step_sharded`]); rank 0 alone
/// records metrics and writes the file; all agree on every stop.
fn train_on(
    out: &Path,
    table: &toml::Table,
    c: &TrainRunConfig,
    resumed: Option<(ModelWriter, ModelState)>,
    force: bool,
    quiet: bool,
    dist: &Dist,
) -> Result<TrainSummary> {
    let target = RunTarget::from_table(table, "config")?;
    let model = ModelConfig::from_section(c.flow.as_ref(), &target)?;
    let (train_data, held_out) = load_data(c, &target)?;
    let data = TrainData {
        train: train_data,
        held_out,
        modes: target.modes(),
    };
    let mut trainer = ModelTrainer::new(&model, c, &target, data, Par::default(), dist)?;
    // The resolved architecture, so the stored config rebuilds this model.
    let mut stored_table = table.clone();
    stored_table.insert("flow".into(), model.to_section()?);
    let config_text = toml::to_string(&stored_table)?;
    let writer = match resumed {
        Some((mut w, saved)) => {
            let json = match w.header_mut().extra.get("trainer_state") {
                Some(AttrValue::Str(j)) => j.clone(),
                _ => bail!("{}: no trainer state to resume from", out.display()),
            };
            let mut state: TrainerState = serde_json::from_str(&json).context("stored trainer state unreadable")?;
            // The vectors live in the file's datasets, not in the attribute.
            state.params = saved.params;
            state.adam.m = saved.adam_m;
            state.adam.v = saved.adam_v;
            state.adam.step = saved.adam_step;
            trainer.as_loop_mut().restore(state)?;
            Some(w)
        }
        None if dist.is_root() => {
            let header = Header::new(FileKind::Model, config_text, c.seed, target.as_target().describe());
            Some(dist.agree(ModelWriter::create(out, header, force).map_err(anyhow::Error::from))?)
        }
        None => {
            dist.agree(Ok(()))?;
            None
        }
    };
    let mut writer = writer;
    let steps = c.train.steps;
    let pb = progress::bar(steps.saturating_sub(trainer.as_loop().step_index()), "train");
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    let architecture = model.to_json()?;
    let save = |trainer: &dyn TrainLoop, writer: &mut ModelWriter| -> Result<()> {
        let st = trainer.state();
        // Counters only: parameters and moments are stored as datasets, and
        // the last step's report (with NaN parts) is not needed to resume.
        let slim = TrainerState {
            params: vec![],
            adam: AdamState {
                m: vec![],
                v: vec![],
                step: st.adam.step,
            },
            last: None,
            ..st.clone()
        };
        writer
            .header_mut()
            .extra
            .insert("trainer_state".into(), AttrValue::Str(serde_json::to_string(&slim)?));
        writer
            .header_mut()
            .extra
            .insert("steps_done".into(), AttrValue::U64(st.step));
        let ms = ModelState {
            architecture: architecture.clone(),
            params: st.params.clone(),
            adam_m: st.adam.m.clone(),
            adam_v: st.adam.v.clone(),
            adam_step: st.adam.step,
            rng_state: vec![c.train.seed, st.step],
        };
        writer.save(&ms)?;
        write_csv(&csv_path(out), writer.metrics())
    };
    let record = |trainer: &dyn TrainLoop, writer: &mut ModelWriter| -> MetricsRecord {
        let m = trainer.metrics();
        for (name, v) in metric_values(&m) {
            writer.push_metric(&name, v);
        }
        m
    };
    let mut last = None;
    if let Some(w) = writer.as_mut() {
        if trainer.as_loop().step_index() == 0 && w.metrics().is_empty() {
            last = Some(record(trainer.as_loop(), w));
        }
    }
    // Rank 0's checkpoint write, agreed on by all ranks.
    let save_all = |trainer: &dyn TrainLoop, writer: &mut Option<ModelWriter>| -> Result<()> {
        dist.agree(match writer.as_mut() {
            Some(w) => save(trainer, w),
            None => Ok(()),
        })
    };
    while trainer.as_loop().step_index() < steps {
        let outcome = trainer.step(dist);
        match outcome {
            Ok(StepOutcome::Accepted(r)) => {
                pb.set_message(format!("loss {:.4} ess {:.3}", r.loss, r.batch_ess));
            }
            Ok(StepOutcome::Rejected {
                reason,
                consecutive,
                step,
            }) => {
                pb.println(format!("step {step}: rejected ({reason}); {consecutive} in a row"));
            }
            Err(e) => {
                pb.abandon();
                save_all(trainer.as_loop(), &mut writer)?;
                return Err(anyhow::Error::from(e).context(format!("{}: last good checkpoint kept", out.display())));
            }
        }
        pb.inc(1);
        let t = trainer.as_loop().step_index();
        if t % c.train.metrics_every == 0 || t == steps {
            if let Some(w) = writer.as_mut() {
                let m = record(trainer.as_loop(), w);
                pb.set_message(format!("loss {:.4} ess {:.3} acc {:.3}", m.loss, m.ess, m.acceptance));
                last = Some(m);
            }
        }
        if t % c.checkpoint_every == 0 || t == steps {
            save_all(trainer.as_loop(), &mut writer)?;
        }
        if dist.any(interrupt::requested() || simulated_stop(t)) && t < steps {
            save_all(trainer.as_loop(), &mut writer)?;
            pb.abandon();
            return Err(Interrupted(format!(
                "interrupted at step {t} of {steps}; checkpoint in {}; continue with --resume",
                out.display()
            ))
            .into());
        }
    }
    pb.finish_and_clear();
    save_all(trainer.as_loop(), &mut writer)?;
    if dist.is_parallel() {
        check_same_params(dist, trainer.as_loop().params())?;
    }
    let last = last.unwrap_or_else(|| trainer.as_loop().metrics());
    Ok(TrainSummary {
        last,
        seconds: start.elapsed().as_secs_f64(),
        rejections: trainer.as_loop().total_rejections(),
        snf: matches!(trainer, ModelTrainer::Snf(_)),
    })
}

/// The trainer of a run's model: a flow ([`Trainer`], data-parallel over
/// MPI ranks) or an SNF ([`SnfTrainer`], one process).
enum ModelTrainer<'a> {
    Flow(Box<Trainer<'a>>),
    Snf(Box<SnfTrainer<'a, RunTarget>>),
}

impl<'a> ModelTrainer<'a> {
    fn new(
        model: &ModelConfig,
        c: &TrainRunConfig,
        target: &'a RunTarget,
        data: TrainData<'a>,
        par: Par,
        dist: &Dist,
    ) -> Result<Self> {
        Ok(match model {
            ModelConfig::Flow(cfg) => {
                let flow = cfg.build(Seed::new(c.seed)).map_err(|e| anyhow::anyhow!("flow.{e}"))?;
                if flow.dim() != target.as_target().dim() {
                    bail!(
                        "flow.shape {:?} does not match the target's {} sites",
                        cfg.shape,
                        target.as_target().dim()
                    );
                }
                ModelTrainer::Flow(Box::new(Trainer::new(&c.train, flow, target.as_target(), data, par)?))
            }
            ModelConfig::Snf(cfg) => {
                if dist.is_parallel() {
                    bail!("training a stochastic normalizing flow is not distributed over MPI ranks yet: run it with one process");
                }
                let snf = cfg
                    .build(target.clone(), Seed::new(c.seed))
                    .map_err(crate::model::snf_error)?;
                ModelTrainer::Snf(Box::new(SnfTrainer::new(&c.train, snf, data, par)?))
            }
        })
    }

    fn as_loop(&self) -> &dyn TrainLoop {
        match self {
            ModelTrainer::Flow(t) => t.as_ref(),
            ModelTrainer::Snf(t) => t.as_ref(),
        }
    }

    fn as_loop_mut(&mut self) -> &mut dyn TrainLoop {
        match self {
            ModelTrainer::Flow(t) => t.as_mut(),
            ModelTrainer::Snf(t) => t.as_mut(),
        }
    }

    /// One step; a flow on several ranks shares the batch among them.
    fn step(&mut self, dist: &Dist) -> Result<StepOutcome, fieldflow_losses::TrainError> {
        match self {
            ModelTrainer::Flow(t) if dist.is_parallel() => {
                let mut exchange = dist;
                t.step_sharded(&mut exchange)
            }
            other => other.as_loop_mut().step(),
        }
    }
}

/// Checks that every rank ended with rank 0's parameters, bit for bit
/// (collective; the invariant of data-parallel training).
fn check_same_params(dist: &Dist, params: &[f64]) -> Result<()> {
    let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_le_bytes()).collect();
    let all = dist.gather_bytes(&bytes);
    let r = match all.iter().position(|b| *b != bytes) {
        Some(rank) if dist.is_root() => Err(anyhow::anyhow!(
            "MPI rank {rank}'s parameters differ from rank 0's: the ranks diverged (please report)"
        )),
        _ => Ok(()),
    };
    dist.agree(r)
}

/// Test hook: `FIELDFLOW_STOP_AT_STEP=t` interrupts training after step t.
fn simulated_stop(t: u64) -> bool {
    std::env::var("FIELDFLOW_STOP_AT_STEP")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| t >= s)
}
