//! Mode weights of a Z₂-symmetric system in an external field, through its
//! phases (docs/THEORY.md §6.13).
//!
//! The setting: a base density p̃₀ symmetric under x → −x, an external field
//! h along g (log p̃ = log p̃₀ + h g·x) that breaks the symmetry, odd linear
//! order parameters c₁·x, …, c_m·x whose common sign defines two **phases**
//! P₊ = {all cᵢ·x ≥ 0} and P₋ = {all cᵢ·x < 0} (for a chain: the field at
//! a few sites spread over it), and **modes**
//! defined by the sign of one coordinate xₖ (e.g. the middle site of a chain,
//! the benchmark's definition). Write Z_σ(h) for the integral over phase σ
//! and t₋ = P(xₖ ≥ 0 | P₋), t₊ = P(xₖ < 0 | P₊) for the probability that
//! the mode coordinate sits on the "wrong" side inside a phase. Then
//!
//! w₊/w₋ = [Z₊(1 − t₊) + Z₋ t₋] / [Z₋(1 − t₋) + Z₊ t₊],
//!
//! log(w₊/w₋) = log(e^Δ (1 − t₊) + t₋) − log((1 − t₋) + e^Δ t₊),   Δ = log Z₊(h) − log Z₋(h).
//!
//! * Δ by thermodynamic integration from h = 0, where Z₊(0) = Z₋(0) by the
//!   symmetry (the phases are images of each other): Δ = I₊ − I₋ with
//!   I_σ = ∫₀ʰ ⟨g·x⟩_{σ,h′} dh′, each in its restricted phase
//!   ([`crate::integrate::field_integral`]).
//! * t± by the clamped-coordinate profile of xₖ in each phase at h
//!   ([`crate::integrate::constrained_profile`]).
//!
//! The states in neither phase (order parameters of both signs: a domain
//! wall inside the system) are left out; their weight must be negligible
//! against the minority mode, which the caller has to establish (for the
//! benchmark chain the transfer operator bounds it, docs/RESULTS.md). Why
//! several order parameters rather than one (the magnetization): with xₖ
//! clamped, the chain splits into two independent halves whose signs the
//! magnetization does not fix; a half then flips freely when the clamp is
//! near 0 and the mean force mixes two populations. A sign constraint inside
//! each half pins them.
//!
//! Why the split: a phase is metastable but has no internal barrier, so
//! both integrands are smooth and the chains mix within it; the mode defined
//! by the sign of one coordinate is *not* a phase when the field is strong —
//! the minority mode is then dominated by fluctuations of the majority phase
//! that push xₖ across 0 (t₋ ≫ e^Δ), a rare event inside one well that
//! no sampler of the full density sees (1e-10 at the benchmark's largest
//! tilt) but the clamped profile measures directly.

use crate::chains::{ChainSettings, NodeHooks, Replicas};
use crate::conditioned::{Field, HalfSpace, LinearCv, Side};
use crate::integrate::{constrained_profile, field_integral, FieldIntegral, Profile};
use fieldflow_core::{Seed, Target};

/// What the estimate needs besides the base density.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseProblem {
    /// The field direction g.
    pub field_direction: LinearCv,
    /// The field strength h of the target.
    pub field: f64,
    /// The order parameters cᵢ whose common sign defines the phases.
    pub order_parameters: Vec<LinearCv>,
    /// The mode coordinate k; `None` when the modes are the phases
    /// themselves (one order parameter whose sign is the mode, e.g. the
    /// magnetization of a periodic lattice field): then t± = 0 and no
    /// profile is run.
    pub mode_site: Option<usize>,
    /// A state of phase P₊ (the chains of P₋ start at its mirror image).
    pub start: Vec<f64>,
    /// Gauss–Legendre nodes of the field integrals.
    pub field_nodes: usize,
    /// Grid of the P₋ profile of xₖ (uniform, containing 0); the P₊ profile
    /// uses its mirror image.
    pub profile_grid: Vec<f64>,
}

impl PhaseProblem {
    /// The number of chain-set runs of an estimate: field nodes and profile
    /// nodes, for both phases.
    pub fn nodes(&self) -> usize {
        2 * (self.field_nodes
            + if self.mode_site.is_some() {
                self.profile_grid.len()
            } else {
                0
            })
    }
}

/// The estimate and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseEstimate {
    /// log(w₊/w₋) per replica.
    pub log_ratio: Replicas,
    /// Δ = log Z₊(h) − log Z₋(h) per replica.
    pub delta: Replicas,
    /// log t₋ = log P(xₖ ≥ 0 | P₋) per replica.
    pub log_t_minus: Replicas,
    /// log t₊ = log P(xₖ < 0 | P₊) per replica.
    pub log_t_plus: Replicas,
    /// The field integrals of P₊ and P₋.
    pub integrals: [FieldIntegral; 2],
    /// The profiles of P₊ and P₋ (none when the modes are the phases).
    pub profiles: Option<[Profile; 2]>,
}

impl PhaseEstimate {
    /// Every node's run (field integrals, then profiles).
    pub fn runs(&self) -> impl Iterator<Item = &crate::NodeRun> {
        self.integrals
            .iter()
            .flat_map(|i| &i.runs)
            .chain(self.profiles.iter().flatten().flat_map(|p| &p.runs))
    }

    /// (trajectories rejected at phase boundaries, lowest acceptance) over
    /// all nodes.
    pub fn diagnostics(&self) -> (u64, f64) {
        self.runs()
            .fold((0, 1.0f64), |(o, m), r| (o + r.outside, m.min(r.acceptance)))
    }
}

/// log(a + b) from log a and log b.
fn log_add(la: f64, lb: f64) -> f64 {
    let m = la.max(lb);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((la - m).exp() + (lb - m).exp()).ln()
}

/// log(1 − e^{l}) for l ≤ 0.
fn log1m_exp(l: f64) -> f64 {
    if l > -std::f64::consts::LN_2 {
        (-l.exp_m1()).ln()
    } else {
        (-l.exp()).ln_1p()
    }
}

/// log(w₊/w₋) from Δ, log t₋ and log t₊ (see the module docs).
pub fn log_mode_ratio(delta: f64, log_t_minus: f64, log_t_plus: f64) -> f64 {
    let num = log_add(delta + log1m_exp(log_t_plus), log_t_minus);
    let den = log_add(log1m_exp(log_t_minus), delta + log_t_plus);
    num - den
}

/// log(w₊/w₋) = log Φ(z) − log Φ(−z) for modes defined by the sign of a
/// Gaussian order parameter with mean/standard deviation z (the oracle of
/// a free field in a field h, whose magnetization is Gaussian). The tail
/// Φ(−|z|) is integrated directly (Gauss–Legendre on [|z|, |z| + 12]; the
/// rest is below e^{−72}), so the ratio keeps its relative accuracy
/// (≈ 1e-13) for large |z|.
pub fn gaussian_log_mode_ratio(z: f64) -> f64 {
    let a = z.abs();
    let tail = fieldflow_targets::GaussLegendre::new(16).integrate(|t| (-0.5 * t * t).exp(), a, a + 12.0, 64)
        / (2.0 * std::f64::consts::PI).sqrt();
    let r = ((1.0 - tail) / tail).ln();
    if z < 0.0 {
        -r
    } else {
        r
    }
}

/// Estimates the mode weights of `base` (symmetric under x → −x) in the field
/// of `problem` (see the module docs). `base` is the density at h = 0.
/// The [`PhaseProblem::nodes`] nodes go through `hooks` (parts "field+",
/// "field-", "profile+", "profile-"); `None` if the hooks stopped the run.
pub fn estimate(
    base: &dyn Target,
    problem: &PhaseProblem,
    settings: &ChainSettings,
    seed: Seed,
    hooks: &dyn NodeHooks,
) -> Option<PhaseEstimate> {
    let phase = |side| -> Vec<HalfSpace> {
        problem
            .order_parameters
            .iter()
            .map(|cv| HalfSpace { cv: cv.clone(), side })
            .collect()
    };
    let (plus, minus) = (phase(Side::Positive), phase(Side::Negative));
    let start_minus: Vec<f64> = problem.start.iter().map(|v| -v).collect();
    let g = &problem.field_direction;
    let h = problem.field;
    let i_plus = field_integral(
        base,
        g,
        &plus,
        (0.0, h),
        problem.field_nodes,
        &problem.start,
        settings,
        seed.child(0),
        "field+",
        hooks,
    )?;
    let i_minus = field_integral(
        base,
        g,
        &minus,
        (0.0, h),
        problem.field_nodes,
        &start_minus,
        settings,
        seed.child(1),
        "field-",
        hooks,
    )?;
    let delta = Replicas::combine(&[&i_plus.delta_log_z, &i_minus.delta_log_z], |v| v[0] - v[1]);
    let Some(k) = problem.mode_site else {
        let never = Replicas {
            values: vec![f64::NEG_INFINITY; settings.chains],
        };
        return Some(PhaseEstimate {
            log_ratio: delta.clone(),
            delta,
            log_t_minus: never.clone(),
            log_t_plus: never,
            integrals: [i_plus, i_minus],
            profiles: None,
        });
    };
    let field = Field { h, g: g.clone() };
    let grid_minus = problem.profile_grid.clone();
    let mut grid_plus: Vec<f64> = grid_minus.iter().map(|u| -u).collect();
    grid_plus.reverse();
    let p_plus = constrained_profile(
        base,
        Some(&field),
        &plus,
        k,
        &grid_plus,
        &problem.start,
        settings,
        seed.child(2),
        "profile+",
        hooks,
    )?;
    let p_minus = constrained_profile(
        base,
        Some(&field),
        &minus,
        k,
        &grid_minus,
        &start_minus,
        settings,
        seed.child(3),
        "profile-",
        hooks,
    )?;
    let log_t_minus = p_minus.log_probability_replicas(0.0, true);
    let log_t_plus = p_plus.log_probability_replicas(0.0, false);
    let log_ratio = Replicas::combine(&[&delta, &log_t_minus, &log_t_plus], |v| {
        log_mode_ratio(v[0], v[1], v[2])
    });
    Some(PhaseEstimate {
        log_ratio,
        delta,
        log_t_minus,
        log_t_plus,
        integrals: [i_plus, i_minus],
        profiles: Some([p_plus, p_minus]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_ratio_formula_matches_direct_arithmetic() {
        for &(delta, t_minus, t_plus) in &[
            (0.0, 0.1, 0.1),
            (-3.0, 0.02, 0.3),
            (2.0, 1e-5, 0.4),
            (-20.0, 1e-9, 1e-3),
        ] {
            let z_plus = f64::exp(delta);
            let direct = ((z_plus * (1.0 - t_plus) + t_minus) / ((1.0 - t_minus) + z_plus * t_plus)).ln();
            let v = log_mode_ratio(delta, f64::ln(t_minus), f64::ln(t_plus));
            assert!((v - direct).abs() < 1e-12, "{v} vs {direct}");
        }
        // Stable where the direct form underflows: Δ = −800, t₋ = e^{−790}.
        let v = log_mode_ratio(-800.0, -790.0, -5.0);
        let expected = -790.0 + (1.0 + (-10.0f64).exp() * (1.0 - (-5.0f64).exp())).ln();
        assert!((v - expected).abs() < 1e-9, "{v} vs {expected}");
    }
}
