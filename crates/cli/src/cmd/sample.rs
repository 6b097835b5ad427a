//! `fieldflow sample`: exact sampling with a trained flow.
//!
//! * `imh` (default): independent Metropolis–Hastings chains with the flow
//!   as proposal; exact whatever the flow's quality (docs/THEORY.md §6.1);
//! * `hybrid`: `--local-steps k` local updates (Metropolis sweeps for φ⁴, a
//!   Gaussian random walk for vector targets) before every flow proposal;
//! * `is`: independent flow draws with importance weights log w = log p̃ −
//!   log q; `analyze` then reweights (self-normalized estimators);
//! * `isir`: i-SIR, K = `sampler.proposals` flow proposals per step, the
//!   new state picked among them and the current one by weight (§6.7);
//! * `global-local`: k local updates (`sampler.local`: MALA by default, HMC,
//!   random walk, or Metropolis sweeps for φ⁴) then a global flow move
//!   (`sampler.global`: imh or isir); the local step is adapted in a
//!   warm-up first (§6.8);
//! * `neutra`: neutra-MCMC, the local kernel on the flow's pulled-back
//!   density in latent space, states mapped back through the flow (§6.9);
//! * `adaptive`: adaptive flow-MCMC (§6.10): the model's flow is trained on
//!   walkers moved by global–local steps, written to
//!   `sampler.adapted_model`, and production is global-local with it;
//! * `slips`: SLIPS (§6.12), no model: stochastic localization with an
//!   MCMC denoiser on the `[target]`/`[phi4]` of `--config` (module `slips`).
//!
//! The method's settings are the `[sampler]` table of `--config FILE`
//! (module `settings`).
//!
//! The output has the ensemble schema (kind `samples`) plus the series
//! `log_q`, `log_w` and `accepted`, so `fieldflow analyze` reads it unchanged.
//! Its config (stored in the file) names the model and copies the model's
//! target section, so the file is self-describing. Written in blocks with
//! checkpoints; `--resume` continues exactly.
//!
//! The closing summary gives the acceptance (or ESS and log Ẑ) of this run
//! and its cost: proposals, wall-clock time per proposal and the target
//! and flow evaluations per proposal, counted as they happen (module
//! `cost`).

pub mod adaptive;
pub mod chains;
pub mod cost;
pub mod kernels;
pub mod settings;
mod slips;
pub use chains::{with_chains, Prepared, Sampling};
pub use settings::{Given, Method, MixtureWeights, SampleArgs, SampleConfig};

use crate::blocks::{ensemble_spec, run_blocks};
use crate::config;
use crate::interrupt;
use crate::model::Sampler;
use crate::mpi_dist::Dist;
use crate::output::{check_new_output, check_resume_only, emit, num, NONE};
use crate::progress;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use cost::{Cost, CountedModel, CountedTarget, Evaluations};
use fieldflow_core::run::{BlockChains, ChainBlock};
use fieldflow_core::Proposal;
use fieldflow_imh::SAMPLE_SERIES;
use fieldflow_io::{AttrValue, EnsembleSpec, EnsembleWriter, FileKind, Header, ModelFile};
use std::collections::BTreeMap;
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
    let mut model = load_model_at(Path::new(&c.model), c.method)?;
    if c.sampler.mixture_weights == MixtureWeights::Equal {
        model.sampler.equalize_mixture_weights()?;
    }
    Ok(model)
}

/// Loads the model file at `path` for `method`.
fn load_model_at(path: &Path, method: Method) -> Result<Model> {
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
    chains::check_model(
        method,
        sampler.flow().is_some(),
        sampler.density().is_some(),
        &path.display().to_string(),
    )?;
    Ok(Model {
        sampler,
        target,
        config,
        fingerprint: file.state.fingerprint(),
    })
}

/// Refuses a local kernel that cannot act where the method runs it
/// (Metropolis sweeps need lattice φ⁴ in x), before any output exists: the
/// kernel of the run, built once with its starting step.
fn check_kernel(c: &SampleConfig, model: &Model) -> Result<()> {
    if !c.method.has_local() {
        return Ok(());
    }
    let phi4 = match (&model.target, c.method) {
        (RunTarget::Phi4(p), m) if m != Method::Neutra => Some(p),
        _ => None,
    };
    let kind = c.local_kind(matches!(model.target, RunTarget::Phi4(_)));
    kernels::kernel(
        kind,
        c.local_width,
        c.sampler.hmc_length,
        model.target.as_target(),
        phi4,
    )
    .map(drop)
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

/// A resumed run: the writer, the stored settings, the chains' JSON
/// checkpoint, the model (refused if it changed since the run started) and
/// the stored attributes.
type Resumed = (
    EnsembleWriter,
    SampleConfig,
    Option<String>,
    Model,
    BTreeMap<String, AttrValue>,
);

/// Opens the interrupted run in `--out` (see [`Resumed`]).
fn resume(args: &SampleArgs) -> Result<Resumed> {
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
    Ok((
        writer,
        c,
        resumed.checkpoint.map(|cp| cp.chains),
        model,
        resumed.header.extra,
    ))
}

/// `fieldflow sample` on this process: rank r runs the contiguous block of
/// chains [`Dist::block`] (all of them in one process); chain c's streams
/// are those of chain c whichever process runs it, and rank 0 gathers
/// every block and writes the one-process file (docs/MPI.md).
fn run_on(args: &SampleArgs, dist: &Dist) -> Result<()> {
    if slips::requested(args) {
        return slips::run(args, dist);
    }
    let (mut writer, c, resumed_chains, model, extra) = if args.run.resume {
        if dist.is_parallel() {
            bail!("--resume is not supported with several MPI ranks: resume with one process (the file is the same)");
        }
        check_resume_only(args.any_setting(), &args.run.out, "settings")?;
        let (writer, c, chains, model, extra) = resume(args)?;
        (Some(writer), c, chains, model, extra)
    } else {
        let mut c = SampleConfig::resolve(args)?;
        c.validate()?;
        if c.method == Method::Adaptive && dist.is_parallel() {
            bail!("method = adaptive: the adaptation runs on one process; run it without MPI (its production is the global-local method, which runs on many)");
        }
        if c.method == Method::Adaptive && args.model.is_none() {
            // No starting model given: an untrained flow for the target of
            // --config, written next to the output (after the output check,
            // so a refused run leaves nothing behind).
            check_new_output(&args.run.out, args.run.force)?;
            let table = config::load_table(args.config.as_deref())?;
            adaptive::write_initial_model(&table, c.seed, Path::new(&c.model), args.run.force)?;
        }
        let model = dist.agree(load_model(&c).and_then(|m| check_kernel(&c, &m).map(|()| m)))?;
        c.resolve_for_model(model.target.as_target().dim(), adaptive::trained_lr(&c)?);
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
        (writer, c, None, model, BTreeMap::new())
    };
    let quiet = args.run.quiet || !dist.is_root();
    let start = Instant::now();
    let model = if c.method == Method::Adaptive {
        adapted_model(&c, model, writer.as_mut(), &extra, args.run.force, quiet)?
    } else {
        model
    };
    // The target and the model, counting their evaluations (module `cost`).
    let counted_target = CountedTarget::new(model.target.as_target());
    let counted_model = CountedModel::new(&model.sampler, model.sampler.density());
    let sampling = Sampling {
        target: &counted_target,
        phi4: match &model.target {
            RunTarget::Phi4(p) => Some(p),
            RunTarget::Synthetic(_) => None,
        },
        proposal: &counted_model,
        density: counted_model.density(),
        flow: model.sampler.flow(),
    };
    let stored_step = match extra.get("local_step") {
        Some(AttrValue::F64(s)) => Some(*s),
        _ => None,
    };
    let mine = dist.block(c.chains as usize, dist.rank());
    let done = writer.as_ref().map_or(0, |w| w.n_cfg() as u64);
    let run = |chains: &mut dyn BlockChains,
               prepared: &Prepared<'_>|
     -> Result<(Cost, Option<EnsembleWriter>, SampleSummary)> {
        let mut writer = writer;
        if let (Some(w), Some(s), true) = (writer.as_mut(), prepared.local_step, prepared.tuned) {
            w.set_attr("local_step", s)?;
        }
        let pb = progress::bar((c.n - done) * mine.len() as u64, c.method.as_str());
        if quiet {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut summary = SampleSummary::default();
        let mut observe = |b: &ChainBlock, _: usize| {
            summary.add(b);
            pb.set_message(summary.progress_message(c.method));
        };
        let evaluations = || Evaluations::read(&counted_target, &counted_model, prepared.pullback);
        let before = evaluations();
        let production = Instant::now();
        let setup_seconds = production.duration_since(start).as_secs_f64();
        run_blocks(
            chains,
            writer.as_mut(),
            dist,
            (c.n as usize, c.block as usize),
            &mut observe,
            &|u| pb.inc(u),
        )
        .inspect_err(|_| pb.abandon())?;
        pb.finish_and_clear();
        let steps = c.n - done;
        Ok((
            Cost {
                global: prepared.flow_proposals,
                local: if c.method.has_local() { c.local_steps } else { 0 },
                chain_steps: steps * c.chains,
                own_chain_steps: steps * mine.len() as u64,
                seconds: production.elapsed().as_secs_f64(),
                setup_seconds,
                evaluations: before.since(evaluations()),
            },
            writer,
            summary,
        ))
    };
    let (cost, writer, summary) =
        with_chains(&c, &sampling, mine.clone(), resumed_chains.as_deref(), stored_step, run)?;
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
            "wrote {}\n{}\n{}{ranks}",
            path.display(),
            summary.render(c.method),
            cost.render()
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
    /// ln w of an independence sampler's proposals (steps without one,
    /// stored as NaN, are left out).
    proposal_log_w: Vec<f64>,
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
        if let Some(w) = block.series(fieldflow_imh::PROPOSAL_LOG_W).and_then(|s| s.as_f64()) {
            self.proposal_log_w.extend(w.iter().copied().filter(|v| !v.is_nan()));
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
            Method::Is => format!("ESS {}", num(self.ess(), 3)),
            _ => format!("{} {:.3}", Self::accepted_label(method), self.acceptance()),
        }
    }

    /// What the `accepted` series counts: the global move's acceptance, the
    /// fraction of i-SIR steps that moved, or (neutra) the last local update's.
    fn accepted_label(method: Method) -> &'static str {
        match method {
            Method::Isir => "moved",
            Method::Neutra => "local acc",
            _ => "acc",
        }
    }

    fn render(&self, method: Method) -> String {
        if method != Method::Is {
            let label = match method {
                Method::Isir => "moved (i-SIR)    ",
                Method::Neutra => "local acceptance ",
                _ => "acceptance       ",
            };
            let acceptance = format!("{label} {} (this run)", num(self.acceptance(), 4));
            // Independence samplers: the tail of the proposals' weights says
            // whether the chains' error bars can be trusted, and their mean
            // estimates Z (every proposal is an independent draw of q).
            return match crate::analysis::finite_weights_tail(self.proposal_log_w.iter().copied()) {
                Some(t) => {
                    let warning = crate::analysis::sticky_chain_warning(&t)
                        .map_or(String::new(), |w| format!("\nwarning           {w}"));
                    format!(
                        "{acceptance}\nPareto k̂          {} (proposals)\nlog Z estimate    {} (proposals){warning}",
                        num(t.k, 3),
                        log_z_text(&self.proposal_log_w)
                    )
                }
                None => acceptance,
            };
        }
        let log_z = log_z_text(&self.log_w);
        let tail = fieldflow_stats::pareto_k(&self.log_w).ok();
        let warning = tail
            .and_then(|t| crate::analysis::heavy_tail_warning(&t))
            .map_or(String::new(), |w| format!("\nwarning           {w}"));
        format!(
            "ESS/N             {} (this run)\nPareto k̂          {}\nlog Z estimate    {log_z}{warning}",
            num(self.ess(), 4),
            tail.map_or(NONE.to_string(), |t| num(t.k, 3))
        )
    }
}

/// log Ẑ ± error of importance weights, or "–".
fn log_z_text(log_w: &[f64]) -> String {
    fieldflow_stats::log_z(log_w).map_or(NONE.to_string(), |r| {
        format!("{} ± {}", num(r.log_z, 5), num(r.error, 5))
    })
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

/// The model production samples with in an adaptive run: the adapted model
/// of this run if its adaptation is complete (a resumed run; refused if it
/// changed since), otherwise the result of running (or continuing) the
/// adaptation. Its fingerprint and path are stored in the output.
fn adapted_model(
    c: &SampleConfig,
    start: Model,
    writer: Option<&mut EnsembleWriter>,
    extra: &BTreeMap<String, AttrValue>,
    force: bool,
    quiet: bool,
) -> Result<Model> {
    let path = Path::new(&c.sampler.adapted_model);
    let done = extra.contains_key("adapted_model_fingerprint") && path.exists() && !adaptive::in_progress(path);
    if !done {
        adaptive::adapt(c, &start, force, quiet)?;
    }
    let m = load_model_at(path, Method::GlobalLocal)?;
    match extra.get("adapted_model_fingerprint") {
        Some(AttrValue::Str(fp)) if done && *fp != m.fingerprint => bail!(
            "{}: the adapted model changed since this run started (fingerprint {fp}, now {}): start a new run",
            path.display(),
            m.fingerprint
        ),
        _ => {
            if let Some(w) = writer {
                w.set_attr("adapted_model", c.sampler.adapted_model.as_str())?;
                w.set_attr("adapted_model_fingerprint", m.fingerprint.as_str())?;
            }
        }
    }
    Ok(m)
}
