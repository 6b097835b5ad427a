//! Test data with known statistics: stationary AR(1) chains.
//!
//! x_{t+1} = ρ x_t + √(1 − ρ²) ε_t, ε_t ~ N(0, 1), x_0 ~ N(0, 1): unit
//! variance, ρ(t) = ρ^t, τ_int = ½ + Σ_{t≥1} ρ^t = (1 + ρ)/(2(1 − ρ)).

#![allow(dead_code)]

use fieldflow_core::{Rng, Seed};
use rand_distr::{Distribution, StandardNormal};

/// One standard normal draw.
pub fn normal(rng: &mut Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Exact τ_int of the AR(1) chain.
pub fn tau_ar1(rho: f64) -> f64 {
    (1.0 + rho) / (2.0 * (1.0 - rho))
}

/// A stationary AR(1) chain of length n.
pub fn ar1(n: usize, rho: f64, seed: Seed) -> Vec<f64> {
    let mut rng = seed.rng();
    let c = (1.0 - rho * rho).sqrt();
    let mut x = normal(&mut rng);
    (0..n)
        .map(|_| {
            let out = x;
            x = rho * x + c * normal(&mut rng);
            out
        })
        .collect()
}

/// Two stationary AR(1) chains with the same ρ whose innovations (and hence
/// equal-time values) have correlation `corr`.
pub fn ar1_pair(n: usize, rho: f64, corr: f64, seed: Seed) -> (Vec<f64>, Vec<f64>) {
    let mut rng = seed.rng();
    let c = (1.0 - rho * rho).sqrt();
    let s = (1.0 - corr * corr).sqrt();
    let z1 = normal(&mut rng);
    let z2 = normal(&mut rng);
    let (mut x, mut y) = (z1, corr * z1 + s * z2);
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        xs.push(x);
        ys.push(y);
        let e1 = normal(&mut rng);
        let e2 = normal(&mut rng);
        x = rho * x + c * e1;
        y = rho * y + c * (corr * e1 + s * e2);
    }
    (xs, ys)
}
