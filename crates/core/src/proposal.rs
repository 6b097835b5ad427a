//! Proposal distributions with exact normalized densities.

use crate::par::Par;
use crate::seed::Seed;
use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// A distribution q that can be sampled and whose normalized log q(x) is exact:
/// a trained normalizing flow, a Gaussian. Independent Metropolis–Hastings and
/// importance sampling need nothing more.
pub trait Proposal: Send + Sync {
    /// Dimension of x.
    fn dim(&self) -> usize;

    /// Fills the rows of `xs` with independent draws x ~ q and `log_q` with
    /// log q(x). The draws depend only on `seed` and `par.chunk_rows`, not on
    /// the number of threads.
    fn draw_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par);

    /// log q(x) of every row of `xs`.
    fn log_q_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par);
}

/// A target that can also be sampled exactly (Gaussians, mixtures): the source
/// of ground-truth samples for tests and for held-out NLL.
pub trait ExactSampler: Send + Sync {
    /// Fills the rows of `xs` with independent exact draws x ~ p.
    fn sample_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, par: Par);
}
