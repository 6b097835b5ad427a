//! The derivative contract of an invertible layer (docs/THEORY.md §4.1, §4.6).
//!
//! A layer is a bijection y = f_θ(x) of ℝᴰ, applied to a batch (one sample
//! per row). Its parameters θ are a slice of the flow's single flat parameter
//! vector. Conventions shared by every method:
//!
//! * `apply` runs the layer in the given [`Direction`]: `Forward` computes
//!   y = f(x) (the sampling direction z → x), `Inverse` computes y = f⁻¹(x)
//!   (the density direction x → z). Either way it **adds**
//!   log|det ∂y/∂x| of the direction it ran to `logdet` (so the inverse adds
//!   minus the forward log-determinant) and records what the reverse mode
//!   needs on the layer's tape.
//! * `backward` is the reverse mode of the last `apply` recorded on the
//!   tape: given ḡ_y = ∂L/∂y (rows) and ḡ_ℓ = ∂L/∂logdet (one per row) it
//!   **overwrites** ∂L/∂x = (∂y/∂x)ᵀ ḡ_y + ḡ_ℓ ∂logdet/∂x and **accumulates**
//!   ∂L/∂θ into `gp` (a sum over the rows), when `gp` is given.
//!
//! [`ScoreLayer`] adds the capability that score matching needs: the
//! forward-mode derivative (JVP) of the inverse along an input tangent dx,
//! dy = (∂f⁻¹/∂x) dx and d logdet = ⟨∇ₓ logdet, dx⟩, and the reverse mode of
//! the pair (y, dy, logdet, d logdet) with respect to (x, dx, θ). A flow is a
//! [`crate::ScoreModel`] only if its layer type is a `ScoreLayer`, so a layer
//! without second derivatives cannot be trained by score matching: the
//! compiler refuses it.
//!
//! Shapes are programming errors: every method panics when the rows of its
//! arguments disagree with the tape it was given.

use crate::lanes::LaneWork;
use crate::spline::SplineWork;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// Which way a layer is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// y = f(x): base → data (sampling, reverse KL).
    Forward,
    /// y = f⁻¹(x): data → base (density, forward KL, score).
    Inverse,
}

/// Scratch buffers shared by all layers of one chunk of a batch. They grow
/// on first use and are then reused by every later layer, so a batched call
/// allocates its scratch once per chunk, never per sample or per layer.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) a: Vec<f64>,
    pub(crate) b: Vec<f64>,
    pub(crate) c: Vec<f64>,
    pub(crate) d: Vec<f64>,
    pub(crate) e: Vec<f64>,
    pub(crate) coupling: [Vec<f64>; 8],
    pub(crate) spline: SplineWork,
    pub(crate) lanes64: LaneWork<f64>,
    pub(crate) lanes32: LaneWork<f32>,
}

/// `buf[..len]`, growing `buf` when it is too short (contents unspecified).
pub(crate) fn take(buf: &mut Vec<f64>, len: usize) -> &mut [f64] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// One invertible layer with hand-written reverse-mode derivatives.
pub trait Layer: Send + Sync {
    /// What `apply` records for `backward` (sized for a fixed number of rows).
    type Tape: Send;

    /// Dimension D of x and y.
    fn dim(&self) -> usize;

    /// Number of parameters (the length of the slice `p`).
    fn n_params(&self) -> usize;

    /// A tape for batches of `rows` rows; `tangent` also reserves room for
    /// the forward-mode pass of [`ScoreLayer`].
    fn new_tape(&self, rows: usize, tangent: bool) -> Self::Tape;

    /// y = f(x) or f⁻¹(x) per row, `logdet += log|det ∂y/∂x|`, recorded on `tape`.
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    fn apply(
        &self,
        dir: Direction,
        p: &[f64],
        x: ArrayView2<f64>,
        y: ArrayViewMut2<f64>,
        logdet: ArrayViewMut1<f64>,
        tape: &mut Self::Tape,
        scratch: &mut Scratch,
    );

    /// Reverse mode of the last `apply`: overwrites `gx` with ∂L/∂x and adds
    /// ∂L/∂θ (summed over rows) to `gp` when given.
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    fn backward(
        &self,
        p: &[f64],
        tape: &Self::Tape,
        gy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        gx: ArrayViewMut2<f64>,
        gp: Option<&mut [f64]>,
        scratch: &mut Scratch,
    );
}

/// A layer with the second-order capability needed by score matching
/// (docs/THEORY.md §4.8): forward mode of the inverse, and the reverse mode of
/// that forward mode.
pub trait ScoreLayer: Layer {
    /// Inverse pass with a tangent: y = f⁻¹(x), dy = (∂y/∂x) dx,
    /// `logdet += ℓ(x)` and `dlogdet += ⟨∇ₓ ℓ, dx⟩` with ℓ = log|det ∂y/∂x|.
    /// The tape must have been made with `tangent = true`.
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    fn inverse_jvp(
        &self,
        p: &[f64],
        x: ArrayView2<f64>,
        dx: ArrayView2<f64>,
        y: ArrayViewMut2<f64>,
        dy: ArrayViewMut2<f64>,
        logdet: ArrayViewMut1<f64>,
        dlogdet: ArrayViewMut1<f64>,
        tape: &mut Self::Tape,
        scratch: &mut Scratch,
    );

    /// Reverse mode of `inverse_jvp`: given ∂L/∂y, ∂L/∂dy, ∂L/∂logdet and
    /// ∂L/∂dlogdet, overwrites ∂L/∂x and ∂L/∂dx and adds ∂L/∂θ to `gp`.
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    fn inverse_jvp_backward(
        &self,
        p: &[f64],
        tape: &Self::Tape,
        gy: ArrayView2<f64>,
        gdy: ArrayView2<f64>,
        gld: ArrayView1<f64>,
        gdld: ArrayView1<f64>,
        gx: ArrayViewMut2<f64>,
        gdx: ArrayViewMut2<f64>,
        gp: &mut [f64],
        scratch: &mut Scratch,
    );
}
