//! Wolff's Γ-method: mean values, their errors, the error of the error and
//! the integrated autocorrelation time, for primary observables and for
//! derived quantities F = f(A_1, A_2, …) (docs/THEORY.md §7.2–§7.6; U. Wolff, "Monte Carlo
//! errors with less errors", hep-lat/0306017, Comput. Phys. Commun. 156
//! (2004) 143, cited below as "Wolff").
//!
//! # Data
//! R replica (independent chains) r with N_r configurations, N = Σ_r N_r;
//! measurements a_α^{i,r} of primary observables α. Means per replica
//! ā_α^r = (1/N_r) Σ_i a_α^{i,r}, global ā̄_α = (1/N) Σ_r N_r ā_α^r.
//!
//! # Projection (derived quantities)
//! f_α = ∂f/∂A_α at ā̄ (user gradient, or central differences with steps
//! h_α = √(Γ_αα(0)/N), the naive error of ā̄_α, as Wolff suggests: small enough
//! that the O(h²) error of the difference quotient is far below the
//! statistical one, large enough to stay clear of round-off). The projected
//! fluctuations δ_i^r = Σ_α f_α (a_α^{i,r} − ā̄_α) carry all the information
//! needed: Γ_F(t) = Σ_αβ f_α f_β Γ_αβ(t) is the autocovariance of δ. For a
//! primary observable f_α = 1 for its own column.
//!
//! # Autocorrelation function (Wolff, replica form)
//! Γ_F(t) = [Σ_r Σ_{i=1}^{N_r−t} δ_i^r δ_{i+t}^r] / Σ_r (N_r − t)⁺,
//! fluctuations about the *global* mean ā̄ in every replica; with all
//! N_r > t the denominator is Wolff's N − Rt. Lags t = 0 … t_max with
//! t_max = ⌊max_r N_r / 2⌋ **(ours)** (capped by [`GammaConfig::max_lag`]);
//! a replica stops contributing at lags t ≥ N_r. The lagged sums come from
//! [`crate::autocov`] (direct or zero-padded FFT).
//! ρ_F(t) = Γ_F(t)/Γ_F(0); τ_int(W) = ½ + Σ_{t=1}^{W} ρ_F(t).
//!
//! # Automatic window (Wolff, S = 1.5 by default)
//! τ(W) = S / ln[(2τ_int(W)+1)/(2τ_int(W)−1)] (τ(W) → 0⁺ when τ_int(W) ≤ ½),
//! g(W) = exp(−W/τ(W)) − τ(W)/√(W N); W_opt = first W ≥ 1 with g(W) < 0.
//! If no W ≤ t_max qualifies, W = t_max and [`GammaWarning::WindowNotFound`]
//! is reported (the chain is too short for the analysis).
//!
//! # Bias correction and results
//! C_F(W) = Γ_F(0) + 2 Σ_{t=1}^{W} Γ_F(t). The estimate of Γ_F(t) is biased by
//! −C_F/N because of the subtracted mean; Wolff corrects Γ_F(t) → Γ_F(t) +
//! C_F(W_opt)/N for all t and recomputes C_F, ρ and τ_int (switch off with
//! [`GammaConfig::bias_correction`]). Then
//! - σ_F = √(C_F/N), τ_int = C_F/(2Γ_F(0)) (both at W_opt);
//! - error of the error: ⟨δC_F²⟩ ≈ (2(2W+1)/N) C_F², hence
//!   δσ_F = σ_F √((W + ½)/N);
//! - error of τ_int (Madras–Sokal formula quoted by Wolff):
//!   δτ_int = 2 τ_int √((W + ½ − τ_int)/N).
//!
//! # Value of a derived quantity with replica
//! R = 1: F̂ = f(ā̄). R ≥ 2 (Wolff's bias-cancelled estimate, switch:
//! [`GammaConfig::replica_bias_correction`]): with F̄̄ = (1/N) Σ_r N_r f(ā^r),
//! F̂ = (R f(ā̄) − F̄̄)/(R − 1), which removes the O(1/N) bias of f(ā̄).
//! The per-replica values f(ā^r) are returned so that their consistency can
//! be judged.
//!
//! # Replica consistency (Wolff §3.3)
//! Replica r alone would estimate F with variance ≈ σ_F² N/N_r, so with R ≥ 2
//! independent replica of one process
//! χ² = Σ_r (N_r/N) (f(ā^r) − F̂)²/σ_F² is ≈ χ² with R − 1 degrees of
//! freedom, and Q = P(χ²_{R−1} ≥ χ²) (`replica_q`, [`chi2_survival`]) is
//! ≈ uniform on (0, 1). A tiny Q says the replica disagree beyond the
//! error: a chain stuck in a mode or at one heavy-weighted state, a
//! tunnelling time beyond the window — the error bar is too small, and
//! [`GammaWarning::ReplicaDisagreement`] is raised below [`REPLICA_Q_MIN`].
//!
//! # Degenerate input
//! Fewer than 2 samples in total is an error. Zero variance (Γ_F(0) at round-off level, e.g. a constant chain) gives a
//! report with error 0, τ_int = ½, W = 0 and [`GammaWarning::ZeroVariance`]:
//! never NaN, never a panic. NaN/∞ in the data is an error naming the
//! replica, index and observable.

use crate::autocov::{lagged_sums, AutocovMethod};
use crate::data::{replica_and_global_means, validate_series, validate_views, AsSeries};
use crate::StatsError;
use fieldflow_core::ConfigError;
use ndarray::ArrayView2;

/// Settings of the Γ-method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaConfig {
    /// Wolff's S: ratio of the assumed exponential autocorrelation time to
    /// τ_int used by the automatic window (default 1.5; > 0).
    pub s_tau: f64,
    /// Correct Γ(t) by C_F/N (default true).
    pub bias_correction: bool,
    /// For R ≥ 2 replica, use the bias-cancelled value (R f(ā̄) − F̄̄)/(R − 1)
    /// for derived quantities (default true).
    pub replica_bias_correction: bool,
    /// How the lagged sums are computed (default: automatic).
    pub method: AutocovMethod,
    /// Upper bound on the lags examined (default: ⌊max_r N_r / 2⌋).
    pub max_lag: Option<usize>,
}

impl Default for GammaConfig {
    fn default() -> Self {
        GammaConfig {
            s_tau: 1.5,
            bias_correction: true,
            replica_bias_correction: true,
            method: AutocovMethod::Auto,
            max_lag: None,
        }
    }
}

impl GammaConfig {
    /// Checks the settings once, before any work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.s_tau.is_finite() && self.s_tau > 0.0) {
            return Err(ConfigError::new("gamma.s_tau", self.s_tau, "must be finite and > 0"));
        }
        if self.max_lag == Some(0) {
            return Err(ConfigError::new("gamma.max_lag", 0, "must be >= 1"));
        }
        Ok(())
    }
}

/// Something the caller should know about a [`GammaReport`]: the numbers are
/// still finite and usable, but less trustworthy.
#[derive(Debug, Clone, PartialEq)]
pub enum GammaWarning {
    /// Γ_F(0) is zero to round-off (e.g. a constant chain): error 0, τ_int = ½.
    ZeroVariance,
    /// No window W ≤ `max_lag` satisfied g(W) < 0: the chain is too short
    /// for the automatic windowing; W = `max_lag` was used.
    WindowNotFound {
        /// The largest lag examined.
        max_lag: usize,
    },
    /// N < 100 τ_int **(ours)**: errors and τ_int are themselves uncertain
    /// (see `error_of_error`, `tau_int_error`).
    ShortChain {
        /// Total number of configurations N.
        n: usize,
        /// The estimated τ_int.
        tau_int: f64,
    },
    /// C_F(W_opt) ≤ 0 (strongly anticorrelated data): the naive error
    /// √(Γ_F(0)/N) and τ_int = ½ are reported instead (docs/THEORY.md §7.6).
    NonPositiveCf {
        /// The computed C_F.
        c_f: f64,
    },
    /// The derived function is not finite at some replica mean, so the
    /// replica bias cancellation was skipped and f(ā̄) is reported.
    ReplicaBiasCorrectionSkipped,
    /// The replica disagree beyond the error (Q < [`REPLICA_Q_MIN`], module
    /// docs): the error bar is too small (a chain stuck in a mode or at a
    /// heavy-weighted state, or a correlation longer than the window).
    ReplicaDisagreement {
        /// Wolff's Q of the replica means.
        q: f64,
    },
}

/// The Q below which [`GammaWarning::ReplicaDisagreement`] is raised (one
/// false alarm per thousand observables of a healthy run).
pub const REPLICA_Q_MIN: f64 = 1e-3;

/// The result of a Γ-method analysis of one (primary or derived) observable.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaReport {
    /// Estimate F̂ (global mean for a primary; see module docs for derived).
    pub value: f64,
    /// Statistical error σ_F = √(C_F/N).
    pub error: f64,
    /// Error of the error, σ_F √((W + ½)/N).
    pub error_of_error: f64,
    /// Integrated autocorrelation time τ_int = C_F/(2Γ_F(0)) (½ for
    /// uncorrelated data).
    pub tau_int: f64,
    /// Error of τ_int, 2τ_int √((W + ½ − τ_int)/N).
    pub tau_int_error: f64,
    /// The summation window W_opt.
    pub window: usize,
    /// Total number of configurations N = Σ_r N_r.
    pub n: usize,
    /// Number of replica R.
    pub n_replica: usize,
    /// Naive error √(Γ_F(0)/N) that ignores autocorrelations (bias-corrected Γ).
    pub naive_error: f64,
    /// The (bias-corrected, if enabled) autocovariance Γ_F(t), **unnormalized**,
    /// for t = 0 … min(t_max, max(4 W_opt, 50)).
    pub gamma: Vec<f64>,
    /// The normalized autocorrelation ρ_F(t) = Γ_F(t)/Γ_F(0), same lags.
    pub rho: Vec<f64>,
    /// τ_int(W) = C_F(W)/(2Γ_F(0)) for W = 0 … (same length as `gamma`).
    pub tau_int_vs_window: Vec<f64>,
    /// f(ā^r) per replica (the replica means for a primary observable).
    pub replica_values: Vec<f64>,
    /// Wolff's Q of the replica consistency (module docs); `None` with one
    /// replica, zero error or a non-finite replica value.
    pub replica_q: Option<f64>,
    /// Reasons to distrust the numbers; empty when all is well.
    pub warnings: Vec<GammaWarning>,
}

impl GammaReport {
    /// True when the analysis raised no warning.
    pub fn is_clean(&self) -> bool {
        self.warnings.is_empty()
    }
}

/// Γ-method analysis of one primary observable measured on one or more
/// replica (each a slice, `Vec`, or ndarray vector/view; lengths may differ).
///
/// ```
/// use fieldflow_stats::{gamma_primary, GammaConfig};
/// let chain_a: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
/// let chain_b = chain_a[..600].to_vec();
/// let rep = gamma_primary(&[chain_a, chain_b], &GammaConfig::default()).unwrap();
/// assert!(rep.error > 0.0 && rep.n == 1600);
/// ```
pub fn gamma_primary<D: AsSeries>(replica: &[D], cfg: &GammaConfig) -> Result<GammaReport, StatsError> {
    cfg.validate()?;
    validate_series(replica)?;
    let n: usize = replica.iter().map(|d| d.series().len()).sum();
    check_n(n)?;
    let replica_values: Vec<f64> = replica.iter().map(|d| crate::data::mean_of(d.series())).collect();
    let mut mean = replica
        .iter()
        .zip(&replica_values)
        .map(|(d, m)| d.series().len() as f64 * m)
        .sum::<f64>()
        / n as f64;
    mean += replica
        .iter()
        .map(|d| d.series().iter().map(|v| v - mean).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    let scale = replica
        .iter()
        .flat_map(|d| d.series().into_iter().map(|v| v.abs()))
        .fold(0.0, f64::max);
    let deltas: Vec<Vec<f64>> = replica
        .iter()
        .map(|d| d.series().iter().map(|v| v - mean).collect())
        .collect();
    Ok(analyze(&deltas, mean, replica_values, scale, cfg, Vec::new()))
}

/// Γ-method analysis of a derived quantity F = f(A_1, …, A_m) with a
/// numerical gradient (central differences, steps h_α = √(Γ_αα(0)/N)).
///
/// Each replica is an `ArrayView2` with one configuration per row and one
/// primary observable per column; all replica must have the same columns.
/// A primary observable is the special case f(a) = a_α.
pub fn gamma_derived<F>(replica: &[ArrayView2<f64>], f: F, cfg: &GammaConfig) -> Result<GammaReport, StatsError>
where
    F: Fn(&[f64]) -> f64,
{
    derived_impl(replica, &f, None, cfg)
}

/// As [`gamma_derived`], with the analytic gradient ∇f (one component per
/// column) supplied by the caller.
pub fn gamma_derived_with_gradient<F, G>(
    replica: &[ArrayView2<f64>],
    f: F,
    grad: G,
    cfg: &GammaConfig,
) -> Result<GammaReport, StatsError>
where
    F: Fn(&[f64]) -> f64,
    G: Fn(&[f64]) -> Vec<f64>,
{
    derived_impl(replica, &f, Some(&grad), cfg)
}

/// Central-difference gradient of `f` at `x` with per-component steps `h`
/// (a component with h = 0 gets derivative 0: its observable does not
/// fluctuate, so the projection never needs it).
pub fn numerical_gradient<F: Fn(&[f64]) -> f64>(f: &F, x: &[f64], h: &[f64]) -> Vec<f64> {
    let mut p = x.to_vec();
    (0..x.len())
        .map(|alpha| {
            if h[alpha] == 0.0 {
                return 0.0;
            }
            p[alpha] = x[alpha] + h[alpha];
            let up = f(&p);
            p[alpha] = x[alpha] - h[alpha];
            let down = f(&p);
            p[alpha] = x[alpha];
            (up - down) / (2.0 * h[alpha])
        })
        .collect()
}

/// A variance needs at least two samples in total.
fn check_n(n: usize) -> Result<(), StatsError> {
    if n < 2 {
        return Err(StatsError::TooFewSamples {
            what: "the Γ-method",
            n,
            min: 2,
        });
    }
    Ok(())
}

type GradFn<'a> = &'a dyn Fn(&[f64]) -> Vec<f64>;

fn derived_impl(
    replica: &[ArrayView2<f64>],
    f: &dyn Fn(&[f64]) -> f64,
    grad: Option<GradFn<'_>>,
    cfg: &GammaConfig,
) -> Result<GammaReport, StatsError> {
    cfg.validate()?;
    let n_obs = validate_views(replica)?;
    let n: usize = replica.iter().map(|a| a.nrows()).sum();
    check_n(n)?;
    let (per_replica, global) = replica_and_global_means(replica);

    let f_global = f(&global);
    if !f_global.is_finite() {
        return Err(StatsError::NonFiniteDerived { value: f_global });
    }
    let gradient = match grad {
        Some(g) => g(&global),
        None => {
            // Naive variances Γ_αα(0) about the global mean give the steps.
            let steps: Vec<f64> = (0..n_obs)
                .map(|alpha| {
                    let ss: f64 = replica
                        .iter()
                        .map(|a| a.column(alpha).iter().map(|v| (v - global[alpha]).powi(2)).sum::<f64>())
                        .sum();
                    (ss / n as f64 / n as f64).sqrt()
                })
                .collect();
            numerical_gradient(&f, &global, &steps)
        }
    };
    if gradient.len() != n_obs {
        return Err(StatsError::GradientLength {
            expected: n_obs,
            found: gradient.len(),
        });
    }
    if let Some((index, &value)) = gradient.iter().enumerate().find(|(_, g)| !g.is_finite()) {
        return Err(StatsError::NonFiniteGradient { index, value });
    }

    let mut scale = 0.0;
    for alpha in 0..n_obs {
        let max_abs = replica
            .iter()
            .flat_map(|a| a.column(alpha).into_iter().map(|v| v.abs()))
            .fold(0.0, f64::max);
        scale += gradient[alpha].abs() * max_abs;
    }
    let deltas: Vec<Vec<f64>> = replica
        .iter()
        .map(|a| {
            a.rows()
                .into_iter()
                .map(|row| {
                    row.iter()
                        .zip(&gradient)
                        .zip(&global)
                        .map(|((v, g), m)| g * (v - m))
                        .sum()
                })
                .collect()
        })
        .collect();

    let replica_values: Vec<f64> = per_replica.iter().map(|m| f(m)).collect();
    let r = replica.len();
    let mut warnings = Vec::new();
    let value = if r >= 2 && cfg.replica_bias_correction {
        if replica_values.iter().all(|v| v.is_finite()) {
            let fbb: f64 = replica
                .iter()
                .zip(&replica_values)
                .map(|(a, v)| a.nrows() as f64 * v)
                .sum::<f64>()
                / n as f64;
            (r as f64 * f_global - fbb) / (r as f64 - 1.0)
        } else {
            warnings.push(GammaWarning::ReplicaBiasCorrectionSkipped);
            f_global
        }
    } else {
        f_global
    };
    Ok(analyze(&deltas, value, replica_values, scale, cfg, warnings))
}

/// Automatic windowing: the first W in 1..=t_max with g(W) < 0, given the
/// (uncorrected) Γ(0..=t_max) and the total N.
pub(crate) fn find_window(gamma: &[f64], n: usize, s_tau: f64) -> Option<usize> {
    let g0 = gamma[0];
    let mut tau_int = 0.5;
    for w in 1..gamma.len() {
        tau_int += gamma[w] / g0;
        let tau = if tau_int <= 0.5 {
            f64::MIN_POSITIVE
        } else {
            s_tau / ((2.0 * tau_int + 1.0) / (2.0 * tau_int - 1.0)).ln()
        };
        let g = (-(w as f64) / tau).exp() - tau / ((w * n) as f64).sqrt();
        if g < 0.0 {
            return Some(w);
        }
    }
    None
}

/// The Γ-method proper, on projected fluctuations δ_i^r about the global mean.
fn analyze(
    deltas: &[Vec<f64>],
    value: f64,
    replica_values: Vec<f64>,
    scale: f64,
    cfg: &GammaConfig,
    mut warnings: Vec<GammaWarning>,
) -> GammaReport {
    let n: usize = deltas.iter().map(|d| d.len()).sum();
    let n_max = deltas.iter().map(|d| d.len()).max().unwrap_or(0);
    let mut t_max = n_max / 2;
    if let Some(m) = cfg.max_lag {
        t_max = t_max.min(m);
    }
    let mut sums = vec![0.0; t_max + 1];
    let mut counts = vec![0usize; t_max + 1];
    for d in deltas {
        let s = lagged_sums(d, t_max, cfg.method);
        for t in 0..=t_max {
            sums[t] += s[t];
            counts[t] += d.len().saturating_sub(t);
        }
    }
    // Lags that no replica reaches would divide by zero; t_max < n_max
    // guarantees counts[t] ≥ 1 for every t ≤ t_max.
    let mut gamma: Vec<f64> = sums.iter().zip(&counts).map(|(s, &c)| s / c as f64).collect();
    let nf = n as f64;
    let threshold = (16.0 * f64::EPSILON * scale).powi(2);
    if !(gamma[0] > threshold) {
        warnings.push(GammaWarning::ZeroVariance);
        return GammaReport {
            value,
            error: 0.0,
            error_of_error: 0.0,
            tau_int: 0.5,
            tau_int_error: 0.0,
            window: 0,
            n,
            n_replica: deltas.len(),
            naive_error: 0.0,
            gamma: vec![0.0],
            rho: vec![1.0],
            tau_int_vs_window: vec![0.5],
            replica_values,
            replica_q: None,
            warnings,
        };
    }

    let window = match find_window(&gamma, n, cfg.s_tau) {
        Some(w) => w,
        None => {
            warnings.push(GammaWarning::WindowNotFound { max_lag: t_max });
            t_max
        }
    };
    let c_f_of = |g: &[f64], w: usize| g[0] + 2.0 * g[1..=w].iter().sum::<f64>();
    if cfg.bias_correction {
        let shift = c_f_of(&gamma, window) / nf;
        for g in &mut gamma {
            *g += shift;
        }
    }
    let c_f = c_f_of(&gamma, window);
    let g0 = gamma[0];
    let (error, tau_int) = if c_f > 0.0 && g0 > 0.0 {
        ((c_f / nf).sqrt(), c_f / (2.0 * g0))
    } else {
        // C_F ≤ 0 at the chosen window: strongly anticorrelated data (e.g. a
        // mode flipped by every HMC trajectory), for which the window search
        // stops at once. The true error is then below the naive one, so the
        // naive error √(Γ(0)/N) with τ_int = ½ is reported (conservative,
        // ours), flagged by the warning.
        warnings.push(GammaWarning::NonPositiveCf { c_f });
        ((g0.max(0.0) / nf).sqrt(), 0.5)
    };
    let wf = window as f64;
    let error_of_error = error * ((wf + 0.5) / nf).sqrt();
    let tau_int_error = 2.0 * tau_int * ((wf + 0.5 - tau_int).max(0.0) / nf).sqrt();
    if nf < 100.0 * tau_int {
        warnings.push(GammaWarning::ShortChain { n, tau_int });
    }
    let lengths: Vec<usize> = deltas.iter().map(Vec::len).collect();
    let replica_q = replica_consistency(&replica_values, &lengths, value, error);
    if let Some(q) = replica_q.filter(|&q| q < REPLICA_Q_MIN) {
        warnings.push(GammaWarning::ReplicaDisagreement { q });
    }

    let reported = t_max.min((4 * window).max(50));
    gamma.truncate(reported + 1);
    let g0_pos = if g0 > 0.0 { g0 } else { 1.0 };
    let rho: Vec<f64> = gamma.iter().map(|g| g / g0_pos).collect();
    let mut tau_int_vs_window = Vec::with_capacity(rho.len());
    let mut acc = 0.5;
    tau_int_vs_window.push(acc);
    for r in &rho[1..] {
        acc += r;
        tau_int_vs_window.push(acc);
    }
    GammaReport {
        value,
        error,
        error_of_error,
        tau_int,
        tau_int_error,
        window,
        n,
        n_replica: deltas.len(),
        naive_error: (g0.max(0.0) / nf).sqrt(),
        gamma,
        rho,
        tau_int_vs_window,
        replica_values,
        replica_q,
        warnings,
    }
}

/// Wolff's Q of replica values `values` (lengths `n_r`) about the estimate
/// `value` with error `error` (module docs); `None` when it is undefined.
fn replica_consistency(values: &[f64], n_r: &[usize], value: f64, error: f64) -> Option<f64> {
    let n: usize = n_r.iter().sum();
    if values.len() < 2 || !(error > 0.0) || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let chi2 = values
        .iter()
        .zip(n_r)
        .map(|(v, &m)| m as f64 / n as f64 * ((v - value) / error).powi(2))
        .sum::<f64>();
    Some(chi2_survival(chi2, values.len() - 1))
}

/// P(χ²_k ≥ x), the survival function of the χ² distribution with `k` ≥ 1
/// degrees of freedom: the regularized upper incomplete gamma function
/// Q(k/2, x/2), in closed form (y = x/2). Even k = 2m:
/// Q = e^{−y} Σ_{j<m} y^j / j!. Odd k = 2m + 1:
/// Q = erfc(√y) + e^{−y} Σ_{j<m} y^{j+½} / Γ(j + 3/2), Γ(3/2) = √π/2.
/// (Both follow from Q(a + 1, y) = Q(a, y) + y^a e^{−y}/Γ(a + 1).)
pub fn chi2_survival(x: f64, k: usize) -> f64 {
    assert!(k >= 1, "chi2_survival: k = 0 degrees of freedom");
    if !(x > 0.0) {
        return 1.0;
    }
    let y = 0.5 * x;
    let (mut q, mut term, a0) = if k.is_multiple_of(2) {
        (0.0, (-y).exp(), 1.0) // term y^j e^{-y} / j! at j = 0; next a = j + 1
    } else {
        let t = 2.0 * (y / std::f64::consts::PI).sqrt() * (-y).exp(); // y^{1/2} e^{-y}/Γ(3/2)
        (libm::erfc(y.sqrt()), t, 1.5)
    };
    for j in 0..k / 2 {
        q += term;
        term *= y / (a0 + j as f64);
    }
    q.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// χ² quantiles: Q(x_p, k) = 1 − p (k = 2: x = 2 ln 20 exactly), and
    /// against ∫_x^∞ of the χ²_k density by Simpson's rule for k = 1 … 7.
    #[test]
    fn chi2_survival_matches_quantiles_and_the_integrated_density() {
        for (x, k, q) in [
            (3.841458820694124, 1, 0.05),
            (2.0 * 20f64.ln(), 2, 0.05),
            (7.814727903251178, 3, 0.05),
            (9.487729036781154, 4, 0.05),
            (11.070497693516351, 5, 0.05),
            (16.26623619623813, 3, 0.001),
        ] {
            assert!(
                (chi2_survival(x, k) - q).abs() < 1e-9,
                "k {k} x {x}: {}",
                chi2_survival(x, k)
            );
        }
        for k in 1..=7 {
            assert_eq!(chi2_survival(0.0, k), 1.0);
            // Γ(k/2) from Γ(½) = √π, Γ(1) = 1 and Γ(a + 1) = a Γ(a).
            let mut g = if k % 2 == 1 { std::f64::consts::PI.sqrt() } else { 1.0 };
            let mut a = if k % 2 == 1 { 0.5 } else { 1.0 };
            while a < k as f64 / 2.0 {
                g *= a;
                a += 1.0;
            }
            let pdf = |t: f64| t.powf(k as f64 / 2.0 - 1.0) * (-t / 2.0).exp() / (2f64.powf(k as f64 / 2.0) * g);
            for x in [0.5, 2.0, 6.0, 15.0] {
                let (hi, m) = (x + 150.0, 200_000);
                let h = (hi - x) / m as f64;
                let simpson = (0..=m)
                    .map(|i| {
                        let w = if i == 0 || i == m {
                            1.0
                        } else if i % 2 == 1 {
                            4.0
                        } else {
                            2.0
                        };
                        w * pdf(x + i as f64 * h)
                    })
                    .sum::<f64>()
                    * h
                    / 3.0;
                let q = chi2_survival(x, k);
                assert!(
                    (q - simpson).abs() < 1e-9 * q.max(1e-3),
                    "k {k} x {x}: {q} vs {simpson}"
                );
            }
        }
    }

    /// The 5-element chain a = (1, 2, 3, 5, 4) pins every convention.
    ///
    /// ā = 3, δ = (−2, −1, 0, 2, 1), N = 5, t_max = ⌊5/2⌋ = 2.
    /// Γ(0) = (4 + 1 + 0 + 4 + 1)/5 = 2,
    /// Γ(1) = (2 + 0 + 0 + 2)/4 = 1,
    /// Γ(2) = (0 − 2 + 0)/3 = −2/3.
    /// Window: τ_int(1) = ½ + ½ = 1, τ(1) = 1.5/ln 3 = 1.36536,
    /// g(1) = e^{−1/1.36536} − 1.36536/√5 = 0.48074 − 0.61061 < 0 ⇒ W = 1.
    /// Without bias correction: C_F = 2 + 2·1 = 4, σ = √(4/5), τ_int = 4/4 = 1.
    /// With it: shift C_F/N = 0.8, Γ = (2.8, 1.8, 2/15), C_F = 2.8 + 3.6 = 6.4,
    /// σ = √1.28, τ_int = 6.4/5.6 = 8/7, δσ = σ√(1.5/5),
    /// δτ = 2(8/7)√((1.5 − 8/7)/5).
    #[test]
    fn five_element_chain_by_hand() {
        let a = vec![1.0, 2.0, 3.0, 5.0, 4.0];
        for method in [AutocovMethod::Direct, AutocovMethod::Fft] {
            let raw = GammaConfig {
                bias_correction: false,
                method,
                ..GammaConfig::default()
            };
            let r = gamma_primary(&[a.as_slice()], &raw).unwrap();
            assert_eq!(r.value, 3.0);
            assert_eq!(r.window, 1);
            let want = [2.0, 1.0, -2.0 / 3.0];
            for t in 0..3 {
                assert!((r.gamma[t] - want[t]).abs() < 1e-12, "Γ({t}) = {}", r.gamma[t]);
            }
            assert!((r.error - 0.8_f64.sqrt()).abs() < 1e-12);
            assert!((r.tau_int - 1.0).abs() < 1e-12);

            let cor = GammaConfig {
                method,
                ..GammaConfig::default()
            };
            let r = gamma_primary(&[a.as_slice()], &cor).unwrap();
            let want = [2.8, 1.8, 2.0 / 15.0];
            for t in 0..3 {
                assert!((r.gamma[t] - want[t]).abs() < 1e-12, "Γ({t}) = {}", r.gamma[t]);
            }
            assert!((r.rho[1] - 1.8 / 2.8).abs() < 1e-12);
            let sigma = 1.28_f64.sqrt();
            assert!((r.error - sigma).abs() < 1e-12);
            assert!((r.tau_int - 8.0 / 7.0).abs() < 1e-12);
            assert!((r.error_of_error - sigma * (1.5_f64 / 5.0).sqrt()).abs() < 1e-12);
            let dtau = 2.0 * (8.0 / 7.0) * ((1.5 - 8.0 / 7.0) / 5.0_f64).sqrt();
            assert!((r.tau_int_error - dtau).abs() < 1e-12);
            assert!((r.tau_int_vs_window[1] - 8.0 / 7.0).abs() < 1e-12);
            assert!(r.warnings.iter().any(|w| matches!(w, GammaWarning::ShortChain { .. })));
        }
    }

    #[test]
    fn window_formula_by_hand() {
        // ρ(t) = 0.5^t: τ_int(1) = 1 (g < 0 only if N is small).
        let gamma: Vec<f64> = (0..40).map(|t| 0.5f64.powi(t)).collect();
        // N = 5: g(1) < 0 as in the 5-element example.
        assert_eq!(find_window(&gamma, 5, 1.5), Some(1));
        // N = 10^6: τ_int(W) ≈ 3/2, τ = 1.5/ln 2 = 2.164;
        // g(16) = e^{−7.39} − 2.164/4000 = 6.2e-4 − 5.4e-4 > 0,
        // g(17) = e^{−7.86} − 2.164/4123 = 3.9e-4 − 5.2e-4 < 0 ⇒ W = 17.
        assert_eq!(find_window(&gamma, 1_000_000, 1.5), Some(17));
        // Uncorrelated: τ_int(1) ≤ ½ ⇒ W = 1.
        let white = [1.0, -0.01, 0.0];
        assert_eq!(find_window(&white, 1000, 1.5), Some(1));
    }

    #[test]
    fn constant_chain_gives_zero_error_and_a_warning_without_nan() {
        let a = vec![0.1; 1000];
        let b = vec![0.1; 17];
        let r = gamma_primary(&[a.clone(), b], &GammaConfig::default()).unwrap();
        assert_eq!(r.error, 0.0);
        assert_eq!(r.value, 0.1);
        assert!(r.warnings.contains(&GammaWarning::ZeroVariance));
        assert!(r.tau_int.is_finite() && r.tau_int_error.is_finite());
        // Derived quantity of constant data.
        let m = Array2::from_shape_fn((1000, 2), |(_, j)| 0.1 + j as f64);
        let r = gamma_derived(&[m.view()], |x| x[0] / x[1], &GammaConfig::default()).unwrap();
        assert_eq!(r.error, 0.0);
        assert!(r.warnings.contains(&GammaWarning::ZeroVariance));
        assert!((r.value - 0.1 / 1.1).abs() < 1e-15);
    }

    #[test]
    fn short_chain_is_flagged_not_fatal() {
        // Step a = (0×10, 1×10): δ = ±½, Γ(t) = ¼(20 − 3t)/(20 − t), so
        // ρ(1) = 17/19, τ_int(1) = 1.395, τ(1) = 1.5/ln(3.789/1.789) = 1.996,
        // g(1) = e^{−0.501} − 1.996/√20 = 0.606 − 0.446 > 0: with lags capped
        // at 1 no window exists.
        let a: Vec<f64> = (0..20).map(|i| if i < 10 { 0.0 } else { 1.0 }).collect();
        let cfg = GammaConfig {
            max_lag: Some(1),
            ..GammaConfig::default()
        };
        let r = gamma_primary(&[a.as_slice()], &cfg).unwrap();
        assert!(r.warnings.contains(&GammaWarning::WindowNotFound { max_lag: 1 }));
        assert_eq!(r.window, 1);
        assert!(r.error.is_finite() && r.error > 0.0);
        // Uncapped, W = 3 is found, but N = 20 < 100 τ_int.
        let r = gamma_primary(&[a], &GammaConfig::default()).unwrap();
        assert_eq!(r.window, 3);
        assert!(r
            .warnings
            .iter()
            .any(|w| matches!(w, GammaWarning::ShortChain { n: 20, .. })));
        let err = gamma_primary(&[Vec::<f64>::new()], &GammaConfig::default()).unwrap_err();
        assert_eq!(err, StatsError::EmptyReplica { replica: 0 });
        let err = gamma_primary(&[vec![1.0]], &GammaConfig::default()).unwrap_err();
        assert_eq!(err.to_string(), "too few samples for the Γ-method: 1 < 2");
        // Replica of length 1: no lag at all, W = 0, flagged.
        let r = gamma_primary(&[vec![1.0], vec![2.0], vec![4.0]], &GammaConfig::default()).unwrap();
        assert!(r.warnings.contains(&GammaWarning::WindowNotFound { max_lag: 0 }));
        assert_eq!(r.window, 0);
        assert!((r.value - 7.0 / 3.0).abs() < 1e-15 && r.error > 0.0);
    }

    #[test]
    fn non_finite_input_names_replica_and_index() {
        let a = vec![1.0, 2.0, 3.0];
        let b = vec![1.0, 2.0, 3.0, f64::NAN, 5.0];
        let err = gamma_primary(&[a.clone(), b], &GammaConfig::default()).unwrap_err();
        assert!(matches!(
            err,
            StatsError::NonFinite {
                replica: 1,
                index: 3,
                observable: 0,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "non-finite value NaN in replica 1 at index 3 (observable 0)"
        );
        let mut m = Array2::<f64>::zeros((4, 3));
        m[[2, 1]] = f64::INFINITY;
        let err = gamma_derived(&[m.view()], |x| x[0], &GammaConfig::default()).unwrap_err();
        assert!(matches!(
            err,
            StatsError::NonFinite {
                replica: 0,
                index: 2,
                observable: 1,
                ..
            }
        ));
    }

    #[test]
    fn bad_config_and_bad_gradient_are_errors() {
        let cfg = GammaConfig {
            s_tau: -1.0,
            ..GammaConfig::default()
        };
        let err = gamma_primary(&[vec![1.0, 2.0]], &cfg).unwrap_err();
        assert_eq!(err.to_string(), "gamma.s_tau = -1: must be finite and > 0");
        let m = Array2::from_shape_fn((10, 2), |(i, j)| (i + j) as f64);
        let err = gamma_derived_with_gradient(&[m.view()], |x| x[0] * x[1], |_| vec![1.0], &GammaConfig::default())
            .unwrap_err();
        assert_eq!(err, StatsError::GradientLength { expected: 2, found: 1 });
        let err = gamma_derived(&[m.view()], |x| x[0] / 0.0, &GammaConfig::default()).unwrap_err();
        assert!(matches!(err, StatsError::NonFiniteDerived { .. }));
    }

    #[test]
    fn primary_equals_derived_identity_and_numerical_gradient_is_exact_for_linear_f() {
        let a: Vec<f64> = (0..500).map(|i| ((i * 37) % 101) as f64).collect();
        let m = Array2::from_shape_fn((500, 2), |(i, j)| a[i] * (j + 1) as f64);
        let p = gamma_primary(&[a.as_slice()], &GammaConfig::default()).unwrap();
        let d = gamma_derived(&[m.view()], |x| x[0], &GammaConfig::default()).unwrap();
        assert!((p.value - d.value).abs() < 1e-12);
        assert!((p.error - d.error).abs() < 1e-12 * p.error);
        // f = x0 + x1 = 3a: error triples.
        let d = gamma_derived(&[m.view()], |x| x[0] + x[1], &GammaConfig::default()).unwrap();
        assert!((d.error - 3.0 * p.error).abs() < 1e-9 * p.error);
    }
}
