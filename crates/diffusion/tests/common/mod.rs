//! Helpers shared by the diffusion crate's integration tests.
#![allow(dead_code)]

use fieldflow_core::{Par, Seed};
use fieldflow_diffusion::{dsm, spectrum_of, Architecture, NoiseSchedule, ScoreModel, TimeGrid};
use fieldflow_testkit::{central_gradient, FD_STEP};
use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};

/// A model on `shape` (4 time levels from t = 10⁻³) with every parameter
/// moved by a uniform draw from `range` (seeded), so that no block is zero.
pub fn random_model(arch: Architecture, shape: &[usize], seed: u64, range: std::ops::Range<f64>) -> ScoreModel {
    let grid = TimeGrid { t_min: 1e-3, levels: 4 };
    let mut model =
        ScoreModel::with_schedule(arch, grid, spectrum_of(shape).unwrap(), &NoiseSchedule::default()).unwrap();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    for p in model.params.iter_mut() {
        *p += rng.random_range(range.clone());
    }
    model
}

/// Errors at step counts doubling from one entry to the next fall like a
/// second-order method's (ratio ¼, accepted in (0.15, 0.35)), from a first
/// error large enough to measure.
pub fn assert_second_order(errs: &[f64]) {
    for w in errs.windows(2) {
        let ratio = w[1] / w[0];
        assert!(
            ratio > 0.15 && ratio < 0.35,
            "errors {errs:?}: ratio {ratio}, second order wants 1/4"
        );
    }
    assert!(errs[0] > 1e-8, "errors {errs:?}: too small to measure the order");
}

/// `f` run on a rayon pool of `threads` threads.
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The DSM minibatch gradient of `model` on `data` (fixed noise seed, 3
/// rows per chunk) and its central-difference counterpart.
pub fn dsm_gradient_and_differences(
    model: &ScoreModel,
    schedule: &NoiseSchedule,
    data: ArrayView2<'_, f64>,
) -> (Vec<f64>, Vec<f64>) {
    let par = Par::serial(3);
    let (_, grad) = dsm::loss_and_gradient(model, schedule, data, Seed::new(5), par);
    let fd = central_gradient(
        |p| {
            let mut m = model.clone();
            m.params.copy_from_slice(p);
            dsm::loss_and_gradient(&m, schedule, data, Seed::new(5), par).0
        },
        &model.params,
        FD_STEP,
    );
    (grad, fd)
}
