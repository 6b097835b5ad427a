//! Adaptation of a step size (HMC, MALA) or proposal width (Metropolis) toward
//! a target acceptance, used during thermalization / warm-up only
//! (docs/THEORY.md §2.6).
//!
//! Nesterov dual averaging as adapted to MCMC by Hoffman & Gelman (2014,
//! "The No-U-Turn Sampler", §3.2). With acceptance αₜ of update t, target δ,
//! μ = log(10 x₀), γ = 0.05, t₀ = 10, κ = 0.75:
//!
//! H̄ₜ = (1 − 1/(t + t₀)) H̄ₜ₋₁ + (δ − αₜ)/(t + t₀),
//! log xₜ = μ − (√t / γ) H̄ₜ,
//! log x̄ₜ = t^{−κ} log xₜ + (1 − t^{−κ}) log x̄ₜ₋₁.
//!
//! xₜ is used for the next update during tuning; the averaged x̄ is the
//! value frozen for production. A larger step or width lowers the acceptance,
//! so one tuner serves both. A non-finite acceptance counts as 0.

/// Dual-averaging state for one chain.
#[derive(Debug, Clone, PartialEq)]
pub struct DualAveraging {
    mu: f64,
    target: f64,
    h_bar: f64,
    log_x: f64,
    log_x_bar: f64,
    t: u64,
}

const GAMMA: f64 = 0.05;
const T0: f64 = 10.0;
const KAPPA: f64 = 0.75;

impl DualAveraging {
    /// Starts from x₀ = `initial` > 0 aiming at acceptance `target` ∈ (0, 1).
    pub fn new(initial: f64, target: f64) -> Self {
        DualAveraging {
            mu: (10.0 * initial).ln(),
            target,
            h_bar: 0.0,
            log_x: initial.ln(),
            log_x_bar: initial.ln(),
            t: 0,
        }
    }

    /// Feeds the acceptance of the last update; returns the value to use next.
    pub fn update(&mut self, acceptance: f64) -> f64 {
        let alpha = if acceptance.is_finite() {
            acceptance.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.t += 1;
        let t = self.t as f64;
        let w = 1.0 / (t + T0);
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - alpha);
        // Keep the step within a sane range so one bad phase cannot push it
        // to 0 or infinity.
        self.log_x = (self.mu - t.sqrt() / GAMMA * self.h_bar).clamp(-30.0, 30.0);
        let eta = t.powf(-KAPPA);
        self.log_x_bar = eta * self.log_x + (1.0 - eta) * self.log_x_bar;
        self.current()
    }

    /// The value to use for the next update while tuning.
    pub fn current(&self) -> f64 {
        self.log_x.exp()
    }

    /// The averaged value to freeze after tuning.
    pub fn final_value(&self) -> f64 {
        self.log_x_bar.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_the_step_giving_the_target_acceptance() {
        // Toy model: acceptance = exp(−x²) (decreasing in x); target 0.8 is
        // reached at x* = sqrt(−ln 0.8).
        let mut da = DualAveraging::new(2.0, 0.8);
        let mut x = da.current();
        for _ in 0..2000 {
            x = da.update((-x * x).exp());
        }
        let star = (-(0.8f64).ln()).sqrt();
        assert!((da.final_value() - star).abs() < 0.02 * star, "{}", da.final_value());
        assert!(da.update(f64::NAN) < da.final_value() * 1.5);
    }
}
