//! A normalizing flow: base N(0, σ²I), a sequence of layers, one flat
//! parameter vector (docs/THEORY.md §1, §4, §5).
//!
//! # Conventions
//! x = f(z) = f_{K−1} ∘ … ∘ f₀(z), z ~ N(0, σ²I). Layer k owns
//! `params[offset_k .. offset_{k+1}]`. With ℓ_f(z) = Σ_k log|det ∂f_k| along
//! the forward pass and ℓ_i(x) = −ℓ_f(f⁻¹(x)) along the inverse pass,
//!
//!   log q(x) = log N(z; 0, σ²I) − ℓ_f(z) = log N(f⁻¹(x)) + ℓ_i(x),
//!   log N(z) = −‖z‖²/(2σ²) − (D/2) log(2πσ²).
//!
//! # Derivatives offered
//! * **score** ∇ₓ log q(x): reverse mode of the inverse pass seeded with
//!   z̄ = −z/σ², ℓ̄ = 1 ([`Flow::score_batch`]).
//! * **FKL** ∂θ Σᵢ wᵢ log q(xᵢ): the same reverse pass seeded with
//!   z̄ = −wᵢ z/σ², ℓ̄ = wᵢ, accumulating θ̄ ([`Flow::log_q_grad_batch`]).
//! * **RKL** (reparametrized, z fixed): forward pass x = f(z),
//!   log q = log N(z) − ℓ_f; the caller supplies x̄ = ∂L/∂x (e.g. −w ∇log p̃(x))
//!   and ∂L/∂log q per row; reverse mode with ℓ̄_f = −∂L/∂log q
//!   ([`Flow::forward_vjp_batch`]).
//! * **latent score** ∇_z log π̃(z) of the pull-back π̃(z) = p̃(f(z)) |det ∂f/∂z|
//!   (neutra-MCMC): the same forward pass and reverse mode seeded with
//!   x̄ = ∇ₓ log p̃(x), ℓ̄_f = 1 ([`Flow::pullback_batch`], [`crate::pullback`]).
//! * **score-matching term** ∂θ⟨r, ∇ₓ log q_θ(x)⟩ ([`ScoreModel`]): with
//!   F(θ) = d/dε log q_θ(x + εr) = ⟨−z/σ², dz⟩ + Σ_k dℓ_k, run the inverse
//!   pass in forward mode along dx = r (each layer's `inverse_jvp`), then
//!   the reverse mode of that forward pass seeded with z̄ = −dz/σ²,
//!   dz̄ = −z/σ², ℓ̄ = 0, dℓ̄ = 1 (each layer's `inverse_jvp_backward`).
//!   The same sweep also yields dx̄ = ∇ₓ log q (the score) and
//!   x̄ = ∇²ₓ log q · r (a Hessian-vector product).
//!
//! # Building from a configuration
//! [`FlowConfig`] ([`crate::config`]) only describes an architecture; this
//! module turns it into a flow ([`FlowConfig::build`], [`Flow::from_parts`]),
//! so the dependency runs one way, flow → config.
//!
//! # Determinism and parallelism
//! Batches are split into chunks of `par.chunk_rows` rows (core's [`Par`]);
//! each chunk allocates its tapes and scratch once, runs sequentially, and
//! returns its outputs and its parameter-gradient partial sum; partial sums
//! are added in chunk order. Chunk k of a draw uses `seed.child(k)`. Results
//! are bit-identical for any number of rayon threads.

use crate::config::FlowConfig;
use crate::flow_layer::FlowLayer;
use crate::layer::{Direction, Layer, ScoreLayer, Scratch};
use crate::net::ConvKernel;
use crate::pullback::PullbackRows;
use fieldflow_core::{ConfigError, Par, Proposal, ProposalDensity, Seed, Target};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Slice};
use rand_distr::{Distribution, StandardNormal};

/// Errors of rebuilding a flow from stored parts.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The architecture is invalid.
    #[error(transparent)]
    Config(#[from] fieldflow_core::ConfigError),
    /// The parameter vector has the wrong length for the architecture.
    #[error("parameter vector has {got} entries, the architecture needs {expected}")]
    ParamLength {
        /// Entries the architecture needs.
        expected: usize,
        /// Entries supplied.
        got: usize,
    },
    /// The architecture JSON does not parse.
    #[error("architecture JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Score matching capability (docs/THEORY.md §4.7–§4.8, §5.3): the score of the model and the
/// θ-gradient of its contraction with a fixed vector field. Implemented by
/// [`Flow<L>`] only when `L: ScoreLayer`.
pub trait ScoreModel: Send + Sync {
    /// Dimension of x.
    fn dim(&self) -> usize;
    /// Number of parameters θ.
    fn n_params(&self) -> usize;
    /// Rows of `scores` ← ∇ₓ log q_θ(x), `log_q` ← log q_θ(x), per row of `xs`.
    fn score_batch(&self, xs: ArrayView2<f64>, scores: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par);
    /// `grad += Σᵢ ∂θ ⟨rᵢ, ∇ₓ log q_θ(xᵢ)⟩` (xᵢ, rᵢ held fixed).
    fn score_param_vjp_batch(&self, xs: ArrayView2<f64>, rs: ArrayView2<f64>, grad: &mut [f64], par: Par);
}

/// Base N(0, σ²I) followed by layers `L` (affine couplings by default).
pub struct Flow<L: Layer = FlowLayer> {
    dim: usize,
    base_sigma: f64,
    layers: Vec<L>,
    offsets: Vec<usize>,
    params: Vec<f64>,
    /// Boxed: keeps `Flow` small (callers hold it in enums by value).
    config: Option<Box<FlowConfig>>,
    /// Work buffers kept between batched calls.
    pool: WorkPool<L::Tape>,
}

// By hand: derived impls would demand the same of `L::Tape` (the pool's).
impl<L: Layer + Clone> Clone for Flow<L> {
    fn clone(&self) -> Self {
        Flow {
            dim: self.dim,
            base_sigma: self.base_sigma,
            layers: self.layers.clone(),
            offsets: self.offsets.clone(),
            params: self.params.clone(),
            config: self.config.clone(),
            pool: WorkPool::default(),
        }
    }
}

impl<L: Layer + PartialEq> PartialEq for Flow<L> {
    fn eq(&self, o: &Self) -> bool {
        (
            self.dim,
            self.base_sigma,
            &self.layers,
            &self.offsets,
            &self.params,
            &self.config,
        ) == (o.dim, o.base_sigma, &o.layers, &o.offsets, &o.params, &o.config)
    }
}

impl<L: Layer + std::fmt::Debug> std::fmt::Debug for Flow<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("dim", &self.dim)
            .field("base_sigma", &self.base_sigma)
            .field("layers", &self.layers)
            .field("params", &self.params.len())
            .field("config", &self.config)
            .finish()
    }
}

/// Per-chunk state of one batched call: tapes (one per layer) and scratch.
struct Work<T> {
    tapes: Vec<T>,
    scratch: Scratch,
}

/// Chunks' work buffers kept between batched calls, keyed by (rows,
/// tangent). Allocating them afresh for every chunk of every call cost
/// ~1/3 of training time in page faults (measured: 1.5·10⁵ faults/s at
/// L = 14). A buffer is fully rewritten by each pass, so reuse changes no
/// result (tested). At most one buffer per rayon thread and key is kept,
/// so the memory held is what the threads use at once anyway. A clone of a
/// flow starts with an empty pool; pools never make flows unequal.
struct WorkPool<T>(std::sync::Mutex<Vec<(usize, bool, Work<T>)>>);

impl<T> Default for WorkPool<T> {
    fn default() -> Self {
        WorkPool(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T> WorkPool<T> {
    fn take(&self, rows: usize, tangent: bool) -> Option<Work<T>> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = g.iter().position(|(r, t, _)| *r == rows && *t == tangent)?;
        Some(g.swap_remove(i).2)
    }

    fn give(&self, rows: usize, tangent: bool, w: Work<T>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.iter().filter(|(r, t, _)| (*r, *t) == (rows, tangent)).count() < rayon::current_num_threads() {
            g.push((rows, tangent, w));
        }
    }
}

/// A pooled [`Work`], returned to its pool when dropped.
struct Pooled<'a, T> {
    pool: &'a WorkPool<T>,
    key: (usize, bool),
    work: Option<Work<T>>,
}

impl<T> std::ops::Deref for Pooled<'_, T> {
    type Target = Work<T>;
    fn deref(&self) -> &Work<T> {
        self.work.as_ref().unwrap()
    }
}

impl<T> std::ops::DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut Work<T> {
        self.work.as_mut().unwrap()
    }
}

impl<T> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(w) = self.work.take() {
            self.pool.give(self.key.0, self.key.1, w);
        }
    }
}

impl Flow<FlowLayer> {
    /// Rebuilds a flow from its architecture and parameter vector (the model
    /// file's `architecture` attribute and `/params`).
    pub fn from_parts(config: FlowConfig, params: Vec<f64>) -> Result<Self, FlowError> {
        let layers = config.layers()?;
        let expected: usize = layers.iter().map(|l| l.n_params()).sum();
        if params.len() != expected {
            return Err(FlowError::ParamLength {
                expected,
                got: params.len(),
            });
        }
        let mut f = Flow::from_layers(config.base_sigma, layers, params);
        f.config = Some(Box::new(config));
        Ok(f)
    }

    /// [`Flow::from_parts`] with the architecture as JSON text.
    pub fn from_json_parts(architecture: &str, params: Vec<f64>) -> Result<Self, FlowError> {
        Self::from_parts(serde_json::from_str(architecture)?, params)
    }

    /// The same flow with every convolutional conditioner evaluated by
    /// `kernel` (comparisons and benches; the configuration's choice is
    /// `ConvKernel::auto`). MLP conditioners are left as they are.
    pub fn with_conv_kernel(mut self, kernel: ConvKernel) -> Self {
        for l in &mut self.layers {
            l.set_conv_kernel(kernel);
        }
        self.pool = WorkPool::default();
        self
    }

    /// Network flops (2 × multiply-adds) of one sample through all layers, one direction.
    pub fn flops_per_sample(&self) -> f64 {
        self.layers.iter().map(|l| l.flops_per_sample()).sum()
    }
}

impl FlowConfig {
    /// A new flow with freshly initialized parameters drawn from `seed`
    /// (uniform ±1/√fan_in; last conditioner layer zero if `identity_init`).
    pub fn build(&self, seed: Seed) -> Result<Flow, ConfigError> {
        let layers = self.layers()?;
        let n: usize = layers.iter().map(Layer::n_params).sum();
        let mut params = vec![0.0; n];
        let mut rng = seed.rng();
        let mut off = 0;
        for l in &layers {
            let np = l.n_params();
            l.init_params(&mut params[off..off + np], &mut rng, self.identity_init);
            off += np;
        }
        let mut flow = Flow::from_layers(self.base_sigma, layers, params);
        flow.config = Some(Box::new(self.clone()));
        Ok(flow)
    }
}

impl<L: Layer> Flow<L> {
    /// A flow from explicit layers and parameters.
    ///
    /// # Panics
    /// If the layers disagree on the dimension, or `params` has the wrong length.
    pub fn from_layers(base_sigma: f64, layers: Vec<L>, params: Vec<f64>) -> Self {
        assert!(!layers.is_empty(), "a flow needs at least one layer");
        let dim = layers[0].dim();
        assert!(layers.iter().all(|l| l.dim() == dim), "layer dimensions differ");
        let mut offsets = vec![0];
        for l in &layers {
            offsets.push(offsets.last().unwrap() + l.n_params());
        }
        assert_eq!(params.len(), *offsets.last().unwrap(), "wrong parameter count");
        Flow {
            dim,
            base_sigma,
            layers,
            offsets,
            params,
            config: None,
            pool: WorkPool::default(),
        }
    }

    /// The architecture, when the flow was built from one.
    pub fn config(&self) -> Option<&FlowConfig> {
        self.config.as_deref()
    }

    /// The architecture as JSON (for the model file), when known.
    pub fn architecture_json(&self) -> Option<String> {
        self.config.as_ref().map(|c| serde_json::to_string(c).unwrap())
    }

    /// Dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// σ of the base N(0, σ²I).
    pub fn base_sigma(&self) -> f64 {
        self.base_sigma
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    /// The flat parameter vector θ.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// Mutable θ (the optimizer's view).
    pub fn params_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }

    /// The layers, in the order they act on z.
    pub fn layers(&self) -> &[L] {
        &self.layers
    }

    /// Offsets of the layers' parameter slices (length = layers + 1).
    pub fn param_offsets(&self) -> &[usize] {
        &self.offsets
    }

    fn p(&self, k: usize) -> &[f64] {
        &self.params[self.offsets[k]..self.offsets[k + 1]]
    }

    /// log N(z; 0, σ²I).
    pub fn log_base(&self, z: ArrayView1<f64>) -> f64 {
        // Same operations, in the same order, as core's IsotropicGaussian, so an
        // identity flow reproduces it bit for bit.
        let sigma = self.base_sigma;
        let r2: f64 = z.iter().map(|v| v.powi(2)).sum();
        let log_norm = -0.5 * self.dim as f64 * (2.0 * std::f64::consts::PI * sigma * sigma).ln();
        -0.5 * r2 / (sigma * sigma) + log_norm
    }

    /// Work buffers for a chunk of `rows` rows (from the pool when it has some).
    fn work(&self, rows: usize, tangent: bool) -> Pooled<'_, L::Tape> {
        let work = self.pool.take(rows, tangent).unwrap_or_else(|| Work {
            tapes: self.layers.iter().map(|l| l.new_tape(rows, tangent)).collect(),
            scratch: Scratch::default(),
        });
        Pooled {
            pool: &self.pool,
            key: (rows, tangent),
            work: Some(work),
        }
    }

    /// Runs all layers in `dir` on `input`; returns the output and Σ log|det|.
    fn run(&self, dir: Direction, input: ArrayView2<f64>, w: &mut Work<L::Tape>) -> (Array2<f64>, Array1<f64>) {
        let rows = input.nrows();
        let mut cur = input.to_owned();
        let mut next = Array2::zeros(cur.raw_dim());
        let mut ld = Array1::zeros(rows);
        let n = self.layers.len();
        for i in 0..n {
            let k = if dir == Direction::Forward { i } else { n - 1 - i };
            self.layers[k].apply(
                dir,
                self.p(k),
                cur.view(),
                next.view_mut(),
                ld.view_mut(),
                &mut w.tapes[k],
                &mut w.scratch,
            );
            std::mem::swap(&mut cur, &mut next);
        }
        (cur, ld)
    }

    /// Reverse mode of the last `run(dir, …)`; returns ∂L/∂input.
    fn run_backward(
        &self,
        dir: Direction,
        gout: Array2<f64>,
        gld: ArrayView1<f64>,
        mut gp: Option<&mut [f64]>,
        w: &mut Work<L::Tape>,
    ) -> Array2<f64> {
        let mut cur = gout;
        let mut next = Array2::zeros(cur.raw_dim());
        let n = self.layers.len();
        for i in 0..n {
            let k = if dir == Direction::Forward { n - 1 - i } else { i };
            let g = gp.as_deref_mut().map(|g| &mut g[self.offsets[k]..self.offsets[k + 1]]);
            self.layers[k].backward(
                self.p(k),
                &w.tapes[k],
                cur.view(),
                gld,
                next.view_mut(),
                g,
                &mut w.scratch,
            );
            std::mem::swap(&mut cur, &mut next);
        }
        cur
    }

    /// Fills `zs` with base draws σ·N(0, 1); chunk k of `par` uses stream
    /// `seed.child(k)`, rows in order, so draws do not depend on the threads.
    pub fn sample_base_batch(&self, seed: Seed, zs: ArrayViewMut2<f64>, par: Par) {
        assert_eq!(zs.ncols(), self.dim);
        let mut dummy = Array1::zeros(zs.nrows());
        let sigma = self.base_sigma;
        par.rows_mut_to_values(zs, dummy.view_mut(), |k, _, mut z, _| {
            let mut rng = seed.child(k as u64).rng();
            for v in z.iter_mut() {
                let e: f64 = StandardNormal.sample(&mut rng);
                *v = sigma * e;
            }
        });
    }

    /// x = f(z) per row, with log q(x) = log N(z) − log|det ∂f/∂z|.
    pub fn forward_batch(&self, zs: ArrayView2<f64>, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        self.transform_batch(Direction::Forward, zs, xs, log_q, par);
    }

    /// z = f⁻¹(x) per row, with log q(x) = log N(z) + log|det ∂f⁻¹/∂x|.
    pub fn inverse_batch(&self, xs: ArrayView2<f64>, zs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        self.transform_batch(Direction::Inverse, xs, zs, log_q, par);
    }

    /// One pass in direction `dir` per row; log q from the base point
    /// (z = input forward, output inverse) and the pass's log-determinant
    /// (subtracted forward, added inverse).
    fn transform_batch(
        &self,
        dir: Direction,
        input: ArrayView2<f64>,
        mut output: ArrayViewMut2<f64>,
        mut log_q: ArrayViewMut1<f64>,
        par: Par,
    ) {
        self.check(input, output.nrows(), log_q.len());
        let parts = par.map_chunks(input.nrows(), |_, r| {
            let inp = input.slice_axis(Axis(0), Slice::from(r.clone()));
            let mut w = self.work(r.len(), false);
            let (out, ld) = self.run(dir, inp, &mut w);
            let (base, sign) = match dir {
                Direction::Forward => (inp, -1.0),
                Direction::Inverse => (out.view(), 1.0),
            };
            let lq: Array1<f64> = base
                .rows()
                .into_iter()
                .zip(ld.iter())
                .map(|(z, l)| self.log_base(z) + sign * l)
                .collect();
            (r, out, lq)
        });
        for (r, out, lq) in parts {
            output.slice_axis_mut(Axis(0), Slice::from(r.clone())).assign(&out);
            log_q.slice_axis_mut(Axis(0), Slice::from(r)).assign(&lq);
        }
    }

    /// ∇ₓ log q(x) into the rows of `scores`, log q(x) into `log_q`.
    pub fn score_batch(
        &self,
        xs: ArrayView2<f64>,
        mut scores: ArrayViewMut2<f64>,
        mut log_q: ArrayViewMut1<f64>,
        par: Par,
    ) {
        self.check(xs, scores.nrows(), log_q.len());
        let parts = par.map_chunks(xs.nrows(), |_, r| {
            let (lq, gx, _) = self.inverse_vjp_chunk(xs.slice_axis(Axis(0), Slice::from(r.clone())), None, false);
            (r, gx, lq)
        });
        for (r, g, lq) in parts {
            scores.slice_axis_mut(Axis(0), Slice::from(r.clone())).assign(&g);
            log_q.slice_axis_mut(Axis(0), Slice::from(r)).assign(&lq);
        }
    }

    /// Forward-KL gradient: `grad += Σᵢ wᵢ ∂θ log q_θ(xᵢ)`; `log_q` ← log q(xᵢ).
    /// (FKL = −mean log q: pass wᵢ = −1/N.)
    pub fn log_q_grad_batch(
        &self,
        xs: ArrayView2<f64>,
        weights: ArrayView1<f64>,
        mut log_q: ArrayViewMut1<f64>,
        grad: &mut [f64],
        par: Par,
    ) {
        self.check(xs, weights.len(), log_q.len());
        assert_eq!(grad.len(), self.n_params());
        let parts = par.map_chunks(xs.nrows(), |_, r| {
            let (lq, _, gp) = self.inverse_vjp_chunk(
                xs.slice_axis(Axis(0), Slice::from(r.clone())),
                Some(weights.slice_axis(Axis(0), Slice::from(r.clone()))),
                true,
            );
            (r, lq, gp)
        });
        for (r, lq, gp) in parts {
            log_q.slice_axis_mut(Axis(0), Slice::from(r)).assign(&lq);
            for (g, v) in grad.iter_mut().zip(&gp) {
                *g += v;
            }
        }
    }

    /// Inverse pass and its reverse mode for L = Σ wᵢ log q(xᵢ) (w = 1 if None).
    fn inverse_vjp_chunk(
        &self,
        x: ArrayView2<f64>,
        w: Option<ArrayView1<f64>>,
        want_gp: bool,
    ) -> (Array1<f64>, Array2<f64>, Vec<f64>) {
        let rows = x.nrows();
        let mut work = self.work(rows, false);
        let (z, ld) = self.run(Direction::Inverse, x, &mut work);
        let lq: Array1<f64> = z
            .rows()
            .into_iter()
            .zip(ld.iter())
            .map(|(z, l)| self.log_base(z) + l)
            .collect();
        let wv: Array1<f64> = match w {
            Some(w) => w.to_owned(),
            None => Array1::ones(rows),
        };
        let inv_s2 = 1.0 / (self.base_sigma * self.base_sigma);
        let mut gz = z;
        for (mut row, &wi) in gz.rows_mut().into_iter().zip(wv.iter()) {
            row.mapv_inplace(|v| -wi * v * inv_s2);
        }
        let mut gp = if want_gp {
            vec![0.0; self.n_params()]
        } else {
            Vec::new()
        };
        let gx = self.run_backward(
            Direction::Inverse,
            gz,
            wv.view(),
            want_gp.then_some(&mut gp[..]),
            &mut work,
        );
        (lq, gx, gp)
    }

    /// Reverse-KL style gradient through the sampling direction. For each
    /// chunk: x = f(z), log q = log N(z) − ℓ_f(z); then
    /// `cotangent(first_row, x, log_q, x̄, lq̄)` fills x̄ = ∂L/∂x and
    /// lq̄ = ∂L/∂log q (z fixed, so ∂θ log q = −∂θ ℓ_f), and
    /// `grad += ∂L/∂θ`. Outputs x and log q into `xs`, `log_q`.
    ///
    /// For RKL, L = (1/N) Σ [log q(xᵢ) − log p̃(xᵢ)]: x̄ᵢ = −∇log p̃(xᵢ)/N, lq̄ᵢ = 1/N.
    pub fn forward_vjp_batch<F>(
        &self,
        zs: ArrayView2<f64>,
        mut xs: ArrayViewMut2<f64>,
        mut log_q: ArrayViewMut1<f64>,
        grad: &mut [f64],
        par: Par,
        cotangent: F,
    ) where
        F: Fn(usize, ArrayView2<f64>, ArrayView1<f64>, ArrayViewMut2<f64>, ArrayViewMut1<f64>) + Sync + Send,
    {
        self.check(zs, xs.nrows(), log_q.len());
        assert_eq!(grad.len(), self.n_params());
        let parts = par.map_chunks(zs.nrows(), |_, r| {
            let z = zs.slice_axis(Axis(0), Slice::from(r.clone()));
            let rows = r.len();
            let mut w = self.work(rows, false);
            let (x, ld) = self.run(Direction::Forward, z, &mut w);
            let lq: Array1<f64> = z
                .rows()
                .into_iter()
                .zip(ld.iter())
                .map(|(z, l)| self.log_base(z) - l)
                .collect();
            let mut gx = Array2::zeros((rows, self.dim));
            let mut glq = Array1::zeros(rows);
            cotangent(r.start, x.view(), lq.view(), gx.view_mut(), glq.view_mut());
            let gld = glq.mapv(|v: f64| -v);
            let mut gp = vec![0.0; self.n_params()];
            self.run_backward(Direction::Forward, gx, gld.view(), Some(&mut gp), &mut w);
            (r, x, lq, gp)
        });
        for (r, x, lq, gp) in parts {
            xs.slice_axis_mut(Axis(0), Slice::from(r.clone())).assign(&x);
            log_q.slice_axis_mut(Axis(0), Slice::from(r)).assign(&lq);
            for (g, v) in grad.iter_mut().zip(&gp) {
                *g += v;
            }
        }
    }

    /// The pull-back of `target` through the sampling direction
    /// (docs/THEORY.md §6.9, [`crate::pullback`]): per row z of `zs`,
    /// x = f(z), log p̃(x) and ℓ_f(z) = log|det ∂f/∂z| into `out`, and, when
    /// `out.scores` is given, the latent score
    /// ∇_z log π̃(z) = J_fᵀ ∇ₓ log p̃(x) + ∇_z ℓ_f(z): the reverse mode of
    /// the forward pass seeded with x̄ = ∇ₓ log p̃(x) and ℓ̄_f = 1 (no
    /// parameter gradient). The target is evaluated on each chunk serially
    /// (the chunks themselves run as `par` says).
    ///
    /// # Panics
    /// If the shapes disagree with each other, with the flow's or with the
    /// target's dimension.
    pub fn pullback_batch(&self, target: &dyn Target, zs: ArrayView2<f64>, out: PullbackRows<'_>, par: Par) {
        let PullbackRows {
            mut xs,
            mut log_p,
            mut log_det,
            mut scores,
        } = out;
        self.check(zs, xs.nrows(), log_p.len());
        assert_eq!(target.dim(), self.dim, "target and flow dimensions differ");
        assert_eq!(xs.dim(), zs.dim(), "latent and output batch shapes differ");
        assert_eq!(log_det.len(), zs.nrows(), "rows and log-det length differ");
        if let Some(s) = &scores {
            assert_eq!(s.dim(), zs.dim(), "latent batch and score shapes differ");
        }
        let want_score = scores.is_some();
        let parts = par.map_chunks(zs.nrows(), |_, r| {
            let z = zs.slice_axis(Axis(0), Slice::from(r.clone()));
            let rows = r.len();
            let mut w = self.work(rows, false);
            let (x, ld) = self.run(Direction::Forward, z, &mut w);
            let mut lp = Array1::zeros(rows);
            let inner = Par::serial(rows);
            let gz = if want_score {
                let mut gx = Array2::zeros((rows, self.dim));
                target.log_prob_and_score_batch(x.view(), gx.view_mut(), lp.view_mut(), inner);
                let one = Array1::ones(rows);
                Some(self.run_backward(Direction::Forward, gx, one.view(), None, &mut w))
            } else {
                target.log_prob_batch(x.view(), lp.view_mut(), inner);
                None
            };
            (r, x, lp, ld, gz)
        });
        for (r, x, lp, ld, gz) in parts {
            let rows = Slice::from(r);
            xs.slice_axis_mut(Axis(0), rows).assign(&x);
            log_p.slice_axis_mut(Axis(0), rows).assign(&lp);
            log_det.slice_axis_mut(Axis(0), rows).assign(&ld);
            if let (Some(s), Some(g)) = (scores.as_mut(), gz) {
                s.slice_axis_mut(Axis(0), rows).assign(&g);
            }
        }
    }

    fn check(&self, xs: ArrayView2<f64>, rows_out: usize, len_out: usize) {
        assert_eq!(xs.ncols(), self.dim, "batch width differs from the flow's dimension");
        assert_eq!(xs.nrows(), rows_out, "input and output rows differ");
        assert_eq!(xs.nrows(), len_out, "rows and per-row output length differ");
    }
}

/// Second-order sweep products of one chunk.
struct SecondOrder {
    gp: Vec<f64>,
    log_q: Array1<f64>,
    score: Array2<f64>,
    hess_r: Array2<f64>,
}

impl<L: ScoreLayer> Flow<L> {
    fn second_order_chunk(&self, x: ArrayView2<f64>, r: ArrayView2<f64>) -> SecondOrder {
        let rows = x.nrows();
        let n = self.layers.len();
        let mut pooled = self.work(rows, true);
        let w = &mut *pooled;
        let mut cur = x.to_owned();
        let mut dcur = r.to_owned();
        let mut next = Array2::zeros(cur.raw_dim());
        let mut dnext = Array2::zeros(cur.raw_dim());
        let mut ld = Array1::zeros(rows);
        let mut dld = Array1::zeros(rows);
        for k in (0..n).rev() {
            self.layers[k].inverse_jvp(
                self.p(k),
                cur.view(),
                dcur.view(),
                next.view_mut(),
                dnext.view_mut(),
                ld.view_mut(),
                dld.view_mut(),
                &mut w.tapes[k],
                &mut w.scratch,
            );
            std::mem::swap(&mut cur, &mut next);
            std::mem::swap(&mut dcur, &mut dnext);
        }
        let log_q: Array1<f64> = cur
            .rows()
            .into_iter()
            .zip(ld.iter())
            .map(|(z, l)| self.log_base(z) + l)
            .collect();
        let inv_s2 = 1.0 / (self.base_sigma * self.base_sigma);
        // F = ⟨−z/σ², dz⟩ + Σ dℓ: z̄ = −dz/σ², dz̄ = −z/σ², ℓ̄ = 0, dℓ̄ = 1.
        let mut g = dcur.mapv(|v| -v * inv_s2);
        let mut dg = cur.mapv(|v| -v * inv_s2);
        let zero = Array1::zeros(rows);
        let one = Array1::ones(rows);
        let mut gp = vec![0.0; self.n_params()];
        for k in 0..n {
            self.layers[k].inverse_jvp_backward(
                self.p(k),
                &w.tapes[k],
                g.view(),
                dg.view(),
                zero.view(),
                one.view(),
                next.view_mut(),
                dnext.view_mut(),
                &mut gp[self.offsets[k]..self.offsets[k + 1]],
                &mut w.scratch,
            );
            std::mem::swap(&mut g, &mut next);
            std::mem::swap(&mut dg, &mut dnext);
        }
        SecondOrder {
            gp,
            log_q,
            score: dg,
            hess_r: g,
        }
    }

    /// The full second-order sweep: `grad += Σᵢ ∂θ⟨rᵢ, ∇ₓ log q(xᵢ)⟩`, and,
    /// as by-products, log q(xᵢ), the score ∇ₓ log q(xᵢ) and the
    /// Hessian-vector product ∇²ₓ log q(xᵢ) rᵢ.
    #[allow(clippy::too_many_arguments)] // every buffer of an allocation-free kernel is explicit
    pub fn score_second_order_batch(
        &self,
        xs: ArrayView2<f64>,
        rs: ArrayView2<f64>,
        grad: &mut [f64],
        mut log_q: ArrayViewMut1<f64>,
        mut scores: ArrayViewMut2<f64>,
        mut hess_r: ArrayViewMut2<f64>,
        par: Par,
    ) {
        self.check(xs, rs.nrows(), log_q.len());
        assert_eq!(rs.dim(), xs.dim());
        assert_eq!(scores.dim(), xs.dim());
        assert_eq!(hess_r.dim(), xs.dim());
        assert_eq!(grad.len(), self.n_params());
        let parts = par.map_chunks(xs.nrows(), |_, r| {
            (
                r.clone(),
                self.second_order_chunk(
                    xs.slice_axis(Axis(0), Slice::from(r.clone())),
                    rs.slice_axis(Axis(0), Slice::from(r)),
                ),
            )
        });
        for (r, so) in parts {
            for (g, v) in grad.iter_mut().zip(&so.gp) {
                *g += v;
            }
            log_q.slice_axis_mut(Axis(0), Slice::from(r.clone())).assign(&so.log_q);
            scores.slice_axis_mut(Axis(0), Slice::from(r.clone())).assign(&so.score);
            hess_r.slice_axis_mut(Axis(0), Slice::from(r)).assign(&so.hess_r);
        }
    }
}

impl<L: ScoreLayer> ScoreModel for Flow<L> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn n_params(&self) -> usize {
        self.params.len()
    }
    fn score_batch(&self, xs: ArrayView2<f64>, scores: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        Flow::score_batch(self, xs, scores, log_q, par)
    }
    fn score_param_vjp_batch(&self, xs: ArrayView2<f64>, rs: ArrayView2<f64>, grad: &mut [f64], par: Par) {
        self.check(xs, rs.nrows(), rs.nrows());
        assert_eq!(rs.dim(), xs.dim());
        assert_eq!(grad.len(), self.n_params());
        let parts = par.map_chunks(xs.nrows(), |_, r| {
            self.second_order_chunk(
                xs.slice_axis(Axis(0), Slice::from(r.clone())),
                rs.slice_axis(Axis(0), Slice::from(r)),
            )
            .gp
        });
        for gp in parts {
            for (g, v) in grad.iter_mut().zip(&gp) {
                *g += v;
            }
        }
    }
}

impl<L: Layer> Proposal for Flow<L> {
    fn dim(&self) -> usize {
        self.dim
    }

    /// z from [`Flow::sample_base_batch`] (chunk k ← `seed.child(k)`), x = f(z).
    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        let mut zs = Array2::zeros(xs.raw_dim());
        self.sample_base_batch(seed, zs.view_mut(), par);
        self.forward_batch(zs.view(), xs.view_mut(), log_q, par);
    }
}

impl<L: Layer> ProposalDensity for Flow<L> {
    fn log_q_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        let mut zs = Array2::zeros(xs.raw_dim());
        self.inverse_batch(xs, zs.view_mut(), out, par);
    }
}
