//! Adaptive flow-MCMC: from walkers that know nothing of the modes the flow
//! learns the MOG-4 weights, and a run is bit-identical for any thread count
//! and after a resume at a round boundary.

use fieldflow_core::{Modes, Par, Proposal, Seed, Target};
use fieldflow_flowmcmc::{broad_starts, Adaptive, AdaptiveConfig, AdaptiveState};
use fieldflow_flows::{Flow, FlowConfig};
use fieldflow_imh::{GlobalMove, ImhConfig, Mala};
use fieldflow_losses::{LossConfig, LossPreset, TrainConfig};
use fieldflow_targets::GaussianMixture;
use ndarray::{Array1, Array2};

const ROUNDS: usize = 24;

fn setup(target: &GaussianMixture) -> (Flow, AdaptiveConfig, TrainConfig, Array2<f64>) {
    let flow = FlowConfig::mlp(2, 6, vec![24, 24]).build(Seed::new(3)).unwrap();
    let config = AdaptiveConfig {
        rounds: ROUNDS,
        steps_per_round: 8,
        local_steps: 1,
        train_steps: 20,
        stop_acceptance: None,
        imh: ImhConfig {
            batch: 8,
            local_steps: 0,
            par: Par::default(),
            global: GlobalMove::Imh,
        },
    };
    let mut train = TrainConfig::new(LossConfig::preset(LossPreset::Fkl), 128, (ROUNDS * 20) as u64, 3e-3);
    train.seed = 5;
    // Walkers from N(0, 3²I): spread over all four modes in equal shares,
    // not in the target's 0.1 : 0.2 : 0.3 : 0.4.
    let starts = broad_starts(128, target.dim(), 3.0, Seed::new(6));
    (flow, config, train, starts)
}

fn run(rounds: &[usize], threads: usize) -> (Flow, AdaptiveState) {
    let target = GaussianMixture::mog4();
    let (mut flow, config, train, starts) = setup(&target);
    let kernel = Mala {
        target: &target,
        step: 0.3,
    };
    let ad = Adaptive {
        target: &target,
        kernel: Some(&kernel),
        modes: Some(&target),
        config,
        train,
        seed: Seed::new(7),
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut state = ad.initial_state(&flow, starts).unwrap();
        for &stop in rounds {
            // A resume: the state goes through its JSON form.
            let json = serde_json::to_string(&state).unwrap();
            state = serde_json::from_str(&json).unwrap();
            ad.run(&mut flow, &mut state, |s| (s.round as usize) < stop).unwrap();
        }
        (flow, state)
    })
}

#[test]
fn adapted_flow_learns_the_mog4_weights_from_walkers_spread_evenly() {
    let target = GaussianMixture::mog4();
    let (flow, state) = run(&[ROUNDS], 2);
    assert_eq!(state.round as usize, ROUNDS);
    let first = &state.history[0];
    // The walkers start near 1/4 each; the rounds move them to the weights.
    let truth = target.true_weights().unwrap();
    let tv = |w: &[f64]| 0.5 * w.iter().zip(&truth).map(|(a, b)| (a - b).abs()).sum::<f64>();
    assert!(tv(&first.walker_modes) > 0.1, "start {:?}", first.walker_modes);
    // The flow's own draws carry the weights (N = 20000: binomial σ ≤ 0.0035 per mode).
    let n = 20_000;
    let mut xs = Array2::zeros((n, 2));
    let mut lq = Array1::zeros(n);
    flow.draw_batch(Seed::new(11), xs.view_mut(), lq.view_mut(), Par::default());
    let w = target.mode_fractions(xs.view());
    assert!(tv(&w) < 0.05, "flow weights {w:?}, TV {}", tv(&w));
    let last = state.history.last().unwrap();
    assert!(last.acceptance > 0.3, "global acceptance {}", last.acceptance);
    // The proposals' tail says the same (1024 proposals a round; measured
    // 3.19 in the first round, 0.52 in the last).
    let k = |r: &fieldflow_flowmcmc::RoundRecord| r.pareto_k.expect("enough proposals for k̂");
    assert!(k(first) > 0.7 && k(last) < 0.7, "k̂ {} → {}", k(first), k(last));
    assert!(
        last.local_acceptance.unwrap() > 0.2,
        "local acceptance {:?}",
        last.local_acceptance
    );
}

#[test]
fn bit_identical_for_thread_counts_and_resume() {
    let (flow_a, state_a) = run(&[6], 1);
    let (flow_b, state_b) = run(&[2, 4, 6], 2);
    assert_eq!(flow_a.params(), flow_b.params());
    assert_eq!(state_a, state_b);
}
