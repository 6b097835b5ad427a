//! Observables of an ensemble or sample file with honest error bars.
//!
//! Every configuration of every chain is measured through the target's
//! observables ([`fieldflow_lattice::Phi4Observables`] for lattices: the
//! same code for HMC, Metropolis and flow chains); the first `skip`
//! configurations of each chain are dropped as thermalization. Primaries get
//! Wolff's Γ-method with the chains as replica; derived quantities (χ₂, χ,
//! U₄, ξ₂, C(t), m_eff) get their errors by gradient projection
//! (docs/THEORY.md §2.9, §7.5), never as if primary. Where the target has
//! exact values (the free field, docs/THEORY.md §2.4; exact mode weights)
//! they are shown beside the estimates with the deviation in units of the
//! error. Sample files from importance sampling are analyzed with
//! self-normalized estimators (docs/THEORY.md §7.9).

use crate::target::RunTarget;
use anyhow::{bail, Result};
use fieldflow_core::Measure;
use fieldflow_core::Modes;
use fieldflow_io::{AttrValue, EnsembleReader, FileKind};
use fieldflow_lattice::observables::{effective_mass, xi2};
use fieldflow_lattice::{Phi4, Phi4Modes, Phi4Observables};
use fieldflow_slips::{StartDecided, START_MODE};
use fieldflow_stats::gamma::REPLICA_Q_MIN;
use fieldflow_stats::{gamma_derived, gamma_derived_with_gradient, numerical_gradient, GammaConfig, GammaReport};
use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Observable name.
    pub observable: String,
    /// Estimate.
    pub value: f64,
    /// Its error (Γ-method).
    pub error: f64,
    /// Integrated autocorrelation time.
    pub tau_int: f64,
    /// Its error.
    pub tau_int_error: f64,
    /// Summation window W.
    pub window: usize,
    /// Number of configurations.
    pub n: usize,
    /// Exact value where known (free field).
    pub exact: Option<f64>,
    /// Warnings of the error analysis (short chain, zero variance, chains
    /// that disagree).
    pub warnings: Vec<String>,
    /// Wolff's Q of the chains' means (`fieldflow_stats::gamma` module docs:
    /// ≈ uniform for chains that agree; tiny when a chain is stuck).
    pub replica_q: Option<f64>,
    /// Γ(t) / Γ(0) up to the window (for plots and the analysis file).
    #[serde(skip)]
    pub rho: Vec<f64>,
    /// τ_int as a function of the window (for plots).
    #[serde(skip)]
    pub tau_int_vs_window: Vec<f64>,
}

/// The analysis of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileAnalysis {
    /// The file.
    pub file: String,
    /// Target description.
    pub target: String,
    /// How the file was sampled: `mcmc` (generate), `imh`, `hybrid`, `is`.
    pub method: String,
    /// Wall-clock seconds the file took to produce, if recorded.
    pub seconds: Option<f64>,
    /// Chains and configurations per chain used.
    pub chains: usize,
    /// Configurations per chain after `--skip`.
    pub n_per_chain: usize,
    /// The table.
    pub rows: Vec<Row>,
    /// Warnings about the file as a whole (independence chains that stuck,
    /// chains that disagree, heavy-tailed importance weights).
    pub warnings: Vec<String>,
    /// The Pareto k̂ of the importance weights' tail (docs/THEORY.md
    /// §7.10): of the draws (importance sampling) or of the proposals
    /// (independence samplers: IMH, hybrid, i-SIR); None otherwise.
    pub pareto_k: Option<f64>,
    /// SLIPS files with the series `start_mode`: the fraction of particles
    /// (after `--skip`) whose sample lies in the mode of their start
    /// estimate (`fieldflow_slips::start_decided`); None otherwise.
    pub start_decided: Option<f64>,
    /// Monte Carlo history of M, per chain.
    #[serde(skip)]
    pub m_history: Vec<Vec<f64>>,
}

/// The fraction of a chain's steps beyond which a stay at one state makes
/// its error bars unreliable ([`stuck_chains`]).
pub const STUCK_FRACTION: f64 = 0.1;

/// Warnings for chains of an independence sampler (IMH, i-SIR: the state
/// changes only by flow moves) that stayed at one state for at least
/// [`STUCK_FRACTION`] of their `accepted` steps. Such a stay comes from a
/// state whose weight w = p̃/q is far above the typical one (a region the
/// flow underweights); the chain is still exact, but the Γ-method sees a few
/// long plateaus as little autocorrelation and its errors are too small
/// (docs/RESULTS.md, "Flow-MCMC benchmark").
pub fn stuck_chains(accepted: ArrayView2<u8>) -> Vec<String> {
    accepted
        .outer_iter()
        .enumerate()
        .filter_map(|(c, a)| {
            let (_, longest) = fieldflow_imh::rejection_summary(a.as_slice()?);
            (!a.is_empty() && longest as f64 >= STUCK_FRACTION * a.len() as f64).then(|| {
                format!(
                    "chain {c} stayed at one state for {longest} of {} steps: its weight p/q is far above the \
                     typical one, the error bars are too small; use global-local moves, more chains or a better flow",
                    a.len()
                )
            })
        })
        .collect()
}

impl FileAnalysis {
    /// The row of `observable`.
    pub fn row(&self, observable: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.observable == observable)
    }
}

/// The table line of observable `name` from its Γ-method report.
pub fn row(name: &str, r: &GammaReport, exact: Option<f64>) -> Row {
    Row {
        observable: name.to_string(),
        value: r.value,
        error: r.error,
        tau_int: r.tau_int,
        tau_int_error: r.tau_int_error,
        window: r.window,
        n: r.n,
        exact,
        warnings: r.warnings.iter().map(|w| format!("{w:?}")).collect(),
        replica_q: r.replica_q,
        rho: r.rho.clone(),
        tau_int_vs_window: r.tau_int_vs_window.clone(),
    }
}

/// A warning naming the observables whose chains disagree beyond their
/// errors (Wolff's replica Q below `fieldflow_stats::gamma::REPLICA_Q_MIN`;
/// the rows carry `(!)`), or none.
pub fn disagreeing_chains(rows: &[Row]) -> Option<String> {
    let bad: Vec<(&str, f64)> = rows
        .iter()
        .filter_map(|r| {
            r.replica_q
                .filter(|&q| q < REPLICA_Q_MIN)
                .map(|q| (r.observable.as_str(), q))
        })
        .collect();
    let q_min = bad.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
    (!bad.is_empty()).then(|| {
        let names: Vec<&str> = bad.iter().map(|b| b.0).collect();
        format!(
            "the chains disagree beyond their error bars on {} (replica Q down to {q_min:.1e}, \
             below {REPLICA_Q_MIN}): those errors are too small — a chain stuck in one mode or at a \
             heavy-weighted state, or correlations longer than the chains; run longer or more chains",
            names.join(", ")
        )
    })
}

/// Measures all primaries of every chain: one `[n, n_obs]` array per chain.
pub fn measure_chains(reader: &EnsembleReader, obs: &dyn Measure, skip: usize) -> Result<Vec<Array2<f64>>> {
    let configs = reader.configs_flat()?;
    let n_obs = obs.names().len();
    let n = configs.dim().1;
    if skip >= n {
        bail!(
            "{}: --skip {skip} leaves nothing of {n} configurations per chain",
            reader.path().display()
        );
    }
    Ok(configs
        .outer_iter()
        .map(|chain| {
            let chain = chain.slice(s![skip.., ..]);
            let mut out = Array2::zeros((chain.nrows(), n_obs));
            out.axis_iter_mut(Axis(0))
                .into_par_iter()
                .zip(chain.axis_iter(Axis(0)))
                .for_each(|(mut o, x)| {
                    obs.measure(x, o.as_slice_mut().expect("row-major"));
                });
            out
        })
        .collect())
}

/// Γ-method estimates of functions of the means of the primaries, for plain
/// chains or for importance-weighted draws.
///
/// With weights wᵢ the columns become (wᵢ, wᵢ a₁ᵢ, …) and a function f of the
/// means is evaluated at the ratios r_j = m_j/m₀ = ⟨w a_j⟩/⟨w⟩: the
/// self-normalized estimator, whose error then follows from the same
/// gradient projection. The gradient goes through the ratios by the chain
/// rule, ∂/∂m_j = f_j/m₀ and ∂/∂m₀ = −Σ_j f_j r_j/m₀ (f_j = ∂f/∂r_j by
/// central differences with steps of r_j's own error), so the projected
/// series is Σ_j f_j wᵢ(a_jᵢ − r_j)/m₀ up to round-off: differences taken
/// in m₀ directly would carry a relative error (δm₀/m₀)², which swamps
/// 1 − r when r is within 10⁻⁵ of 1 (the heavy mode beside a mode of
/// weight 10⁻⁷: its error came out 150× too large).
struct Estimator {
    columns: Vec<Array2<f64>>,
    /// Weighted: the central-difference steps in the ratios r_j.
    ratio_steps: Option<Vec<f64>>,
    config: GammaConfig,
}

impl Estimator {
    fn new(per_chain: Vec<Array2<f64>>, log_w: Option<Array2<f64>>, skip: usize, config: &GammaConfig) -> Self {
        let Some(log_w) = log_w else {
            return Estimator {
                columns: per_chain,
                ratio_steps: None,
                config: *config,
            };
        };
        let max = log_w.iter().copied().filter(|v| v.is_finite()).fold(f64::MIN, f64::max);
        let columns = per_chain
            .iter()
            .zip(log_w.outer_iter())
            .map(|(a, lw)| {
                let lw = lw.slice(s![skip..]);
                Array2::from_shape_fn((a.nrows(), a.ncols() + 1), |(i, j)| {
                    let w = (lw[i] - max).exp();
                    if j == 0 {
                        w
                    } else {
                        w * a[[i, j - 1]]
                    }
                })
            })
            .collect::<Vec<Array2<f64>>>();
        let ratio_steps = Some(ratio_steps(&columns));
        Estimator {
            columns,
            ratio_steps,
            config: *config,
        }
    }

    fn estimate(&self, f: &dyn Fn(&[f64]) -> f64) -> Result<GammaReport> {
        let views: Vec<ArrayView2<f64>> = self.columns.iter().map(|a| a.view()).collect();
        let r = match &self.ratio_steps {
            Some(steps) => {
                let g = |m: &[f64]| f(&ratios(m));
                let grad = |m: &[f64]| ratio_chain_rule(f, m, steps);
                gamma_derived_with_gradient(&views, g, grad, &self.config)
            }
            None => gamma_derived(&views, f, &self.config),
        };
        Ok(r?)
    }
}

/// The ratios r_j = m_j/m₀ of the weighted means m = (m₀, m₁, …).
fn ratios(m: &[f64]) -> Vec<f64> {
    m[1..].iter().map(|v| v / m[0]).collect()
}

/// The gradient of g(m) = f(m₁/m₀, …) in the means m = (m₀, m₁, …) by the
/// chain rule through the ratios ([`Estimator`]).
fn ratio_chain_rule(f: &dyn Fn(&[f64]) -> f64, m: &[f64], steps: &[f64]) -> Vec<f64> {
    let m0 = m[0];
    let r = ratios(m);
    let fr = numerical_gradient(&f, &r, steps);
    let mut g = Vec::with_capacity(m.len());
    g.push(-fr.iter().zip(&r).map(|(d, r)| d * r).sum::<f64>() / m0);
    g.extend(fr.iter().map(|d| d / m0));
    g
}

/// The standard errors (naive, without autocorrelation) of the ratios
/// r_j = ⟨w a_j⟩/⟨w⟩ of weighted columns (w, w a₁, …):
/// √(Σᵢ wᵢ²(a_jᵢ − r_j)²)/(N m₀), the central-difference steps of
/// [`ratio_chain_rule`] (0 for a constant ratio: its derivative is not
/// needed, the projection never sees it).
fn ratio_steps(columns: &[Array2<f64>]) -> Vec<f64> {
    let n: usize = columns.iter().map(|a| a.nrows()).sum();
    let ncols = columns.first().map_or(0, |a| a.ncols());
    let mean = |j: usize| columns.iter().map(|a| a.column(j).sum()).sum::<f64>() / n as f64;
    let m0 = mean(0);
    (1..ncols)
        .map(|j| {
            let r = mean(j) / m0;
            let ss: f64 = columns
                .iter()
                .flat_map(|a| a.rows().into_iter().map(move |row| (row[j] - r * row[0]).powi(2)))
                .sum();
            let h = ss.sqrt() / (n as f64 * m0);
            if h.is_finite() {
                h
            } else {
                0.0
            }
        })
        .collect()
}

/// Analyzes one file.
pub fn analyze_file(path: &Path, skip: usize, cfg: &GammaConfig) -> Result<FileAnalysis> {
    let reader = EnsembleReader::open(path)?;
    if !matches!(reader.kind(), FileKind::Ensemble | FileKind::Samples) {
        bail!(
            "{}: a {} file holds no configurations to analyze",
            path.display(),
            reader.kind().as_str()
        );
    }
    let target = RunTarget::from_stored(&reader.header().config, path)?;
    let method = match reader.header().extra.get("method") {
        Some(AttrValue::Str(m)) => m.clone(),
        _ => "mcmc".to_string(),
    };
    let obs = target.observables();
    let names = obs.names();
    let per_chain = measure_chains(&reader, obs.as_ref(), skip)?;
    let n_per_chain = per_chain[0].nrows();
    let chains = per_chain.len();
    let col = |name: &str| names.iter().position(|n| n == name);
    let m_history = match col("M").or(col("x0")) {
        Some(c) => per_chain.iter().map(|a| a.column(c).to_vec()).collect(),
        None => vec![],
    };
    let decided = start_decided(&reader, &names, &per_chain, skip)?;
    let log_w = if method == "is" {
        Some(reader.series("log_w")?)
    } else {
        None
    };
    // log Z = log E_q[w] (docs/THEORY.md §6.3) with the delta-method error,
    // and whether the weights' tail lets any error be trusted (Pareto k̂,
    // §7.10): importance sampling from its draws after `skip`; an
    // independence sampler (IMH, hybrid, i-SIR) from its proposals after
    // `skip` — each an independent draw of q, accepted or not, so the same
    // estimator holds (NaN marks a step without one: neutra, SLIPS).
    let draws: Vec<f64> = match &log_w {
        Some(lw) => lw.slice(s![.., skip.min(lw.ncols())..]).iter().copied().collect(),
        None => proposal_log_weights(&reader, skip)?,
    };
    let pareto = match &log_w {
        Some(_) => fieldflow_stats::pareto_k(&draws).ok(),
        None => finite_weights_tail(draws.iter().copied()),
    };
    let log_z_row = fieldflow_stats::log_z(&draws).ok().map(|r| Row {
        observable: "log_Z".into(),
        value: r.log_z,
        error: r.error,
        tau_int: 0.5,
        tau_int_error: 0.0,
        window: 0,
        n: draws.len(),
        exact: target.as_target().log_z(),
        warnings: vec![],
        replica_q: None,
        rho: vec![],
        tau_int_vs_window: vec![],
    });
    let est = Estimator::new(per_chain, log_w, skip, cfg);
    let ctx = |e: anyhow::Error| e.context(format!("{}: error analysis failed", path.display()));
    let mut rows = Vec::new();
    match &target {
        RunTarget::Phi4(phi4) => phi4_rows(phi4, &est, &names, &mut rows).map_err(ctx)?,
        RunTarget::Synthetic(t) => {
            let truth = t.true_weights();
            for (c, name) in names.iter().enumerate() {
                let exact = name
                    .strip_prefix("mode_")
                    .and_then(|k| k.parse::<usize>().ok())
                    .and_then(|k| truth.as_ref().map(|w| w[k]));
                rows.push(row(name, &est.estimate(&|a: &[f64]| a[c]).map_err(ctx)?, exact));
            }
        }
    }
    rows.extend(log_z_row);
    let mut warnings = if matches!(method.as_str(), "imh" | "isir") {
        let acc = reader.series_u8("accepted")?;
        stuck_chains(acc.slice(s![.., skip.min(acc.ncols())..]).as_standard_layout().view())
    } else {
        Vec::new()
    };
    warnings.extend(decided.as_ref().and_then(StartDecided::warning));
    warnings.extend(disagreeing_chains(&rows));
    warnings.extend(pareto.and_then(|t| match method.as_str() {
        "is" => heavy_tail_warning(&t),
        _ => sticky_chain_warning(&t),
    }));
    let seconds = match reader.header().extra.get("seconds") {
        Some(AttrValue::F64(s)) => Some(*s),
        _ => None,
    };
    Ok(FileAnalysis {
        file: path.display().to_string(),
        target: reader.header().target.clone(),
        method,
        seconds,
        chains,
        n_per_chain,
        rows,
        warnings,
        pareto_k: pareto.map(|t| t.k),
        start_decided: decided.map(|d| d.kept_fraction()),
        m_history,
    })
}

/// The start-decided diagnostic of a SLIPS file (`fieldflow_slips::start_decided`):
/// each particle's `start_mode` against the mode of its sample (the
/// observables' `mode_k` indicators), after `skip`; None for files without
/// the series.
fn start_decided(
    reader: &EnsembleReader,
    names: &[String],
    per_chain: &[Array2<f64>],
    skip: usize,
) -> Result<Option<StartDecided>> {
    if !reader.series_names().contains(&START_MODE) {
        return Ok(None);
    }
    let mode_cols: Vec<usize> = (0..)
        .map_while(|k| names.iter().position(|n| *n == format!("mode_{k}")))
        .collect();
    let start = reader.series(START_MODE)?;
    let mut d = StartDecided::new(mode_cols.len());
    for (c, a) in per_chain.iter().enumerate() {
        let fin = a
            .rows()
            .into_iter()
            .map(|r| mode_cols.iter().position(|&j| r[j] == 1.0).unwrap_or(usize::MAX));
        d.add(start.row(c).iter().skip(skip).copied(), fin);
    }
    Ok(Some(d))
}

/// The log weights of an independence sampler's proposals (the series
/// `log_w_proposal` after `skip`; IMH, hybrid, i-SIR), without the NaN of
/// steps that had none; empty for files without the series (older files).
fn proposal_log_weights(reader: &EnsembleReader, skip: usize) -> Result<Vec<f64>> {
    if !reader.series_names().contains(&fieldflow_imh::PROPOSAL_LOG_W) {
        return Ok(Vec::new());
    }
    let lw = reader.series(fieldflow_imh::PROPOSAL_LOG_W)?;
    Ok(lw
        .slice(s![.., skip.min(lw.ncols())..])
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .collect())
}

/// The Pareto tail of the finite ln w among `log_w` (NaN marks no proposal;
/// a zero weight, ln w = −∞, cannot be in the upper tail); None if too few.
pub fn finite_weights_tail(log_w: impl Iterator<Item = f64>) -> Option<fieldflow_stats::ParetoTail> {
    let finite: Vec<f64> = log_w.filter(|v| v.is_finite()).collect();
    fieldflow_stats::pareto_k(&finite).ok()
}

/// The warning for chains of an independence sampler whose proposals'
/// weights have too heavy a tail (Pareto k̂ above its threshold): the chain
/// stays exact, but it sits for long stretches at rare states of large
/// weight, so the Γ-method sees too little autocorrelation and its errors
/// are too small (docs/THEORY.md §7.10); None otherwise.
pub fn sticky_chain_warning(t: &fieldflow_stats::ParetoTail) -> Option<String> {
    t.unreliable().then(|| {
        format!(
            "the proposals' importance weights have a heavy tail (Pareto k̂ = {:.2} > {:.2}, docs/THEORY.md §7.10): \
             the chains stick at rare states of large weight and their error bars are too small; \
             longer chains converge slowly, a better-trained model helps",
            t.k,
            t.threshold()
        )
    })
}

/// The warning for importance weights whose tail is too heavy for their
/// estimates and errors to be trusted (Pareto k̂ above its threshold,
/// docs/THEORY.md §7.10), or None.
pub fn heavy_tail_warning(t: &fieldflow_stats::ParetoTail) -> Option<String> {
    t.unreliable().then(|| {
        format!(
            "the importance weights have a heavy tail (Pareto k̂ = {:.2} > {:.2}, docs/THEORY.md §7.10): \
             weighted estimates and their errors are unreliable; more samples from this model help little, \
             a better-trained model does",
            t.k,
            t.threshold()
        )
    })
}

/// The φ⁴ table: primaries, χ₂, χ, U₄, ξ₂, C(t), m_eff(t) (docs/THEORY.md §2.9),
/// with the free-field values where λ = 0.
fn phi4_rows(target: &Phi4, est: &Estimator, names: &[String], rows: &mut Vec<Row>) -> Result<()> {
    let col = |name: &str| names.iter().position(|n| n == name).expect("known observable");
    let lat = target.lattice();
    let v = lat.volume() as f64;
    let l0 = lat.shape()[0];
    let free = target.free_field();
    let exact_primary = |name: &str| -> Option<f64> {
        let f = free.as_ref()?;
        match name {
            "M" => Some(0.0),
            "M2" => Some(f.chi2() / v),
            "action_density" => Some(f.action_density()),
            _ => None,
        }
    };
    for name in ["M", "abs_M", "M2", "M4", "action_density"] {
        let c = col(name);
        rows.push(row(name, &est.estimate(&|a: &[f64]| a[c])?, exact_primary(name)));
    }
    // The modes of the broken phase by the sign of M: exact ½ each by the
    // φ → −φ symmetry of the action.
    let weights = Phi4Modes.true_weights().expect("φ⁴ modes have exact weights");
    for (k, w) in weights.iter().enumerate() {
        let name = format!("mode_{k}");
        let c = col(&name);
        rows.push(row(&name, &est.estimate(&|a: &[f64]| a[c])?, Some(*w)));
    }
    let (m, m2, m4, am) = (col("M"), col("M2"), col("M4"), col("abs_M"));
    rows.push(row(
        "chi2",
        &est.estimate(&|a: &[f64]| v * a[m2])?,
        free.as_ref().map(|f| f.chi2()),
    ));
    rows.push(row(
        "chi",
        &est.estimate(&|a: &[f64]| v * (a[m2] - a[am] * a[am]))?,
        None,
    ));
    rows.push(row(
        "U4",
        &est.estimate(&|a: &[f64]| 1.0 - a[m4] / (3.0 * a[m2] * a[m2]))?,
        None,
    ));
    let p0 = Phi4Observables::new(target).pmin2_offset();
    if l0 > 2 {
        // ξ₂ is undefined when χ₂/F < 1 (tiny or noisy samples): left out then.
        if let Ok(xi) = est.estimate(&|a: &[f64]| xi2(v * a[m2], a[p0], l0)) {
            rows.push(row("xi2", &xi, free.as_ref().and_then(|f| f.xi2(0))));
        }
    }
    let ct0 = Phi4Observables::CT_OFFSET;
    let exact_c = free.as_ref().map(|f| f.zero_momentum_correlator());
    let corr = |t: usize, a: &[f64]| a[ct0 + t] - (v / l0 as f64) * a[m] * a[m];
    for t in 0..=l0 / 2 {
        let r = est.estimate(&|a: &[f64]| corr(t, a))?;
        rows.push(row(&format!("C({t})"), &r, exact_c.as_ref().map(|c| c[t])));
    }
    for t in 1..l0 / 2 {
        let f = |a: &[f64]| {
            let c: Vec<f64> = (t - 1..=t + 1).map(|s| corr(s, a)).collect();
            effective_mass(&c).first().copied().unwrap_or(f64::NAN)
        };
        let exact = exact_c.as_ref().map(|c| effective_mass(&c[t - 1..=t + 1])[0]);
        // m_eff is undefined where C(t±1) are noise; such t are left out.
        if let Ok(r) = est.estimate(&f) {
            if r.value.is_finite() {
                rows.push(row(&format!("m_eff({t})"), &r, exact));
            }
        }
    }
    Ok(())
}

/// Formats value ± error with the error's two significant digits (a value
/// that does not exist as [`crate::output::NONE`]).
pub fn fmt_err(value: f64, error: f64) -> String {
    if value.is_nan() {
        return crate::output::NONE.to_string();
    }
    if !(error > 0.0) || !error.is_finite() {
        return format!("{value:.6}");
    }
    let digits = (1 - error.log10().floor() as i32).clamp(0, 12) as usize;
    format!("{value:.digits$} ± {error:.digits$}")
}

/// An exact value with at least six decimals, more when the estimate's
/// error needs them (a mode weight of 1.7·10⁻⁷ beside 1.735e-7 ± 2e-9).
fn fmt_exact(exact: f64, error: f64) -> String {
    let digits = if error > 0.0 && error.is_finite() {
        (1 - error.log10().floor() as i32).clamp(6, 12) as usize
    } else {
        6
    };
    format!("{exact:.digits$}")
}

/// A difference in units of its error, `+1.23`, or [`crate::output::NONE`]
/// where the error is zero (a constant series) or the difference is NaN.
pub fn deviation(diff: f64, error: f64) -> String {
    if error > 0.0 && error.is_finite() {
        crate::output::or_none(diff / error, |d| format!("{d:+.2}"))
    } else {
        crate::output::NONE.to_string()
    }
}

/// The text table of one analysis.
pub fn render_table(a: &FileAnalysis) -> String {
    let mut s = format!(
        "{}\n  target: {}\n  {} chains × {} configurations ({})\n",
        a.file, a.target, a.chains, a.n_per_chain, a.method
    );
    if let Some(k) = a.pareto_k {
        let whose = if a.method == "is" { "" } else { "proposals' " };
        s += &format!(
            "  Pareto k̂ of the {whose}importance weights: {k:.2} (≤ 0.5 finite variance; above {} unreliable)\n",
            fieldflow_stats::PARETO_K_MAX
        );
    }
    s += &format!(
        "  {:<16} {:>26} {:>16} {:>6} {:>26} {:>7}\n",
        "observable", "value ± error", "τ_int ± error", "W", "exact", "dev/σ"
    );
    for r in &a.rows {
        let (exact, dev) = match r.exact {
            Some(e) => (fmt_exact(e, r.error), deviation(r.value - e, r.error)),
            None => (String::new(), String::new()),
        };
        let warn = if r.warnings.is_empty() { "" } else { "  (!)" };
        s += &format!(
            "  {:<16} {:>26} {:>16} {:>6} {:>26} {:>7}{warn}\n",
            r.observable,
            fmt_err(r.value, r.error),
            format!("{:.2} ± {:.2}", r.tau_int, r.tau_int_error),
            r.window,
            exact,
            dev
        );
    }
    for w in &a.warnings {
        s += &format!("  warning: {w}\n");
    }
    s
}

/// Observables common to several files, one column per file:
/// value ± error \[τ_int\].
pub fn side_by_side(analyses: &[FileAnalysis]) -> String {
    let names: Vec<String> = analyses
        .iter()
        .map(|a| {
            Path::new(&a.file)
                .file_name()
                .map_or(a.file.clone(), |n| n.to_string_lossy().to_string())
        })
        .collect();
    let mut s = format!("{:<16}", "observable");
    for n in &names {
        s += &format!(" {n:>34}");
    }
    s.push('\n');
    for r in &analyses[0].rows {
        let cells: Option<Vec<String>> = analyses
            .iter()
            .map(|a| {
                a.row(&r.observable)
                    .map(|x| format!("{} [{:.1}]", fmt_err(x.value, x.error), x.tau_int))
            })
            .collect();
        if let Some(cells) = cells {
            s += &format!("{:<16}", r.observable);
            for c in cells {
                s += &format!(" {c:>34}");
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain rule through the ratios against central differences of
    /// g(m) = f(m₁/m₀, m₂/m₀) taken in m directly, for a non-linear f.
    #[test]
    fn the_ratio_chain_rule_matches_central_differences() {
        let f = |r: &[f64]| r[0] * r[0] - r[1] * r[0] + r[1].sin();
        let m = [0.7, 0.3, 1.9];
        let g = |m: &[f64]| f(&[m[1] / m[0], m[2] / m[0]]);
        let grad = ratio_chain_rule(&f, &m, &[1e-4, 1e-4]);
        let fd = numerical_gradient(&g, &m, &[1e-5; 3]);
        for (a, b) in grad.iter().zip(&fd) {
            assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{grad:?} vs {fd:?}");
        }
    }

    /// Importance weights where one mode carries 10⁻⁷ of the mass but half
    /// the draws (a mixture proposing with equal weights): the two mode
    /// weights are complements, so their errors must agree; they do to
    /// round-off, and both equal the iid delta-method error
    /// √(Σ wᵢ²(aᵢ − r)²)/(N m₀) within the Γ-method's window factor.
    #[test]
    fn complementary_weighted_ratios_get_the_same_error() {
        let n = 4000;
        // SplitMix64 of the index: uniform spreads without a rand dependency.
        let uniform = |i: u64| {
            let mut z = i.wrapping_add(5).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut a = Array2::zeros((n, 2));
        let mut log_w = Array2::zeros((1, n));
        for i in 0..n {
            let minority = i % 2 == 1;
            a[[i, 0]] = if minority { 0.0 } else { 1.0 };
            a[[i, 1]] = 1.0 - a[[i, 0]];
            let spread = uniform(i as u64) - 0.5;
            log_w[[0, i]] = spread + if minority { -16.0 } else { 0.0 };
        }
        let est = Estimator::new(vec![a.clone()], Some(log_w.clone()), 0, &GammaConfig::default());
        let heavy = est.estimate(&|r: &[f64]| r[0]).unwrap();
        let light = est.estimate(&|r: &[f64]| r[1]).unwrap();
        assert!((heavy.value + light.value - 1.0).abs() < 1e-12);
        assert!(light.value > 1e-8 && light.value < 1e-6, "{}", light.value);
        assert!(
            (heavy.error - light.error).abs() < 1e-6 * light.error,
            "{} vs {}",
            heavy.error,
            light.error
        );
        let w: Vec<f64> = log_w.iter().map(|l| l.exp()).collect();
        let m0 = w.iter().sum::<f64>() / n as f64;
        let r = light.value;
        let ss: f64 = w.iter().zip(a.column(1)).map(|(w, a)| (w * (a - r)).powi(2)).sum();
        let naive = ss.sqrt() / (n as f64 * m0);
        assert!((light.error / naive - 1.0).abs() < 0.2, "{} vs {naive}", light.error);
    }

    #[test]
    fn a_chain_that_stays_for_a_tenth_of_its_steps_is_flagged() {
        // Chain 0 moves at every step; chain 1 stays 10 of 100 steps in a
        // row (flagged), chain 2 stays 9 (not flagged).
        let mut acc = Array2::<u8>::ones((3, 100));
        for i in 20..30 {
            acc[[1, i]] = 0;
        }
        for i in 20..29 {
            acc[[2, i]] = 0;
        }
        let w = stuck_chains(acc.view());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("chain 1 stayed at one state for 10 of 100 steps"),
            "{}",
            w[0]
        );
    }
}
