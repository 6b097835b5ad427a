//! Criterion benches: the fused action/force kernel and one HMC trajectory on
//! 2D lattices L = 8…128, and many chains in parallel at 1 and 2 threads.
//! Throughput is reported in site-updates (elements) per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fieldflow_core::{Seed, Target};
use fieldflow_lattice::hmc::{trajectory, HmcWorkspace};
use fieldflow_lattice::{
    advance, init_states, AlgorithmConfig, ChainRecords, HmcConfig, MetropolisConfig, Phi4Config, Start,
};
use std::hint::black_box;

const SIZES: [usize; 5] = [8, 16, 32, 64, 128];

fn field(v: usize) -> Vec<f64> {
    (0..v).map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0).collect()
}

fn force_kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("force_2d");
    for l in SIZES {
        let t = Phi4Config::standard(&[l, l], -4.0, 8.0).validate().unwrap();
        let phi = field(t.dim());
        let mut f = vec![0.0; t.dim()];
        g.throughput(Throughput::Elements(t.dim() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(l), &l, |b, _| {
            b.iter(|| black_box(t.action_and_force(black_box(&phi), &mut f)))
        });
    }
    g.finish();
}

fn hmc_trajectory(c: &mut Criterion) {
    let mut g = c.benchmark_group("hmc_trajectory_2d_omelyan_10");
    for l in SIZES {
        let t = Phi4Config::standard(&[l, l], -4.0, 8.0).validate().unwrap();
        let hmc = HmcConfig {
            trajectory_length: 0.3,
            ..Default::default()
        }
        .validate()
        .unwrap();
        let mut phi = field(t.dim());
        for x in phi.iter_mut() {
            *x *= 0.3;
        }
        let mut ws = HmcWorkspace::new(t.dim());
        let mut k = 0u64;
        // Site-updates: V sites per trajectory.
        g.throughput(Throughput::Elements(t.dim() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(l), &l, |b, _| {
            b.iter(|| {
                k += 1;
                let mut rng = Seed::new(1).child(k).rng();
                black_box(trajectory(&t, &hmc, 0.03, &mut phi, &mut ws, &mut rng))
            })
        });
    }
    g.finish();
}

fn parallel_chains(c: &mut Criterion) {
    let mut g = c.benchmark_group("chains_16x16_8chains_10updates");
    g.sample_size(10);
    let t = Phi4Config::standard(&[16, 16], -4.0, 8.0).validate().unwrap();
    for (name, alg) in [
        (
            "hmc",
            AlgorithmConfig::Hmc(HmcConfig {
                trajectory_length: 0.3,
                ..Default::default()
            }),
        ),
        ("metropolis", AlgorithmConfig::Metropolis(MetropolisConfig::default())),
    ] {
        let alg = alg.validate().unwrap();
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let seed = Seed::new(3);
            let mut st = init_states(8, t.dim(), Start::Hot { sigma: 0.3 }, seed, &alg);
            let mut rec = ChainRecords::new(8, 10, t.dim());
            g.throughput(Throughput::Elements((8 * 10 * t.dim()) as u64));
            g.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter(|| pool.install(|| advance(&t, &alg, seed, &mut st, 1, &mut rec, &|_| {})))
            });
        }
    }
    g.finish();
}

fn memcpy(c: &mut Criterion) {
    // Machine reference: copy of a 64 MiB array (read + write = 128 MiB moved).
    let n = 8 << 20;
    let src = vec![1.0f64; n];
    let mut dst = vec![0.0f64; n];
    let mut g = c.benchmark_group("memcpy_64MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((2 * 8 * n) as u64));
    g.bench_function("copy", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    g.finish();
}

criterion_group!(benches, force_kernel, hmc_trajectory, parallel_chains, memcpy);
criterion_main!(benches);
