//! One LRDS benchmark run (data/experiments/lrds/): the reference fitted by
//! [`LrdsConfig::fit_reference`] (MALA walkers from a broad Gaussian, EM
//! with restarts on their end points, one component per mode), the
//! untrained sampler (h = 0: importance sampling from the EM mixture) and
//! the trained one (log-variance loss, Adam), each measured by importance
//! sampling (log Ẑ, ESS, mode weights ± delta-method errors) and by an IMH
//! chain on the path weights (acceptance, mode weights ± Γ-method errors).
//! Prints one JSON line.
//!
//! ```text
//! cargo run --release -p fieldflow-lrds --example lrds_bench -- \
//!     --target two_modes:16 --seed 1 [--train-steps 300] [--batch 256] [--lr 3e-3]
//!     [--steps 32] [--hidden 64,64] [--n 4096] [--walkers max(1024, 128 d)] [--walker-steps 1000]
//!     [--sigma S] [--restarts 5]
//! ```

use fieldflow_core::{Modes, Par, Seed, Target};
use fieldflow_imh::{ImhChain, ImhConfig};
use fieldflow_losses::{LossConfig, LossPreset, TrainConfig, TrainData, TrainLoop};
use fieldflow_lrds::{LrdsConfig, LrdsModel, LrdsTrainer, PathDraw};
use fieldflow_stats::{gamma_primary, log_z, self_normalized_mean, GammaConfig};
use fieldflow_targets::GaussianMixture;
use serde_json::{json, Value};
use std::time::Instant;

struct Args {
    target: String,
    seed: u64,
    train_steps: u64,
    batch: usize,
    lr: f64,
    steps: usize,
    hidden: Vec<usize>,
    n: usize,
    walkers: usize,
    walker_steps: usize,
    sigma: Option<f64>,
    restarts: usize,
}

fn parse() -> Args {
    let mut a = Args {
        target: "two_modes:8".into(),
        seed: 1,
        train_steps: 300,
        batch: 256,
        lr: 3e-3,
        steps: 32,
        hidden: vec![64, 64],
        n: 4096,
        walkers: 0,
        walker_steps: 1000,
        sigma: None,
        restarts: 5,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < argv.len() {
        let v = &argv[i + 1];
        let bad = |k: &str| -> ! {
            eprintln!("error: {k} = {v}: not a valid value");
            std::process::exit(2)
        };
        match argv[i].as_str() {
            "--target" => a.target = v.clone(),
            "--seed" => a.seed = v.parse().unwrap_or_else(|_| bad("--seed")),
            "--train-steps" => a.train_steps = v.parse().unwrap_or_else(|_| bad("--train-steps")),
            "--batch" => a.batch = v.parse().unwrap_or_else(|_| bad("--batch")),
            "--lr" => a.lr = v.parse().unwrap_or_else(|_| bad("--lr")),
            "--steps" => a.steps = v.parse().unwrap_or_else(|_| bad("--steps")),
            "--hidden" => {
                a.hidden = v
                    .split(',')
                    .map(|w| w.parse().unwrap_or_else(|_| bad("--hidden")))
                    .collect()
            }
            "--n" => a.n = v.parse().unwrap_or_else(|_| bad("--n")),
            "--walkers" => a.walkers = v.parse().unwrap_or_else(|_| bad("--walkers")),
            "--walker-steps" => a.walker_steps = v.parse().unwrap_or_else(|_| bad("--walker-steps")),
            "--sigma" => a.sigma = Some(v.parse().unwrap_or_else(|_| bad("--sigma"))),
            "--restarts" => a.restarts = v.parse().unwrap_or_else(|_| bad("--restarts")),
            k => {
                eprintln!("error: unknown option {k}");
                std::process::exit(2)
            }
        }
        i += 2;
    }
    a
}

/// The target and the default spread of the walkers' starts (two modes: the
/// basin split Φ(√d/(3σ)) with σ = √d/2 puts ≈ 25 % of the walkers in the
/// light mode; the 2-D mixtures: a Gaussian as wide as the mixture).
fn target_of(name: &str) -> (GaussianMixture, f64) {
    if let Some(d) = name.strip_prefix("two_modes:") {
        let d: usize = d.parse().expect("two_modes:<dim>");
        (
            GaussianMixture::two_modes(d).expect("dim >= 1"),
            (d as f64).sqrt() / 2.0,
        )
    } else if name == "mog4" {
        (GaussianMixture::mog4(), 5.0)
    } else if name == "mog8" {
        (GaussianMixture::mog8(), 10.0)
    } else {
        eprintln!("error: target = {name}: not one of two_modes:<d>, mog4, mog8");
        std::process::exit(2)
    }
}

/// IS and IMH figures of `model` on `target`.
fn measure(model: &LrdsModel, target: &GaussianMixture, n: usize, seed: Seed, par: Par) -> Value {
    let t0 = Instant::now();
    let paths = model.sample_paths(n, seed.child(0), par, PathDraw::Proposal);
    let lp = fieldflow_lrds::log_target(target, &paths, par);
    let lw: Vec<f64> = (&lp - &paths.log_q()).to_vec();
    let is_seconds = t0.elapsed().as_secs_f64();
    let z = log_z(&lw).expect("finite weights");
    let labels = target.assign_batch(paths.x0.view());
    let exact = target.true_weights().expect("mixtures know their weights");
    let mut is_w = Vec::new();
    for k in 0..exact.len() {
        let ind: Vec<f64> = labels.iter().map(|&l| f64::from(u8::from(l == k))).collect();
        let m = self_normalized_mean(&lw, &ind).expect("finite weights");
        is_w.push(json!({"w": m.value, "err": m.error, "sigmas": (m.value - exact[k]) / m.error}));
    }
    let raw = target.mode_fractions(paths.x0.view());
    // One IMH chain of n steps on the path weights.
    let t1 = Instant::now();
    let cfg = ImhConfig {
        batch: 256,
        par,
        ..ImhConfig::default()
    };
    let chain = ImhChain::new(target, model, seed.child(1), cfg);
    let mut states = chain.initial_states(1);
    let run = chain.run(&mut states, n, &|_| {});
    let imh_seconds = t1.elapsed().as_secs_f64();
    let acc = run.accepted.iter().map(|&a| a as f64).sum::<f64>() / n as f64;
    let xs = run.configs.index_axis(ndarray::Axis(0), 0).to_owned();
    let imh_labels = target.assign_batch(xs.view());
    let mut imh_w = Vec::new();
    for k in 0..exact.len() {
        let ind: Vec<f64> = imh_labels.iter().map(|&l| f64::from(u8::from(l == k))).collect();
        match gamma_primary(&[ind], &GammaConfig::default()) {
            Ok(g) => imh_w.push(
                json!({"w": g.value, "err": g.error, "sigmas": (g.value - exact[k]) / g.error, "tau_int": g.tau_int}),
            ),
            Err(e) => imh_w.push(json!({"w": Value::Null, "error": e.to_string()})),
        }
    }
    json!({
        "log_z": z.log_z, "log_z_err": z.error, "ess": z.ess,
        "is_weights": is_w, "raw_fractions": raw,
        "imh_acceptance": acc, "imh_weights": imh_w,
        "is_seconds": is_seconds, "imh_seconds": imh_seconds,
    })
}

fn main() {
    let a = parse();
    let (target, default_sigma) = target_of(&a.target);
    let root = Seed::new(a.seed);
    let par = Par::default();
    let exact = target.true_weights().expect("mixtures know their weights");
    // 1. Reference from a walker ensemble.
    let t0 = Instant::now();
    // Default: enough walkers that every mode's sample covariance is well
    // conditioned (≥ 128 d end points in all).
    let walkers = if a.walkers == 0 {
        (128 * target.dim()).max(1024)
    } else {
        a.walkers
    };
    let mut cfg = LrdsConfig {
        steps: a.steps,
        hidden: a.hidden.clone(),
        components: Some(exact.len()),
        walkers,
        walker_sigma: a.sigma.unwrap_or(default_sigma),
        walker_steps: a.walker_steps,
        em_restarts: a.restarts,
        ..LrdsConfig::default()
    };
    cfg.fit_reference(&target, Some(&target), root).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let reference_seconds = t0.elapsed().as_secs_f64();
    let fit = cfg.reference.clone().expect("fitted");
    // The fitted weights per target mode (each component by its mean).
    let mut em_mode_weights = vec![0.0; exact.len()];
    for (w, m) in fit.weights.iter().zip(&fit.means) {
        em_mode_weights[target.assign(ndarray::ArrayView1::from(&m[..]))] += w;
    }
    let model = cfg.build(root.child(2)).expect("valid settings");
    // 2. Untrained (h = 0).
    let before = measure(&model, &target, a.n, root.child(3), par);
    // 3. Training.
    let mut tc = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), a.batch, a.train_steps, a.lr);
    tc.seed = a.seed;
    tc.eval_batch = 1024;
    tc.clip_grad_norm = Some(10.0);
    let data = TrainData {
        modes: Some(&target),
        ..TrainData::default()
    };
    let mut trainer = LrdsTrainer::new(&tc, model, &target, data, par).expect("valid training settings");
    let t1 = Instant::now();
    let mut losses = Vec::new();
    for s in 0..a.train_steps {
        let out = trainer.step().expect("training step");
        if let fieldflow_losses::StepOutcome::Accepted(r) = out {
            if s % 25 == 0 || s + 1 == a.train_steps {
                losses.push(json!([s, r.loss, r.batch_ess]));
            }
        }
    }
    let train_seconds = t1.elapsed().as_secs_f64();
    let trained = trainer.into_model();
    let after = measure(&trained, &target, a.n, root.child(4), par);
    let walker_evals = (walkers * a.walker_steps) as f64;
    let train_evals = (a.batch as u64 * a.train_steps) as f64;
    let out = json!({
        "target": a.target, "seed": a.seed, "dim": target.dim(),
        "exact": exact, "em_weights": fit.weights, "em_mode_weights": em_mode_weights,
        "settings": {"train_steps": a.train_steps, "batch": a.batch, "lr": a.lr, "steps": a.steps,
                     "hidden": a.hidden, "n": a.n, "walkers": walkers, "walker_steps": a.walker_steps,
                     "sigma": cfg.walker_sigma, "em_restarts": a.restarts, "threads": rayon::current_num_threads()},
        "reference_seconds": reference_seconds, "train_seconds": train_seconds,
        "walker_evals": walker_evals, "train_evals": train_evals,
        "untrained": before, "trained": after, "loss_trace": losses,
    });
    println!("{out}");
}
