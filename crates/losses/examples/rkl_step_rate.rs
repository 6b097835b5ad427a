//! Reverse-KL training steps per second of the tutorial flow on 2D φ⁴ — the
//! fieldflow side of `cargo xtask compare torch` (issue 16, "Speed").
//!
//! One step is exactly what training does ([`Trainer::step`]): draw
//! z ~ N(0, I) for the batch, push it through the flow x = f(z) with
//! log q(x) = log N(z) − log|det ∂f/∂z|, evaluate the reverse-KL loss
//! L = mean_i [log q(x_i) + S(x_i)] of the lattice φ⁴ action
//! S(φ) = Σₓ [Σ_μ (φ(x+μ̂) − φ(x))² + m² φ² + λ φ⁴] (m² = −4, λ = 8),
//! back-propagate ∂L/∂θ and take one Adam step (lr 1e-3, β = (0.9, 0.999),
//! ε = 1e-8). The flow is [`FlowConfig::tutorial`]: 16 affine checkerboard
//! couplings, conv 1→8→8→2, kernel 3, LeakyReLU, tanh outputs, with the
//! conditioner precision of `--dtype` (and the free-field layer in front with
//! `--free-field true`, docs/THEORY.md §4.12).
//!
//! Protocol (the same as the PyTorch peer, xtask/peers/torch_tutorial_bench.py):
//! `--warmup` untimed steps, then timed steps until at least `--min-steps`
//! steps and `--min-seconds` seconds have passed; the rate is timed steps
//! over their wall time. The thread count is rayon's (`RAYON_NUM_THREADS`).
//! The process CPU time of the timed steps (all threads, from /proc/self/stat
//! on Linux) is reported too: steps per CPU-second are less sensitive to
//! other processes on a shared machine than steps per second.
//! Prints one JSON line on stdout; flops per step are 3 × the flow's network
//! flops per sample × batch (forward, and a backward pass costing two).
//!
//! **Cross-check** (`--check-out FILE`, no timing): a flow with every layer
//! randomly initialized (no identity start), the trainer's loss and gradient
//! of step 0 ([`Trainer::evaluate`]) and that step's base draws z
//! (`seed.child(1).child(0)`, module docs of the trainer) are written as JSON
//! (parameters in fieldflow's layout), so the peer can evaluate the same
//! loss and gradient with the same parameters and z
//! (`torch_tutorial_bench.py --check FILE`).
//!
//! `cargo run --release -p fieldflow-losses --example rkl_step_rate -- \
//!     [--lattice 8] [--batch 64] [--dtype f64|f32] [--free-field false|true] [--warmup 3] [--min-steps 5]
//!     [--min-seconds 3]
//!     [--check-out FILE]`

use fieldflow_core::{Par, Seed};
use fieldflow_flows::{Dtype, FlowConfig};
use fieldflow_lattice::{Phi4, Phi4Config};
use fieldflow_losses::{LossConfig, LossPreset, StepOutcome, TrainConfig, TrainData, Trainer};
use ndarray::Array2;
use std::time::Instant;

/// Command-line settings.
struct Args {
    lattice: usize,
    batch: usize,
    dtype: Dtype,
    free_field: bool,
    warmup: u64,
    min_steps: u64,
    min_seconds: f64,
    check_out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        lattice: 8,
        batch: 64,
        dtype: Dtype::F64,
        free_field: false,
        warmup: 3,
        min_steps: 5,
        min_seconds: 3.0,
        check_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag} {value}: expected {what}");
        match flag.as_str() {
            "--lattice" => a.lattice = value.parse().map_err(|_| bad("an integer L >= 2"))?,
            "--batch" => a.batch = value.parse().map_err(|_| bad("an integer >= 1"))?,
            "--dtype" => {
                a.dtype = match value.as_str() {
                    "f64" | "float64" => Dtype::F64,
                    "f32" | "float32" => Dtype::F32,
                    _ => return Err(bad("f64 or f32")),
                }
            }
            "--free-field" => a.free_field = value.parse().map_err(|_| bad("true or false"))?,
            "--warmup" => a.warmup = value.parse().map_err(|_| bad("an integer >= 0"))?,
            "--min-steps" => a.min_steps = value.parse().map_err(|_| bad("an integer >= 1"))?,
            "--min-seconds" => a.min_seconds = value.parse().map_err(|_| bad("seconds >= 0"))?,
            "--check-out" => a.check_out = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.lattice < 2 {
        return Err(format!("--lattice {}: expected an integer L >= 2", a.lattice));
    }
    if a.batch == 0 {
        return Err("--batch 0: expected an integer >= 1".into());
    }
    if a.min_steps == 0 {
        return Err("--min-steps 0: expected an integer >= 1".into());
    }
    if !(a.min_seconds.is_finite() && a.min_seconds >= 0.0) {
        return Err(format!("--min-seconds {}: expected seconds >= 0", a.min_seconds));
    }
    Ok(a)
}

fn run(a: &Args) -> Result<String, String> {
    let l = a.lattice;
    let target = Phi4Config::standard(&[l, l], -4.0, 8.0)
        .validate()
        .map_err(|e| e.to_string())?;
    let mut flow_cfg = FlowConfig::tutorial(l);
    flow_cfg.dtype = a.dtype;
    flow_cfg.free_field = a.free_field;
    if let Some(path) = &a.check_out {
        return write_check(a, &flow_cfg, &target, path);
    }
    let flow = flow_cfg.build(Seed::new(1)).map_err(|e| e.to_string())?;
    let flops_per_step = 3.0 * flow.flops_per_sample() * a.batch as f64;
    let n_params = flow.n_params();
    let mut cfg = TrainConfig::new(
        LossConfig::preset(LossPreset::Rkl),
        a.batch,
        a.warmup + a.min_steps,
        1e-3,
    );
    cfg.seed = 1;
    let mut trainer =
        Trainer::new(&cfg, flow, &target, TrainData::default(), Par::default()).map_err(|e| e.to_string())?;
    let mut last_loss = f64::NAN;
    let mut rejected = 0u64;
    let mut step = |trainer: &mut Trainer| -> Result<(), String> {
        match trainer.step().map_err(|e| e.to_string())? {
            StepOutcome::Accepted(r) => last_loss = r.loss,
            StepOutcome::Rejected { .. } => rejected += 1,
        }
        Ok(())
    };
    for _ in 0..a.warmup {
        step(&mut trainer)?;
    }
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    let mut timed = 0u64;
    while timed < a.min_steps || t0.elapsed().as_secs_f64() < a.min_seconds {
        step(&mut trainer)?;
        timed += 1;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_seconds = cpu0.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    let rate = timed as f64 / seconds;
    let dtype = dtype_name(a.dtype);
    let record = serde_json::json!({
        "impl": "fieldflow",
        "lattice": l,
        "batch": a.batch,
        "dtype": dtype,
        "threads": rayon::current_num_threads(),
        "n_params": n_params,
        "steps": timed,
        "seconds": seconds,
        "steps_per_s": rate,
        "cpu_seconds": cpu_seconds,
        "steps_per_cpu_s": cpu_seconds.filter(|&c| c > 0.0).map(|c| timed as f64 / c),
        "flops_per_step": flops_per_step,
        "gflops": flops_per_step * rate * 1e-9,
        "rejected": rejected,
        // NaN (no accepted step) is written as null.
        "last_loss": last_loss.is_finite().then_some(last_loss),
    });
    Ok(record.to_string())
}

/// The cross-check record (module docs): parameters, z, loss and gradient
/// of step 0 of a randomly initialized flow.
fn write_check(a: &Args, flow_cfg: &FlowConfig, target: &Phi4, path: &str) -> Result<String, String> {
    let mut flow_cfg = flow_cfg.clone();
    flow_cfg.identity_init = false;
    let flow = flow_cfg.build(Seed::new(2)).map_err(|e| e.to_string())?;
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), a.batch, 1, 1e-3);
    cfg.seed = 1;
    let par = Par::default();
    let mut z = Array2::zeros((a.batch, flow.dim()));
    flow.sample_base_batch(Seed::new(cfg.seed).child(1).child(0), z.view_mut(), par);
    let params = flow.params().to_vec();
    let trainer = Trainer::new(&cfg, flow, target, TrainData::default(), par).map_err(|e| e.to_string())?;
    let report = trainer.evaluate(0).map_err(|e| e.to_string())?;
    let record = serde_json::json!({
        "lattice": a.lattice,
        "batch": a.batch,
        "dtype": dtype_name(a.dtype),
        "m2": -4.0,
        "lambda": 8.0,
        "params": params,
        "z": z.iter().copied().collect::<Vec<f64>>(),
        "loss": report.total,
        "grad": report.grad,
    });
    std::fs::write(path, record.to_string()).map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(serde_json::json!({ "check_out": path, "loss": report.total }).to_string())
}

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::F64 => "float64",
        Dtype::F32 => "float32",
    }
}

/// User + system CPU seconds of this process, all threads (Linux:
/// /proc/self/stat fields 14 and 15, in clock ticks of 1/100 s); None where
/// unavailable.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn main() {
    let result = parse_args().and_then(|a| run(&a));
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("rkl_step_rate: error: {e}");
            std::process::exit(2);
        }
    }
}
