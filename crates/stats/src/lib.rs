//! # fieldflow-stats
//!
//! Honest error bars for Monte Carlo data, generic over slices and ndarray
//! views (this crate knows nothing of φ⁴):
//!
//! * [`gamma`]: Wolff's Γ-method (docs/THEORY.md §7.2–§7.6; U. Wolff, hep-lat/0306017,
//!   Comput. Phys. Commun. 156 (2004) 143): Γ(t), ρ(t), τ_int with automatic
//!   windowing, bias correction, errors of errors, several replica, derived
//!   quantities by gradient projection;
//! * [`autocov`]: the lagged sums behind Γ(t), directly or by zero-padded FFT;
//! * [`kmeans`]: k-means with k-means++ seeding (where a mixture of flows
//!   puts its components, where EM starts);
//! * [`mod@jackknife`]: binned jackknife for any derived quantity, with an
//!   error-versus-bin-size scan;
//! * [`mod@bootstrap`]: seeded block bootstrap for any derived quantity;
//! * [`weights`]: log-sum-exp, ESS, self-normalized estimators and log Ẑ for
//!   importance weights (docs/THEORY.md §7.9);
//! * [`pareto`]: the Pareto-tail diagnostic k̂ of importance weights, whether
//!   their estimates and errors can be trusted (docs/THEORY.md §7.10);
//! * [`diagnostics`]: sampler diagnostics shared by training and sampling —
//!   the IMH decision and acceptance estimate, ESS, total variation, mode
//!   collapse and covering (docs/THEORY.md §8).
//!
//! ## Data layout
//! A data set is a list of replica (independent chains, lengths may differ).
//! One primary observable: each replica is a series (`&[f64]`, `Vec<f64>`,
//! `ArrayView1`, `Array1`; see [`AsSeries`]). Several primaries for a derived
//! quantity: each replica is an `ArrayView2<f64>` with one configuration per
//! row and one primary observable per column; the derived quantity is a
//! closure `f(&[f64]) -> f64` of the column means.
//!
//! ```
//! use fieldflow_stats::{gamma_derived, GammaConfig};
//! use ndarray::Array2;
//! // Columns: |M|, M², M⁴ per configuration; two replica.
//! let r1 = Array2::from_shape_fn((400, 3), |(i, j)| (1.0 + (i % 7) as f64 / 7.0).powi(j as i32 + 1));
//! let r2 = Array2::from_shape_fn((300, 3), |(i, j)| (1.0 + (i % 5) as f64 / 5.0).powi(j as i32 + 1));
//! let v = 64.0; // lattice volume
//! let chi = gamma_derived(&[r1.view(), r2.view()], |a| v * (a[1] - a[0] * a[0]),
//!                         &GammaConfig::default()).unwrap();
//! let u4 = gamma_derived(&[r1.view(), r2.view()], |a| 1.0 - a[2] / (3.0 * a[1] * a[1]),
//!                        &GammaConfig::default()).unwrap();
//! assert!(chi.error > 0.0 && u4.error > 0.0);
//! ```

pub mod autocov;
mod binning;
pub mod bootstrap;
mod data;
pub mod diagnostics;
pub mod error;
pub mod gamma;
pub mod jackknife;
pub mod kmeans;
pub mod pareto;
pub mod weights;

pub use autocov::{lagged_sums, AutocovMethod};
pub use bootstrap::{bootstrap, bootstrap_primary, BootstrapConfig, BootstrapReport};
pub use data::AsSeries;
pub use error::StatsError;
pub use gamma::{
    chi2_survival, gamma_derived, gamma_derived_with_gradient, gamma_primary, numerical_gradient, GammaConfig,
    GammaReport, GammaWarning,
};
pub use jackknife::{jackknife, jackknife_bin_scan, jackknife_primary, JackknifeReport};
pub use pareto::{pareto_k, pareto_k_threshold, ParetoTail, PARETO_K_MAX, PARETO_MIN_SAMPLES};
pub use weights::{
    complement_log_ratio, ess_normalized, inverse_cdf, log_sum_exp, log_z, log_z_bootstrap, self_normalized_mean,
    LogZReport, WeightedMean,
};
