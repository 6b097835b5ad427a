//! RealNVP vs RealNVP + Langevin blocks on the double well (see
//! `fieldflow_snf::experiment`). Usage:
//! `cargo run --release -p fieldflow-snf --example double_well -- [train_steps] [ml_weight] [kl_weight] [target]`;
//! a fourth argument `target` puts every Langevin block at λ = 1.

use fieldflow_snf::experiment::{run_double_well_experiment, ExperimentConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = ExperimentConfig::default();
    if let Some(s) = args.first() {
        cfg.train_steps = s.parse().expect("train_steps: an integer");
    }
    if let Some(s) = args.get(1) {
        cfg.ml_weight = s.parse().expect("ml_weight: a number");
    }
    if let Some(s) = args.get(2) {
        cfg.kl_weight = s.parse().expect("kl_weight: a number");
    }
    if args.get(3).map(String::as_str) == Some("target") {
        cfg.schedule = fieldflow_snf::LambdaSchedule::List(vec![1.0; cfg.n_layers / 2]);
    }
    print!("{}", run_double_well_experiment(&cfg));
}
