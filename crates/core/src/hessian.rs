//! Exact Hessian-vector products of a target's energy, and the shared check
//! of an implementation against finite differences of the score.
//!
//! For a target p̃(x) = exp(−u(x)) (u = S = −log p̃, docs/THEORY.md §1.1, §3.7) the
//! Hessian-vector product is
//!
//!   (∇²u(x) v)ᵢ = Σⱼ ∂²u/∂xᵢ∂xⱼ (x) vⱼ = −Σⱼ ∂²log p̃/∂xᵢ∂xⱼ (x) vⱼ,
//!
//! the directional derivative of minus the score along v:
//! ∇²u(x) v = −d/dt ∇log p̃(x + t v) at t = 0. Samplers that differentiate
//! through Langevin steps (whose Jacobian is I − ε∇²u) need it, e.g. the
//! stochastic normalizing flows of `fieldflow-snf`.

use crate::Target;
use ndarray::{Array1, ArrayView1, ArrayViewMut1};

/// Exact Hessian-vector products ∇²u(x)·v of the energy u = −log p̃ of a
/// [`Target`] (see the module docs). The trait is object safe, and a
/// `&dyn HessianVector` offers the [`Target`] methods as well.
pub trait HessianVector: Target {
    /// Overwrites `out` with ∇²ₓ u(x) · v, u(x) = −log p̃(x) (the Hessian of
    /// the *energy*, i.e. minus the Hessian of log p̃). Every entry of `out`
    /// is written; its previous content is ignored.
    ///
    /// # Panics
    /// If `x`, `v` or `out` do not have length `dim()`.
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, out: ArrayViewMut1<f64>);
}

/// Step h of the central differences in [`check_hvp_against_score_differences`].
pub const HVP_CHECK_STEP: f64 = 1e-5;

/// Compares `target.hvp(x, v)` with central differences of the score along v,
///
///   ∇²u(x) v ≈ −(∇log p̃(x + h v) − ∇log p̃(x − h v)) / (2h),  h = [`HVP_CHECK_STEP`],
///
/// (truncation error O(h²), rounding O(ε‖∇log p̃‖/h)) and returns the relative
/// error
///
///   ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞),  a = hvp, b = finite differences
///
/// (0 if both vanish). The output buffer is filled with NaN before the call,
/// so an implementation that accumulates into `out` instead of overwriting
/// it returns NaN (an error no tolerance accepts). A test helper shared by
/// the crates that implement [`HessianVector`]; it allocates.
///
/// # Panics
/// If `x` or `v` do not have length `target.dim()`.
pub fn check_hvp_against_score_differences(target: &dyn HessianVector, x: ArrayView1<f64>, v: ArrayView1<f64>) -> f64 {
    let d = target.dim();
    assert_eq!(x.len(), d, "x has the wrong dimension");
    assert_eq!(v.len(), d, "v has the wrong dimension");
    let mut hv = Array1::from_elem(d, f64::NAN);
    target.hvp(x, v, hv.view_mut());
    if hv.iter().any(|e| e.is_nan()) {
        return f64::NAN;
    }
    let h = HVP_CHECK_STEP;
    let (mut sp, mut sm) = (Array1::zeros(d), Array1::zeros(d));
    target.log_prob_and_score((&x + &(&v * h)).view(), sp.view_mut());
    target.log_prob_and_score((&x - &(&v * h)).view(), sm.view_mut());
    let fd = (sm - sp) / (2.0 * h);
    let norm = |a: &Array1<f64>| a.iter().fold(0.0_f64, |m, e| m.max(e.abs()));
    let scale = norm(&hv).max(norm(&fd));
    let diff = hv.iter().zip(&fd).fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
    if scale == 0.0 {
        0.0
    } else {
        diff / scale
    }
}
