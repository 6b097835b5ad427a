//! # fieldflow-losses: training objectives and the optimizer
//!
//! * [`optim`]: Adam with bias correction and global gradient-norm clipping;
//! * [`schedule`]: learning-rate schedules (constant, cosine, step) and
//!   annealing schedules β(step) for training on p̃^β (REFERENCE §5).

pub mod optim;
pub mod schedule;

pub use optim::{clip_grad_norm, Adam, AdamConfig, AdamState};
pub use schedule::{Annealing, LrSchedule};
