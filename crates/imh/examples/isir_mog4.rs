//! IMH against i-SIR with K = 1, 4, 16, 64 proposals per step on MOG-4
//! (docs/THEORY.md §3.3, §6.7) with the proposal N(0, σ_q² I), at an equal
//! number of target evaluations (every chain evaluates p̃ on the same number
//! of proposals). Reported per sampler: the fraction of steps that move, the
//! Γ-method τ_int (in steps) of the indicators of mode 0 (weight 0.1) and
//! mode 3 (weight 0.4), the estimated weight of mode 3 with its error, and
//! the cost of one effectively independent sample, 2 τ_int K evaluations.
//!
//! Usage: `cargo run --release -p fieldflow-imh --example isir_mog4 -- [evaluations] [sigma_q] [chains]`
//! (defaults 2²⁰, 4, 4).

use fieldflow_core::{IsotropicGaussian, Seed};
use fieldflow_imh::{GlobalMove, ImhChain, ImhConfig};
use fieldflow_stats::{gamma_primary, GammaConfig, GammaReport};
use fieldflow_targets::{GaussianMixture, Modes};
use ndarray::Axis;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let evaluations: usize = args
        .first()
        .map_or(1 << 20, |s| s.parse().expect("evaluations: an integer"));
    let sigma_q: f64 = args.get(1).map_or(4.0, |s| s.parse().expect("sigma_q: a number"));
    let chains: usize = args.get(2).map_or(4, |s| s.parse().expect("chains: an integer"));
    let target = GaussianMixture::mog4();
    let exact = target.true_weights().expect("MOG-4 has exact weights");
    let proposal = IsotropicGaussian {
        dim: 2,
        mean: 0.0,
        sigma: sigma_q,
    };
    println!(
        "MOG-4, proposal N(0, {sigma_q}² I), {evaluations} target evaluations per chain, {chains} chains; exact w3 = {}",
        exact[3]
    );
    println!(
        "{:<10} {:>8} {:>7} {:>14} {:>14} {:>20} {:>8} {:>12}",
        "sampler", "steps", "moves", "tau_int(m0)", "tau_int(m3)", "w3", "dev/err", "2*tau3*K"
    );
    let moves = [
        ("IMH", GlobalMove::Imh),
        ("i-SIR 1", GlobalMove::Isir { proposals: 1 }),
        ("i-SIR 4", GlobalMove::Isir { proposals: 4 }),
        ("i-SIR 16", GlobalMove::Isir { proposals: 16 }),
        ("i-SIR 64", GlobalMove::Isir { proposals: 64 }),
    ];
    for (name, global) in moves {
        let k = global.proposals_per_step();
        let n = evaluations / k;
        let config = ImhConfig {
            batch: 256,
            global,
            ..Default::default()
        };
        let chain = ImhChain::new(&target, &proposal, Seed::new(2024), config);
        let mut states = chain.initial_states(chains);
        let run = chain.run(&mut states, n, &|_| {});
        let modes: Vec<Vec<usize>> = run.configs.axis_iter(Axis(0)).map(|c| target.assign_batch(c)).collect();
        let indicator = |m: usize| -> GammaReport {
            let series: Vec<Vec<f64>> = modes
                .iter()
                .map(|c| c.iter().map(|&x| (x == m) as u8 as f64).collect())
                .collect();
            gamma_primary(&series, &GammaConfig::default()).expect("finite series")
        };
        let (m0, m3) = (indicator(0), indicator(3));
        let rate = run.accepted.iter().map(|&a| a as f64).sum::<f64>() / run.accepted.len() as f64;
        println!(
            "{:<10} {:>8} {:>7.4} {:>7.2} ± {:<5.2} {:>7.2} ± {:<5.2} {:>9.5} ± {:<8.5} {:>8.2} {:>12.1}",
            name,
            n,
            rate,
            m0.tau_int,
            m0.tau_int_error,
            m3.tau_int,
            m3.tau_int_error,
            m3.value,
            m3.error,
            (m3.value - exact[3]) / m3.error,
            2.0 * m3.tau_int * k as f64
        );
    }
}
