//! # fieldflow-losses: training objectives, the optimizer and the trainer
//!
//! * [`loss`]: FKL, RKL, score matching (on data or on flow samples) and
//!   their weighted sum (ScoreNF), with hand-written gradients w.r.t. the
//!   flat parameter vector (docs/THEORY.md §5.1–§5.4); [`LossConfig`] with the presets
//!   `fkl`, `rkl`, `sm`, `scorenf`; one evaluator, for one process or with
//!   the batch shared among several;
//! * [`exchange`]: how the processes of a data-parallel run share a batch
//!   ([`Exchange`]; a single process is [`SingleProcess`]);
//! * [`optim`]: Adam with bias correction and global gradient-norm clipping;
//! * [`schedule`]: learning-rate schedules (constant, cosine, step) and
//!   annealing schedules β(step) for training on p̃^β (docs/THEORY.md §5.5);
//! * [`config`]: the training settings and data, their checks, minibatches;
//! * [`records`]: step outcomes, metrics records and their columns, the
//!   resumable trainer state, errors;
//! * [`stepper`]: the non-finite guard, clipping and the Adam update, shared
//!   by every trainer;
//! * [`metrics`]: a metrics record from a fresh batch of model samples;
//! * [`trainer`]: the flow trainer — one step at a time, metrics on demand,
//!   plain-data state for bit-identical resumption;
//! * [`curriculum`]: a flow trained on smaller lattices first, then on the
//!   target's (one trainer per stage, the state handed on);
//! * [`clusters`]: walkers that find modes without samples; [`mixture`]: the trainer of a
//!   mixture of flows, one per cluster, weights by importance sampling;
//! * [`run`]: the training run — the loop, metrics and checkpoint cadence,
//!   stop requests and resumption, reporting to observers and a checkpoint
//!   sink. Nothing here prints or touches files.

pub mod clusters;
pub mod config;
pub mod curriculum;
pub mod exchange;
pub mod laplace;
pub mod loss;
pub mod metrics;
pub mod mixture;
pub mod optim;
pub mod records;
pub mod run;
pub mod schedule;
pub mod stepper;
pub mod trainer;

pub use config::{
    check_data, check_spline_base, minibatch, CurriculumStage, TrainConfig, TrainData, SPLINE_SM_MIN_BASE_FRACTION,
};
pub use curriculum::Curriculum;
pub use exchange::{Exchange, SingleProcess};
pub use loss::{
    scorenf_annealing, scorenf_fkl_decay, Loss, LossConfig, LossError, LossInputs, LossPreset, LossReport, SmOn,
    RKL_SM_DEFAULT_W_SM, SCORENF_BETA0, SCORENF_SM_CAUCHY_SCALE, SCORENF_WEIGHTS, SCORENF_W_FKL_IS,
};
pub use metrics::{held_out_nll, TrainerParts};
pub use mixture::{choose_components, MixtureTrainer};
pub use optim::{clip_grad_norm, Adam, AdamConfig, AdamState};
pub use records::{MetricColumn, MetricsRecord, StepOutcome, StepReport, TrainError, TrainerState};
pub use run::{CheckpointSink, RunError, RunSchedule, RunSummary, TrainLoop, TrainObserver, TrainRun};
pub use schedule::{Annealing, FklDecay, LrSchedule};
pub use stepper::Stepper;
pub use trainer::Trainer;
