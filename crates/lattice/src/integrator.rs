//! Reversible, symplectic integrators of Hamilton's equations for
//! H(φ, π) = ½‖π‖² + S(φ) (docs/THEORY.md §2.5): φ̇ = π, π̇ = −∂S/∂φ = ∇ log p̃(φ).
//!
//! With the kick K(h): π ← π + h ∇log p̃(φ) and the drift D(h): φ ← φ + h π,
//! one step of size ε is
//!
//! * leapfrog: K(ε/2) D(ε) K(ε/2), error O(ε²) per unit time, 1 force/step;
//! * Omelyan second-order minimum-norm (Omelyan, Mryglod & Folk 2003):
//!   K(λε) D(ε/2) K((1 − 2λ)ε) D(ε/2) K(λε), λ = 0.1931833275037836,
//!   also O(ε²) but with a ~10× smaller error constant, 2 forces/step.
//!
//! Both are palindromic compositions of volume-preserving maps, hence
//! time-reversible (flip π, integrate again, land on the start). Adjacent
//! kicks of consecutive steps are merged, so n steps cost n (leapfrog) or 2n
//! (Omelyan) score evaluations given the score at the start.

use fieldflow_core::Target;
use ndarray::{ArrayView1, ArrayViewMut1};
use serde::{Deserialize, Serialize};

/// λ of the Omelyan 2nd-order minimum-norm integrator.
pub const OMELYAN_LAMBDA: f64 = 0.193_183_327_503_783_6;

/// Which integrator an HMC trajectory uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Integrator {
    /// Störmer–Verlet leapfrog.
    Leapfrog,
    /// Omelyan 2nd-order minimum-norm (2MN).
    #[default]
    Omelyan,
}

impl Integrator {
    /// Score evaluations per step.
    pub fn forces_per_step(self) -> usize {
        match self {
            Integrator::Leapfrog => 1,
            Integrator::Omelyan => 2,
        }
    }
}

/// Evaluates log p̃ and its score at `phi`.
#[inline]
fn eval<T: Target + ?Sized>(target: &T, phi: &[f64], score: &mut [f64]) -> f64 {
    target.log_prob_and_score(ArrayView1::from(phi), ArrayViewMut1::from(score))
}

#[inline]
fn kick(pi: &mut [f64], score: &[f64], h: f64) {
    for (p, s) in pi.iter_mut().zip(score) {
        *p += h * s;
    }
}

#[inline]
fn drift(phi: &mut [f64], pi: &[f64], h: f64) {
    for (x, p) in phi.iter_mut().zip(pi) {
        *x += h * p;
    }
}

/// Integrates `n_steps` steps of size `eps` from (φ, π), in place.
///
/// On entry `score` must hold ∇log p̃(φ) and `log_p` must be log p̃(φ); on
/// exit both refer to the final φ and the final log p̃ is returned.
///
/// # Panics
/// If the slices differ in length from `target.dim()`.
#[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
pub fn integrate<T: Target + ?Sized>(
    target: &T,
    integrator: Integrator,
    eps: f64,
    n_steps: usize,
    phi: &mut [f64],
    pi: &mut [f64],
    score: &mut [f64],
    log_p: f64,
) -> f64 {
    let dim = target.dim();
    assert!(
        phi.len() == dim && pi.len() == dim && score.len() == dim,
        "integrator buffers differ in length from the target's dimension"
    );
    if n_steps == 0 {
        return log_p;
    }
    let mut log_p = log_p;
    match integrator {
        Integrator::Leapfrog => {
            kick(pi, score, 0.5 * eps);
            for step in 0..n_steps {
                drift(phi, pi, eps);
                log_p = eval(target, phi, score);
                let h = if step + 1 == n_steps { 0.5 * eps } else { eps };
                kick(pi, score, h);
            }
        }
        Integrator::Omelyan => {
            let l = OMELYAN_LAMBDA;
            kick(pi, score, l * eps);
            for step in 0..n_steps {
                drift(phi, pi, 0.5 * eps);
                eval(target, phi, score);
                kick(pi, score, (1.0 - 2.0 * l) * eps);
                drift(phi, pi, 0.5 * eps);
                log_p = eval(target, phi, score);
                let h = if step + 1 == n_steps { l * eps } else { 2.0 * l * eps };
                kick(pi, score, h);
            }
        }
    }
    log_p
}
