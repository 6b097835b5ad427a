//! The pull-back of a target through a flow: the density that neutra-MCMC
//! samples in latent space (docs/THEORY.md §6.9; Hoffman et al. 2019,
//! arXiv 1903.03704).
//!
//! # The density
//! With the flow's sampling map x = f(z) (a diffeomorphism of ℝᴰ) and an
//! unnormalized target p̃ with normalizer Z, the change of variables gives
//! the latent density
//!
//!   π̃(z) = p̃(f(z)) |det ∂f/∂z|,   ∫ π̃(z) dz = ∫ p̃(x) dx = Z,
//!
//! so z ~ π̃/Z exactly when x = f(z) ~ p̃/Z, and π̃ is an unnormalized
//! [`Target`] with the target's log Z. A chain that leaves π̃ invariant in z
//! and reports x = f(z) samples p̃ exactly, whatever the flow; the flow only
//! decides how easy π̃ is (a perfect flow makes π̃ ∝ N(0, σ²I)).
//!
//! # The latent score
//! log π̃(z) = log p̃(f(z)) + ℓ_f(z), ℓ_f = Σ_k log|det ∂f_k| along the forward
//! pass, hence
//!
//!   ∇_z log π̃(z) = J_f(z)ᵀ ∇ₓ log p̃(x) + ∇_z ℓ_f(z),
//!
//! which is one reverse-mode sweep of the forward pass seeded with
//! x̄ = ∇ₓ log p̃(x) and ℓ̄_f = 1: every layer's adjoint receives the
//! cotangent of its output plus the log-det cotangent 1 of its own
//! log-determinant ([`Flow::pullback_batch`]; the derivation through affine
//! couplings is in docs/THEORY.md §6.9).
//!
//! # Cost and allocation
//! A batched call ([`Target::log_prob_batch`],
//! [`Target::log_prob_and_score_batch`]) evaluates each chunk of `par` rows
//! in one flow pass. A single-row call ([`Target::log_prob`],
//! [`Target::log_prob_and_score`], as local kernels make them) runs the flow
//! on a batch of one row and allocates the flow's tapes and a few one-row
//! buffers on every call; the flow has no allocation-free single-row path.

use crate::flow::Flow;
use crate::flow_layer::FlowLayer;
use crate::layer::Layer;
use fieldflow_core::{ConfigError, Par, Target};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// Output buffers of [`Flow::pullback_batch`], one row or entry per latent point.
#[derive(Debug)]
pub struct PullbackRows<'a> {
    /// x = f(z), `[rows, dim]`.
    pub xs: ArrayViewMut2<'a, f64>,
    /// log p̃(x).
    pub log_p: ArrayViewMut1<'a, f64>,
    /// ℓ_f(z) = log|det ∂f/∂z|.
    pub log_det: ArrayViewMut1<'a, f64>,
    /// ∇_z log π̃(z), `[rows, dim]`, when wanted.
    pub scores: Option<ArrayViewMut2<'a, f64>>,
}

/// π̃(z) = p̃(f(z)) |det ∂f/∂z|: `target` pulled back through `flow` (see
/// the module docs). A [`Target`] in z, with the target's log Z.
pub struct Pullback<'a, L: Layer = FlowLayer> {
    flow: &'a Flow<L>,
    target: &'a dyn Target,
}

/// One latent point through the flow: x = f(z), log p̃(x), log|det ∂f/∂z|.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushedForward {
    /// log p̃(x).
    pub log_p: f64,
    /// ℓ_f(z) = log|det ∂f/∂z|.
    pub log_det: f64,
}

impl<'a, L: Layer> Pullback<'a, L> {
    /// The pull-back of `target` through `flow`.
    ///
    /// # Errors
    /// `target.dim` differs from the flow's dimension.
    pub fn new(flow: &'a Flow<L>, target: &'a dyn Target) -> Result<Self, ConfigError> {
        if target.dim() != flow.dim() {
            return Err(ConfigError::new(
                "target.dim",
                target.dim(),
                format!("must equal the flow's dimension {}", flow.dim()),
            ));
        }
        Ok(Pullback { flow, target })
    }

    /// The flow f.
    pub fn flow(&self) -> &'a Flow<L> {
        self.flow
    }

    /// The target p̃ (in x).
    pub fn target(&self) -> &'a dyn Target {
        self.target
    }

    /// x = f(z) into `x`, with log p̃(x) and log|det ∂f/∂z| (one row;
    /// allocates inside the flow). log q(x) = log N(z; 0, σ²I) − log|det|.
    ///
    /// # Panics
    /// If `z` or `x` is not of the flow's dimension.
    pub fn push_forward(&self, z: &[f64], x: &mut [f64]) -> PushedForward {
        self.one_row(z, x, None)
    }

    /// One row of [`Flow::pullback_batch`].
    fn one_row(&self, z: &[f64], x: &mut [f64], score: Option<&mut [f64]>) -> PushedForward {
        let d = self.flow.dim();
        let zv = ArrayView2::from_shape((1, d), z).expect("z has the flow's dimension");
        let (mut log_p, mut log_det) = ([0.0], [0.0]);
        let out = PullbackRows {
            xs: ArrayViewMut2::from_shape((1, d), x).expect("x has the flow's dimension"),
            log_p: ArrayViewMut1::from(&mut log_p[..]),
            log_det: ArrayViewMut1::from(&mut log_det[..]),
            scores: score.map(|s| ArrayViewMut2::from_shape((1, d), s).expect("score has the flow's dimension")),
        };
        self.flow.pullback_batch(self.target, zv, out, Par::serial(1));
        PushedForward {
            log_p: log_p[0],
            log_det: log_det[0],
        }
    }

    /// Batched pull-back of `zs` into `out` (log π̃) and optionally `scores`.
    fn batch(&self, zs: ArrayView2<f64>, mut out: ArrayViewMut1<f64>, scores: Option<ArrayViewMut2<f64>>, par: Par) {
        assert_eq!(
            zs.ncols(),
            self.flow.dim(),
            "batch width differs from the target's dimension"
        );
        let n = zs.nrows();
        let mut xs = Array2::zeros(zs.raw_dim());
        let mut log_det = Array1::zeros(n);
        assert_eq!(out.len(), n, "rows of the batch and length of the output differ");
        let rows = PullbackRows {
            xs: xs.view_mut(),
            log_p: out.view_mut(),
            log_det: log_det.view_mut(),
            scores,
        };
        self.flow.pullback_batch(self.target, zs, rows, par);
        out += &log_det;
    }
}

/// A contiguous copy of `v` when it is not contiguous already.
fn as_slice<'v>(v: &'v ArrayView1<f64>, copy: &'v mut Vec<f64>) -> &'v [f64] {
    match v.as_slice() {
        Some(s) => s,
        None => {
            *copy = v.to_vec();
            copy
        }
    }
}

impl<L: Layer> Target for Pullback<'_, L> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }

    /// log π̃(z) = log p̃(f(z)) + log|det ∂f/∂z|.
    fn log_prob(&self, z: ArrayView1<f64>) -> f64 {
        let mut copy = Vec::new();
        let mut x = vec![0.0; self.flow.dim()];
        let r = self.one_row(as_slice(&z, &mut copy), &mut x, None);
        r.log_p + r.log_det
    }

    /// log π̃(z) and ∇_z log π̃(z) (one reverse-mode sweep of the flow).
    fn log_prob_and_score(&self, z: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let mut copy = Vec::new();
        let d = self.flow.dim();
        let (mut x, mut g) = (vec![0.0; d], vec![0.0; d]);
        let r = self.one_row(as_slice(&z, &mut copy), &mut x, Some(&mut g));
        score.assign(&ArrayView1::from(&g[..]));
        r.log_p + r.log_det
    }

    /// The target's log Z: ∫ π̃(z) dz = ∫ p̃(x) dx.
    fn log_z(&self) -> Option<f64> {
        self.target.log_z()
    }

    fn describe(&self) -> String {
        format!(
            "pullback(target = {}, flow: dim {}, {} layers, {} parameters, base sigma {})",
            self.target.describe(),
            self.flow.dim(),
            self.flow.layers().len(),
            self.flow.n_params(),
            self.flow.base_sigma()
        )
    }

    /// Chunks of `par` rows through the flow in one pass each.
    fn log_prob_batch(&self, zs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        self.batch(zs, out, None, par);
    }

    /// Chunks of `par` rows through the flow and back in one sweep each.
    fn log_prob_and_score_batch(
        &self,
        zs: ArrayView2<f64>,
        scores: ArrayViewMut2<f64>,
        out: ArrayViewMut1<f64>,
        par: Par,
    ) {
        assert_eq!(zs.dim(), scores.dim(), "batch and score shapes differ");
        self.batch(zs, out, Some(scores), par);
    }
}
