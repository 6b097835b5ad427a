//! Jackknife with binning, for any derived quantity F = f(A_1, …, A_m)
//! (docs/THEORY.md §7.7).
//!
//! Binning: each replica r is cut into ⌊N_r/B⌋ consecutive bins of B
//! configurations; the N_r mod B configurations at the end of a replica are
//! dropped (bins never straddle two replica).
//! With K bins of size B and bin means b_k, the
//! mean of the used data is ā = (1/K) Σ_k b_k and the leave-one-bin-out means
//! are ā_(k) = (K ā − b_k)/(K − 1). With f_(k) = f(ā_(k)) and
//! f̄ = (1/K) Σ_k f_(k):
//! - error σ_J = √((K−1)/K · Σ_k (f_(k) − f̄)²);
//! - bias-corrected value K f(ā) − (K − 1) f̄ (removes the O(1/N) bias of f(ā));
//! - error of the error ≈ σ_J/√(2(K−1)) (χ² with K − 1 degrees of freedom,
//!   Gaussian bins).
//!
//! For autocorrelated data σ_J grows with B and reaches a plateau once
//! B ≫ τ_int; [`jackknife_bin_scan`] tabulates σ_J(B) for B = 1, 2, 4, … . For
//! a primary observable (σ_J(B)/σ_J(1))² → 2τ_int on the plateau.

use crate::binning::{bin_series, bin_views, mean_of_bins, Bins};
use crate::data::AsSeries;
use crate::StatsError;
use ndarray::ArrayView2;

/// Result of a binned jackknife.
#[derive(Debug, Clone, PartialEq)]
pub struct JackknifeReport {
    /// f(ā) on the used data.
    pub value: f64,
    /// Jackknife bias-corrected value K f(ā) − (K − 1) f̄.
    pub bias_corrected: f64,
    /// Jackknife error σ_J.
    pub error: f64,
    /// Approximate error of the error, σ_J/√(2(K − 1)).
    pub error_of_error: f64,
    /// Bin size B.
    pub bin_size: usize,
    /// Number of bins K.
    pub n_bins: usize,
    /// Configurations used, K·B (the remainder of each replica is dropped).
    pub n_used: usize,
}

/// Binned jackknife of a derived quantity over multi-observable replica
/// (rows = configurations, columns = primary observables).
pub fn jackknife<F>(replica: &[ArrayView2<f64>], bin_size: usize, f: F) -> Result<JackknifeReport, StatsError>
where
    F: Fn(&[f64]) -> f64,
{
    let bins = bin_views(replica, bin_size)?;
    jackknife_bins(&bins, bin_size, &f)
}

/// Binned jackknife of the mean of one primary observable.
pub fn jackknife_primary<D: AsSeries>(replica: &[D], bin_size: usize) -> Result<JackknifeReport, StatsError> {
    let bins = bin_series(replica, bin_size)?;
    jackknife_bins(&bins, bin_size, &|x: &[f64]| x[0])
}

/// Jackknife errors for bin sizes B = 1, 2, 4, … as long as at least
/// `min_bins` (≥ 2) bins remain: the "error versus bin size" scan. Look for
/// the plateau; its height is the honest error.
pub fn jackknife_bin_scan<F>(
    replica: &[ArrayView2<f64>],
    f: F,
    min_bins: usize,
) -> Result<Vec<JackknifeReport>, StatsError>
where
    F: Fn(&[f64]) -> f64,
{
    let min_bins = min_bins.max(2);
    let n_max = replica.iter().map(|a| a.nrows()).max().unwrap_or(0);
    let mut out = Vec::new();
    let mut b = 1;
    while b <= n_max {
        let bins = bin_views(replica, b)?;
        if bins.means.len() < min_bins {
            break;
        }
        out.push(jackknife_bins(&bins, b, &f)?);
        b *= 2;
    }
    if out.is_empty() {
        return Err(StatsError::TooFewSamples {
            what: "the jackknife bin scan",
            n: replica.iter().map(|a| a.nrows()).sum(),
            min: min_bins,
        });
    }
    Ok(out)
}

fn jackknife_bins(bins: &Bins, bin_size: usize, f: &dyn Fn(&[f64]) -> f64) -> Result<JackknifeReport, StatsError> {
    let k = bins.means.len();
    if k < 2 {
        return Err(StatsError::TooFewSamples {
            what: "the jackknife (bins)",
            n: k,
            min: 2,
        });
    }
    let kf = k as f64;
    let mean = mean_of_bins(&bins.means);
    let value = f(&mean);
    if !value.is_finite() {
        return Err(StatsError::NonFiniteDerived { value });
    }
    let mut loo = vec![0.0; mean.len()];
    let mut fk = Vec::with_capacity(k);
    for b in &bins.means {
        for (alpha, l) in loo.iter_mut().enumerate() {
            *l = (kf * mean[alpha] - b[alpha]) / (kf - 1.0);
        }
        let v = f(&loo);
        if !v.is_finite() {
            return Err(StatsError::NonFiniteDerived { value: v });
        }
        fk.push(v);
    }
    let fbar = fk.iter().sum::<f64>() / kf;
    let var = (kf - 1.0) / kf * fk.iter().map(|v| (v - fbar).powi(2)).sum::<f64>();
    let error = var.sqrt();
    Ok(JackknifeReport {
        value,
        bias_corrected: kf * value - (kf - 1.0) * fbar,
        error,
        error_of_error: error / (2.0 * (kf - 1.0)).sqrt(),
        bin_size,
        n_bins: k,
        n_used: bins.n_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn jackknife_of_the_mean_is_the_standard_error() {
        // For f = mean and B = 1 the jackknife error is exactly s/√N with the
        // unbiased sample variance s².
        let a = vec![1.0, 2.0, 4.0, 7.0, 11.0, 3.0];
        let r = jackknife_primary(&[a.as_slice()], 1).unwrap();
        let n = a.len() as f64;
        let m = a.iter().sum::<f64>() / n;
        let s2 = a.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((r.value - m).abs() < 1e-14);
        assert!((r.bias_corrected - m).abs() < 1e-12);
        assert!((r.error - (s2 / n).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn bias_correction_removes_the_bias_of_a_square() {
        // f = ā²: E[f] = μ² + σ²/N; the jackknife-corrected value is
        // ā² − s²/N exactly (a classical identity).
        let a = vec![0.3, -1.2, 2.5, 0.7, 1.1, -0.4, 0.9];
        let m = Array2::from_shape_vec((7, 1), a.clone()).unwrap();
        let r = jackknife(&[m.view()], 1, |x| x[0] * x[0]).unwrap();
        let n = 7.0;
        let mean = a.iter().sum::<f64>() / n;
        let s2 = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((r.bias_corrected - (mean * mean - s2 / n)).abs() < 1e-12);
    }

    #[test]
    fn bins_drop_the_remainder_of_each_replica() {
        let a: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..7).map(|i| i as f64).collect();
        let r = jackknife_primary(&[a, b], 3).unwrap();
        assert_eq!((r.n_bins, r.n_used), (5, 15));
        // Used data: 0..9 and 0..6 → mean (36 + 15)/15.
        assert!((r.value - 51.0 / 15.0).abs() < 1e-14);
        assert!(jackknife_primary(&[vec![1.0, 2.0]], 2).is_err());
        assert!(jackknife_primary(&[vec![1.0, 2.0]], 0).is_err());
    }
}
