//! The settings of `fieldflow train`: the config table with the flags
//! applied, the target copied from a data file when the config has none,
//! and the defaults written into the stored config.

use super::TrainArgs;
use crate::cmd::phi4_args::NO_TARGET_HINT;
use crate::config;
use crate::target::RunTarget;
use anyhow::{bail, Context, Result};
use fieldflow_io::{EnsembleReader, ModelState, ModelWriter};
use fieldflow_losses::{scorenf_annealing, scorenf_fkl_decay, LossPreset, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where training samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Ensemble file.
    #[serde(default)]
    pub file: Option<String>,
    /// Use exact samples of the target (synthetic targets with a sampler).
    #[serde(default)]
    pub exact: bool,
    /// Training configurations.
    #[serde(default = "default_n_train")]
    pub n_train: u64,
    /// Held-out configurations.
    #[serde(default = "default_n_heldout")]
    pub n_heldout: u64,
    /// Configurations dropped at the start of every chain.
    #[serde(default)]
    pub skip: u64,
}

fn default_n_train() -> u64 {
    1000
}
fn default_n_heldout() -> u64 {
    1000
}
fn default_checkpoint_every() -> u64 {
    200
}

/// The resolved `train` config (target section kept separately in the table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRunConfig {
    /// Master seed of the flow initialization and the data draws. The
    /// training streams (minibatches, base noise, metrics, a mixture's
    /// clustering) follow `train.seed` (default 0); `--seed S` sets both.
    #[serde(default = "one")]
    pub seed: u64,
    /// Steps between checkpoints.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Model architecture: a flow, or an SNF when it lists `stages`
    /// ([`ModelConfig::from_section`]; default: the target's flow).
    #[serde(default)]
    pub flow: Option<toml::Value>,
    /// A diffusion model instead of a flow
    /// (`fieldflow_diffusion::DiffusionConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffusion: Option<toml::Value>,
    /// An LRDS sampler instead of a flow (`fieldflow_lrds::LrdsConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lrds: Option<toml::Value>,
    /// Data.
    #[serde(default)]
    pub data: DataConfig,
    /// Training.
    pub train: TrainConfig,
    /// Lattice target (or `target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi4: Option<toml::Value>,
    /// Synthetic target (or `phi4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<toml::Value>,
}

fn one() -> u64 {
    1
}

/// The config table with the flags of `args` applied and the defaults
/// filled in, and its parsed form.
///
/// # Errors
/// Unreadable config or data file, no target, invalid values.
pub fn resolve(args: &TrainArgs) -> Result<(toml::Table, TrainRunConfig)> {
    let mut t = config::load_table(args.config.as_deref())?;
    if let Some(d) = &args.data {
        config::set(&mut t, "data.file", d.display().to_string());
    }
    if let Some(n) = args.n_train {
        config::set(&mut t, "data.n_train", n as i64);
    }
    if let Some(l) = &args.loss {
        let mut loss = toml::Table::new();
        loss.insert("preset".into(), l.clone().into());
        config::set(&mut t, "train.loss", loss);
    }
    if let Some(s) = args.steps {
        config::set(&mut t, "train.steps", s as i64);
    }
    if let Some(lr) = args.lr {
        config::set(&mut t, "train.lr", lr);
    }
    if let Some(s) = args.run.seed {
        config::set(&mut t, "seed", s as i64);
        config::set(&mut t, "train.seed", s as i64);
    }
    // Targets defined by a data file: copy its [phi4]/[target] section
    // (the φ⁴ flags then override its keys like those of a config file).
    if !has_target(&t) {
        let file = t
            .get("data")
            .and_then(|d| d.get("file"))
            .and_then(|f| f.as_str())
            .map(PathBuf::from);
        if let Some(file) = file {
            let r = EnsembleReader::open(&file)?;
            let stored: toml::Table = r
                .header()
                .config
                .parse()
                .context("data file's stored config is not TOML")?;
            for key in ["phi4", "target"] {
                if let Some(v) = stored.get(key) {
                    t.insert(key.into(), v.clone());
                }
            }
        }
    }
    args.phi4.apply(&mut t)?;
    if !has_target(&t) {
        bail!(
            "no target: {}, give [phi4] or [target] in --config, or --data ENSEMBLE",
            NO_TARGET_HINT
        );
    }
    // The target is checked here, before any data is read or output written.
    RunTarget::from_table(&t, "config")?;
    with_defaults(t, false)
}

/// The config `t` with the defaults for what the user left out (written
/// into the stored config: `batch_size`, `steps`, `lr`, and the loss: RKL
/// without data, ScoreNF for flows and path ML for SNFs with data) and its
/// parsed form; `data_given`: training samples come from elsewhere than
/// `[data]` (the Python API's arrays). A loss with a data term without
/// data is refused.
///
/// # Errors
/// Unparsable sections; a data loss without data.
pub fn with_defaults(mut t: toml::Table, data_given: bool) -> Result<(toml::Table, TrainRunConfig)> {
    // Defaults for what the user left out (written into the stored config).
    let has_data = data_given
        || t.get("data")
            .and_then(|d| d.as_table())
            .is_some_and(|d| d.contains_key("file") || d.get("exact").and_then(|e| e.as_bool()) == Some(true));
    let is_snf = t
        .get("flow")
        .and_then(|f| f.as_table())
        .is_some_and(|f| f.contains_key("stages"));
    // Without data: RKL; with data: ScoreNF (FKL + 0.1 RKL + 0.1 SM on
    // flow samples, annealed) for flows, path ML for SNFs (score matching
    // needs log q, which an SNF lacks).
    let preset = match (has_data, is_snf) {
        (false, _) => "rkl",
        (true, false) => "scorenf",
        (true, true) => "fkl",
    };
    super::recipe::apply(&mut t, preset)?;
    let train = t
        .entry("train")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(train) = train.as_table_mut() {
        let defaults: [(&str, toml::Value); 4] = [
            ("batch_size", 64.into()),
            ("steps", 1000.into()),
            ("lr", 1e-3.into()),
            (
                "loss",
                toml::Value::Table(toml::Table::from_iter([("preset".to_string(), preset.into())])),
            ),
        ];
        for (k, v) in defaults {
            train.entry(k).or_insert(v);
        }
    }
    let c: TrainRunConfig = config::parse(&t, "train")?;
    check_data_given(&c, has_data)?;
    if !resolve_loss(&mut t, &c, is_snf) {
        return Ok((t, c));
    }
    let c: TrainRunConfig = config::parse(&t, "train")?;
    Ok((t, c))
}

/// Writes into `t` what the loss preset of `c` implies, for the keys the
/// user left out: the `scorenf` preset's annealing and FKL handover for a
/// flow or mixture (not an SNF, `is_snf`, nor a diffusion or LRDS model)
/// (`fieldflow_losses::scorenf_annealing`: β 0.1 → 1 over the first half
/// of `train.steps`; `fieldflow_losses::scorenf_fkl_decay`: data FKL to
/// flow-sample FKL over the third quarter), and the preset's resolved
/// weights (`w_fkl`, `w_rkl`, `w_sm`, `sm_on`, `sm_cauchy_scale`, `inf` for
/// plain SM, and `w_fkl_is`), so a model
/// file says exactly what it was trained with even if a preset's meaning
/// changes. Returns whether `t` changed; an
/// invalid loss is left to the trainer, whose error names the key.
fn resolve_loss(t: &mut toml::Table, c: &TrainRunConfig, is_snf: bool) -> bool {
    let Ok(loss) = c.train.loss.validate() else {
        return false;
    };
    let Some(train) = t.get_mut("train").and_then(|v| v.as_table_mut()) else {
        return false;
    };
    let flow = !is_snf && c.diffusion.is_none() && c.lrds.is_none();
    if flow && c.train.loss.preset == Some(LossPreset::Scorenf) {
        if !train.contains_key("annealing") {
            let a = toml::Value::try_from(scorenf_annealing(c.train.steps)).expect("annealing serializes");
            train.insert("annealing".into(), a);
        }
        // The handover needs the FKL term on flow samples: with
        // `w_fkl_is = 0` (the handover turned off) the data FKL keeps its
        // weight, as in the recipe before it.
        if loss.w_fkl_is > 0.0 && !train.contains_key("fkl_decay") {
            let d = toml::Value::try_from(scorenf_fkl_decay(c.train.steps)).expect("fkl_decay serializes");
            train.insert("fkl_decay".into(), d);
        }
    }
    let Some(table) = train.get_mut("loss").and_then(|v| v.as_table_mut()) else {
        return true;
    };
    let sm_on = toml::Value::try_from(loss.sm_on).expect("sm_on serializes");
    let damping = loss.sm_cauchy_scale.unwrap_or(f64::INFINITY);
    for (k, v) in [
        ("w_fkl", loss.w_fkl.into()),
        ("w_rkl", loss.w_rkl.into()),
        ("w_sm", loss.w_sm.into()),
        ("sm_on", sm_on),
        ("sm_cauchy_scale", damping.into()),
        ("w_fkl_is", loss.w_fkl_is.into()),
    ] {
        table.entry(k).or_insert(v);
    }
    true
}

/// Whether `t` names a target.
fn has_target(t: &toml::Table) -> bool {
    t.contains_key("phi4") || t.contains_key("target")
}

/// Refuses a loss with a data term (FKL, SM on data) when no data is
/// given, naming what is missing (an invalid `[train]` is left to the
/// trainer, whose error names the key).
fn check_data_given(c: &TrainRunConfig, has_data: bool) -> Result<()> {
    let Ok(loss) = c.train.validate() else {
        return Ok(());
    };
    if has_data || !loss.needs_data() {
        return Ok(());
    }
    let term = if loss.w_fkl > 0.0 { "FKL" } else { "score-matching" };
    let name = match c.train.loss.preset.map(toml::Value::try_from) {
        Some(Ok(toml::Value::String(p))) => format!("loss {p}"),
        _ => "the loss".to_string(),
    };
    bail!(
        "no training data: {name} has a{} {term} term on target samples; pass --data ENSEMBLE (from \
         `fieldflow generate`), set data.file or data.exact = true in --config, or train with --loss rkl, \
         which needs none",
        if term == "FKL" { "n" } else { "" }
    );
}

/// Makes an older model file's stored loss resume as it was trained:
/// * the preset `scorenf` of a file written before 2026-12-02 (when the
///   name meant RKL + SM on the data, now `rkl_sm`) becomes `rkl_sm`; such
///   files are recognized by the missing resolved weights (since the
///   rename `fieldflow train` stores `w_fkl`, `w_rkl`, `w_sm` and `sm_on`
///   of every preset, `resolve_loss`); returns true if it did;
/// * a file without `sm_cauchy_scale` (written before 2026-12-04, when SM
///   could not be damped) gets `sm_cauchy_scale = inf`, plain SM;
/// * a file without `w_fkl_is` (written before 2026-12-04's handover of
///   FKL to the flow's samples) gets `w_fkl_is = 0`; it has no
///   `fkl_decay` either, so it resumes without the handover.
pub fn legacy_loss(t: &mut toml::Table) -> bool {
    let Some(loss) = t
        .get_mut("train")
        .and_then(|v| v.as_table_mut())
        .and_then(|tr| tr.get_mut("loss"))
        .and_then(|v| v.as_table_mut())
    else {
        return false;
    };
    let old = loss.get("preset").and_then(|p| p.as_str()) == Some("scorenf") && !loss.contains_key("w_fkl");
    if old {
        loss.insert("preset".into(), "rkl_sm".into());
    }
    // Files with resolved weights but no `sm_cauchy_scale` were written
    // before SM could be damped (2026-12-04): they trained with plain SM.
    if !loss.contains_key("sm_cauchy_scale") {
        loss.insert("sm_cauchy_scale".into(), f64::INFINITY.into());
    }
    if !loss.contains_key("w_fkl_is") {
        loss.insert("w_fkl_is".into(), 0.0.into());
    }
    old
}

/// The stored config of the checkpoint in `args.run.out` (with `--steps`
/// applied) and the opened file, for `--resume`.
///
/// # Errors
/// Other settings given with `--resume`; unreadable file or config.
pub fn stored(args: &TrainArgs) -> Result<(toml::Table, TrainRunConfig, ModelWriter, ModelState)> {
    let any_setting = args.config.is_some()
        || args.phi4.any()
        || args.data.is_some()
        || args.loss.is_some()
        || args.n_train.is_some()
        || args.lr.is_some()
        || args.run.seed.is_some();
    if any_setting {
        bail!(
            "--resume continues with the config stored in {}; pass only --out (and --steps to extend)",
            args.run.out.display()
        );
    }
    let (mut writer, state) = ModelWriter::resume(&args.run.out)?;
    let mut table: toml::Table = writer.header_mut().config.clone().parse()?;
    if legacy_loss(&mut table) {
        eprintln!(
            "note: {} was written when the preset `scorenf` meant RKL + SM on the data; it resumes as `rkl_sm`, \
             the same loss",
            args.run.out.display()
        );
    }
    if let Some(s) = args.steps {
        config::set(&mut table, "train.steps", s as i64);
    }
    let c: TrainRunConfig = config::parse(&table, "stored train")?;
    Ok((table, c, writer, state))
}

#[cfg(test)]
mod tests {
    use super::{legacy_loss, with_defaults};

    /// `scorenf` gets its annealing and FKL handover written into the
    /// config; with `w_fkl_is = 0` (the handover off) no decay is added, and
    /// a given decay is kept.
    #[test]
    fn scorenf_gets_its_handover_unless_turned_off() {
        let cfg = |loss: &str| -> toml::Table {
            format!("[target]\nkind = \"mog4\"\n[train]\nsteps = 2000\nloss = {loss}\n")
                .parse()
                .unwrap()
        };
        let (t, c) = with_defaults(cfg("{ preset = \"scorenf\" }"), true).unwrap();
        let d = c.train.fkl_decay.expect("the preset's handover");
        assert_eq!((d.start, d.steps, d.factor), (1000, 500, 0.01));
        assert_eq!(loss_of(&t)["w_fkl_is"].as_float(), Some(1.0));
        assert!(t["train"].get("annealing").is_some());
        let (t, c) = with_defaults(cfg("{ preset = \"scorenf\", w_fkl_is = 0.0 }"), true).unwrap();
        assert!(c.train.fkl_decay.is_none() && t["train"].get("fkl_decay").is_none());
        let mut given = cfg("{ preset = \"scorenf\" }");
        given["train"].as_table_mut().unwrap().insert(
            "fkl_decay".into(),
            toml::Value::Table("start = 7\nsteps = 3\nfactor = 0.5".parse().unwrap()),
        );
        let (_, c) = with_defaults(given, true).unwrap();
        assert_eq!(c.train.fkl_decay.map(|d| d.start), Some(7));
        let (_, c) = with_defaults(cfg("{ preset = \"fkl\" }"), true).unwrap();
        assert!(c.train.fkl_decay.is_none());
    }

    fn loss_of(t: &toml::Table) -> &toml::Table {
        t["train"]["loss"].as_table().expect("a loss table")
    }

    #[test]
    fn old_scorenf_files_resume_as_rkl_sm_and_new_ones_unchanged() {
        // Written before the rename: the preset alone (or with a user's w_sm).
        let mut old: toml::Table = "[train.loss]\npreset = \"scorenf\"\nw_sm = 0.5\n".parse().unwrap();
        assert!(legacy_loss(&mut old));
        assert_eq!(loss_of(&old)["preset"].as_str(), Some("rkl_sm"));
        assert_eq!(loss_of(&old)["w_sm"].as_float(), Some(0.5));
        assert_eq!(loss_of(&old)["sm_cauchy_scale"].as_float(), Some(f64::INFINITY));
        // Written between the rename and damped SM: resolved weights, no
        // damping key — plain SM, as trained.
        let text = "[train.loss]\npreset = \"scorenf\"\nw_fkl = 1.0\nw_rkl = 0.1\nw_sm = 0.1\nsm_on = \"flow\"\n";
        let mut between: toml::Table = text.parse().unwrap();
        assert!(!legacy_loss(&mut between));
        let plain = format!("{text}sm_cauchy_scale = inf\nw_fkl_is = 0.0\n");
        assert_eq!(between, plain.parse::<toml::Table>().unwrap());
        // Written between damped SM and the FKL handover: no FKL on flow
        // samples, as trained.
        let damped = format!("{text}sm_cauchy_scale = 100.0\n");
        let mut t: toml::Table = damped.parse().unwrap();
        assert!(!legacy_loss(&mut t));
        assert_eq!(t, format!("{damped}w_fkl_is = 0.0\n").parse::<toml::Table>().unwrap());
        // Written since: unchanged.
        let text = format!("{damped}w_fkl_is = 1.0\n");
        let mut new: toml::Table = text.parse().unwrap();
        assert!(!legacy_loss(&mut new));
        assert_eq!(new, text.parse::<toml::Table>().unwrap());
        for other in [
            "[train.loss]\npreset = \"rkl_sm\"\nsm_cauchy_scale = inf\nw_fkl_is = 0.0\n",
            "[train]\nsteps = 3\n",
            "[phi4]\nm2 = -4.0\n",
        ] {
            let mut t: toml::Table = other.parse().unwrap();
            assert!(!legacy_loss(&mut t), "{other}");
            assert_eq!(t, other.parse::<toml::Table>().unwrap());
        }
    }
}
