//! The adaptation phase of `fieldflow sample --method adaptive`
//! (docs/THEORY.md §6.10): the model's flow is trained on walkers moved by
//! global–local steps ([`fieldflow_flowmcmc::Adaptive`]), then written as a
//! model file (`sampler.adapted_model`) that every method can use;
//! production is then a global-local run with that frozen flow.
//!
//! Walkers start from N(0, init_sigma² I) (a broad start that knows nothing
//! of the modes), thermalized by the local kernel's warm-up. After every
//! round the plain-data state is written atomically to
//! `ADAPTED.adapt.json`; an interrupted adaptation continues from it with
//! `--resume` and ends bit-identical to an uninterrupted one. The file is
//! removed once the adapted model is written. Nothing sampled during the
//! adaptation is stored as a sample: the output holds production only.

use super::kernels::{kernel, tune, warmup_seed};
use super::settings::{Global, SampleConfig};
use super::Model;
use crate::interrupt::{self, Interrupted};
use crate::progress;
use anyhow::{bail, Context, Result};
use fieldflow_core::{Modes, Par, Seed, Target};
use fieldflow_flowmcmc::{broad_starts, Adaptive, AdaptiveConfig, AdaptiveState};
use fieldflow_flows::Flow;
use fieldflow_imh::{GlobalMove, ImhConfig};
use fieldflow_io::{AttrValue, FileKind, Header, ModelFile, ModelState};
use fieldflow_lattice::Phi4;
use fieldflow_losses::{AdamState, LossConfig, SmOn, TrainConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The checkpoint of an adaptation whose model goes to `adapted`.
fn checkpoint_path(adapted: &Path) -> PathBuf {
    let mut s = adapted.as_os_str().to_owned();
    s.push(".adapt.json");
    PathBuf::from(s)
}

/// Whether an adaptation toward `adapted` was interrupted (its checkpoint
/// exists).
pub fn in_progress(adapted: &Path) -> bool {
    checkpoint_path(adapted).exists()
}

/// Writes the starting model of an adaptive run given by `--config` alone:
/// an untrained, identity-initialized flow (the target's default
/// architecture, or the `[flow]` section) for the `[target]` or `[phi4]`
/// section of `table`, with parameters from `seed`, at `path` (refused if it
/// exists, unless `force`).
///
/// # Errors
/// No or a bad target section, a bad or stochastic `[flow]`, file errors.
pub fn write_initial_model(table: &toml::Table, seed: u64, path: &Path, force: bool) -> Result<()> {
    let target = crate::target::RunTarget::from_table(table, "--config")?;
    let model = crate::model::ModelConfig::from_section(table.get("flow"), &target)?;
    let crate::model::ModelConfig::Flow(config) = &model else {
        bail!("flow.stages: method = adaptive trains a normalizing flow, not a stochastic one");
    };
    let flow = config
        .build(Seed::new(seed))
        .map_err(|e| anyhow::anyhow!("flow.{} = {}: {}", e.field, e.value, e.problem))?;
    if flow.dim() != target.as_target().dim() {
        bail!(
            "flow.shape {:?} does not match the target's {} dimensions",
            config.shape,
            target.as_target().dim()
        );
    }
    let mut stored = toml::Table::new();
    for key in ["phi4", "target"] {
        if let Some(v) = table.get(key) {
            stored.insert(key.into(), v.clone());
        }
    }
    stored.insert("flow".into(), model.to_section()?);
    let n = flow.n_params();
    let mut header = Header::new(
        FileKind::Model,
        toml::to_string(&stored)?,
        seed,
        target.as_target().describe(),
    );
    header.extra.insert(
        "untrained".into(),
        AttrValue::Str("the starting flow of an adaptive run".into()),
    );
    ModelFile {
        header,
        state: ModelState {
            architecture: model.to_json()?,
            params: flow.params().to_vec(),
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            adam_step: 0,
            rng_state: vec![seed, 0],
        },
        metrics: BTreeMap::new(),
    }
    .write(path, force)?;
    Ok(())
}

/// The learning rate a trained starting model learnt with (its stored
/// `train.lr`), or `None` for a model that took at most one optimizer step
/// (untrained: the adaptation starts from scratch).
///
/// # Errors
/// The model file cannot be read.
pub fn trained_lr(c: &SampleConfig) -> Result<Option<f64>> {
    if c.method != super::Method::Adaptive {
        return Ok(None);
    }
    let file = ModelFile::read(&c.model)?;
    let config: toml::Table = file.header.config.parse().unwrap_or_default();
    Ok(lr_of_trained(file.state.adam_step, &config))
}

/// The `train.lr` of a model's stored `config` if it took more than one
/// optimizer step (`adam_step`), else `None` (see [`trained_lr`]).
pub fn lr_of_trained(adam_step: u64, config: &toml::Table) -> Option<f64> {
    if adam_step <= 1 {
        return None;
    }
    config
        .get("train")
        .and_then(|t| t.get("lr"))
        .and_then(toml::Value::as_float)
}

/// The global move of the run's settings.
pub fn global_move(c: &SampleConfig) -> GlobalMove {
    match c.sampler.global {
        Global::Imh => GlobalMove::Imh,
        Global::Isir => GlobalMove::Isir {
            proposals: c.sampler.proposals as usize,
        },
    }
}

/// Runs (or continues) the adaptation and writes the adapted model file;
/// returns its path. Refuses to replace an existing adapted model unless
/// `force`.
///
/// # Errors
/// Bad settings, a model that is not a flow, training failures, file
/// errors; an interruption (the checkpoint is kept).
pub fn adapt(c: &SampleConfig, model: &Model, force: bool, quiet: bool) -> Result<PathBuf> {
    let s = &c.sampler;
    let out = PathBuf::from(&s.adapted_model);
    let ckpt = checkpoint_path(&out);
    let resuming = ckpt.exists();
    if out.exists() && !force && !resuming {
        bail!(
            "{}: the adapted model exists; pass --force to replace it or set --adapted-model",
            out.display()
        );
    }
    let Some(flow0) = model.sampler.flow() else {
        bail!("method = adaptive: {} is not a normalizing flow", c.model);
    };
    let mut flow = flow0.clone();
    // The starting model file: its header and Adam moments are reused.
    let source = ModelFile::read(&c.model)?;
    let phi4: Option<&Phi4> = match &model.target {
        crate::target::RunTarget::Phi4(p) => Some(p),
        crate::target::RunTarget::Synthetic(_) => None,
    };
    let saved = if resuming {
        let json = std::fs::read_to_string(&ckpt).with_context(|| format!("{}: cannot read", ckpt.display()))?;
        let saved: Checkpoint =
            serde_json::from_str(&json).with_context(|| format!("{}: unreadable adaptation state", ckpt.display()))?;
        Some((saved.state, saved.step))
    } else {
        None
    };
    let adam = AdamState {
        m: source.state.adam_m.clone(),
        v: source.state.adam_v.clone(),
        step: source.state.adam_step,
    };
    let pb = progress::bar(s.rounds, "adapt");
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Some((st, _)) = &saved {
        pb.set_position(st.round);
    }
    let mut failure: Option<anyhow::Error> = None;
    let result = run_adaptation(
        c,
        (model.target.as_target(), phi4, model.target.modes()),
        &mut flow,
        adam,
        saved,
        &mut |st, step| {
            if let Err(e) = save_checkpoint(&ckpt, st, step) {
                failure = Some(e);
                return false;
            }
            if let Some(r) = st.history.last() {
                pb.set_message(match r.pareto_k {
                    Some(k) => format!("global acc {:.3}, k̂ {k:.2}", r.acceptance),
                    None => format!("global acc {:.3}", r.acceptance),
                });
            }
            pb.set_position(st.round);
            !(interrupt::requested() || interrupt::simulated(st.round as usize))
        },
    );
    let (state, step) = match (result, failure) {
        (Err(e), _) | (Ok(_), Some(e)) => {
            pb.abandon();
            return Err(e);
        }
        (Ok(r), None) => r,
    };
    if !state.finished(&adaptive_config(c)) {
        pb.abandon();
        return Err(Interrupted(format!(
            "interrupted: {} of {} adaptation rounds saved in {}; continue with --resume",
            state.round,
            s.rounds,
            ckpt.display()
        ))
        .into());
    }
    pb.finish_and_clear();
    write_model(c, &source, &flow, &state, step, &out, force || resuming)?;
    std::fs::remove_file(&ckpt).with_context(|| format!("{}: cannot remove", ckpt.display()))?;
    Ok(out)
}

/// The adaptation's settings (rounds, steps, the global move) from `c`.
pub fn adaptive_config(c: &SampleConfig) -> AdaptiveConfig {
    let s = &c.sampler;
    AdaptiveConfig {
        rounds: s.rounds as usize,
        steps_per_round: s.steps_per_round as usize,
        local_steps: c.local_steps as usize,
        train_steps: s.train_steps as usize,
        stop_acceptance: None,
        imh: ImhConfig {
            batch: (c.batch as usize).min(s.steps_per_round as usize),
            local_steps: 0,
            par: Par::default(),
            global: global_move(c),
        },
    }
}

/// The adaptation of `flow` (updated in place) on `target` (with its φ⁴
/// lattice for Metropolis sweeps and its modes for the per-round walker
/// fractions), without files: from `saved` (a state and its frozen local
/// step) if given, otherwise from broad starts thermalized by the local
/// kernel's warm-up, which also tunes the step. `adam`: the starting
/// model's Adam state, reused if it trained (more than one step) with the
/// same parameter count. After every round `after_round(state, step)` says
/// whether to continue. Returns the state (finished unless stopped) and the
/// local step.
///
/// # Errors
/// Bad settings or kernel, training failures.
pub fn run_adaptation(
    c: &SampleConfig,
    (target, phi4, modes): (&dyn Target, Option<&Phi4>, Option<&dyn Modes>),
    flow: &mut Flow,
    adam: AdamState,
    saved: Option<(AdaptiveState, f64)>,
    after_round: &mut dyn FnMut(&AdaptiveState, f64) -> bool,
) -> Result<(AdaptiveState, f64)> {
    let s = &c.sampler;
    let kind = c.local_kind(phi4.is_some());
    let seed = Seed::new(c.seed);
    let mut train = TrainConfig::new(
        LossConfig::weights(1.0, s.w_rkl, 0.0, SmOn::Data),
        s.train_batch as usize,
        s.rounds * s.train_steps,
        s.lr.expect("resolved for the model"),
    );
    train.seed = c.seed;
    let config = adaptive_config(c);
    // The step: read from the checkpoint, or tuned on the walkers (which
    // the warm-up moves toward the modes).
    let (mut state, step) = match saved {
        Some(saved) => saved,
        None => {
            let starts = broad_starts(
                s.walkers.expect("resolved for the target's dimension") as usize,
                target.dim(),
                s.init_sigma,
                warmup_seed(c.seed).child(2),
            );
            let mut walkers: Vec<Vec<f64>> = starts.outer_iter().map(|r| r.to_vec()).collect();
            let step = tune(c, kind, target, phi4, &mut walkers, warmup_seed(c.seed).child(3))?;
            let starts = ndarray::Array2::from_shape_fn((walkers.len(), target.dim()), |(i, j)| walkers[i][j]);
            let ad = adaptive(target, None, modes, config, &train, seed);
            let mut state = ad.initial_state(flow, starts)?;
            // A trained starting model continues with its Adam moments, so the
            // first updates are not the large sign-like steps of fresh moments.
            if adam.step > 1 && adam.m.len() == state.trainer.params.len() {
                state.trainer.adam = adam;
            }
            (state, step)
        }
    };
    let k = kernel(kind, step, s.hmc_length, target, phi4)?;
    let ad = adaptive(target, Some(k.as_ref()), modes, config, &train, seed);
    ad.run(flow, &mut state, |st| after_round(st, step))?;
    Ok((state, step))
}

fn adaptive<'a>(
    target: &'a dyn Target,
    kernel: Option<&'a dyn fieldflow_core::LocalKernel>,
    modes: Option<&'a dyn Modes>,
    config: AdaptiveConfig,
    train: &TrainConfig,
    seed: Seed,
) -> Adaptive<'a> {
    Adaptive {
        target,
        kernel,
        modes,
        config,
        train: train.clone(),
        seed,
    }
}

/// The adaptation state with the frozen local step.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    step: f64,
    state: AdaptiveState,
}

/// Writes the checkpoint atomically (temporary file, then rename).
fn save_checkpoint(path: &Path, state: &AdaptiveState, step: f64) -> Result<()> {
    let json = serde_json::to_string(&Checkpoint {
        step,
        state: state.clone(),
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, json).with_context(|| format!("{}: cannot write", PathBuf::from(&tmp).display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// The per-round records of an adaptation as the adapted model's metrics
/// columns: `round`, `global_acceptance`, `local_acceptance`, `loss`,
/// `pareto_k` (of the round's proposals) and `walker_mode_k` (the walkers'
/// fraction in mode k, targets with modes).
pub fn round_metrics(state: &AdaptiveState) -> BTreeMap<String, Vec<f64>> {
    let mut metrics: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &state.history {
        let mut push = |k: &str, v: f64| metrics.entry(k.to_string()).or_default().push(v);
        push("round", r.round as f64);
        push("global_acceptance", r.acceptance);
        push("local_acceptance", r.local_acceptance.unwrap_or(f64::NAN));
        push("loss", r.loss.unwrap_or(f64::NAN));
        push("pareto_k", r.pareto_k.unwrap_or(f64::NAN));
        for (k, w) in r.walker_modes.iter().enumerate() {
            push(&format!("walker_mode_{k}"), *w);
        }
    }
    metrics
}

/// The adapted model: the starting model's config and architecture with the
/// adapted parameters and Adam state, the per-round records as metrics.
fn write_model(
    c: &SampleConfig,
    source: &ModelFile,
    flow: &fieldflow_flows::Flow,
    state: &AdaptiveState,
    step: f64,
    out: &Path,
    force: bool,
) -> Result<()> {
    let mut header = Header::new(
        FileKind::Model,
        source.header.config.clone(),
        c.seed,
        source.header.target.clone(),
    );
    header.extra = source.header.extra.clone();
    // The starting model's training counters describe its own training run,
    // not this adaptation (whose counters are the Adam state stored below).
    for stale in ["trainer_state", "steps_done"] {
        header.extra.remove(stale);
    }
    header
        .extra
        .insert("adapted_from".into(), AttrValue::Str(c.model.clone()));
    header
        .extra
        .insert("adaptive_rounds".into(), AttrValue::U64(state.round));
    header.extra.insert("local_step".into(), AttrValue::F64(step));
    let metrics = round_metrics(state);
    let t = &state.trainer;
    ModelFile {
        header,
        state: ModelState {
            architecture: flow
                .architecture_json()
                .context("the flow has no architecture to store")?,
            params: flow.params().to_vec(),
            adam_m: t.adam.m.clone(),
            adam_v: t.adam.v.clone(),
            adam_step: t.adam.step,
            rng_state: vec![c.seed, t.step],
        },
        metrics,
    }
    .write(out, force)?;
    Ok(())
}
