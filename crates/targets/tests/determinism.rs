//! Exact sampling is bit-identical for rayon pools of 1 and 2 threads (and
//! for serial execution), and depends only on the seed and the chunking.

use fieldflow_core::{Par, Seed};
use fieldflow_targets::{SyntheticTarget, TargetConfig};
use ndarray::Array2;

fn sample_in_pool(t: &dyn SyntheticTarget, threads: usize, par: Par, seed: u64) -> Array2<f64> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut xs = Array2::zeros((1000, t.dim()));
    pool.install(|| {
        t.exact_sampler()
            .unwrap()
            .sample_batch(Seed::new(seed), xs.view_mut(), par)
    });
    xs
}

#[test]
fn exact_samples_do_not_depend_on_the_thread_count() {
    let configs = [
        "kind = \"mog4\"",
        "kind = \"mog8\"",
        "kind = \"two_modes\"\ndim = 16",
        "kind = \"separated_mixture\"\ndim = 8\nseparation = 4.0\nweights = [0.25, 0.75]",
        "kind = \"gaussian\"\nmean = [0.0, 1.0]\ncov = [[1.0, 0.5], [0.5, 2.0]]",
        "kind = \"mixture\"\nmeans = [[-2.0, 0.0], [2.0, 0.0]]\ncovs = [0.5, [[1.0, 0.2], [0.2, 1.0]]]\nweights = [0.3, 0.7]",
        "kind = \"double_well\"",
    ];
    let par = Par {
        chunk_rows: 37,
        parallel: true,
    };
    for s in configs {
        let t = toml::from_str::<TargetConfig>(s).unwrap().validate().unwrap();
        let one = sample_in_pool(t.as_ref(), 1, par, 9);
        let two = sample_in_pool(t.as_ref(), 2, par, 9);
        let serial = sample_in_pool(t.as_ref(), 2, Par::serial(37), 9);
        assert_eq!(one, two, "{s}");
        assert_eq!(one, serial, "{s}");
        assert!(one.iter().all(|v| v.is_finite()));
        let other = sample_in_pool(t.as_ref(), 2, par, 10);
        assert_ne!(one, other, "{s}: different seeds give different samples");
    }
}
