//! The mixture presets of docs/THEORY.md §3.3 (all normalized, log Z = 0):
//!
//! * **MOG-4 (ours)**: 2D, means (±4, ±4), covariance 0.5·I, weights
//!   (0.1, 0.2, 0.3, 0.4) in the order (−,−), (+,−), (−,+), (+,+);
//! * **MOG-8 (ours)**: 2D, 8 equal modes on the circle of radius 10,
//!   covariance 0.7·I;
//! * **two modes in d dimensions** (SLIPS / LRDS):
//!   ⅔ N(−𝟙 + 𝟙/3, 0.05 I) + ⅓ N(𝟙 + 𝟙/3, 0.05 I).

use crate::mixture::{Covariance, GaussianMixture};
use fieldflow_core::ConfigError;
use ndarray::Array1;
use std::f64::consts::PI;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
