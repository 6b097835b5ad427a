//! The layers a [`crate::FlowConfig`] builds: couplings and, optionally, the
//! free-field layer in front of them. [`FlowLayer`] forwards every method of
//! the derivative contract ([`Layer`], [`ScoreLayer`]) to the layer it holds.

use crate::coupling::{Coupling, CouplingTape};
use crate::free_field::{FreeField, FreeFieldTape};
use crate::layer::{Direction, Layer, ScoreLayer, Scratch};
use crate::net::ConvKernel;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand::Rng;

/// One layer of a configured flow.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowLayer {
    /// An affine or spline coupling.
    Coupling(Coupling),
    /// The learned translation-invariant Gaussian layer.
    FreeField(FreeField),
}

/// The tape of a [`FlowLayer`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per layer and chunk, made once and pooled (crate::flow)
pub enum FlowLayerTape {
    /// Of a coupling.
    Coupling(CouplingTape),
    /// Of the free-field layer.
    FreeField(FreeFieldTape),
}

impl From<Coupling> for FlowLayer {
    fn from(c: Coupling) -> Self {
        FlowLayer::Coupling(c)
    }
}

impl FlowLayer {
    /// The coupling, if this layer is one.
    pub fn as_coupling(&self) -> Option<&Coupling> {
        match self {
            FlowLayer::Coupling(c) => Some(c),
            FlowLayer::FreeField(_) => None,
        }
    }

    /// Evaluates a convolutional conditioner by `kernel` (no-op otherwise).
    pub fn set_conv_kernel(&mut self, kernel: ConvKernel) {
        if let FlowLayer::Coupling(c) = self {
            c.set_conv_kernel(kernel);
        }
    }

    /// Flops ×2 per sample and pass.
    pub fn flops_per_sample(&self) -> f64 {
        match self {
            FlowLayer::Coupling(c) => c.flops_per_sample(),
            FlowLayer::FreeField(f) => f.flops_per_sample(),
        }
    }

    /// Initial parameters: the conditioner's initialization for a coupling
    /// (its last layer zero if `identity`), zero (C = I) for the free field.
    pub fn init_params<R: Rng>(&self, p: &mut [f64], rng: &mut R, identity: bool) {
        match self {
            FlowLayer::Coupling(c) => c.net().init_params(p, rng, identity),
            FlowLayer::FreeField(_) => p.fill(0.0),
        }
    }
}

/// `match` on a layer and its tape together; a mismatch is a programming error.
macro_rules! dispatch {
    ($layer:expr, $tape:expr, |$l:ident, $t:ident| $body:expr) => {
        match ($layer, $tape) {
            (FlowLayer::Coupling($l), FlowLayerTape::Coupling($t)) => $body,
            (FlowLayer::FreeField($l), FlowLayerTape::FreeField($t)) => $body,
            _ => panic!("a tape of another layer kind"),
        }
    };
}

impl Layer for FlowLayer {
    type Tape = FlowLayerTape;

    fn dim(&self) -> usize {
        match self {
            FlowLayer::Coupling(c) => c.dim(),
            FlowLayer::FreeField(f) => f.dim(),
        }
    }

    fn n_params(&self) -> usize {
        match self {
            FlowLayer::Coupling(c) => c.n_params(),
            FlowLayer::FreeField(f) => f.n_params(),
        }
    }

    fn new_tape(&self, rows: usize, tangent: bool) -> FlowLayerTape {
        match self {
            FlowLayer::Coupling(c) => FlowLayerTape::Coupling(c.new_tape(rows, tangent)),
            FlowLayer::FreeField(f) => FlowLayerTape::FreeField(f.new_tape(rows, tangent)),
        }
    }

    fn apply(
        &self,
        dir: Direction,
        p: &[f64],
        x: ArrayView2<f64>,
        y: ArrayViewMut2<f64>,
        logdet: ArrayViewMut1<f64>,
        tape: &mut FlowLayerTape,
        scratch: &mut Scratch,
    ) {
        dispatch!(self, tape, |l, t| l.apply(dir, p, x, y, logdet, t, scratch))
    }

    fn backward(
        &self,
        p: &[f64],
        tape: &FlowLayerTape,
        gy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        gx: ArrayViewMut2<f64>,
        gp: Option<&mut [f64]>,
        scratch: &mut Scratch,
    ) {
        dispatch!(self, tape, |l, t| l.backward(p, t, gy, gld, gx, gp, scratch))
    }
}

impl ScoreLayer for FlowLayer {
    fn inverse_jvp(
        &self,
        p: &[f64],
        x: ArrayView2<f64>,
        dx: ArrayView2<f64>,
        y: ArrayViewMut2<f64>,
        dy: ArrayViewMut2<f64>,
        logdet: ArrayViewMut1<f64>,
        dlogdet: ArrayViewMut1<f64>,
        tape: &mut FlowLayerTape,
        scratch: &mut Scratch,
    ) {
        dispatch!(self, tape, |l, t| l
            .inverse_jvp(p, x, dx, y, dy, logdet, dlogdet, t, scratch))
    }

    fn inverse_jvp_backward(
        &self,
        p: &[f64],
        tape: &FlowLayerTape,
        gy: ArrayView2<f64>,
        gdy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        gdld: ArrayView1<f64>,
        gx: ArrayViewMut2<f64>,
        gdx: ArrayViewMut2<f64>,
        gp: &mut [f64],
        scratch: &mut Scratch,
    ) {
        dispatch!(self, tape, |l, t| l
            .inverse_jvp_backward(p, t, gy, gdy, gld, gdld, gx, gdx, gp, scratch))
    }
}
