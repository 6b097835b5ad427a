//! Exact Hessian-vector products of a target's energy.
//!
//! For a target p̃(x) = exp(−u(x)) (u = S = −log p̃, docs/THEORY.md §1.1, §3.7) the
//! Hessian-vector product is
//!
//!   (∇²u(x) v)ᵢ = Σⱼ ∂²u/∂xᵢ∂xⱼ (x) vⱼ = −Σⱼ ∂²log p̃/∂xᵢ∂xⱼ (x) vⱼ,
//!
//! the directional derivative of minus the score along v:
//! ∇²u(x) v = −d/dt ∇log p̃(x + t v) at t = 0. Samplers that differentiate
//! through Langevin steps (whose Jacobian is I − ε∇²u) need it, e.g. the
//! stochastic normalizing flows of `fieldflow-snf`. Implementations are
//! checked against central differences of the score along v by the dev-only
//! `fieldflow-testkit` (`hvp_rel_err`).

use crate::Target;
use ndarray::{ArrayView1, ArrayViewMut1};

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
