//! Gaussian mixtures (docs/THEORY.md §3.2), **normalized** (log Z = 0):
//!
//! p(x) = Σₖ wₖ N(x; μₖ, Σₖ),  log p(x) = log Σₖ exp lₖ(x),
//! lₖ(x) = log wₖ − ½ (d log 2π + log det Σₖ) − ½ (x − μₖ)ᵀ Σₖ⁻¹ (x − μₖ),
//!
//! evaluated with a streaming log-sum-exp (no overflow or underflow far from
//! the modes, no allocation per sample). The score is the responsibility-
//! weighted sum of the component scores,
//!
//! ∇ₓ log p = Σₖ rₖ(x) (−Σₖ⁻¹ (x − μₖ)),  rₖ = exp(lₖ − log p).
//!
//! Differentiating once more (∇rₖ = rₖ (sₖ − g)) gives the Hessian of the
//! energy u = −log p applied to v, with component scores
//! sₖ = −Σₖ⁻¹ (x − μₖ) and g = Σₖ rₖ sₖ = ∇ₓ log p:
//!
//! ∇²u v = Σₖ rₖ Σₖ⁻¹ v − Σₖ rₖ sₖ (sₖ·v) + g (g·v)
//!
//! (the responsibility-weighted precision minus the responsibility-weighted
//! covariance of the component scores), also without allocation and with
//! the responsibilities taken from the log-sum-exp.
//!
//! Covariances are isotropic (σₖ² I, the fast path) or full (Cholesky through
//! ndarray-linalg). Exact samples: k ~ Categorical(w), then x = μₖ + Lₖ z.
//! Modes are the components; a sample is assigned to the **nearest mean**
//! (Euclidean, docs/THEORY.md §3.8), and the exact mode weights are the wₖ.
//!
//! Presets (docs/THEORY.md §3.3): [`GaussianMixture::mog4`],
//! [`GaussianMixture::mog8`], [`GaussianMixture::two_modes`], and the
//! mixtures of separation s along a line, [`GaussianMixture::separated`].

use crate::linalg::{format_matrix, format_vec, Factor};
use crate::modes::{impl_synthetic_target, Modes};
use fieldflow_core::{ConfigError, ExactSampler, HessianVector, Par, Seed, Target};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, ArrayViewMut2};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

/// Largest accepted |Σₖ wₖ − 1| for mixture weights (they are then rescaled
/// to sum to 1 exactly up to rounding).
pub const WEIGHT_SUM_TOL: f64 = 1e-9;

/// The covariance of one mixture component, as given to
/// [`GaussianMixture::new`].
#[derive(Debug, Clone, PartialEq)]
pub enum Covariance {
    /// σ² I with the given variance σ² > 0.
    Isotropic(f64),
    /// diag(v) with variances vᵢ > 0.
    Diagonal(Array1<f64>),
    /// A full symmetric positive-definite matrix.
    Full(Array2<f64>),
}

/// A factored component covariance.
#[derive(Debug, Clone, PartialEq)]
enum ComponentCov {
    /// σ² I.
    Isotropic { var: f64, sd: f64 },
    /// Dense Σ = L Lᵀ.
    Full(Factor),
}

#[derive(Debug, Clone, PartialEq)]
struct Component {
    mean: Array1<f64>,
    cov: ComponentCov,
    /// log wₖ − ½ (d log 2π + log det Σₖ).
    log_c: f64,
}

impl Component {
    /// q = (x − μ)ᵀ Σ⁻¹ (x − μ).
    #[inline]
    fn quad(&self, x: ArrayView1<f64>) -> f64 {
        match &self.cov {
            ComponentCov::Isotropic { var, .. } => {
                let mut r2 = 0.0;
                for (xi, mi) in x.iter().zip(self.mean.iter()) {
                    r2 += (xi - mi) * (xi - mi);
                }
                r2 / var
            }
            ComponentCov::Full(f) => f.quad(x, self.mean.view()),
        }
    }

    /// lₖ(x).
    #[inline]
    fn log_density(&self, x: ArrayView1<f64>) -> f64 {
        self.log_c - 0.5 * self.quad(x)
    }

    /// acc += w · (−Σ⁻¹ (x − μ)).
    #[inline]
    fn add_score(&self, x: ArrayView1<f64>, acc: &mut ArrayViewMut1<f64>, w: f64) {
        match &self.cov {
            ComponentCov::Isotropic { var, .. } => {
                let c = w / var;
                for i in 0..x.len() {
                    acc[i] -= c * (x[i] - self.mean[i]);
                }
            }
            ComponentCov::Full(f) => {
                f.quad_and_grad(x, self.mean.view(), acc, w);
            }
        }
    }

    /// acc += w · Σ⁻¹ v; returns sₖ·v = −(x − μ)ᵀ Σ⁻¹ v (P = Σ⁻¹ is
    /// exactly symmetric).
    #[inline]
    fn add_precision_times(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, acc: &mut ArrayViewMut1<f64>, w: f64) -> f64 {
        let mut sv = 0.0;
        match &self.cov {
            ComponentCov::Isotropic { var, .. } => {
                let c = w / var;
                for i in 0..x.len() {
                    acc[i] += c * v[i];
                    sv -= (x[i] - self.mean[i]) * v[i];
                }
                sv / var
            }
            ComponentCov::Full(f) => {
                for i in 0..x.len() {
                    let row = f.precision.row(i);
                    let mut t = 0.0;
                    for j in 0..x.len() {
                        t += row[j] * v[j];
                    }
                    acc[i] += w * t;
                    sv -= (x[i] - self.mean[i]) * t;
                }
                sv
            }
        }
    }

    /// In place: z → μ + L z.
    #[inline]
    fn transform(&self, mut x: ArrayViewMut1<f64>) {
        match &self.cov {
            ComponentCov::Isotropic { sd, .. } => {
                for i in 0..x.len() {
                    x[i] = self.mean[i] + sd * x[i];
                }
            }
            ComponentCov::Full(f) => f.transform(x, self.mean.view()),
        }
    }

    fn describe_cov(&self) -> String {
        match &self.cov {
            ComponentCov::Isotropic { var, .. } => format!("{var}·I"),
            ComponentCov::Full(f) => format_matrix(f.cov.view()),
        }
    }
}

/// Adds log-density `l` to the streaming log-sum-exp (m, s) with
/// log Σ = m + log s, and returns the factor by which earlier terms were
/// rescaled and the weight exp(l − m) of the new term (after the update).
#[inline]
fn lse_push(m: &mut f64, s: &mut f64, l: f64) -> (f64, f64) {
    if l > *m {
        let rescale = (*m - l).exp();
        *s = *s * rescale + 1.0;
        *m = l;
        (rescale, 1.0)
    } else {
        let w = (l - *m).exp();
        *s += w;
        (1.0, w)
    }
}

/// A normalized Gaussian mixture Σₖ wₖ N(μₖ, Σₖ) (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    dim: usize,
    components: Vec<Component>,
    weights: Vec<f64>,
    /// Cumulative weights, last entry 1.
    cumulative: Vec<f64>,
    /// Preset name shown by `describe`, if any.
    pub(crate) label: Option<String>,
    /// The exact probabilities of the nearest-mean regions, where a preset
    /// knows them in closed form ([`GaussianMixture::separated`]); `None`:
    /// the component weights stand for them.
    pub(crate) region_weights: Option<Vec<f64>>,
}

impl GaussianMixture {
    /// Σₖ `weights[k]` N(`means[k]`, `covs[k]`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field: `means` (empty, unequal lengths:
    /// `means[k]`, non-finite), `covs` (count differs from `means`, or
    /// `covs[k]` of the wrong size, non-positive, not symmetric or not
    /// positive definite), `weights` (count differs, `weights[k]` ≤ 0 or
    /// non-finite, or a sum that differs from 1 by more than
    /// [`WEIGHT_SUM_TOL`]).
    pub fn new(means: Vec<Array1<f64>>, covs: Vec<Covariance>, weights: Vec<f64>) -> Result<Self, ConfigError> {
        let k = means.len();
        if k == 0 {
            return Err(ConfigError::new("means", "[]", "needs at least one component"));
        }
        let dim = means[0].len();
        if dim == 0 {
            return Err(ConfigError::new("means[0]", "[]", "needs at least one entry"));
        }
        for (i, m) in means.iter().enumerate() {
            if m.len() != dim {
                return Err(ConfigError::new(
                    format!("means[{i}]"),
                    format_vec(&m.to_vec()),
                    format!("has length {} but means[0] has length {dim}", m.len()),
                ));
            }
            if m.iter().any(|v| !v.is_finite()) {
                return Err(ConfigError::new(
                    format!("means[{i}]"),
                    format_vec(&m.to_vec()),
                    "entries must be finite",
                ));
            }
        }
        if covs.len() != k {
            return Err(ConfigError::new(
                "covs",
                format!("<{} entries>", covs.len()),
                format!("needs one covariance per mean ({k})"),
            ));
        }
        if weights.len() != k {
            return Err(ConfigError::new(
                "weights",
                format_vec(&weights),
                format!("needs one weight per mean ({k})"),
            ));
        }
        for (i, &w) in weights.iter().enumerate() {
            if !(w.is_finite() && w > 0.0) {
                return Err(ConfigError::new(format!("weights[{i}]"), w, "must be finite and > 0"));
            }
        }
        let sum: f64 = weights.iter().sum();
        if (sum - 1.0).abs() > WEIGHT_SUM_TOL {
            return Err(ConfigError::new(
                "weights",
                format_vec(&weights),
                format!("must sum to 1 (they sum to {sum})"),
            ));
        }
        let weights: Vec<f64> = weights.iter().map(|w| w / sum).collect();
        let log_2pi = (2.0 * PI).ln();
        let mut components = Vec::with_capacity(k);
        for (i, (mean, cov)) in means.into_iter().zip(covs).enumerate() {
            let field = format!("covs[{i}]");
            let cov = match cov {
                Covariance::Isotropic(var) => {
                    if !(var.is_finite() && var > 0.0) {
                        return Err(ConfigError::new(field, var, "variance must be finite and > 0"));
                    }
                    ComponentCov::Isotropic { var, sd: var.sqrt() }
                }
                Covariance::Diagonal(v) => {
                    if v.len() != dim {
                        return Err(ConfigError::new(
                            field,
                            format_vec(&v.to_vec()),
                            format!("needs {dim} variances (got {})", v.len()),
                        ));
                    }
                    if let Some(j) = v.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
                        return Err(ConfigError::new(
                            format!("{field}[{j}]"),
                            v[j],
                            "variance must be finite and > 0",
                        ));
                    }
                    ComponentCov::Full(Factor::new(Array2::from_diag(&v).view(), dim, &field)?)
                }
                Covariance::Full(m) => ComponentCov::Full(Factor::new(m.view(), dim, &field)?),
            };
            let log_det = match &cov {
                ComponentCov::Isotropic { var, .. } => dim as f64 * var.ln(),
                ComponentCov::Full(f) => f.log_det,
            };
            let log_c = weights[i].ln() - 0.5 * (dim as f64 * log_2pi + log_det);
            components.push(Component { mean, cov, log_c });
        }
        let mut cumulative = Vec::with_capacity(k);
        let mut acc = 0.0;
        for w in &weights {
            acc += w;
            cumulative.push(acc);
        }
        cumulative[k - 1] = 1.0;
        Ok(GaussianMixture {
            dim,
            components,
            weights,
            cumulative,
            label: None,
            region_weights: None,
        })
    }

    /// Number of components K.
    pub fn n_components(&self) -> usize {
        self.components.len()
    }

    /// The mean of component `k`.
    ///
    /// # Panics
    /// If `k` ≥ K.
    pub fn mean(&self, k: usize) -> ArrayView1<'_, f64> {
        self.components[k].mean.view()
    }

    /// The covariance of component `k` as a dense matrix.
    ///
    /// # Panics
    /// If `k` ≥ K.
    pub fn cov(&self, k: usize) -> Array2<f64> {
        match &self.components[k].cov {
            ComponentCov::Isotropic { var, .. } => Array2::eye(self.dim) * *var,
            ComponentCov::Full(f) => f.cov.clone(),
        }
    }

    /// The mixture weights wₖ (summing to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Writes the responsibilities rₖ(x) = wₖ N(x; μₖ, Σₖ) / p(x) into `out`.
    ///
    /// # Panics
    /// If `out.len()` ≠ K or `x.len()` ≠ dim.
    pub fn responsibilities(&self, x: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        assert_eq!(out.len(), self.components.len(), "out needs one entry per component");
        assert_eq!(x.len(), self.dim, "x has the wrong dimension");
        for (o, c) in out.iter_mut().zip(&self.components) {
            *o = c.log_density(x);
        }
        let m = out.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        out.mapv_inplace(|l| (l - m).exp());
        let s = out.sum();
        out /= s;
    }

    /// The component of largest responsibility (argmaxₖ lₖ(x)), an
    /// alternative to the nearest-mean rule of [`Modes::assign`].
    pub fn max_responsibility(&self, x: ArrayView1<f64>) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (k, c) in self.components.iter().enumerate() {
            let l = c.log_density(x);
            if l > best.1 {
                best = (k, l);
            }
        }
        best.0
    }
}

impl Target for GaussianMixture {
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        assert_eq!(x.len(), self.dim, "x has the wrong dimension");
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for c in &self.components {
            lse_push(&mut m, &mut s, c.log_density(x));
        }
        m + s.ln()
    }

    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        assert_eq!(x.len(), self.dim, "x has the wrong dimension");
        assert_eq!(score.len(), self.dim, "score has the wrong dimension");
        score.fill(0.0);
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for c in &self.components {
            let (rescale, w) = lse_push(&mut m, &mut s, c.log_density(x));
            if rescale != 1.0 {
                score *= rescale;
            }
            c.add_score(x, &mut score, w);
        }
        score /= s;
        m + s.ln()
    }

    /// Normalized: log Z = 0.
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }

    fn describe(&self) -> String {
        let means: Vec<String> = self.components.iter().map(|c| format_vec(&c.mean.to_vec())).collect();
        let covs: Vec<String> = self.components.iter().map(|c| c.describe_cov()).collect();
        format!(
            "{} Gaussian mixture (normalized): dim = {}, weights = {}, means = [{}], covs = [{}]",
            self.label.as_deref().unwrap_or("general"),
            self.dim,
            format_vec(&self.weights),
            means.join(", "),
            covs.join(", ")
        )
    }
}

impl HessianVector for GaussianMixture {
    /// ∇²u v = Σₖ rₖ Σₖ⁻¹ v − Σₖ rₖ sₖ (sₖ·v) + g (g·v), sₖ = −Σₖ⁻¹ (x − μₖ),
    /// g = Σₖ rₖ sₖ, rₖ = exp(lₖ − log p) (see the module docs). Three passes
    /// over the components, no allocation: the log-sum-exp of the lₖ; then
    /// rₖ Σₖ⁻¹ v − rₖ (sₖ·v) sₖ with g·v = Σₖ rₖ (sₖ·v); then (g·v) rₖ sₖ.
    /// Components whose responsibility underflows to 0 are skipped.
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        assert_eq!(x.len(), self.dim, "x has the wrong dimension");
        assert_eq!(v.len(), self.dim, "v has the wrong dimension");
        assert_eq!(out.len(), self.dim, "out has the wrong dimension");
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
        for c in &self.components {
            lse_push(&mut m, &mut s, c.log_density(x));
        }
        let log_p = m + s.ln();
        out.fill(0.0);
        let mut gv = 0.0;
        for c in &self.components {
            let r = (c.log_density(x) - log_p).exp();
            if r == 0.0 {
                continue;
            }
            let sv = c.add_precision_times(x, v, &mut out, r);
            c.add_score(x, &mut out, -r * sv);
            gv += r * sv;
        }
        for c in &self.components {
            let r = (c.log_density(x) - log_p).exp();
            if r != 0.0 {
                c.add_score(x, &mut out, gv * r);
            }
        }
    }
}

impl ExactSampler for GaussianMixture {
    /// Chunk k of the batch draws from stream `seed.child(k)`; per row one
    /// uniform picks the component, then d normals give x = μₖ + Lₖ z.
    ///
    /// # Panics
    /// If the width of `xs` differs from the dimension.
    fn sample_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, par: Par) {
        assert_eq!(xs.ncols(), self.dim, "batch width differs from dim");
        let mut dummy = Array1::zeros(xs.nrows());
        par.rows_mut_to_values(xs, dummy.view_mut(), |k, _, mut x, _| {
            let mut rng = seed.child(k as u64).rng();
            for mut row in x.rows_mut() {
                let u: f64 = rng.random();
                let j = self
                    .cumulative
                    .partition_point(|&c| c <= u)
                    .min(self.components.len() - 1);
                row.mapv_inplace(|_| StandardNormal.sample(&mut rng));
                self.components[j].transform(row);
            }
        });
    }
}

impl Modes for GaussianMixture {
    fn n_modes(&self) -> usize {
        self.components.len()
    }

    /// The exact probability of each nearest-mean region where a preset
    /// computes it ([`GaussianMixture::separated`]), otherwise the component
    /// weights wₖ, which differ from it by the mass of the components
    /// beyond the region boundaries: 2e-8 for MOG-4, 5e-6 for MOG-8, 4e-6
    /// for two modes at d = 1 and below 1e-9 at d ≥ 2.
    fn true_weights(&self) -> Option<Vec<f64>> {
        Some(self.region_weights.clone().unwrap_or_else(|| self.weights.clone()))
    }

    /// The nearest mean in Euclidean distance (docs/THEORY.md §3.8); ties go to
    /// the lower index.
    fn assign(&self, x: ArrayView1<f64>) -> usize {
        let mut best = (0, f64::INFINITY);
        for (k, c) in self.components.iter().enumerate() {
            let mut r2 = 0.0;
            for (xi, mi) in x.iter().zip(c.mean.iter()) {
                r2 += (xi - mi) * (xi - mi);
            }
            if r2 < best.1 {
                best = (k, r2);
            }
        }
        best.0
    }
}

impl_synthetic_target!(GaussianMixture, exact);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use ndarray::{array, Axis};

    fn general() -> GaussianMixture {
        GaussianMixture::new(
            vec![array![-1.0, 0.5, 0.0], array![1.5, -0.5, 1.0], array![0.0, 2.0, -1.0]],
            vec![
                Covariance::Full(array![[1.0, 0.3, 0.0], [0.3, 0.8, -0.2], [0.0, -0.2, 0.6]]),
                Covariance::Isotropic(0.4),
                Covariance::Diagonal(array![0.5, 1.2, 0.3]),
            ],
            vec![0.5, 0.3, 0.2],
        )
        .unwrap()
    }

    fn draw(t: &dyn ExactSampler, dim: usize, n: usize, seed: u64) -> Array2<f64> {
        let mut xs = Array2::zeros((n, dim));
        t.sample_batch(Seed::new(seed), xs.view_mut(), Par::default());
        xs
    }

    #[test]
    fn scores_match_finite_differences() {
        assert_score_matches_fd(&general(), 1.5, 30, 2);
        assert_score_matches_fd(&GaussianMixture::mog4(), 5.0, 30, 3);
        assert_score_matches_fd(&GaussianMixture::mog8(), 8.0, 30, 4);
        // Between and around the modes of two-modes (d = 16).
        let t = GaussianMixture::two_modes(16).unwrap();
        let pts = gaussian_points(Array1::from_elem(16, 1.0 / 3.0).view(), 0.6, 30, 5);
        assert_score_matches_fd_at(&t, pts.view());
        let pts = draw(&t, 16, 20, 6);
        assert_score_matches_fd_at(&t, pts.view());
    }

    /// Near the modes (exact samples), between them and far away (|x − c| = 30,
    /// responsibilities saturated); returns the largest relative error.
    fn hvp_error_near_between_and_far(t: &GaussianMixture, spread: f64, seed: u64) -> f64 {
        let d = t.dim();
        let center = (0..t.n_components()).fold(Array1::<f64>::zeros(d), |a, k| a + &t.mean(k) * t.weights()[k]);
        let near = draw(t, d, 40, seed);
        let between = gaussian_points(center.view(), spread, 40, seed + 1);
        let far = shell_points(Array1::zeros(d).view(), 30.0, 40, seed + 2);
        let mut worst: f64 = 0.0;
        for (k, pts) in [near, between, far].iter().enumerate() {
            worst = worst.max(assert_hvp_matches_fd_at(t, pts.view(), seed + 10 + k as u64));
        }
        let name = t.label.clone().unwrap_or_else(|| format!("general mixture (d = {d})"));
        println!("{name}: max hvp relative error {worst:e}");
        worst
    }

    /// Two 2D components, one with a full and one with an isotropic covariance.
    fn full_and_isotropic() -> GaussianMixture {
        GaussianMixture::new(
            vec![array![0.0, 1.0], array![2.0, -1.0]],
            vec![
                Covariance::Full(array![[1.0, 0.7], [0.7, 1.0]]),
                Covariance::Isotropic(0.3),
            ],
            vec![0.25, 0.75],
        )
        .unwrap()
    }

    #[test]
    fn hessian_vector_products_match_score_differences() {
        hvp_error_near_between_and_far(&GaussianMixture::mog4(), 5.0, 100);
        hvp_error_near_between_and_far(&GaussianMixture::mog8(), 8.0, 200);
        hvp_error_near_between_and_far(&GaussianMixture::two_modes(16).unwrap(), 0.6, 300);
        hvp_error_near_between_and_far(&GaussianMixture::two_modes(2).unwrap(), 0.6, 350);
        hvp_error_near_between_and_far(&general(), 1.5, 400);
        let t = full_and_isotropic();
        hvp_error_near_between_and_far(&t, 1.5, 500);
        // On the boundary between the two modes (r = ½, ½: x = t𝟙 with
        // t = ⅓ + σ² ln 2/(2d)), where the score-covariance term is largest.
        let t = GaussianMixture::two_modes(4).unwrap();
        let mid = Array1::from_elem(4, 1.0 / 3.0 + 0.05 * 2.0f64.ln() / 8.0).insert_axis(Axis(0));
        let mut r = Array1::zeros(2);
        t.responsibilities(mid.row(0), r.view_mut());
        assert!((r[0] - 0.5).abs() < 1e-12, "{r}");
        assert_hvp_matches_fd_at(&t, mid.view(), 600);
        // As a SyntheticTarget.
        let st: &dyn crate::SyntheticTarget = &t;
        assert!(st.hessian_vector().is_some());
    }

    #[test]
    fn far_from_the_modes_log_p_and_score_stay_finite() {
        let t = GaussianMixture::mog8();
        let x = array![1e3, -2e3];
        let mut s = Array1::zeros(2);
        let lp = t.log_prob_and_score(x.view(), s.view_mut());
        assert!(lp.is_finite() && lp < -1e5);
        assert!(s.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn mog4_log_z_matches_a_2d_grid() {
        let t = GaussianMixture::mog4();
        let grid = grid_log_z_2d(&t, (-10.0, 10.0), (-10.0, 10.0), 0.04);
        assert!(grid.abs() < 1e-9, "grid log Z = {grid}");
    }

    #[test]
    fn mog8_and_general_mixture_are_normalized_on_a_grid() {
        let t = GaussianMixture::mog8();
        let grid = grid_log_z_2d(&t, (-16.0, 16.0), (-16.0, 16.0), 0.05);
        assert!(grid.abs() < 1e-9, "grid log Z = {grid}");
        let t = full_and_isotropic();
        let grid = grid_log_z_2d(&t, (-9.0, 9.0), (-9.0, 9.0), 0.03);
        assert!(grid.abs() < 1e-9, "grid log Z = {grid}");
    }

    #[test]
    fn exact_samples_recover_weights_means_and_covariances() {
        let t = general();
        let n = 60_000;
        let xs = draw(&t, 3, n, 7);
        // Component labels by max responsibility are nearly exact here; use
        // moments of the whole mixture instead, which are known in closed form.
        let w = t.weights();
        let mean_true = (0..3).fold(Array1::<f64>::zeros(3), |a, k| a + &t.mean(k) * w[k]);
        let mut second = Array2::<f64>::zeros((3, 3));
        for k in 0..3 {
            let mk = t.mean(k).to_owned().insert_axis(Axis(1));
            second = second + (t.cov(k) + mk.dot(&mk.t())) * w[k];
        }
        let mt = mean_true.clone().insert_axis(Axis(1));
        let cov_true = second - mt.dot(&mt.t());
        let (m, c) = sample_moments(xs.view());
        for i in 0..3 {
            let se = (cov_true[[i, i]] / n as f64).sqrt();
            assert!((m[i] - mean_true[i]).abs() < 4.0 * se, "mean {m} vs {mean_true}");
            for j in 0..3 {
                // Loose bound for a non-Gaussian sample covariance: 4·sqrt((ΣᵢᵢΣⱼⱼ+Σᵢⱼ²)·2/n).
                let se = ((cov_true[[i, i]] * cov_true[[j, j]] + cov_true[[i, j]].powi(2)) * 2.0 / n as f64).sqrt();
                assert!((c[[i, j]] - cov_true[[i, j]]).abs() < 4.0 * se, "cov {c} vs {cov_true}");
            }
        }
    }

    #[test]
    fn mode_assignment_of_exact_samples_recovers_the_weights() {
        let n = 40_000;
        for (t, seed) in [
            (GaussianMixture::mog4(), 11),
            (GaussianMixture::mog8(), 12),
            (GaussianMixture::two_modes(32).unwrap(), 13),
        ] {
            let xs = draw(&t, t.dim(), n, seed);
            let f = t.mode_fractions(xs.view());
            assert_fractions_within_4_sigma(&f, &t.true_weights().unwrap(), n);
            // Within a mode, the samples have the component's mean.
            let labels = t.assign_batch(xs.view());
            let k = t.n_modes() - 1;
            let rows: Vec<usize> = (0..n).filter(|&i| labels[i] == k).collect();
            let sel = xs.select(Axis(0), &rows);
            let (m, _) = sample_moments(sel.view());
            let var = t.cov(k)[[0, 0]];
            for i in 0..t.dim() {
                let se = (var / rows.len() as f64).sqrt();
                assert!((m[i] - t.mean(k)[i]).abs() < 4.0 * se, "mode {k} mean {m}");
            }
        }
    }

    #[test]
    fn nearest_mean_and_max_responsibility_agree_on_equal_covariances() {
        let t = GaussianMixture::mog8();
        let xs = draw(&t, 2, 2000, 21);
        let mut r = Array1::zeros(8);
        for x in xs.rows() {
            t.responsibilities(x, r.view_mut());
            assert!((r.sum() - 1.0).abs() < 1e-12);
            // With equal covariances and weights the two rules coincide.
            assert_eq!(t.assign(x), t.max_responsibility(x));
        }
    }

    #[test]
    fn invalid_mixtures_name_the_field() {
        let m = || vec![array![0.0, 0.0], array![1.0, 1.0]];
        let iso = || vec![Covariance::Isotropic(1.0); 2];
        let e = GaussianMixture::new(m(), iso(), vec![0.5, 0.6]).unwrap_err();
        assert_eq!(e.field, "weights");
        let e = GaussianMixture::new(m(), iso(), vec![1.5, -0.5]).unwrap_err();
        assert_eq!(e.field, "weights[1]");
        let e = GaussianMixture::new(m(), iso(), vec![1.0]).unwrap_err();
        assert_eq!(e.field, "weights");
        let e = GaussianMixture::new(vec![array![0.0, 0.0], array![1.0]], iso(), vec![0.5, 0.5]).unwrap_err();
        assert_eq!(e.field, "means[1]");
        let e = GaussianMixture::new(
            m(),
            vec![
                Covariance::Isotropic(1.0),
                Covariance::Full(array![[1.0, 2.0], [2.0, 1.0]]),
            ],
            vec![0.5, 0.5],
        )
        .unwrap_err();
        assert_eq!(e.field, "covs[1]");
        assert!(e.problem.contains("positive definite"));
        let e = GaussianMixture::new(
            m(),
            vec![Covariance::Isotropic(0.0), Covariance::Isotropic(1.0)],
            vec![0.5, 0.5],
        )
        .unwrap_err();
        assert_eq!(e.field, "covs[0]");
        let e = GaussianMixture::new(
            m(),
            vec![Covariance::Isotropic(1.0), Covariance::Diagonal(array![1.0, 1.0, 1.0])],
            vec![0.5, 0.5],
        )
        .unwrap_err();
        assert_eq!(e.field, "covs[1]");
        assert_eq!(GaussianMixture::two_modes(0).unwrap_err().field, "dim");
    }
}
