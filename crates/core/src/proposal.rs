//! Proposal distributions with exact normalized densities.

use crate::par::Par;
use crate::seed::Seed;
use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// A sampler that draws x together with a log importance weight's
/// denominator: `log_q` such that w = p̃(x)/q with log w = log p̃(x) − log_q is
/// an exact importance weight. For a normalizing flow or a Gaussian log_q is
/// the normalized density log q(x) of the draw; for a stochastic normalizing
/// flow it is the path's effective log q (log p̃ minus the exact path weight),
/// which depends on the path, not only on x. Independent Metropolis–Hastings
/// and importance sampling need nothing more.
pub trait Proposal: Send + Sync {
    /// Dimension of x.
    fn dim(&self) -> usize;
    /// Fills the rows of `xs` with independent draws and `log_q` with their
    /// log weight denominators (see the trait docs). The draws depend only on
    /// `seed` and `par.chunk_rows`, not on the number of threads.
    fn draw_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par);
}

/// A proposal whose normalized density q(x) can be evaluated at any x, not
/// only at its own draws: what a sampler needs when the state moves by other
/// means (the local moves of the hybrid sampler), and what held-out NLL
/// needs. Flows and Gaussians have it; stochastic normalizing flows do not.
pub trait ProposalDensity: Proposal {
    /// log q(x) of every row of `xs`.
    fn log_q_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par);
}

/// A target that can also be sampled exactly (Gaussians, mixtures): the source
/// of ground-truth samples for tests and for held-out NLL.
pub trait ExactSampler: Send + Sync {
    /// Fills the rows of `xs` with independent exact draws x ~ p.
    fn sample_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, par: Par);
}
