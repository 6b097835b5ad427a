//! The outcome of one Markov update of a lattice field (an HMC trajectory
//! or a Metropolis sweep): what the chains record and the step-size tuning
//! feeds on.

/// The outcome of one update (trajectory or sweep).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateRecord {
    /// HMC: trajectory accepted; Metropolis: at least one hit accepted.
    pub accepted: bool,
    /// Fraction of accepted proposals (HMC: 0 or 1).
    pub acceptance: f64,
    /// HMC: min(1, e^{−ΔH}) (0 if ΔH is not finite); Metropolis: the
    /// acceptance fraction. This is what the tuning feeds on.
    pub accept_prob: f64,
    /// HMC: H(end) − H(start); NaN for Metropolis.
    pub delta_h: f64,
    /// log p̃ = −S of the field after the update.
    pub log_p: f64,
}
