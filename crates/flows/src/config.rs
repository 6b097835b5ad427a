//! Flow architectures as serde configurations (DESIGN §3 "Configs").
//!
//! A [`FlowConfig`] fully determines the architecture (layers, masks,
//! conditioners, bounds, base σ); together with the flat parameter vector it
//! rebuilds a flow bit for bit ([`crate::Flow::from_parts`]). It is what the
//! model file stores as its `architecture` attribute (JSON).
//!
//! The tutorial architecture of REFERENCE §4 (arXiv 2101.08176) is
//! [`FlowConfig::tutorial`]; as JSON:
//!
//! ```json
//! { "shape": [8, 8], "n_layers": 16, "mask": "checkerboard",
//!   "conditioner": { "kind": "conv", "hidden": [8, 8], "kernel": 3,
//!                    "activation": "leaky_relu", "output_activation": "tanh" },
//!   "scale_bound": { "kind": "none" } }
//! ```

use crate::activation::{Act, ActivationKind};
use crate::coupling::{ConditionerSpec, Coupling};
use crate::flow::Flow;
use crate::mask;
use crate::net::ConvGeometry;
use fieldflow_core::{ConfigError, Seed};
use serde::{Deserialize, Serialize};

/// How couplings split x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Parity of Σ_μ x_μ on the lattice `shape`, alternating between layers.
    Checkerboard,
    /// First / second half of the coordinates, alternating.
    Halves,
    /// Fixed random halves from `mask_seed`; layer 2j+1 uses the complement of 2j.
    Random,
}

/// Which conditioner network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionerKind {
    /// Dense layers on the frozen coordinates.
    Mlp,
    /// Periodic (circular-padded) convolutions on the masked field (d = 1, 2, 3).
    Conv,
}

/// The conditioner network of every coupling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionerConfig {
    /// `mlp` or `conv`.
    pub kind: ConditionerKind,
    /// Hidden widths (MLP) or hidden channel counts (conv): the tutorial's
    /// 1→8→8→2 is `[8, 8]` (input and output channels are implied).
    pub hidden: Vec<usize>,
    /// Odd kernel size of the convolutions (ignored by MLPs).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Activation after every hidden layer.
    pub activation: ActivationKind,
    /// Activation on the outputs (ŝ, t) before the scale bound.
    #[serde(default)]
    pub output_activation: ActivationKind,
    /// Slope α of LeakyReLU for negative arguments.
    #[serde(default = "default_slope")]
    pub negative_slope: f64,
}

/// Bound h applied to the raw scale ŝ: s = h(ŝ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScaleBound {
    /// s = ŝ (only safe when the output activation is bounded).
    None,
    /// s = tanh ŝ.
    Tanh,
    /// s = c tanh(ŝ/c), c > 0 (smooth clamp to (−c, c)).
    SoftClamp {
        /// Clamp level c.
        c: f64,
    },
}

impl Default for ScaleBound {
    fn default() -> Self {
        ScaleBound::SoftClamp { c: 3.0 }
    }
}

impl ScaleBound {
    fn act(self) -> Act {
        match self {
            ScaleBound::None => Act::Identity,
            ScaleBound::Tanh => Act::ScaledTanh(1.0),
            ScaleBound::SoftClamp { c } => Act::ScaledTanh(c),
        }
    }
}

/// A flow of affine couplings on N(0, σ²I).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Shape of x: `[d]` for vectors, the lattice extents for fields.
    pub shape: Vec<usize>,
    /// Standard deviation σ of the base N(0, σ²I).
    #[serde(default = "default_sigma")]
    pub base_sigma: f64,
    /// Number of coupling layers.
    pub n_layers: usize,
    /// Mask family.
    pub mask: MaskKind,
    /// Seed of the random masks.
    #[serde(default)]
    pub mask_seed: u64,
    /// Conditioner network of every coupling.
    pub conditioner: ConditionerConfig,
    /// Bound on the scale (default: soft clamp at 3).
    #[serde(default)]
    pub scale_bound: ScaleBound,
    /// Symmetrize every coupling so that q(−x) = q(x) exactly (φ⁴).
    #[serde(default)]
    pub z2_equivariant: bool,
    /// Zero the last conditioner layer so the new flow equals its base.
    #[serde(default = "default_true")]
    pub identity_init: bool,
}

fn default_kernel() -> usize {
    3
}
fn default_slope() -> f64 {
    0.01
}
fn default_sigma() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

impl FlowConfig {
    /// The tutorial architecture (REFERENCE §4, arXiv 2101.08176) on an
    /// L×L lattice: 16 checkerboard couplings, conv 1→8→8→2, kernel 3,
    /// LeakyReLU, tanh outputs, no extra scale bound.
    pub fn tutorial(l: usize) -> Self {
        FlowConfig {
            shape: vec![l, l],
            base_sigma: 1.0,
            n_layers: 16,
            mask: MaskKind::Checkerboard,
            mask_seed: 0,
            conditioner: ConditionerConfig {
                kind: ConditionerKind::Conv,
                hidden: vec![8, 8],
                kernel: 3,
                activation: ActivationKind::LeakyRelu,
                output_activation: ActivationKind::Tanh,
                negative_slope: 0.01,
            },
            scale_bound: ScaleBound::None,
            z2_equivariant: false,
            identity_init: true,
        }
    }

    /// A vector flow with MLP conditioners (halves masks, SiLU, soft clamp).
    pub fn mlp(dim: usize, n_layers: usize, hidden: Vec<usize>) -> Self {
        FlowConfig {
            shape: vec![dim],
            base_sigma: 1.0,
            n_layers,
            mask: MaskKind::Halves,
            mask_seed: 0,
            conditioner: ConditionerConfig {
                kind: ConditionerKind::Mlp,
                hidden,
                kernel: 3,
                activation: ActivationKind::Silu,
                output_activation: ActivationKind::Identity,
                negative_slope: 0.01,
            },
            scale_bound: ScaleBound::default(),
            z2_equivariant: false,
            identity_init: true,
        }
    }

    /// Dimension D = Π shape.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let shape_str = || format!("{:?}", self.shape);
        if self.shape.is_empty() || self.shape.contains(&0) {
            return Err(ConfigError::new(
                "flow.shape",
                shape_str(),
                "must be non-empty with extents ≥ 1",
            ));
        }
        if self.dim() < 2 {
            return Err(ConfigError::new(
                "flow.shape",
                shape_str(),
                "needs at least 2 coordinates",
            ));
        }
        if !(self.base_sigma.is_finite() && self.base_sigma > 0.0) {
            return Err(ConfigError::new(
                "flow.base_sigma",
                self.base_sigma,
                "must be finite and > 0",
            ));
        }
        if self.n_layers == 0 {
            return Err(ConfigError::new("flow.n_layers", 0, "must be ≥ 1"));
        }
        if self.mask == MaskKind::Checkerboard && self.shape.iter().all(|&l| l == 1) {
            return Err(ConfigError::new(
                "flow.shape",
                shape_str(),
                "checkerboard needs an extent ≥ 2",
            ));
        }
        let c = &self.conditioner;
        if c.hidden.contains(&0) {
            return Err(ConfigError::new(
                "flow.conditioner.hidden",
                format!("{:?}", c.hidden),
                "widths must be ≥ 1",
            ));
        }
        if c.kind == ConditionerKind::Conv {
            if !(1..=3).contains(&self.shape.len()) {
                return Err(ConfigError::new(
                    "flow.shape",
                    shape_str(),
                    "convolutional conditioners need a lattice of 1, 2 or 3 dimensions",
                ));
            }
            if c.kernel % 2 == 0 {
                return Err(ConfigError::new("flow.conditioner.kernel", c.kernel, "must be odd"));
            }
        }
        if !c.negative_slope.is_finite() {
            return Err(ConfigError::new(
                "flow.conditioner.negative_slope",
                c.negative_slope,
                "must be finite",
            ));
        }
        if self.identity_init && c.output_activation == ActivationKind::Softplus {
            return Err(ConfigError::new(
                "flow.conditioner.output_activation",
                "softplus",
                "does not vanish at 0, so identity_init would not give the identity",
            ));
        }
        if let ScaleBound::SoftClamp { c } = self.scale_bound {
            if !(c.is_finite() && c > 0.0) {
                return Err(ConfigError::new("flow.scale_bound.c", c, "must be finite and > 0"));
            }
        }
        Ok(())
    }

    /// The coupling layers described by the configuration (validated).
    pub fn layers(&self) -> Result<Vec<Coupling>, ConfigError> {
        self.validate()?;
        let d = self.dim();
        let c = &self.conditioner;
        let act = Act::from_kind(c.activation, c.negative_slope);
        let out_act = Act::from_kind(c.output_activation, c.negative_slope);
        let geom = (c.kind == ConditionerKind::Conv).then(|| ConvGeometry::periodic(&self.shape, c.kernel));
        Ok((0..self.n_layers)
            .map(|k| {
                let m = match self.mask {
                    MaskKind::Checkerboard => mask::checkerboard(&self.shape, k),
                    MaskKind::Halves => mask::halves(d, k),
                    MaskKind::Random => mask::random(d, k, self.mask_seed),
                };
                let spec = match c.kind {
                    ConditionerKind::Mlp => ConditionerSpec::Mlp {
                        hidden: c.hidden.clone(),
                        act,
                        out_act,
                    },
                    ConditionerKind::Conv => ConditionerSpec::Conv {
                        geom: geom.clone().unwrap(),
                        hidden: c.hidden.clone(),
                        act,
                        out_act,
                    },
                };
                Coupling::new(&m, spec, self.scale_bound.act(), self.z2_equivariant)
            })
            .collect())
    }

    /// A new flow with freshly initialized parameters drawn from `seed`
    /// (uniform ±1/√fan_in; last conditioner layer zero if `identity_init`).
    pub fn build(&self, seed: Seed) -> Result<Flow, ConfigError> {
        let layers = self.layers()?;
        let n: usize = layers.iter().map(crate::Layer::n_params).sum();
        let mut params = vec![0.0; n];
        let mut rng = seed.rng();
        let mut off = 0;
        for l in &layers {
            let np = l.net().n_params();
            l.net()
                .init_params(&mut params[off..off + np], &mut rng, self.identity_init);
            off += np;
        }
        let mut flow = Flow::from_layers(self.base_sigma, layers, params);
        flow.config = Some(self.clone());
        Ok(flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_config_round_trips_and_counts_parameters() {
        let cfg = FlowConfig::tutorial(8);
        let json = serde_json::to_string(&cfg).unwrap();
        let back: FlowConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(cfg, back);
        let doc = r#"{ "shape": [8, 8], "n_layers": 16, "mask": "checkerboard",
            "conditioner": { "kind": "conv", "hidden": [8, 8], "kernel": 3,
                             "activation": "leaky_relu", "output_activation": "tanh" },
            "scale_bound": { "kind": "none" } }"#;
        let parsed: FlowConfig = serde_json::from_str(doc).unwrap();
        assert_eq!(parsed, cfg);
        let flow = cfg.build(Seed::new(1)).unwrap();
        // Per coupling: (8·9·1 + 8) + (8·9·8 + 8) + (2·9·8 + 2) = 80 + 584 + 146.
        assert_eq!(flow.n_params(), 16 * 810);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected_with_the_field_name() {
        let bad = r#"{ "shape": [4], "n_layers": 2, "mask": "halves", "colour": 1,
            "conditioner": { "kind": "mlp", "hidden": [4], "activation": "tanh" } }"#;
        assert!(serde_json::from_str::<FlowConfig>(bad).is_err());
        let bad_scale = r#"{ "shape": [4], "n_layers": 2, "mask": "halves",
            "conditioner": { "kind": "mlp", "hidden": [4], "activation": "tanh" },
            "scale_bound": { "kind": "soft_clamp", "c": 1.0, "d": 2 } }"#;
        assert!(serde_json::from_str::<FlowConfig>(bad_scale).is_err());
        let mut cfg = FlowConfig::tutorial(4);
        cfg.conditioner.kernel = 4;
        assert_eq!(cfg.validate().unwrap_err().field, "flow.conditioner.kernel");
        let mut cfg = FlowConfig::mlp(4, 2, vec![8]);
        cfg.base_sigma = -1.0;
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.to_string(), "flow.base_sigma = -1: must be finite and > 0");
        let mut cfg = FlowConfig::mlp(4, 2, vec![8]);
        cfg.scale_bound = ScaleBound::SoftClamp { c: 0.0 };
        assert_eq!(cfg.validate().unwrap_err().field, "flow.scale_bound.c");
        let mut cfg = FlowConfig::mlp(4, 2, vec![8]);
        cfg.conditioner.output_activation = ActivationKind::Softplus;
        assert_eq!(cfg.validate().unwrap_err().field, "flow.conditioner.output_activation");
        let mut cfg = FlowConfig::tutorial(4);
        cfg.shape = vec![2, 2, 2, 2];
        assert_eq!(cfg.validate().unwrap_err().field, "flow.shape");
    }
}
