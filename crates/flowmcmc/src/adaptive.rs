//! Adaptive flow-MCMC: a flow trained on the walkers of the chains it drives
//! (Gabrié, Rotskoff and Vanden-Eijnden, PNAS 119 (2022) e2109420119;
//! docs/THEORY.md §6.10).
//!
//! n walkers x₁…x_n start from data or from a broad initialization. One
//! **round** r:
//!
//! 1. every walker makes `steps_per_round` global–local steps with the
//!    current flow q_θ: k updates of a local kernel, then one global flow
//!    move (IMH or i-SIR) — [`fieldflow_imh::ImhChain`] with walker i as
//!    chain i and the round's seed;
//! 2. the flow takes `train_steps` steps of Adam on the forward KL over the
//!    walkers' current positions (optionally mixed with the reverse KL):
//!    [`fieldflow_losses::Trainer`] with the walkers as its data, its
//!    optimizer state carried from round to round.
//!
//! The local kernel moves walkers within modes and the global move carries
//! them between the modes the flow has learnt, so the flow's training data
//! spreads over the modes without samples of the target; the walkers'
//! distribution is not p while θ changes (the chain is not homogeneous), so
//! **nothing sampled during adaptation is an estimate**. Production runs a
//! frozen flow, where every sampler of fieldflow is exact.
//!
//! Rounds stop after `rounds`, or earlier once a round's global acceptance
//! reaches `stop_acceptance`. Every random number is a function of (seed,
//! round, walker, step), and the state between rounds is plain data
//! ([`AdaptiveState`]), so a run is bit-identical for any thread count and
//! after a resume at any round boundary.

use fieldflow_core::{LocalKernel, Modes, Par, ProposalDensity, Seed, Target};
use fieldflow_flows::{Flow, ScoreLayer};
use fieldflow_imh::{ImhChain, ImhConfig, ImhState};
use fieldflow_losses::{StepOutcome, TrainConfig, TrainData, TrainError, Trainer, TrainerState};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

const SAMPLING: u64 = 0;

/// Settings of the adaptation (the training settings are a [`TrainConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveConfig {
    /// Maximum number of rounds.
    pub rounds: usize,
    /// Global–local steps of every walker per round.
    pub steps_per_round: usize,
    /// Local updates before each global move (0: global moves only).
    pub local_steps: usize,
    /// Adam steps per round.
    pub train_steps: usize,
    /// Stop once a round's global acceptance reaches this (None: run all rounds).
    pub stop_acceptance: Option<f64>,
    /// The global move and its batching.
    pub imh: ImhConfig,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Round index.
    pub round: u64,
    /// Fraction of accepted global moves.
    pub acceptance: f64,
    /// Fraction of accepted local updates (None without local updates).
    pub local_acceptance: Option<f64>,
    /// Mean training loss over the round's accepted Adam steps (None if
    /// every step was rejected).
    pub loss: Option<f64>,
    /// Adam steps of the round rejected by the non-finite guard.
    pub rejected_steps: u64,
    /// Fraction of walkers in each mode after the round's sampling (empty
    /// without modes).
    pub walker_modes: Vec<f64>,
    /// Pareto k̂ of the round's proposals' importance weights (None when
    /// too few are finite; absent in states written before it existed):
    /// above 0.7 the walkers' global moves stick at rare states
    /// (docs/THEORY.md §7.10), and acceptance alone overstates the flow.
    #[serde(default)]
    pub pareto_k: Option<f64>,
}

/// The complete, resumable state between rounds: plain data (finite
/// numbers only, so its JSON form restores it exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveState {
    /// Rounds completed.
    pub round: u64,
    /// Walker positions, one row each.
    pub walkers: Vec<Vec<f64>>,
    /// The trainer (flow parameters, Adam moments, step counter).
    pub trainer: TrainerState,
    /// One record per completed round.
    pub history: Vec<RoundRecord>,
}

impl AdaptiveState {
    /// Whether the run is over: all rounds done or the stopping rule met.
    pub fn finished(&self, config: &AdaptiveConfig) -> bool {
        self.round as usize >= config.rounds
            || match (config.stop_acceptance, self.history.last()) {
                (Some(a), Some(r)) => r.acceptance >= a,
                _ => false,
            }
    }
}

/// Adaptive flow-MCMC for a target (module docs).
pub struct Adaptive<'a> {
    /// The target.
    pub target: &'a dyn Target,
    /// The local kernel (on the target), if `local_steps > 0`.
    pub kernel: Option<&'a dyn LocalKernel>,
    /// Mode assignment, for the per-round walker mode fractions.
    pub modes: Option<&'a dyn Modes>,
    /// Adaptation settings.
    pub config: AdaptiveConfig,
    /// Training settings (loss, learning rate, batch, optimizer, seed); its
    /// `steps` must cover `rounds · train_steps`.
    pub train: TrainConfig,
    /// Seed of the sampling streams.
    pub seed: Seed,
}

impl Adaptive<'_> {
    /// The state before the first round: walkers at the rows of `starts`,
    /// the trainer at the flow's parameters.
    ///
    /// # Errors
    /// Invalid training settings, or `starts` of the wrong width.
    pub fn initial_state<L: ScoreLayer>(&self, flow: &Flow<L>, starts: Array2<f64>) -> Result<AdaptiveState, TrainError>
    where
        Flow<L>: Clone,
    {
        let walkers = starts.outer_iter().map(|r| r.to_vec()).collect();
        let trainer = self.trainer(flow.clone(), starts)?;
        Ok(AdaptiveState {
            round: 0,
            walkers,
            trainer: TrainerState {
                last: None,
                ..trainer.state()
            },
            history: Vec::new(),
        })
    }

    fn trainer<L: ScoreLayer>(&self, flow: Flow<L>, data: Array2<f64>) -> Result<Trainer<'_, L>, TrainError> {
        Trainer::new(
            &self.train,
            flow,
            self.target,
            TrainData {
                train: Some(data),
                held_out: None,
                modes: None,
            },
            self.config.imh.par,
        )
    }

    /// One round (module docs): moves the walkers, trains `flow` (whose
    /// parameters become the trainer's), appends and returns the round's
    /// record.
    ///
    /// # Errors
    /// The training failed (too many rejected steps, bad settings).
    pub fn round<L: ScoreLayer>(&self, flow: &mut Flow<L>, state: &mut AdaptiveState) -> Result<RoundRecord, TrainError>
    where
        Flow<L>: ProposalDensity + Clone,
    {
        flow.params_mut().copy_from_slice(&state.trainer.params);
        let (n, d) = (state.walkers.len(), self.target.dim());
        let walkers = Array2::from_shape_fn((n, d), |(i, j)| state.walkers[i][j]);
        let mut log_q = Array1::zeros(n);
        let mut log_p = Array1::zeros(n);
        let par = self.config.imh.par;
        flow.log_q_batch(walkers.view(), log_q.view_mut(), par);
        self.target.log_prob_batch(walkers.view(), log_p.view_mut(), par);
        let mut chains: Vec<ImhState> = (0..n)
            .map(|i| ImhState {
                x: state.walkers[i].clone(),
                log_p: log_p[i],
                log_q: log_q[i],
                n_steps: 0,
            })
            .collect();
        let run = {
            let mut chain = ImhChain::new(
                self.target,
                &*flow,
                self.seed.child(SAMPLING).child(state.round),
                self.config.imh,
            );
            if let (Some(kernel), true) = (self.kernel, self.config.local_steps > 0) {
                chain = chain.with_local(kernel, self.config.local_steps, &*flow);
            }
            chain.run(&mut chains, self.config.steps_per_round, &|_| {})
        };
        let positions = Array2::from_shape_fn((n, d), |(i, j)| chains[i].x[j]);
        let mut trainer = self.trainer(flow.clone(), positions.clone())?;
        trainer.restore(state.trainer.clone())?;
        let (mut loss_sum, mut n_ok, mut rejected) = (0.0, 0usize, 0u64);
        for _ in 0..self.config.train_steps {
            match trainer.step()? {
                StepOutcome::Accepted(r) => {
                    loss_sum += r.loss;
                    n_ok += 1;
                }
                StepOutcome::Rejected { .. } => rejected += 1,
            }
        }
        // The last step's report (with NaN parts) is not needed to resume.
        state.trainer = TrainerState {
            last: None,
            ..trainer.state()
        };
        flow.params_mut().copy_from_slice(&state.trainer.params);
        let mean = |a: &Array2<f64>| a.iter().sum::<f64>() / a.len().max(1) as f64;
        let record = RoundRecord {
            round: state.round,
            acceptance: run.accepted.iter().map(|&a| f64::from(a)).sum::<f64>() / run.accepted.len().max(1) as f64,
            local_acceptance: (self.kernel.is_some() && self.config.local_steps > 0)
                .then(|| mean(&run.local_acceptance)),
            loss: (n_ok > 0).then(|| loss_sum / n_ok as f64),
            rejected_steps: rejected,
            walker_modes: self.modes.map_or_else(Vec::new, |m| m.mode_fractions(positions.view())),
            pareto_k: fieldflow_stats::pareto_k(
                &run.proposal_log_w
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect::<Vec<_>>(),
            )
            .ok()
            .map(|t| t.k),
        };
        state.walkers = chains.into_iter().map(|c| c.x).collect();
        state.round += 1;
        state.history.push(record.clone());
        Ok(record)
    }

    /// Runs rounds until the state is finished, calling `after(state)` after
    /// each (to checkpoint, report, or stop by returning false).
    ///
    /// # Errors
    /// As [`Adaptive::round`].
    pub fn run<L: ScoreLayer>(
        &self,
        flow: &mut Flow<L>,
        state: &mut AdaptiveState,
        mut after: impl FnMut(&AdaptiveState) -> bool,
    ) -> Result<(), TrainError>
    where
        Flow<L>: ProposalDensity + Clone,
    {
        while !state.finished(&self.config) {
            self.round(flow, state)?;
            if !after(state) {
                break;
            }
        }
        Ok(())
    }
}

/// Starting points of n walkers drawn from N(0, σ² I) (a broad
/// initialization that knows nothing of the modes), from
/// `seed.child(walker)`.
pub fn broad_starts(n: usize, dim: usize, sigma: f64, seed: Seed) -> Array2<f64> {
    let g = fieldflow_core::IsotropicGaussian { dim, mean: 0.0, sigma };
    let mut xs = Array2::zeros((n, dim));
    let mut lq = Array1::zeros(n);
    fieldflow_core::Proposal::draw_batch(&g, seed, xs.view_mut(), lq.view_mut(), Par::serial(1));
    xs
}
