//! A Gaussian mixture fitted to samples by expectation–maximization: the
//! reference model of LRDS (learned reference-based diffusion sampler,
//! arXiv 2410.19449), whose first step fits a mixture to samples from the
//! target's high-density regions (e.g. an MCMC ensemble).
//!
//! **Model.** q(x) = Σₖ πₖ N(x; μₖ, Σₖ), k = 1…K, full covariances.
//!
//! **EM.** With responsibilities r_{ik} = πₖ N(xᵢ; μₖ, Σₖ) / q(xᵢ) (E step,
//! computed in log space: log N = −½(d log 2π + log det Σₖ + ‖Lₖ⁻¹(xᵢ − μₖ)‖²)
//! with Σₖ = LₖLₖᵀ), the M step maximizes the expected complete-data log
//! likelihood: Nₖ = Σᵢ r_{ik}, πₖ = Nₖ/n, μₖ = Σᵢ r_{ik} xᵢ / Nₖ,
//! Σₖ = Σᵢ r_{ik}(xᵢ − μₖ)(xᵢ − μₖ)ᵀ / Nₖ + ε I. Each iteration does not
//! decrease the mean log likelihood ℓ = (1/n) Σᵢ log q(xᵢ) (for ε = 0; the
//! ridge ε keeps Σₖ positive definite when a component collapses); the
//! iteration stops when ℓ changes by less than `tol` or after `max_iter`.
//!
//! **Start.** k-means++ seeding from the samples (first centre uniform, each
//! next one drawn ∝ squared distance to the nearest chosen centre), every
//! covariance the samples' covariance, equal weights; deterministic given
//! the seed.
//!
//! **Restarts.** EM finds a local maximum of ℓ. When two seeds fall in one
//! of several well-separated clusters (the D² rule does that with a small
//! probability that grows with unequal cluster sizes and with the number of
//! clusters), one component ends up covering two clusters and another
//! splitting one. That happened in 2 of the 18 LRDS benchmark fits. With
//! `restarts` = R > 1 the fit is repeated from R seedings (the first from
//! `seed` itself, restart r from `seed.child(r)`) and the one of highest
//! final ℓ is kept.

use fieldflow_core::{ConfigError, Seed};
use fieldflow_stats::kmeans::kmeans_pp_seeds;
use fieldflow_targets::{Covariance, GaussianMixture};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::{Cholesky, Diag, SolveTriangular, UPLO};

/// Settings of [`fit_mixture`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmSettings {
    /// Components K.
    pub components: usize,
    /// Largest number of EM iterations.
    pub max_iter: usize,
    /// Stop when the mean log likelihood changes by less than this.
    pub tol: f64,
    /// Ridge ε added to every covariance.
    pub ridge: f64,
    /// Independent seedings; the fit of highest likelihood is kept (≥ 1).
    pub restarts: usize,
}

impl Default for EmSettings {
    fn default() -> Self {
        EmSettings {
            components: 2,
            max_iter: 500,
            tol: 1e-9,
            ridge: 1e-9,
            restarts: 1,
        }
    }
}

/// The result of [`fit_mixture`].
#[derive(Debug, Clone)]
pub struct EmFit {
    /// Weights πₖ.
    pub weights: Vec<f64>,
    /// Means μₖ.
    pub means: Vec<Array1<f64>>,
    /// Covariances Σₖ.
    pub covs: Vec<Array2<f64>>,
    /// Mean log likelihood of the samples under the fit, per iteration.
    pub log_likelihood: Vec<f64>,
    /// Whether the change of ℓ fell below `tol`.
    pub converged: bool,
}

impl EmFit {
    /// The fit as a target (density, score, exact sampler).
    ///
    /// # Errors
    /// If a covariance is not positive definite.
    pub fn mixture(&self) -> Result<GaussianMixture, ConfigError> {
        GaussianMixture::new(
            self.means.clone(),
            self.covs.iter().map(|c| Covariance::Full(c.clone())).collect(),
            self.weights.clone(),
        )
    }
}

/// Fits a K-component Gaussian mixture to the rows of `xs` (module docs).
///
/// # Errors
/// A one-line error naming the problem: no components, fewer samples than
/// components, no columns, a non-finite sample, bad `tol`/`ridge`, or a
/// covariance that stops being positive definite.
pub fn fit_mixture(xs: ArrayView2<f64>, settings: &EmSettings, seed: Seed) -> Result<EmFit, ConfigError> {
    if settings.restarts == 0 {
        return Err(ConfigError::new("em.restarts", 0, "must be >= 1"));
    }
    let mut best = fit_once(xs, settings, seed)?;
    for r in 1..settings.restarts {
        let fit = fit_once(xs, settings, seed.child(r as u64))?;
        if fit.log_likelihood.last() > best.log_likelihood.last() {
            best = fit;
        }
    }
    Ok(best)
}

/// One EM run from one k-means++ seeding.
fn fit_once(xs: ArrayView2<f64>, settings: &EmSettings, seed: Seed) -> Result<EmFit, ConfigError> {
    let (n, d) = xs.dim();
    let k = settings.components;
    if k == 0 {
        return Err(ConfigError::new("em.components", 0, "must be ≥ 1"));
    }
    if d == 0 {
        return Err(ConfigError::new(
            "em.samples",
            "0 columns",
            "need at least one dimension",
        ));
    }
    if n < k {
        return Err(ConfigError::new(
            "em.samples",
            n,
            format!("fewer samples than components ({k})"),
        ));
    }
    if xs.iter().any(|v| !v.is_finite()) {
        return Err(ConfigError::new(
            "em.samples",
            "…",
            "contain a value that is not finite",
        ));
    }
    if !(settings.tol >= 0.0) || !(settings.ridge >= 0.0) || !settings.ridge.is_finite() {
        return Err(ConfigError::new(
            "em.tol / em.ridge",
            format!("{} / {}", settings.tol, settings.ridge),
            "must be finite numbers ≥ 0",
        ));
    }
    // Start: k-means++ centres, the samples' covariance, equal weights.
    let centres = kmeans_pp_seeds(xs, k, &mut seed.rng());
    let mean_all = xs.mean_axis(Axis(0)).expect("n ≥ 1");
    let centred = &xs - &mean_all;
    let mut cov_all = centred.t().dot(&centred) / n as f64;
    for i in 0..d {
        cov_all[[i, i]] += settings.ridge.max(1e-12 * cov_all[[i, i]].abs());
    }
    let mut fit = EmFit {
        weights: vec![1.0 / k as f64; k],
        means: centres.iter().map(|&c| xs.row(c).to_owned()).collect(),
        covs: vec![cov_all; k],
        log_likelihood: Vec::new(),
        converged: false,
    };
    let mut log_r = Array2::<f64>::zeros((n, k));
    for _ in 0..settings.max_iter {
        // E step: Z = (X − 1μᵀ) L⁻ᵀ, one matrix product per component
        // (L⁻¹ from a triangular solve against I), q_i = ‖z_i‖².
        for j in 0..k {
            let l = fit.covs[j]
                .cholesky(UPLO::Lower)
                .map_err(|_| ConfigError::new(format!("em.component {j}"), "covariance", "not positive definite"))?;
            let log_det: f64 = 2.0 * l.diag().iter().map(|v| v.ln()).sum::<f64>();
            let c = fit.weights[j].ln() - 0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det);
            let l_inv = l
                .solve_triangular(UPLO::Lower, Diag::NonUnit, &Array2::eye(d))
                .map_err(|_| ConfigError::new(format!("em.component {j}"), "covariance", "not positive definite"))?;
            let z = (&xs - &fit.means[j]).dot(&l_inv.t());
            for (i, zi) in z.rows().into_iter().enumerate() {
                log_r[[i, j]] = c - 0.5 * zi.dot(&zi);
            }
        }
        let mut ll = 0.0;
        for mut row in log_r.rows_mut() {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            ll += lse;
            row.mapv_inplace(|v| (v - lse).exp());
        }
        ll /= n as f64;
        let prev = fit.log_likelihood.last().copied();
        fit.log_likelihood.push(ll);
        if let Some(p) = prev {
            if (ll - p).abs() < settings.tol {
                fit.converged = true;
                break;
            }
        }
        // M step (log_r now holds the responsibilities).
        for j in 0..k {
            let r = log_r.column(j);
            let nk: f64 = r.sum().max(1e-300);
            fit.weights[j] = nk / n as f64;
            let mu = xs.t().dot(&r) / nk;
            // Σ = WᵀW / Nₖ with the rows of W = √r_i (x_i − μ), symmetrized.
            let mut w = &xs - &mu;
            for (mut row, &ri) in w.rows_mut().into_iter().zip(r.iter()) {
                row *= ri.sqrt();
            }
            let wtw = w.t().dot(&w);
            let mut cov = (&wtw + &wtw.t()) / (2.0 * nk);
            for a in 0..d {
                cov[[a, a]] += settings.ridge;
            }
            fit.means[j] = mu;
            fit.covs[j] = cov;
        }
    }
    Ok(fit)
}
