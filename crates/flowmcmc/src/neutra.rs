//! Neutra-MCMC: local Markov moves on the pulled-back density in latent
//! space (docs/THEORY.md §6.9; Hoffman et al., arXiv 1903.03704; compared
//! with proposal-based flow-MCMC by Grenioux et al., arXiv 2302.04763).
//!
//! # The sampler
//! A flow x = f(z) with base N(0, σ²I) turns the target p̃ (normalizer Z)
//! into the latent density π̃(z) = p̃(f(z)) |det ∂f/∂z|, whose normalizer is
//! also Z ([`fieldflow_flows::pullback`]). If a Markov kernel K leaves π̃
//! invariant, the chain z_{t+1} ~ K(z_t, ·) has stationary law π̃/Z, and its
//! image x_t = f(z_t) has law p̃/Z by the change of variables: the chain is
//! exact for any flow. A good flow makes π̃ close to N(0, σ²I), which local
//! kernels (MALA, HMC) sample with large steps; a poor flow only slows them.
//!
//! One step of a chain applies `k` updates of a local kernel to z (the
//! kernel is built by the caller **on the [`Pullback`]**, e.g.
//! `fieldflow_imh::RandomWalk`, `fieldflow_imh::Mala` or
//! `fieldflow_lattice::HmcKernel` with the pull-back as their target), then
//! maps z to x = f(z) and
//! evaluates
//!
//!   log p̃(x),   log q(x) = log N(z; 0, σ²I) − log|det ∂f/∂z|,
//!   log w = log p̃(x) − log q(x) = log π̃(z) − log N(z; 0, σ²I).
//!
//! log w is not used by the chain; it is written (with the series of every
//! sample run, [`fieldflow_imh::SAMPLE_SERIES`]) because it measures the
//! flow: for an exact flow it is the constant log Z.
//!
//! Per step the series are log p̃(x), log q(x), log w, `accepted` (whether
//! the last local update of the step was accepted) and `local_acceptance`
//! (the fraction of the k updates accepted).
//!
//! # Random streams and determinism
//! The k local updates of step t of chain c draw from
//! `seed.child(c).child(LOCAL).child(t)`; chain c starts from a base draw
//! z ~ N(0, σ²I) made by [`Flow::sample_base_batch`] with
//! `seed.child(c).child(INITIAL)` (the stream numbers of
//! `fieldflow_imh::chain`). Step t of chain c therefore sees the same
//! numbers whatever the number of threads, however the chains are split
//! over processes ([`NeutraChain::with_first_chain`]) and whether the run
//! was resumed from the chains' JSON states ([`NeutraState`]). Chains run in
//! parallel on the rayon pool, each chain sequentially.
//!
//! # Allocation
//! The chain loop reuses its buffers (the kernel's scratch, kept for the
//! whole block, so a kernel's score cache carries over from step to step;
//! the previous z);
//! mapping z to x is a one-row flow pass, which allocates the flow's tapes
//! inside the flow. A step whose updates left z unchanged (all rejected)
//! skips the flow pass: x, log p̃ and log q are unchanged.

use fieldflow_core::run::{BlockChains, ChainBlock};
use fieldflow_core::{ConfigError, LocalKernel, Par, Seed, Target};
use fieldflow_flows::{Flow, FlowLayer, Layer, Pullback};
use fieldflow_imh::blocks::{sample_series, ProposalWeights};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayViewMut2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Stream of the local updates (as in `fieldflow_imh::chain`).
const LOCAL: u64 = 2;
/// Stream of the initial base draw (as in `fieldflow_imh::chain`).
const INITIAL: u64 = 3;

/// The complete, resumable state of one neutra chain: plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeutraState {
    /// Latent point z.
    pub z: Vec<f64>,
    /// x = f(z).
    pub x: Vec<f64>,
    /// log p̃(x).
    pub log_p: f64,
    /// log q(x) = log N(z; 0, σ²I) − log|det ∂f/∂z|.
    pub log_q: f64,
    /// Steps completed so far.
    pub n_steps: u64,
}

impl NeutraState {
    /// log w = log p̃(x) − log q(x).
    pub fn log_w(&self) -> f64 {
        self.log_p - self.log_q
    }
}

/// Neutra chains: a local kernel on the pull-back of a target through a flow.
pub struct NeutraChain<'a, L: Layer = FlowLayer> {
    pullback: &'a Pullback<'a, L>,
    kernel: &'a dyn LocalKernel,
    local_steps: usize,
    seed: Seed,
    first_chain: u64,
}

/// One chain's output of a block, `[k, …]`.
struct ChainRows {
    configs: Array2<f64>,
    log_p: Vec<f64>,
    log_q: Vec<f64>,
    accepted: Vec<u8>,
    local: Vec<f64>,
}

impl<'a, L: Layer> NeutraChain<'a, L> {
    /// Chains that apply `local_steps` updates of `kernel` per step; the
    /// kernel must leave `pullback` invariant (build it on the pull-back,
    /// not on the target in x). `seed` is the run's seed.
    ///
    /// # Errors
    /// `local_steps` is 0.
    pub fn new(
        pullback: &'a Pullback<'a, L>,
        kernel: &'a dyn LocalKernel,
        local_steps: usize,
        seed: Seed,
    ) -> Result<Self, ConfigError> {
        if local_steps == 0 {
            return Err(ConfigError::new("neutra.local_steps", 0, "must be >= 1"));
        }
        Ok(NeutraChain {
            pullback,
            kernel,
            local_steps,
            seed,
            first_chain: 0,
        })
    }

    /// Makes `states[i]` chain number `first + i` of the run (its random
    /// streams are those of that chain), so a process can run any contiguous
    /// block of a run's chains (MPI ranks) with the results of the whole run.
    pub fn with_first_chain(mut self, first: u64) -> Self {
        self.first_chain = first;
        self
    }

    /// The pull-back the chains sample in latent space.
    pub fn pullback(&self) -> &'a Pullback<'a, L> {
        self.pullback
    }

    /// Dimension of z and x.
    pub fn dim(&self) -> usize {
        self.pullback.dim()
    }

    fn flow(&self) -> &'a Flow<L> {
        self.pullback.flow()
    }

    /// The state at latent point `z` after `n_steps` steps: x = f(z),
    /// log p̃(x), log q(x).
    ///
    /// # Errors
    /// `z` is not of the flow's dimension.
    pub fn state_at(&self, z: Vec<f64>, n_steps: u64) -> Result<NeutraState, ConfigError> {
        if z.len() != self.dim() {
            return Err(ConfigError::new(
                "neutra.z",
                format!("{} entries", z.len()),
                format!("must have the flow's dimension {}", self.dim()),
            ));
        }
        let mut s = NeutraState {
            x: vec![0.0; z.len()],
            z,
            log_p: 0.0,
            log_q: 0.0,
            n_steps,
        };
        self.push_forward(&mut s);
        Ok(s)
    }

    /// Initial states: chain c starts from its own base draw z ~ N(0, σ²I)
    /// (stream `seed.child(c).child(INITIAL)`).
    pub fn initial_states(&self, n_chains: usize) -> Vec<NeutraState> {
        let d = self.dim();
        (self.first_chain..self.first_chain + n_chains as u64)
            .map(|c| {
                let mut z = Array2::zeros((1, d));
                self.flow()
                    .sample_base_batch(self.seed.child(c).child(INITIAL), z.view_mut(), Par::serial(1));
                self.state_at(z.row(0).to_vec(), 0)
                    .expect("a base draw has the flow's dimension")
            })
            .collect()
    }

    /// Checks that resumed states fit the flow (`states[i]` names the chain).
    ///
    /// # Errors
    /// A state whose z or x is not of the flow's dimension.
    pub fn check_states(&self, states: &[NeutraState]) -> Result<(), ConfigError> {
        for (i, s) in states.iter().enumerate() {
            for (name, v) in [("z", &s.z), ("x", &s.x)] {
                if v.len() != self.dim() {
                    return Err(ConfigError::new(
                        format!("states[{i}].{name}"),
                        format!("{} entries", v.len()),
                        format!("must have the flow's dimension {}", self.dim()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// x = f(z), log p̃(x), log q(x) of `s` from its z.
    fn push_forward(&self, s: &mut NeutraState) {
        let r = self.pullback.push_forward(&s.z, &mut s.x);
        s.log_p = r.log_p;
        s.log_q = self.flow().log_base(ArrayView1::from(&s.z[..])) - r.log_det;
    }

    /// Advances every chain by `n` steps (chains in parallel, each chain
    /// sequentially) and returns the block: configurations x, the series of
    /// [`fieldflow_imh::SAMPLE_SERIES`], the states after the block and their
    /// JSON. `progress(1)` is called after every step of every chain.
    ///
    /// # Panics
    /// If a state is not of the flow's dimension ([`NeutraChain::check_states`]).
    pub fn advance(&self, states: &mut [NeutraState], n: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
        self.check_states(states).unwrap_or_else(|e| panic!("{e}"));
        let d = self.dim();
        let first = self.first_chain;
        let rows: Vec<ChainRows> = states
            .par_iter_mut()
            .enumerate()
            .map(|(c, state)| self.run_chain(first + c as u64, state, n, progress))
            .collect();
        let nc = states.len();
        let mut configs = Array3::zeros((nc, n, d));
        let (mut log_p, mut log_q, mut local) =
            (Array2::zeros((nc, n)), Array2::zeros((nc, n)), Array2::zeros((nc, n)));
        let mut accepted = Array2::zeros((nc, n));
        for (c, r) in rows.into_iter().enumerate() {
            configs.index_axis_mut(ndarray::Axis(0), c).assign(&r.configs);
            log_p.row_mut(c).assign(&Array1::from(r.log_p));
            log_q.row_mut(c).assign(&Array1::from(r.log_q));
            accepted.row_mut(c).assign(&Array1::from(r.accepted));
            local.row_mut(c).assign(&Array1::from(r.local));
        }
        ChainBlock {
            configs,
            series: sample_series(log_p, log_q, accepted, local, ProposalWeights::None),
            state: Array2::from_shape_fn((nc, d), |(i, j)| states[i].x[j]),
            chain_json: states
                .iter()
                .map(|s| serde_json::to_string(s).expect("a neutra state serializes"))
                .collect(),
        }
    }

    /// `n` steps of chain number `chain`.
    fn run_chain(&self, chain: u64, state: &mut NeutraState, n: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainRows {
        let d = self.dim();
        let mut out = ChainRows {
            configs: Array2::zeros((n, d)),
            log_p: Vec::with_capacity(n),
            log_q: Vec::with_capacity(n),
            accepted: Vec::with_capacity(n),
            local: Vec::with_capacity(n),
        };
        let mut scratch = Vec::new();
        let mut z_before = vec![0.0; d];
        let mut configs: ArrayViewMut2<f64> = out.configs.view_mut();
        for i in 0..n {
            let t = state.n_steps;
            let mut rng = self.seed.child(chain).child(LOCAL).child(t).rng();
            z_before.copy_from_slice(&state.z);
            let (mut n_acc, mut last) = (0usize, false);
            for _ in 0..self.local_steps {
                last = self.kernel.update(&mut state.z, &mut scratch, &mut rng).accepted;
                n_acc += usize::from(last);
            }
            if state.z != z_before {
                self.push_forward(state);
            }
            state.n_steps += 1;
            configs.row_mut(i).assign(&ArrayView1::from(&state.x[..]));
            out.log_p.push(state.log_p);
            out.log_q.push(state.log_q);
            out.accepted.push(u8::from(last));
            out.local.push(n_acc as f64 / self.local_steps as f64);
            progress(1);
        }
        out
    }
}

/// Neutra chains `first..first + states.len()` of a run, as the
/// [`BlockChains`] of a block run.
pub struct NeutraBlocks<'a, L: Layer = FlowLayer> {
    chain: NeutraChain<'a, L>,
    states: Vec<NeutraState>,
}

impl<'a, L: Layer> NeutraBlocks<'a, L> {
    /// The chains of `chain` (whose first chain number is set by
    /// [`NeutraChain::with_first_chain`]) in the given states (fresh:
    /// [`NeutraChain::initial_states`]; resumed: the checkpoint's JSON,
    /// one [`NeutraState`] per chain).
    ///
    /// # Errors
    /// A state is not of the flow's dimension.
    pub fn new(chain: NeutraChain<'a, L>, states: Vec<NeutraState>) -> Result<Self, ConfigError> {
        chain.check_states(&states)?;
        Ok(NeutraBlocks { chain, states })
    }

    /// The chains' current states.
    pub fn states(&self) -> &[NeutraState] {
        &self.states
    }
}

impl<L: Layer> BlockChains for NeutraBlocks<'_, L> {
    fn advance_block(&mut self, _b: u64, k: usize, progress: &(dyn Fn(u64) + Sync)) -> ChainBlock {
        self.chain.advance(&mut self.states, k, progress)
    }
}
