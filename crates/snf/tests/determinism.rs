//! Same seed → same bits, on rayon pools of 1 and 2 threads: samples, path
//! weights, reverse paths and both gradients.

mod common;

use common::*;
use fieldflow_core::{Par, Seed};
use fieldflow_snf::Stage;
use fieldflow_targets::DoubleWell;
use ndarray::Array2;

#[test]
fn results_are_bit_identical_for_one_and_two_threads() {
    let stages = vec![
        Stage::Flow(0..2),
        langevin(3, 0.005, false, 0.4),
        metropolis(3, 0.3, 0.7),
        Stage::Flow(2..4),
        langevin(3, 0.005, true, 1.0),
    ];
    let snf = snf_with(DoubleWell::default(), 4, stages, 2, 1.0);
    let par = Par {
        chunk_rows: 16,
        parallel: true,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let b = snf.sample_paths(Seed::new(5), 203, par);
            let mut xs = Array2::zeros((203, 2));
            let mut lw = ndarray::Array1::zeros(203);
            snf.draw_batch_with_log_w(Seed::new(5), xs.view_mut(), lw.view_mut(), par);
            assert_eq!(xs, b.xs);
            assert_eq!(lw, b.log_w);
            let r = snf.reverse_paths(Seed::new(6), b.xs.view(), par);
            let mut g_kl = vec![0.0; snf.n_params()];
            snf.path_kl_grad_batch(Seed::new(7), 203, &mut g_kl, par);
            let mut g_ml = vec![0.0; snf.n_params()];
            snf.path_ml_grad_batch(Seed::new(8), b.xs.view(), &mut g_ml, par);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (
                bits(b.xs.as_slice().unwrap()),
                bits(b.log_w.as_slice().unwrap()),
                b.acceptance,
                bits(r.path_nll.as_slice().unwrap()),
                bits(&g_kl),
                bits(&g_ml),
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    // A different seed gives different paths.
    let other = snf.sample_paths(Seed::new(99), 203, par);
    assert_ne!(
        other.log_w.to_vec(),
        snf.sample_paths(Seed::new(5), 203, par).log_w.to_vec()
    );
}
