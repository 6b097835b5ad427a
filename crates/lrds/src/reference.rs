//! The Gaussian-mixture reference of LRDS and its exact diffusion
//! (docs/THEORY.md §6.14.1–2).
//!
//! **Marginals.** The variance-preserving forward process
//! dX = −½β(t)X dt + √β(t) dW maps X₀ to X_t = α_t X₀ + σ_t ε with
//! α_t = exp(−½∫₀ᵗβ), σ_t² = 1 − α_t² ([`NoiseSchedule`]). Started at the
//! reference μ_ref = Σⱼ πⱼ N(mⱼ, Σⱼ) every marginal is again a mixture,
//! p_t^ref = Σⱼ πⱼ N(α_t mⱼ, Cⱼ(t)), Cⱼ(t) = α_t² Σⱼ + σ_t² I. With the
//! eigendecomposition Σⱼ = Uⱼ diag(λⱼ) Uⱼᵀ every Cⱼ(t) is diagonal in the
//! basis Uⱼ with eigenvalues c_{ji}(t) = α_t² λ_{ji} + σ_t², so densities and
//! the score ∇ log p_t^ref(x) = −Σⱼ rⱼ(x) Cⱼ(t)⁻¹(x − α_t mⱼ) (rⱼ the
//! responsibilities) cost two products with Uⱼ per component, at any t.
//!
//! **Exact reverse kernel.** Between grid times s < t the forward transition
//! is x_t = a x_s + √(1 − a²) ε, a = α_t/α_s. For one component the pair
//! (x_s, x_t) is jointly Gaussian, so by Bayes' rule the reference's own
//! reverse transition p^ref(x_s | x_t) = p_s^ref(x_s) q(x_t | x_s) / p_t^ref(x_t)
//! is the mixture Σⱼ ρⱼ(x_t) N(μⱼ(x_t), Vⱼ) with ρⱼ ∝ πⱼ N(x_t; α_t mⱼ, Cⱼ(t))
//! and, in the basis Uⱼ (z = Uⱼᵀ x_t, m̃ = Uⱼᵀ mⱼ, b² = 1 − a²):
//! vᵢ = c_i(s) b² / c_i(t), μ̃ᵢ = (b² α_s m̃ᵢ + a c_i(s) zᵢ) / c_i(t).
//! Chaining these kernels from an exact draw of p_T^ref gives exact draws of
//! μ_ref on any grid.

use fieldflow_core::{ConfigError, Target};
use fieldflow_diffusion::NoiseSchedule;
use fieldflow_imh::isir_select;
use fieldflow_stats::log_sum_exp;
use fieldflow_targets::{Covariance, GaussianMixture};
use ndarray::{Array2, ArrayView1, ArrayViewMut1};
use ndarray_linalg::{Eigh, UPLO};
use rand::Rng;
use rand_distr::StandardNormal;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// One component in its eigenbasis.
#[derive(Debug, Clone, PartialEq)]
struct Component {
    /// log πⱼ.
    log_weight: f64,
    /// Uⱼ: column i is the eigenvector of λᵢ.
    u: Array2<f64>,
    /// Eigenvalues λᵢ of Σⱼ.
    lambda: Vec<f64>,
    /// m̃ = Uⱼᵀ mⱼ.
    mean_rot: Vec<f64>,
}

/// The Gaussian-mixture reference with its exact forward marginals and
/// reverse kernels (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct GmmReference {
    dim: usize,
    schedule: NoiseSchedule,
    comps: Vec<Component>,
    mixture: GaussianMixture,
}

/// Scratch of one row: the rotated inputs and log-weights per component.
#[derive(Debug, Clone)]
pub struct RefWork {
    /// Uⱼᵀ x per component.
    z: Vec<Vec<f64>>,
    /// Uⱼᵀ y per component (the point of [`GmmReference::log_reverse`]).
    zy: Vec<Vec<f64>>,
    /// Log-weights per component (normalized by [`GmmReference::prepare`]).
    log_rho: Vec<f64>,
    /// A rotated vector.
    w: Vec<f64>,
    /// A vector in the original basis.
    v: Vec<f64>,
    /// Log-weights of the posterior components.
    terms: Vec<f64>,
    /// The step prepared: (α_s, α_t) of the kernel from t to s.
    alphas: (f64, f64),
}

impl GmmReference {
    /// The reference `mixture` diffused by `schedule` (variance preserving).
    ///
    /// # Errors
    /// A variance-exploding schedule (the reverse kernel above assumes the
    /// VP process), invalid schedule parameters, or a covariance whose
    /// eigenvalues are not all finite and > 0.
    pub fn new(mixture: &GaussianMixture, schedule: NoiseSchedule) -> Result<Self, ConfigError> {
        schedule.validate()?;
        if !matches!(schedule, NoiseSchedule::VariancePreserving { .. }) {
            return Err(ConfigError::new(
                "schedule.kind",
                "variance_exploding",
                "LRDS uses the variance-preserving process (its end law is N(0, I))",
            ));
        }
        let dim = mixture.dim();
        let mut comps = Vec::with_capacity(mixture.n_components());
        for (j, &w) in mixture.weights().iter().enumerate() {
            let (lambda, u) = mixture
                .cov(j)
                .eigh(UPLO::Lower)
                .map_err(|e| ConfigError::new(format!("reference.covs[{j}]"), "…", format!("eigh failed: {e}")))?;
            if let Some(l) = lambda.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
                return Err(ConfigError::new(
                    format!("reference.covs[{j}]"),
                    format!("eigenvalue {l}"),
                    "must be positive definite",
                ));
            }
            let mean_rot = u.t().dot(&mixture.mean(j)).to_vec();
            comps.push(Component {
                log_weight: w.ln(),
                u,
                lambda: lambda.to_vec(),
                mean_rot,
            });
        }
        Ok(GmmReference {
            dim,
            schedule,
            comps,
            mixture: mixture.clone(),
        })
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The forward process.
    pub fn schedule(&self) -> NoiseSchedule {
        self.schedule
    }

    /// The reference mixture μ_ref (time 0).
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    /// Number of components.
    pub fn n_components(&self) -> usize {
        self.comps.len()
    }

    /// Scratch buffers for this reference (one per chunk of rows).
    pub fn work(&self) -> RefWork {
        RefWork {
            z: vec![vec![0.0; self.dim]; self.comps.len()],
            zy: vec![vec![0.0; self.dim]; self.comps.len()],
            log_rho: vec![0.0; self.comps.len()],
            w: vec![0.0; self.dim],
            v: vec![0.0; self.dim],
            terms: vec![0.0; self.comps.len()],
            alphas: (1.0, 1.0),
        }
    }

    fn alpha_sigma2(&self, t: f64) -> (f64, f64) {
        (self.schedule.alpha(t), self.schedule.sigma2(t))
    }

    /// Fills `work.z[j] = Uⱼᵀ x` and `work.log_rho[j] = log πⱼ N(x; α_t mⱼ, Cⱼ(t))`;
    /// returns log p_t^ref(x) and normalizes `log_rho` to log-responsibilities.
    fn rotate_and_weigh(&self, t: f64, x: &[f64], work: &mut RefWork) -> f64 {
        let (alpha, s2) = self.alpha_sigma2(t);
        for (j, c) in self.comps.iter().enumerate() {
            rotate_t(&c.u, x, &mut work.z[j]);
            let mut l = c.log_weight;
            for i in 0..self.dim {
                let var = alpha * alpha * c.lambda[i] + s2;
                let r = work.z[j][i] - alpha * c.mean_rot[i];
                l -= 0.5 * (LN_2PI + var.ln() + r * r / var);
            }
            work.log_rho[j] = l;
        }
        normalize_log(&mut work.log_rho)
    }

    /// log p_t^ref(x), the exact marginal at time t.
    pub fn log_marginal(&self, t: f64, x: ArrayView1<f64>, work: &mut RefWork) -> f64 {
        let x = x.as_slice().expect("contiguous row");
        self.rotate_and_weigh(t, x, work)
    }

    /// The log-responsibilities log ρⱼ(x) = log πⱼ N(x; α_t mⱼ, Cⱼ(t)) −
    /// log p_t^ref(x) of every component at time t (they sum to one in
    /// probability).
    pub fn log_responsibilities<'w>(&self, t: f64, x: ArrayView1<f64>, work: &'w mut RefWork) -> &'w [f64] {
        let x = x.as_slice().expect("contiguous row");
        self.rotate_and_weigh(t, x, work);
        &work.log_rho
    }

    /// Each component alone, as a reference of weight one (same schedule).
    ///
    /// # Errors
    /// None in practice (every component was checked by
    /// [`GmmReference::new`]); the error of [`GaussianMixture::new`] is
    /// passed on.
    pub fn components(&self) -> Result<Vec<GmmReference>, ConfigError> {
        (0..self.comps.len())
            .map(|j| {
                let one = GaussianMixture::new(
                    vec![self.mixture.mean(j).to_owned()],
                    vec![Covariance::Full(self.mixture.cov(j))],
                    vec![1.0],
                )?;
                GmmReference::new(&one, self.schedule)
            })
            .collect()
    }

    /// Overwrites `score` with ∇ log p_t^ref(x) and returns log p_t^ref(x).
    pub fn log_marginal_and_score(
        &self,
        t: f64,
        x: ArrayView1<f64>,
        mut score: ArrayViewMut1<f64>,
        work: &mut RefWork,
    ) -> f64 {
        let xs = x.as_slice().expect("contiguous row");
        let lp = self.rotate_and_weigh(t, xs, work);
        let (alpha, s2) = self.alpha_sigma2(t);
        score.fill(0.0);
        for (j, c) in self.comps.iter().enumerate() {
            let r = work.log_rho[j].exp();
            for i in 0..self.dim {
                let var = alpha * alpha * c.lambda[i] + s2;
                work.w[i] = -r * (work.z[j][i] - alpha * c.mean_rot[i]) / var;
            }
            rotate(&c.u, &work.w, &mut work.v);
            for (s, v) in score.iter_mut().zip(&work.v) {
                *s += v;
            }
        }
        lp
    }

    /// An exact draw of p_t^ref into `x`; returns log p_t^ref(x).
    pub fn draw_marginal<R: Rng>(&self, t: f64, rng: &mut R, x: &mut [f64], work: &mut RefWork) -> f64 {
        let (alpha, s2) = self.alpha_sigma2(t);
        for (j, c) in self.comps.iter().enumerate() {
            work.log_rho[j] = c.log_weight;
        }
        let j = isir_select(&work.log_rho, rng.random::<f64>());
        let c = &self.comps[j];
        for i in 0..self.dim {
            let var = alpha * alpha * c.lambda[i] + s2;
            let e: f64 = rng.sample(StandardNormal);
            work.w[i] = alpha * c.mean_rot[i] + var.sqrt() * e;
        }
        rotate(&c.u, &work.w, x);
        self.rotate_and_weigh(t, x, work)
    }

    /// Prepares the exact reverse kernel p^ref(x_s | x_t), s < t, at `x_t`
    /// (module docs): rotations of x_t and the log-responsibilities ρⱼ(x_t).
    /// Returns log p_t^ref(x_t).
    pub fn prepare(&self, s: f64, t: f64, x_t: &[f64], work: &mut RefWork) -> f64 {
        work.alphas = (self.schedule.alpha(s), self.schedule.alpha(t));
        self.rotate_and_weigh(t, x_t, work)
    }

    /// Per-coordinate posterior (mean, variance) of component `c` for the
    /// prepared step, at rotated x_t = `z`.
    #[inline]
    fn posterior(&self, c: &Component, i: usize, z: f64, alphas: (f64, f64)) -> (f64, f64) {
        let (a_s, a_t) = alphas;
        let a = a_t / a_s;
        let b2 = 1.0 - a * a;
        let cs = a_s * a_s * c.lambda[i] + (1.0 - a_s * a_s);
        let ct = a_t * a_t * c.lambda[i] + (1.0 - a_t * a_t);
        ((b2 * a_s * c.mean_rot[i] + a * cs * z) / ct, cs * b2 / ct)
    }

    /// Draws y ~ p^ref(· | x_t) of the prepared step into `y`.
    pub fn draw_reverse<R: Rng>(&self, work: &mut RefWork, rng: &mut R, y: &mut [f64]) {
        let j = isir_select(&work.log_rho, rng.random::<f64>());
        let c = &self.comps[j];
        for i in 0..self.dim {
            let (m, v) = self.posterior(c, i, work.z[j][i], work.alphas);
            let e: f64 = rng.sample(StandardNormal);
            work.w[i] = m + v.sqrt() * e;
        }
        rotate(&c.u, &work.w, y);
    }

    /// log p^ref(y | x_t) of the prepared step; with `grad`, overwrites it
    /// with ∇_y log p^ref(y | x_t) = −Σⱼ r̃ⱼ Vⱼ⁻¹(y − μⱼ) (r̃ⱼ the posterior
    /// responsibilities given y).
    pub fn log_reverse(&self, work: &mut RefWork, y: &[f64], grad: Option<&mut [f64]>) -> f64 {
        // log ρⱼ + log N(y; μⱼ, Vⱼ), with Uⱼᵀ y in work.w (reused per component).
        let mut terms = std::mem::take(&mut work.terms);
        for (j, c) in self.comps.iter().enumerate() {
            rotate_t(&c.u, y, &mut work.zy[j]);
            let mut l = work.log_rho[j];
            for i in 0..self.dim {
                let (m, v) = self.posterior(c, i, work.z[j][i], work.alphas);
                let r = work.zy[j][i] - m;
                l -= 0.5 * (LN_2PI + v.ln() + r * r / v);
            }
            terms[j] = l;
        }
        let lp = normalize_log(&mut terms);
        if let Some(g) = grad {
            g.fill(0.0);
            for (j, c) in self.comps.iter().enumerate() {
                let r = terms[j].exp();
                for i in 0..self.dim {
                    let (m, v) = self.posterior(c, i, work.z[j][i], work.alphas);
                    work.w[i] = -r * (work.zy[j][i] - m) / v;
                }
                rotate(&c.u, &work.w, &mut work.v);
                for (gi, vi) in g.iter_mut().zip(&work.v) {
                    *gi += vi;
                }
            }
        }
        work.terms = terms;
        lp
    }
}

/// out = Uᵀ x.
fn rotate_t(u: &Array2<f64>, x: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (a, row) in u.rows().into_iter().enumerate() {
        let xa = x[a];
        for (o, &ua) in out.iter_mut().zip(row.iter()) {
            *o += ua * xa;
        }
    }
}

/// out = U w.
fn rotate(u: &Array2<f64>, w: &[f64], out: &mut [f64]) {
    for (o, row) in out.iter_mut().zip(u.rows()) {
        *o = row.iter().zip(w).map(|(a, b)| a * b).sum();
    }
}

/// Replaces `l` by l − LSE(l) and returns LSE(l).
fn normalize_log(l: &mut [f64]) -> f64 {
    let lse = log_sum_exp(l);
    for v in l.iter_mut() {
        *v -= lse;
    }
    lse
}
