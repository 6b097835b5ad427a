//! Unnormalized target densities (docs/THEORY.md §1.1).
//!
//! A target is p(x) = p̃(x)/Z with p̃(x) = exp(−S(x)). It offers log p̃(x) = −S(x)
//! and the score ∇ₓ log p̃(x) = −∇S(x), ideally in one fused pass
//! ([`Target::log_prob_and_score`]), as lattice actions compute the force
//! together with the action.

use crate::par::Par;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

/// An unnormalized density p̃(x) = exp(−S(x)) on ℝ^dim, with its score.
pub trait Target: Send + Sync {
    /// Dimension of x.
    fn dim(&self) -> usize;

    /// log p̃(x) = −S(x).
    fn log_prob(&self, x: ArrayView1<f64>) -> f64;

    /// Overwrites `score` with ∇ₓ log p̃(x) = −∇S(x) and returns log p̃(x).
    fn log_prob_and_score(&self, x: ArrayView1<f64>, score: ArrayViewMut1<f64>) -> f64;

    /// log Z = log ∫ p̃(x) dx when it is known exactly (free field, Gaussians,
    /// mixtures); `None` otherwise.
    fn log_z(&self) -> Option<f64> {
        None
    }

    /// A one-line description with all parameters, stored as provenance.
    fn describe(&self) -> String;

    /// log p̃ of every row of `xs` into `out`, chunked by `par` (deterministic).
    ///
    /// # Panics
    /// If the shapes disagree with `dim()` or with each other.
    fn log_prob_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        assert_eq!(
            xs.ncols(),
            self.dim(),
            "batch width differs from the target's dimension"
        );
        par.rows_to_values(xs, out, |_, _, x, mut o| {
            for (i, row) in x.axis_iter(Axis(0)).enumerate() {
                o[i] = self.log_prob(row);
            }
        });
    }

    /// log p̃ and the score of every row of `xs` (scores into the rows of `scores`).
    ///
    /// # Panics
    /// If the shapes disagree with `dim()` or with each other.
    fn log_prob_and_score_batch(
        &self,
        xs: ArrayView2<f64>,
        mut scores: ArrayViewMut2<f64>,
        out: ArrayViewMut1<f64>,
        par: Par,
    ) {
        assert_eq!(
            xs.ncols(),
            self.dim(),
            "batch width differs from the target's dimension"
        );
        assert_eq!(xs.dim(), scores.dim(), "batch and score shapes differ");
        scores.assign(&xs);
        par.rows_mut_to_values(scores, out, |_, first, mut s, mut o| {
            for i in 0..s.nrows() {
                o[i] = self.log_prob_and_score(xs.row(first + i), s.row_mut(i));
            }
        });
    }
}
