//! The local kernel of a sample run and its warm-up.
//!
//! The kernel acts on the target in x (hybrid, global-local, adaptive) or
//! on the flow's pulled-back density in z (neutra). Its step starts at
//! `local_width` and, with `sampler.warmup = W > 0`, is adapted by dual
//! averaging over W updates of [`WARMUP_STATES`] states drawn for the
//! purpose ([`fieldflow_imh::tune_step`]) before any chain moves; the
//! frozen step is stored in the output (attribute `local_step`), so a
//! resumed run uses it without a new warm-up and every MPI rank computes
//! the same value.

use super::settings::{LocalKind, SampleConfig};
use anyhow::{bail, Result};
use fieldflow_core::{LocalKernel, Par, Proposal, Seed, Target};
use fieldflow_imh::{tune_step, Mala, RandomWalk, StepTuning};
use fieldflow_lattice::{HmcConfig, HmcKernel, Integrator, MetropolisConfig, MetropolisSweep, Phi4};
use ndarray::{Array1, Array2};

/// States updated in every warm-up round.
pub const WARMUP_STATES: usize = 8;

/// The stream of the warm-up (no chain uses it: chains are `seed.child(c)`).
pub fn warmup_seed(seed: u64) -> Seed {
    Seed::new(seed).child(u64::MAX)
}

/// The kernel `kind` with step `step` on `target`; `phi4` is the lattice
/// target itself when the kernel acts on it in x (Metropolis sweeps need it).
///
/// # Errors
/// Metropolis sweeps on anything but lattice φ⁴ in x.
pub fn kernel<'a>(
    kind: LocalKind,
    step: f64,
    hmc_length: f64,
    target: &'a dyn Target,
    phi4: Option<&'a Phi4>,
) -> Result<Box<dyn LocalKernel + 'a>> {
    Ok(match kind {
        LocalKind::Mala => Box::new(Mala { target, step }),
        LocalKind::Rw => Box::new(RandomWalk { target, width: step }),
        LocalKind::Hmc => {
            let hmc = HmcConfig {
                trajectory_length: hmc_length,
                n_steps: 1,
                integrator: Integrator::Leapfrog,
                jitter: 0.2,
                ..Default::default()
            }
            .validate()?;
            Box::new(HmcKernel { target, hmc, eps: step })
        }
        LocalKind::Metropolis => {
            let Some(p) = phi4 else {
                bail!(
                    "sampler.local = metropolis: Metropolis sweeps need a lattice φ⁴ target in x; use mala, hmc or rw"
                );
            };
            let metropolis = MetropolisConfig {
                width: step,
                hits: 1,
                tune: false,
                ..Default::default()
            }
            .validate()?;
            Box::new(MetropolisSweep {
                target: p,
                metropolis,
                width: step,
            })
        }
    })
}

/// The step of the run's kernel: `local_width`, or with a warm-up the
/// adapted step, tuned on [`WARMUP_STATES`] draws of `start` (the flow in
/// x, its base in z).
///
/// # Errors
/// As [`kernel`].
pub fn warm_up(
    c: &SampleConfig,
    kind: LocalKind,
    target: &dyn Target,
    phi4: Option<&Phi4>,
    start: &dyn Proposal,
) -> Result<f64> {
    if c.sampler.warmup == 0 {
        return Ok(c.local_width);
    }
    let d = target.dim();
    let mut xs = Array2::zeros((WARMUP_STATES, d));
    let mut lq = Array1::zeros(WARMUP_STATES);
    start.draw_batch(
        warmup_seed(c.seed).child(0),
        xs.view_mut(),
        lq.view_mut(),
        Par::default(),
    );
    let mut states: Vec<Vec<f64>> = xs.outer_iter().map(|r| r.to_vec()).collect();
    tune(c, kind, target, phi4, &mut states, warmup_seed(c.seed).child(1))
}

/// The step of the run's kernel adapted over `sampler.warmup` rounds of
/// updates of `states` (which the warm-up moves), or `local_width` without
/// a warm-up.
///
/// # Errors
/// As [`kernel`].
pub fn tune(
    c: &SampleConfig,
    kind: LocalKind,
    target: &dyn Target,
    phi4: Option<&Phi4>,
    states: &mut [Vec<f64>],
    seed: Seed,
) -> Result<f64> {
    // Build once to surface a bad kernel as an error, not inside the warm-up.
    kernel(kind, c.local_width, c.sampler.hmc_length, target, phi4)?;
    if c.sampler.warmup == 0 {
        return Ok(c.local_width);
    }
    let tuning = StepTuning {
        initial: c.local_width,
        target_acceptance: c.sampler.target_acceptance.unwrap_or(kind.default_acceptance()),
        updates: c.sampler.warmup as usize,
    };
    Ok(tune_step(
        |s| kernel(kind, s, c.sampler.hmc_length, target, phi4).expect("built above with the same kind and target"),
        states,
        tuning,
        seed,
    ))
}
