//! Shared helpers of the unit tests (finite differences, grids, moments).

use fieldflow_core::{HessianVector, Seed, Target};
use fieldflow_testkit::{central_gradient_with_steps, hvp_rel_err, rel_err_with_floor, FD_STEP};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand_distr::{Distribution, StandardNormal};

/// Checks the score of `t` against central finite differences of log p̃ at
/// every row of `points` (step h·max(|xᵢ|, 1), h = [`FD_STEP`]):
/// ‖s − s_fd‖∞ ≤ 1e-7 · max(‖s‖∞, 1), and that the fused call returns log p̃
/// bit for bit.
pub fn assert_score_matches_fd_at(t: &dyn Target, points: ArrayView2<f64>) {
    let d = t.dim();
    let mut s = Array1::zeros(d);
    for x in points.rows() {
        let lp = t.log_prob_and_score(x, s.view_mut());
        assert_eq!(lp, t.log_prob(x), "fused log p differs from log_prob");
        let steps: Vec<f64> = x.iter().map(|xi| FD_STEP * xi.abs().max(1.0)).collect();
        let fd = central_gradient_with_steps(|y| t.log_prob(y.into()), &x.to_vec(), &steps);
        let rel = rel_err_with_floor(&fd, s.as_slice().unwrap(), 1.0);
        assert!(
            rel < 1e-7,
            "{}: score vs FD relative error {rel:e} at x = {x}",
            t.describe()
        );
    }
}

/// Checks `t.hvp` with the shared [`hvp_rel_err`] of `fieldflow-testkit`
/// at every row of `points`, each with its own direction v ~ N(0, I)
/// (seeded): relative error < 1e-6. Returns the largest relative error.
pub fn assert_hvp_matches_fd_at(t: &dyn HessianVector, points: ArrayView2<f64>, seed: u64) -> f64 {
    let dirs = gaussian_points(Array1::zeros(t.dim()).view(), 1.0, points.nrows(), seed);
    let mut worst: f64 = 0.0;
    for (x, v) in points.rows().into_iter().zip(dirs.rows()) {
        let err = hvp_error(t, x, v);
        assert!(
            err < 1e-6,
            "{}: hvp vs score differences relative error {err:e} at x = {x}, v = {v}",
            t.describe()
        );
        worst = worst.max(err);
    }
    worst
}

/// Relative error of `t.hvp(x, v)` against central differences of the score
/// along v (the shared [`hvp_rel_err`] of `fieldflow-testkit`).
pub fn hvp_error(t: &dyn HessianVector, x: ArrayView1<f64>, v: ArrayView1<f64>) -> f64 {
    hvp_rel_err(
        &x.to_vec(),
        &v.to_vec(),
        |out| t.hvp(x, v, out.into()),
        |y, s| t.log_prob_and_score(y.into(), s.into()),
    )
}

/// `n` points at distance `r` from `center` in uniformly random directions
/// (seeded), e.g. far from every mode of a mixture.
pub fn shell_points(center: ArrayView1<f64>, r: f64, n: usize, seed: u64) -> Array2<f64> {
    let mut pts = gaussian_points(Array1::zeros(center.len()).view(), 1.0, n, seed);
    for mut row in pts.rows_mut() {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.zip_mut_with(&center, |p, &c| *p = c + r * *p / norm);
    }
    pts
}

/// `n` points x = center + spread·z, z ~ N(0, I), for [`assert_score_matches_fd_at`].
pub fn gaussian_points(center: ArrayView1<f64>, spread: f64, n: usize, seed: u64) -> Array2<f64> {
    let mut rng = Seed::new(seed).rng();
    Array2::from_shape_fn((n, center.len()), |(_, j)| {
        let z: f64 = StandardNormal.sample(&mut rng);
        center[j] + spread * z
    })
}

/// Score check at `n` points N(0, spread² I) (seeded).
pub fn assert_score_matches_fd(t: &dyn Target, spread: f64, n: usize, seed: u64) {
    let pts = gaussian_points(Array1::zeros(t.dim()).view(), spread, n, seed);
    assert_score_matches_fd_at(t, pts.view());
}

/// log ∫∫ p̃ by the midpoint rule on a square grid of step `h` over the box
/// `xr × yr` (log-sum-exp, so large log p̃ do not overflow).
pub fn grid_log_z_2d(t: &dyn Target, xr: (f64, f64), yr: (f64, f64), h: f64) -> f64 {
    assert_eq!(t.dim(), 2);
    let nx = ((xr.1 - xr.0) / h).round() as usize;
    let ny = ((yr.1 - yr.0) / h).round() as usize;
    let mut vals = Vec::with_capacity(nx * ny);
    let mut x = Array1::zeros(2);
    for i in 0..nx {
        for j in 0..ny {
            x[0] = xr.0 + (i as f64 + 0.5) * h;
            x[1] = yr.0 + (j as f64 + 0.5) * h;
            vals.push(t.log_prob(x.view()));
        }
    }
    let m = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + vals.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + 2.0 * h.ln()
}

/// Sample mean and covariance (divided by n) of the rows of `xs`.
pub fn sample_moments(xs: ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = xs.nrows() as f64;
    let m = xs.sum_axis(ndarray::Axis(0)) / n;
    let c = &xs - &m;
    let cov = c.t().dot(&c) / n;
    (m, cov)
}

/// Asserts |f̂ₖ − wₖ| < 4 √(wₖ(1 − wₖ)/n) for every mode k.
pub fn assert_fractions_within_4_sigma(fractions: &[f64], weights: &[f64], n: usize) {
    assert_eq!(fractions.len(), weights.len());
    for (k, (f, w)) in fractions.iter().zip(weights).enumerate() {
        let sigma = (w * (1.0 - w) / n as f64).sqrt();
        assert!(
            (f - w).abs() <= 4.0 * sigma + 1e-12,
            "mode {k}: fraction {f}, weight {w}, sigma {sigma}"
        );
    }
}
