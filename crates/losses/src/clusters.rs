//! Where a mixture of flows puts its components without target samples
//! (with them: k-means, [`fieldflow_stats::kmeans`]): the end points of
//! walkers ([`walker_ends`]), MALA walkers from a broad
//! Gaussian, their step adapted by dual averaging toward acceptance 0.574
//! all along (they only have to reach the basins, not to sample them).

use fieldflow_core::{Par, Proposal, Seed, Target};
use fieldflow_flows::Locate;
use fieldflow_imh::{tune_step, Mala, StepTuning};
use ndarray::{Array1, Array2, ArrayView1};

/// The end points of the walkers of `locate` on `target` (module docs):
/// starts from `seed.child(0)`, updates from `seed.child(1)`.
pub fn walker_ends(target: &dyn Target, locate: &Locate, seed: Seed) -> Array2<f64> {
    let d = target.dim();
    let g = fieldflow_core::IsotropicGaussian {
        dim: d,
        mean: 0.0,
        sigma: locate.sigma,
    };
    let mut xs = Array2::zeros((locate.walkers, d));
    let mut lq = Array1::zeros(locate.walkers);
    g.draw_batch(seed.child(0), xs.view_mut(), lq.view_mut(), Par::serial(64));
    let mut states: Vec<Vec<f64>> = xs.rows().into_iter().map(|r| r.to_vec()).collect();
    let tuning = StepTuning {
        initial: 0.1,
        target_acceptance: 0.574,
        updates: locate.steps,
    };
    tune_step(|step| Mala { target, step }, &mut states, tuning, seed.child(1));
    for (mut row, s) in xs.rows_mut().into_iter().zip(&states) {
        row.assign(&ArrayView1::from(&s[..]));
    }
    xs
}
