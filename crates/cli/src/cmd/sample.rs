//! `fieldflow sample`: exact sampling with a trained flow.
//!
//! * `imh` (default): independent Metropolis–Hastings chains with the flow
//!   as proposal; exact whatever the flow's quality (docs/THEORY.md §6.1);
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

mod settings;
pub use settings::{Method, SampleArgs, SampleConfig};

use crate::blocks::{ensemble_spec, run_blocks};
use crate::config;
use crate::interrupt;
use crate::model::Sampler;
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, check_resume_only, emit};
use crate::progress;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use fieldflow_core::run::{BlockChains, ChainBlock};
use fieldflow_core::{LocalKernel, Par, Proposal, Seed};
use fieldflow_imh::{
    GlobalMove, ImhBlocks, ImhChain, ImhConfig, ImhState, ImportanceBlocks, RandomWalk, SAMPLE_SERIES,
};
use fieldflow_io::{AttrValue, EnsembleSpec, EnsembleWriter, FileKind, Header, ModelFile};
use fieldflow_lattice::{MetropolisConfig, MetropolisSweep};
use std::path::Path;
use std::time::Instant;

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
    if c.method == Method::Hybrid && sampler.density().is_none() {
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
        seed: args.run.seed.unwrap_or(1),
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

/// Runs `fieldflow sample` (one process, or the ranks of an MPI job).
pub fn run(args: SampleArgs) -> Result<()> {
    interrupt::install();
    let dist = Dist::init()?;
    let r = run_on(&args, &dist);
    dist.finish(r)
}

/// The settings given with `--resume` (which takes only `--out`).
fn any_setting(args: &SampleArgs) -> bool {
    args.model.is_some()
        || args.n.is_some()
        || args.method.is_some()
        || args.chains.is_some()
        || args.run.seed.is_some()
        || args.batch.is_some()
        || args.local_steps.is_some()
        || args.local_width.is_some()
}

/// A resumed run: the writer, the stored settings, the chains' JSON
/// checkpoint and the model (refused if it changed since the run started).
fn resume(args: &SampleArgs) -> Result<(EnsembleWriter, SampleConfig, Option<String>, Model)> {
    let (writer, resumed) = EnsembleWriter::resume(&args.run.out, args.run.force)?;
    let mut t: toml::Table = resumed.header.config.parse()?;
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
    Ok((writer, c, resumed.checkpoint.map(|cp| cp.chains), model))
}

/// `fieldflow sample` on this process: rank r runs the contiguous block of
/// chains [`Dist::block`] (all of them in one process); chain c's streams
/// are those of chain c whichever process runs it, and rank 0 gathers
/// every block and writes the one-process file (docs/MPI.md).
fn run_on(args: &SampleArgs, dist: &Dist) -> Result<()> {
    let (mut writer, c, resumed_chains, model) = if args.run.resume {
        if dist.is_parallel() {
            bail!("--resume is not supported with several MPI ranks: resume with one process (the file is the same)");
        }
        check_resume_only(any_setting(args), &args.run.out, "settings")?;
        let (writer, c, chains, model) = resume(args)?;
        (Some(writer), c, chains, model)
    } else {
        let c = resolve(args)?;
        c.validate()?;
        let model = dist.agree(load_model(&c))?;
        let writer = if dist.is_root() {
            let w = check_new_output(&args.run.out, args.run.force).and_then(|()| {
                Ok(EnsembleWriter::create(
                    &args.run.out,
                    &header(&c, &model)?,
                    &spec(&c, &model),
                    args.run.force,
                )?)
            });
            Some(dist.agree(w)?)
        } else {
            dist.agree(Ok(()))?;
            None
        };
        (writer, c, None, model)
    };
    let quiet = args.run.quiet || !dist.is_root();
    let start = Instant::now();
    let mine = dist.block(c.chains as usize, dist.rank());
    let done = writer.as_ref().map_or(0, |w| w.n_cfg() as u64);
    let pb = progress::bar((c.n - done) * mine.len() as u64, c.method.as_str());
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let target = model.target.as_target();
    let kernel = local_kernel(&model, &c)?;
    let seed = Seed::new(c.seed);
    let mut chains: Box<dyn BlockChains + '_> = match c.method {
        Method::Is => Box::new(ImportanceBlocks {
            target,
            proposal: &model.sampler,
            seed,
            first: mine.start as u64,
            n: mine.len(),
        }),
        Method::Imh | Method::Hybrid => {
            let config = ImhConfig {
                batch: c.batch as usize,
                local_steps: 0,
                par: Par::default(),
                global: GlobalMove::Imh,
            };
            let mut chain = ImhChain::new(target, &model.sampler, seed, config).with_first_chain(mine.start as u64);
            if let (Some(k), Some(density)) = (kernel.as_deref(), model.sampler.density()) {
                chain = chain.with_local(k, c.local_steps as usize, density);
            }
            let states: Vec<ImhState> = match resumed_chains {
                Some(json) => serde_json::from_str(&json).context("checkpoint unreadable")?,
                None => chain.initial_states(mine.len()),
            };
            Box::new(ImhBlocks::new(chain, states))
        }
    };
    let mut summary = SampleSummary::default();
    let mut observe = |b: &ChainBlock, _: usize| {
        summary.add(b);
        pb.set_message(summary.progress_message(c.method));
    };
    run_blocks(
        chains.as_mut(),
        writer.as_mut(),
        dist,
        (c.n as usize, c.block as usize),
        &mut observe,
        &|u| pb.inc(u),
    )
    .inspect_err(|_| pb.abandon())?;
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
        let ranks = if dist.is_parallel() {
            format!("\n({} MPI ranks)", dist.size())
        } else {
            String::new()
        };
        emit(&format!(
            "wrote {}\n{}{ranks}",
            path.display(),
            summary.render(c.method)
        ));
    }
    Ok(())
}

/// What a run prints: the IMH acceptance, or the importance sampler's ESS
/// and log Ẑ, over the blocks of this run.
#[derive(Default)]
struct SampleSummary {
    accepted: f64,
    steps: usize,
    log_w: Vec<f64>,
}

impl SampleSummary {
    fn add(&mut self, block: &ChainBlock) {
        if let Some(a) = block.series("accepted").and_then(|s| s.as_u8()) {
            self.accepted += a.iter().map(|&v| f64::from(v)).sum::<f64>();
            self.steps += a.len();
        }
        if let Some(w) = block.series("log_w").and_then(|s| s.as_f64()) {
            self.log_w.extend(w.iter().copied());
        }
    }

    fn acceptance(&self) -> f64 {
        self.accepted / self.steps.max(1) as f64
    }

    fn ess(&self) -> f64 {
        fieldflow_stats::ess_normalized(&self.log_w).unwrap_or(f64::NAN)
    }

    fn progress_message(&self, method: Method) -> String {
        match method {
            Method::Is => format!("ESS {:.3}", self.ess()),
            Method::Imh | Method::Hybrid => format!("acc {:.3}", self.acceptance()),
        }
    }

    fn render(&self, method: Method) -> String {
        if method != Method::Is {
            return format!("acceptance        {:.4} (this run)", self.acceptance());
        }
        let lz = fieldflow_stats::log_z(&self.log_w)
            .map(|r| (r.log_z, r.error))
            .unwrap_or((f64::NAN, f64::NAN));
        format!(
            "ESS/N             {:.4} (this run)\nlog Z estimate    {:.5} ± {:.5}",
            self.ess(),
            lz.0,
            lz.1
        )
    }
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

fn spec(c: &SampleConfig, model: &Model) -> EnsembleSpec {
    ensemble_spec(c.chains as usize, &model.target.shape(), &SAMPLE_SERIES)
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
            Box::new(MetropolisSweep {
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
