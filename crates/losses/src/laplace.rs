//! The Laplace approximation of a mode of a target (docs/THEORY.md §4.11),
//! the set-up of a mixture component with `affine = "laplace"`.
//!
//! From a start x₀ (a cluster's mean), damped Newton on the energy
//! u = −log p̃ reaches a local minimum x*; there H = ∇²u(x*) and the
//! component's map is x = x* + T y with T lower triangular, TTᵀ = H⁻¹
//! (Cholesky of H, its inverse, and the Cholesky of that), so the flow's
//! base N(0, I) is the Gaussian N(x*, H⁻¹).
//!
//! * **Hessian** by central differences of the score (any target with a
//!   score): column j = −(∇log p̃(x + hⱼeⱼ) − ∇log p̃(x − hⱼeⱼ)) / 2hⱼ,
//!   hⱼ = 10⁻⁵(1 + |xⱼ|), then symmetrized; 2d score evaluations. Its error
//!   only makes the proposal a little worse, never inexact: T is a fixed
//!   parameter of the density q that IMH and importance sampling correct.
//! * **Newton** (Levenberg–Marquardt damping): solve (H + λI)δ = −∇u,
//!   accept x + δ when u does not increase, else λ ← 10λ (from 10⁻⁶ of the
//!   mean diagonal); λ shrinks tenfold after every accepted step. Stops when
//!   max|δ| < 10⁻¹⁰(1 + max|x|), at most [`MAX_NEWTON`] iterations.
//! * The end point must have a positive definite H (else a saddle or a flat
//!   direction: an error naming it).

use fieldflow_core::{ConfigError, Target};
use ndarray::{Array1, Array2, ArrayView1};

/// Most Newton iterations.
pub const MAX_NEWTON: usize = 200;

/// A mode and the lower-triangular square root of its inverse Hessian.
#[derive(Debug, Clone)]
pub struct Laplace {
    /// x*, a local maximum of p̃.
    pub mode: Array1<f64>,
    /// T lower triangular with TTᵀ = (∇²(−log p̃)(x*))⁻¹.
    pub t: Array2<f64>,
    /// Newton iterations used.
    pub iterations: usize,
}

/// u = −log p̃(x) and ∇u.
fn energy(target: &dyn Target, x: &Array1<f64>) -> (f64, Array1<f64>) {
    let mut g = Array1::zeros(x.len());
    let lp = target.log_prob_and_score(x.view(), g.view_mut());
    g.mapv_inplace(|v| -v);
    (-lp, g)
}

/// ∇²u(x) by central differences of the score, symmetrized (module docs).
fn hessian(target: &dyn Target, x: &Array1<f64>) -> Array2<f64> {
    let d = x.len();
    let mut h = Array2::zeros((d, d));
    let mut xp = x.clone();
    for j in 0..d {
        let step = 1e-5 * (1.0 + x[j].abs());
        xp[j] = x[j] + step;
        let (_, gp) = energy(target, &xp);
        xp[j] = x[j] - step;
        let (_, gm) = energy(target, &xp);
        xp[j] = x[j];
        h.column_mut(j).assign(&((gp - gm) / (2.0 * step)));
    }
    let ht = h.t().to_owned();
    (h + ht) * 0.5
}

/// The lower Cholesky factor L (LLᵀ = a) of a symmetric matrix, or None
/// when it is not positive definite.
pub fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let d = a.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[(i, k)] * l[(j, k)]).sum();
            if i == j {
                let v = a[(i, i)] - s;
                if !(v.is_finite() && v > 0.0) {
                    return None;
                }
                l[(i, i)] = v.sqrt();
            } else {
                l[(i, j)] = (a[(i, j)] - s) / l[(j, j)];
            }
        }
    }
    Some(l)
}

/// x with LLᵀx = b.
fn cholesky_solve(l: &Array2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
    let d = b.len();
    let mut y = Array1::zeros(d);
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[(i, k)] * y[k]).sum();
        y[i] = (b[i] - s) / l[(i, i)];
    }
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[(k, i)] * y[k]).sum();
        y[i] = (y[i] - s) / l[(i, i)];
    }
    y
}

/// The Laplace approximation of the mode reached from `start` (module docs).
///
/// # Errors
/// A non-finite density at the start; no descent step (λ past 10¹² of
/// the Hessian's scale); an end point whose Hessian is not positive
/// definite; no convergence in [`MAX_NEWTON`] iterations.
pub fn laplace(target: &dyn Target, start: ArrayView1<f64>) -> Result<Laplace, ConfigError> {
    let err = |what: String| ConfigError::new("mixture.affine", "laplace", what);
    let d = start.len();
    let mut x = start.to_owned();
    let (mut u, mut g) = energy(target, &x);
    if !u.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Err(err(
            "the target's density or score is not finite at the cluster's mean".into()
        ));
    }
    let mut lambda = 0.0;
    for it in 0..MAX_NEWTON {
        let h = hessian(target, &x);
        let scale = (h.diag().iter().map(|v| v.abs()).sum::<f64>() / d as f64).max(1e-300);
        let (delta, xn, un, gn) = loop {
            let mut hl = h.clone();
            hl.diag_mut().mapv_inplace(|v| v + lambda);
            if let Some(l) = cholesky(&hl) {
                let delta = -cholesky_solve(&l, g.view());
                let xn = &x + &delta;
                let (un, gn) = energy(target, &xn);
                if un.is_finite() && un <= u + 1e-12 * u.abs().max(1.0) {
                    break (delta, xn, un, gn);
                }
            }
            lambda = if lambda == 0.0 { 1e-6 * scale } else { 10.0 * lambda };
            if lambda > 1e12 * scale {
                return Err(err(format!(
                    "Newton from the cluster's mean found no descent step (iteration {it})"
                )));
            }
        };
        let size = delta.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let reach = 1.0 + xn.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        (x, u, g) = (xn, un, gn);
        lambda = if lambda < 1e-9 * scale { 0.0 } else { lambda / 10.0 };
        if size < 1e-10 * reach {
            let h = hessian(target, &x);
            let l = cholesky(&h).ok_or_else(|| {
                err("the point Newton reached is not a local maximum of the density (its Hessian is not positive definite)".into())
            })?;
            // Σ = H⁻¹ column by column, then its lower Cholesky factor.
            let mut sigma = Array2::zeros((d, d));
            let mut e = Array1::zeros(d);
            for j in 0..d {
                e[j] = 1.0;
                sigma.column_mut(j).assign(&cholesky_solve(&l, e.view()));
                e[j] = 0.0;
            }
            let st = sigma.t().to_owned();
            let sigma = (sigma + st) * 0.5;
            let t = cholesky(&sigma)
                .ok_or_else(|| err("the inverse Hessian is not positive definite (round-off)".into()))?;
            return Ok(Laplace {
                mode: x,
                t,
                iterations: it + 1,
            });
        }
    }
    Err(err(format!("Newton did not converge in {MAX_NEWTON} iterations")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::HessianVector;
    use fieldflow_targets::mixture::Covariance;
    use fieldflow_targets::{GaussianMixture, Phi4Field1d};

    /// A Gaussian: one Newton step from anywhere, μ exact and TTᵀ = Σ (the
    /// Hessian by differences of an exactly linear score).
    #[test]
    fn a_gaussian_is_its_own_laplace_approximation() {
        let sigma = Array2::from_shape_vec((3, 3), vec![1.0, 0.8, 0.3, 0.8, 1.0, 0.5, 0.3, 0.5, 0.6]).unwrap();
        let mean = Array1::from(vec![1.0, -2.0, 0.5]);
        let t = GaussianMixture::new(vec![mean.clone()], vec![Covariance::Full(sigma.clone())], vec![1.0]).unwrap();
        let lap = laplace(&t, Array1::from(vec![5.0, 5.0, -5.0]).view()).unwrap();
        assert!(lap.iterations <= 3, "{} iterations", lap.iterations);
        assert!((&lap.mode - &mean).iter().all(|v| v.abs() < 1e-9), "{}", lap.mode);
        let tt = lap.t.dot(&lap.t.t());
        assert!((&tt - &sigma).iter().all(|v| v.abs() < 1e-7), "{tt}");
        assert!(
            (0..3).all(|i| (i + 1..3).all(|j| lap.t[(i, j)] == 0.0)),
            "T is lower triangular"
        );
    }

    /// The stiff 1D φ⁴ chain: from a rough positive profile Newton reaches
    /// the + phase, and TTᵀ inverts the chain's exact Hessian (its own
    /// Hessian-vector product, not the differences used here).
    #[test]
    fn the_chain_phase_and_its_exact_hessian() {
        let chain = Phi4Field1d::new(100, 0.1, 20.0, 0.025).unwrap();
        let lap = laplace(&chain, Array1::from_elem(100, 0.7).view()).unwrap();
        assert!(lap.mode[50] > 0.9 && lap.mode.iter().all(|v| *v > 0.0), "{}", lap.mode);
        let mut worst: f64 = 0.0;
        let mut e = Array1::zeros(100);
        let mut he = Array1::zeros(100);
        for j in 0..100 {
            e.fill(0.0);
            e[j] = 1.0;
            // H (T Tᵀ eⱼ) = eⱼ.
            let v = lap.t.dot(&lap.t.t().dot(&e));
            chain.hvp(lap.mode.view(), v.view(), he.view_mut());
            worst = worst.max((&he - &e).iter().fold(0.0, |m, x| m.max(x.abs())));
        }
        assert!(worst < 1e-6, "H T Tᵀ − I: {worst:e}");
    }

    /// At the chain's unstable middle, φ = 0 (a saddle of the double well at
    /// b = 0, gradient 0), Newton does not move and the point is refused.
    #[test]
    fn a_saddle_is_refused() {
        let chain = Phi4Field1d::new(100, 0.1, 20.0, 0.0).unwrap();
        let e = laplace(&chain, Array1::zeros(100).view()).unwrap_err();
        assert_eq!(e.field, "mixture.affine");
        assert!(e.problem.contains("not a local maximum"), "{e}");
    }
}
