//! k-means clustering: where a mixture of flows puts its components
//! (fieldflow-losses) and where EM starts (fieldflow-slips).
//!
//! **Algorithm** (Lloyd's, with k-means++ seeding, Arthur & Vassilvitskii
//! 2007): the first centre is a uniform row, each next one a row drawn with
//! probability ∝ its squared distance to the nearest chosen centre
//! ([`kmeans_pp_seeds`]); then alternate assigning every row to its nearest
//! centre and moving each centre to the mean of its rows, until no
//! assignment changes. The best (smallest within-cluster sum of squares) of
//! `restarts` seedings is kept ([`kmeans`]). Deterministic given the seed.

use crate::weights::inverse_cdf;
use fieldflow_core::{ConfigError, Rng, Seed};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::Rng as _;

/// k-means++ seeding (Arthur & Vassilvitskii 2007): the indices of `k`
/// rows of `xs`, the first uniform, each next one drawn with probability ∝
/// its squared distance to the nearest row chosen so far (uniform if every
/// row coincides with a chosen one).
///
/// # Panics
/// If `xs` has no rows.
pub fn kmeans_pp_seeds(xs: ArrayView2<f64>, k: usize, rng: &mut Rng) -> Vec<usize> {
    let n = xs.nrows();
    let mut chosen = vec![rng.random_range(0..n)];
    let mut near = vec![f64::INFINITY; n];
    while chosen.len() < k {
        let c = xs.row(*chosen.last().expect("one centre"));
        for (i, x) in xs.rows().into_iter().enumerate() {
            near[i] = near[i].min(dist2(x, c));
        }
        let total: f64 = near.iter().sum();
        let next = if total > 0.0 {
            inverse_cdf(&near, rng.random::<f64>())
        } else {
            rng.random_range(0..n)
        };
        chosen.push(next);
    }
    chosen
}

/// A partition of the rows into K clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// Cluster of every row.
    pub labels: Vec<usize>,
    /// Mean of every cluster.
    pub means: Vec<Array1<f64>>,
    /// Per-coordinate standard deviation of every cluster.
    pub stds: Vec<Array1<f64>>,
    /// Rows per cluster.
    pub counts: Vec<usize>,
    /// Within-cluster sum of squares.
    pub inertia: f64,
}

fn dist2(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// k-means with `k` clusters (module docs), best of `restarts` seedings.
///
/// # Errors
/// A [`ConfigError`] naming `mixture.components` if `k` is 0 or there are
/// fewer than 2 rows per cluster on average, or `data` if a value is not
/// finite.
pub fn kmeans(xs: ArrayView2<f64>, k: usize, restarts: usize, seed: Seed) -> Result<Clusters, ConfigError> {
    let n = xs.nrows();
    if k == 0 || n < 2 * k {
        return Err(ConfigError::new(
            "mixture.components",
            k,
            format!("needs ≥ 1 and at least 2 training samples per component ({n} given)"),
        ));
    }
    if xs.iter().any(|v| !v.is_finite()) {
        return Err(ConfigError::new("data", "…", "contains a value that is not finite"));
    }
    let mut best: Option<(Vec<usize>, Vec<Array1<f64>>, f64)> = None;
    for r in 0..restarts.max(1) {
        let mut rng = seed.child(r as u64).rng();
        let mut centres: Vec<Array1<f64>> = kmeans_pp_seeds(xs, k, &mut rng)
            .into_iter()
            .map(|i| xs.row(i).to_owned())
            .collect();
        let mut labels = vec![usize::MAX; n];
        loop {
            let mut changed = false;
            for (i, x) in xs.rows().into_iter().enumerate() {
                let j = (0..k)
                    .min_by(|&a, &b| dist2(x, centres[a].view()).total_cmp(&dist2(x, centres[b].view())))
                    .expect("k ≥ 1");
                if labels[i] != j {
                    labels[i] = j;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            for (j, c) in centres.iter_mut().enumerate() {
                let rows: Vec<usize> = (0..n).filter(|&i| labels[i] == j).collect();
                if !rows.is_empty() {
                    *c = xs.select(Axis(0), &rows).mean_axis(Axis(0)).expect("rows");
                }
            }
        }
        let inertia: f64 = (0..n).map(|i| dist2(xs.row(i), centres[labels[i]].view())).sum();
        if best.as_ref().is_none_or(|b| inertia < b.2) {
            best = Some((labels, centres, inertia));
        }
    }
    let (labels, means, inertia) = best.expect("at least one restart");
    let mut stds = Vec::with_capacity(k);
    let mut counts = Vec::with_capacity(k);
    for j in 0..k {
        let rows: Vec<usize> = (0..n).filter(|&i| labels[i] == j).collect();
        counts.push(rows.len());
        let sel: Array2<f64> = xs.select(Axis(0), &rows);
        let sd = if rows.len() > 1 {
            sel.std_axis(Axis(0), 1.0)
        } else {
            Array1::zeros(xs.ncols())
        };
        stds.push(sd);
    }
    Ok(Clusters {
        labels,
        means,
        stds,
        counts,
        inertia,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn separated_modes_are_found_with_their_means_and_spreads() {
        // MOG-4 (means (±4, ±4), variance 0.5, weights 0.1 … 0.4): 400
        // draws; the 4 clusters are the 4 modes.
        let means = [(-4.0, -4.0), (4.0, -4.0), (-4.0, 4.0), (4.0, 4.0)];
        let mut rng = Seed::new(3).rng();
        let mut xs = Array2::zeros((400, 2));
        for (i, mut row) in xs.rows_mut().into_iter().enumerate() {
            let m = means[[0, 40, 120, 240].iter().rposition(|&s| i >= s).unwrap()];
            let (a, b): (f64, f64) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
            row[0] = m.0 + 0.5f64.sqrt() * a;
            row[1] = m.1 + 0.5f64.sqrt() * b;
        }
        let c = kmeans(xs.view(), 4, 4, Seed::new(1)).unwrap();
        assert_eq!(c.counts.iter().sum::<usize>(), 400);
        for (m, s) in c.means.iter().zip(&c.stds) {
            // Every centre within 4 standard errors of a true mean (σ = √0.5,
            // the smallest mode has 40 of the 400 rows: 4σ/√40).
            let tol = 4.0 * 0.5f64.sqrt() / 40f64.sqrt();
            let near = [(-4.0, -4.0), (4.0, -4.0), (-4.0, 4.0), (4.0, 4.0)]
                .iter()
                .any(|&(a, b)| (m[0] - a).abs() < tol && (m[1] - b).abs() < tol);
            assert!(near, "centre {m} is not at a mode");
            assert!(s.iter().all(|v| (v - 0.707).abs() < 0.25), "spread {s}");
        }
        // Deterministic.
        assert_eq!(kmeans(xs.view(), 4, 4, Seed::new(1)).unwrap(), c);
    }

    #[test]
    fn too_few_rows_or_bad_values_are_refused() {
        let xs = Array2::<f64>::zeros((3, 2));
        assert_eq!(
            kmeans(xs.view(), 2, 1, Seed::new(0)).unwrap_err().field,
            "mixture.components"
        );
        let mut ys = Array2::<f64>::zeros((8, 2));
        ys[(2, 1)] = f64::NAN;
        assert_eq!(kmeans(ys.view(), 2, 1, Seed::new(0)).unwrap_err().field, "data");
    }
}
