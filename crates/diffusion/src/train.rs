//! Training loops for score models (docs/THEORY.md §8.5): plain gradient
//! descent or Adam on either the exact population objective of a Gaussian
//! target (deterministic: the setting of the critical-slowing-down analysis)
//! or the DSM loss of minibatches drawn from a data ensemble.

use crate::dsm;
use crate::model::ScoreModel;
use crate::oracle::GaussianField;
use crate::schedule::NoiseSchedule;
use fieldflow_core::{ConfigError, Par, Seed};
use fieldflow_losses::optim::{Adam, AdamConfig};
use ndarray::{Array2, ArrayView2};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// θ ← θ − η ∇ℓ.
    GradientDescent {
        /// η.
        lr: f64,
    },
    /// Adam with its default moments.
    Adam {
        /// η.
        lr: f64,
    },
}

impl Optimizer {
    /// Checks η > 0.
    ///
    /// # Errors
    /// A non-positive or non-finite rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (Optimizer::GradientDescent { lr } | Optimizer::Adam { lr }) = *self;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(ConfigError::new("optimizer.lr", lr, "must be finite and > 0"));
        }
        Ok(())
    }
}

/// What the model is trained on.
#[derive(Debug, Clone, Copy)]
pub enum Objective<'a> {
    /// The exact expected DSM loss for data from a Gaussian field.
    Population(&'a GaussianField),
    /// Minibatches of `batch` rows drawn (with replacement) from `data`.
    Data {
        /// The ensemble, one field per row.
        data: ArrayView2<'a, f64>,
        /// Rows per step.
        batch: usize,
    },
}

/// How long and how to train.
#[derive(Debug, Clone, Copy)]
pub struct Training {
    /// The update rule.
    pub optimizer: Optimizer,
    /// Maximum number of updates.
    pub steps: usize,
    /// Root of the minibatch and noise streams.
    pub seed: Seed,
    /// Chunking of the batch.
    pub par: Par,
}

/// Runs up to `steps` updates; after each, `observe(step, loss, model)` may
/// stop the run by returning `false`. The loss is the population excess or
/// the minibatch DSM loss before the update. Returns the number of steps
/// taken.
pub fn train(
    model: &mut ScoreModel,
    schedule: &NoiseSchedule,
    objective: Objective<'_>,
    how: &Training,
    mut observe: impl FnMut(usize, f64, &ScoreModel) -> bool,
) -> usize {
    let Training {
        optimizer,
        steps,
        seed,
        par,
    } = *how;
    let mut adam = match optimizer {
        Optimizer::Adam { .. } => Some(Adam::new(AdamConfig::default(), model.params.len())),
        Optimizer::GradientDescent { .. } => None,
    };
    let mut batch_rows = match objective {
        Objective::Data { data, batch } => Array2::<f64>::zeros((batch, data.ncols())),
        Objective::Population(_) => Array2::<f64>::zeros((0, 0)),
    };
    for step in 0..steps {
        let (loss, grad) = match objective {
            Objective::Population(field) => dsm::population(model, schedule, field),
            Objective::Data { data, .. } => {
                let mut rng = seed.child(2 * step as u64).rng();
                for mut row in batch_rows.rows_mut() {
                    row.assign(&data.row(rng.random_range(0..data.nrows())));
                }
                dsm::loss_and_gradient(model, schedule, batch_rows.view(), seed.child(2 * step as u64 + 1), par)
            }
        };
        match (optimizer, adam.as_mut()) {
            (Optimizer::Adam { lr }, Some(adam)) => adam.step(&mut model.params, &grad, lr),
            (Optimizer::GradientDescent { lr }, _) | (Optimizer::Adam { lr }, None) => {
                for (p, g) in model.params.iter_mut().zip(&grad) {
                    *p -= lr * g;
                }
            }
        }
        if !observe(step, loss, model) {
            return step + 1;
        }
    }
    steps
}
