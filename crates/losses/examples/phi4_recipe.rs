//! One φ⁴ training recipe under a wall-time budget (issue 16, "quality per
//! CPU-minute"): RKL training of a checkerboard affine-coupling flow with
//! periodic-convolution conditioners on the 2D lattice φ⁴ sets of
//! /work/shared/REFERENCE.md §2.5 (m² = −4), judged by the IMH acceptance
//! and the normalized ESS of fresh flow samples.
//!
//! ```text
//! cargo run --release -p fieldflow-losses --example phi4_recipe -- \
//!     --set e5 --budget 150 [--seed 1] [--eval-n 8192] [--evals 4]
//!     [--batch 64 | --batch 64,128,256] [--lr 1e-3]
//!     [--sched const|cosine|warmcos|wsd] [--warmup 200] [--decay-frac 0.2|stage] [--min-lr 1e-5]
//!     [--z2] [--hidden 8,8] [--kernel 3] [--layers 16] [--clip 100]
//!     [--recipe NAME]
//! ```
//!
//! **Budget.** `--budget` is the training time in seconds of process CPU
//! time (user + system, metrics excluded): with one rayon thread it is the
//! wall time of a quiet machine, and unlike the wall time it does not grow
//! when other jobs share the cores (both are reported). Before training, 30
//! steps of every distinct stage (batch, lattice) are timed on a scratch
//! copy of the flow; the number of steps of each stage then fills its share
//! of the budget, and the learning-rate schedule runs over the total T. The
//! run stops after step T, whatever the clock says. With `--steps` T is
//! given (shared by the stages in proportion to `--fracs`) and nothing is
//! timed.
//!
//! **Batch stages.** `--batch 64,128,256` splits the budget into equal
//! CPU-time thirds at batch 64, 128, 256 (equal step counts would give the
//! large batches most of the time); the trainer is rebuilt at each stage
//! boundary from the saved state (parameters, Adam moments, step index), so
//! the learning-rate schedule continues over the step index.
//!
//! **Lattice curriculum.** `--lattice 6,14` trains the first stage on a
//! 6×6 lattice at the set's (m², λ), then continues on the set's lattice:
//! the convolutional conditioners do not depend on the lattice size, so the
//! parameters (and Adam moments) carry over unchanged. Stage lists
//! (`--batch`, `--lattice`) of length one apply to every stage; `--fracs`
//! gives the stages' shares of the budget (default equal). A step costs
//! b·L² in the plan, calibrated by timing 30 steps of each distinct stage on
//! a scratch copy of the flow before training (not counted in the budget).
//! `--sched wsd --decay-frac stage` decays over the whole last stage.
//!
//! **Judging.** At `--evals` evenly spaced points of the run and after the
//! last step, `--eval-n` fresh flow samples give log w = log p̃ − log q, the
//! normalized ESS (Σw)²/(N Σw²) and the IMH acceptance: the independence
//! Metropolis chain run through the N proposals in order (the first one
//! starts the chain), accepted / (N − 1) — the acceptance rate of
//! `fieldflow sample --method imh` with N proposals, without its
//! equilibrium start. One JSON line per point goes to stdout: set, recipe,
//! seed, steps, wall and CPU seconds of training, rayon threads, batch,
//! learning rate, IMH acceptance, ESS, the RKL estimate mean(log q − log p̃)
//! (= KL(q‖p) − log Z, lower is better), and `final` for the last.

use fieldflow_core::{Par, Seed};
use fieldflow_flows::FlowConfig;
use fieldflow_lattice::Phi4Config;
use fieldflow_losses::{LossConfig, LossPreset, LrSchedule, StepOutcome, TrainConfig, TrainData, Trainer};
use std::time::Instant;

struct Args {
    set: String,
    recipe: String,
    seed: u64,
    budget: f64,
    steps: Option<u64>,
    eval_n: usize,
    evals: u64,
    batches: Vec<usize>,
    lattices: Vec<usize>,
    fracs: Vec<f64>,
    lr: f64,
    sched: String,
    warmup: u64,
    decay_frac: f64,
    decay_last_stage: bool,
    min_lr: f64,
    z2: bool,
    hidden: Vec<usize>,
    kernel: usize,
    layers: usize,
    clip: Option<f64>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        set: "e5".into(),
        recipe: String::new(),
        seed: 1,
        budget: 150.0,
        steps: None,
        eval_n: 8192,
        evals: 0,
        batches: vec![64],
        lattices: Vec::new(),
        fracs: Vec::new(),
        lr: 1e-3,
        sched: "const".into(),
        warmup: 200,
        decay_frac: 0.2,
        decay_last_stage: false,
        min_lr: 1e-5,
        z2: false,
        hidden: vec![8, 8],
        kernel: 3,
        layers: 16,
        clip: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let list = |v: &str| -> Result<Vec<usize>, String> {
        v.split(',')
            .map(|x| x.trim().parse::<usize>().map_err(|_| format!("bad integer list {v:?}")))
            .collect()
    };
    while i < argv.len() {
        let flag = argv[i].as_str();
        if flag == "--z2" {
            a.z2 = true;
            i += 1;
            continue;
        }
        let v = argv.get(i + 1).ok_or(format!("{flag} needs a value"))?.as_str();
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: bad number {v:?}"));
        match flag {
            "--set" => a.set = v.to_lowercase(),
            "--recipe" => a.recipe = v.into(),
            "--seed" => a.seed = num(v)? as u64,
            "--budget" => a.budget = num(v)?,
            "--steps" => a.steps = Some(num(v)? as u64),
            "--eval-n" => a.eval_n = num(v)? as usize,
            "--evals" => a.evals = num(v)? as u64,
            "--batch" => a.batches = list(v)?,
            "--lattice" => a.lattices = list(v)?,
            "--fracs" => {
                a.fracs = v
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<f64>()
                            .map_err(|_| format!("--fracs: bad number list {v:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--lr" => a.lr = num(v)?,
            "--sched" => a.sched = v.into(),
            "--warmup" => a.warmup = num(v)? as u64,
            "--min-lr" => a.min_lr = num(v)?,
            "--decay-frac" if v == "stage" => a.decay_last_stage = true,
            "--decay-frac" => a.decay_frac = num(v)?,
            "--hidden" => a.hidden = list(v)?,
            "--kernel" => a.kernel = num(v)? as usize,
            "--layers" => a.layers = num(v)? as usize,
            "--clip" => a.clip = Some(num(v)?),
            _ => return Err(format!("unknown flag {flag}")),
        }
        i += 2;
    }
    if a.batches.is_empty() || a.batches.contains(&0) {
        return Err("--batch: sizes must be >= 1".into());
    }
    if a.lattices.contains(&0) || a.lattices.iter().any(|l| l % 2 == 1) {
        return Err("--lattice: extents must be even and >= 2 (checkerboard)".into());
    }
    if a.fracs.iter().any(|f| !(*f > 0.0)) {
        return Err("--fracs: shares must be > 0".into());
    }
    if !(a.budget > 0.0) {
        return Err("--budget must be > 0".into());
    }
    Ok(a)
}

/// (L, λ) of the benchmark sets (REFERENCE.md §2.5; m² = −4).
fn set_params(set: &str) -> Result<(usize, f64), String> {
    Ok(match set {
        "tutorial" => (8, 8.0),
        "e1" => (6, 6.975),
        "e2" => (8, 6.008),
        "e3" => (10, 5.550),
        "e4" => (12, 5.276),
        "e5" => (14, 5.113),
        _ => return Err(format!("--set {set}: expected tutorial or e1..e5")),
    })
}

/// Process CPU seconds (user + system) from /proc/self/stat; NaN elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(rest) = s.rsplit(')').next() else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is index 0, utime 11, stime 12 (ticks of 1/100 s).
    match (
        f.get(11).and_then(|x| x.parse::<f64>().ok()),
        f.get(12).and_then(|x| x.parse::<f64>().ok()),
    ) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Training time: wall and process CPU seconds summed over the timed
/// sections only (the metrics in between are not counted).
#[derive(Default)]
struct Clock {
    wall: f64,
    cpu: f64,
    since: Option<(Instant, f64)>,
}

impl Clock {
    fn start(&mut self) {
        self.since = Some((Instant::now(), cpu_seconds()));
    }
    fn stop(&mut self) {
        if let Some((t0, c0)) = self.since.take() {
            self.wall += t0.elapsed().as_secs_f64();
            self.cpu += cpu_seconds() - c0;
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("phi4_recipe: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let a = parse()?;
    let (l_set, lambda) = set_params(&a.set)?;
    let n_stages = a.batches.len().max(a.lattices.len()).max(a.fracs.len()).max(1);
    let stage_list = |v: &[usize], default: usize, what: &str| -> Result<Vec<usize>, String> {
        match v.len() {
            0 => Ok(vec![default; n_stages]),
            1 => Ok(vec![v[0]; n_stages]),
            n if n == n_stages => Ok(v.to_vec()),
            n => Err(format!("{what}: {n} stages given, expected 1 or {n_stages}")),
        }
    };
    let batches = stage_list(&a.batches, 64, "--batch")?;
    let lattices = stage_list(&a.lattices, l_set, "--lattice")?;
    let fracs: Vec<f64> = match a.fracs.len() {
        0 => vec![1.0 / n_stages as f64; n_stages],
        n if n == n_stages => {
            let sum: f64 = a.fracs.iter().sum();
            a.fracs.iter().map(|f| f / sum).collect()
        }
        n => return Err(format!("--fracs: {n} shares given, expected {n_stages}")),
    };
    let l_final = *lattices.last().expect("one stage at least");
    if l_final != l_set {
        return Err(format!("--lattice: the last stage must be the set's L = {l_set}"));
    }
    // One target per distinct lattice size, all at the set's (m², λ).
    let mut sizes = lattices.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let targets: Vec<(usize, fieldflow_lattice::Phi4)> = sizes
        .iter()
        .map(|&l| {
            Phi4Config::standard(&[l, l], -4.0, lambda)
                .validate()
                .map(|t| (l, t))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let target_of = |l: usize| &targets.iter().find(|(m, _)| *m == l).expect("built above").1;
    let flow_config = |l: usize| -> Result<FlowConfig, String> {
        let mut fc = FlowConfig::tutorial(l);
        fc.z2_equivariant = a.z2;
        fc.conditioner.hidden = a.hidden.clone();
        fc.conditioner.kernel = a.kernel;
        fc.n_layers = a.layers;
        fc.validate().map_err(|e| e.to_string())?;
        Ok(fc)
    };
    let par = Par::default();
    let threads = rayon::current_num_threads();
    let last_stage_steps = std::cell::Cell::new(0u64);
    let mk_config = |batch: usize, total: u64| -> Result<TrainConfig, String> {
        let mut c = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), batch, total, a.lr);
        c.seed = a.seed;
        c.clip_grad_norm = a.clip;
        c.eval_batch = a.eval_n;
        c.lr_schedule = match a.sched.as_str() {
            "const" => LrSchedule::Constant,
            "cosine" => LrSchedule::Cosine {
                total_steps: total,
                min_lr: a.min_lr,
            },
            "warmcos" => LrSchedule::WarmupCosine {
                warmup_steps: a.warmup,
                total_steps: total,
                min_lr: a.min_lr,
            },
            "wsd" => LrSchedule::WarmupStableDecay {
                warmup_steps: a.warmup,
                decay_steps: if a.decay_last_stage {
                    last_stage_steps.get().max(1)
                } else {
                    ((a.decay_frac * total as f64).round() as u64).max(1)
                },
                total_steps: total,
                min_lr: a.min_lr,
            },
            s => return Err(format!("--sched {s}: expected const, cosine, warmcos or wsd")),
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    };
    let flow0 = flow_config(lattices[0])?
        .build(Seed::new(a.seed))
        .map_err(|e| e.to_string())?;
    let params0 = flow0.params().to_vec();
    // A trainer for stage geometry (batch, L) from the parameters and state.
    let trainer_at = |batch: usize,
                      l: usize,
                      total: u64,
                      params: Vec<f64>,
                      state: Option<fieldflow_losses::TrainerState>|
     -> Result<Trainer<'_>, String> {
        let flow = fieldflow_flows::Flow::from_parts(flow_config(l)?, params).map_err(|e| e.to_string())?;
        let mut tr = Trainer::new(&mk_config(batch, total)?, flow, target_of(l), TrainData::default(), par)
            .map_err(|e| e.to_string())?;
        if let Some(s) = state {
            tr.restore(s).map_err(|e| e.to_string())?;
        }
        Ok(tr)
    };
    let mut clock = Clock::default();
    let mut rejected = 0u64;
    let step = |tr: &mut Trainer<'_>, clock: &mut Clock, rejected: &mut u64| -> Result<(), String> {
        clock.start();
        let out = tr.step().map_err(|e| e.to_string())?;
        clock.stop();
        if let StepOutcome::Rejected { .. } = out {
            *rejected += 1;
        }
        Ok(())
    };
    // Plan: steps per stage filling its share of the budget.
    let stage_steps: Vec<u64> = match a.steps {
        Some(t) => {
            let mut v: Vec<u64> = fracs.iter().map(|f| (f * t as f64).floor() as u64).collect();
            let assigned: u64 = v.iter().sum();
            *v.last_mut().expect("one stage") += t - assigned;
            v
        }
        None => {
            let mut per_step: Vec<((usize, usize), f64)> = Vec::new();
            for k in 0..n_stages {
                let key = (batches[k], lattices[k]);
                if per_step.iter().any(|(g, _)| *g == key) {
                    continue;
                }
                let mut scratch = trainer_at(key.0, key.1, 1_000_000, params0.clone(), None)?;
                let mut c = Clock::default();
                let mut r = 0;
                for _ in 0..3 {
                    step(&mut scratch, &mut c, &mut r)?; // first steps: allocation, caches
                }
                let mut c = Clock::default();
                for _ in 0..30 {
                    step(&mut scratch, &mut c, &mut r)?;
                }
                per_step.push((key, c.cpu.max(1e-3) / 30.0));
            }
            (0..n_stages)
                .map(|k| {
                    let per = per_step
                        .iter()
                        .find(|(g, _)| *g == (batches[k], lattices[k]))
                        .expect("timed")
                        .1;
                    (fracs[k] * a.budget / per).floor().max(1.0) as u64
                })
                .collect()
        }
    };
    let total: u64 = stage_steps.iter().sum();
    last_stage_steps.set(*stage_steps.last().expect("one stage"));
    if total <= a.warmup && (a.sched == "warmcos" || a.sched == "wsd") {
        return Err(format!("planned {total} steps, not more than --warmup {}", a.warmup));
    }
    let mut ends = Vec::new();
    let mut acc = 0;
    for s in &stage_steps {
        acc += s;
        ends.push(acc);
    }
    let eval_points: Vec<u64> = (1..a.evals).map(|k| total * k / a.evals).collect();
    let recipe = if a.recipe.is_empty() {
        "unnamed".to_string()
    } else {
        a.recipe.clone()
    };
    // Metrics always on the set's lattice (a flow of a smaller stage is
    // carried over first).
    let report = |tr: &Trainer<'_>, clock: &Clock, rejected: u64, stage: usize, fin: bool| -> Result<(), String> {
        let m = if lattices[stage] == l_final {
            tr.metrics()
        } else {
            trainer_at(
                batches[stage],
                l_final,
                total,
                tr.flow().params().to_vec(),
                Some(tr.state()),
            )?
            .metrics()
        };
        println!(
            "{{\"set\":\"{}\",\"recipe\":\"{}\",\"seed\":{},\"steps\":{},\"planned_steps\":{},\"stage_steps\":{:?},\
             \"wall_s\":{:.2},\"cpu_s\":{:.2},\"threads\":{},\"batch\":{},\"lattice\":{},\"lr\":{:e},\
             \"imh_acceptance\":{:.5},\"ess\":{:.5},\"rkl_estimate\":{:.4},\"eval_n\":{},\"rejected\":{},\
             \"budget_s\":{},\"final\":{}}}",
            a.set,
            recipe,
            a.seed,
            tr.step_index(),
            total,
            stage_steps,
            clock.wall,
            clock.cpu,
            threads,
            batches[stage],
            lattices[stage],
            m.lr,
            m.acceptance,
            m.ess,
            m.rkl_estimate,
            a.eval_n,
            rejected,
            a.budget,
            fin
        );
        Ok(())
    };
    let mut stage = 0;
    let mut trainer = trainer_at(batches[0], lattices[0], total, params0, None)?;
    while trainer.step_index() < total {
        while trainer.step_index() >= ends[stage] {
            stage += 1;
        }
        let geometry = (trainer.config().batch_size, trainer.flow().config().map(|c| c.shape[0]));
        if geometry != (batches[stage], Some(lattices[stage])) {
            let state = trainer.state();
            let params = trainer.flow().params().to_vec();
            trainer = trainer_at(batches[stage], lattices[stage], total, params, Some(state))?;
        }
        step(&mut trainer, &mut clock, &mut rejected)?;
        if eval_points.contains(&trainer.step_index()) {
            report(&trainer, &clock, rejected, stage, false)?;
        }
    }
    report(&trainer, &clock, rejected, stage, true)?;
    Ok(())
}
