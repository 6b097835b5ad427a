//! Small statistics helpers for the statistical tests (the stats crate is
//! developed separately; these stay deliberately simple).

#![allow(dead_code)]

use fieldflow_core::Measure;
use fieldflow_lattice::ChainRecords;
use ndarray::Axis;

/// Mean and its error from binning: each chain's series is cut into
/// `bins_per_chain` equal bins (leftover points at the start are dropped);
/// the bin means of all chains are treated as independent, so
/// σ = std(bin means) / √(n_bins). Valid when the bins are much longer than
/// the autocorrelation time, which the callers ensure by using few, long bins
/// (and chains are independent by construction).
pub fn binned_mean_err(series: &[Vec<f64>], bins_per_chain: usize) -> (f64, f64) {
    let mut means = Vec::new();
    for s in series {
        let b = s.len() / bins_per_chain;
        assert!(b >= 1, "series too short for the bins");
        let skip = s.len() - b * bins_per_chain;
        for k in 0..bins_per_chain {
            let chunk = &s[skip + k * b..skip + (k + 1) * b];
            means.push(chunk.iter().sum::<f64>() / b as f64);
        }
    }
    let n = means.len() as f64;
    let mean = means.iter().sum::<f64>() / n;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Per-chain time series of every primary of `measure` over the saved configs.
pub fn measure_series(records: &ChainRecords, measure: &dyn Measure) -> Vec<Vec<Vec<f64>>> {
    let n_obs = measure.names().len();
    let mut out = vec![vec![Vec::new(); records.n_chains()]; n_obs];
    let mut buf = vec![0.0; n_obs];
    for (c, chain) in records.configs.axis_iter(Axis(0)).enumerate() {
        for cfg in chain.axis_iter(Axis(0)) {
            measure.measure(cfg, &mut buf);
            for (o, v) in buf.iter().enumerate() {
                out[o][c].push(*v);
            }
        }
    }
    out
}

/// Asserts |mean − exact| < 4σ and that σ is small enough (relative to
/// `scale`) for the comparison to mean something.
pub fn assert_within_4_sigma(name: &str, (mean, err): (f64, f64), exact: f64, max_rel_err: f64, scale: f64) {
    assert!(
        err < max_rel_err * scale,
        "{name}: error bar {err} too large to test anything (scale {scale})"
    );
    assert!(
        (mean - exact).abs() < 4.0 * err,
        "{name}: {mean} ± {err} vs exact {exact} ({:.1} σ)",
        (mean - exact) / err
    );
}
