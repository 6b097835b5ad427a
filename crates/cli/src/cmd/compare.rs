//! `fieldflow compare A.h5 B.h5`: the table that shows whether a flow
//! sampler beats HMC.
//!
//! For every observable both files have: the two estimates with errors,
//! their difference in units of the combined error
//! (a − b)/√(σ_a² + σ_b²), the ratio of integrated autocorrelation times
//! τ_B/τ_A, and the cost in seconds per effectively independent sample,
//! t / (N / 2τ_int), where t is the wall-clock time stored in each file
//! (generation or sampling; flow training time is not included — see the
//! model file's metrics for it). The warnings of either file's analysis
//! (stuck chains, chains that disagree, heavy-tailed importance weights of
//! the draws or of an independence sampler's proposals) follow the table:
//! they say when a Δ/σ cannot be trusted.

use crate::analysis::{analyze_file, fmt_err, FileAnalysis};
use crate::output::{emit, num, or_none, NONE};
use anyhow::Result;
use clap::Args;
use fieldflow_stats::GammaConfig;
use std::path::PathBuf;

/// Arguments of `fieldflow compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Reference file (e.g. an HMC ensemble).
    pub a: PathBuf,
    /// Challenger file (e.g. IMH samples of a flow).
    pub b: PathBuf,
    /// Configurations to drop at the start of every chain (both files).
    #[arg(long, default_value_t = 0)]
    pub skip: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One compared observable.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// Observable.
    pub observable: String,
    /// (value, error, τ_int) in A.
    pub a: (f64, f64, f64),
    /// (value, error, τ_int) in B.
    pub b: (f64, f64, f64),
    /// (a − b)/√(σ_a² + σ_b²).
    pub deviation_sigma: f64,
    /// τ_B/τ_A.
    pub tau_ratio: f64,
    /// Seconds per effectively independent sample in A and B (if timed).
    pub cost: (Option<f64>, Option<f64>),
}

fn cost(a: &FileAnalysis, tau: f64, n: usize) -> Option<f64> {
    a.seconds.map(|s| s / (n as f64 / (2.0 * tau.max(0.5))))
}

/// Compares the common observables of two analyses.
pub fn compare(a: &FileAnalysis, b: &FileAnalysis) -> Vec<Comparison> {
    a.rows
        .iter()
        .filter_map(|ra| {
            let rb = b.row(&ra.observable)?;
            Some(Comparison {
                observable: ra.observable.clone(),
                a: (ra.value, ra.error, ra.tau_int),
                b: (rb.value, rb.error, rb.tau_int),
                deviation_sigma: (ra.value - rb.value) / (ra.error.powi(2) + rb.error.powi(2)).sqrt(),
                tau_ratio: rb.tau_int / ra.tau_int,
                cost: (cost(a, ra.tau_int, ra.n), cost(b, rb.tau_int, rb.n)),
            })
        })
        .collect()
}

/// Runs `fieldflow compare`.
pub fn run(args: CompareArgs) -> Result<()> {
    let cfg = GammaConfig::default();
    let a = analyze_file(&args.a, args.skip, &cfg)?;
    let b = analyze_file(&args.b, args.skip, &cfg)?;
    let rows = compare(&a, &b);
    // Whatever makes a file's error bars untrustworthy (stuck chains,
    // chains that disagree, heavy-tailed weights) makes its Δ/σ so too.
    let warnings: Vec<String> = [("A", &a), ("B", &b)]
        .iter()
        .flat_map(|(tag, f)| f.warnings.iter().map(move |w| format!("warning ({tag}): {w}")))
        .collect();
    if args.json {
        emit(&serde_json::to_string_pretty(&rows)?);
        warnings.iter().for_each(|w| eprintln!("{w}"));
        return Ok(());
    }
    emit(&format!(
        "A = {} ({}, {} × {})",
        a.file, a.method, a.chains, a.n_per_chain
    ));
    emit(&format!(
        "B = {} ({}, {} × {})",
        b.file, b.method, b.chains, b.n_per_chain
    ));
    emit(&format!(
        "{:<14} {:>24} {:>7} {:>24} {:>7} {:>7} {:>8} {:>11} {:>11}",
        "observable", "A", "τ_A", "B", "τ_B", "Δ/σ", "τ_B/τ_A", "s/indep A", "s/indep B"
    ));
    let fmt_cost = |c: Option<f64>| c.map_or(NONE.to_string(), |v| or_none(v, |v| format!("{v:.2e}")));
    for r in rows {
        emit(&format!(
            "{:<14} {:>24} {:>7} {:>24} {:>7} {:>7} {:>8} {:>11} {:>11}",
            r.observable,
            fmt_err(r.a.0, r.a.1),
            num(r.a.2, 2),
            fmt_err(r.b.0, r.b.1),
            num(r.b.2, 2),
            or_none(r.deviation_sigma, |d| format!("{d:+.2}")),
            num(r.tau_ratio, 2),
            fmt_cost(r.cost.0),
            fmt_cost(r.cost.1)
        ));
    }
    warnings.iter().for_each(|w| emit(w));
    Ok(())
}
