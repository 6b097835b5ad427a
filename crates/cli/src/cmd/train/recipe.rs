//! The default training recipe of a lattice φ⁴ flow trained by reverse KL
//! (issue 16; docs/THEORY.md §5.7).
//!
//! A config that names a `[phi4]` target, trains a flow with the `rkl`
//! preset (given, or the default without data) and sets neither
//! `train.lr` nor `train.lr_schedule` (nor `--lr`: those mean an
//! optimization of the user's own) gets, for every key it leaves out:
//!
//! * `train.steps` — a budget for the lattice volume V = Π Lᵢ:
//!   `RECIPE_WORK / V` steps rounded to a thousand, within
//!   [`RECIPE_MIN_STEPS`, `RECIPE_MAX_STEPS`] (4 to 14 minutes of a quiet
//!   2-core machine at batch 64 for the E1–E5 sets; a step costs ≈ ∝ V);
//!   with `train.max_minutes` instead, the steps that fill 90 % of that
//!   budget, from timed steps on both lattices (so the decay ends inside
//!   the budget; the count is a measurement and is stored with the model);
//! * `train.lr = 4e-3` and the warm-up–stable–decay schedule (T ≥ 2): a linear
//!   ramp over min(100, T/10) steps (at least one), η₀ until the last T/5 steps, cosine
//!   decay to 1e-5 at T (most of the final quality comes in the decay);
//! * `train.curriculum` — the first T/3 steps on a lattice of half the
//!   extent (rounded up to even, at least 4) at the same couplings, when
//!   the conditioners are convolutional (their parameters do not depend on
//!   L) and the half lattice is smaller;
//! * `flow.dtype = "f32"` for convolutional conditioners (≈ 3× the steps
//!   per second of f64; the couplings, losses and optimizer stay f64);
//! * `flow.free_field = true` for convolutional conditioners: the learned
//!   free-field layer in front of the couplings (docs/THEORY.md §4.12), which
//!   at the default budget raised the IMH acceptance at E3 / E4 / E5 from
//!   0.46 / 0.36 / 0.28 to 0.77 / 0.70 / 0.63 (docs/RESULTS.md "The
//!   free-field layer").
//!
//! Measured on E1–E5 (data/experiments/phi4_recipe/, docs/RESULTS.md "φ⁴
//! flows: speed and quality per CPU-minute"). Every key given by the user
//! wins, and the resolved values are written into the stored config, so a
//! model file says exactly how it was trained.

use crate::model::{flow_trainer, phi4_on_lattice, ModelConfig};
use crate::target::RunTarget;
use anyhow::Result;
use fieldflow_core::Par;
use fieldflow_flows::{ConditionerKind, Dtype, FlowConfig};
use fieldflow_losses::{LossConfig, LossPreset, TrainConfig, TrainData};
use std::time::{Duration, Instant};

/// Steps × sites of the default budget.
pub const RECIPE_WORK: f64 = 8.0e6;
/// Fewest steps of the default budget.
pub const RECIPE_MIN_STEPS: u64 = 4000;
/// Most steps of the default budget.
pub const RECIPE_MAX_STEPS: u64 = 50_000;
/// Peak learning rate.
pub const RECIPE_LR: f64 = 4e-3;
/// Final learning rate of the decay.
pub const RECIPE_MIN_LR: f64 = 1e-5;

/// The default number of steps on a lattice of `volume` sites.
pub fn budget_steps(volume: usize) -> u64 {
    let steps = (RECIPE_WORK / volume.max(1) as f64 / 1000.0).round() as u64 * 1000;
    steps.clamp(RECIPE_MIN_STEPS, RECIPE_MAX_STEPS)
}

/// The curriculum's lattice for a target lattice of extents `shape`: half
/// of every extent, rounded up to even, at least 4; `None` when that is
/// not smaller.
pub fn half_lattice(shape: &[usize]) -> Option<Vec<usize>> {
    let half: Vec<usize> = shape.iter().map(|&l| (l / 2 + (l / 2) % 2).max(4).min(l)).collect();
    (half.as_slice() != shape).then_some(half)
}

/// Fills the recipe's keys into `t` (module docs) when it applies:
/// a `[phi4]` target, a plain flow (no `[diffusion]` or `[lrds]`, no SNF
/// stages, no mixture), the loss preset `rkl` (`default_preset`: the loss used
/// when `train.loss` is absent) and no `train.lr` or `train.lr_schedule`.
///
/// # Errors
/// An invalid target or `[flow]` section.
pub fn apply(t: &mut toml::Table, default_preset: &str) -> Result<()> {
    if !t.contains_key("phi4") || t.contains_key("diffusion") || t.contains_key("lrds") {
        return Ok(());
    }
    let flow = t.get("flow").and_then(|f| f.as_table());
    if flow.is_some_and(|f| f.contains_key("stages") || f.contains_key("mixture")) {
        return Ok(());
    }
    let train = t.get("train").and_then(|v| v.as_table());
    // A learning rate or schedule of the user's own: their optimization.
    if train.is_some_and(|tr| tr.contains_key("lr") || tr.contains_key("lr_schedule")) {
        return Ok(());
    }
    let rkl = match train.and_then(|tr| tr.get("loss")) {
        None => default_preset == "rkl",
        Some(loss) => loss
            .as_table()
            .is_some_and(|l| l.len() == 1 && l.get("preset").and_then(|p| p.as_str()) == Some("rkl")),
    };
    if !rkl {
        return Ok(());
    }
    let target = RunTarget::from_table(t, "config")?;
    let shape = target.shape();
    let ModelConfig::Flow(cfg) = ModelConfig::from_sections(t.get("flow"), None, None, &target, 0)? else {
        return Ok(());
    };
    let conv = cfg.conditioner.kind == ConditionerKind::Conv;

    let train = t
        .entry("train")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("checked above: [train] is a table or absent");
    let half = if conv && !train.contains_key("curriculum") {
        half_lattice(&shape)
    } else {
        None
    };
    let steps = match (train.get("steps").and_then(|s| s.as_integer()), minutes_of(train)) {
        (Some(s), _) => s.max(1) as u64,
        (None, Some(minutes)) => {
            let mut probe_cfg = cfg.clone();
            if conv && t.get("flow").and_then(|f| f.get("dtype")).is_none() {
                probe_cfg.dtype = Dtype::F32;
            }
            let train = t.get("train").and_then(|v| v.as_table()).expect("inserted above");
            steps_for_minutes(t, train, &probe_cfg, &shape, half.as_deref(), minutes)?
        }
        (None, None) => budget_steps(shape.iter().product()),
    };
    let train = t
        .get_mut("train")
        .and_then(|v| v.as_table_mut())
        .expect("inserted above");
    train.entry("steps").or_insert((steps as i64).into());
    train.entry("lr").or_insert(RECIPE_LR.into());
    if steps >= 2 {
        train.entry("lr_schedule").or_insert_with(|| {
            let mut s = toml::Table::new();
            s.insert("kind".into(), "warmup_stable_decay".into());
            s.insert("warmup_steps".into(), ((steps / 10).clamp(1, 100) as i64).into());
            s.insert("decay_steps".into(), ((steps / 5).max(1) as i64).into());
            s.insert("total_steps".into(), (steps as i64).into());
            s.insert("min_lr".into(), RECIPE_MIN_LR.into());
            toml::Value::Table(s)
        });
    }
    if let Some(half) = half.filter(|_| steps / 3 >= 1) {
        let mut stage = toml::Table::new();
        stage.insert("lattice".into(), toml::Value::try_from(&half)?);
        stage.insert("steps".into(), ((steps / 3) as i64).into());
        train.insert("curriculum".into(), toml::Value::Array(vec![toml::Value::Table(stage)]));
    }
    if conv {
        let flow = t
            .entry("flow")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut();
        if let Some(flow) = flow {
            flow.entry("dtype").or_insert("f32".into());
            flow.entry("free_field").or_insert(true.into());
        }
    }
    Ok(())
}

/// `train.max_minutes`, if given.
fn minutes_of(train: &toml::Table) -> Option<f64> {
    train
        .get("max_minutes")
        .and_then(|m| m.as_float().or(m.as_integer().map(|i| i as f64)))
}

/// Share of the time budget the planned steps may fill (the rest is the
/// margin for the final checkpoint and the probe's error).
const BUDGET_FILL: f64 = 0.9;

/// The steps that fill `minutes` of training (`train.max_minutes` without
/// `train.steps`): RKL steps of the flow `cfg` are timed on the target's
/// lattice (with one metrics record's share) and on the curriculum's
/// `half` lattice, and the recipe's split (a third of the steps on `half`)
/// is solved for the step count. The count is a measurement of this
/// machine now, not a function of the config; it is written into the
/// stored config, so a resumed run goes on exactly.
fn steps_for_minutes(
    t: &toml::Table,
    train: &toml::Table,
    cfg: &FlowConfig,
    shape: &[usize],
    half: Option<&[usize]>,
    minutes: f64,
) -> Result<u64> {
    if !(minutes.is_finite() && minutes > 0.0) {
        return Ok(1); // the trainer's check names the bad value
    }
    let batch = train
        .get("batch_size")
        .and_then(|b| b.as_integer())
        .unwrap_or(64)
        .max(1) as usize;
    let every = train
        .get("metrics_every")
        .and_then(|m| m.as_integer())
        .unwrap_or(100)
        .max(1) as f64;
    let full = seconds_per_step(t, cfg, shape, batch, every)?;
    let per_step = match half {
        Some(h) => (seconds_per_step(t, cfg, h, batch, f64::INFINITY)? + 2.0 * full) / 3.0,
        None => full,
    };
    let steps = (BUDGET_FILL * 60.0 * minutes / per_step).floor();
    Ok(steps.max(1.0) as u64)
}

/// Wall-clock seconds of one RKL training step of `cfg` on the `[phi4]`
/// target of `t` at lattice `shape` (after three warm-up steps, timed over
/// at least half a second), plus a metrics record's cost spread over
/// `every` steps.
fn seconds_per_step(t: &toml::Table, cfg: &FlowConfig, shape: &[usize], batch: usize, every: f64) -> Result<f64> {
    let target = phi4_on_lattice(t, shape)?;
    let mut c = cfg.clone();
    c.shape = shape.to_vec();
    let tc = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), batch, u64::MAX, RECIPE_LR);
    let mut tr = flow_trainer(&c, &tc, 0, target.as_target(), TrainData::default(), Par::default())?;
    let probe = || anyhow::anyhow!("train.max_minutes: timing the training steps failed");
    for _ in 0..3 {
        tr.step().map_err(|_| probe())?;
    }
    let start = Instant::now();
    let mut n = 0u32;
    while n < 5 || (start.elapsed() < Duration::from_millis(500) && n < 1000) {
        tr.step().map_err(|_| probe())?;
        n += 1;
    }
    let step = start.elapsed().as_secs_f64() / f64::from(n);
    let metrics = if every.is_finite() {
        let start = Instant::now();
        tr.metrics();
        start.elapsed().as_secs_f64() / every
    } else {
        0.0
    };
    Ok(step + metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_half_lattice() {
        assert_eq!(budget_steps(36), RECIPE_MAX_STEPS);
        assert_eq!(budget_steps(14 * 14), 41_000);
        assert_eq!(budget_steps(32 * 32), 8000);
        assert_eq!(budget_steps(64 * 64), RECIPE_MIN_STEPS);
        assert_eq!(half_lattice(&[6, 6]), Some(vec![4, 4]));
        assert_eq!(half_lattice(&[8, 8]), Some(vec![4, 4]));
        assert_eq!(half_lattice(&[10, 10]), Some(vec![6, 6]));
        assert_eq!(half_lattice(&[14, 14]), Some(vec![8, 8]));
        assert_eq!(half_lattice(&[32, 16]), Some(vec![16, 8]));
        assert_eq!(half_lattice(&[4, 4]), None);
        assert_eq!(half_lattice(&[12, 4]), Some(vec![6, 4]));
    }
}
