//! A training run: the loop around a trainer, whatever the model.
//!
//! [`TrainLoop`] is a trainer as the loop drives it (a flow:
//! [`crate::Trainer`]; a stochastic normalizing flow: fieldflow-snf's
//! trainer). [`TrainRun`] owns the loop up to `steps`:
//!
//! * a metrics record at the start of a fresh run, every `metrics_every`
//!   steps and after the last step, passed to the checkpoint sink
//!   ([`CheckpointSink::metrics`]) and the observers
//!   ([`TrainObserver::metrics`]);
//! * a checkpoint ([`CheckpointSink::save`] of the [`TrainerState`]) every
//!   `checkpoint_every` steps, after the last step, when the trainer stops
//!   with an error (the last good state) and when a stop is requested;
//! * a stop predicate polled after every step with the steps done
//!   (Ctrl-C): the run checkpoints and returns [`RunError::Interrupted`];
//!   [`TrainRun::resume`] continues from a saved state bit-identically.
//!
//! With several processes (an [`Exchange`] of size > 1) every process runs
//! the same loop on its share of each batch ([`TrainLoop::step_sharded`]);
//! process 0 alone records metrics and saves checkpoints, every save is
//! followed by an agreement (all stop if one failed), a stop on any process
//! stops all, and at the end every process checks that all hold the same
//! parameters bit for bit. With one process ([`crate::SingleProcess`])
//! these collectives are identities.
//!
//! The run never prints and never touches files: observers (progress bars,
//! metrics files) and the checkpoint sink (model files) are the caller's.

use crate::exchange::Exchange;
use crate::records::{MetricsRecord, StepOutcome, TrainError, TrainerState};
use fieldflow_core::ConfigError;
use std::time::{Duration, Instant};

/// A trainer as a training loop drives it, whatever the model.
pub trait TrainLoop {
    /// One training step (see [`crate::Trainer::step`]).
    ///
    /// # Errors
    /// As [`crate::Trainer::step`].
    fn step(&mut self) -> Result<StepOutcome, TrainError>;
    /// One step with the batch shared among the processes of `exchange`
    /// (see [`crate::Trainer::step_sharded`]).
    ///
    /// # Errors
    /// As [`TrainLoop::step`]; [`TrainError::NotDistributed`] for a model
    /// that cannot share its batch, with more than one process.
    fn step_sharded(&mut self, exchange: &mut dyn Exchange) -> Result<StepOutcome, TrainError>;
    /// A metrics record at the current parameters (mutable: a
    /// [`crate::Curriculum`] moves the state to its last stage's trainer).
    fn metrics(&mut self) -> MetricsRecord;
    /// The complete state (for a checkpoint).
    fn state(&self) -> TrainerState;
    /// Continues from a saved state.
    ///
    /// # Errors
    /// [`TrainError::State`] for a state of another model or chunking.
    fn restore(&mut self, state: TrainerState) -> Result<(), TrainError>;
    /// Next step index (steps attempted so far, rejected ones included).
    fn step_index(&self) -> u64;
    /// Rejected steps since the start.
    fn total_rejections(&self) -> u64;
    /// The model's parameters θ.
    fn params(&self) -> &[f64];
    /// A mixture of flows' importance-sampling estimate of its weights, once
    /// the last step of this run has made it (other models: none).
    fn mixture_weights(&self) -> Option<&fieldflow_flows::WeightEstimate> {
        None
    }
}

/// What a run reports as it goes (all methods default to nothing).
pub trait TrainObserver {
    /// The loop starts at step `first` and runs to `steps`.
    fn started(&mut self, first: u64, steps: u64) {
        let _ = (first, steps);
    }
    /// A step was taken.
    fn step(&mut self, outcome: &StepOutcome) {
        let _ = outcome;
    }
    /// A metrics record was made (process 0 only).
    fn metrics(&mut self, record: &MetricsRecord) {
        let _ = record;
    }
    /// The loop ended: `completed` after the last step, else on an error or
    /// a stop.
    fn finished(&mut self, completed: bool) {
        let _ = completed;
    }
}

/// Where a run's checkpoints go (process 0 only).
pub trait CheckpointSink {
    /// The sink's error.
    type Error;
    /// Keeps a metrics record (part of the next checkpoint; made just
    /// before any observer hears of it).
    fn metrics(&mut self, record: &MetricsRecord) {
        let _ = record;
    }
    /// Saves `state` together with the metrics kept so far.
    ///
    /// # Errors
    /// The sink's.
    fn save(&mut self, state: &TrainerState) -> Result<(), Self::Error>;
}

/// When a run steps, records and checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSchedule {
    /// Run until this many steps are done.
    pub steps: u64,
    /// Steps between metrics records (≥ 1).
    pub metrics_every: u64,
    /// Steps between checkpoints (≥ 1).
    pub checkpoint_every: u64,
}

/// Why a run ended early.
#[derive(Debug)]
pub enum RunError<E> {
    /// The trainer failed (e.g. too many rejected steps); the last good
    /// state was checkpointed.
    Train(TrainError),
    /// The checkpoint sink failed on this process.
    Sink(E),
    /// Another process failed (its error is reported there).
    OtherProcess,
    /// A stop was requested after `step` of `steps` steps; checkpointed.
    Interrupted {
        /// Steps done.
        step: u64,
        /// Steps of the schedule.
        steps: u64,
    },
    /// Process `rank` ended with parameters different from process 0's.
    Diverged {
        /// The first such process.
        rank: usize,
    },
}

impl<E: std::fmt::Display> std::fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Train(e) => write!(f, "{e}"),
            RunError::Sink(e) => write!(f, "{e}"),
            RunError::OtherProcess => f.write_str("another process failed"),
            RunError::Interrupted { step, steps } => write!(f, "interrupted at step {step} of {steps}"),
            RunError::Diverged { rank } => write!(
                f,
                "process {rank}'s parameters differ from process 0's: the processes diverged"
            ),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for RunError<E> {}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The last metrics record.
    pub last: MetricsRecord,
    /// Seconds spent in this run.
    pub seconds: f64,
    /// Rejected steps since the start of training.
    pub rejections: u64,
    /// The step at which the time budget ([`TrainRun::with_deadline`])
    /// ended the run before `steps`, if it did.
    pub out_of_time: Option<u64>,
}

/// A training run (module docs).
pub struct TrainRun<'a> {
    trainer: &'a mut dyn TrainLoop,
    schedule: RunSchedule,
    resumed: bool,
    stop: Option<&'a dyn Fn(u64) -> bool>,
    deadline: Option<Duration>,
}

impl<'a> TrainRun<'a> {
    /// A fresh run of `trainer` with `schedule`.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming `metrics_every` or `checkpoint_every`
    /// when it is 0.
    pub fn new(trainer: &'a mut dyn TrainLoop, schedule: RunSchedule) -> Result<Self, TrainError> {
        for (name, every) in [
            ("metrics_every", schedule.metrics_every),
            ("checkpoint_every", schedule.checkpoint_every),
        ] {
            if every == 0 {
                return Err(ConfigError::new(name, 0, "must be >= 1").into());
            }
        }
        Ok(TrainRun {
            trainer,
            schedule,
            resumed: false,
            stop: None,
            deadline: None,
        })
    }

    /// Polls `stop(steps_done)` after every step; `true` (on any process)
    /// checkpoints and ends the run with [`RunError::Interrupted`].
    pub fn with_stop(mut self, stop: &'a dyn Fn(u64) -> bool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Ends the run normally (a final metrics record and checkpoint, no
    /// error) at the first step after `budget` of wall-clock time, before
    /// `schedule.steps` if need be; the processes agree on the step.
    pub fn with_deadline(mut self, budget: Duration) -> Self {
        self.deadline = Some(budget);
        self
    }

    /// Continues from a checkpointed state (no initial metrics record: the
    /// run that saved it made one).
    ///
    /// # Errors
    /// [`TrainError::State`] for a state of another model or chunking.
    pub fn resume(&mut self, state: TrainerState) -> Result<(), TrainError> {
        self.trainer.restore(state)?;
        self.resumed = true;
        Ok(())
    }

    /// The trainer.
    pub fn trainer(&self) -> &dyn TrainLoop {
        &*self.trainer
    }

    /// Runs to `schedule.steps` (module docs).
    ///
    /// # Errors
    /// [`RunError`]; on every process alike.
    pub fn run<S: CheckpointSink>(
        &mut self,
        exchange: &mut dyn Exchange,
        observers: &mut [&mut dyn TrainObserver],
        sink: &mut S,
    ) -> Result<RunSummary, RunError<S::Error>> {
        let RunSchedule {
            steps,
            metrics_every,
            checkpoint_every,
        } = self.schedule;
        let root = exchange.rank() == 0;
        let start = Instant::now();
        observers
            .iter_mut()
            .for_each(|o| o.started(self.trainer.step_index(), steps));
        let mut last = None;
        let mut out_of_time = None;
        if root && !self.resumed && self.trainer.step_index() == 0 {
            last = Some(self.record(observers, sink));
        }
        while self.trainer.step_index() < steps {
            match self.trainer.step_sharded(exchange) {
                Ok(outcome) => observers.iter_mut().for_each(|o| o.step(&outcome)),
                Err(e) => {
                    observers.iter_mut().for_each(|o| o.finished(false));
                    self.checkpoint(exchange, sink)?;
                    return Err(RunError::Train(e));
                }
            }
            let t = self.trainer.step_index();
            if root && (t.is_multiple_of(metrics_every) || t == steps) {
                last = Some(self.record(observers, sink));
            }
            if t.is_multiple_of(checkpoint_every) || t == steps {
                self.checkpoint(exchange, sink)?;
            }
            let stop = self.stop.is_some_and(|s| s(t));
            if exchange.any(stop) && t < steps {
                self.checkpoint(exchange, sink)?;
                observers.iter_mut().for_each(|o| o.finished(false));
                return Err(RunError::Interrupted { step: t, steps });
            }
            let spent = self.deadline.is_some_and(|d| start.elapsed() >= d);
            if exchange.any(spent) && t < steps {
                if root && !t.is_multiple_of(metrics_every) {
                    last = Some(self.record(observers, sink));
                }
                out_of_time = Some(t);
                break;
            }
        }
        observers.iter_mut().for_each(|o| o.finished(true));
        self.checkpoint(exchange, sink)?;
        if exchange.size() > 1 {
            check_same_params(exchange, self.trainer.params())?;
        }
        Ok(RunSummary {
            last: last.unwrap_or_else(|| self.trainer.metrics()),
            seconds: start.elapsed().as_secs_f64(),
            rejections: self.trainer.total_rejections(),
            out_of_time,
        })
    }

    fn record<S: CheckpointSink>(&mut self, observers: &mut [&mut dyn TrainObserver], sink: &mut S) -> MetricsRecord {
        let m = self.trainer.metrics();
        sink.metrics(&m);
        observers.iter_mut().for_each(|o| o.metrics(&m));
        m
    }

    /// Process 0 saves, all agree.
    fn checkpoint<S: CheckpointSink>(
        &self,
        exchange: &mut dyn Exchange,
        sink: &mut S,
    ) -> Result<(), RunError<S::Error>> {
        let saved = if exchange.rank() == 0 {
            sink.save(&self.trainer.state())
        } else {
            Ok(())
        };
        let failed = exchange.any(saved.is_err());
        match saved {
            Err(e) => Err(RunError::Sink(e)),
            Ok(()) if failed => Err(RunError::OtherProcess),
            Ok(()) => Ok(()),
        }
    }
}

/// Checks that every process holds process 0's parameters, bit for bit
/// (collective; the invariant of data-parallel training).
fn check_same_params<E>(exchange: &mut dyn Exchange, params: &[f64]) -> Result<(), RunError<E>> {
    let (p, size) = (params.len(), exchange.size());
    let all = exchange.all_gather(params.to_vec(), &vec![p; size]);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let first = bits(&all[..p]);
    match (1..size).find(|&r| bits(&all[r * p..(r + 1) * p]) != first) {
        Some(rank) => Err(RunError::Diverged { rank }),
        None => Ok(()),
    }
}
