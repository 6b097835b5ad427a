//! Elementwise nonlinearities φ with their first and second derivatives.
//!
//! Every activation of a conditioner and the bound applied to the coupling
//! scale are scalar maps y = φ(v). The three derivative modes of the crate
//! need (see [`crate::net`]):
//!
//! * value: y = φ(v);
//! * reverse mode (vector-Jacobian product): v̄ = ȳ φ'(v);
//! * forward mode (Jacobian-vector product): dy = φ'(v) dv;
//! * reverse mode of the pair (y, dy) w.r.t. (v, dv), needed by the
//!   score-matching term (docs/THEORY.md §4.8):
//!   v̄ = ȳ φ'(v) + dȳ φ''(v) dv,  dv̄ = dȳ φ'(v).
//!
//! | φ | φ(v) | φ'(v) | φ''(v) |
//! |---|---|---|---|
//! | identity | v | 1 | 0 |
//! | c·tanh(v/c) (soft clamp; c = 1 is tanh) | c τ, τ = tanh(v/c) | 1 − τ² | −(2/c) τ (1 − τ²) |
//! | LeakyReLU(α) | v if v > 0 else α v | 1 or α | 0 (a.e.) |
//! | SiLU | v σ(v) | σ (1 + v (1 − σ)) | σ (1 − σ)(2 + v (1 − 2σ)) |
//! | softplus | log(1 + eᵛ) | σ(v) | σ (1 − σ) |
//!
//! with σ = 1/(1 + e^{−v}). LeakyReLU has φ'' = 0 everywhere except at the
//! kink v = 0 (measure zero): the score-matching term, which needs φ'' only
//! multiplied by a tangent, is exact almost everywhere. Its finite-difference
//! checks must keep pre-activations away from 0, which random inputs do with
//! probability one.

use serde::{Deserialize, Serialize};

/// The activation names a configuration may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// φ(v) = v.
    #[default]
    Identity,
    /// φ(v) = tanh v.
    Tanh,
    /// φ(v) = max(v, α v) with the configured negative slope α.
    LeakyRelu,
    /// φ(v) = v σ(v) (smooth, non-monotone, unbounded).
    Silu,
    /// φ(v) = log(1 + eᵛ) (smooth; φ(0) = log 2 ≠ 0, so not allowed as the
    /// output activation of an identity-initialized conditioner).
    Softplus,
}

/// A scalar nonlinearity with its parameters resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// φ(v) = v.
    Identity,
    /// φ(v) = c tanh(v/c), c > 0 (c = 1: tanh).
    ScaledTanh(f64),
    /// φ(v) = v for v > 0, α v otherwise.
    LeakyRelu(f64),
    /// φ(v) = v σ(v).
    Silu,
    /// φ(v) = log(1 + eᵛ).
    Softplus,
}

#[inline]
fn sigmoid(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

impl Act {
    /// The resolved activation for a configured kind and LeakyReLU slope.
    pub fn from_kind(kind: ActivationKind, negative_slope: f64) -> Self {
        match kind {
            ActivationKind::Identity => Act::Identity,
            ActivationKind::Tanh => Act::ScaledTanh(1.0),
            ActivationKind::LeakyRelu => Act::LeakyRelu(negative_slope),
            ActivationKind::Silu => Act::Silu,
            ActivationKind::Softplus => Act::Softplus,
        }
    }

    /// φ(v).
    #[inline]
    pub fn value(self, v: f64) -> f64 {
        match self {
            Act::Identity => v,
            Act::ScaledTanh(c) => c * (v / c).tanh(),
            Act::LeakyRelu(a) => {
                if v > 0.0 {
                    v
                } else {
                    a * v
                }
            }
            Act::Silu => v * sigmoid(v),
            Act::Softplus => v.max(0.0) + (-v.abs()).exp().ln_1p(),
        }
    }

    /// φ'(v).
    #[inline]
    pub fn d1(self, v: f64) -> f64 {
        match self {
            Act::Identity => 1.0,
            Act::ScaledTanh(c) => {
                let t = (v / c).tanh();
                1.0 - t * t
            }
            Act::LeakyRelu(a) => {
                if v > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Act::Silu => {
                let s = sigmoid(v);
                s * (1.0 + v * (1.0 - s))
            }
            Act::Softplus => sigmoid(v),
        }
    }

    /// (φ'(v), φ''(v)).
    #[inline]
    pub fn d1_d2(self, v: f64) -> (f64, f64) {
        match self {
            Act::Identity => (1.0, 0.0),
            Act::ScaledTanh(c) => {
                let t = (v / c).tanh();
                let d = 1.0 - t * t;
                (d, -2.0 / c * t * d)
            }
            Act::LeakyRelu(a) => (if v > 0.0 { 1.0 } else { a }, 0.0),
            Act::Silu => {
                let s = sigmoid(v);
                (s * (1.0 + v * (1.0 - s)), s * (1.0 - s) * (2.0 + v * (1.0 - 2.0 * s)))
            }
            Act::Softplus => {
                let s = sigmoid(v);
                (s, s * (1.0 - s))
            }
        }
    }

    /// Whether φ is the identity (lets callers skip work).
    pub fn is_identity(self) -> bool {
        matches!(self, Act::Identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_testkit::central_derivative;

    #[test]
    fn derivatives_match_finite_differences() {
        let acts = [
            Act::Identity,
            Act::ScaledTanh(1.0),
            Act::ScaledTanh(2.5),
            Act::LeakyRelu(0.01),
            Act::LeakyRelu(0.2),
            Act::Silu,
            Act::Softplus,
        ];
        let h = fieldflow_testkit::FD_STEP;
        for a in acts {
            for &v in &[-3.1, -0.7, -0.05, 0.03, 0.4, 1.3, 4.2, -40.0, 40.0] {
                let fd1 = central_derivative(|v| a.value(v), v, h);
                let (d1, d2) = a.d1_d2(v);
                assert!((fd1 - d1).abs() < 1e-8, "{a:?} φ' at {v}: {d1} vs {fd1}");
                assert_eq!(d1, a.d1(v));
                let fd2 = central_derivative(|v| a.d1(v), v, h);
                assert!((fd2 - d2).abs() < 1e-7, "{a:?} φ'' at {v}: {d2} vs {fd2}");
            }
        }
    }

    #[test]
    fn softplus_is_stable_for_large_arguments() {
        assert_eq!(Act::Softplus.value(800.0), 800.0);
        assert!(Act::Softplus.value(-800.0) >= 0.0);
        assert!((Act::Softplus.value(0.0) - 2f64.ln()).abs() < 1e-15);
    }
}
