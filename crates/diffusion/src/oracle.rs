//! The Gaussian-field oracle (docs/THEORY.md §6.11.4): a translation-invariant
//! Gaussian target N(0, C) with covariance eigenvalues c_k (momentum
//! order), e.g. the free field c_k = 1/(2(p̂_k² + m²)).
//!
//! * Exact score at time t: s(x, t) = −Σ_t⁻¹ x, multipliers
//!   m*_k(t) = −1/(α_t² c_k + σ_t²) ([`ExactScore`]).
//! * The denoising loss of any linear score with multipliers m, averaged over
//!   data and noise, is (λ/2V) [Σ_k (m_k² Σ_k + 2 m_k) + V/σ²]; its excess over
//!   the exact score is (λ/2V) Σ_k Σ_k (m_k − m*_k)² ([`crate::dsm::population`]).
//! * A linear score generates a Gaussian with eigenvalues v_k
//!   ([`crate::reverse::ReverseSampler::generated_variances`]), whose KL to
//!   the target per site is (1/2V) Σ_k [v_k/c_k − 1 − ln(v_k/c_k)].

use crate::model::FieldScore;
use crate::schedule::NoiseSchedule;
use crate::spectrum::{Spectrum, SpectrumWork};
use fieldflow_core::{ConfigError, ExactSampler, Par, Seed};
use fieldflow_lattice::FreeField;
use ndarray::{ArrayViewMut2, Axis};
use rand::Rng as _;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// A translation-invariant Gaussian target.
#[derive(Debug, Clone)]
pub struct GaussianField {
    spectrum: Arc<Spectrum>,
    c: Vec<f64>,
}

impl GaussianField {
    /// The free field of mass squared m² on the lattice of `spectrum`.
    ///
    /// # Errors
    /// m² ≤ 0.
    pub fn free_field(spectrum: Arc<Spectrum>, m2: f64) -> Result<Self, ConfigError> {
        let field = FreeField::new(spectrum.lattice().shape(), m2)?;
        let lattice = spectrum.lattice();
        let mut n = vec![0usize; lattice.dim()];
        let c = (0..lattice.volume())
            .map(|k| {
                lattice.coords(k, &mut n);
                field.momentum_propagator(&n)
            })
            .collect();
        Ok(GaussianField { spectrum, c })
    }

    /// Covariance eigenvalues c_k.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.c
    }

    /// The lattice's momentum space.
    pub fn spectrum(&self) -> &Arc<Spectrum> {
        &self.spectrum
    }

    /// KL(N(0, diag v) ‖ N(0, diag c)) per site.
    pub fn kl_per_site(&self, v: &[f64]) -> f64 {
        let sum: f64 = v
            .iter()
            .zip(&self.c)
            .map(|(&vk, &ck)| {
                let r = vk / ck;
                r - 1.0 - r.ln()
            })
            .sum();
        0.5 * sum / self.c.len() as f64
    }

    /// log N(x; 0, diag v) (normalized) for eigenvalues `v`.
    pub fn gaussian_log_density(spectrum: &Spectrum, v: &[f64], x: &[f64], work: &mut SpectrumWork) -> f64 {
        let q = spectrum.quadratic_form(v, x, work);
        let log_det: f64 = v.iter().map(|vk| (std::f64::consts::TAU * vk).ln()).sum();
        -0.5 * (q + log_det)
    }

    /// The exact normalized log density of the target at `x`.
    pub fn log_density(&self, x: &[f64], work: &mut SpectrumWork) -> f64 {
        Self::gaussian_log_density(&self.spectrum, &self.c, x, work)
    }
}

/// Exact draws x = C^{1/2} ξ (the symmetric square root, applied in
/// momentum space), one stream per chunk of `par`.
impl ExactSampler for GaussianField {
    fn sample_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, par: Par) {
        let v = self.c.len();
        assert_eq!(xs.ncols(), v, "rows differ from the lattice volume");
        let root: Vec<f64> = self.c.iter().map(|c| c.sqrt()).collect();
        let mut dummy = ndarray::Array1::<f64>::zeros(xs.nrows());
        par.rows_mut_to_values(xs.view_mut(), dummy.view_mut(), |chunk, _, mut rows, _| {
            let mut rng = seed.child(chunk as u64).rng();
            let mut work = SpectrumWork::default();
            let mut xi = vec![0.0; v];
            for mut row in rows.axis_iter_mut(Axis(0)) {
                for z in xi.iter_mut() {
                    *z = rng.sample(StandardNormal);
                }
                let x = row.as_slice_mut().expect("rows are contiguous");
                self.spectrum.apply(&root, &xi, x, &mut work);
            }
        });
    }
}

/// The exact score of a [`GaussianField`] under a [`NoiseSchedule`].
#[derive(Debug, Clone)]
pub struct ExactScore {
    /// The target.
    pub field: GaussianField,
    /// The forward process.
    pub schedule: NoiseSchedule,
}

impl FieldScore for ExactScore {
    fn spectrum(&self) -> &Spectrum {
        &self.field.spectrum
    }

    fn multipliers(&self, t: f64, out: &mut [f64]) {
        let a2 = self.schedule.alpha(t).powi(2);
        let s2 = self.schedule.sigma2(t);
        for (o, &ck) in out.iter_mut().zip(&self.field.c) {
            *o = -1.0 / (a2 * ck + s2);
        }
    }
}
