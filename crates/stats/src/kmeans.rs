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
//!
//! **How many clusters** ([`choose_k`]): Schwarz's Bayesian information
//! criterion of the k-means partition read as a Gaussian mixture with
//! diagonal covariances and hard assignments. With n_k rows in cluster k,
//! maximum-likelihood variances v_kj = (1/n_k) Σ_{i∈k} (x_ij − μ_kj)², the
//! log-likelihood is
//!
//!   ln L_K = Σ_k [ n_k ln(n_k/N) − (n_k/2) Σ_j (ln(2π v_kj) + 1) ],
//!
//! with p_K = 2Kd′ + K − 1 parameters (d′ the coordinates that vary at all),
//! and BIC(K) = −2 ln L_K + p_K ln N; the K of smallest BIC wins among
//! K = 1 … K_max (K ≤ N/2). A cluster of fewer than 2 rows, or a variance
//! below 10⁻⁸ of the coordinate's overall variance, would make ln L_K
//! unbounded: such a K is not admissible. Splitting one Gaussian mode
//! gains ≈ (N/2) ln(π/(π − 2)) ≈ 0.5 N in ln L along one direction (less
//! N ln 2 from the assignment term) against
//! ≈ d′ ln N more parameters, so a mode is split only when the data call
//! for it; separated modes gain ∝ N d′ ln(spread ratio).

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

/// The number of clusters chosen by [`choose_k`], with the criterion of
/// every K tried.
#[derive(Debug, Clone, PartialEq)]
pub struct KChoice {
    /// The chosen K.
    pub k: usize,
    /// BIC(K) for K = 1, 2, … (`f64::INFINITY` where K is not admissible).
    pub bic: Vec<f64>,
}

/// The number of clusters K ∈ 1 … `k_max` (at most N/2) of smallest BIC
/// (module docs), each partition by [`kmeans`] with `restarts` and `seed`
/// (the same call a caller makes afterwards gives the same partition).
///
/// # Errors
/// As [`kmeans`] for K = 1 (fewer than 2 rows, a value not finite).
pub fn choose_k(xs: ArrayView2<f64>, k_max: usize, restarts: usize, seed: Seed) -> Result<KChoice, ConfigError> {
    let n = xs.nrows();
    let overall = if n > 1 {
        xs.var_axis(Axis(0), 0.0)
    } else {
        Array1::zeros(xs.ncols())
    };
    let varying: Vec<usize> = (0..xs.ncols()).filter(|&j| overall[j] > 0.0).collect();
    let nf = n as f64;
    let mut bic = Vec::new();
    for k in 1..=k_max.max(1).min((n / 2).max(1)) {
        let c = kmeans(xs, k, restarts, seed)?;
        let mut ll = 0.0;
        let mut admissible = true;
        for (&n_k, sd) in c.counts.iter().zip(&c.stds) {
            if n_k < 2 {
                admissible = false;
                break;
            }
            let m = n_k as f64;
            let mut sum = 0.0;
            for &col in &varying {
                let v = sd[col] * sd[col] * (m - 1.0) / m;
                if !(v > 1e-8 * overall[col]) {
                    admissible = false;
                }
                sum += (2.0 * std::f64::consts::PI * v).ln() + 1.0;
            }
            ll += m * (m / nf).ln() - 0.5 * m * sum;
        }
        let p = (2 * k * varying.len() + k - 1) as f64;
        bic.push(if admissible {
            -2.0 * ll + p * nf.ln()
        } else {
            f64::INFINITY
        });
    }
    let k = 1
        + (0..bic.len())
            .min_by(|&a, &b| bic[a].total_cmp(&bic[b]))
            .expect("K = 1 is tried");
    Ok(KChoice { k, bic })
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

    /// `n` rows of N(means[c], var I) in `d` dimensions, mode c for a
    /// share `weights[c]` of the rows.
    fn draws(n: usize, d: usize, means: &[f64], weights: &[f64], var: f64, seed: u64) -> Array2<f64> {
        let mut rng = Seed::new(seed).rng();
        let mut xs = Array2::zeros((n, d));
        let mut edge = 0.0;
        let edges: Vec<usize> = weights
            .iter()
            .map(|w| {
                edge += w * n as f64;
                edge.round() as usize
            })
            .collect();
        for (i, mut row) in xs.rows_mut().into_iter().enumerate() {
            let c = edges.iter().position(|&e| i < e).unwrap_or(weights.len() - 1);
            for x in row.iter_mut() {
                let z: f64 = StandardNormal.sample(&mut rng);
                *x = means[c] + var.sqrt() * z;
            }
        }
        xs
    }

    #[test]
    fn bic_finds_the_number_of_separated_modes_and_does_not_split_one() {
        // Two modes in d = 64 (the benchmark's: means −⅔ and 4/3 on every
        // coordinate, variance 0.05, weights ⅔, ⅓) from 100 samples.
        for seed in 0..5 {
            let xs = draws(100, 64, &[-2.0 / 3.0, 4.0 / 3.0], &[2.0 / 3.0, 1.0 / 3.0], 0.05, seed);
            let c = choose_k(xs.view(), 8, 4, Seed::new(seed)).unwrap();
            assert_eq!(c.k, 2, "seed {seed}: {:?}", c.bic);
        }
        // MOG-4-like in d = 2 (modes 4σ apart on a line, weights 0.1 … 0.4).
        for seed in 0..5 {
            let xs = draws(100, 2, &[-6.0, -2.0, 2.0, 6.0], &[0.1, 0.2, 0.3, 0.4], 0.5, seed);
            let c = choose_k(xs.view(), 8, 4, Seed::new(seed)).unwrap();
            assert_eq!(c.k, 4, "seed {seed}: {:?}", c.bic);
        }
        // One Gaussian: never split (d = 2 and 16, 20 seeds each).
        for (d, seed) in [2usize, 16].into_iter().flat_map(|d| (0..20).map(move |s| (d, s))) {
            let xs = draws(100, d, &[0.0], &[1.0], 1.0, 100 + seed);
            let c = choose_k(xs.view(), 8, 4, Seed::new(seed)).unwrap();
            assert_eq!(c.k, 1, "d {d} seed {seed}: {:?}", c.bic);
        }
        // K_max caps, a constant coordinate is ignored, and the choice is
        // the partition kmeans gives for that K.
        let mut xs = draws(100, 3, &[-5.0, 5.0], &[0.5, 0.5], 1.0, 7);
        xs.column_mut(1).fill(2.0);
        let c = choose_k(xs.view(), 8, 4, Seed::new(3)).unwrap();
        assert_eq!(c.k, 2, "{:?}", c.bic);
        assert_eq!(choose_k(xs.view(), 1, 4, Seed::new(3)).unwrap().k, 1);
        assert!(c.bic.iter().all(|b| !b.is_nan()));
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
