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
//!
//! **On a mode boundary** ([`laplace_on_boundary`], `mixture.boundary`):
//! the same Newton over every coordinate but x_p, held at the boundary's
//! value (the pinned row and column of H + λI replaced by the identity and
//! ∇u_p by 0, so δ_p = 0): x* minimizes u on the hyperplane x_p = c. There
//! u need not have a minimum in x_p — at b = 0 the chain's point is a
//! saddle — so the Gaussian keeps H's block of the free coordinates (the
//! constrained Laplace approximation, positive definite at a constrained
//! minimum) and replaces the precision of x_p given the others, the Schur
//! complement s = H_pp − h_pᵀ H_ff⁻¹ h_p, by |s|: H' = H + (|s| − s) e_p e_pᵀ.
//! A flat s (|s| below 10⁻¹² of the diagonal's scale) is an error.

use fieldflow_core::{ConfigError, Target};
use fieldflow_flows::Boundary;
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
    let (x, h, iterations) = newton(target, start.to_owned(), None)?;
    let l = cholesky(&h).ok_or_else(|| {
        laplace_error(
            "the point Newton reached is not a local maximum of the density (its Hessian is not positive definite)",
        )
    })?;
    Ok(Laplace {
        t: inverse_sqrt(&l)?,
        mode: x,
        iterations,
    })
}

/// The Gaussian on the mode boundary x_`site` = `value`, Newton from
/// `start` with that coordinate set to `value` (module docs): `mode` the
/// minimum of −log p̃ on the hyperplane, TTᵀ = H'⁻¹.
///
/// # Errors
/// As [`laplace`], with "local maximum" on the hyperplane; a flat Schur
/// complement; `site` out of range.
pub fn laplace_on_boundary(
    target: &dyn Target,
    start: ArrayView1<f64>,
    site: usize,
    value: f64,
) -> Result<Laplace, ConfigError> {
    if site >= start.len() {
        return Err(laplace_error(&format!(
            "boundary site {site} is not < d = {}",
            start.len()
        )));
    }
    let mut x0 = start.to_owned();
    x0[site] = value;
    let (x, mut h, iterations) = newton(target, x0, Some(site))?;
    let lf = cholesky(&pinned(&h, site)).ok_or_else(|| {
        laplace_error(
            "the point Newton reached on the boundary is not a local maximum of the density there (its Hessian \
             over the other coordinates is not positive definite)",
        )
    })?;
    let mut hp = h.column(site).to_owned();
    hp[site] = 0.0;
    let schur = h[(site, site)] - hp.dot(&cholesky_solve(&lf, hp.view()));
    let scale = h.diag().iter().map(|v| v.abs()).sum::<f64>() / h.nrows() as f64;
    if !(schur.abs() > 1e-12 * scale) {
        return Err(laplace_error(&format!(
            "the density is flat across the boundary at site {site} (Schur complement {schur:e})"
        )));
    }
    h[(site, site)] += schur.abs() - schur;
    let l = cholesky(&h).ok_or_else(|| laplace_error("the boundary's Hessian is not positive definite (round-off)"))?;
    Ok(Laplace {
        t: inverse_sqrt(&l)?,
        mode: x,
        iterations,
    })
}

/// The Laplace approximation from `start` as the k-th of several: an
/// error when Newton reaches one of the `earlier` modes again (two starts
/// in one basin would give one mode twice and miss another).
///
/// # Errors
/// As [`laplace`], or a mode already in `earlier`.
pub fn laplace_new_mode(
    target: &dyn Target,
    start: ArrayView1<f64>,
    k: usize,
    earlier: &[ArrayView1<f64>],
) -> Result<Laplace, ConfigError> {
    let lap = laplace(target, start).map_err(|e| laplace_error(&format!("component {k}: {}", e.problem)))?;
    if let Some(j) = earlier.iter().position(|m| same_point(*m, lap.mode.view())) {
        return Err(laplace_error(&format!(
            "components {j} and {k} reach the same mode from their starting points"
        )));
    }
    Ok(lap)
}

/// The Gaussians of constant starts (`mixture.starts`, `lrds.laplace`):
/// one per c, the Laplace approximation of the mode Newton reaches from
/// c·𝟙 in dimension `d` (distinct modes, [`laplace_new_mode`]), and with
/// `boundary` a last one on it ([`laplace_on_boundary`], Newton from the
/// most probable of those modes).
///
/// # Errors
/// As [`laplace_new_mode`]; a boundary's errors are named `…boundary`.
pub fn laplace_from_starts(
    target: &dyn Target,
    d: usize,
    starts: &[f64],
    boundary: Option<Boundary>,
) -> Result<Vec<Laplace>, ConfigError> {
    let mut found: Vec<Laplace> = Vec::with_capacity(starts.len() + 1);
    for (k, &c) in starts.iter().enumerate() {
        let earlier: Vec<ArrayView1<f64>> = found.iter().map(|l| l.mode.view()).collect();
        let lap = laplace_new_mode(target, Array1::from_elem(d, c).view(), k, &earlier)?;
        found.push(lap);
    }
    if let Some(b) = boundary {
        let best = found
            .iter()
            .map(|l| (l, target.log_prob(l.mode.view())))
            .fold(None::<(&Laplace, f64)>, |a, c| match a {
                Some(a) if a.1 >= c.1 => Some(a),
                _ => Some(c),
            })
            .ok_or_else(|| ConfigError::new("boundary", b.to_string(), "needs starts for the modes beside it"))?;
        let start = best.0.mode.clone();
        let lap = laplace_on_boundary(target, start.view(), b.site, b.value)
            .map_err(|e| ConfigError::new("boundary", b.to_string(), e.problem))?;
        found.push(lap);
    }
    Ok(found)
}

/// Whether two Newton end points are one mode (agreement far beyond any
/// spread, within the 10⁻¹⁰ convergence of [`laplace`] and round-off).
fn same_point(a: ArrayView1<f64>, b: ArrayView1<f64>) -> bool {
    let reach = 1.0 + a.iter().chain(b.iter()).fold(0.0_f64, |m, v| m.max(v.abs()));
    a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < 1e-6 * reach)
}

fn laplace_error(what: &str) -> ConfigError {
    ConfigError::new("mixture.affine", "laplace", what.to_string())
}

/// `h` with row and column `site` replaced by those of the identity.
fn pinned(h: &Array2<f64>, site: usize) -> Array2<f64> {
    let mut a = h.clone();
    a.row_mut(site).fill(0.0);
    a.column_mut(site).fill(0.0);
    a[(site, site)] = 1.0;
    a
}

/// Damped Newton on u = −log p̃ from `x` (module docs), coordinate `pin`
/// held fixed: the end point, its Hessian (all coordinates) and the
/// iterations used.
fn newton(
    target: &dyn Target,
    mut x: Array1<f64>,
    pin: Option<usize>,
) -> Result<(Array1<f64>, Array2<f64>, usize), ConfigError> {
    let d = x.len();
    let (mut u, mut g) = energy(target, &x);
    if !u.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Err(laplace_error(
            "the target's density or score is not finite at the starting point",
        ));
    }
    let mut lambda = 0.0;
    for it in 0..MAX_NEWTON {
        let mut h = hessian(target, &x);
        if let Some(p) = pin {
            h = pinned(&h, p);
            g[p] = 0.0;
        }
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
                return Err(laplace_error(&format!("Newton found no descent step (iteration {it})")));
            }
        };
        let size = delta.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let reach = 1.0 + xn.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        (x, u, g) = (xn, un, gn);
        lambda = if lambda < 1e-9 * scale { 0.0 } else { lambda / 10.0 };
        if size < 1e-10 * reach {
            let h = hessian(target, &x);
            return Ok((x, h, it + 1));
        }
    }
    Err(laplace_error(&format!(
        "Newton did not converge in {MAX_NEWTON} iterations"
    )))
}

/// T lower triangular with TTᵀ = (LLᵀ)⁻¹: the inverse column by column,
/// symmetrized, then its Cholesky factor.
fn inverse_sqrt(l: &Array2<f64>) -> Result<Array2<f64>, ConfigError> {
    let d = l.nrows();
    let mut sigma = Array2::zeros((d, d));
    let mut e = Array1::zeros(d);
    for j in 0..d {
        e[j] = 1.0;
        sigma.column_mut(j).assign(&cholesky_solve(l, e.view()));
        e[j] = 0.0;
    }
    let st = sigma.t().to_owned();
    let sigma = (sigma + st) * 0.5;
    cholesky(&sigma).ok_or_else(|| laplace_error("the inverse Hessian is not positive definite (round-off)"))
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

    /// On a Gaussian the boundary point is the conditional mean given
    /// x_p = c, μ + Σ_{·p}(c − μ_p)/Σ_pp, and the Schur complement 1/Σ_pp is
    /// positive, so no flip: TTᵀ = Σ.
    #[test]
    fn on_a_gaussian_the_boundary_point_is_the_conditional_mean() {
        let sigma = Array2::from_shape_vec((3, 3), vec![1.0, 0.8, 0.3, 0.8, 1.0, 0.5, 0.3, 0.5, 0.6]).unwrap();
        let mean = Array1::from(vec![1.0, -2.0, 0.5]);
        let t = GaussianMixture::new(vec![mean.clone()], vec![Covariance::Full(sigma.clone())], vec![1.0]).unwrap();
        let (p, c) = (1, 0.25);
        let lap = laplace_on_boundary(&t, Array1::from(vec![5.0, 5.0, -5.0]).view(), p, c).unwrap();
        let expected = &mean + &(sigma.column(p).to_owned() * ((c - mean[p]) / sigma[(p, p)]));
        assert!(
            (&lap.mode - &expected).iter().all(|v| v.abs() < 1e-9),
            "{} vs {expected}",
            lap.mode
        );
        let tt = lap.t.dot(&lap.t.t());
        assert!((&tt - &sigma).iter().all(|v| v.abs() < 1e-7), "{tt}");
    }

    /// The chain at b = 0 pinned at φ_49 = 0: a saddle (the field would
    /// rather leave zero), so the precision of φ_49 given the rest is
    /// flipped. Against the chain's exact Hessian-vector product:
    /// (TTᵀ)⁻¹ = H + δ e_p e_pᵀ with δ = 2|s| > 0, i.e. H TTᵀ e_j − e_j is
    /// −δ (TTᵀ e_j)_p e_p, the same δ for every j; the score vanishes on the
    /// free coordinates.
    #[test]
    fn the_chain_boundary_is_a_saddle_whose_pinned_precision_is_flipped() {
        let chain = Phi4Field1d::new(100, 0.1, 20.0, 0.0).unwrap();
        let p = 49;
        let lap = laplace_on_boundary(&chain, Array1::from_elem(100, 1.0).view(), p, 0.0).unwrap();
        assert_eq!(lap.mode[p], 0.0);
        assert!(lap.mode[20] > 0.3, "{}", lap.mode);
        let mut score = Array1::zeros(100);
        chain.log_prob_and_score(lap.mode.view(), score.view_mut());
        let worst = (0..100).filter(|&i| i != p).fold(0.0_f64, |m, i| m.max(score[i].abs()));
        assert!(worst < 1e-6, "score off the boundary site: {worst:e}");
        let (mut e, mut he) = (Array1::zeros(100), Array1::zeros(100));
        let mut deltas = Vec::new();
        for j in 0..100 {
            e.fill(0.0);
            e[j] = 1.0;
            let v = lap.t.dot(&lap.t.t().dot(&e));
            chain.hvp(lap.mode.view(), v.view(), he.view_mut());
            let r = &e - &he;
            let off = (0..100).filter(|&i| i != p).fold(0.0_f64, |m, i| m.max(r[i].abs()));
            assert!(off < 1e-6, "column {j}: residual off the pinned site {off:e}");
            deltas.push(r[p] / v[p]);
        }
        let delta = deltas[p];
        assert!(delta > 0.1, "δ = {delta}: no flip at a saddle");
        assert!(deltas.iter().all(|d| (d - delta).abs() < 1e-5 * delta), "{deltas:?}");
    }
}
