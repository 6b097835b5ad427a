//! `reproduce phi4`: lattice φ⁴. HMC ensembles of the tutorial set and
//! E1–E5 (`data/configs/<set>.toml`); on each set of the loss comparison
//! the loss presets train on `n_train` of its configurations
//! (`data/configs/reproduce/phi4.toml`; all five on the tutorial set, FKL,
//! RKL, SM and `scorenf` on E1–E5 unless `--losses` says otherwise) and the
//! recipe trains without data; all are IMH-sampled and compared with
//! HMC (`fieldflow compare`: ⟨|M|⟩, χ₂, U₄, τ_int and the cost per
//! independent sample); then τ_int of IMH against HMC as L grows, and the
//! training-set size sweep ([`super::phi4_sweep`]).

use super::args::{PHI4_METHODS, RECIPE};
use super::cli_json::{num, Analysis};
use super::config::Config;
use super::phi4_sweep;
use super::records::{flatten, grid, stat, values_of, write_raw, Record};
use super::runner::Runner;
use super::stats::{fmt_num, fmt_pm, mean_se};
use super::table::Table;
use crate::workspace_root;
use anyhow::{Context, Result};
use fieldflow_plot::{Figure, Series};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The observables compared between IMH and HMC.
const OBSERVABLES: [&str; 3] = ["abs_M", "chi2", "U4"];

/// The HMC analyses of the ensembles, by set.
pub type Hmc = BTreeMap<String, Analysis>;

pub fn run(r: &mut Runner) -> Result<()> {
    let base =
        Config::read(&workspace_root().join("data/configs/reproduce/phi4.toml"))?.with_steps(r.scale.phi4_steps)?;
    let mut sets: Vec<String> = r.scale.sets.clone();
    if !sets.iter().any(|s| s == "tutorial") {
        sets.insert(0, "tutorial".into());
    }
    let mut hmc = Hmc::new();
    let mut groups: Vec<(String, Vec<Record>)> = vec![];
    for set in &sets {
        let (ens, ens_id) = ensemble(r, set)?;
        hmc.insert(set.clone(), r.analyze(&ens)?);
        if !r.scale.sets.contains(set) {
            continue;
        }
        let losses: Vec<String> = if set == "tutorial" {
            PHI4_METHODS.iter().map(|s| s.to_string()).collect()
        } else {
            r.scale.losses.clone()
        };
        let runner = &*r;
        let recipe = recipe_config(set, r.scale.recipe_steps)?;
        let records = grid(r.scale.jobs, r.scale.seeds, &losses, |loss, seed| {
            let name = format!("phi4_{set}_{loss}_s{seed}");
            let (cfg, extra) = if loss == RECIPE {
                (recipe.clone(), vec!["--seed".to_string(), seed.to_string()])
            } else {
                (base.with_loss(loss)?, data_and_seed(&ens, seed))
            };
            let (mut values, samples) = runner.train_and_sample(&name, &cfg, &extra, &ens_id, seed)?;
            let cmp = runner.compare(&ens, &samples)?;
            for obs in OBSERVABLES {
                let c = cmp.iter().find(|c| c.observable == obs).cloned().unwrap_or_default();
                for (side, x) in [("hmc", c.a), ("imh", c.b)] {
                    values.insert(format!("{side}_{obs}"), num(x[0]));
                    values.insert(format!("{side}_{obs}_err"), num(x[1]));
                    values.insert(format!("{side}_tau_{obs}"), num(x[2]));
                }
                values.insert(format!("dev_{obs}"), num(c.deviation_sigma));
                values.insert(format!("tau_ratio_{obs}"), num(c.tau_ratio));
                values.insert(format!("cost_hmc_{obs}"), num(c.cost[0]));
                values.insert(format!("cost_imh_{obs}"), num(c.cost[1]));
            }
            let imh = runner.analyze(&samples)?;
            values.insert("imh_seconds".into(), num(imh.seconds));
            values.insert("imh_pareto_k".into(), num(imh.pareto_k));
            Ok(values)
        })?;
        groups.push((set.clone(), records));
    }
    write_raw(&r.out.join("runs_phi4.csv"), &flatten(&groups))?;
    loss_tables(r, &base, &groups, &hmc)?;
    tau_table(r, &groups, &hmc)?;
    phi4_sweep::run(r, &base, &hmc)
}

/// The config of the recipe rows: the set's `[phi4]` table and `steps`
/// (every other training setting is `fieldflow train`'s φ⁴ recipe).
fn recipe_config(set: &str, steps: u64) -> Result<Config> {
    let path = workspace_root().join(format!("data/configs/{set}.toml"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{}: not TOML", path.display()))?;
    let phi4 = table
        .get("phi4")
        .cloned()
        .with_context(|| format!("{}: no [phi4] section", path.display()))?;
    let mut cfg = Config::parse(&format!("[train]\nsteps = {steps}\nloss = {{ preset = \"rkl\" }}\n"))?;
    let Some(phi4) = phi4.as_table() else {
        anyhow::bail!("{}: [phi4] is not a table", path.display());
    };
    for (k, v) in phi4 {
        cfg.set("phi4", k, v.clone())?;
    }
    Ok(cfg)
}

/// The training flags of a run on `ensemble` with `seed`.
pub fn data_and_seed(ensemble: &std::path::Path, seed: u64) -> Vec<String> {
    vec![
        "--data".to_string(),
        ensemble.display().to_string(),
        "--seed".into(),
        seed.to_string(),
    ]
}

/// Generates (unless up to date) ensembles/`set`.h5; returns its path and identity.
pub fn ensemble(r: &Runner, set: &str) -> Result<(PathBuf, String)> {
    let cfg = workspace_root().join(format!("data/configs/{set}.toml"));
    let out = r.path("ensembles", &format!("{set}.h5"));
    let mut args = vec![
        "generate".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--force".into(),
        "--quiet".into(),
    ];
    if let Some(n) = r.scale.n_cfg {
        args.extend(["--n-cfg".into(), n.to_string()]);
    }
    if let Some(n) = r.scale.n_therm {
        args.extend(["--n-therm".into(), n.to_string()]);
    }
    let text = std::fs::read_to_string(&cfg).with_context(|| format!("{}: cannot read", cfg.display()))?;
    let key = format!("{}\n{text}", args.join(" "));
    let name = format!("ensemble_{set}");
    r.stage(&name, &name, &[&out], &args, &key)?;
    Ok((out, key))
}

/// The loss comparison, one table per set with an HMC reference row.
fn loss_tables(r: &mut Runner, base: &Config, groups: &[(String, Vec<Record>)], hmc: &Hmc) -> Result<()> {
    let cols = [
        ("ESS", "ess"),
        ("IMH acc. (est.)", "acceptance"),
        ("IMH acc.", "imh_acceptance"),
        ("held-out NLL", "nll"),
        ("RKL est.", "rkl_estimate"),
        ("IMH ⟨|M|⟩", "imh_abs_M"),
        ("Δ/σ", "dev_abs_M"),
        ("IMH k̂", "imh_pareto_k"),
        ("IMH χ₂", "imh_chi2"),
        ("IMH U₄", "imh_U4"),
        ("τ_int |M| IMH", "imh_tau_abs_M"),
        ("train s", "train_seconds"),
    ];
    let mut md_all = String::new();
    let mut csv_all = String::new();
    for (set, rs) in groups {
        let mut t = Table::aggregate("loss", rs, &cols);
        if let Some(h) = hmc.get(set) {
            let mut row = vec!["HMC (reference)".to_string(), String::new()];
            row.extend(cols.iter().map(|(_, k)| match k.strip_prefix("imh_") {
                Some("tau_abs_M") => fmt_num(num(h.row("abs_M").tau_int)),
                Some(o) if OBSERVABLES.contains(&o) => fmt_pm(num(h.row(o).value), num(h.row(o).error)),
                _ => String::new(),
            }));
            t.rows.push(row);
        }
        let target = hmc.get(set).map(|h| h.target.as_str()).unwrap_or_default();
        let _ = writeln!(md_all, "**{set}** ({target})\n\n{}", t.markdown());
        csv_all += &t.csv_with_column("set", set);
    }
    let s = &r.scale;
    let note = format!(
        "{} seed(s) (mean ± s.e. over seeds); config data/configs/reproduce/phi4.toml ({}, n_train = {}); \
         `recipe`: the set's [phi4] alone, {} steps of `fieldflow train`'s default recipe (reverse KL, no data); \
         HMC: data/configs/<set>.toml{}; IMH: {} chains × {} samples; Δ/σ = (HMC − IMH)/combined error of ⟨|M|⟩; \
         IMH k̂: Pareto k̂ of the IMH proposals' weights (above 0.7 the IMH error bars are too small, \
         docs/THEORY.md §7.10); \
         train s: wall seconds of a run, {} run(s) at once.",
        s.seeds,
        base.steps_desc(),
        base.show("data", "n_train"),
        s.recipe_steps,
        match (s.n_cfg, s.n_therm) {
            (Some(n), Some(t)) => format!(" with n_cfg = {n}, n_therm = {t}"),
            (Some(n), None) => format!(" with n_cfg = {n}"),
            _ => String::new(),
        },
        s.chains,
        s.samples,
        s.jobs
    );
    let title = "φ⁴: FKL vs RKL vs SM vs ScoreNF vs the default recipe";
    r.section("loss_phi4", title, title, format!("{md_all}{note}\n"), &csv_all)
}

/// τ_int of IMH vs HMC and the cost per independent sample, per set and
/// loss; the figure of τ_int against L (E1–E5).
fn tau_table(r: &mut Runner, groups: &[(String, Vec<Record>)], hmc: &Hmc) -> Result<()> {
    let mut tau = Table::new(&[
        "set",
        "L",
        "loss",
        "IMH acc.",
        "τ_HMC |M|",
        "τ_IMH |M|",
        "τ_IMH/τ_HMC",
        "s/indep. HMC",
        "s/indep. IMH",
        "train s",
    ]);
    let lattice = |set: &str| hmc.get(set).map(Analysis::lattice).unwrap_or_default();
    for (set, rs) in groups {
        for loss in PHI4_METHODS {
            if !rs.iter().any(|x| x.variant == loss) {
                continue;
            }
            let mut row = vec![set.clone(), lattice(set), loss.to_string()];
            row.extend(
                [
                    "imh_acceptance",
                    "hmc_tau_abs_M",
                    "imh_tau_abs_M",
                    "tau_ratio_abs_M",
                    "cost_hmc_abs_M",
                    "cost_imh_abs_M",
                    "train_seconds",
                ]
                .map(|k| mean_se(&values_of(rs, loss, k))),
            );
            tau.rows.push(row);
        }
    }
    r.table(
        "tau_imh_vs_hmc",
        "IMH vs HMC: integrated autocorrelation time of |M| and cost per independent sample",
        "Cost = wall-clock seconds of generation/sampling divided by N/(2τ_int) (training time excluded, see 'train s'); \
         HMC τ in units of trajectories (Omelyan, 10 steps, length 1), IMH τ in proposals.",
        &tau,
    )?;
    let mut fig = Figure::new(
        "IMH vs HMC: τ_int of |M| (E1–E5)",
        "L",
        "log10 τ_int(|M|) (mean ± s.e. over seeds)",
    );
    // The tutorial set (L = 8 at other couplings) is left out.
    let by_l: Vec<(f64, &[Record])> = groups
        .iter()
        .filter(|(set, _)| set != "tutorial")
        .filter_map(|(set, rs)| Some((lattice(set).parse::<f64>().ok()?, rs.as_slice())))
        .collect();
    let log10 = |(m, e): (f64, f64)| (m > 0.0).then(|| (m.log10(), e / (m * std::f64::consts::LN_10)));
    let points = |variant: &str, key: &str, dx: f64| {
        by_l.iter()
            .filter_map(|&(l, rs)| {
                let (m, e) = log10(stat(rs, variant, key)?)?;
                Some((l + dx, m, e))
            })
            .collect::<Vec<_>>()
    };
    fig.series.push(Series::points("HMC", points("", "hmc_tau_abs_M", 0.0)));
    for (i, loss) in PHI4_METHODS.iter().enumerate() {
        let dx = 0.06 * (i as f64 + 1.0);
        fig.series.push(Series::points(
            format!("IMH ({loss})"),
            points(loss, "imh_tau_abs_M", dx),
        ));
    }
    fig.series.retain(|s| !s.data.is_empty());
    r.figure("tau_vs_L", "τ_int vs L", fig);
    Ok(())
}
