//! The outcome of one Markov update (an HMC trajectory, a Metropolis sweep,
//! a MALA or random-walk step): what the chains record and the step-size
//! tuning ([`crate::tuning`]) feeds on.

/// The outcome of one update (trajectory or sweep).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateRecord {
    /// HMC, MALA, random walk: the move was accepted; Metropolis sweep: at
    /// least one hit accepted.
    pub accepted: bool,
    /// Fraction of accepted proposals (HMC, MALA, random walk: 0 or 1).
    pub acceptance: f64,
    /// HMC: min(1, e^{−ΔH}); MALA, random walk: min(1, Metropolis–Hastings
    /// ratio); 0 if not finite; Metropolis sweep: the acceptance fraction.
    /// This is what the tuning feeds on.
    pub accept_prob: f64,
    /// HMC: H(end) − H(start); MALA, random walk: −log of the
    /// Metropolis–Hastings ratio (so ⟨e^{−ΔH}⟩ = 1 at equilibrium, the Creutz
    /// check); NaN for a Metropolis sweep.
    pub delta_h: f64,
    /// log p̃ = −S of the field after the update.
    pub log_p: f64,
}
