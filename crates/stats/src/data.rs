//! Input handling shared by every estimator: series and multi-observable
//! replica, validation (finite, non-empty, same number of columns), means.
//!
//! Conventions (docs/THEORY.md §7.1, Wolff 2004): a data set consists of R
//! *replica* (independent Markov chains) r = 0..R with N_r configurations
//! each, N = Σ_r N_r. For several primary observables a replica is an
//! `ArrayView2` with one configuration per row and one primary observable
//! a_α per column. Means: per replica ā_α^r = (1/N_r) Σ_i a_α^{i,r}, global
//! ā̄_α = (1/N) Σ_r N_r ā_α^r.

use crate::StatsError;
use ndarray::{Array1, ArrayView1, ArrayView2};

/// A one-dimensional series of f64 values: slices, vectors and ndarray
/// vectors or views, so that the primary-observable entry points accept any
/// of them.
pub trait AsSeries {
    /// The series as a (possibly strided) ndarray view.
    fn series(&self) -> ArrayView1<'_, f64>;
}

impl AsSeries for &[f64] {
    fn series(&self) -> ArrayView1<'_, f64> {
        ArrayView1::from(*self)
    }
}

impl AsSeries for Vec<f64> {
    fn series(&self) -> ArrayView1<'_, f64> {
        ArrayView1::from(self.as_slice())
    }
}

impl AsSeries for &Vec<f64> {
    fn series(&self) -> ArrayView1<'_, f64> {
        ArrayView1::from(self.as_slice())
    }
}

impl AsSeries for ArrayView1<'_, f64> {
    fn series(&self) -> ArrayView1<'_, f64> {
        self.view()
    }
}

impl AsSeries for Array1<f64> {
    fn series(&self) -> ArrayView1<'_, f64> {
        self.view()
    }
}

/// Checks a list of series: at least one, none empty, all finite.
pub(crate) fn validate_series<D: AsSeries>(replica: &[D]) -> Result<(), StatsError> {
    if replica.is_empty() {
        return Err(StatsError::NoData);
    }
    for (r, d) in replica.iter().enumerate() {
        let s = d.series();
        if s.is_empty() {
            return Err(StatsError::EmptyReplica { replica: r });
        }
        if let Some((i, &v)) = s.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(StatsError::NonFinite {
                replica: r,
                index: i,
                observable: 0,
                value: v,
            });
        }
    }
    Ok(())
}

/// Checks multi-observable replica and returns the number of observables.
pub(crate) fn validate_views(replica: &[ArrayView2<f64>]) -> Result<usize, StatsError> {
    let first = replica.first().ok_or(StatsError::NoData)?;
    let n_obs = first.ncols();
    if n_obs == 0 {
        return Err(StatsError::NoObservable);
    }
    for (r, a) in replica.iter().enumerate() {
        if a.ncols() != n_obs {
            return Err(StatsError::ObservableMismatch {
                replica: r,
                expected: n_obs,
                found: a.ncols(),
            });
        }
        if a.nrows() == 0 {
            return Err(StatsError::EmptyReplica { replica: r });
        }
        for ((i, alpha), &v) in a.indexed_iter() {
            if !v.is_finite() {
                return Err(StatsError::NonFinite {
                    replica: r,
                    index: i,
                    observable: alpha,
                    value: v,
                });
            }
        }
    }
    Ok(n_obs)
}

/// Mean of a series, with one corrective pass (m += Σ(x − m)/n) so that a
/// constant series has its value as mean to the last bit and fluctuations
/// about the mean are exactly zero.
pub(crate) fn mean_of(x: ArrayView1<f64>) -> f64 {
    let n = x.len() as f64;
    let m = x.sum() / n;
    m + x.iter().map(|v| v - m).sum::<f64>() / n
}

/// Column means of one replica.
pub(crate) fn column_means(a: &ArrayView2<f64>) -> Vec<f64> {
    (0..a.ncols()).map(|alpha| mean_of(a.column(alpha))).collect()
}

/// Per-replica means ā^r (one vector per replica) and the global means ā̄.
pub(crate) fn replica_and_global_means(replica: &[ArrayView2<f64>]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let per: Vec<Vec<f64>> = replica.iter().map(column_means).collect();
    let n_obs = per[0].len();
    let n_total: usize = replica.iter().map(|a| a.nrows()).sum();
    let mut global = vec![0.0; n_obs];
    for (a, m) in replica.iter().zip(&per) {
        for alpha in 0..n_obs {
            global[alpha] += a.nrows() as f64 * m[alpha];
        }
    }
    for (alpha, g) in global.iter_mut().enumerate() {
        *g /= n_total as f64;
        // Corrective pass, as in `mean_of`.
        let resid: f64 = replica
            .iter()
            .map(|a| a.column(alpha).iter().map(|v| v - *g).sum::<f64>())
            .sum();
        *g += resid / n_total as f64;
    }
    (per, global)
}
