//! `reproduce mog4`, `reproduce mog8`: the loss comparison on a Gaussian
//! mixture (`data/configs/reproduce/mogX.toml`). FKL, RKL, SM and ScoreNF
//! train from a small exact-sample set, every seed; each model is
//! IMH-sampled and its chain's mode weights compared with the exact ones;
//! annealed RKL (`mogX_annealed.toml`) against the plain-RKL runs.

use super::args::LOSSES;
use super::config::Config;
use super::mode_weights;
use super::records::{grid, write_raw, Record};
use super::runner::Runner;
use super::table::Table;
use crate::workspace_root;
use anyhow::Result;

/// The variant of annealed RKL beside the four losses.
const ANNEALED: &str = "rkl+annealing";

/// Runs the experiment on the mixture `mix` ("mog4" or "mog8").
pub fn run(r: &mut Runner, mix: &str) -> Result<()> {
    let cfg_dir = workspace_root().join("data/configs/reproduce");
    let base = Config::read(&cfg_dir.join(format!("{mix}.toml")))?.with_steps(r.scale.mix_steps)?;
    let annealed = Config::read(&cfg_dir.join(format!("{mix}_annealed.toml")))?.with_steps(r.scale.mix_steps)?;
    let variants: Vec<&str> = LOSSES.iter().copied().chain([ANNEALED]).collect();
    let runner = &*r;
    let records = grid(r.scale.jobs, r.scale.seeds, &variants, |variant, seed| {
        let (tag, cfg) = match variant {
            ANNEALED => ("annealed", annealed.clone()),
            loss => (loss, base.with_loss(loss)?),
        };
        let name = format!("{mix}_{tag}_s{seed}");
        let extra = ["--seed".to_string(), seed.to_string()];
        let (mut values, samples) = runner.train_and_sample(&name, &cfg, &extra, "", seed)?;
        values.extend(mode_weights::values(&runner.analyze(&samples)?));
        Ok(values)
    })?;
    write_raw(&r.out.join(format!("runs_{mix}.csv")), &records)?;
    let mut cols = vec![
        ("ESS", "ess"),
        ("IMH acc. (est.)", "acceptance"),
        ("IMH acc.", "imh_acceptance"),
        ("held-out NLL", "nll"),
        ("RKL est.", "rkl_estimate"),
        ("mode TV (flow)", "tv_distance"),
        ("collapsed", "n_collapsed"),
        ("covering", "covering"),
        ("mode TV (IMH)", "imh_tv"),
        ("train s", "train_seconds"),
    ];
    let of =
        |keep: &dyn Fn(&str) -> bool| -> Vec<Record> { records.iter().filter(|x| keep(&x.variant)).cloned().collect() };
    let mix_uc = mix.to_uppercase();
    let t = Table::aggregate("loss", &of(&|v| v != ANNEALED), &cols);
    let note = loss_note(r, mix, &base);
    r.table(
        &format!("loss_{mix}"),
        &format!("{mix_uc}: FKL vs RKL vs SM vs ScoreNF"),
        &note,
        &t,
    )?;
    r.table(
        &format!("modes_{mix}"),
        &format!("{mix_uc}: IMH mode weights (nearest-mean assignment)"),
        &format!(
            "{} IMH chains × {} samples per run; mean ± s.e. over seeds of the chains' mode fractions.",
            r.scale.chains, r.scale.samples
        ),
        &mode_weights::table("loss", &records),
    )?;
    let fig = mode_weights::figure(&format!("{mix_uc}: IMH mode weights"), &records);
    r.figure(&format!("modes_{mix}"), &format!("{mix} mode weights"), fig);
    // Annealed vs plain RKL.
    cols.retain(|(_, k)| *k != "nll");
    let t = Table::aggregate("variant", &of(&|v| v == "rkl" || v == ANNEALED), &cols);
    r.table(
        &format!("anneal_{mix}"),
        &format!("{mix_uc}: plain vs annealed RKL (mode collapse)"),
        &format!(
            "Annealing: {}; otherwise identical to the plain-RKL runs.",
            annealed.section_text("train.annealing")
        ),
        &t,
    )
}

fn loss_note(r: &Runner, mix: &str, cfg: &Config) -> String {
    format!(
        "{} seed(s) (mean ± s.e.); config data/configs/reproduce/{mix}.toml: {}, {} exact training samples, \
         {} held-out; metrics = last record of the metrics CSV (fresh flow batch of train.eval_batch samples); \
         'mode TV (IMH)' from {} IMH chains × {} samples.",
        r.scale.seeds,
        cfg.steps_desc(),
        cfg.show("data", "n_train"),
        cfg.show("data", "n_heldout"),
        r.scale.chains,
        r.scale.samples
    )
}
