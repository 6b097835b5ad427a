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
//! of a mean from the origin). The tilted φ⁴ chain only with `--full`, and
//! with the Laplace reference instead of walkers (the two phases from
//! Newton at ±𝟙 and the boundary φ₄₉ = 0, equal weights; docs/THEORY.md
//! §6.14.6): walkers on the stiff chain stay near φ = 0 and EM then misses
//! the light mode (data/experiments/lrds_chain). There LRDS trains one
//! correction per phase component and leaves the boundary's untrained
//! (`per_component = true`, `frozen = [2]`, §6.14.7): trained as one
//! sampler, the log-variance loss moves the light mode's paths out and the
//! weights come out 4–13σ off; per phase they stay within 1.4σ.

use super::config::Config;
use super::modes::{run_one, Spec};
use super::records::Record;
use super::runner::Runner;
use anyhow::{Context, Result};

/// The method's name in the tables.
pub const NAME: &str = "lrds";

/// How LRDS's reference is found on a target.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reference {
    /// MALA walkers from N(0, σ² I) (σ, their number), then EM.
    Walkers(f64, usize),
    /// The chain's Laplace reference (module docs).
    Laplace,
}

/// The reference on `t`, or None where LRDS is not run (the φ⁴ chain
/// without `--full`).
fn reference(t: &Spec, full: bool) -> Option<Reference> {
    let (sigma, d) = match t.family {
        "two_modes" => (t.x.sqrt() / 2.0, t.x as usize),
        "mog" if t.x == 4.0 => (5.0, 2),
        "mog" => (10.0, 2),
        "separated" => (t.x / 2.0 + 1.0, 8),
        "phi4_1d" if full => return Some(Reference::Laplace),
        _ => return None,
    };
    Some(Reference::Walkers(sigma, (128 * d).max(1024)))
}

/// The `fieldflow train` config of LRDS on `t`.
fn config(t: &Spec, reference: Reference, steps: u64) -> Result<Config> {
    let fit = match reference {
        Reference::Walkers(sigma, walkers) => format!(
            "components = {}\nwalkers = {walkers}\nwalker_sigma = {sigma:?}\nwalker_steps = 1000\nem_restarts = 5",
            t.modes
        ),
        Reference::Laplace => "laplace = { starts = [1.0, -1.0], boundary = { site = 49, value = 0.0 } }\n\
                               per_component = true\nfrozen = [2]"
            .to_string(),
    };
    Config::parse(&format!(
        "seed = 1\ncheckpoint_every = 100000\n[target]\n{}\n\n[lrds]\nsteps = 32\nhidden = [64, 64]\n{fit}\n\n\
         [train]\nsteps = {steps}\nlr = 3e-3\nbatch_size = 256\nclip_grad_norm = 10.0\nmetrics_every = {}\n\
         eval_batch = 1024\n",
        t.section,
        (steps / 3).max(1)
    ))
}

/// LRDS's runs on `t` (none where [`reference`] has none), one per seed.
pub fn records(r: &Runner, t: &Spec) -> Result<Vec<Record>> {
    let Some(reference) = reference(t, r.scale.full) else {
        return Ok(vec![]);
    };
    let steps = if r.scale.quick { 100 } else { 300 };
    let cfg = config(t, reference, steps)?;
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
            .filter(|t| reference(t, false).is_some())
            .map(|t| t.family)
            .collect();
        assert!(!on.contains(&"phi4_1d") && on.contains(&"separated") && on.contains(&"mog"));
        assert!(ts.iter().all(|t| reference(t, true).is_some()));
        let d64 = ts.iter().find(|t| t.name == "two_modes_d64").unwrap();
        assert_eq!(reference(d64, false), Some(Reference::Walkers(4.0, 8192)));
        let text = config(d64, Reference::Walkers(4.0, 8192), 300).unwrap().text().unwrap();
        assert!(
            text.contains("walker_sigma = 4.0") && text.contains("components = 2"),
            "{text}"
        );
        let chain = ts.iter().find(|t| t.family == "phi4_1d").unwrap();
        assert_eq!(reference(chain, true), Some(Reference::Laplace));
        let text = config(chain, Reference::Laplace, 300).unwrap().text().unwrap();
        assert!(
            text.contains("[lrds.laplace.boundary]\nsite = 49")
                && text.contains("per_component = true")
                && text.contains("frozen = [2]")
                && !text.contains("walkers"),
            "{text}"
        );
    }
}
