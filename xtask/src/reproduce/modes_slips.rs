//! SLIPS in `reproduce modes` (issue 18): `fieldflow sample --method slips`
//! on the benchmark's targets, one run per seed, as the method "slips" of
//! each target's table. SLIPS needs no model and no training: its samples
//! are independent and unweighted, so its mode weights fill the IMH columns
//! (as flowMC's do) and "IMH s" is its wall time; "kept start mode (SLIPS)"
//! is the share of particles that end in the mode of their first denoiser
//! estimate (`fieldflow_slips::start_decided`: at 1.00 the weights were
//! fixed by the start draws, not by the target).
//!
//! Settings (data/experiments/slips/README.md): the paper's geometric (1, 1)
//! schedule, 32 MALA steps × 4 chains per time step (half discarded), 256
//! time steps (the paper's 1024 at `--full`), σ² = R²/d + τ² with the
//! paper's R and τ per family, and the start time t₀ from the t₀ scan of
//! data/experiments/slips: for two modes in d the fitted rule g(t₀)² =
//! t₀/(1 − t₀) = 3.2/d (the scan's zero crossings of ŵ₀ − ⅔ at d = 8, 16,
//! 32, 64 follow it); for MOG-4/8 and the φ⁴ chain no t₀ of the scan helps
//! (MOG-4 comes out uniform and the tilted chain ≈ ½ at every t₀, MOG-8's
//! equal weights are right at every t₀ by symmetry), so they run at the
//! middle of the paper's grids.
//! Particles: 2048 (1024 on the φ⁴ chain), 256 with `--quick`.

use super::cli_json::num;
use super::modes::{sampler_values, Spec};
use super::records::Record;
use super::runner::{summary_numbers, Runner};
use anyhow::{Context, Result};

/// The method's name in the tables and in `--methods`.
pub const NAME: &str = "slips";

/// σ, t_end, t₀ of SLIPS on `t`, or None for the targets it is not run on
/// (separated mixtures: no scan).
fn settings(t: &Spec) -> Option<(f64, f64, f64)> {
    let two_modes_sigma = (16.0f64 / 9.0 + 0.05).sqrt();
    match t.family {
        "two_modes" => Some((two_modes_sigma, 1.0 - 6.62e-3, 3.2 / (t.x + 3.2))),
        "mog" if t.x == 4.0 => Some(((16.0f64 + 0.5).sqrt(), 1.0 - 6.62e-3, MOG4_T0)),
        "mog" => Some(((50.0f64 + 0.7).sqrt(), 1.0 - 6.62e-3, MOG8_T0)),
        "phi4_1d" => Some(((0.2025f64 + 0.04).sqrt(), 1.0 - 3.32e-3, PHI4_T0)),
        _ => None,
    }
}

/// t₀ of MOG-4, MOG-8 and the φ⁴ chain: the middle of the paper's grids
/// (no value of the scan does better; data/experiments/slips/README.md).
const MOG4_T0: f64 = 0.1;
const MOG8_T0: f64 = 0.1;
const PHI4_T0: f64 = 0.35;

/// SLIPS's runs on `t` (none where [`settings`] has none), one per seed.
pub fn records(r: &Runner, t: &Spec) -> Result<Vec<Record>> {
    let Some((sigma, t_end, t0)) = settings(t) else {
        return Ok(vec![]);
    };
    let s = &r.scale;
    // The φ⁴ chain (d = 100) costs ≈ 50 ms per particle on 2 cores; 1024
    // particles resolve its failure on the tilted chain (README.md) in
    // ≈ 1 min per run.
    let particles = match (s.quick, t.family) {
        (true, _) => 256,
        (false, "phi4_1d") => 1024,
        (false, _) => 2048,
    };
    let steps = if s.full { 1024 } else { 256 };
    let text = format!(
        "[target]\n{}\n\n[sampler]\nparticles = {particles}\nblock = {particles}\nsteps = {steps}\n\
         mcmc_steps = 32\nmcmc_chains = 4\nsigma = {sigma:?}\nt0 = {t0:?}\nt_end = {t_end:?}\n",
        t.section
    );
    let mut records = vec![];
    for seed in 1..=s.seeds {
        let name = format!("modes_{}_slips_s{seed}", t.name);
        let cfg = r.path("configs", &format!("{name}.toml"));
        std::fs::write(&cfg, &text).with_context(|| format!("{}: cannot write", cfg.display()))?;
        let out = r.path("samples", &format!("{name}.h5"));
        let args: Vec<String> = [
            "sample",
            "--method",
            "slips",
            "--config",
            &cfg.display().to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            &out.display().to_string(),
            "--force",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let (out, log) = r.sample_stage(&name, &out, &args, &text)?;
        let a = r.analyze(&out)?;
        let mut v = sampler_values("imh", &a);
        v.insert("slips_start_decided".into(), num(a.start_decided));
        let evals = summary_numbers(&log, "target evaluations per sample");
        v.insert(
            "slips_evals_per_sample".into(),
            evals.first().copied().unwrap_or(f64::NAN),
        );
        records.push(Record {
            variant: NAME.into(),
            seed,
            values: v,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::modes::targets;

    #[test]
    fn slips_runs_on_mixtures_two_modes_and_phi4_with_the_scanned_start() {
        let ts = targets(false, true);
        let with: Vec<&str> = ts.iter().filter(|t| settings(t).is_some()).map(|t| t.family).collect();
        assert!(!with.contains(&"separated"));
        assert_eq!(with.len(), ts.len() - 3);
        let d16 = ts.iter().find(|t| t.name == "two_modes_d16").unwrap();
        let (sigma, _, t0) = settings(d16).unwrap();
        // g(t₀)² = t₀/(1 − t₀) = 3.2/d; σ² = 16/9 + 0.05.
        assert!((t0 / (1.0 - t0) - 0.2).abs() < 1e-12 && (sigma * sigma - 1.8277777777777777).abs() < 1e-12);
        let phi = ts.iter().find(|t| t.family == "phi4_1d").unwrap();
        assert_eq!(settings(phi).unwrap().2, PHI4_T0);
    }
}
