//! The stochastic normalizing flow: base N(0, σ²I), then a sequence of
//! stages, each a block of consecutive flow layers or a stochastic block
//! (docs/THEORY.md §6.4; arXiv 2002.06707).
//!
//! # Path weights
//! A forward path z = y₀ → y₁ → … → y_T = x (z ~ N(0, σ²I), each stage one
//! transition) carries
//!
//!   log w = log p̃(x) − log N(z; 0, σ²I) + Σ_stages ΔS,
//!
//! with ΔS = log|det ∂f/∂y| for flow layers and the block terms of
//! [`crate::blocks`]. In the notation of Wu–Köhler–Noé this is
//! log w = Σ ΔS − u_target(x) + u_base(z) with u_target = −log p̃ and the
//! *normalized* base energy u_base = −log N(z), so E\[w\] = Z = ∫ p̃ exactly;
//! with the unnormalized u_base = ‖z‖²/(2σ²) the identity reads
//! E\[w\] = Z_target / Z_base, Z_base = (2πσ²)^{D/2}.
//!
//! An SNF has **no tractable marginal log q(x)**. w is the importance weight
//! of the whole path on the extended space (z, y₁, …, x) against the target
//! path measure p(x) Π q̃ (backward kernels), whose x-marginal is p. Hence
//! importance sampling (self-normalized means, log Ẑ = LSE(log w) − ln N,
//! ESS) and independent Metropolis–Hastings are exact when log w is used in
//! place of log p̃(x) − log q(x): fresh paths are independent proposals on
//! the extended space. [`PathProposal`] makes this plug-in: it reports the
//! "effective" log q = log p̃(x) − log w, so a consumer computing
//! log p̃ − log q recovers log w. What is *not* valid is anything that needs
//! log q at a point not produced by a fresh path (hybrid local-MCMC + IMH,
//! held-out NLL): [`PathProposal`] is a `Proposal` but not a
//! `ProposalDensity`, so such consumers do not compile with it.
//!
//! # Reverse paths
//! Given x (e.g. data), the backward kernels generate x = y_T → … → y₀ = z:
//! inverse flow layers, Langevin steps run from the later point with fresh
//! noise, Metropolis kernels run from the later point (detailed balance makes
//! K its own backward kernel). The path NLL −log N(z) + Σ ΔS (ΔS of the
//! forward-time transitions, evaluated on the reverse path) is an upper bound
//! of −log q(x) in expectation over the reverse path (path KL ≥ marginal KL),
//! equal to −log q(x) when all stages are deterministic.
//!
//! # Determinism
//! Chunk k of a batch (core's [`Par`]) uses the single stream
//! `seed.child(k)`: base draws of its rows first, then the noise of every
//! stage, step and row in order. The count of random numbers per row and
//! step is fixed, independent of θ and of accept decisions, so (i) results
//! are bit-identical for any number of threads and (ii) a path recomputed at
//! other parameters sees the same noise (finite-difference checks).

use crate::blocks::{self, BlockTape, StochasticBlock};
use crate::energy::Energy;
use crate::SnfConfig;
use fieldflow_core::{Par, Proposal, Rng, Seed, Target};
use fieldflow_flows::{Direction, FlowLayer, Layer, Scratch};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Slice};
use rand_distr::{Distribution, StandardNormal};
use std::ops::Range;

/// One stage of an SNF.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// The flow layers with these indices (consecutive, in order).
    Flow(Range<usize>),
    /// A stochastic block.
    Stochastic(StochasticBlock),
}

/// Which way a path is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathDir {
    /// z → x: stages in order, layers forward, blocks forward in time.
    Forward,
    /// x → z: stages reversed, layers inverted, backward kernels.
    Reverse,
}

/// A stochastic normalizing flow on target `T` with flow layers `L`.
#[derive(Debug, Clone)]
pub struct Snf<T, L: Layer = FlowLayer> {
    target: T,
    dim: usize,
    base_sigma: f64,
    layers: Vec<L>,
    offsets: Vec<usize>,
    params: Vec<f64>,
    stages: Vec<Stage>,
    pub(crate) config: Option<SnfConfig>,
}

/// Forward paths of a batch.
#[derive(Debug, Clone)]
pub struct PathBatch {
    /// End points x (one per row).
    pub xs: Array2<f64>,
    /// Start points z ~ N(0, σ²I).
    pub zs: Array2<f64>,
    /// Path log-weights log w = log p̃(x) − log N(z) + Σ ΔS.
    pub log_w: Array1<f64>,
    /// log N(z) − Σ ΔS, the "effective log q" (log p̃(x) − log w).
    pub log_q_eff: Array1<f64>,
    /// Acceptance rate of every stochastic block, in stage order
    /// (1 for plain Langevin).
    pub acceptance: Vec<f64>,
}

/// Reverse paths started from given points.
#[derive(Debug, Clone)]
pub struct ReversePathBatch {
    /// End points z of the reverse paths.
    pub zs: Array2<f64>,
    /// Path NLL −log N(z) + Σ ΔS per row.
    pub path_nll: Array1<f64>,
    /// Acceptance rate of every stochastic block, in stage order.
    pub acceptance: Vec<f64>,
}

/// Everything one chunk records for the reverse mode.
pub(crate) struct ChunkTape<Tp> {
    flow: Vec<Tp>,
    blocks: Vec<BlockTape>,
    scratch: Scratch,
}

/// Output of one chunk's path computation.
pub(crate) struct ChunkRun {
    /// Computation end points (x forward, z reverse).
    pub end: Array2<f64>,
    /// Σ C in computation order (Σ ΔS forward, −Σ ΔS reverse).
    pub c: Array1<f64>,
    /// Accepted steps per stochastic block.
    pub accepted: Vec<usize>,
}

impl<T: Target, L: Layer> Snf<T, L> {
    /// An SNF from explicit parts.
    ///
    /// # Panics
    /// If the layers' dimensions differ from the target's, `params` has the
    /// wrong length, the `Stage::Flow` ranges do not cover `0..layers.len()`
    /// consecutively in order, a block has zero steps, a non-positive step
    /// size or width, or λ outside [0, 1], or σ ≤ 0.
    pub fn new(target: T, base_sigma: f64, layers: Vec<L>, params: Vec<f64>, stages: Vec<Stage>) -> Self {
        let dim = target.dim();
        assert!(base_sigma.is_finite() && base_sigma > 0.0, "base σ must be > 0");
        assert!(
            layers.iter().all(|l| l.dim() == dim),
            "layer and target dimensions differ"
        );
        let mut offsets = vec![0];
        for l in &layers {
            offsets.push(offsets.last().unwrap() + l.n_params());
        }
        assert_eq!(params.len(), *offsets.last().unwrap(), "wrong parameter count");
        let mut next = 0;
        for s in &stages {
            match s {
                Stage::Flow(r) => {
                    assert!(
                        r.start == next && r.end > r.start,
                        "flow stages must cover the layers in order"
                    );
                    next = r.end;
                }
                Stage::Stochastic(b) => {
                    assert!(b.steps() >= 1, "a block needs ≥ 1 step");
                    assert!((0.0..=1.0).contains(&b.lambda()), "λ must lie in [0, 1]");
                    match b {
                        StochasticBlock::Langevin(l) => assert!(l.eps.is_finite() && l.eps > 0.0),
                        StochasticBlock::Metropolis(m) => assert!(m.width.is_finite() && m.width > 0.0),
                    }
                }
            }
        }
        assert_eq!(next, layers.len(), "flow stages must cover every layer");
        Snf {
            target,
            dim,
            base_sigma,
            layers,
            offsets,
            params,
            stages,
            config: None,
        }
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.target
    }
    /// Dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// σ of the base N(0, σ²I).
    pub fn base_sigma(&self) -> f64 {
        self.base_sigma
    }
    /// The stages, in time order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }
    /// The flow layers, in time order.
    pub fn layers(&self) -> &[L] {
        &self.layers
    }
    /// Number of parameters θ (all flow layers).
    pub fn n_params(&self) -> usize {
        self.params.len()
    }
    /// The flat parameter vector θ (layer k owns `offsets[k]..offsets[k+1]`).
    pub fn params(&self) -> &[f64] {
        &self.params
    }
    /// Mutable θ (the optimizer's view).
    pub fn params_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }
    /// Offsets of the layers' parameter slices (length = layers + 1).
    pub fn param_offsets(&self) -> &[usize] {
        &self.offsets
    }
    /// The configuration the SNF was built from, when known.
    pub fn config(&self) -> Option<&SnfConfig> {
        self.config.as_ref()
    }

    /// Replaces the stochastic block of stage `index` (e.g. to tune ε).
    ///
    /// # Panics
    /// If stage `index` is not stochastic.
    pub fn set_block(&mut self, index: usize, block: StochasticBlock) {
        match &mut self.stages[index] {
            Stage::Stochastic(b) => *b = block,
            Stage::Flow(_) => panic!("stage {index} is a flow stage"),
        }
    }

    fn p(&self, k: usize) -> &[f64] {
        &self.params[self.offsets[k]..self.offsets[k + 1]]
    }

    pub(crate) fn energy(&self, lambda: f64) -> Energy<'_, T> {
        Energy {
            target: &self.target,
            lambda,
            inv_s2: 1.0 / (self.base_sigma * self.base_sigma),
        }
    }

    /// log N(z; 0, σ²I).
    pub fn log_base(&self, z: ndarray::ArrayView1<f64>) -> f64 {
        let s2 = self.base_sigma * self.base_sigma;
        let r2: f64 = z.iter().map(|v| v * v).sum();
        -0.5 * r2 / s2 - 0.5 * self.dim as f64 * (2.0 * std::f64::consts::PI * s2).ln()
    }

    fn n_blocks(&self) -> usize {
        self.stages.iter().filter(|s| matches!(s, Stage::Stochastic(_))).count()
    }

    pub(crate) fn new_tape(&self, rows: usize) -> ChunkTape<L::Tape> {
        ChunkTape {
            flow: self.layers.iter().map(|l| l.new_tape(rows, false)).collect(),
            blocks: self.stages.iter().map(|_| Vec::new()).collect(),
            scratch: Scratch::default(),
        }
    }

    /// Runs the stages of one chunk from `start` in direction `dir`, noise
    /// from `rng`, recording on `tape` when given (a tape is needed anyway by
    /// the flow layers; one is made if none is given).
    pub(crate) fn run_chunk(
        &self,
        dir: PathDir,
        start: ArrayView2<f64>,
        rng: &mut Rng,
        tape: Option<&mut ChunkTape<L::Tape>>,
    ) -> ChunkRun {
        let rows = start.nrows();
        let mut own;
        let record = tape.is_some();
        let tape = match tape {
            Some(t) => t,
            None => {
                own = self.new_tape(rows);
                &mut own
            }
        };
        let mut cur = start.to_owned();
        let mut next = Array2::zeros(cur.raw_dim());
        let mut c = Array1::zeros(rows);
        let n_stages = self.stages.len();
        let mut accepted = vec![0; self.n_blocks()];
        let mut block_index: Vec<usize> = Vec::with_capacity(n_stages);
        let mut j = 0;
        for s in &self.stages {
            block_index.push(j);
            if matches!(s, Stage::Stochastic(_)) {
                j += 1;
            }
        }
        for i in 0..n_stages {
            let si = if dir == PathDir::Forward { i } else { n_stages - 1 - i };
            match &self.stages[si] {
                Stage::Flow(range) => {
                    let ks: Vec<usize> = match dir {
                        PathDir::Forward => range.clone().collect(),
                        PathDir::Reverse => range.clone().rev().collect(),
                    };
                    let ldir = match dir {
                        PathDir::Forward => Direction::Forward,
                        PathDir::Reverse => Direction::Inverse,
                    };
                    for k in ks {
                        self.layers[k].apply(
                            ldir,
                            self.p(k),
                            cur.view(),
                            next.view_mut(),
                            c.view_mut(),
                            &mut tape.flow[k],
                            &mut tape.scratch,
                        );
                        std::mem::swap(&mut cur, &mut next);
                    }
                }
                Stage::Stochastic(b) => {
                    let e = self.energy(b.lambda());
                    let bt = record.then_some(&mut tape.blocks[si]);
                    accepted[block_index[si]] += blocks::run_rows(b, &e, &mut cur, &mut c, rng, bt);
                }
            }
        }
        ChunkRun { end: cur, c, accepted }
    }

    fn acceptance(&self, accepted: &[usize], rows: usize) -> Vec<f64> {
        self.stages
            .iter()
            .filter_map(|s| match s {
                Stage::Stochastic(b) => Some(b.steps()),
                Stage::Flow(_) => None,
            })
            .zip(accepted)
            .map(|(steps, &a)| a as f64 / (steps * rows).max(1) as f64)
            .collect()
    }

    /// Base draws for a chunk: σ·N(0, 1), rows in order.
    pub(crate) fn draw_base(&self, rng: &mut Rng, rows: usize) -> Array2<f64> {
        let s = self.base_sigma;
        Array2::from_shape_simple_fn((rows, self.dim), || {
            let e: f64 = StandardNormal.sample(rng);
            s * e
        })
    }

    /// n forward paths: z ~ N(0, σ²I) through every stage, with path weights
    /// (see the module docs). Chunk k uses `seed.child(k)`.
    pub fn sample_paths(&self, seed: Seed, n: usize, par: Par) -> PathBatch {
        let parts = par.map_chunks(n, |k, r| {
            let mut rng = seed.child(k as u64).rng();
            let z = self.draw_base(&mut rng, r.len());
            let run = self.run_chunk(PathDir::Forward, z.view(), &mut rng, None);
            (r, z, run)
        });
        let mut out = PathBatch {
            xs: Array2::zeros((n, self.dim)),
            zs: Array2::zeros((n, self.dim)),
            log_w: Array1::zeros(n),
            log_q_eff: Array1::zeros(n),
            acceptance: Vec::new(),
        };
        let mut accepted = vec![0; self.n_blocks()];
        for (r, z, run) in parts {
            for (i, row) in r.clone().enumerate() {
                let x = run.end.row(i);
                let log_q_eff = self.log_base(z.row(i)) - run.c[i];
                let log_w = self.target.log_prob(x) - log_q_eff;
                out.log_w[row] = if log_w.is_nan() { f64::NEG_INFINITY } else { log_w };
                out.log_q_eff[row] = log_q_eff;
            }
            out.xs.slice_axis_mut(Axis(0), Slice::from(r.clone())).assign(&run.end);
            out.zs.slice_axis_mut(Axis(0), Slice::from(r)).assign(&z);
            for (a, b) in accepted.iter_mut().zip(&run.accepted) {
                *a += b;
            }
        }
        out.acceptance = self.acceptance(&accepted, n);
        out
    }

    /// Fills the rows of `xs` with SNF samples and `log_w` with their path
    /// log-weights (a NaN weight, from a diverged path, is reported as −∞).
    /// Deterministic for any thread count: chunk k uses `seed.child(k)`.
    ///
    /// # Panics
    /// If the shapes disagree with `dim()` or with each other.
    pub fn draw_batch_with_log_w(
        &self,
        seed: Seed,
        mut xs: ArrayViewMut2<f64>,
        mut log_w: ArrayViewMut1<f64>,
        par: Par,
    ) {
        assert_eq!(xs.ncols(), self.dim, "batch width differs from the SNF's dimension");
        assert_eq!(xs.nrows(), log_w.len(), "rows and log_w length differ");
        let b = self.sample_paths(seed, xs.nrows(), par);
        xs.assign(&b.xs);
        log_w.assign(&b.log_w);
    }

    /// Reverse paths from the rows of `xs` (backward kernels, see the module
    /// docs); chunk k uses `seed.child(k)`.
    ///
    /// # Panics
    /// If the width of `xs` differs from `dim()`.
    pub fn reverse_paths(&self, seed: Seed, xs: ArrayView2<f64>, par: Par) -> ReversePathBatch {
        assert_eq!(xs.ncols(), self.dim, "batch width differs from the SNF's dimension");
        let n = xs.nrows();
        let parts = par.map_chunks(n, |k, r| {
            let mut rng = seed.child(k as u64).rng();
            let run = self.run_chunk(
                PathDir::Reverse,
                xs.slice_axis(Axis(0), Slice::from(r.clone())),
                &mut rng,
                None,
            );
            (r, run)
        });
        let mut zs = Array2::zeros((n, self.dim));
        let mut nll = Array1::zeros(n);
        let mut accepted = vec![0; self.n_blocks()];
        for (r, run) in parts {
            for (i, row) in r.clone().enumerate() {
                nll[row] = -self.log_base(run.end.row(i)) - run.c[i];
            }
            zs.slice_axis_mut(Axis(0), Slice::from(r)).assign(&run.end);
            for (a, b) in accepted.iter_mut().zip(&run.accepted) {
                *a += b;
            }
        }
        ReversePathBatch {
            zs,
            path_nll: nll,
            acceptance: self.acceptance(&accepted, n),
        }
    }
}

/// Reverse mode of a chunk's path computation (needs Hessian-vector products
/// for Langevin and MALA blocks).
impl<T: crate::HessianVector, L: Layer> Snf<T, L> {
    /// Given ∂L/∂(end point) in `g` and ∂L/∂C per row (`c_bar`), returns
    /// ∂L/∂(start point) and adds ∂L/∂θ to `gp`.
    pub(crate) fn vjp_chunk(
        &self,
        dir: PathDir,
        tape: &mut ChunkTape<L::Tape>,
        g_end: Array2<f64>,
        c_bar: &Array1<f64>,
        gp: &mut [f64],
    ) -> Array2<f64> {
        let mut g = g_end;
        let mut next = Array2::zeros(g.raw_dim());
        let n_stages = self.stages.len();
        let mut w = blocks::RowWork::new(self.dim);
        // Reverse of the computation order.
        for i in 0..n_stages {
            let si = if dir == PathDir::Forward { n_stages - 1 - i } else { i };
            match &self.stages[si] {
                Stage::Flow(range) => {
                    let ks: Vec<usize> = match dir {
                        PathDir::Forward => range.clone().rev().collect(),
                        PathDir::Reverse => range.clone().collect(),
                    };
                    for k in ks {
                        self.layers[k].backward(
                            self.p(k),
                            &tape.flow[k],
                            g.view(),
                            c_bar.view(),
                            next.view_mut(),
                            Some(&mut gp[self.offsets[k]..self.offsets[k + 1]]),
                            &mut tape.scratch,
                        );
                        std::mem::swap(&mut g, &mut next);
                    }
                }
                Stage::Stochastic(b) => {
                    let e = self.energy(b.lambda());
                    for (r, row) in g.rows_mut().into_iter().enumerate() {
                        blocks::vjp_row(b, &e, &tape.blocks[si][r], row, c_bar[r], &mut w);
                    }
                }
            }
        }
        g
    }
}

/// An SNF seen as a [`Proposal`] whose `log_q` is the effective
/// log q = log N(z) − Σ ΔS = log p̃(x) − log w (see the module docs): IMH and
/// importance sampling that compute log p̃ − log q then use the exact path
/// weight.
///
/// It is deliberately not a [`fieldflow_core::ProposalDensity`]: an SNF has
/// no tractable q(x) at a point it did not produce, so code that needs one
/// (the hybrid sampler, held-out NLL) does not compile with it:
///
/// ```compile_fail
/// fn needs_density(_: &dyn fieldflow_core::ProposalDensity) {}
/// fn refuse<T: fieldflow_core::Target>(snf: &fieldflow_snf::Snf<T>) {
///     needs_density(&fieldflow_snf::PathProposal(snf));
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PathProposal<'a, T, L: Layer = FlowLayer>(pub &'a Snf<T, L>);

impl<T: Target, L: Layer> Proposal for PathProposal<'_, T, L> {
    fn dim(&self) -> usize {
        self.0.dim
    }

    /// Forward paths from `seed` (chunk k ← `seed.child(k)`); `log_q` gets
    /// the effective log q of each path.
    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, mut log_q: ArrayViewMut1<f64>, par: Par) {
        let b = self.0.sample_paths(seed, xs.nrows(), par);
        xs.assign(&b.xs);
        log_q.assign(&b.log_q_eff);
    }
}
