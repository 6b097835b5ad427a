//! Quick side-by-side timing of the convolution kernels on the tutorial
//! architecture (16 affine couplings, conv 1→8→8→2, L×L): reverse-KL-style
//! training steps per second (forward + backward through the sampling
//! direction) for im2col (f64), direct f64 and direct f32, interleaved so
//! machine noise hits all three alike, and the cost of the score-matching
//! second-order term in units of that step. Ratios are the result. Times are
//! the process's CPU time where Linux reports it (the sum of its threads'
//! run times in /proc/self/task/*/schedstat, so other jobs on a shared
//! machine do not count), otherwise wall time.
//!
//! usage: cargo run --release -p fieldflow-flows --example kernel_speed -- [L] [batch,...] [seconds] [only] [hidden]

use fieldflow_core::{Par, Seed};
use fieldflow_flows::{ConvKernel, Dtype, Flow, FlowConfig, ScoreModel};
use ndarray::{Array1, Array2};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let l: usize = args.get(1).map_or(8, |s| s.parse().expect("L"));
    let batches: Vec<usize> = args
        .get(2)
        .map_or("64,1024".into(), |s| s.clone())
        .split(',')
        .map(|s| s.parse().expect("batch"))
        .collect();
    let secs: f64 = args.get(3).map_or(3.0, |s| s.parse().expect("seconds"));
    // Optional 5th argument: hidden channels, e.g. 32,32 (default the tutorial's 8,8).
    let hidden: Vec<usize> = args
        .get(5)
        .map_or("8,8".into(), |s| s.clone())
        .split(',')
        .map(|s| s.parse().expect("hidden"))
        .collect();
    let mut cfg = FlowConfig::tutorial(l);
    cfg.identity_init = false;
    cfg.conditioner.hidden = hidden;
    let base = cfg.build(Seed::new(1)).unwrap();
    let kernels = [
        ("im2col f64", ConvKernel::Im2col),
        ("direct f64", ConvKernel::Direct(Dtype::F64)),
        ("direct f32", ConvKernel::Direct(Dtype::F32)),
    ];
    // Optional 4th argument: only the kernels whose name contains it (profiling).
    let only = args.get(4).cloned().unwrap_or_default();
    let kernels: Vec<_> = kernels.into_iter().filter(|(n, _)| n.contains(only.as_str())).collect();
    let flows: Vec<Flow> = kernels.iter().map(|&(_, k)| base.clone().with_conv_kernel(k)).collect();
    let par = Par::default();
    let flops = 3.0 * base.flops_per_sample();
    println!(
        "L = {l}, threads = {}, {:.2} MFLOP per sample per step (rates per CPU second)",
        rayon::current_num_threads(),
        flops / 1e6
    );
    for &n in &batches {
        let d = base.dim();
        let mut z = Array2::zeros((n, d));
        base.sample_base_batch(Seed::new(2), z.view_mut(), par);
        let mut rates = vec![(0u64, 0.0f64); flows.len()];
        let mut second = vec![(0u64, 0.0f64); flows.len()];
        let r = z.mapv(|v| 0.1 * v);
        let t_end = Instant::now();
        while t_end.elapsed().as_secs_f64() < secs * flows.len() as f64 {
            for (f, r) in flows.iter().zip(rates.iter_mut()) {
                let (mut x, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
                let mut grad = vec![0.0; f.n_params()];
                let t = cpu_seconds();
                f.forward_vjp_batch(
                    z.view(),
                    x.view_mut(),
                    lq.view_mut(),
                    &mut grad,
                    par,
                    |_, x, _, mut gx, mut glq| {
                        gx.assign(&x);
                        glq.fill(1.0);
                    },
                );
                r.0 += 1;
                r.1 += cpu_seconds() - t;
            }
            // The score-matching second-order term on the same rows.
            for (f, s) in flows.iter().zip(second.iter_mut()) {
                let mut grad = vec![0.0; f.n_params()];
                let t = cpu_seconds();
                f.score_param_vjp_batch(z.view(), r.view(), &mut grad, par);
                s.0 += 1;
                s.1 += cpu_seconds() - t;
            }
        }
        for (((name, _), (k, s)), (k2, s2)) in kernels.iter().zip(&rates).zip(&second) {
            let sps = *k as f64 / s;
            println!(
                "batch {n:5}  {name}: {sps:8.2} steps/s  {:6.1} GFLOP/s  ({:.2}× first)  second order {:.2}× a step",
                sps * n as f64 * flops / 1e9,
                sps / (rates[0].0 as f64 / rates[0].1),
                (s2 / *k2 as f64) * sps
            );
        }
    }
}

/// CPU seconds of this process: the sum of its threads' run times
/// (/proc/self/task/*/schedstat, first field in ns); wall seconds since the
/// first call where that is not available.
fn cpu_seconds() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let cpu = std::fs::read_dir("/proc/self/task").ok().map(|tasks| {
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .sum::<f64>()
            * 1e-9
    });
    cpu.filter(|&c| c > 0.0)
        .unwrap_or_else(|| start.elapsed().as_secs_f64())
}
