//! Chains with a global move from an independent proposal q (docs/THEORY.md
//! §6.1, §6.2, §6.7), optionally alternated with local moves (global–local).
//!
//! With importance weight w(x) = p̃(x)/q(x), the global move of a step is
//! ([`GlobalMove`]):
//!
//! * **IMH**: a proposal x′ ~ q (independent of the current state x) is
//!   accepted with probability
//!
//!   ```text
//!   a(x → x′) = min(1, w(x′)/w(x)),   i.e.   accept  ⇔  ln u < ln w(x′) − ln w(x),  u ~ U(0,1).
//!   ```
//!
//!   Detailed balance p(x) q(x′) a(x → x′) = p(x′) q(x) a(x′ → x) holds for any q.
//! * **i-SIR** with K proposals: x₁ … x_K ~ q, and the new state is x_J with
//!   P(J = j) = wⱼ / Σ_{k=0}^{K} w_k, x₀ = x ([`crate::isir`]); the step counts
//!   as accepted when J ≠ 0.
//!
//! Both leave p invariant for any q (as long as q > 0 where p > 0), so the
//! chain samples p exactly; q only sets the efficiency. With a
//! [`LocalKernel`] and `local_steps = k > 0` every step first applies k local
//! updates (each leaving p invariant), re-evaluates ln q at the moved state and
//! then makes the global move: the composition still leaves p invariant.
//!
//! **Random streams.** With K proposals per step (K = 1 for IMH), chain c
//! draws the proposals of steps `b·B .. (b+1)·B` (B = `batch`) as one batch of
//! B·K rows from `seed.child(c).child(PROPOSALS).child(b)` (step t uses rows
//! `(t mod B)·K .. (t mod B + 1)·K`) and one uniform per step (the IMH
//! decision or the i-SIR draw) from `seed.child(c).child(DECISIONS).child(b)`;
//! local updates of step t use `seed.child(c).child(LOCAL).child(t)`. Step t
//! always sees the same numbers, so a chain is identical for any thread count
//! and a run split into pieces (resume) equals an uninterrupted one.

use crate::hybrid::LocalKernel;
use crate::isir::isir_select;
use fieldflow_core::{ConfigError, Par, Proposal, ProposalDensity, Seed, Target};
use ndarray::{Array1, Array2, Array3, ArrayViewMut2, ArrayViewMut3, Axis};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

const PROPOSALS: u64 = 0;
const DECISIONS: u64 = 1;
const LOCAL: u64 = 2;
const INITIAL: u64 = 3;

/// The global move of a step: how the proposals of q are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GlobalMove {
    /// Independent Metropolis–Hastings: one proposal, accepted with
    /// min(1, w(x′)/w(x)) (docs/THEORY.md §6.1).
    #[default]
    Imh,
    /// i-SIR: `proposals` = K ≥ 1 proposals, the new state drawn among them
    /// and the current state with probability ∝ w (docs/THEORY.md §6.7).
    Isir {
        /// Proposals per step, K ≥ 1.
        proposals: usize,
    },
}

impl GlobalMove {
    /// Proposals drawn per step (1 for IMH).
    pub fn proposals_per_step(&self) -> usize {
        match *self {
            GlobalMove::Imh => 1,
            GlobalMove::Isir { proposals } => proposals,
        }
    }
}

/// Settings of an IMH, i-SIR or global–local run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImhConfig {
    /// Steps whose proposals are drawn (and evaluated in parallel) as one
    /// batch; a batch holds `batch` × K proposals.
    pub batch: usize,
    /// Local updates before each global move (0 = global moves only).
    pub local_steps: usize,
    /// Chunking of the batched proposal and target evaluations.
    pub par: Par,
    /// The global move (default IMH).
    #[serde(default)]
    pub global: GlobalMove,
}

impl Default for ImhConfig {
    fn default() -> Self {
        ImhConfig {
            batch: 256,
            local_steps: 0,
            par: Par::default(),
            global: GlobalMove::Imh,
        }
    }
}

impl ImhConfig {
    /// Checks the settings: `batch` ≥ 1 and, for i-SIR, `proposals` ≥ 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.batch == 0 {
            return Err(ConfigError::new("batch", 0, "must be >= 1"));
        }
        if let GlobalMove::Isir { proposals: 0 } = self.global {
            return Err(ConfigError::new("global.proposals", 0, "must be >= 1"));
        }
        Ok(())
    }
}

/// The complete, resumable state of one chain: plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImhState {
    /// Current configuration.
    pub x: Vec<f64>,
    /// ln p̃(x).
    pub log_p: f64,
    /// ln q(x).
    pub log_q: f64,
    /// Steps completed so far.
    pub n_steps: u64,
}

impl ImhState {
    /// ln w(x) = ln p̃(x) − ln q(x).
    pub fn log_w(&self) -> f64 {
        self.log_p - self.log_q
    }
}

/// Per-step output buffers, `[chains, steps, …]`.
pub struct ImhBuffers<'a> {
    /// Configurations after each step, `[chains, steps, dim]`.
    pub configs: ArrayViewMut3<'a, f64>,
    /// 1 if the global move of the step changed the state (IMH: the proposal
    /// was accepted; i-SIR: a proposal was selected).
    pub accepted: ArrayViewMut2<'a, u8>,
    /// ln p̃ of the state after each step.
    pub log_p: ArrayViewMut2<'a, f64>,
    /// ln q of the state after each step.
    pub log_q: ArrayViewMut2<'a, f64>,
    /// Fraction of accepted local updates in the step (NaN without local steps).
    pub local_acceptance: ArrayViewMut2<'a, f64>,
    /// ln w of the step's (first) proposal, accepted or not: an i.i.d. draw
    /// of the proposal's weights, whose tail decides whether the chain's
    /// error bars can be trusted (Pareto k̂, docs/THEORY.md §7.10).
    pub proposal_log_w: ArrayViewMut2<'a, f64>,
}

/// The owned per-step output of [`ImhChain::run`], `[chains, steps, …]`
/// (the arrays of [`ImhBuffers`]).
pub struct ImhRun {
    /// Configurations after each step, `[chains, steps, dim]`.
    pub configs: Array3<f64>,
    /// 1 if the global move of the step changed the state.
    pub accepted: Array2<u8>,
    /// ln p̃ of the state after each step.
    pub log_p: Array2<f64>,
    /// ln q of the state after each step.
    pub log_q: Array2<f64>,
    /// Fraction of accepted local updates in the step (NaN without local steps).
    pub local_acceptance: Array2<f64>,
    /// ln w of the step's (first) proposal, accepted or not.
    pub proposal_log_w: Array2<f64>,
}

/// IMH chains of a target with a proposal.
pub struct ImhChain<'a> {
    target: &'a dyn Target,
    proposal: &'a dyn Proposal,
    local: Option<(&'a dyn LocalKernel, &'a dyn ProposalDensity)>,
    seed: Seed,
    config: ImhConfig,
    first_chain: u64,
}

/// A block of proposals with their log-densities.
struct ProposalBlock {
    xs: Array2<f64>,
    log_q: Array1<f64>,
    log_p: Array1<f64>,
    uniforms: Vec<f64>,
}

impl<'a> ImhChain<'a> {
    /// IMH chains for `target` with `proposal`; `seed` is the run's seed.
    ///
    /// # Panics
    /// If the dimensions of target and proposal differ, or `config` is
    /// invalid ([`ImhConfig::validate`], which callers with user input check first).
    pub fn new(target: &'a dyn Target, proposal: &'a dyn Proposal, seed: Seed, config: ImhConfig) -> Self {
        assert_eq!(target.dim(), proposal.dim(), "target and proposal dimensions differ");
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        ImhChain {
            target,
            proposal,
            local: None,
            seed,
            config,
            first_chain: 0,
        }
    }

    /// Dimension of the chains' states.
    pub fn dim(&self) -> usize {
        self.target.dim()
    }

    /// Adds `local_steps` updates of `kernel` before each IMH proposal
    /// (hybrid sampler). A moved state needs log q at its new position, so
    /// the proposal must have a density: `density` is the same proposal seen
    /// as a [`ProposalDensity`] (a stochastic normalizing flow, which has
    /// none, cannot be used here).
    pub fn with_local(
        mut self,
        kernel: &'a dyn LocalKernel,
        local_steps: usize,
        density: &'a dyn ProposalDensity,
    ) -> Self {
        self.local = Some((kernel, density));
        self.config.local_steps = local_steps;
        self
    }

    /// Makes `states[i]` chain number `first + i` of the run (its random
    /// streams are those of that chain), so a process can run any contiguous
    /// block of a run's chains (MPI ranks) with the results of the whole run.
    pub fn with_first_chain(mut self, first: u64) -> Self {
        self.first_chain = first;
        self
    }

    /// Initial states: chain c starts from its own draw of q (accepted).
    pub fn initial_states(&self, n_chains: usize) -> Vec<ImhState> {
        (self.first_chain..self.first_chain + n_chains as u64)
            .map(|c| {
                let mut x = Array2::zeros((1, self.target.dim()));
                let mut log_q = Array1::zeros(1);
                let par = Par::serial(1);
                self.proposal
                    .draw_batch(self.seed.child(c).child(INITIAL), x.view_mut(), log_q.view_mut(), par);
                let log_p = self.target.log_prob(x.row(0));
                ImhState {
                    x: x.row(0).to_vec(),
                    log_p,
                    log_q: log_q[0],
                    n_steps: 0,
                }
            })
            .collect()
    }

    /// The proposals (`batch` × K rows) and uniforms (`batch`) of block `block`.
    fn draw_block(&self, chain: u64, block: u64) -> ProposalBlock {
        let (b, d) = (self.config.batch, self.target.dim());
        let rows = b * self.config.global.proposals_per_step();
        let mut xs = Array2::zeros((rows, d));
        let mut log_q = Array1::zeros(rows);
        let mut log_p = Array1::zeros(rows);
        let chain_seed = self.seed.child(chain);
        let par = self.config.par;
        self.proposal.draw_batch(
            chain_seed.child(PROPOSALS).child(block),
            xs.view_mut(),
            log_q.view_mut(),
            par,
        );
        self.target.log_prob_batch(xs.view(), log_p.view_mut(), par);
        let mut rng = chain_seed.child(DECISIONS).child(block).rng();
        let uniforms = (0..b).map(|_| rng.random::<f64>()).collect();
        ProposalBlock {
            xs,
            log_q,
            log_p,
            uniforms,
        }
    }

    /// Advances every chain by `n` steps, writing step i of chain c to index
    /// `[c, i]` of the buffers; `progress(k)` is called with the steps just done.
    ///
    /// # Panics
    /// If buffer shapes disagree with `[states.len(), n, dim]`.
    pub fn advance(&self, states: &mut [ImhState], n: usize, mut out: ImhBuffers<'_>, progress: &(dyn Fn(u64) + Sync)) {
        let d = self.target.dim();
        assert_eq!(
            out.configs.dim(),
            (states.len(), n, d),
            "configs buffer has the wrong shape"
        );
        let big_b = self.config.batch as u64;
        let n_prop = self.config.global.proposals_per_step();
        // ln w of the current state and the K proposals of an i-SIR step.
        let mut log_w = vec![0.0; n_prop + 1];
        for (c, state) in states.iter_mut().enumerate() {
            let chain = self.first_chain + c as u64;
            let mut block: Option<(u64, ProposalBlock)> = None;
            let mut configs = out.configs.index_axis_mut(Axis(0), c);
            let mut scratch = Vec::new();
            for i in 0..n {
                let t = state.n_steps;
                let local_acc = self.local_updates(chain, t, state, &mut scratch);
                let (b, r) = (t / big_b, (t % big_b) as usize);
                if block.as_ref().map(|(k, _)| *k) != Some(b) {
                    block = Some((b, self.draw_block(chain, b)));
                }
                let blk = &block.as_ref().expect("block drawn above").1;
                let selected = match self.config.global {
                    GlobalMove::Imh => {
                        let log_w_new = blk.log_p[r] - blk.log_q[r];
                        accept(state.log_w(), log_w_new, blk.uniforms[r]).then_some(r)
                    }
                    GlobalMove::Isir { .. } => {
                        log_w[0] = state.log_w();
                        for (j, lw) in log_w[1..].iter_mut().enumerate() {
                            *lw = blk.log_p[r * n_prop + j] - blk.log_q[r * n_prop + j];
                        }
                        match isir_select(&log_w, blk.uniforms[r]) {
                            0 => None,
                            j => Some(r * n_prop + j - 1),
                        }
                    }
                };
                let accepted = selected.is_some();
                if let Some(row) = selected {
                    state
                        .x
                        .copy_from_slice(blk.xs.row(row).as_slice().expect("rows are contiguous"));
                    state.log_p = blk.log_p[row];
                    state.log_q = blk.log_q[row];
                }
                state.n_steps += 1;
                configs.row_mut(i).assign(&ndarray::ArrayView1::from(&state.x[..]));
                out.accepted[[c, i]] = accepted as u8;
                out.log_p[[c, i]] = state.log_p;
                out.log_q[[c, i]] = state.log_q;
                out.local_acceptance[[c, i]] = local_acc;
                out.proposal_log_w[[c, i]] = blk.log_p[r * n_prop] - blk.log_q[r * n_prop];
                progress(1);
            }
        }
    }

    /// [`ImhChain::advance`] into freshly allocated arrays.
    pub fn run(&self, states: &mut [ImhState], n: usize, progress: &(dyn Fn(u64) + Sync)) -> ImhRun {
        let c = states.len();
        let mut out = ImhRun {
            configs: Array3::zeros((c, n, self.dim())),
            accepted: Array2::zeros((c, n)),
            log_p: Array2::zeros((c, n)),
            log_q: Array2::zeros((c, n)),
            local_acceptance: Array2::zeros((c, n)),
            proposal_log_w: Array2::zeros((c, n)),
        };
        let bufs = ImhBuffers {
            configs: out.configs.view_mut(),
            accepted: out.accepted.view_mut(),
            log_p: out.log_p.view_mut(),
            log_q: out.log_q.view_mut(),
            local_acceptance: out.local_acceptance.view_mut(),
            proposal_log_w: out.proposal_log_w.view_mut(),
        };
        self.advance(states, n, bufs, progress);
        out
    }

    /// The local updates of step `t` (hybrid); returns their acceptance fraction.
    fn local_updates(&self, chain: u64, t: u64, state: &mut ImhState, scratch: &mut Vec<f64>) -> f64 {
        let (Some((kernel, density)), k) = (self.local, self.config.local_steps) else {
            return f64::NAN;
        };
        if k == 0 {
            return f64::NAN;
        }
        let mut rng = self.seed.child(chain).child(LOCAL).child(t).rng();
        let mut n_acc = 0usize;
        for _ in 0..k {
            n_acc += kernel.update(&mut state.x, scratch, &mut rng).accepted as usize;
        }
        let x = ndarray::ArrayView2::from_shape((1, state.x.len()), &state.x[..]).expect("one row");
        let mut lq = [0.0];
        density.log_q_batch(x, ndarray::ArrayViewMut1::from(&mut lq[..]), Par::serial(1));
        state.log_q = lq[0];
        state.log_p = self.target.log_prob(x.row(0));
        n_acc as f64 / k as f64
    }
}

/// The IMH decision: accept ⇔ ln u < ln w(x′) − ln w(x); non-finite
/// proposal weights (NaN, ±∞) are rejected and a non-finite current state
/// accepts any finite proposal ([`fieldflow_stats::diagnostics`]).
pub use fieldflow_stats::diagnostics::imh_accept as accept;

/// Acceptance rate and the longest run of consecutive rejections of a chain.
pub fn rejection_summary(accepted: &[u8]) -> (f64, usize) {
    let mut longest = 0;
    let mut run = 0;
    for &a in accepted {
        if a == 0 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let rate = accepted.iter().map(|&a| a as f64).sum::<f64>() / accepted.len().max(1) as f64;
    (rate, longest)
}
