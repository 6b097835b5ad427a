//! Probe: adaptive flow-MCMC on a preset from broad walkers, then frozen-flow
//! IMH mode weights. Usage: adaptive_probe <mog4|mog8|two:D> <seed> [rounds] [sigma_init] [walkers]
use fieldflow_core::{Modes, Par, Seed, Target};
use fieldflow_flowmcmc::{broad_starts, Adaptive, AdaptiveConfig};
use fieldflow_flows::FlowConfig;
use fieldflow_imh::{GlobalMove, tune_step, ImhBuffers, ImhChain, ImhConfig, Mala, StepTuning};
use fieldflow_losses::{LossConfig, LossPreset, TrainConfig};
use fieldflow_targets::GaussianMixture;
use ndarray::{Array2, Array3};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = match args[1].as_str() {
        "mog4" => GaussianMixture::mog4(),
        "mog8" => GaussianMixture::mog8(),
        s => GaussianMixture::two_modes(s[4..].parse().unwrap()).unwrap(),
    };
    let seed: u64 = args[2].parse().unwrap();
    let rounds: usize = args.get(3).map_or(40, |s| s.parse().unwrap());
    let sigma_init: f64 = args.get(4).map_or(1.0, |s| s.parse().unwrap());
    let d = target.dim();
    let t0 = Instant::now();
    let mut flow = FlowConfig::mlp(d, 8, vec![32, 32]).build(Seed::new(seed)).unwrap();
    let walkers: usize = args.get(5).map_or(256, |s| s.parse().unwrap());
    let starts = broad_starts(walkers, d, sigma_init, Seed::new(seed).child(7));
    let mut warm: Vec<Vec<f64>> = starts.outer_iter().map(|r| r.to_vec()).collect();
    let step = tune_step(
        |s| Mala {
            target: &target,
            step: s,
        },
        &mut warm,
        StepTuning {
            initial: 0.1,
            target_acceptance: 0.57,
            updates: 100,
        },
        Seed::new(seed).child(8),
    );
    let starts = Array2::from_shape_fn((walkers, d), |(i, j)| warm[i][j]);
    let kernel = Mala { target: &target, step };
    let config = AdaptiveConfig {
        rounds,
        steps_per_round: 10,
        local_steps: 1,
        train_steps: 25,
        stop_acceptance: None,
        imh: ImhConfig {
            batch: 16,
            local_steps: 0,
            par: Par::default(),
            global: GlobalMove::Imh,
        },
    };
    let mut train = TrainConfig::new(LossConfig::preset(LossPreset::Fkl), 256, (rounds * 25) as u64, 3e-3);
    train.seed = seed;
    let ad = Adaptive {
        target: &target,
        kernel: Some(&kernel),
        modes: Some(&target),
        config,
        train,
        seed: Seed::new(seed),
    };
    let mut state = ad.initial_state(&flow, starts).unwrap();
    println!(
        "step {step:.4}; initial walker modes {:?}",
        target.mode_fractions(ndarray::Array2::from_shape_fn((walkers, d), |(i, j)| state.walkers[i][j]).view())
    );
    ad.run(&mut flow, &mut state, |s| {
        let r = s.history.last().unwrap();
        if r.round % 5 == 4 {
            println!(
                "round {:3} acc {:.3} local {:.3?} loss {:.3?} modes {:?}",
                r.round,
                r.acceptance,
                r.local_acceptance,
                r.loss,
                r.walker_modes
                    .iter()
                    .map(|v| (v * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            );
        }
        true
    })
    .unwrap();
    let t_adapt = t0.elapsed().as_secs_f64();
    // Production: IMH, frozen flow.
    let (chains, n) = (8, 4000);
    let chain = ImhChain::new(&target, &flow, Seed::new(seed).child(99), ImhConfig::default());
    let mut states = chain.initial_states(chains);
    let mut configs = Array3::zeros((chains, n, d));
    let mut acc = Array2::zeros((chains, n));
    let (mut lp, mut lq, mut loc) = (
        Array2::zeros((chains, n)),
        Array2::zeros((chains, n)),
        Array2::zeros((chains, n)),
    );
    chain.advance(
        &mut states,
        n,
        ImhBuffers {
            configs: configs.view_mut(),
            accepted: acc.view_mut(),
            log_p: lp.view_mut(),
            log_q: lq.view_mut(),
            local_acceptance: loc.view_mut(),
        },
        &|_| {},
    );
    let flat = configs.into_shape_with_order((chains * n, d)).unwrap();
    let w = target.mode_fractions(flat.view());
    let truth = target.true_weights().unwrap();
    let tv: f64 = 0.5 * w.iter().zip(&truth).map(|(a, b)| (a - b).abs()).sum::<f64>();
    let a = acc.iter().map(|&v| f64::from(v)).sum::<f64>() / acc.len() as f64;
    println!(
        "adapt {t_adapt:.1}s total {:.1}s; IMH acc {a:.3}; weights {:?} TV {tv:.4}",
        t0.elapsed().as_secs_f64(),
        w.iter().map(|v| (v * 1000.0).round() / 1000.0).collect::<Vec<_>>()
    );
}
