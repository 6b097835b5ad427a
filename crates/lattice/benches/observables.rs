//! Criterion benches: the per-configuration observables of `fieldflow
//! analyze` on 10⁴ configurations of a 2D lattice, L = 8 and L = 64, one
//! thread. Throughput is reported in configurations (elements) per second.
//!
//! * `measure`: [`Phi4Observables::measure`] (all 7 + L₀ + d primaries);
//! * `measure_reference`: the straightforward implementation the library
//!   used before it was made allocation-free (kept below as [`Reference`]),
//!   for a before/after comparison within one run;
//! * `two_point`: [`TwoPoint::compute`], the FFT two-point function g(x);
//! * `all`: both per configuration.
//!
//! Before timing anything, the setup checks that `measure` agrees bit for bit
//! with the reference on several lattice shapes (d = 1…4, odd and unit
//! extents, and L₀ large enough for the heap fallback).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use fieldflow_core::{Measure, Seed};
use fieldflow_lattice::{Lattice, Phi4, Phi4Config, Phi4Observables, TwoPoint};
use ndarray::Array2;
use rand::Rng as _;
use std::f64::consts::PI;
use std::hint::black_box;
use std::time::Duration;

/// Configurations measured per iteration.
const N_CFG: usize = 10_000;

/// The observables as first implemented (slice sums in a fresh
/// `Vec<Vec<f64>>` per configuration, `%` in the O(L₀²) `ct_t` sums, sin/cos
/// per slice); bit-for-bit what [`Phi4Observables::measure`] must return.
struct Reference {
    lattice: Lattice,
    m2: f64,
    lambda: f64,
}

impl Reference {
    fn new(t: &Phi4) -> Self {
        Reference {
            lattice: t.lattice().clone(),
            m2: t.m2(),
            lambda: t.lambda(),
        }
    }

    fn measure(&self, phi: &[f64], out: &mut [f64]) {
        let lat = &self.lattice;
        let v = lat.volume() as f64;
        let d = lat.dim();
        let mut sum = 0.0;
        let mut kinetic = 0.0;
        let mut potential = 0.0;
        let mut slices: Vec<Vec<f64>> = lat.shape().iter().map(|&l| vec![0.0; l]).collect();
        let mut x = vec![0usize; d];
        for (i, &p) in phi.iter().enumerate() {
            sum += p;
            let p2 = p * p;
            potential += p2 * (self.m2 + self.lambda * p2);
            for mu in 0..d {
                let diff = phi[lat.fwd(i, mu)] - p;
                kinetic += diff * diff;
                slices[mu][x[mu]] += p;
            }
            for mu in (0..d).rev() {
                x[mu] += 1;
                if x[mu] < lat.shape()[mu] {
                    break;
                }
                x[mu] = 0;
            }
        }
        let m = sum / v;
        out[0] = m;
        out[1] = m.abs();
        out[2] = m * m;
        out[3] = m * m * m * m;
        out[4] = (kinetic + potential) / v;
        out[5] = kinetic / v;
        out[6] = potential / v;
        let s = &slices[0];
        let l0 = s.len();
        for t in 0..l0 {
            let c: f64 = (0..l0).map(|tau| s[tau] * s[(tau + t) % l0]).sum();
            out[Phi4Observables::CT_OFFSET + t] = c / v;
        }
        let off = Phi4Observables::CT_OFFSET + l0;
        for (mu, s) in slices.iter().enumerate() {
            let l = s.len() as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (k, &sk) in s.iter().enumerate() {
                let arg = -2.0 * PI * k as f64 / l;
                re += sk * arg.cos();
                im += sk * arg.sin();
            }
            out[off + mu] = (re * re + im * im) / v;
        }
    }
}

/// `n` fields of a φ⁴-like size (φ ~ ±1 with noise), rows of `[n, V]`.
fn fields(n: usize, v: usize, seed: u64) -> Array2<f64> {
    let mut rng = Seed::new(seed).rng();
    Array2::from_shape_simple_fn((n, v), || {
        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        sign + rng.random_range(-0.8..0.8)
    })
}

/// Panics unless `measure` equals the reference bit for bit on `shape`.
fn check_against_reference(shape: &[usize], seed: u64) {
    let t = Phi4Config::standard(shape, -0.7, 0.9).validate().unwrap();
    let obs = Phi4Observables::new(&t);
    let reference = Reference::new(&t);
    let mut a = vec![0.0; obs.len()];
    let mut b = vec![0.0; obs.len()];
    let mut cfgs = fields(4, t.lattice().volume(), seed);
    // Signed zeros: an all −0.0 field, and one whose slice sums are ±0.
    cfgs.row_mut(0).fill(-0.0);
    cfgs.row_mut(1).fill(0.0);
    for phi in cfgs.outer_iter() {
        obs.measure(phi, &mut a);
        reference.measure(phi.as_slice().unwrap(), &mut b);
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{shape:?}: observable {k}: {x} != {y}");
        }
    }
    // Non-contiguous input (every second element of a longer buffer).
    let wide = fields(1, 2 * t.lattice().volume(), seed + 1);
    let phi = wide.row(0);
    let strided = phi.slice(ndarray::s![..;2]);
    obs.measure(strided, &mut a);
    reference.measure(&strided.to_vec(), &mut b);
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "{shape:?}: strided"
    );
}

fn observables(c: &mut Criterion) {
    for (k, shape) in [
        &[8, 8][..],
        &[64, 64],
        &[4, 6, 3],
        &[5],
        &[1000],
        &[3, 1, 4, 2],
        &[1, 7],
        &[7, 1],
        &[300, 5],
        &[2, 2, 2, 2],
    ]
    .iter()
    .enumerate()
    {
        check_against_reference(shape, 10 + k as u64);
    }

    let mut g = c.benchmark_group("observables_2d_10k_cfg");
    g.throughput(Throughput::Elements(N_CFG as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.sampling_mode(SamplingMode::Flat);
    for l in [8usize, 64] {
        let t = Phi4Config::standard(&[l, l], -4.0, 8.0).validate().unwrap();
        let v = t.lattice().volume();
        let cfgs = fields(N_CFG, v, l as u64);
        let obs = Phi4Observables::new(&t);
        let reference = Reference::new(&t);
        let mut out = vec![0.0; obs.len()];
        let mut two_point = TwoPoint::new(t.lattice());
        let mut g_x = vec![0.0; v];
        g.measurement_time(Duration::from_secs(if l == 8 { 3 } else { 8 }));
        g.bench_function(BenchmarkId::new("measure", l), |b| {
            b.iter(|| {
                for phi in cfgs.outer_iter() {
                    obs.measure(black_box(phi), &mut out);
                    black_box(&out);
                }
            })
        });
        g.bench_function(BenchmarkId::new("measure_reference", l), |b| {
            b.iter(|| {
                for phi in cfgs.outer_iter() {
                    reference.measure(black_box(phi.as_slice().unwrap()), &mut out);
                    black_box(&out);
                }
            })
        });
        g.bench_function(BenchmarkId::new("two_point", l), |b| {
            b.iter(|| {
                for phi in cfgs.outer_iter() {
                    two_point.compute(black_box(phi.as_slice().unwrap()), &mut g_x);
                    black_box(&g_x);
                }
            })
        });
        g.bench_function(BenchmarkId::new("all", l), |b| {
            b.iter(|| {
                for phi in cfgs.outer_iter() {
                    let phi = black_box(phi);
                    obs.measure(phi, &mut out);
                    two_point.compute(phi.as_slice().unwrap(), &mut g_x);
                    black_box((&out, &g_x));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, observables);
criterion_main!(benches);
