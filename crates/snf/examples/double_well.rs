//! RealNVP vs RealNVP + Langevin blocks on the double well (see
//! `fieldflow_snf::experiment`). Usage:
//! `cargo run --release -p fieldflow-snf --example double_well -- [train_steps] [ml_weight] [kl_weight] [target]
//! [--layers=N] [--hidden=a,b] [--seed=N]`;
//! `target` puts every Langevin block at λ = 1; `--layers` (even) and
//! `--hidden` change the coupling architecture shared by both models
//! (default 8 layers, hidden 32,32); `--seed` the master seed (default 1).

use fieldflow_snf::experiment::{run_double_well_experiment, ExperimentConfig};

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let (flags, args): (Vec<&String>, Vec<&String>) = all.iter().partition(|a| a.starts_with("--"));
    let mut cfg = ExperimentConfig::default();
    for f in flags {
        match f.split_once('=') {
            Some(("--layers", v)) => cfg.n_layers = v.parse().expect("--layers=N: an even integer"),
            Some(("--seed", v)) => cfg.seed = v.parse().expect("--seed=N: an integer"),
            Some(("--hidden", v)) => {
                cfg.hidden = v
                    .split(',')
                    .map(|h| h.parse().expect("--hidden=a,b: integers"))
                    .collect()
            }
            _ => panic!("unknown flag {f} (expected --layers=N, --hidden=a,b or --seed=N)"),
        }
    }
    if let Some(s) = args.first() {
        cfg.train_steps = s.parse().expect("train_steps: an integer");
    }
    if let Some(s) = args.get(1) {
        cfg.ml_weight = s.parse().expect("ml_weight: a number");
    }
    if let Some(s) = args.get(2) {
        cfg.kl_weight = s.parse().expect("kl_weight: a number");
    }
    if args.get(3).map(|s| s.as_str()) == Some("target") {
        cfg.schedule = fieldflow_snf::LambdaSchedule::List(vec![1.0; cfg.n_layers / 2]);
    }
    print!("{}", run_double_well_experiment(&cfg));
}
