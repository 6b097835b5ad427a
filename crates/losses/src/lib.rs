//! # fieldflow-losses: training objectives, the optimizer and the trainer
//!
//! * [`loss`]: FKL, RKL, score matching (on data or on flow samples) and
//!   their weighted sum (ScoreNF), with hand-written gradients w.r.t. the
//!   flat parameter vector (REFERENCE §5); [`LossConfig`] with the presets
//!   `fkl`, `rkl`, `sm`, `scorenf`;
//! * [`optim`]: Adam with bias correction and global gradient-norm clipping;
//! * [`schedule`]: learning-rate schedules (constant, cosine, step) and
//!   annealing schedules β(step) for training on p̃^β (REFERENCE §5);
//! * [`trainer`]: the training kernel — one step at a time, the non-finite
//!   guard, metrics records (REFERENCE §8) and plain-data state for
//!   bit-identical resumption. It never prints and never touches files.

pub mod loss;
pub mod optim;
pub mod schedule;
pub mod stepper;
pub mod trainer;

pub use loss::{Loss, LossConfig, LossError, LossInputs, LossPreset, LossReport, SmOn, SCORENF_DEFAULT_W_SM};
pub use optim::{clip_grad_norm, Adam, AdamConfig, AdamState};
pub use schedule::{Annealing, LrSchedule};
pub use stepper::{check_data, SampleMetrics, Stepper};
pub use trainer::{
    imh_acceptance, MetricsRecord, StepOutcome, StepReport, TrainConfig, TrainData, TrainError, TrainLoop, Trainer,
    TrainerState,
};
