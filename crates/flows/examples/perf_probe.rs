//! Single-thread throughput probe of the tutorial architecture, in CPU time
//! (robust on a shared machine): samples per CPU-second and GFLOP per
//! CPU-second for forward, inverse, forward+backward, score and the
//! second-order term, plus this machine's GEMM rate for comparison.
//!
//! `cargo run --release -p fieldflow-flows --example perf_probe -- L BATCH REPS`
//! (no arguments: GEMM rates only). Linux only (reads /proc/thread-self/schedstat).

use fieldflow_core::{Par, ProposalDensity, Seed};
use fieldflow_flows::{FlowConfig, ScoreModel};
use ndarray::{Array1, Array2};

fn cpu_ns() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap()
}

fn main() {
    if std::env::args().len() == 1 {
        gemm_peak();
        return;
    }
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (l, n, reps) = (args[0], args[1], args[2]);
    let mut cfg = FlowConfig::tutorial(l);
    cfg.identity_init = false;
    let f = cfg.build(Seed::new(1)).unwrap();
    let d = f.dim();
    let par = Par::serial(32);
    let fl = f.flops_per_sample();
    let mut z = Array2::zeros((n, d));
    f.sample_base_batch(Seed::new(2), z.view_mut(), par);
    let (mut x, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
    f.forward_batch(z.view(), x.view_mut(), lq.view_mut(), par);
    let r = x.mapv(|v| 0.1 * v);
    let mut grad = vec![0.0; f.n_params()];
    let mut s = Array2::zeros((n, d));
    let time = |name: &str, mult: f64, op: &mut dyn FnMut()| {
        op();
        let t0 = cpu_ns();
        for _ in 0..reps {
            op();
        }
        let dt = (cpu_ns() - t0) / 1e9 / reps as f64;
        println!(
            "L={l} n={n} {name:18} {:9.1} samples/cpu-s  {:6.2} GFLOP/cpu-s",
            n as f64 / dt,
            mult * fl * n as f64 / dt / 1e9
        );
    };
    time("forward", 1.0, &mut || {
        f.forward_batch(z.view(), x.view_mut(), lq.view_mut(), par)
    });
    time("inverse", 1.0, &mut || f.log_q_batch(x.view(), lq.view_mut(), par));
    let mut x2 = Array2::zeros((n, d));
    time("forward_backward", 3.0, &mut || {
        f.forward_vjp_batch(
            z.view(),
            x2.view_mut(),
            lq.view_mut(),
            &mut grad,
            par,
            |_, x, _, mut gx, mut glq| {
                gx.assign(&x);
                glq.fill(1.0);
            },
        )
    });
    time("score", 2.0, &mut || {
        f.score_batch(x.view(), s.view_mut(), lq.view_mut(), par)
    });
    let mut g2 = vec![0.0; f.n_params()];
    time("second_order", 6.0, &mut || {
        ScoreModel::score_param_vjp_batch(&f, x.view(), r.view(), &mut g2, par)
    });
}

fn gemm_peak() {
    let n = 512;
    let a = Array2::<f64>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j) % 13) as f64);
    let b = a.clone();
    let mut c = Array2::<f64>::zeros((n, n));
    ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    let t0 = cpu_ns();
    for _ in 0..5 {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    }
    let dt = (cpu_ns() - t0) / 1e9 / 5.0;
    println!("GEMM 512³: {:.2} GFLOP/cpu-s", 2.0 * (n * n * n) as f64 / dt / 1e9);
    // Shapes of the tutorial conv: (32·64 × 72)·(72 × 8)
    let (m, k, nn) = (2048, 72, 8);
    let a = Array2::<f64>::from_elem((m, k), 0.5);
    let b = Array2::<f64>::from_elem((k, nn), 0.25);
    let mut c = Array2::<f64>::zeros((m, nn));
    let t0 = cpu_ns();
    for _ in 0..200 {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    }
    let dt = (cpu_ns() - t0) / 1e9 / 200.0;
    println!(
        "GEMM 2048×72×8: {:.2} GFLOP/cpu-s",
        2.0 * (m * k * nn) as f64 / dt / 1e9
    );
}
