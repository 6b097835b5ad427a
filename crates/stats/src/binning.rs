//! Binning (blocking) shared by the jackknife and the bootstrap.
//!
//! Each replica r is cut into ⌊N_r/B⌋ consecutive bins of B configurations;
//! the N_r mod B configurations left at the end of a replica are dropped
//! (bins never straddle two replica, which are independent chains). A bin
//! mean b_k (one entry per primary observable) is the average of its B rows.
//! With bins much longer than τ_int the bin means are nearly independent,
//! which is what the jackknife and the bootstrap assume.

use crate::data::{validate_series, validate_views, AsSeries};
use crate::StatsError;
use ndarray::{ArrayView2, Axis, Slice};

/// Bin means (one `Vec` of length n_obs per bin, in replica then time order)
/// and the number of configurations used.
pub(crate) struct Bins {
    pub means: Vec<Vec<f64>>,
    pub n_used: usize,
}

/// Bins multi-observable replica.
pub(crate) fn bin_views(replica: &[ArrayView2<f64>], bin_size: usize) -> Result<Bins, StatsError> {
    validate_views(replica)?;
    check_bin_size(bin_size)?;
    let mut means = Vec::new();
    for a in replica {
        let k = a.nrows() / bin_size;
        for b in 0..k {
            let block = a.slice_axis(Axis(0), Slice::from(b * bin_size..(b + 1) * bin_size));
            means.push(crate::data::column_means(&block));
        }
    }
    let n_used = means.len() * bin_size;
    Ok(Bins { means, n_used })
}

/// Bins single-observable replica.
pub(crate) fn bin_series<D: AsSeries>(replica: &[D], bin_size: usize) -> Result<Bins, StatsError> {
    validate_series(replica)?;
    check_bin_size(bin_size)?;
    let mut means = Vec::new();
    for d in replica {
        let s = d.series();
        let k = s.len() / bin_size;
        for b in 0..k {
            let block = s.slice_axis(Axis(0), Slice::from(b * bin_size..(b + 1) * bin_size));
            means.push(vec![block.sum() / bin_size as f64]);
        }
    }
    let n_used = means.len() * bin_size;
    Ok(Bins { means, n_used })
}

fn check_bin_size(bin_size: usize) -> Result<(), StatsError> {
    if bin_size == 0 {
        return Err(fieldflow_core::ConfigError::new("bin_size", 0, "must be >= 1").into());
    }
    Ok(())
}

/// Mean of the bin means (equal bin sizes, so this is the mean of the used data).
pub(crate) fn mean_of_bins(bins: &[Vec<f64>]) -> Vec<f64> {
    let k = bins.len() as f64;
    let n_obs = bins[0].len();
    (0..n_obs)
        .map(|alpha| bins.iter().map(|b| b[alpha]).sum::<f64>() / k)
        .collect()
}
