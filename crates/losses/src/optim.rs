//! Adam (Kingma & Ba, arXiv 1412.6980) on a flat parameter vector.
//!
//! With gradient g at step t = 1, 2, …:
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g,      v ← β₂ v + (1 − β₂) g²,
//! m̂ = m / (1 − β₁ᵗ),          v̂ = v / (1 − β₂ᵗ),
//! θ ← θ − η m̂ / (√v̂ + ε).
//! ```
//!
//! The state (m, v, t) is plain data so a checkpoint can store it and a
//! resumed run continues bit-identically.

use fieldflow_core::ConfigError;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of Adam.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// β₁, decay of the first moment.
    pub beta1: f64,
    /// β₂, decay of the second moment.
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks 0 ≤ β < 1 and ε > 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, b) in [("optimizer.beta1", self.beta1), ("optimizer.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(ConfigError::new(name, b, "must be in [0, 1)"));
            }
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(ConfigError::new("optimizer.eps", self.eps, "must be > 0"));
        }
        Ok(())
    }
}

/// Moments and step counter of Adam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    /// First moment m.
    pub m: Vec<f64>,
    /// Second moment v.
    pub v: Vec<f64>,
    /// Number of updates applied (t).
    pub step: u64,
}

/// Adam optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// Hyper-parameters.
    pub config: AdamConfig,
    /// Moments and step counter.
    pub state: AdamState,
}

impl Adam {
    /// A fresh optimizer for `n_params` parameters.
    pub fn new(config: AdamConfig, n_params: usize) -> Self {
        Adam {
            config,
            state: AdamState {
                m: vec![0.0; n_params],
                v: vec![0.0; n_params],
                step: 0,
            },
        }
    }

    /// Applies one update θ ← θ − η m̂/(√v̂ + ε) with learning rate `lr`.
    ///
    /// # Panics
    /// If `params` and `grad` lengths differ from the optimizer's.
    pub fn step(&mut self, params: &mut [f64], grad: &[f64], lr: f64) {
        assert_eq!(params.len(), self.state.m.len(), "parameter count changed");
        assert_eq!(
            grad.len(),
            self.state.m.len(),
            "gradient length differs from parameter count"
        );
        let AdamConfig { beta1, beta2, eps } = self.config;
        self.state.step += 1;
        let t = self.state.step as i32;
        let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        for i in 0..params.len() {
            let g = grad[i];
            self.state.m[i] = beta1 * self.state.m[i] + (1.0 - beta1) * g;
            self.state.v[i] = beta2 * self.state.v[i] + (1.0 - beta2) * g * g;
            let (m_hat, v_hat) = (self.state.m[i] / c1, self.state.v[i] / c2);
            params[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
}

/// Rescales `grad` so that its Euclidean norm is at most `max_norm`
/// (g ← g · min(1, c/‖g‖)); returns the norm before clipping.
pub fn clip_grad_norm(grad: &mut [f64], max_norm: f64) -> f64 {
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    if norm > max_norm && norm.is_finite() {
        let f = max_norm / norm;
        grad.iter_mut().for_each(|g| *g *= f);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_the_learning_rate() {
        // With bias correction m̂ = g and v̂ = g², so Δθ = −η g/(|g| + ε).
        let mut adam = Adam::new(AdamConfig::default(), 3);
        let mut p = vec![1.0, 2.0, 3.0];
        adam.step(&mut p, &[0.5, -2.0, 1e-3], 0.1);
        let expect = [
            1.0 - 0.1 * 0.5 / (0.5 + 1e-8),
            2.0 + 0.1 * 2.0 / (2.0 + 1e-8),
            3.0 - 0.1 * 1e-3 / (1e-3 + 1e-8),
        ];
        for (a, b) in p.iter().zip(expect) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn minimises_a_quadratic() {
        // f(θ) = Σ cᵢ (θᵢ − aᵢ)², gradient 2cᵢ(θᵢ − aᵢ).
        let (a, c) = ([1.0, -2.0, 0.5], [1.0, 10.0, 0.1]);
        let mut adam = Adam::new(AdamConfig::default(), 3);
        let mut p = vec![0.0; 3];
        for step in 0..5000 {
            let g: Vec<f64> = (0..3).map(|i| 2.0 * c[i] * (p[i] - a[i])).collect();
            let lr = if step < 4000 { 0.05 } else { 0.005 };
            adam.step(&mut p, &g, lr);
        }
        for i in 0..3 {
            assert!((p[i] - a[i]).abs() < 1e-3, "{p:?}");
        }
    }

    #[test]
    fn clipping_caps_the_norm_and_keeps_the_direction() {
        let mut g = vec![3.0, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-15 && (g[1] - 0.8).abs() < 1e-15);
        let mut small = vec![0.1, 0.1];
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.1, 0.1]);
    }

    #[test]
    fn invalid_hyper_parameters_are_named() {
        let bad = AdamConfig {
            beta2: 1.0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "optimizer.beta2");
    }
}
