//! Flow architectures as serde configurations.
//!
//! A [`FlowConfig`] fully determines the architecture (layers, masks,
//! conditioners, bounds, base σ); together with the flat parameter vector it
//! rebuilds a flow bit for bit ([`crate::Flow::from_parts`]). It is what the
//! model file stores as its `architecture` attribute (JSON).
//!
//! The tutorial architecture of docs/THEORY.md §4.4 (arXiv 2101.08176) is
//! [`FlowConfig::tutorial`]; as JSON:
//!
//! ```json
//! { "shape": [8, 8], "n_layers": 16, "mask": "checkerboard",
//!   "conditioner": { "kind": "conv", "hidden": [8, 8], "kernel": 3,
//!                    "activation": "leaky_relu", "output_activation": "tanh" },
//!   "scale_bound": { "kind": "none" } }
//! ```
//!
//! Couplings are affine unless `coupling` selects the rational-quadratic
//! spline ([`crate::spline`]); in TOML
//! `coupling = { spline = { bins = 8, tail_bound = 5.0 } }` (JSON
//! `"coupling": { "spline": { "bins": 8, "tail_bound": 5.0 } }`). The
//! default `coupling = "affine"` is not written out, so affine architectures
//! serialize exactly as before the key existed.
//!
//! This module describes architectures only; [`FlowConfig::build`] and
//! [`crate::Flow::from_parts`] (in [`crate::flow`]) turn them into flows.

use crate::activation::{Act, ActivationKind};
use crate::coupling::{ConditionerSpec, Coupling, Transform};
use crate::flow_layer::FlowLayer;
use crate::free_field::FreeField;
use crate::mask;
use crate::net::ConvGeometry;
use crate::spline::{RqSpline, MAX_BINS};
use fieldflow_core::ConfigError;
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

/// Floating-point precision of the conditioner networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// Double precision (the default; what every 1e-6 derivative test pins).
    #[default]
    F64,
    /// Single precision inside the conditioner networks of convolutional
    /// flows (lattice fields); the coupling arithmetic, log-determinants,
    /// losses and optimizer stay f64 (`crate::lanes`).
    F32,
}

impl Dtype {
    fn is_f64(&self) -> bool {
        *self == Dtype::F64
    }
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

/// The elementwise transform of every coupling.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouplingKind {
    /// y = x e^{s} + t (RealNVP) with s bounded by `scale_bound`.
    #[default]
    Affine,
    /// Monotone rational-quadratic spline on [−B, B], identity outside
    /// (`scale_bound` does not apply).
    Spline(SplineConfig),
}

impl CouplingKind {
    /// Whether this is the default affine coupling.
    pub fn is_affine(&self) -> bool {
        *self == CouplingKind::Affine
    }
}

/// Shape of the rational-quadratic spline couplings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplineConfig {
    /// Number of bins K (2 ≤ K ≤ 256); 3K − 1 conditioner outputs per coordinate.
    pub bins: usize,
    /// Tail bound B > 0: the spline acts on [−B, B], the identity outside.
    pub tail_bound: f64,
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
    /// Elementwise transform of the couplings (default affine; omitted
    /// from the serialized form when affine).
    #[serde(default, skip_serializing_if = "CouplingKind::is_affine")]
    pub coupling: CouplingKind,
    /// Symmetrize every coupling so that q(−x) = q(x) exactly (φ⁴).
    #[serde(default)]
    pub z2_equivariant: bool,
    /// A learned free-field layer (translation-invariant Gaussian, one
    /// log-eigenvalue per momentum orbit) in front of the couplings, acting
    /// on the base ([`crate::free_field`]; lattice fields only; default off,
    /// omitted from the serialized form when off).
    #[serde(default, skip_serializing_if = "is_false")]
    pub free_field: bool,
    /// Zero the last conditioner layer so the new flow equals its base.
    #[serde(default = "default_true")]
    pub identity_init: bool,
    /// Precision of the conditioner networks (`f64` default, omitted from
    /// the serialized form; `f32` needs a convolutional conditioner).
    #[serde(default, skip_serializing_if = "Dtype::is_f64")]
    pub dtype: Dtype,
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
fn is_false(b: &bool) -> bool {
    !*b
}

impl FlowConfig {
    /// The tutorial architecture (docs/THEORY.md §4.4, arXiv 2101.08176) on an
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
            coupling: CouplingKind::Affine,
            z2_equivariant: false,
            free_field: false,
            identity_init: true,
            dtype: Dtype::F64,
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
            coupling: CouplingKind::Affine,
            z2_equivariant: false,
            free_field: false,
            identity_init: true,
            dtype: Dtype::F64,
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
            if c.kernel.is_multiple_of(2) {
                return Err(ConfigError::new("flow.conditioner.kernel", c.kernel, "must be odd"));
            }
        } else if self.free_field {
            return Err(ConfigError::new(
                "flow.free_field",
                true,
                "needs a convolutional conditioner (a periodic lattice field)",
            ));
        } else if self.dtype == Dtype::F32 {
            return Err(ConfigError::new(
                "flow.dtype",
                "f32",
                "single precision needs a convolutional conditioner (lattice fields); MLPs run in f64",
            ));
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
        if let CouplingKind::Spline(sp) = self.coupling {
            if !(2..=MAX_BINS).contains(&sp.bins) {
                return Err(ConfigError::new(
                    "flow.coupling.spline.bins",
                    sp.bins,
                    format!("must be between 2 and {MAX_BINS}"),
                ));
            }
            if !(sp.tail_bound.is_finite() && sp.tail_bound > 0.0) {
                return Err(ConfigError::new(
                    "flow.coupling.spline.tail_bound",
                    sp.tail_bound,
                    "must be finite and > 0",
                ));
            }
            if self.z2_equivariant {
                return Err(ConfigError::new(
                    "flow.z2_equivariant",
                    true,
                    "is only available with affine couplings",
                ));
            }
        }
        Ok(())
    }

    /// The layers described by the configuration (validated): the
    /// free-field layer if asked for, then the couplings.
    pub fn layers(&self) -> Result<Vec<FlowLayer>, ConfigError> {
        self.validate()?;
        let d = self.dim();
        let c = &self.conditioner;
        let act = Act::from_kind(c.activation, c.negative_slope);
        let out_act = Act::from_kind(c.output_activation, c.negative_slope);
        let geom = (c.kind == ConditionerKind::Conv).then(|| ConvGeometry::periodic(&self.shape, c.kernel));
        let transform = match self.coupling {
            CouplingKind::Affine => Transform::Affine(self.scale_bound.act()),
            CouplingKind::Spline(sp) => Transform::Spline(RqSpline::new(sp.bins, sp.tail_bound)),
        };
        let free_field = self
            .free_field
            .then(|| FlowLayer::FreeField(FreeField::new(&self.shape)));
        Ok(free_field
            .into_iter()
            .chain((0..self.n_layers).map(|k| {
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
                        dtype: self.dtype,
                    },
                };
                FlowLayer::Coupling(Coupling::with_transform(&m, spec, transform, self.z2_equivariant))
            }))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldflow_core::Seed;

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

    #[test]
    fn coupling_defaults_to_affine_and_affine_configs_serialize_as_before() {
        let doc = r#"{ "shape": [4], "n_layers": 2, "mask": "halves",
            "conditioner": { "kind": "mlp", "hidden": [4], "activation": "tanh" } }"#;
        let cfg: FlowConfig = serde_json::from_str(doc).unwrap();
        assert_eq!(cfg.coupling, CouplingKind::Affine);
        let json = serde_json::to_string(&FlowConfig::tutorial(8)).unwrap();
        assert!(!json.contains("coupling"), "{json}");
        let explicit: FlowConfig =
            serde_json::from_str(&doc.replace("\"n_layers\"", "\"coupling\": \"affine\", \"n_layers\"")).unwrap();
        assert_eq!(explicit, cfg);
    }

    #[test]
    fn spline_couplings_parse_from_toml_and_json_and_round_trip() {
        let toml_doc = r#"
            shape = [6]
            n_layers = 4
            mask = "halves"
            coupling = { spline = { bins = 8, tail_bound = 5.0 } }
            [conditioner]
            kind = "mlp"
            hidden = [16]
            activation = "silu"
        "#;
        let cfg: FlowConfig = toml::from_str(toml_doc).unwrap();
        let sp = SplineConfig {
            bins: 8,
            tail_bound: 5.0,
        };
        assert_eq!(cfg.coupling, CouplingKind::Spline(sp));
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            json.contains(r#""coupling":{"spline":{"bins":8,"tail_bound":5.0}}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<FlowConfig>(&json).unwrap(), cfg);
        // 3 transformed coordinates × (3·8 − 1) outputs from 16 hidden units.
        let flow = cfg.build(Seed::new(1)).unwrap();
        assert_eq!(flow.n_params(), 4 * ((3 * 16 + 16) + (16 * 3 * 23 + 3 * 23)));
        let typo = toml_doc.replace("tail_bound", "tailbound");
        assert!(toml::from_str::<FlowConfig>(&typo).is_err());
    }

    #[test]
    fn bad_spline_settings_are_rejected_with_the_field_name() {
        let spline = |bins, tail_bound| {
            let mut c = FlowConfig::mlp(4, 2, vec![8]);
            c.coupling = CouplingKind::Spline(SplineConfig { bins, tail_bound });
            c
        };
        assert!(spline(2, 0.5).validate().is_ok());
        let e = spline(1, 3.0).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "flow.coupling.spline.bins = 1: must be between 2 and 256"
        );
        assert_eq!(
            spline(257, 3.0).validate().unwrap_err().field,
            "flow.coupling.spline.bins"
        );
        for b in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = spline(8, b).validate().unwrap_err();
            assert_eq!(e.field, "flow.coupling.spline.tail_bound");
            assert!(!e.to_string().contains('\n'));
        }
        let mut c = spline(8, 3.0);
        c.z2_equivariant = true;
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "flow.z2_equivariant = true: is only available with affine couplings"
        );
        assert!(c.build(Seed::new(0)).is_err());
    }
}
