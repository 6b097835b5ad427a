//! Diagnostics of the spline + score-matching-on-flow-samples collapse
//! (issue 14, data/experiments/spline_sm/): trains MOG-4 (or MOG-8) with
//! the `scorenf` recipe and, at checkpoints, looks at the flow
//! samples with the largest score-matching residual ‖s_θ(x) − β s_p(x)‖².
//!
//! `cargo run --release -p fieldflow-losses --example spline_sm -- [affine|spline] STEPS EVERY [TAIL_BOUND]`
//! (env SEED: data and trainer seed, default 1; SIGMA: base σ, default 1;
//! TARGET: mog4 or mog8; TOTAL: schedule length, default 2000).

use fieldflow_core::{ExactSampler, Par, Seed, Target};
use fieldflow_flows::Flow;
use fieldflow_flows::{CouplingKind, Direction, FlowConfig, Layer, Scratch, SplineConfig};
use fieldflow_losses::loss::sm_value_and_grad;
use fieldflow_losses::{Annealing, LossConfig, LossPreset, LrSchedule, TrainConfig, TrainData, Trainer};
use fieldflow_targets::GaussianMixture;
use ndarray::{Array1, Array2, ArrayView2};

/// SM = mean ‖s_θ(x) − β s_p(x)‖² at the rows of `xs`.
fn sm_at(flow: &Flow, target: &dyn Target, xs: ArrayView2<f64>, beta: f64, par: Par) -> f64 {
    let mut g = vec![0.0; flow.n_params()];
    sm_value_and_grad(flow, target, xs, beta, 0.0, &mut g, par)
}

/// Flow samples f_θ(z).
fn push(flow: &Flow, zs: ArrayView2<f64>, par: Par) -> Array2<f64> {
    let mut xs = Array2::zeros(zs.raw_dim());
    let mut lq = Array1::zeros(zs.nrows());
    flow.forward_batch(zs, xs.view_mut(), lq.view_mut(), par);
    xs
}

/// Is the stop-gradient SM gradient g (x = f_θ(z) held fixed) a descent
/// direction of the reported loss SM(θ) = mean_z ‖r(f_θ(z))‖²? Steps
/// θ − ε ĝ, ĝ = g/|g|: SM at the old samples (what g sees) and at the
/// moved samples f_θ'(z) (what the loss is).
fn descent_check(flow: &Flow, target: &dyn Target, zs: ArrayView2<f64>, beta: f64, par: Par) {
    let xs = push(flow, zs, par);
    let mut g = vec![0.0; flow.n_params()];
    let sm0 = sm_value_and_grad(flow, target, xs.view(), beta, 1.0, &mut g, par);
    let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut line = format!("   descent check |g| {norm:.3e}:");
    for eps in [1e-4, 1e-3, 1e-2] {
        let mut f2 = flow.clone();
        for (p, gi) in f2.params_mut().iter_mut().zip(&g) {
            *p -= eps * gi / norm;
        }
        let fixed = sm_at(&f2, target, xs.view(), beta, par);
        let moved = sm_at(&f2, target, push(&f2, zs, par).view(), beta, par);
        line += &format!(
            "  ε {eps:.0e}: ΔSM fixed x {:+.2e}, moved x {:+.2e} (rel {:+.2e} / {:+.2e})",
            fixed - sm0,
            moved - sm0,
            (fixed - sm0) / sm0,
            (moved - sm0) / sm0
        );
    }
    println!("{line}");
    // The directional derivative of SM at fixed x along ĝ must be |g|.
    let mut line = String::from("   FD check of |g| at fixed x:");
    for eps in [1e-9, 1e-8, 1e-7, 1e-6, 1e-5] {
        let at = |sign: f64| {
            let mut f2 = flow.clone();
            for (p, gi) in f2.params_mut().iter_mut().zip(&g) {
                *p += sign * eps * gi / norm;
            }
            sm_at(&f2, target, xs.view(), beta, par)
        };
        line += &format!("  ε {eps:.0e}: {:.6e}", (at(1.0) - at(-1.0)) / (2.0 * eps));
    }
    println!("{line}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("spline", |s| s.as_str());
    let steps: u64 = args.get(2).map_or(400, |s| s.parse().unwrap());
    let every: u64 = args.get(3).map_or(50, |s| s.parse().unwrap());
    let par = Par::default();
    // Target (env TARGET: mog4, default, or mog8) and schedule length (env
    // TOTAL, default 2000 steps; annealing over the first half).
    let mog = match std::env::var("TARGET").as_deref() {
        Ok("mog8") => GaussianMixture::mog8(),
        _ => GaussianMixture::mog4(),
    };
    let total: u64 = std::env::var("TOTAL").map_or(2000, |s| s.parse().unwrap());
    let mut train = Array2::zeros((100, 2));
    // Training data and trainer seed (env SEED, default 1).
    let seed: u64 = std::env::var("SEED").map_or(1, |s| s.parse().unwrap());
    mog.sample_batch(Seed::new(99 + seed), train.view_mut(), par);
    let mut fc = FlowConfig::mlp(2, 8, vec![32, 32]);
    // Optional base standard deviation (env SIGMA, default 1).
    fc.base_sigma = std::env::var("SIGMA").map_or(1.0, |s| s.parse().unwrap());
    let bound: f64 = args.get(4).map_or(6.0, |s| s.parse().unwrap());
    if kind == "spline" {
        fc.coupling = CouplingKind::Spline(SplineConfig {
            bins: 8,
            tail_bound: bound,
        });
    }
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Scorenf), 256, total, 2e-3);
    cfg.lr_schedule = LrSchedule::Cosine {
        total_steps: total,
        min_lr: 1e-5,
    };
    cfg.annealing = Annealing::Geometric {
        beta0: 0.1,
        steps: total / 2,
    };
    cfg.clip_grad_norm = Some(100.0);
    cfg.seed = seed;
    let flow = fc.build(Seed::new(1)).unwrap();
    let data = TrainData {
        train: Some(train),
        held_out: None,
        modes: None,
    };
    let mut tr = Trainer::new(&cfg, flow, &mog, data, par).unwrap();
    let n = 4096;
    for t in 0..=steps {
        if t % every == 0 {
            let beta = cfg.annealing.beta(t);
            let flow = tr.flow();
            let mut zs = Array2::zeros((n, 2));
            flow.sample_base_batch(Seed::new(7).child(t), zs.view_mut(), par);
            let mut xs = Array2::zeros((n, 2));
            let mut lq = Array1::zeros(n);
            flow.forward_batch(zs.view(), xs.view_mut(), lq.view_mut(), par);
            let mut sq = Array2::zeros((n, 2));
            let mut lq2 = Array1::zeros(n);
            flow.score_batch(xs.view(), sq.view_mut(), lq2.view_mut(), par);
            let mut sp = Array2::zeros((n, 2));
            let mut lp = Array1::zeros(n);
            mog.log_prob_and_score_batch(xs.view(), sp.view_mut(), lp.view_mut(), par);
            let r2: Vec<f64> = (0..n)
                .map(|i| (0..2).map(|j| (sq[(i, j)] - beta * sp[(i, j)]).powi(2)).sum())
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| r2[b].total_cmp(&r2[a]));
            let mean = r2.iter().sum::<f64>() / n as f64;
            let top10: f64 = order[..10].iter().map(|&i| r2[i]).sum::<f64>() / n as f64;
            let med = r2[order[n / 2]];
            println!(
                "step {t:5} β {beta:.3}: SM mean {mean:.4e} (top-10 share {:.3}) median {med:.3e} max {:.3e}",
                top10 / mean,
                r2[order[0]]
            );
            descent_check(flow, &mog, zs.view(), beta, par);
            for &i in &order[..3] {
                // Arguments of each layer's spline along the density pass x → z.
                let mut cur = xs.row(i).to_owned().insert_axis(ndarray::Axis(0));
                let mut args = Vec::new();
                for (k, layer) in flow.layers().iter().enumerate().rev() {
                    let mut tape = layer.new_tape(1, false);
                    let mut y = Array2::zeros((1, 2));
                    let mut ld = Array1::zeros(1);
                    let p = &flow.params()[flow.param_offsets()[k]..flow.param_offsets()[k + 1]];
                    layer.apply(
                        Direction::Inverse,
                        p,
                        cur.view(),
                        y.view_mut(),
                        ld.view_mut(),
                        &mut tape,
                        &mut Scratch::default(),
                    );
                    // halves mask: layer k transforms coordinate 1 − k mod 2 … report both
                    args.push(format!(
                        "L{k}({:+.3},{:+.3}) ld {:+.2}",
                        cur[(0, 0)],
                        cur[(0, 1)],
                        ld[0]
                    ));
                    cur = y;
                }
                println!(
                    "   x ({:+.4}, {:+.4}) |s_q| {:.3e} |β s_p| {:.3e} log q {:.2} log p {:.2} z_roundtrip_err {:.1e}\n      {}",
                    xs[(i, 0)],
                    xs[(i, 1)],
                    sq.row(i).dot(&sq.row(i)).sqrt(),
                    beta * sp.row(i).dot(&sp.row(i)).sqrt(),
                    lq[i],
                    lp[i],
                    (&cur.row(0) - &zs.row(i)).iter().fold(0.0f64, |m, v| m.max(v.abs())),
                    args.join(" ")
                );
            }
        }
        if t < steps {
            tr.step().unwrap();
        }
    }
}
