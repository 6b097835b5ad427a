//! `fieldflow free-energy --config F`: the log ratio of a target's two mode
//! weights by free-energy integration through its phases (docs/THEORY.md
//! §6.13, crate fieldflow-freeenergy) — the estimate that resolves weights of
//! 1e-10 where a sampler of the full density sees none of the minority mode.
//!
//! Supported targets: those with a Z₂ symmetry broken by a linear field:
//!
//! * the 1D φ⁴ / Allen–Cahn chain (`[target] kind = "phi4_1d"`): its tilt b
//!   is the field; phases by the signs of the field at sites N/4 and 3N/4,
//!   modes by the sign of the middle site (the target's `Modes`); exact
//!   value from the transfer operator;
//! * lattice φ⁴ (`[phi4]`) in an external field h (`free_energy.field`,
//!   log p̃ = −S + h Σₓ φ(x)): phases = modes = the sign of the
//!   magnetization (so no profile is run); exact value for the free field
//!   (λ = 0: M is Gaussian).
//!
//! Settings: the `[free_energy]` table ([`FreeEnergySettings`]), `--seed`
//! overrides its seed. Prints the estimate with its replica error next to the
//! exact value where one exists; `--out` also writes everything as JSON
//! (atomically; an existing file is kept unless `--force`).
//!
//! With `--out OUT`, every finished node (a set of chains at one field value
//! or one clamped value) is saved in the checkpoint `OUT.partial` (JSON:
//! the config and the nodes' per-chain averages); Ctrl-C stops after the
//! nodes in progress, and `--resume --out OUT` computes only the missing
//! nodes. Every node has its own seed and start, so the result is bit for bit
//! that of an uninterrupted run (tested). Without `--out` nothing is saved.

use crate::interrupt;
use crate::output::{check_new_output, check_resume_only, emit};
use crate::progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use fieldflow_core::Seed;
use fieldflow_freeenergy::{
    estimate, gaussian_log_mode_ratio, uniform_grid, ChainSettings, LinearCv, NodeHooks, NodeRun, PhaseEstimate,
    PhaseProblem, Replicas,
};
use fieldflow_io::partial_path;
use fieldflow_lattice::{FreeField, Phi4Config};
use fieldflow_targets::transfer_operator::{default_oracle, log_z_with_signs};
use fieldflow_targets::{Phi4Field1d, TargetConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Samples per chain from which the replica errors of a fluctuation-dominated
/// estimate were measured honest (the tilted chain at b = 0.1: seed scatter
/// 0.024 against a replica error of 0.025; with 2000, 1.5–1.9× optimistic).
const LONG_CHAINS: usize = 8000;

/// Arguments of `fieldflow free-energy`.
#[derive(Args, Debug)]
pub struct FreeEnergyArgs {
    /// TOML file with the target ([target] kind = "phi4_1d", or [phi4]) and
    /// a [free_energy] table of settings (not with --resume).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seed (overrides free_energy.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Continue the interrupted run whose checkpoint is OUT.partial (pass
    /// only --out).
    #[arg(long)]
    pub resume: bool,
}

/// The `[free_energy]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreeEnergySettings {
    /// Chains per node = replicas of the estimate (≥ 2).
    pub chains: usize,
    /// Warm-up HMC trajectories per chain (step-size adaptation).
    pub warmup: usize,
    /// Recorded HMC trajectories per chain (≥ 1).
    pub samples: usize,
    /// HMC trajectory length.
    pub trajectory_length: f64,
    /// Initial HMC step size.
    pub initial_step: f64,
    /// Gauss–Legendre nodes of each phase's field integral (≥ 1).
    pub field_nodes: usize,
    /// Lower end of the middle site's profile grid in the negative phase
    /// (< 0, a multiple of `profile_step`; the positive phase uses the mirror image).
    pub profile_min: f64,
    /// Upper end (> 0).
    pub profile_max: f64,
    /// Grid spacing (> 0).
    pub profile_step: f64,
    /// External field h for a `[phi4]` target (required there; the 1D
    /// chain's field is its tilt `target.b`).
    pub field: Option<f64>,
    /// Master seed.
    pub seed: u64,
}

impl Default for FreeEnergySettings {
    fn default() -> Self {
        FreeEnergySettings {
            chains: 8,
            warmup: 300,
            samples: 2000,
            trajectory_length: 1.0,
            initial_step: 0.05,
            field_nodes: 8,
            profile_min: -1.8,
            profile_max: 0.4,
            profile_step: 0.05,
            field: None,
            seed: 1,
        }
    }
}

impl FreeEnergySettings {
    /// Checks every key (one-line errors naming it) and returns the profile grid.
    fn grid(&self) -> Result<Vec<f64>> {
        let positive = |key: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("free_energy.{key} = {v}: must be finite and > 0");
            }
            Ok(())
        };
        if self.chains < 2 {
            bail!(
                "free_energy.chains = {}: must be ≥ 2 (the error comes from the spread of the replicas)",
                self.chains
            );
        }
        if self.samples == 0 {
            bail!("free_energy.samples = 0: must be ≥ 1");
        }
        if self.field_nodes == 0 {
            bail!("free_energy.field_nodes = 0: must be ≥ 1");
        }
        positive("trajectory_length", self.trajectory_length)?;
        positive("initial_step", self.initial_step)?;
        positive("profile_step", self.profile_step)?;
        positive("profile_max", self.profile_max)?;
        if !(self.profile_min.is_finite() && self.profile_min < 0.0) {
            bail!("free_energy.profile_min = {}: must be finite and < 0", self.profile_min);
        }
        let below = -self.profile_min / self.profile_step;
        let above = self.profile_max / self.profile_step;
        for (key, v, steps) in [
            ("profile_min", self.profile_min, below),
            ("profile_max", self.profile_max, above),
        ] {
            if (steps - steps.round()).abs() > 1e-6 {
                bail!(
                    "free_energy.{key} = {v}: must be a multiple of profile_step = {} (0 must be a grid node)",
                    self.profile_step
                );
            }
        }
        let nodes = below.round() as usize + above.round() as usize + 1;
        if nodes > 10_000 {
            bail!(
                "free_energy.profile_step = {}: gives {nodes} grid nodes (at most 10000)",
                self.profile_step
            );
        }
        Ok(uniform_grid(self.profile_min, self.profile_max, nodes))
    }
}

/// A replica estimate: mean, error, the replicas.
#[derive(Debug, Clone, Serialize)]
pub struct Value {
    /// Mean of the replicas.
    pub value: f64,
    /// Its standard error.
    pub error: f64,
    /// The replica estimates.
    pub replicas: Vec<f64>,
}

impl From<&Replicas> for Value {
    fn from(r: &Replicas) -> Self {
        Value {
            value: r.mean(),
            error: r.error(),
            replicas: r.values.clone(),
        }
    }
}

/// Everything `--out` / `--json` writes (docs/FORMATS.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target's description (with the field).
    pub target: String,
    /// log(w₊/w₋).
    pub log_ratio: Value,
    /// The exact log ratio where known.
    pub exact_log_ratio: Option<f64>,
    /// (estimate − exact)/error.
    pub pull: Option<f64>,
    /// log Z₊ − log Z₋ of the phases.
    pub delta: Value,
    /// log P(mode coordinate ≥ 0 | negative phase).
    pub log_t_minus: Value,
    /// log P(mode coordinate < 0 | positive phase).
    pub log_t_plus: Value,
    /// Profile density at the grid ends [negative, positive phase].
    pub profile_edge: [f64; 2],
    /// HMC trajectories rejected for ending outside their phase.
    pub rejected_at_boundaries: u64,
    /// Lowest acceptance of any node.
    pub min_acceptance: f64,
    /// log of the share of the − and + modes in neither phase (left out by
    /// the estimate), by the transfer operator (the 1D chain only).
    pub log_left_out: Option<[f64; 2]>,
    /// Wall time.
    pub seconds: f64,
    /// The resolved settings.
    pub settings: FreeEnergySettings,
}

/// What the estimate runs on: the base density (h = 0), the problem, the
/// target's description and its exact log ratio where known.
struct Setup {
    base: Box<dyn fieldflow_core::Target>,
    problem: PhaseProblem,
    describe: String,
    exact: Option<f64>,
    left_out: Option<[f64; 2]>,
}

/// The 1D chain of `[target]` (kind = "phi4_1d"), or a one-line error.
fn chain(t: &toml::Value, settings: &FreeEnergySettings) -> Result<Setup> {
    use fieldflow_core::Target;
    let kind = t.get("kind").and_then(toml::Value::as_str).unwrap_or("?");
    if kind != "phi4_1d" {
        bail!(
            "target.kind = {kind}: free-energy needs a Z2 symmetry broken by a linear field; supported: [target] kind = \"phi4_1d\" (its tilt b) and [phi4] with free_energy.field"
        );
    }
    let cfg: TargetConfig = t
        .clone()
        .try_into()
        .map_err(|e| anyhow::anyhow!("[target]: {}", crate::config::one_line(&e.to_string())))?;
    let TargetConfig::Phi4Field1d { n, a, beta, b } = cfg else {
        bail!("target.kind = {}: not the 1D φ⁴ chain", cfg.kind());
    };
    cfg.validate().map_err(|e| anyhow::anyhow!("target.{e}"))?;
    if n < 8 {
        bail!(
            "target.n = {n}: the phase estimate needs n ≥ 8 (phases by sites n/4 and 3n/4, modes by the middle site)"
        );
    }
    if let Some(h) = settings.field {
        bail!("free_energy.field = {h}: the 1D chain's field is its tilt, target.b");
    }
    let target = Phi4Field1d::new(n, a, beta, b)?;
    // A state of the positive phase: boundary layers of the continuum width
    // aN/√2 (the kernel against the wells' curvature) at the pinned ends.
    let width = (a * n as f64 / std::f64::consts::SQRT_2).max(1.0);
    let start: Vec<f64> = (0..n).map(|i| ((i.min(n - 1 - i) + 1) as f64 / width).tanh()).collect();
    Ok(Setup {
        base: Box::new(Phi4Field1d::new(n, a, beta, 0.0)?),
        problem: PhaseProblem {
            field_direction: LinearCv::sum(n),
            field: -beta * b / (a * n as f64),
            order_parameters: vec![LinearCv::coordinate(n, n / 4), LinearCv::coordinate(n, 3 * n / 4)],
            mode_site: Some(target.middle_site()),
            start,
            field_nodes: settings.field_nodes,
            profile_grid: settings.grid()?,
        },
        describe: target.describe(),
        exact: default_oracle(&target).ok().map(|r| r.log_ratio()),
        left_out: left_out(&target),
    })
}

/// The share of each mode (−, +) that lies in neither phase (the signs at
/// sites n/4 and 3n/4 differ), as logs, by sign-constrained transfer sweeps:
/// what the phase decomposition leaves out.
fn left_out(target: &Phi4Field1d) -> Option<[f64; 2]> {
    let grid = default_oracle(target).ok()?.grid;
    let (n, m) = (target.n(), target.middle_site());
    let share = |positive: bool| -> Option<f64> {
        let z = |signs: &[(usize, bool)]| log_z_with_signs(target, grid, signs).ok();
        let mode = z(&[(m, positive)])?;
        let a = z(&[(m, positive), (n / 4, true), (3 * n / 4, false)])?;
        let b = z(&[(m, positive), (n / 4, false), (3 * n / 4, true)])?;
        Some(a.max(b) + (1.0 + (-(a - b).abs()).exp()).ln() - mode)
    };
    Some([share(false)?, share(true)?])
}

/// Lattice φ⁴ of `[phi4]` in the field `free_energy.field`, or a one-line error.
fn lattice(p: &toml::Value, settings: &FreeEnergySettings) -> Result<Setup> {
    use fieldflow_core::Target;
    let cfg: Phi4Config = p
        .clone()
        .try_into()
        .map_err(|e| anyhow::anyhow!("[phi4]: {}", crate::config::one_line(&e.to_string())))?;
    let target = cfg.validate()?;
    let standard_form = cfg.kappa.is_none();
    let Some(h) = settings.field else {
        bail!("free_energy.field: missing; lattice φ⁴ needs the external field h (log p̃ = -S + h Σ φ) whose mode weights are asked for");
    };
    if !h.is_finite() {
        bail!("free_energy.field = {h}: must be finite");
    }
    settings.grid()?;
    let v = target.lattice().volume();
    let (m2, lambda) = (target.m2(), target.lambda());
    // A state of the positive phase: the classical vacuum where there is one.
    let vacuum = if m2 < 0.0 && lambda > 0.0 {
        (-m2 / (2.0 * lambda)).sqrt()
    } else {
        0.5
    };
    let exact = (lambda == 0.0 && standard_form).then(|| {
        let free = FreeField::new(target.lattice().shape(), m2).expect("a valid free field");
        gaussian_log_mode_ratio(h * (v as f64 * free.chi2()).sqrt())
    });
    let describe = format!("{}, external field h = {h}", target.describe());
    Ok(Setup {
        base: Box::new(target),
        problem: PhaseProblem {
            field_direction: LinearCv::sum(v),
            field: h,
            order_parameters: vec![LinearCv::sum(v)],
            mode_site: None,
            start: vec![vacuum; v],
            field_nodes: settings.field_nodes,
            profile_grid: Vec::new(),
        },
        describe,
        exact,
        left_out: None,
    })
}

/// Runs the estimate of a free-energy config (`table`: its [target] or
/// [phi4] and [free_energy]; `seed` overrides free_energy.seed), with a
/// progress bar; `before_work` is called after every check, before the
/// chains start (the CLI checks its output path there).
pub fn evaluate(
    table: &toml::Table,
    seed: Option<u64>,
    before_work: impl FnOnce() -> Result<()>,
    checkpoint: Option<Checkpointing>,
) -> Result<Option<Report>> {
    let mut settings: FreeEnergySettings = match table.get("free_energy") {
        Some(toml::Value::Table(t)) => crate::config::parse(t, "free_energy")?,
        Some(other) => bail!("free_energy: expected a table, found `{other}`"),
        None => FreeEnergySettings::default(),
    };
    if let Some(s) = seed {
        settings.seed = s;
    }
    let setup = match (table.get("target"), table.get("phi4")) {
        (Some(_), Some(_)) => bail!("give either [target] or [phi4], not both"),
        (Some(t), None) => chain(t, &settings)?,
        (None, Some(p)) => lattice(p, &settings)?,
        (None, None) => bail!("no target: add [target] kind = \"phi4_1d\" or [phi4] (with free_energy.field)"),
    };
    for key in table.keys() {
        if !["target", "phi4", "free_energy"].contains(&key.as_str()) {
            bail!("{key}: not a section of a free-energy config (expected [target] or [phi4], and [free_energy])");
        }
    }
    before_work()?;
    let chains = ChainSettings {
        chains: settings.chains,
        warmup: settings.warmup,
        samples: settings.samples,
        trajectory_length: settings.trajectory_length,
        initial_step: settings.initial_step,
        target_acceptance: 0.8,
    };
    let hooks = CliHooks {
        bar: progress::bar(setup.problem.nodes() as u64, "nodes"),
        checkpoint: checkpoint.map(|c| (c.path, Mutex::new(c.state))),
        computed: AtomicUsize::new(0),
    };
    let t0 = Instant::now();
    let e = estimate(&*setup.base, &setup.problem, &chains, Seed::new(settings.seed), &hooks);
    hooks.bar.finish_and_clear();
    if let Some((path, state)) = &hooks.checkpoint {
        // The last node's write may have failed quietly (a full disk): say so now.
        write_checkpoint(path, &state.lock().expect("checkpoint lock"))?;
    }
    Ok(e.map(|e| report(&setup, &e, t0.elapsed().as_secs_f64(), settings)))
}

/// An unfinished run's checkpoint (`OUT.partial`): the config it runs and
/// every node computed so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The config table (TOML text).
    pub config: String,
    /// The `--seed` override, if any.
    pub seed: Option<u64>,
    /// Nodes by "part:index".
    pub nodes: BTreeMap<String, StoredRun>,
}

/// A node's result as stored in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRun {
    means: Vec<f64>,
    step: f64,
    acceptance: f64,
    outside: u64,
}

/// Where and what to checkpoint.
pub struct Checkpointing {
    /// The checkpoint file (OUT.partial).
    pub path: PathBuf,
    /// Its state (nodes already computed, when resuming).
    pub state: Checkpoint,
}

fn write_checkpoint(path: &Path, c: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("partial.tmp");
    std::fs::write(&tmp, serde_json::to_string(c)?).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// Progress, checkpoint and Ctrl-C between the nodes of an estimate.
struct CliHooks {
    bar: indicatif::ProgressBar,
    checkpoint: Option<(PathBuf, Mutex<Checkpoint>)>,
    computed: AtomicUsize,
}

impl NodeHooks for CliHooks {
    fn cached(&self, part: &str, node: usize) -> Option<NodeRun> {
        let (_, state) = self.checkpoint.as_ref()?;
        let s = state
            .lock()
            .expect("checkpoint lock")
            .nodes
            .get(&format!("{part}:{node}"))?
            .clone();
        self.bar.inc(1);
        Some(NodeRun {
            means: s.means,
            step: s.step,
            acceptance: s.acceptance,
            outside: s.outside,
        })
    }

    fn completed(&self, part: &str, node: usize, run: &NodeRun) {
        self.bar.inc(1);
        self.computed.fetch_add(1, Ordering::SeqCst);
        if let Some((path, state)) = &self.checkpoint {
            let mut c = state.lock().expect("checkpoint lock");
            c.nodes.insert(
                format!("{part}:{node}"),
                StoredRun {
                    means: run.means.clone(),
                    step: run.step,
                    acceptance: run.acceptance,
                    outside: run.outside,
                },
            );
            // A failed write is reported when the run ends.
            let _ = write_checkpoint(path, &c);
        }
    }

    fn stop(&self) -> bool {
        interrupt::requested() || interrupt::simulated(self.computed.load(Ordering::SeqCst))
    }
}

/// Runs `fieldflow free-energy`.
pub fn run(args: FreeEnergyArgs) -> Result<()> {
    interrupt::install();
    let (config_text, seed, state) = if args.resume {
        let Some(out) = &args.out else {
            bail!("--resume needs --out (the run to continue)");
        };
        check_resume_only(args.config.is_some() || args.seed.is_some(), out, "configuration")?;
        let partial = partial_path(out);
        let text = std::fs::read_to_string(&partial)
            .with_context(|| format!("{}: no checkpoint to resume", partial.display()))?;
        let c: Checkpoint = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a free-energy checkpoint", partial.display()))?;
        (c.config.clone(), c.seed, Some(c))
    } else {
        let Some(config) = &args.config else {
            bail!("--config: missing (the target and [free_energy] settings)");
        };
        let text = std::fs::read_to_string(config).with_context(|| format!("{}: cannot read", config.display()))?;
        (text, args.seed, None)
    };
    let table: toml::Table = config_text
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("config: {}", crate::config::one_line(&e.to_string())))?;
    let checkpoint = args.out.as_ref().map(|out| Checkpointing {
        path: partial_path(out),
        state: state.clone().unwrap_or(Checkpoint {
            config: config_text.clone(),
            seed,
            nodes: BTreeMap::new(),
        }),
    });
    let fresh = !args.resume;
    let report = evaluate(
        &table,
        seed,
        || match &args.out {
            Some(out) if fresh => {
                check_new_output(out, args.force)?;
                let partial = partial_path(out);
                if partial.exists() && !args.force {
                    bail!(
                        "{}: an interrupted run; continue it with --resume --out {}, or pass --force to start over",
                        partial.display(),
                        out.display()
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        },
        checkpoint,
    )?;
    let Some(report) = report else {
        return Err(match &args.out {
            Some(out) => interrupt::Interrupted(format!(
                "interrupted: the finished nodes are in {}; continue with fieldflow free-energy --resume --out {}",
                partial_path(out).display(),
                out.display()
            )),
            None => interrupt::Interrupted("interrupted: nothing saved (no --out)".into()),
        }
        .into());
    };
    if let Some(out) = &args.out {
        let tmp = out.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))?;
        let _ = std::fs::remove_file(partial_path(out));
    }
    if args.json {
        emit(&serde_json::to_string_pretty(&report)?);
    } else {
        emit(&table_text(&report));
    }
    Ok(())
}

fn report(setup: &Setup, e: &PhaseEstimate, seconds: f64, settings: FreeEnergySettings) -> Report {
    let exact = setup.exact;
    let (rejected, min_acc) = e.diagnostics();
    let log_ratio = Value::from(&e.log_ratio);
    let pull = exact.map(|x| (log_ratio.value - x) / log_ratio.error);
    Report {
        target: setup.describe.clone(),
        exact_log_ratio: exact,
        pull: pull.filter(|p| p.is_finite()),
        log_ratio,
        delta: Value::from(&e.delta),
        log_t_minus: Value::from(&e.log_t_minus),
        log_t_plus: Value::from(&e.log_t_plus),
        profile_edge: e
            .profiles
            .as_ref()
            .map_or([f64::NAN; 2], |p| [p[1].log_edge(), p[0].log_edge()]),
        rejected_at_boundaries: rejected,
        log_left_out: setup.left_out,
        min_acceptance: min_acc,
        seconds,
        settings,
    }
}

/// The printed summary of a report.
pub fn table_text(r: &Report) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut emit = |l: &str| lines.push(l.to_string());
    let pm = |v: &Value| format!("{:.4} ± {:.4}", v.value, v.error);
    emit(&format!("mode weights of {} by free-energy integration", r.target));
    let lattice = r.settings.field.is_some();
    emit(&format!(
        "  ({} replicas; {:.1} s; {})",
        r.settings.chains,
        r.seconds,
        if lattice {
            "modes = phases by the sign of the magnetization"
        } else {
            "modes by the sign of the middle site, phases by the signs at sites n/4 and 3n/4"
        }
    ));
    let exact = match (r.exact_log_ratio, r.pull) {
        (Some(x), Some(p)) => format!(
            "   exact {x:.4} ({}), {p:+.2}σ",
            if lattice {
                "Gaussian magnetization"
            } else {
                "transfer operator"
            }
        ),
        (Some(x), None) => format!("   exact {x:.4}"),
        _ => String::new(),
    };
    emit(&format!("  log(w+/w-)                    {}{exact}", pm(&r.log_ratio)));
    if lattice {
        emit(&format!(
            "  diagnostics: {} trajectories rejected at the phase boundary M = 0, lowest acceptance {:.3}",
            r.rejected_at_boundaries, r.min_acceptance
        ));
        return lines.join("\n");
    }
    emit(&format!("  phases: log Z+ - log Z-       {}", pm(&r.delta)));
    emit(&format!("  log P(middle ≥ 0 | phase -)   {}", pm(&r.log_t_minus)));
    emit(&format!("  log P(middle < 0 | phase +)   {}", pm(&r.log_t_plus)));
    emit(&format!(
        "  diagnostics: profile edges {:.1} / {:.1} (log density at the grid ends), {} trajectories rejected at phase boundaries, lowest acceptance {:.3}",
        r.profile_edge[0], r.profile_edge[1], r.rejected_at_boundaries, r.min_acceptance
    ));
    if let Some([minus, plus]) = r.log_left_out {
        emit(&format!(
            "  left out (states in neither phase, transfer operator): e^{minus:.1} of the - mode, e^{plus:.1} of the + mode"
        ));
    }
    if r.log_t_minus.value > r.delta.value && r.settings.samples < LONG_CHAINS {
        emit(&format!(
            "  warning: the + mode is mostly the - phase's middle site crossing 0 (log P > Δ): with fewer than {LONG_CHAINS} samples per chain the replica error was measured 1.5–1.9× too small here (docs/RESULTS.md); set free_energy.samples = {LONG_CHAINS}"
        ));
    }
    // A truncated profile misestimates its t; that matters only where t
    // matters: t₋ against e^Δ in w₊, t₊ (≪ 1) against 1 in w₊ and w₋.
    let t_minus_share = 1.0 / (1.0 + (r.delta.value - r.log_t_minus.value).exp());
    let edge_matters =
        (r.profile_edge[0] > -10.0 && t_minus_share > 1e-3) || (r.profile_edge[1] > -10.0 && r.log_t_plus.value > -7.0);
    if edge_matters {
        emit("  warning: a profile grid ends where the density is not negligible (edge > -10): widen free_energy.profile_min / profile_max");
    }
    lines.join("\n")
}
