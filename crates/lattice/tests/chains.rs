//! Chain driver: thread-count determinism, resume equality, thinning,
//! independent streams, tuning, and ⟨M⟩ = 0 in the interacting symmetric phase.

mod common;

use fieldflow_core::{Seed, Target};
use fieldflow_lattice::{
    advance, init_states, thermalize, Algorithm, AlgorithmConfig, ChainRecords, ChainState, HmcConfig,
    MetropolisConfig, Phi4, Phi4Config, Phi4Observables, Start,
};
use ndarray::Axis;

fn algorithms() -> Vec<Algorithm> {
    vec![
        AlgorithmConfig::Hmc(HmcConfig::default()).validate().unwrap(),
        AlgorithmConfig::Metropolis(MetropolisConfig::default())
            .validate()
            .unwrap(),
    ]
}

fn model() -> Phi4 {
    Phi4Config::standard(&[6, 8], -1.0, 1.0).validate().unwrap()
}

/// Bitwise identity of two record sets (NaN-safe).
fn same_bits(a: &ChainRecords, b: &ChainRecords) -> bool {
    let bits = |x: &ndarray::Array2<f64>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    a.configs
        .iter()
        .map(|v| v.to_bits())
        .eq(b.configs.iter().map(|v| v.to_bits()))
        && a.accepted == b.accepted
        && bits(&a.delta_h) == bits(&b.delta_h)
        && bits(&a.log_p) == bits(&b.log_p)
        && bits(&a.acceptance) == bits(&b.acceptance)
}

/// Saved field k of chain c.
fn cfg(r: &ChainRecords, c: usize, k: usize) -> Vec<f64> {
    r.configs.index_axis(Axis(0), c).index_axis(Axis(0), k).to_vec()
}

fn run(target: &Phi4, alg: &Algorithm, threads: usize) -> (Vec<ChainState>, ChainRecords) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let seed = Seed::new(2024);
        let mut st = init_states(5, target.dim(), Start::Hot { sigma: 0.7 }, seed, alg);
        thermalize(target, alg, seed, &mut st, 30, &|_| {});
        let mut rec = ChainRecords::new(5, 20, target.dim());
        advance(target, alg, seed, &mut st, 2, &mut rec, &|_| {});
        (st, rec)
    })
}

#[test]
fn output_is_bit_identical_for_one_and_two_threads() {
    let t = model();
    for alg in algorithms() {
        let (s1, r1) = run(&t, &alg, 1);
        let (s2, r2) = run(&t, &alg, 2);
        assert_eq!(s1, s2);
        assert!(same_bits(&r1, &r2), "{alg:?}");
        // Chains differ from each other (independent streams).
        assert_ne!(cfg(&r1, 0, 19), cfg(&r1, 1, 19));
    }
}

#[test]
fn resuming_equals_one_long_run_and_states_serialize_exactly() {
    let t = model();
    let seed = Seed::new(5);
    for alg in algorithms() {
        let mut a = init_states(3, t.dim(), Start::Cold, seed, &alg);
        thermalize(&t, &alg, seed, &mut a, 20, &|_| {});
        let mut b = a.clone();
        let mut long = ChainRecords::new(3, 12, t.dim());
        advance(&t, &alg, seed, &mut a, 1, &mut long, &|_| {});
        let mut first = ChainRecords::new(3, 5, t.dim());
        advance(&t, &alg, seed, &mut b, 1, &mut first, &|_| {});
        // Round-trip the states through JSON, as a checkpoint would.
        let json = serde_json::to_string(&b).unwrap();
        let mut b: Vec<ChainState> = serde_json::from_str(&json).unwrap();
        let mut second = ChainRecords::new(3, 7, t.dim());
        advance(&t, &alg, seed, &mut b, 1, &mut second, &|_| {});
        assert_eq!(a, b);
        for c in 0..3 {
            for k in 0..12 {
                let (r, kk) = if k < 5 { (&first, k) } else { (&second, k - 5) };
                assert_eq!(cfg(&long, c, k), cfg(r, c, kk));
                assert_eq!(long.log_p[[c, k]].to_bits(), r.log_p[[c, kk]].to_bits());
                assert_eq!(long.delta_h[[c, k]].to_bits(), r.delta_h[[c, kk]].to_bits());
            }
        }
        // Thinning by 3 saves every third field of the unthinned run.
        let mut c = init_states(3, t.dim(), Start::Cold, seed, &alg);
        thermalize(&t, &alg, seed, &mut c, 20, &|_| {});
        let mut thinned = ChainRecords::new(3, 4, t.dim());
        let count = std::sync::atomic::AtomicU64::new(0);
        advance(&t, &alg, seed, &mut c, 3, &mut thinned, &|k| {
            count.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(count.into_inner(), 36);
        for k in 0..4 {
            for ch in 0..3 {
                assert_eq!(cfg(&thinned, ch, k), cfg(&long, ch, 3 * k + 2));
            }
            let mean_acc = (0..3).map(|j| long.acceptance[[0, 3 * k + j]]).sum::<f64>() / 3.0;
            assert!((thinned.acceptance[[0, k]] - mean_acc).abs() < 1e-15);
        }
        // log_p is −S of the saved field.
        let phi = cfg(&long, 1, 4);
        assert_eq!(long.log_p[[1, 4]], -t.action(&phi));
    }
}

#[test]
fn tuning_reaches_the_target_acceptance_then_freezes() {
    // Tutorial parameters (docs/THEORY.md §2.10).
    let t = Phi4Config::standard(&[8, 8], -4.0, 8.0).validate().unwrap();
    let seed = Seed::new(9);
    for (alg, target) in [
        (
            AlgorithmConfig::Hmc(HmcConfig {
                n_steps: 5,
                ..Default::default()
            }),
            0.8,
        ),
        (
            AlgorithmConfig::Hmc(HmcConfig {
                integrator: fieldflow_lattice::Integrator::Leapfrog,
                target_acceptance: 0.7,
                ..Default::default()
            }),
            0.7,
        ),
        (
            AlgorithmConfig::Metropolis(MetropolisConfig {
                width: 3.0,
                ..Default::default()
            }),
            0.5,
        ),
    ] {
        let alg = alg.validate().unwrap();
        let mut st = init_states(4, t.dim(), Start::Hot { sigma: 1.0 }, seed, &alg);
        let rep = thermalize(&t, &alg, seed, &mut st, 400, &|_| {});
        assert!(st.iter().all(|s| s.thermalized && s.n_updates == 400));
        assert_eq!(rep.tuned, st.iter().map(|s| s.tuned).collect::<Vec<_>>());
        assert!(rep.tuned.iter().all(|&x| x != alg.initial_tuned()));
        let frozen: Vec<f64> = st.iter().map(|s| s.tuned).collect();
        let mut rec = ChainRecords::new(4, 500, t.dim());
        advance(&t, &alg, seed, &mut st, 1, &mut rec, &|_| {});
        assert_eq!(frozen, st.iter().map(|s| s.tuned).collect::<Vec<_>>());
        let acc = rec.acceptance.mean().unwrap();
        assert!((acc - target).abs() < 0.1, "{alg:?}: acceptance {acc} vs {target}");
    }
}

#[test]
fn magnetization_vanishes_in_the_symmetric_phase() {
    // m² = −1, λ = 1 on 8×8 is in the symmetric phase; ⟨M⟩ = 0 by Z₂.
    let t = Phi4Config::standard(&[8, 8], -1.0, 1.0).validate().unwrap();
    let seed = Seed::new(31);
    let alg = AlgorithmConfig::Hmc(HmcConfig::default()).validate().unwrap();
    let mut st = init_states(8, t.dim(), Start::Hot { sigma: 1.0 }, seed, &alg);
    thermalize(&t, &alg, seed, &mut st, 200, &|_| {});
    let mut rec = ChainRecords::new(8, 3000, t.dim());
    advance(&t, &alg, seed, &mut st, 1, &mut rec, &|_| {});
    let series = common::measure_series(&rec, &Phi4Observables::new(&t));
    let abs_m = common::binned_mean_err(&series[1], 8).0;
    common::assert_within_4_sigma("<M>", common::binned_mean_err(&series[0], 8), 0.0, 0.1, abs_m);
}

#[test]
fn divergent_trajectories_are_recorded_rejections() {
    // A step far beyond the stability edge: ΔH overflows; nothing panics,
    // the field stays put and the record says "rejected".
    let t = Phi4Config::standard(&[4, 4], -4.0, 8.0).validate().unwrap();
    let alg = AlgorithmConfig::Hmc(HmcConfig {
        trajectory_length: 200.0,
        n_steps: 10,
        tune: false,
        ..Default::default()
    })
    .validate()
    .unwrap();
    let seed = Seed::new(1);
    let mut st = init_states(2, t.dim(), Start::Hot { sigma: 1.0 }, seed, &alg);
    let start = st.clone();
    let mut rec = ChainRecords::new(2, 3, t.dim());
    advance(&t, &alg, seed, &mut st, 1, &mut rec, &|_| {});
    assert!(rec.accepted.iter().all(|a| !a));
    assert!(rec.delta_h.iter().all(|d| !d.is_finite() || *d > 1e6));
    assert_eq!(st[0].phi, start[0].phi);
}
