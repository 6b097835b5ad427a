//! Criterion benches of the tutorial architecture (docs/THEORY.md §4.4: 16
//! checkerboard couplings, conv 1→8→8→2, kernel 3, LeakyReLU, tanh outputs)
//! at L = 8, 16, 32 and batch 64, 256: forward (sampling), inverse
//! (density), forward + backward (RKL gradient), score, and the
//! score-matching second-order term. The same architecture with
//! rational-quadratic spline couplings (8 bins, tail bound 5; conv
//! 1→8→8→23) runs as `spline8_L{L}`. The tutorial runs with the default
//! direct f64 kernel (`tutorial_L{L}`), in f32 (`tutorial_f32_L{L}`) and with
//! the im2col + GEMM kernel (`tutorial_im2col_L{L}`); throughput ratios
//! between them are the kernel speed-ups (docs/RESULTS.md).
//!
//! Throughput is reported in samples/s. Nominal GEMM flops per sample, in
//! units of F = network flops of one pass (printed at start): forward 1F,
//! inverse 1F, forward+backward 3F, score 2F, second order 6F.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fieldflow_core::{Par, ProposalDensity, Seed};
use fieldflow_flows::{ConvKernel, CouplingKind, Dtype, Flow, FlowConfig, ScoreModel, SplineConfig};
use ndarray::{Array1, Array2};
use std::time::Duration;

fn flow(l: usize, coupling: CouplingKind, kernel: ConvKernel) -> Flow {
    let mut cfg = FlowConfig::tutorial(l);
    cfg.identity_init = false;
    cfg.coupling = coupling;
    if kernel == ConvKernel::Direct(Dtype::F32) {
        cfg.dtype = Dtype::F32;
    }
    cfg.build(Seed::new(1)).unwrap().with_conv_kernel(kernel)
}

fn bench(c: &mut Criterion) {
    let par = Par::default();
    let spline8 = CouplingKind::Spline(SplineConfig {
        bins: 8,
        tail_bound: 5.0,
    });
    let (f64d, f32d) = (ConvKernel::Direct(Dtype::F64), ConvKernel::Direct(Dtype::F32));
    for (name, coupling, l, kernel) in [8usize, 16, 32]
        .map(|l| ("tutorial", CouplingKind::Affine, l, f64d))
        .into_iter()
        .chain([8usize, 16].map(|l| ("tutorial_f32", CouplingKind::Affine, l, f32d)))
        .chain([8usize, 16].map(|l| ("tutorial_im2col", CouplingKind::Affine, l, ConvKernel::Im2col)))
        .chain([8usize, 16].map(|l| ("spline8", spline8, l, f64d)))
    {
        let f = flow(l, coupling, kernel);
        let d = f.dim();
        eprintln!(
            "{name} L = {l}: D = {d}, params = {}, F = {:.3} MFLOP/sample",
            f.n_params(),
            f.flops_per_sample() / 1e6
        );
        let mut g = c.benchmark_group(format!("{name}_L{l}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(1));
        for n in [64usize, 256] {
            g.throughput(Throughput::Elements(n as u64));
            let mut z = Array2::zeros((n, d));
            f.sample_base_batch(Seed::new(2), z.view_mut(), par);
            let mut x = Array2::zeros((n, d));
            let mut lq = Array1::zeros(n);
            f.forward_batch(z.view(), x.view_mut(), lq.view_mut(), par);
            let r = x.mapv(|v| 0.1 * v);
            g.bench_with_input(BenchmarkId::new("forward", n), &n, |b, _| {
                let (mut x, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
                b.iter(|| f.forward_batch(z.view(), x.view_mut(), lq.view_mut(), par))
            });
            g.bench_with_input(BenchmarkId::new("inverse", n), &n, |b, _| {
                let mut lq = Array1::zeros(n);
                b.iter(|| f.log_q_batch(x.view(), lq.view_mut(), par))
            });
            g.bench_with_input(BenchmarkId::new("forward_backward", n), &n, |b, _| {
                let (mut x2, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
                let mut grad = vec![0.0; f.n_params()];
                b.iter(|| {
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
                })
            });
            g.bench_with_input(BenchmarkId::new("score", n), &n, |b, _| {
                let (mut s, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
                b.iter(|| f.score_batch(x.view(), s.view_mut(), lq.view_mut(), par))
            });
            g.bench_with_input(BenchmarkId::new("second_order", n), &n, |b, _| {
                let mut grad = vec![0.0; f.n_params()];
                b.iter(|| ScoreModel::score_param_vjp_batch(&f, x.view(), r.view(), &mut grad, par))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
