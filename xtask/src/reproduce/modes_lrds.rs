//! LRDS in `reproduce modes` (issue 18): the learned-reference diffusion
//! sampler (crates/lrds, docs/THEORY.md §6.14) trained by `fieldflow train`
//! from an `[lrds]` config, then sampled like every model of the benchmark
//! (IMH and importance sampling on its exact path weights), as the method
//! "lrds" of each target's table.
//!
//! Settings (those of data/experiments/lrds/, where they were measured on
//! three seeds): max(1024, 128·d) MALA walkers from N(0, σ²I), 1000 updates
//! each, EM with one component per mode (5 restarts); K = 32 reverse steps,
//! a correction MLP [64, 64]; 300 Adam steps of the log-variance loss (lr
//! 3·10⁻³, batch 256 paths, clip 10); 100 with `--quick`. The walkers'
//! spread σ: √d/2 for two modes in d (about a quarter of the walkers start
//! in the light mode's basin), 5 for MOG-4 and 10 for MOG-8 (as wide as
//! the mixture), |μ| + 1 for the separated mixtures (|μ| = s/2 the distance
//! of a mean from the origin). The tilted φ⁴ chain (d = 100, σ = 1) only
//! with `--full`: LRDS was not measured there before.

use super::config::Config;
use super::modes::{run_one, Spec};
use super::records::Record;
use super::runner::Runner;
use anyhow::{Context, Result};

/// The method's name in the tables.
pub const NAME: &str = "lrds";

/// The walkers' start σ and their number on `t`, or None where LRDS is not
/// run (the φ⁴ chain without `--full`).
fn walkers(t: &Spec, full: bool) -> Option<(f64, usize)> {
    let (sigma, d) = match t.family {
        "two_modes" => (t.x.sqrt() / 2.0, t.x as usize),
        "mog" if t.x == 4.0 => (5.0, 2),
        "mog" => (10.0, 2),
        "separated" => (t.x / 2.0 + 1.0, 8),
        "phi4_1d" if full => (1.0, 100),
        _ => return None,
    };
    Some((sigma, (128 * d).max(1024)))
}

/// The `fieldflow train` config of LRDS on `t`.
fn config(t: &Spec, sigma: f64, walkers: usize, steps: u64) -> Result<Config> {
    Config::parse(&format!(
        "seed = 1\ncheckpoint_every = 100000\n[target]\n{}\n\n[lrds]\nsteps = 32\nhidden = [64, 64]\n\
         components = {}\nwalkers = {walkers}\nwalker_sigma = {sigma:?}\nwalker_steps = 1000\nem_restarts = 5\n\n\
         [train]\nsteps = {steps}\nlr = 3e-3\nbatch_size = 256\nclip_grad_norm = 10.0\nmetrics_every = {}\n\
         eval_batch = 1024\n",
        t.section,
        t.modes,
        (steps / 3).max(1)
    ))
}

/// LRDS's runs on `t` (none where [`walkers`] has none), one per seed.
pub fn records(r: &Runner, t: &Spec) -> Result<Vec<Record>> {
    let Some((sigma, n)) = walkers(t, r.scale.full) else {
        return Ok(vec![]);
    };
    let steps = if r.scale.quick { 100 } else { 300 };
    let cfg = config(t, sigma, n, steps)?;
    let mut records = vec![];
    for seed in 1..=r.scale.seeds {
        let values =
            run_one(r, t, NAME, &cfg, seed).with_context(|| format!("modes: {} / {NAME} / seed {seed}", t.name))?;
        records.push(Record {
            variant: NAME.into(),
            seed,
            values,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::modes::targets;

    #[test]
    fn lrds_runs_on_the_mixtures_and_the_chain_only_with_full() {
        let ts = targets(false, true);
        let on: Vec<&str> = ts
            .iter()
            .filter(|t| walkers(t, false).is_some())
            .map(|t| t.family)
            .collect();
        assert!(!on.contains(&"phi4_1d") && on.contains(&"separated") && on.contains(&"mog"));
        assert!(ts.iter().all(|t| walkers(t, true).is_some()));
        let d64 = ts.iter().find(|t| t.name == "two_modes_d64").unwrap();
        assert_eq!(walkers(d64, false), Some((4.0, 8192)));
        let text = config(d64, 4.0, 8192, 300).unwrap().text().unwrap();
        assert!(
            text.contains("walker_sigma = 4.0") && text.contains("components = 2"),
            "{text}"
        );
    }
}
