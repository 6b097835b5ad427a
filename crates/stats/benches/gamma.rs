//! Γ-method on 10⁶ samples of an AR(1) chain (ρ = 0.9): FFT path.

use criterion::{criterion_group, criterion_main, Criterion};
use fieldflow_core::Seed;
use fieldflow_stats::{gamma_primary, AutocovMethod, GammaConfig};
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;

fn ar1(n: usize, rho: f64, seed: Seed) -> Vec<f64> {
    let mut rng = seed.rng();
    let c = (1.0 - rho * rho).sqrt();
    let mut x: f64 = StandardNormal.sample(&mut rng);
    (0..n)
        .map(|_| {
            let e: f64 = StandardNormal.sample(&mut rng);
            let out = x;
            x = rho * x + c * e;
            out
        })
        .collect()
}

fn bench_gamma(c: &mut Criterion) {
    let data = ar1(1_000_000, 0.9, Seed::new(1));
    let cfg = GammaConfig {
        method: AutocovMethod::Fft,
        ..GammaConfig::default()
    };
    let mut group = c.benchmark_group("gamma");
    group.sample_size(10);
    group.bench_function("primary_1e6_fft", |b| {
        b.iter(|| gamma_primary(black_box(&[data.as_slice()]), &cfg).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_gamma);
criterion_main!(benches);
