//! Energies of the stochastic blocks and the Hessian-vector capability.
//!
//! A stochastic block at schedule point λ ∈ [0, 1] acts on the interpolated
//! energy (docs/THEORY.md §6.4)
//!
//!   u_λ(x) = (1 − λ) u_base(x) + λ u_target(x),
//!   u_base(x) = ‖x‖² / (2σ²),  u_target(x) = −log p̃(x),
//!
//! with gradient ∇u_λ = (1 − λ) x/σ² − λ ∇log p̃(x) and Hessian-vector product
//! ∇²u_λ v = (1 − λ) v/σ² + λ ∇²u_target v. Additive constants of u_λ (the
//! normalization of the base, log Z of the target) never matter: Langevin
//! dynamics sees only ∇u_λ and Metropolis only differences of u_λ.
//!
//! [`HessianVector`] is the optional capability that exact path-KL / path-ML
//! gradients through Langevin and MALA blocks need (the Jacobian of a
//! Langevin step is I − ε∇²u_λ). The trait lives in `fieldflow-core`
//! (re-exported here) and is implemented analytically next to each target:
//! core's `IsotropicGaussian`; the `Gaussian`, `GaussianMixture`,
//! `DoubleWell` and `Phi4Field1d` of `fieldflow-targets` (every synthetic
//! target, also reachable as `SyntheticTarget::hessian_vector`); and the
//! lattice `Phi4` of `fieldflow-lattice`. A target without it can still be
//! sampled with path weights, but the compiler refuses to train through its
//! Langevin blocks.

use fieldflow_core::Target;
use ndarray::{ArrayView1, ArrayViewMut1, Zip};

/// Exact Hessian-vector products ∇²u·v of the target energy u = −log p̃,
/// defined in core and implemented next to each target.
pub use fieldflow_core::HessianVector;

/// u_λ for one block (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Energy<'a, T> {
    pub target: &'a T,
    pub lambda: f64,
    pub inv_s2: f64,
}

impl<T: Target> Energy<'_, T> {
    /// u_λ(x).
    pub fn value(&self, x: ArrayView1<f64>) -> f64 {
        let r2: f64 = x.iter().map(|v| v * v).sum();
        let base = 0.5 * r2 * self.inv_s2;
        if self.lambda == 0.0 {
            return base;
        }
        (1.0 - self.lambda) * base - self.lambda * self.target.log_prob(x)
    }

    /// Overwrites `g` with ∇u_λ(x) and returns u_λ(x).
    pub fn value_and_grad(&self, x: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> f64 {
        let r2: f64 = x.iter().map(|v| v * v).sum();
        let base = 0.5 * r2 * self.inv_s2;
        let (l, b) = (self.lambda, 1.0 - self.lambda);
        if l == 0.0 {
            Zip::from(&mut g).and(&x).for_each(|gi, &xi| *gi = xi * self.inv_s2);
            return base;
        }
        let log_p = self.target.log_prob_and_score(x, g.view_mut());
        Zip::from(&mut g)
            .and(&x)
            .for_each(|gi, &xi| *gi = b * xi * self.inv_s2 - l * *gi);
        b * base - l * log_p
    }
}

impl<T: HessianVector> Energy<'_, T> {
    /// Overwrites `out` with ∇²u_λ(x) v.
    pub fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        let (l, b) = (self.lambda, 1.0 - self.lambda);
        if l == 0.0 {
            Zip::from(&mut out).and(&v).for_each(|o, &vi| *o = vi * self.inv_s2);
            return;
        }
        self.target.hvp(x, v, out.view_mut());
        Zip::from(&mut out)
            .and(&v)
            .for_each(|o, &vi| *o = l * *o + b * vi * self.inv_s2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::IsotropicGaussian;
    use fieldflow_targets::{DoubleWell, Gaussian};
    use fieldflow_testkit::{central_gradient, hvp_rel_err, FD_STEP};
    use ndarray::{array, Array1};

    /// ∇²u v against central differences of ∇u (rel err < 1e-7, no floor).
    fn check_hvp<T: HessianVector>(t: &T, xs: &[Array1<f64>], lambda: f64) {
        let e = Energy {
            target: t,
            lambda,
            inv_s2: 1.0 / 1.7f64.powi(2),
        };
        let d = t.dim();
        for (k, x) in xs.iter().enumerate() {
            let v = Array1::from_shape_fn(d, |i| ((i + k) as f64 * 0.7).sin() + 0.3);
            // Score of exp(−u) = −∇u, the field hvp_rel_err differentiates.
            let minus_grad = |y: &[f64], s: &mut [f64]| {
                e.value_and_grad(y.into(), s.into());
                s.iter_mut().for_each(|si| *si = -*si);
            };
            let (xs, vs) = (x.as_slice().unwrap(), v.as_slice().unwrap());
            let err = hvp_rel_err(xs, vs, |out| e.hvp(x.view(), v.view(), out.into()), minus_grad);
            assert!(err < 1e-7, "hvp at {x} along {v}: rel err {err:e}");
            // The gradient itself against differences of the value.
            let mut g = Array1::zeros(d);
            e.value_and_grad(x.view(), g.view_mut());
            let fd = central_gradient(|y| e.value(y.into()), xs, FD_STEP);
            for i in 0..d {
                assert!(
                    (g[i] - fd[i]).abs() < 1e-6 * (1.0 + fd[i].abs()),
                    "grad {g} vs fd {fd:?}"
                );
            }
        }
    }

    #[test]
    fn hessian_vector_products_match_finite_differences() {
        let xs = vec![array![0.3, -1.2], array![-1.7, 0.4], array![2.1, 2.0]];
        for lambda in [0.0, 0.4, 1.0] {
            check_hvp(&DoubleWell::default(), &xs, lambda);
            let g = Gaussian::new(array![1.0, -0.5], array![[1.3, 0.4], [0.4, 0.6]]).unwrap();
            check_hvp(&g, &xs, lambda);
            check_hvp(
                &IsotropicGaussian {
                    dim: 2,
                    mean: 0.5,
                    sigma: 0.8,
                },
                &xs,
                lambda,
            );
        }
    }
}
