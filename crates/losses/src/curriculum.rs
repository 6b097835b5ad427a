//! A lattice curriculum (docs/THEORY.md §5.7): the first steps of a
//! training on smaller lattices of the same couplings, then the target's
//! own lattice.
//!
//! A flow whose conditioners are periodic convolutions has the same
//! parameters θ on every lattice size, and a flow trained on a lattice of
//! half the extent is already a good start on the full one (φ⁴ in the
//! ordered phase: the correlation length, not L, sets what the couplings
//! must learn), at a quarter of the cost per step in two dimensions.
//! [`Curriculum`] is a [`TrainLoop`] over one [`Trainer`] per stage, each
//! built by the caller on its stage's lattice (target and flow geometry)
//! from the same [`crate::TrainConfig`]: stage k runs the steps
//! t ∈ [T_k, T_{k+1}) of the one run, and at a stage boundary the complete
//! trainer state (θ, Adam moments, step index, rejection counters) passes
//! to the next stage's trainer unchanged. Every random draw stays a
//! function of (seed, t) (the noise of step t has the stage's width), the
//! learning-rate schedule runs over the whole run, and so a resumed run
//! continues bit-identically in any stage.
//!
//! Metrics records and checkpoints always concern the last stage (the
//! target's lattice): a record made during an earlier stage evaluates the
//! current θ on the target's lattice.

use crate::exchange::Exchange;
use crate::records::{MetricsRecord, StepOutcome, TrainError, TrainerState};
use crate::run::TrainLoop;
use crate::trainer::Trainer;
use fieldflow_core::ConfigError;
use fieldflow_flows::{FlowLayer, ScoreLayer};

/// Training through a sequence of lattices (module docs).
pub struct Curriculum<'a, L: ScoreLayer = FlowLayer> {
    /// One trainer per stage, the last on the target's lattice.
    stages: Vec<Trainer<'a, L>>,
    /// First step of every stage after the first (ascending).
    starts: Vec<u64>,
    /// The stage whose trainer holds the current state.
    active: usize,
}

impl<'a, L: ScoreLayer> Curriculum<'a, L> {
    /// A curriculum over `stages` (trainer, steps on it): every stage but
    /// the last runs its given number of steps, the last (the target's
    /// lattice) the rest. The run starts in the first stage, from its
    /// trainer's parameters.
    ///
    /// # Errors
    /// No stage, a stage of zero steps, or stages whose parameter counts
    /// differ (a flow whose parameters depend on the lattice size).
    pub fn new(stages: Vec<(Trainer<'a, L>, u64)>) -> Result<Self, TrainError> {
        let Some(((last, _), earlier)) = stages.split_last() else {
            return Err(ConfigError::new("curriculum", "no stage", "needs the target's lattice at least").into());
        };
        let n = last.flow().n_params();
        let mut starts = Vec::with_capacity(earlier.len());
        let mut t = 0u64;
        for (k, (trainer, steps)) in earlier.iter().enumerate() {
            if *steps == 0 {
                return Err(ConfigError::new(format!("curriculum[{k}].steps"), 0, "must be >= 1").into());
            }
            if trainer.flow().n_params() != n {
                return Err(ConfigError::new(
                    format!("curriculum[{k}].lattice"),
                    trainer.flow().config().map_or("?".into(), |c| format!("{:?}", c.shape)),
                    format!(
                        "the flow has {} parameters there and {n} on the target's lattice: a curriculum \
                         needs convolutional conditioners",
                        trainer.flow().n_params()
                    ),
                )
                .into());
            }
            t += steps;
            starts.push(t);
        }
        let mut stages: Vec<Trainer<'a, L>> = stages.into_iter().map(|(tr, _)| tr).collect();
        // Every stage starts from the first stage's parameters.
        let first = stages[0].state();
        for tr in &mut stages[1..] {
            tr.restore(first.clone())?;
        }
        Ok(Curriculum {
            stages,
            starts,
            active: 0,
        })
    }

    /// The stage that runs step `t`.
    pub fn stage_of(&self, t: u64) -> usize {
        self.starts.iter().take_while(|&&s| s <= t).count()
    }

    /// The trainer of the last stage (the target's lattice). Its state is
    /// current only once training reached that stage.
    pub fn last(&self) -> &Trainer<'a, L> {
        self.stages.last().expect("one stage at least")
    }

    /// Moves the current state to the trainer of stage `k`.
    fn activate(&mut self, k: usize) -> Result<(), TrainError> {
        if k != self.active {
            let state = self.stages[self.active].state();
            self.stages[k].restore(state)?;
            self.active = k;
        }
        Ok(())
    }
}

impl<L: ScoreLayer> TrainLoop for Curriculum<'_, L> {
    fn step(&mut self) -> Result<StepOutcome, TrainError> {
        self.activate(self.stage_of(self.step_index()))?;
        self.stages[self.active].step()
    }
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError> {
        self.activate(self.stage_of(self.step_index()))?;
        self.stages[self.active].step_sharded(exchange)
    }
    fn metrics(&mut self) -> MetricsRecord {
        let last = self.stages.len() - 1;
        if self.active != last {
            // The current θ on the target's lattice; the active stage keeps
            // its own copy of the state and goes on from it.
            let state = self.stages[self.active].state();
            self.stages[last]
                .restore(state)
                .expect("stages share parameter counts and chunking (checked in new)");
        }
        self.stages[last].metrics()
    }
    fn state(&self) -> TrainerState {
        self.stages[self.active].state()
    }
    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError> {
        let k = self.stage_of(state.step);
        self.stages[k].restore(state)?;
        self.active = k;
        Ok(())
    }
    fn step_index(&self) -> u64 {
        self.stages[self.active].step_index()
    }
    fn total_rejections(&self) -> u64 {
        self.stages[self.active].total_rejections()
    }
    fn params(&self) -> &[f64] {
        self.stages[self.active].flow().params()
    }
}
