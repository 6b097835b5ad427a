//! Training loops for score models (docs/THEORY.md §6.11.4): plain gradient
//! descent or Adam on either the exact population objective of a Gaussian
//! target (deterministic: the setting of the critical-slowing-down analysis)
//! or the DSM loss of minibatches drawn from a data ensemble.

use crate::dsm;
use crate::model::ScoreModel;
use crate::oracle::GaussianField;
use crate::schedule::NoiseSchedule;
use fieldflow_core::{ConfigError, Par, Seed};
use fieldflow_losses::optim::{Adam, AdamConfig};
use fieldflow_losses::LrSchedule;
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
    /// The same at the single time t (one noise level).
    PopulationAt(&'a GaussianField, f64),
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
    /// η(step) from the optimizer's η (`LrSchedule::Constant`: fixed).
    pub lr_schedule: LrSchedule,
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
        lr_schedule,
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
        Objective::Population(_) | Objective::PopulationAt(..) => Array2::<f64>::zeros((0, 0)),
    };
    for step in 0..steps {
        let (loss, grad) = match objective {
            Objective::Population(field) => dsm::population(model, schedule, field),
            Objective::PopulationAt(field, t) => dsm::population_at(model, schedule, field, t),
            Objective::Data { data, .. } => {
                let mut rng = seed.child(2 * step as u64).rng();
                for mut row in batch_rows.rows_mut() {
                    row.assign(&data.row(rng.random_range(0..data.nrows())));
                }
                dsm::loss_and_gradient(model, schedule, batch_rows.view(), seed.child(2 * step as u64 + 1), par)
            }
        };
        match (optimizer, adam.as_mut()) {
            (Optimizer::Adam { lr }, Some(adam)) => {
                adam.step(&mut model.params, &grad, lr_schedule.lr(lr, step as u64))
            }
            (Optimizer::GradientDescent { lr }, _) | (Optimizer::Adam { lr }, None) => {
                let lr = lr_schedule.lr(lr, step as u64);
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

/// The largest eigenvalue of the Hessian of `objective` at `theta`, by 60
/// power iterations on Hessian-vector products from central differences of
/// the gradient (exact up to round-off for the quadratic objectives of the
/// one-layer and local models): the step 1/H that plain gradient descent
/// can afford.
pub fn max_curvature(mut objective: impl FnMut(&[f64]) -> Vec<f64>, theta: &[f64]) -> f64 {
    let n = theta.len();
    let mut v: Vec<f64> = (0..n).map(|i| 1.0 + 0.1 * ((i * 7919) % 13) as f64).collect();
    let mut lambda = 0.0;
    let scale = theta.iter().fold(1.0f64, |a, t| a.max(t.abs()));
    let eps = 1e-4 * scale;
    let (mut plus, mut minus) = (theta.to_vec(), theta.to_vec());
    for _ in 0..60 {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        for i in 0..n {
            plus[i] = theta[i] + eps * v[i];
            minus[i] = theta[i] - eps * v[i];
        }
        let (gp, gm) = (objective(&plus), objective(&minus));
        let hv: Vec<f64> = gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * eps)).collect();
        lambda = hv.iter().zip(&v).map(|(a, b)| a * b).sum();
        v = hv;
    }
    lambda
}
