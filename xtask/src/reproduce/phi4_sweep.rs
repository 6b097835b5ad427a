//! The training-set size sweep of `reproduce phi4`: ScoreNF and FKL trained
//! on n_train configurations of the tutorial set's HMC ensemble (evenly
//! spaced over it; held-out NLL on others) for every size of `--sweep`.

use super::cli_json::Analysis;
use super::config::Config;
use super::phi4::{data_and_seed, ensemble, Hmc};
use super::records::{grid, stat, write_raw};
use super::runner::Runner;
use super::table::Table;
use anyhow::Result;
use fieldflow_plot::{Figure, Series};
use std::fmt::Write as _;

/// The losses of the sweep.
const LOSSES: [&str; 2] = ["scorenf", "fkl"];

pub fn run(r: &mut Runner, base: &Config, hmc: &Hmc) -> Result<()> {
    let (ens, ens_id) = ensemble(r, "tutorial")?;
    let total = hmc.get("tutorial").map_or(0, Analysis::total);
    let heldout = base.count("data", "n_heldout").unwrap_or(1000);
    let mut sweep = vec![];
    let mut skipped = vec![];
    for &n in &r.scale.sweep {
        if n + heldout > total {
            skipped.push(n);
            continue;
        }
        let records = grid(r.scale.jobs, r.scale.seeds, &LOSSES, |loss, seed| {
            let cfg = base.with_loss(loss)?;
            // The loss comparison's run when the size is the config's own.
            let (name, cfg) = if cfg.count("data", "n_train") == Some(n) {
                (format!("phi4_tutorial_{loss}_s{seed}"), cfg)
            } else {
                let mut cfg = cfg;
                cfg.set_count("data", "n_train", n)?;
                (format!("sweep_tutorial_{loss}_n{n}_s{seed}"), cfg)
            };
            Ok(r.train(&name, &cfg, &data_and_seed(&ens, seed), &ens_id)?.0)
        })?;
        sweep.extend(records.into_iter().map(|mut x| {
            x.variant = format!("{} n_train={n}", x.variant);
            x
        }));
    }
    write_raw(&r.out.join("runs_sweep.csv"), &sweep)?;
    let cols = [
        ("ESS", "ess"),
        ("IMH acc. (est.)", "acceptance"),
        ("held-out NLL", "nll"),
        ("RKL est.", "rkl_estimate"),
        ("mode TV (sign M)", "tv_distance"),
        ("train s", "train_seconds"),
    ];
    let t = Table::aggregate("loss, training set", &sweep, &cols);
    let mut note = format!(
        "Tutorial set (L = 8, m² = −4, λ = 8), {} seed(s); {}; the n_train configurations are evenly spaced over the \
         {total} of the HMC ensemble; held-out NLL on {heldout} others.",
        r.scale.seeds,
        base.steps_desc()
    );
    if !skipped.is_empty() {
        let _ = write!(note, " Skipped (ensemble too small): n_train = {skipped:?}.");
    }
    r.table(
        "sweep_phi4",
        "φ⁴ tutorial: training-set size sweep, ScoreNF vs FKL",
        &note,
        &t,
    )?;
    for (name, key, y_label) in [
        ("sweep_phi4", "nll", "held-out NLL (mean ± s.e. over seeds)"),
        ("sweep_phi4_ess", "ess", "ESS (mean ± s.e. over seeds)"),
    ] {
        let mut fig = Figure::new("φ⁴ tutorial: training-set size sweep", "log10 n_train", y_label);
        for (i, loss) in LOSSES.iter().enumerate() {
            fig.series.push(Series::points(
                *loss,
                r.scale.sweep.iter().filter_map(|&n| {
                    let (m, e) = stat(&sweep, &format!("{loss} n_train={n}"), key)?;
                    Some(((n as f64).log10() + 0.02 * i as f64, m, e))
                }),
            ));
        }
        r.figure(name, &format!("sweep: {key} vs n_train"), fig);
    }
    Ok(())
}
