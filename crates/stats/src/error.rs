//! The one error type of this crate: every message is one line and names
//! what is wrong (which replica, which index, which observable).

use fieldflow_core::ConfigError;

/// Everything that can go wrong when analysing data.
///
/// Numerical trouble that still allows an honest answer (zero variance, a
/// window that could not be found) is *not* an error: it is reported as a
/// warning inside the result (see [`crate::GammaWarning`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// No replica at all, or no sample in any replica.
    #[error("no data: at least one replica with at least one sample is needed")]
    NoData,
    /// One replica holds no sample.
    #[error("replica {replica} is empty")]
    EmptyReplica {
        /// Index of the empty replica.
        replica: usize,
    },
    /// A NaN or infinite input value.
    #[error("non-finite value {value} in replica {replica} at index {index} (observable {observable})")]
    NonFinite {
        /// Replica (chain) index.
        replica: usize,
        /// Index of the configuration (sample) inside the replica.
        index: usize,
        /// Column (primary observable) index; 0 for a single series.
        observable: usize,
        /// The offending value.
        value: f64,
    },
    /// Replica disagree on the number of primary observables (columns).
    #[error("replica {replica} has {found} observables, replica 0 has {expected}")]
    ObservableMismatch {
        /// Replica index.
        replica: usize,
        /// Columns of replica 0.
        expected: usize,
        /// Columns of this replica.
        found: usize,
    },
    /// A data set with zero primary observables.
    #[error("data have no observable (zero columns)")]
    NoObservable,
    /// Too few samples for the requested analysis.
    #[error("too few samples for {what}: {n} < {min}")]
    TooFewSamples {
        /// What needed them.
        what: &'static str,
        /// Samples available.
        n: usize,
        /// Samples needed.
        min: usize,
    },
    /// The derived function is NaN or infinite at the estimated means.
    #[error("derived function is not finite at the means: f = {value}")]
    NonFiniteDerived {
        /// The value returned by the function.
        value: f64,
    },
    /// A user gradient of the wrong length.
    #[error("gradient has {found} components, expected {expected}")]
    GradientLength {
        /// Number of primary observables.
        expected: usize,
        /// Length returned by the gradient closure.
        found: usize,
    },
    /// A NaN or infinite gradient component (analytic or numerical).
    #[error("gradient component {index} is not finite: {value}")]
    NonFiniteGradient {
        /// Primary observable index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Two inputs that must have the same length do not.
    #[error("length mismatch: {what} has {found} entries, expected {expected}")]
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// Every importance weight is zero (every log-weight is −∞).
    #[error("all importance weights are zero (every log-weight is -inf)")]
    ZeroWeights,
    /// An invalid analysis setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
