//! IMH is exact whatever the proposal: checks against known answers.

use fieldflow_core::{IsotropicGaussian, Par, Seed, Target};
use fieldflow_imh::{accept, rejection_summary, GlobalMove, ImhChain, ImhConfig, ImhRun, ImhState, RandomWalk};
use ndarray::{ArrayView1, ArrayViewMut1};

fn run(chain: &ImhChain, states: &mut [ImhState], n: usize) -> ImhRun {
    chain.run(states, n, &|_| {})
}

/// Mean and its error by batch means (64 batches), for correlated series.
fn mean_and_error(x: &[f64]) -> (f64, f64) {
    let nb = 64;
    let bs = x.len() / nb;
    let means: Vec<f64> = (0..nb)
        .map(|b| x[b * bs..(b + 1) * bs].iter().sum::<f64>() / bs as f64)
        .collect();
    let m = means.iter().sum::<f64>() / nb as f64;
    let var = means.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (nb - 1) as f64;
    (m, (var / nb as f64).sqrt())
}

/// Target N(1, 0.5²) (normalized) and the too wide, off-centre proposal N(0, 2²).
fn poor_pair() -> (IsotropicGaussian, IsotropicGaussian) {
    let target = IsotropicGaussian {
        dim: 1,
        mean: 1.0,
        sigma: 0.5,
    };
    let proposal = IsotropicGaussian {
        dim: 1,
        mean: 0.0,
        sigma: 2.0,
    };
    (target, proposal)
}

/// `chains` IMH chains of `n` steps on [`poor_pair`].
fn poor_run(seed: u64, chains: usize, n: usize) -> ImhRun {
    let (target, proposal) = poor_pair();
    let chain = ImhChain::new(&target, &proposal, Seed::new(seed), ImhConfig::default());
    let mut states = chain.initial_states(chains);
    run(&chain, &mut states, n)
}

#[test]
fn exact_proposal_accepts_everything() {
    let p = IsotropicGaussian {
        dim: 3,
        mean: 0.5,
        sigma: 1.3,
    };
    let chain = ImhChain::new(
        &p,
        &p,
        Seed::new(5),
        ImhConfig {
            batch: 64,
            ..Default::default()
        },
    );
    let mut states = chain.initial_states(2);
    let out = run(&chain, &mut states, 500);
    assert!(out.accepted.iter().all(|&a| a == 1));
    let (rate, longest) = rejection_summary(out.accepted.row(0).as_slice().unwrap());
    assert_eq!((rate, longest), (1.0, 0));
}

#[test]
fn poor_proposal_still_gives_exact_mean_and_variance() {
    // Target N(1, 0.5²); proposal N(0, 2²) is too wide and off-centre.
    let out = poor_run(17, 1, 200_000);
    let x: Vec<f64> = out.configs.iter().copied().collect();
    let (m, dm) = mean_and_error(&x);
    let sq: Vec<f64> = x.iter().map(|v| (v - 1.0).powi(2)).collect();
    let (v, dv) = mean_and_error(&sq);
    assert!((m - 1.0).abs() < 4.0 * dm, "mean {m} ± {dm}");
    assert!((v - 0.25).abs() < 4.0 * dv, "variance {v} ± {dv}");
    // The proposal is poor, so the chain does reject: the test is not trivial.
    let (rate, longest) = rejection_summary(out.accepted.row(0).as_slice().unwrap());
    assert!(rate < 0.6 && longest > 5, "rate {rate}, longest {longest}");
}

#[test]
fn proposal_weights_are_those_of_independent_draws_from_the_proposal() {
    // Target N(1, 0.5²) (normalized), proposal N(0, 2²): E_q[w] = Z = 1 with
    // a finite variance, whereas the chain's own states (distributed as p)
    // have E_p[w] = ∫p²/q ≈ 3.3: the series must be the proposals'.
    let out = poor_run(23, 2, 50_000);
    // A step that accepted moved the chain to its proposal.
    for ((&a, &lw), (&lp, &lq)) in out
        .accepted
        .iter()
        .zip(&out.proposal_log_w)
        .zip(out.log_p.iter().zip(&out.log_q))
    {
        if a == 1 {
            assert_eq!(lw, lp - lq);
        }
    }
    // Independent draws: the plain mean and its error.
    let w: Vec<f64> = out.proposal_log_w.iter().map(|v| v.exp()).collect();
    let n = w.len() as f64;
    let m = w.iter().sum::<f64>() / n;
    let sd = (w.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(
        (m - 1.0).abs() < 4.0 * sd / n.sqrt(),
        "E_q[w] = {m} ± {}",
        sd / n.sqrt()
    );
}

#[test]
fn acceptance_rule_satisfies_detailed_balance_on_a_discrete_space() {
    // States 0..5 with target π and independent proposal q; the acceptance
    // probability of `accept` is integrated over u on a fine midpoint grid.
    let pi: [f64; 5] = [0.05, 0.1, 0.2, 0.25, 0.4];
    let q = [0.3, 0.3, 0.2, 0.1, 0.1];
    let log_w: Vec<f64> = pi.iter().zip(q).map(|(p, q)| (p / q).ln()).collect();
    let m = 200_000;
    let prob = |i: usize, j: usize| -> f64 {
        (0..m)
            .filter(|&k| accept(log_w[i], log_w[j], (k as f64 + 0.5) / m as f64))
            .count() as f64
            / m as f64
    };
    let mut p = [[0.0; 5]; 5];
    for i in 0..5 {
        for j in 0..5 {
            if i != j {
                p[i][j] = q[j] * prob(i, j);
            }
        }
        p[i][i] = 1.0 - p[i].iter().sum::<f64>();
    }
    for i in 0..5 {
        for j in 0..5 {
            let (a, b) = (pi[i] * p[i][j], pi[j] * p[j][i]);
            assert!(
                (a - b).abs() < 1e-5,
                "detailed balance broken for {i} -> {j}: {a} vs {b}"
            );
        }
        // and π is stationary: Σ_i π_i P_ij = π_j
        let pj: f64 = (0..5).map(|k| pi[k] * p[k][i]).sum();
        assert!((pj - pi[i]).abs() < 1e-5);
    }
}

/// A run of 3 chains × 173 steps (`batch` 50, chunks of 8 rows, `global`,
/// `local_steps` random-walk updates) is the same for 1 and 2 threads, for
/// 60 + 113 steps, and for chains 1..3 run as their own block.
fn assert_deterministic(global: GlobalMove, local_steps: usize) {
    let target = IsotropicGaussian {
        dim: 4,
        mean: 0.3,
        sigma: 0.8,
    };
    let proposal = IsotropicGaussian {
        dim: 4,
        mean: 0.0,
        sigma: 1.0,
    };
    let rw = RandomWalk {
        target: &target,
        width: 0.3,
    };
    let config = ImhConfig {
        batch: 50,
        local_steps: 0,
        par: Par {
            chunk_rows: 8,
            parallel: true,
        },
        global,
    };
    let mut chain = ImhChain::new(&target, &proposal, Seed::new(3), config);
    if local_steps > 0 {
        chain = chain.with_local(&rw, local_steps, &proposal);
    }
    let in_pool = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut s = chain.initial_states(3);
            run(&chain, &mut s, 173).configs
        })
    };
    let one = in_pool(1);
    assert_eq!(one, in_pool(2));
    // 60 + 113 steps (60 is not a multiple of the batch) equals 173 straight.
    let mut s = chain.initial_states(3);
    let a = run(&chain, &mut s, 60).configs;
    let b = run(&chain, &mut s, 113).configs;
    let joined = ndarray::concatenate(ndarray::Axis(1), &[a.view(), b.view()]).unwrap();
    assert_eq!(joined, one);
    // Chains 1..3 run on their own (an MPI rank's block) equal rows 1..3.
    let part = chain.with_first_chain(1);
    let mut s = part.initial_states(2);
    let block = run(&part, &mut s, 173).configs;
    assert_eq!(block, one.slice(ndarray::s![1..3, .., ..]));
}

#[test]
fn chains_are_identical_for_one_and_two_threads_and_resume_equals_straight_run() {
    assert_deterministic(GlobalMove::Imh, 0);
}

#[test]
fn isir_chains_are_identical_for_one_and_two_threads_and_resume_equals_straight_run() {
    for local_steps in [0, 2] {
        assert_deterministic(GlobalMove::Isir { proposals: 3 }, local_steps);
    }
}

/// p(x) ∝ 0.3 N(−3, 0.5²) + 0.7 N(3, 0.5²) in one dimension.
struct TwoModes;

impl Target for TwoModes {
    fn dim(&self) -> usize {
        1
    }
    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        let g = |m: f64| (-(x[0] - m).powi(2) / (2.0 * 0.25)).exp();
        (0.3 * g(-3.0) + 0.7 * g(3.0)).ln()
    }
    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let g = |m: f64| 0.0_f64.max((-(x[0] - m).powi(2) / (2.0 * 0.25)).exp());
        let (a, b) = (0.3 * g(-3.0), 0.7 * g(3.0));
        score[0] = (a * (-(x[0] + 3.0) / 0.25) + b * (-(x[0] - 3.0) / 0.25)) / (a + b);
        (a + b).ln()
    }
    fn describe(&self) -> String {
        "two modes".into()
    }
}

#[test]
fn hybrid_sampler_recovers_mode_weights() {
    // Random-walk steps alone never cross between the modes; the flow-like
    // proposal N(0, 3²) does. The weight of the right mode must be 0.7.
    let target = TwoModes;
    let proposal = IsotropicGaussian {
        dim: 1,
        mean: 0.0,
        sigma: 3.0,
    };
    let rw = RandomWalk {
        target: &target,
        width: 0.5,
    };
    let chain = ImhChain::new(&target, &proposal, Seed::new(8), ImhConfig::default()).with_local(&rw, 3, &proposal);
    let mut states = chain.initial_states(1);
    let out = run(&chain, &mut states, 40_000);
    let right: Vec<f64> = out.configs.iter().map(|&x| (x > 0.0) as u8 as f64).collect();
    let (w, dw) = mean_and_error(&right);
    assert!((w - 0.7).abs() < 4.0 * dw && dw < 0.03, "weight {w} ± {dw}");
    assert!(out.log_p.iter().all(|v| v.is_finite()));
}
