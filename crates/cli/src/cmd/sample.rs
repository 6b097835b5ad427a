//! `fieldflow sample`: exact sampling with a trained flow.
//!
//! * `imh` (default): independent Metropolis–Hastings chains with the flow
//!   as proposal; exact whatever the flow's quality (REFERENCE §6);
//! * `hybrid`: `--local-steps k` local updates (Metropolis sweeps for φ⁴, a
//!   Gaussian random walk for vector targets) before every flow proposal;
//! * `is`: independent flow draws with importance weights log w = log p̃ −
//!   log q; `analyze` then reweights (self-normalized estimators).
//!
//! The output has the ensemble schema (kind `samples`) plus the series
//! `log_q`, `log_w` and `accepted`, so `fieldflow analyze` reads it unchanged.
//! Its config (stored in the file) names the model and copies the model's
//! target section, so the file is self-describing. Written in blocks with
//! checkpoints; `--resume` continues exactly.

use crate::blocks::append_block;
use crate::blocks::{write_blocks, BlockData, Series};
use crate::config;
use crate::interrupt;
use crate::interrupt::Interrupted;
use crate::model::Sampler;
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, emit};
use crate::progress;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use clap::Args;
use fieldflow_core::{Par, Proposal, Rng, Seed};
use fieldflow_imh::{importance_sample, ImhBuffers, ImhChain, ImhConfig, ImhState, LocalKernel, RandomWalk};
use fieldflow_io::{AttrValue, EnsembleSpec, EnsembleWriter, FileKind, Header, ModelFile, SeriesSpec};
use fieldflow_lattice::metropolis::sweep;
use fieldflow_lattice::{Metropolis, MetropolisConfig, Phi4};
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `fieldflow sample`.
#[derive(Args, Debug, Default)]
pub struct SampleArgs {
    /// Trained model file (from `fieldflow train`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples per chain.
    #[arg(long)]
    pub n: Option<u64>,
    /// Independent chains (or independent IS streams).
    #[arg(long)]
    pub chains: Option<u64>,
    /// imh, hybrid or is.
    #[arg(long)]
    pub method: Option<String>,
    /// Local updates before each flow proposal (hybrid).
    #[arg(long)]
    pub local_steps: Option<u64>,
    /// Width of the local updates (hybrid).
    #[arg(long)]
    pub local_width: Option<f64>,
    /// Proposals evaluated per parallel batch.
    #[arg(long)]
    pub batch: Option<u64>,
    /// Master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output samples file.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output (only once the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Continue the interrupted run whose unfinished file is OUT.partial.
    #[arg(long)]
    pub resume: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Sampling methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Independent Metropolis–Hastings.
    Imh,
    /// Local updates + IMH.
    Hybrid,
    /// Importance sampling.
    Is,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Imh => "imh",
            Method::Hybrid => "hybrid",
            Method::Is => "is",
        }
    }
}

/// The resolved configuration of a sample run (stored in the file, with the
/// model's `[phi4]` or `[target]` section appended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Model file.
    pub model: String,
    /// Method.
    pub method: Method,
    /// Samples per chain.
    pub n: u64,
    /// Chains.
    pub chains: u64,
    /// Proposals per batch.
    pub batch: u64,
    /// Steps per chain per write block.
    pub block: u64,
    /// Local updates per step (hybrid).
    pub local_steps: u64,
    /// Local update width (hybrid).
    pub local_width: f64,
    /// Master seed.
    pub seed: u64,
}

impl SampleConfig {
    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("n", self.n),
            ("chains", self.chains),
            ("batch", self.batch),
            ("block", self.block),
        ] {
            if v == 0 {
                bail!("{name} = 0: must be > 0");
            }
        }
        if self.method == Method::Hybrid && self.local_steps == 0 {
            bail!("local_steps = 0: the hybrid method needs --local-steps > 0");
        }
        if !(self.local_width > 0.0) {
            bail!("local_width = {}: must be > 0", self.local_width);
        }
        Ok(())
    }
}

/// A loaded model: the flow or SNF and its target.
pub struct Model {
    /// The flow or stochastic normalizing flow, as a proposal.
    pub sampler: Sampler,
    /// The target it was trained for.
    pub target: RunTarget,
    /// The model's stored config (TOML).
    pub config: toml::Table,
    /// [`fieldflow_io::ModelState::fingerprint`] of the model file.
    pub fingerprint: String,
}

/// Loads the model file of `c` (model from architecture + parameters,
/// target from the stored config) and checks that `c.method` can use it.
pub fn load_model(c: &SampleConfig) -> Result<Model> {
    let path = Path::new(&c.model);
    let file = ModelFile::read(path)?;
    let config: toml::Table = file
        .header
        .config
        .parse()
        .with_context(|| format!("{}: stored config is not TOML", path.display()))?;
    let target = RunTarget::from_table(&config, &path.display().to_string())?;
    let sampler = Sampler::from_parts(&file.state.architecture, file.state.params.clone(), &target)
        .map_err(|e| anyhow::anyhow!("{}: cannot rebuild the model: {e}", path.display()))?;
    if target.as_target().dim() != sampler.dim() {
        bail!(
            "{}: model dimension {} differs from the target's {}",
            path.display(),
            sampler.dim(),
            target.as_target().dim()
        );
    }
    if c.method == Method::Hybrid && !sampler.has_log_q() {
        bail!(
            "method = hybrid: {} is a stochastic normalizing flow, which has no tractable log q(x) to \
             re-weigh the state after local moves; use method imh or is (exact with path weights)",
            path.display()
        );
    }
    Ok(Model {
        sampler,
        target,
        config,
        fingerprint: file.state.fingerprint(),
    })
}

/// Metropolis sweeps of the lattice as the local kernel of the hybrid sampler.
struct SweepKernel<'a> {
    target: &'a Phi4,
    metropolis: Metropolis,
    width: f64,
}

impl LocalKernel for SweepKernel<'_> {
    fn update(&self, x: &mut [f64], rng: &mut Rng) -> bool {
        sweep(self.target, &self.metropolis, self.width, x, rng).accepted
    }
}

fn resolve(args: &SampleArgs) -> Result<SampleConfig> {
    let model = args.model.as_ref().context("--model is required")?;
    let method = match args.method.as_deref().unwrap_or("imh") {
        "imh" => Method::Imh,
        "hybrid" => Method::Hybrid,
        "is" => Method::Is,
        other => bail!("--method {other}: expected imh, hybrid or is"),
    };
    Ok(SampleConfig {
        model: model.display().to_string(),
        method,
        n: args.n.unwrap_or(10_000),
        chains: args.chains.unwrap_or(4),
        batch: args.batch.unwrap_or(256),
        block: 1000,
        local_steps: args.local_steps.unwrap_or(if method == Method::Hybrid { 1 } else { 0 }),
        local_width: args.local_width.unwrap_or(0.5),
        seed: args.seed.unwrap_or(1),
    })
}

/// The stored config: the sample settings plus the model's target section.
fn stored_config(c: &SampleConfig, model: &toml::Table) -> Result<String> {
    let mut t: toml::Table = toml::Table::try_from(c)?;
    for key in ["phi4", "target"] {
        if let Some(v) = model.get(key) {
            t.insert(key.into(), v.clone());
        }
    }
    Ok(toml::to_string(&t)?)
}

/// Runs `fieldflow sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    interrupt::install();
    let dist = Dist::init()?;
    if dist.is_parallel() {
        let r = run_parallel(&args, &dist);
        return dist.finish(r);
    }
    let (mut writer, c, resumed_chains, model) = if args.resume {
        let any_setting = args.model.is_some()
            || args.n.is_some()
            || args.method.is_some()
            || args.chains.is_some()
            || args.seed.is_some()
            || args.batch.is_some()
            || args.local_steps.is_some()
            || args.local_width.is_some();
        if any_setting {
            bail!(
                "--resume continues with the settings stored in {}.partial; pass only --out",
                args.out.display()
            );
        }
        let (writer, resumed) = EnsembleWriter::resume(&args.out, args.force)?;
        let table: toml::Table = resumed.header.config.parse()?;
        let mut t = table.clone();
        t.remove("phi4");
        t.remove("target");
        let c: SampleConfig = config::parse(&t, "stored sample")?;
        let model = load_model(&c)?;
        if let Some(AttrValue::Str(stored)) = resumed.header.extra.get("model_fingerprint") {
            if *stored != model.fingerprint {
                bail!(
                    "{}: the model changed since this run started (fingerprint {stored}, now {}); \
                     resuming would mix two models: start a new run",
                    c.model,
                    model.fingerprint
                );
            }
        }
        (writer, c, resumed.checkpoint.map(|cp| cp.chains), model)
    } else {
        let c = resolve(&args)?;
        c.validate()?;
        check_new_output(&args.out, args.force)?;
        let model = load_model(&c)?;
        let writer = EnsembleWriter::create(&args.out, &header(&c, &model)?, &spec(&c, &model), args.force)?;
        (writer, c, None, model)
    };
    let start = Instant::now();
    let pb = progress::bar(c.n * c.chains, c.method.as_str());
    if args.quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let summary = match c.method {
        Method::Is => run_is(&mut writer, &c, &model, resumed_chains, &pb)?,
        Method::Imh | Method::Hybrid => run_imh(&mut writer, &c, &model, resumed_chains, &pb)?,
    };
    pb.finish_and_clear();
    writer.set_attr("seconds", start.elapsed().as_secs_f64())?;
    let path = writer.finish()?;
    if !args.quiet {
        emit(&format!("wrote {}\n{summary}", path.display()));
    }
    Ok(())
}

fn header(c: &SampleConfig, model: &Model) -> Result<Header> {
    Ok(Header::new(
        FileKind::Samples,
        stored_config(c, &model.config)?,
        c.seed,
        model.target.as_target().describe(),
    )
    .with_attr("method", c.method.as_str())
    .with_attr("model", c.model.as_str())
    .with_attr("model_fingerprint", model.fingerprint.as_str()))
}

/// The per-step series of one block, in the order `spec` declares them
/// (docs/FORMATS.md): log p̃, log q, log w = log p̃ − log q, the IMH
/// decision and the local acceptance.
fn block_series(
    log_p: Array2<f64>,
    log_q: Array2<f64>,
    log_w: Array2<f64>,
    accepted: Array2<u8>,
    local: Array2<f64>,
) -> Vec<Series> {
    vec![
        Series::F64("log_p", log_p),
        Series::F64("log_q", log_q),
        Series::F64("log_w", log_w),
        Series::U8("accepted", accepted),
        Series::F64("local_acceptance", local),
    ]
}

fn spec(c: &SampleConfig, model: &Model) -> EnsembleSpec {
    EnsembleSpec::new(c.chains as usize, model.target.shape())
        .with_series(SeriesSpec::f64("log_p"))
        .with_series(SeriesSpec::f64("log_q"))
        .with_series(SeriesSpec::f64("log_w"))
        .with_series(SeriesSpec::u8("accepted"))
        .with_series(SeriesSpec::f64("local_acceptance"))
}

/// The local updates of the hybrid method: Metropolis sweeps for φ⁴, a
/// Gaussian random walk for vector targets; `None` for the other methods.
fn local_kernel<'a>(model: &'a Model, c: &SampleConfig) -> Result<Option<Box<dyn LocalKernel + 'a>>> {
    if c.method != Method::Hybrid {
        return Ok(None);
    }
    Ok(Some(match &model.target {
        RunTarget::Phi4(p) => {
            let metropolis = MetropolisConfig {
                width: c.local_width,
                hits: 1,
                tune: false,
                ..Default::default()
            }
            .validate()?;
            Box::new(SweepKernel {
                target: p,
                metropolis,
                width: c.local_width,
            })
        }
        RunTarget::Synthetic(_) => Box::new(RandomWalk {
            target: model.target.as_target(),
            width: c.local_width,
        }),
    }))
}

fn run_imh(
    writer: &mut EnsembleWriter,
    c: &SampleConfig,
    model: &Model,
    resumed: Option<String>,
    pb: &indicatif::ProgressBar,
) -> Result<String> {
    let target = model.target.as_target();
    let config = ImhConfig {
        batch: c.batch as usize,
        local_steps: 0,
        par: Par::default(),
    };
    let kernel = local_kernel(model, c)?;
    let mut chain = ImhChain::new(target, &model.sampler, Seed::new(c.seed), config);
    if let Some(k) = kernel.as_deref() {
        chain = chain.with_local(k, c.local_steps as usize);
    }
    let mut states: Vec<ImhState> = match resumed {
        Some(json) => serde_json::from_str(&json).context("checkpoint unreadable")?,
        None => chain.initial_states(c.chains as usize),
    };
    let (n_chains, dim) = (c.chains as usize, target.dim());
    let (mut acc_sum, mut acc_n) = (0.0, 0usize);
    let produce = |k: usize| -> Result<BlockData> {
        let mut configs = Array3::zeros((n_chains, k, dim));
        let mut accepted = Array2::zeros((n_chains, k));
        let (mut log_p, mut log_q, mut local) = (
            Array2::zeros((n_chains, k)),
            Array2::zeros((n_chains, k)),
            Array2::zeros((n_chains, k)),
        );
        let bufs = ImhBuffers {
            configs: configs.view_mut(),
            accepted: accepted.view_mut(),
            log_p: log_p.view_mut(),
            log_q: log_q.view_mut(),
            local_acceptance: local.view_mut(),
        };
        chain.advance(&mut states, k, bufs, &|u| pb.inc(u));
        acc_sum += accepted.iter().map(|&a| a as f64).sum::<f64>();
        acc_n += accepted.len();
        pb.set_message(format!("acc {:.3}", acc_sum / acc_n as f64));
        let log_w = &log_p - &log_q;
        Ok(BlockData {
            state: Array2::from_shape_fn((n_chains, dim), |(i, j)| states[i].x[j]),
            chains_json: serde_json::to_string(&states)?,
            series: block_series(log_p, log_q, log_w, accepted, local),
            configs,
        })
    };
    write_blocks(writer, c.n as usize, c.block as usize, produce, |_| {})?;
    Ok(format!(
        "acceptance        {:.4} (this run)",
        acc_sum / acc_n.max(1) as f64
    ))
}

/// Importance sampling: block b of chain c draws from `seed.child(c).child(b)`.
fn run_is(
    writer: &mut EnsembleWriter,
    c: &SampleConfig,
    model: &Model,
    _resumed: Option<String>,
    pb: &indicatif::ProgressBar,
) -> Result<String> {
    let target = model.target.as_target();
    let (n_chains, dim) = (c.chains as usize, target.dim());
    let mut all_log_w = Vec::new();
    // Blocks are full except the last, so the next block's index is known.
    let mut b = writer.n_cfg() as u64 / c.block;
    let produce = |k: usize| -> Result<BlockData> {
        b += 1;
        let b = b - 1;
        let mut configs = Array3::zeros((n_chains, k, dim));
        let mut log_p = Array2::zeros((n_chains, k));
        let mut log_q = Array2::zeros((n_chains, k));
        for ch in 0..n_chains {
            let batch = importance_sample(
                target,
                &model.sampler,
                Seed::new(c.seed).child(ch as u64).child(b),
                k,
                Par::default(),
            );
            configs.index_axis_mut(ndarray::Axis(0), ch).assign(&batch.xs);
            log_p.row_mut(ch).assign(&batch.log_p);
            log_q.row_mut(ch).assign(&batch.log_q);
            pb.inc(k as u64);
        }
        let log_w = &log_p - &log_q;
        all_log_w.extend(log_w.iter().copied());
        pb.set_message(format!(
            "ESS {:.3}",
            fieldflow_stats::ess_normalized(&all_log_w).unwrap_or(f64::NAN)
        ));
        let last = configs.index_axis(ndarray::Axis(1), k - 1).to_owned();
        Ok(BlockData {
            state: last,
            chains_json: "{}".into(),
            series: block_series(
                log_p,
                log_q,
                log_w,
                Array2::ones((n_chains, k)),
                Array2::from_elem((n_chains, k), f64::NAN),
            ),
            configs,
        })
    };
    write_blocks(writer, c.n as usize, c.block as usize, produce, |_| {})?;
    let ess = fieldflow_stats::ess_normalized(&all_log_w).unwrap_or(f64::NAN);
    let lz = fieldflow_stats::log_z(&all_log_w)
        .map(|r| (r.log_z, r.error))
        .unwrap_or((f64::NAN, f64::NAN));
    Ok(format!(
        "ESS/N             {ess:.4} (this run)\nlog Z estimate    {:.5} ± {:.5}",
        lz.0, lz.1
    ))
}

/// `fieldflow sample` on the ranks of an MPI job (docs/MPI.md): rank r
/// draws the contiguous block of chains [`Dist::block`]; chain c's block b
/// uses `seed.child(c).child(b)` as in one process, and rank 0 gathers every
/// block and writes the one-process file.
fn run_parallel(args: &SampleArgs, dist: &Dist) -> Result<()> {
    if args.resume {
        bail!("--resume is not supported with several MPI ranks: resume with one process (the file is the same)");
    }
    let c = resolve(args)?;
    c.validate()?;
    let model = dist.agree(load_model(&c))?;
    let mut writer = if dist.is_root() {
        let w = check_new_output(&args.out, args.force).and_then(|()| {
            Ok(EnsembleWriter::create(
                &args.out,
                &header(&c, &model)?,
                &spec(&c, &model),
                args.force,
            )?)
        });
        Some(dist.agree(w)?)
    } else {
        dist.agree(Ok(()))?;
        None
    };
    let quiet = args.quiet || !dist.is_root();
    let start = Instant::now();
    let mine = dist.block(c.chains as usize, dist.rank());
    let pb = progress::bar(c.n * mine.len() as u64, c.method.as_str());
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let summary = run_chains_parallel(writer.as_mut(), &c, &model, &pb, dist)?;
    pb.finish_and_clear();
    let path = dist.agree(match writer {
        Some(mut w) => w
            .set_attr("seconds", start.elapsed().as_secs_f64())
            .and_then(|()| w.finish())
            .map_err(anyhow::Error::from)
            .map(Some),
        None => Ok(None),
    })?;
    if let (Some(path), false) = (path, quiet) {
        emit(&format!(
            "wrote {}\n{summary}\n({} MPI ranks)",
            path.display(),
            dist.size()
        ));
    }
    Ok(())
}

/// [`run_imh`] / [`run_is`] with the chains spread over the ranks: the same
/// blocks and streams (chain c is chain c whichever rank runs it), assembled
/// on rank 0 into exactly the one-process block.
fn run_chains_parallel(
    mut writer: Option<&mut EnsembleWriter>,
    c: &SampleConfig,
    model: &Model,
    pb: &indicatif::ProgressBar,
    dist: &Dist,
) -> Result<String> {
    let target = model.target.as_target();
    let (n_chains, dim) = (c.chains as usize, target.dim());
    let mine = dist.block(n_chains, dist.rank());
    let (total, block) = (c.n as usize, c.block as usize);
    let kernel = local_kernel(model, c)?;
    let config = ImhConfig {
        batch: c.batch as usize,
        local_steps: 0,
        par: Par::default(),
    };
    let mut chain =
        ImhChain::new(target, &model.sampler, Seed::new(c.seed), config).with_first_chain(mine.start as u64);
    if let Some(k) = kernel.as_deref() {
        chain = chain.with_local(k, c.local_steps as usize);
    }
    let mut states: Vec<ImhState> = if c.method == Method::Is {
        vec![]
    } else {
        chain.initial_states(mine.len())
    };
    let mut all_log_w = Vec::new();
    let (mut acc_sum, mut acc_n) = (0.0, 0usize);
    let (mut written, mut blocks) = (0usize, 0usize);
    while written < total {
        let k = block.min(total - written);
        // Blocks are full except the last, as in one process.
        let b = (written / block) as u64;
        let m = mine.len();
        let mut configs = Array3::zeros((m, k, dim));
        let (mut lp, mut lq) = (Array2::zeros((m, k)), Array2::zeros((m, k)));
        let mut accepted = Array2::<u8>::ones((m, k));
        let mut local = Array2::from_elem((m, k), f64::NAN);
        if c.method == Method::Is {
            for (i, ch) in mine.clone().enumerate() {
                let seed = Seed::new(c.seed).child(ch as u64).child(b);
                let batch = importance_sample(target, &model.sampler, seed, k, Par::default());
                configs.index_axis_mut(ndarray::Axis(0), i).assign(&batch.xs);
                lp.row_mut(i).assign(&batch.log_p);
                lq.row_mut(i).assign(&batch.log_q);
                pb.inc(k as u64);
            }
        } else {
            let bufs = ImhBuffers {
                configs: configs.view_mut(),
                accepted: accepted.view_mut(),
                log_p: lp.view_mut(),
                log_q: lq.view_mut(),
                local_acceptance: local.view_mut(),
            };
            chain.advance(&mut states, k, bufs, &|u| pb.inc(u));
        }
        let state: Vec<f64> = if c.method == Method::Is {
            configs.index_axis(ndarray::Axis(1), k - 1).iter().copied().collect()
        } else {
            states.iter().flat_map(|s| s.x.iter().copied()).collect()
        };
        let acc: Vec<f64> = accepted.iter().map(|&a| a as f64).collect();
        let flat = |a: &Array2<f64>| a.iter().copied().collect::<Vec<f64>>();
        let (xs, lpv, lqv, locv) = (
            configs.iter().copied().collect::<Vec<f64>>(),
            flat(&lp),
            flat(&lq),
            flat(&local),
        );
        let json = if c.method == Method::Is {
            "[]".to_string()
        } else {
            serde_json::to_string(&states)?
        };
        let gathered = dist.gather_arrays(&[&xs, &lpv, &lqv, &acc, &locv, &state], &json);
        let appended = match (writer.as_deref_mut(), gathered) {
            (Some(w), Ok(Some(g))) => (|| -> Result<()> {
                let mut a = g.arrays.into_iter();
                let mut next = || a.next().context("MPI block message: arrays missing");
                let configs = Array3::from_shape_vec((n_chains, k, dim), next()?)?;
                let log_p = Array2::from_shape_vec((n_chains, k), next()?)?;
                let log_q = Array2::from_shape_vec((n_chains, k), next()?)?;
                let accepted = Array2::from_shape_vec((n_chains, k), next()?)?.mapv(|v| v as u8);
                let local = Array2::from_shape_vec((n_chains, k), next()?)?;
                let state = Array2::from_shape_vec((n_chains, dim), next()?)?;
                let log_w = &log_p - &log_q;
                all_log_w.extend(log_w.iter().copied());
                acc_sum += accepted.iter().map(|&v| v as f64).sum::<f64>();
                acc_n += accepted.len();
                let chains_json = if c.method == Method::Is {
                    "{}".to_string()
                } else {
                    let mut all: Vec<ImhState> = Vec::with_capacity(n_chains);
                    for j in &g.json {
                        all.extend(
                            serde_json::from_str::<Vec<ImhState>>(j).context("MPI block message: chain states")?,
                        );
                    }
                    serde_json::to_string(&all)?
                };
                append_block(
                    w,
                    &BlockData {
                        state,
                        chains_json,
                        series: block_series(log_p, log_q, log_w, accepted, local),
                        configs,
                    },
                )
            })(),
            (_, Err(e)) => Err(e),
            _ => Ok(()),
        };
        dist.agree(appended)?;
        written += k;
        blocks += 1;
        if dist.any(interrupt::requested() || interrupt::simulated(blocks)) && written < total {
            pb.abandon();
            let partial = writer.as_deref().map(|w| w.partial_path().display().to_string());
            return Err(Interrupted(format!(
                "interrupted: {written} of {total} steps per chain saved in {}; continue with --resume (one process)",
                partial.unwrap_or_default()
            ))
            .into());
        }
    }
    if c.method != Method::Is {
        return Ok(format!(
            "acceptance        {:.4} (this run)",
            acc_sum / acc_n.max(1) as f64
        ));
    }
    let ess = fieldflow_stats::ess_normalized(&all_log_w).unwrap_or(f64::NAN);
    let lz = fieldflow_stats::log_z(&all_log_w)
        .map(|r| (r.log_z, r.error))
        .unwrap_or((f64::NAN, f64::NAN));
    Ok(format!(
        "ESS/N             {ess:.4} (this run)\nlog Z estimate    {:.5} ± {:.5}",
        lz.0, lz.1
    ))
}
