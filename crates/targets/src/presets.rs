//! The mixture presets of docs/THEORY.md §3.3 (all normalized, log Z = 0):
//!
//! * **MOG-4 (ours)**: 2D, means (±4, ±4), covariance 0.5·I, weights
//!   (0.1, 0.2, 0.3, 0.4) in the order (−,−), (+,−), (−,+), (+,+);
//! * **MOG-8 (ours)**: 2D, 8 equal modes on the circle of radius 10,
//!   covariance 0.7·I;
//! * **two modes in d dimensions** (SLIPS / LRDS):
//!   ⅔ N(−𝟙 + 𝟙/3, 0.05 I) + ⅓ N(𝟙 + 𝟙/3, 0.05 I);
//! * **separated mixture** (the "mode separation × dimension" protocol of
//!   Grenioux et al., docs/THEORY.md §3.3): K isotropic components N(μₖ, σ² I) with
//!   weights wₖ and means on a line through 0 along a unit vector e,
//!   μₖ = (k − (K−1)/2) s σ e, k = 0..K−1, so neighbouring means are s σ
//!   apart (K = 2: μ = ∓(sσ/2) e). e is the normalized diagonal 𝟙/√d
//!   ([`SeparationAxis::Diagonal`], not aligned with any coordinate) or the
//!   first axis e₁ ([`SeparationAxis::First`]).
//!
//! **Exact mode weights of the separated mixture.** Modes are assigned to
//! the nearest mean; for collinear means the regions are the slabs
//! t = x·e ∈ (bₖ₋₁, bₖ) between the midpoints bₖ = (k + ½ − (K−1)/2) s σ
//! (b₋₁ = −∞, b_{K−1} = +∞). Under component j the projection t is
//! N(μⱼ·e, σ²), so the probability of region k is
//!
//! rₖ = Σⱼ wⱼ [Φ((k − j + ½) s) − Φ((k − j − ½) s)]
//!
//! (Φ the standard normal distribution function, infinite ends where k = 0 or
//! K − 1), the exact expectation of the nearest-mean fraction of mode k. It
//! differs from wₖ by the overlap, e.g. 0.16 (w₁ − w₀) for K = 2 at s = 2;
//! [`Modes::true_weights`](crate::Modes::true_weights) returns rₖ. The
//! Gaussian integrals are computed by composite Gauss–Legendre quadrature
//! (absolute error ≈ 1e-16).

use crate::mixture::{Covariance, GaussianMixture};
use crate::quadrature::GaussLegendre;
use fieldflow_core::ConfigError;
use ndarray::Array1;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The direction e of the line through the means of
/// [`GaussianMixture::separated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeparationAxis {
    /// e = 𝟙/√d, the normalized diagonal (default).
    #[default]
    Diagonal,
    /// e = e₁, the first coordinate axis.
    First,
}

/// ∫ₐᵇ of the standard normal density (a < b, infinite ends allowed), by
/// composite Gauss–Legendre on [a, b] ∩ [−40, 40] (the density is below
/// e^{−800} outside).
fn normal_mass(a: f64, b: f64) -> f64 {
    let (lo, hi) = (a.max(-40.0), b.min(40.0));
    if lo >= hi {
        return 0.0;
    }
    let panels = ((hi - lo) / 0.5).ceil() as usize;
    let c = 1.0 / (2.0 * PI).sqrt();
    GaussLegendre::new(16).integrate(|t| c * (-0.5 * t * t).exp(), lo, hi, panels)
}

impl GaussianMixture {
    /// MOG-4 (docs/THEORY.md §3.3, ours): 2D, means (±4, ±4), covariance 0.5·I,
    /// weights (0.1, 0.2, 0.3, 0.4) for modes 0..3 at (−4, −4), (4, −4),
    /// (−4, 4), (4, 4).
    pub fn mog4() -> Self {
        let means = [(-4.0, -4.0), (4.0, -4.0), (-4.0, 4.0), (4.0, 4.0)]
            .iter()
            .map(|&(a, b)| Array1::from(vec![a, b]))
            .collect();
        let mut m = GaussianMixture::new(means, vec![Covariance::Isotropic(0.5); 4], vec![0.1, 0.2, 0.3, 0.4])
            .expect("the MOG-4 preset is valid");
        m.label = Some("MOG-4".into());
        m
    }

    /// MOG-8 (docs/THEORY.md §3.3, ours): 2D, 8 equal-weight modes, mode k at
    /// 10 (cos 2πk/8, sin 2πk/8), covariance 0.7·I.
    pub fn mog8() -> Self {
        let means = (0..8)
            .map(|k| {
                let t = 2.0 * PI * k as f64 / 8.0;
                Array1::from(vec![10.0 * t.cos(), 10.0 * t.sin()])
            })
            .collect();
        let mut m = GaussianMixture::new(means, vec![Covariance::Isotropic(0.7); 8], vec![0.125; 8])
            .expect("the MOG-8 preset is valid");
        m.label = Some("MOG-8".into());
        m
    }

    /// Two modes in `dim` dimensions (docs/THEORY.md §3.3, SLIPS / LRDS):
    /// ⅔ N(−𝟙 + 𝟙/3, 0.05 I) + ⅓ N(𝟙 + 𝟙/3, 0.05 I), i.e. mode 0 (weight ⅔)
    /// at −⅔𝟙 and mode 1 (weight ⅓) at (4/3)𝟙.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `dim` if `dim` = 0.
    pub fn two_modes(dim: usize) -> Result<Self, ConfigError> {
        if dim == 0 {
            return Err(ConfigError::new("dim", 0, "must be >= 1"));
        }
        let shift = 1.0 / 3.0;
        let means = vec![
            Array1::from_elem(dim, -1.0 + shift),
            Array1::from_elem(dim, 1.0 + shift),
        ];
        let mut m = GaussianMixture::new(means, vec![Covariance::Isotropic(0.05); 2], vec![2.0 / 3.0, 1.0 / 3.0])?;
        m.label = Some(format!("two modes (d = {dim})"));
        Ok(m)
    }
}

impl GaussianMixture {
    /// K = `weights.len()` components N(μₖ, σ² I), μₖ = (k − (K−1)/2) s σ e,
    /// in `dim` dimensions, with `separation` s (distance of neighbouring
    /// means in units of σ = `sigma`) along `axis` (see the module docs);
    /// its [`Modes::true_weights`](crate::Modes::true_weights) are the exact
    /// nearest-mean region probabilities rₖ.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `dim` (= 0), `separation` or `sigma` (not
    /// finite and > 0), `weights` (empty, or not summing to 1) or
    /// `weights[k]` (≤ 0).
    pub fn separated(
        dim: usize,
        separation: f64,
        sigma: f64,
        weights: Vec<f64>,
        axis: SeparationAxis,
    ) -> Result<Self, ConfigError> {
        if dim == 0 {
            return Err(ConfigError::new("dim", 0, "must be >= 1"));
        }
        if !(separation.is_finite() && separation > 0.0) {
            return Err(ConfigError::new("separation", separation, "must be finite and > 0"));
        }
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(ConfigError::new("sigma", sigma, "must be finite and > 0"));
        }
        if weights.is_empty() {
            return Err(ConfigError::new("weights", "[]", "needs at least one weight"));
        }
        let k = weights.len();
        let e = match axis {
            SeparationAxis::Diagonal => Array1::from_elem(dim, 1.0 / (dim as f64).sqrt()),
            SeparationAxis::First => Array1::from_shape_fn(dim, |i| f64::from(u8::from(i == 0))),
        };
        let centre = 0.5 * (k as f64 - 1.0);
        let means = (0..k)
            .map(|j| &e * ((j as f64 - centre) * separation * sigma))
            .collect();
        let mut m = GaussianMixture::new(means, vec![Covariance::Isotropic(sigma * sigma); k], weights)?;
        let region = |r: usize, j: usize| {
            let lo = if r == 0 {
                f64::NEG_INFINITY
            } else {
                (r as f64 - j as f64 - 0.5) * separation
            };
            let hi = if r + 1 == k {
                f64::INFINITY
            } else {
                (r as f64 - j as f64 + 0.5) * separation
            };
            normal_mass(lo, hi)
        };
        let w = m.weights().to_vec();
        m.region_weights = Some((0..k).map(|r| (0..k).map(|j| w[j] * region(r, j)).sum()).collect());
        m.label = Some(format!(
            "separated (K = {k}, s = {separation}, sigma = {sigma}, axis = {axis:?}, d = {dim})"
        ));
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::Modes;
    use fieldflow_core::{ExactSampler, Par, Seed};
    use ndarray::Array2;

    #[test]
    fn preset_geometry_is_as_specified() {
        let t = GaussianMixture::mog4();
        assert_eq!(t.mean(1).to_vec(), vec![4.0, -4.0]);
        assert_eq!(t.mean(2).to_vec(), vec![-4.0, 4.0]);
        assert_eq!(t.weights(), &[0.1, 0.2, 0.3, 0.4]);
        let t = GaussianMixture::mog8();
        for k in 0..8 {
            let r = t.mean(k).iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((r - 10.0).abs() < 1e-12);
            assert!((t.cov(k)[[1, 1]] - 0.7).abs() < 1e-15);
        }
        let t = GaussianMixture::two_modes(8).unwrap();
        assert!((t.mean(0)[3] + 2.0 / 3.0).abs() < 1e-15);
        assert!((t.mean(1)[3] - 4.0 / 3.0).abs() < 1e-15);
        assert!((t.weights()[0] - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn separated_geometry_and_region_weights() {
        let t = GaussianMixture::separated(9, 4.0, 0.5, vec![0.2, 0.3, 0.5], SeparationAxis::Diagonal).unwrap();
        // Neighbours s σ = 2 apart along 𝟙/3, centred at 0.
        assert!((t.mean(0)[4] + 2.0 / 3.0).abs() < 1e-15 && t.mean(1).iter().all(|&v| v == 0.0));
        let d01 = (&t.mean(1) - &t.mean(0)).mapv(|v| v * v).sum().sqrt();
        assert!((d01 - 2.0).abs() < 1e-14);
        assert!((t.cov(2)[[3, 3]] - 0.25).abs() < 1e-15);
        let t = GaussianMixture::separated(3, 6.0, 1.0, vec![0.5, 0.5], SeparationAxis::First).unwrap();
        assert_eq!(t.mean(0).to_vec(), vec![-3.0, 0.0, 0.0]);
        assert_eq!(t.mean(1).to_vec(), vec![3.0, 0.0, 0.0]);
        // Region weights: Φ(1) = 0.8413447460685429 (s = 2), symmetric for
        // equal weights, and → wₖ for large s.
        let phi1 = 0.841_344_746_068_542_9;
        let t = GaussianMixture::separated(2, 2.0, 1.0, vec![0.7, 0.3], SeparationAxis::Diagonal).unwrap();
        let r = t.true_weights().unwrap();
        assert!((r[0] - (0.7 * phi1 + 0.3 * (1.0 - phi1))).abs() < 1e-15, "{r:?}");
        assert!((r[0] + r[1] - 1.0).abs() < 1e-15);
        let t = GaussianMixture::separated(2, 2.0, 1.0, vec![0.5, 0.5], SeparationAxis::Diagonal).unwrap();
        assert!((t.true_weights().unwrap()[0] - 0.5).abs() < 1e-15);
        let t = GaussianMixture::separated(5, 20.0, 1.0, vec![0.1, 0.2, 0.3, 0.4], SeparationAxis::First).unwrap();
        let r = t.true_weights().unwrap();
        for (a, b) in r.iter().zip(t.weights()) {
            assert!((a - b).abs() < 1e-15, "{r:?}");
        }
        // Three modes at s = 3: middle region loses Φ(−1.5) on each side.
        let t = GaussianMixture::separated(1, 3.0, 1.0, vec![0.25, 0.5, 0.25], SeparationAxis::First).unwrap();
        let tail = 1.0 - 0.933_192_798_731_141_9; // Φ(−1.5)
        let tail2 = 1.0 - 0.999_996_602_326_875_3; // Φ(−4.5) ≈ 3.4e-6
        let r = t.true_weights().unwrap();
        let expect_mid = 0.5 * (1.0 - 2.0 * tail) + 2.0 * 0.25 * (tail - tail2);
        assert!((r[1] - expect_mid).abs() < 1e-14, "{} vs {expect_mid}", r[1]);
    }

    #[test]
    fn separated_exact_samples_follow_the_region_weights() {
        // At s = 2 the region weights differ from the component weights by
        // 0.16 · 0.4 = 0.063, far beyond the 4σ ≈ 0.009 of 50 000 samples.
        let n = 50_000;
        let t = GaussianMixture::separated(4, 2.0, 0.7, vec![0.7, 0.3], SeparationAxis::Diagonal).unwrap();
        let mut xs = Array2::zeros((n, 4));
        t.sample_batch(Seed::new(31), xs.view_mut(), Par::default());
        let f = t.mode_fractions(xs.view());
        let r = t.true_weights().unwrap();
        assert_fractions_within_4_sigma(&f, &r, n);
        assert!((f[0] - 0.7).abs() > 0.04, "{f:?}");
        assert_score_matches_fd(&t, 1.5, 20, 32);
    }

    #[test]
    fn separated_invalid_parameters_name_the_field() {
        let d = SeparationAxis::Diagonal;
        let e = |r: Result<GaussianMixture, ConfigError>| r.unwrap_err().field;
        assert_eq!(e(GaussianMixture::separated(0, 4.0, 1.0, vec![0.5, 0.5], d)), "dim");
        assert_eq!(
            e(GaussianMixture::separated(2, 0.0, 1.0, vec![0.5, 0.5], d)),
            "separation"
        );
        assert_eq!(
            e(GaussianMixture::separated(2, f64::NAN, 1.0, vec![0.5, 0.5], d)),
            "separation"
        );
        assert_eq!(e(GaussianMixture::separated(2, 4.0, -1.0, vec![0.5, 0.5], d)), "sigma");
        assert_eq!(e(GaussianMixture::separated(2, 4.0, 1.0, vec![], d)), "weights");
        assert_eq!(e(GaussianMixture::separated(2, 4.0, 1.0, vec![0.5, 0.6], d)), "weights");
        assert_eq!(
            e(GaussianMixture::separated(2, 4.0, 1.0, vec![1.5, -0.5], d)),
            "weights[1]"
        );
    }
}
