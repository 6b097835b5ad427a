//! # fieldflow-flows
//!
//! Normalizing flows with every derivative written by hand (no autodiff) and
//! checked against finite differences (docs/THEORY.md §1, §4, §5).
//!
//! * [`layer`]: the derivative contract — [`Layer`] (apply in either
//!   direction with log|det|, reverse mode) and [`ScoreLayer`] (forward mode
//!   of the inverse and its reverse mode, for score matching);
//! * [`activation`], [`net`]: conditioner primitives (dense, periodic
//!   convolution, activations) with value, reverse, forward and
//!   reverse-of-forward modes;
//! * [`coupling`]: coupling layers (masks + conditioner) with an affine
//!   (RealNVP: bounded scale, Z₂-equivariant option) or spline transform,
//!   identity initialization;
//! * [`spline`]: the monotone rational-quadratic spline (Neural Spline
//!   Flows) with its JVP and the reverse mode of both;
//! * [`free_field`]: the free-field layer, a learned translation-invariant
//!   Gaussian map (diagonal in momentum space) for lattice fields;
//! * [`flow_layer`]: [`FlowLayer`], a coupling or the free-field layer (what
//!   a [`FlowConfig`] builds);
//! * [`mask`]: checkerboard, halves and random masks;
//! * [`flow`]: [`Flow`] = base N(0, σ²I) + layers + one flat parameter
//!   vector; sampling, density, score, FKL / RKL gradients, and
//!   [`ScoreModel`] (the score-matching second-order term); implements
//!   core's [`fieldflow_core::Proposal`];
//! * [`mixture`]: [`FlowMixture`], one flow per mode behind a fixed affine
//!   map, weights by importance sampling; [`ComponentTarget`], the target
//!   seen by one component;
//! * [`pullback`]: [`Pullback`], the target pulled back to latent space,
//!   π̃(z) = p̃(f(z)) |det ∂f/∂z|, with its score (neutra-MCMC), as a
//!   [`fieldflow_core::Target`];
//! * [`config`]: [`FlowConfig`], the serde architecture (with the tutorial
//!   preset) from which [`Flow::from_parts`] rebuilds a flow.
//!
//! ## The second-order term in one paragraph
//! Score matching needs ∂θ⟨r, ∇ₓ log q_θ(x)⟩ for fixed r. Since
//! ⟨r, ∇ₓ log q⟩ = d/dε log q_θ(x + εr), it is the forward-mode derivative
//! of the density pass along the input tangent r, differentiated in θ by
//! reverse mode: every primitive implements the map (u, du) ↦ (y, dy) and
//! its adjoint (ȳ, dȳ) ↦ (ū, dū, θ̄). For a linear map the tangent is W du
//! and W collects ȳuᵀ + dȳduᵀ; for an activation the adjoint is
//! ū = ȳφ'(u) + dȳφ''(u)du, dū = dȳφ'(u); for the coupling see
//! [`coupling`]. One sweep costs about 4× a density pass and also returns
//! the score and the Hessian-vector product ∇²ₓ log q · r.
//!
//! ## Capabilities are checked at compile time
//! Any [`Layer`] makes a [`Flow`] that samples, evaluates log q, its score
//! and the FKL / RKL gradients:
//!
//! ```
//! # use fieldflow_flows::{Direction, Flow, Layer, Scratch, ScoreModel};
//! # use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
//! /// y = x ± b: a layer with first derivatives only.
//! struct Shift(usize);
//!
//! impl Layer for Shift {
//!     type Tape = f64; // the sign of the last pass
//!     fn dim(&self) -> usize { self.0 }
//!     fn n_params(&self) -> usize { self.0 }
//!     fn new_tape(&self, _rows: usize, _tangent: bool) -> f64 { 0.0 }
//!     fn apply(&self, dir: Direction, p: &[f64], x: ArrayView2<f64>, mut y: ArrayViewMut2<f64>,
//!              _logdet: ArrayViewMut1<f64>, sign: &mut f64, _s: &mut Scratch) {
//!         *sign = if dir == Direction::Forward { 1.0 } else { -1.0 };
//!         for (mut yr, xr) in y.rows_mut().into_iter().zip(x.rows()) {
//!             for i in 0..self.0 { yr[i] = xr[i] + *sign * p[i]; }
//!         }
//!     }
//!     fn backward(&self, _p: &[f64], sign: &f64, gy: ArrayView2<f64>, _gld: ArrayView1<f64>,
//!                 mut gx: ArrayViewMut2<f64>, gp: Option<&mut [f64]>, _s: &mut Scratch) {
//!         gx.assign(&gy);
//!         if let Some(gp) = gp {
//!             for row in gy.rows() {
//!                 for i in 0..self.0 { gp[i] += *sign * row[i]; }
//!             }
//!         }
//!     }
//! }
//! let flow = Flow::from_layers(1.0, vec![Shift(2)], vec![0.5, -0.5]);
//! let xs = ndarray::Array2::from_elem((1, 2), 0.5);
//! let mut log_q = ndarray::Array1::zeros(1);
//! let mut score = ndarray::Array2::zeros((1, 2));
//! flow.score_batch(xs.view(), score.view_mut(), log_q.view_mut(), fieldflow_core::Par::serial(1));
//! assert_eq!(score[(0, 0)], -0.0); // −(x − b)/σ² at x = b
//! ```
//!
//! but only a [`ScoreLayer`] makes a [`ScoreModel`], so score matching
//! cannot be set up with a layer that lacks the second-order term:
//!
//! ```compile_fail,E0277
//! # use fieldflow_flows::{Direction, Flow, Layer, Scratch, ScoreModel};
//! # use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
//! /// y = x ± b: a layer with first derivatives only.
//! struct Shift(usize);
//!
//! impl Layer for Shift {
//!     type Tape = f64; // the sign of the last pass
//!     fn dim(&self) -> usize { self.0 }
//!     fn n_params(&self) -> usize { self.0 }
//!     fn new_tape(&self, _rows: usize, _tangent: bool) -> f64 { 0.0 }
//!     fn apply(&self, dir: Direction, p: &[f64], x: ArrayView2<f64>, mut y: ArrayViewMut2<f64>,
//!              _logdet: ArrayViewMut1<f64>, sign: &mut f64, _s: &mut Scratch) {
//!         *sign = if dir == Direction::Forward { 1.0 } else { -1.0 };
//!         for (mut yr, xr) in y.rows_mut().into_iter().zip(x.rows()) {
//!             for i in 0..self.0 { yr[i] = xr[i] + *sign * p[i]; }
//!         }
//!     }
//!     fn backward(&self, _p: &[f64], sign: &f64, gy: ArrayView2<f64>, _gld: ArrayView1<f64>,
//!                 mut gx: ArrayViewMut2<f64>, gp: Option<&mut [f64]>, _s: &mut Scratch) {
//!         gx.assign(&gy);
//!         if let Some(gp) = gp {
//!             for row in gy.rows() {
//!                 for i in 0..self.0 { gp[i] += *sign * row[i]; }
//!             }
//!         }
//!     }
//! }
//! let flow = Flow::from_layers(1.0, vec![Shift(2)], vec![0.5, -0.5]);
//! fn needs_score_model<M: ScoreModel>(_: &M) {}
//! needs_score_model(&flow); // error: `Shift: ScoreLayer` is not satisfied
//! ```

pub mod activation;
pub mod config;
pub mod coupling;
pub mod flow;
pub mod flow_layer;
pub mod free_field;
mod lanes;
pub mod layer;
pub mod mask;
pub mod mixture;
pub mod net;
pub mod pullback;
mod simd;
pub mod spline;

pub use activation::{Act, ActivationKind};
pub use config::{
    ConditionerConfig, ConditionerKind, CouplingKind, Dtype, FlowConfig, MaskKind, ScaleBound, SplineConfig,
};
pub use coupling::{ConditionerSpec, Coupling, CouplingTape, Transform};
pub use flow::{Flow, FlowError, ScoreModel};
pub use flow_layer::{FlowLayer, FlowLayerTape};
pub use free_field::{FreeField, FreeFieldTape};
pub use layer::{Direction, Layer, ScoreLayer, Scratch};
pub use mixture::{
    Affine, AffineMap, Boundary, ComponentTarget, FlowMixture, Locate, MixtureConfig, MixtureLayout, WeightEstimate,
    LAPLACE_MAX_DIM,
};
pub use net::{ConvGeometry, ConvKernel, Net, NetTape};
pub use pullback::{Pullback, PullbackRows, PushedForward};
pub use spline::RqSpline;
