//! Local Metropolis updates of lattice φ⁴ with checkerboard sweeps
//! (docs/THEORY.md §2.2, §2.7).
//!
//! As a function of the value v = φ(x) at one site, with all other sites
//! fixed, the action is
//!
//! S(v) = (2d' + m²) v² − 2 v n'(x) + λ v⁴ + const,
//!
//! where n'(x) = Σ_μ [φ(x+μ̂) + φ(x−μ̂)] runs over the d' axes of extent > 1
//! (an axis of extent 1 links a site to itself and drops out of S). A hit
//! proposes v' = v + w(2u − 1), u ~ U[0, 1) (symmetric, width w) and accepts
//! with probability min(1, exp(−(S(v') − S(v)))); `hits` successive hits are
//! made at each site before moving on. Each hit satisfies detailed balance
//! with respect to exp(−S), hence so does the sweep.
//!
//! **Sweep order.** The even sites (Σ_μ x_μ even), then the odd ones, each
//! updated with the *current* values of its neighbours. When every extent is
//! even this is the usual checkerboard (the sites of one colour are
//! independent); with an odd extent the colours are not independent sets,
//! and the same code is simply a sequential sweep in colour order — still
//! exact, because updates are never done simultaneously. After the sweep
//! S is recomputed exactly to record log p̃.
//!
//! The width w starts at `width`; with `tune` on it is adapted toward
//! `target_acceptance` during thermalization only, then frozen.

use crate::action::Phi4;
use crate::update::UpdateRecord;
use fieldflow_core::{ConfigError, Rng};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// User-facing Metropolis settings (`[metropolis]` in a TOML config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetropolisConfig {
    /// Initial proposal width w (default 1.0): v' = v + w(2u − 1).
    pub width: f64,
    /// Hits per site per sweep (default 3).
    pub hits: usize,
    /// Acceptance the width tuning aims at (default 0.5).
    pub target_acceptance: f64,
    /// Tune w during thermalization (default true).
    pub tune: bool,
}

impl Default for MetropolisConfig {
    fn default() -> Self {
        MetropolisConfig {
            width: 1.0,
            hits: 3,
            target_acceptance: 0.5,
            tune: true,
        }
    }
}

impl MetropolisConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// `metropolis.width` not finite and > 0, `metropolis.hits` = 0, or
    /// `metropolis.target_acceptance` outside (0, 1).
    pub fn validate(&self) -> Result<Metropolis, ConfigError> {
        if !(self.width.is_finite() && self.width > 0.0) {
            return Err(ConfigError::new(
                "metropolis.width",
                self.width,
                "must be finite and > 0",
            ));
        }
        if self.hits == 0 {
            return Err(ConfigError::new("metropolis.hits", 0, "must be >= 1"));
        }
        let t = self.target_acceptance;
        if !(t > 0.0 && t < 1.0) {
            return Err(ConfigError::new("metropolis.target_acceptance", t, "must be in (0, 1)"));
        }
        Ok(Metropolis {
            initial_width: self.width,
            hits: self.hits,
            target_acceptance: t,
            tune: self.tune,
        })
    }
}

/// Validated Metropolis settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metropolis {
    /// Width before tuning.
    pub initial_width: f64,
    /// Hits per site.
    pub hits: usize,
    /// Target acceptance of the tuning.
    pub target_acceptance: f64,
    /// Whether thermalization tunes w.
    pub tune: bool,
}

/// Checkerboard sweeps of a φ⁴ target as a [`LocalKernel`] (the local
/// move of hybrid flow + MCMC samplers): one update is one sweep.
pub struct MetropolisSweep<'a> {
    /// The target.
    pub target: &'a Phi4,
    /// The sweep's settings.
    pub metropolis: Metropolis,
    /// Proposal width.
    pub width: f64,
}

impl fieldflow_core::LocalKernel for MetropolisSweep<'_> {
    fn update(&self, x: &mut [f64], _scratch: &mut Vec<f64>, rng: &mut Rng) -> UpdateRecord {
        sweep(self.target, &self.metropolis, self.width, x, rng)
    }
}

/// One checkerboard sweep of `phi` (in place) with width `width`.
///
/// # Panics
/// If `phi.len()` is not the target's volume.
pub fn sweep(target: &Phi4, met: &Metropolis, width: f64, phi: &mut [f64], rng: &mut Rng) -> UpdateRecord {
    let lat = target.lattice();
    assert_eq!(phi.len(), lat.volume(), "field length differs from V");
    let d = lat.dim();
    let active: usize = lat.shape().iter().filter(|&&l| l > 1).count();
    let a = 2.0 * active as f64 + target.m2();
    let lam = target.lambda();
    let n_last = lat.shape()[d - 1];
    let mut accepted: u64 = 0;
    for colour in 0..2 {
        let mut start = 0;
        while start < phi.len() {
            // Parity of the line start; site j of the line has parity q + j.
            let q = lat.parity(start);
            let first = (colour + 2 - q) % 2;
            for j in (first..n_last).step_by(2) {
                let i = start + j;
                let mut nsum = 0.0;
                for mu in 0..d {
                    if lat.shape()[mu] > 1 {
                        nsum += phi[lat.fwd(i, mu)] + phi[lat.bwd(i, mu)];
                    }
                }
                let mut v = phi[i];
                for _ in 0..met.hits {
                    let u: f64 = rng.random();
                    let w = v + width * (2.0 * u - 1.0);
                    let (v2, w2) = (v * v, w * w);
                    let ds = a * (w2 - v2) - 2.0 * (w - v) * nsum + lam * (w2 * w2 - v2 * v2);
                    if ds <= 0.0 || rng.random::<f64>() < (-ds).exp() {
                        v = w;
                        accepted += 1;
                    }
                }
                phi[i] = v;
            }
            start += n_last;
        }
    }
    let frac = accepted as f64 / (phi.len() * met.hits) as f64;
    UpdateRecord {
        accepted: accepted > 0,
        acceptance: frac,
        accept_prob: frac,
        delta_h: f64::NAN,
        log_p: -target.action(phi),
    }
}
