//! Where a training run's reports go: the model file (docs/FORMATS.md) as the
//! checkpoint sink and metrics store, with the metrics CSV beside it, and
//! the progress bar, and the summary printed at the end.
//!
//! A checkpoint stores the parameters and Adam moments as datasets and the
//! trainer's counters ([`TrainerState::counters`]) as the `trainer_state`
//! attribute; [`restore_state`] puts the two back together.

use crate::output::num;
use crate::progress;
use anyhow::{bail, Context, Result};
use fieldflow_io::{AttrValue, ModelState, ModelWriter};
use fieldflow_losses::{CheckpointSink, MetricsRecord, StepOutcome, TrainObserver, TrainerState};
use fieldflow_stats::complement_log_ratio;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The normalized ESS of the last metrics record below which the summary
/// warns: fewer than one effective sample in a hundred draws.
pub const POOR_ESS: f64 = 0.01;

/// Pareto k̂ above which the closing summary warns that the model's
/// importance weights are too heavy-tailed for IMH and IS (docs/THEORY.md
/// §7.10: the limit of Vehtari et al., reached at N ≥ 2000 fresh samples).
pub const HEAVY_TAIL_K: f64 = fieldflow_stats::PARETO_K_MAX;

/// The model file of a run (absent on MPI ranks other than 0).
pub struct ModelSink {
    /// The open model file.
    pub writer: Option<ModelWriter>,
    /// The model's architecture (JSON).
    pub architecture: String,
    /// The training seed (stored as the random state with the step).
    pub seed: u64,
    /// The metrics CSV.
    pub csv: PathBuf,
}

impl CheckpointSink for ModelSink {
    type Error = anyhow::Error;

    fn metrics(&mut self, record: &MetricsRecord) {
        if let Some(w) = self.writer.as_mut() {
            for (name, v) in record.columns() {
                w.push_metric(&name, v);
            }
        }
    }

    fn save(&mut self, st: &TrainerState) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        // Counters only: parameters and moments are stored as datasets, and
        // the last step's report (with NaN parts) is not needed to resume.
        let counters = serde_json::to_string(&st.counters())?;
        let extra = &mut writer.header_mut().extra;
        extra.insert("trainer_state".into(), AttrValue::Str(counters));
        extra.insert("steps_done".into(), AttrValue::U64(st.step));
        writer.save(&ModelState {
            architecture: self.architecture.clone(),
            params: st.params.clone(),
            adam_m: st.adam.m.clone(),
            adam_v: st.adam.v.clone(),
            adam_step: st.adam.step,
            rng_state: vec![self.seed, st.step],
        })?;
        write_csv(&self.csv, writer.metrics())
    }
}

/// The trainer state of a checkpoint: the stored counters with the vectors
/// of `saved`.
///
/// # Errors
/// No or unreadable `trainer_state` attribute.
pub fn restore_state(w: &mut ModelWriter, saved: ModelState, out: &Path) -> Result<TrainerState> {
    let json = match w.header_mut().extra.get("trainer_state") {
        Some(AttrValue::Str(j)) => j.clone(),
        _ => bail!("{}: no trainer state to resume from", out.display()),
    };
    let counters: TrainerState = serde_json::from_str(&json).context("stored trainer state unreadable")?;
    Ok(counters.with_vectors(saved.params, saved.adam_m, saved.adam_v, saved.adam_step))
}

/// Writes the metrics as CSV (one row per record, columns in
/// [`MetricsRecord::column_order`]).
fn write_csv(path: &Path, metrics: &BTreeMap<String, Vec<f64>>) -> Result<()> {
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort_by_key(|n| MetricsRecord::column_order(n));
    let rows = metrics.get("step").map_or(0, Vec::len);
    let mut s = names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",") + "\n";
    for i in 0..rows {
        let line: Vec<String> = names
            .iter()
            .map(|n| metrics[*n].get(i).map_or(String::new(), |v| format!("{v}")))
            .collect();
        let _ = writeln!(s, "{}", line.join(","));
    }
    let tmp = path.with_extension("csv.partial");
    std::fs::write(&tmp, s).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// The CSV written beside a model file.
pub fn csv_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".metrics.csv");
    PathBuf::from(s)
}

/// The progress bar of a run (hidden when `quiet`).
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// A bar shown from the run's start unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress { bar: None, quiet }
    }
}

impl TrainObserver for Progress {
    fn started(&mut self, first: u64, steps: u64) {
        let pb = progress::bar(steps.saturating_sub(first), "train");
        if self.quiet {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        self.bar = Some(pb);
    }

    fn step(&mut self, outcome: &StepOutcome) {
        let Some(pb) = &self.bar else { return };
        match outcome {
            StepOutcome::Accepted(r) => pb.set_message(format!("loss {} ess {}", num(r.loss, 4), num(r.batch_ess, 3))),
            StepOutcome::Rejected {
                reason,
                consecutive,
                step,
            } => pb.println(format!("step {step}: rejected ({reason}); {consecutive} in a row")),
        }
        pb.inc(1);
    }

    fn metrics(&mut self, m: &MetricsRecord) {
        if let Some(pb) = &self.bar {
            pb.set_message(format!(
                "loss {} ess {} acc {}",
                num(m.loss, 4),
                num(m.ess, 3),
                num(m.acceptance, 3)
            ));
        }
    }

    fn finished(&mut self, completed: bool) {
        if let Some(pb) = self.bar.take() {
            if completed {
                pb.finish_and_clear();
            } else {
                pb.abandon();
            }
        }
    }
}

/// What a finished training run reports.
pub struct TrainSummary {
    /// The last metrics record.
    pub last: MetricsRecord,
    /// Seconds spent in this run.
    pub seconds: f64,
    /// Rejected steps.
    pub rejections: u64,
    /// Whether the model is an SNF (its loss parts are path ML / path KL and
    /// its NLL the path NLL, an upper bound).
    pub snf: bool,
    /// When `max_minutes` ended the run early.
    pub out_of_time: Option<OutOfTime>,
    /// A mixture's weight estimate, one line ([`mixture_weights_line`]).
    pub mixture_weights: Option<String>,
}

/// Where a run that `train.max_minutes` ended early stopped.
#[derive(Debug, Clone, Copy)]
pub struct OutOfTime {
    /// The step reached.
    pub step: u64,
    /// The steps asked (`train.steps`).
    pub steps: u64,
    /// The budget.
    pub minutes: f64,
    /// The learning rate at `step`, and at the end of the schedule.
    pub lr: f64,
    /// The schedule's last learning rate.
    pub final_lr: f64,
}

/// The closing summary's line of a mixture's importance-sampling weights
/// (with K = 2 also log(π₂/π₁), [`complement_log_ratio`]: the two
/// weights' errors are one, since π₁ + π₂ = 1).
pub fn mixture_weights_line(w: &fieldflow_flows::WeightEstimate) -> String {
    let list = weights_list(&w.weights, &w.errors);
    let ratio = match w.weights[..] {
        [p1, p2] => {
            let (r, e) = complement_log_ratio(p1, p2, w.errors[0]);
            format!("; log(π₂/π₁) = {} ± {}", num(r, 4), num(e, 4))
        }
        _ => String::new(),
    };
    let mut line = format!(
        "\nmixture weights   {} (importance sampling{ratio}; ESS {})",
        list.join(", "),
        num(w.ess, 3)
    );
    if let Some((weights, errors)) = &w.mode_weights {
        let ratio = match weights[..] {
            [w0, w1] if w0 > 0.0 && w1 > 0.0 => {
                let (r, e) = complement_log_ratio(w0, w1, errors[0]);
                format!("; ln(w₁/w₀) = {} ± {}", num(r, 4), num(e, 4))
            }
            _ => String::new(),
        };
        line += &format!(
            "\nmode weights      {} (the same draws{ratio})",
            weights_list(weights, errors).join(", ")
        );
    }
    line
}

/// "w ± e" per weight, in exponent form below 10⁻³.
fn weights_list(weights: &[f64], errors: &[f64]) -> Vec<String> {
    weights
        .iter()
        .zip(errors)
        .map(|(p, e)| {
            // Minority weights of 10⁻⁷ need their exponent, not six decimals.
            if *p < 1e-3 {
                format!("{p:.4e} ± {e:.1e}")
            } else {
                format!("{} ± {}", num(*p, 6), num(*e, 6))
            }
        })
        .collect()
}

impl TrainSummary {
    /// The lines printed at the end of a run (`note` follows the file name).
    /// The closing summary; it warns when the last ESS is below
    /// [`POOR_ESS`] (e.g. the default φ⁴ budget at L = 32: 0.005).
    pub fn render(&self, out: &Path, note: &str) -> String {
        let m = &self.last;
        let parts = if self.snf {
            format!("path ML {}, path KL {}", num(m.fkl, 4), num(m.rkl, 4))
        } else {
            let fkl_is = if m.fkl_is.is_nan() {
                String::new()
            } else {
                format!(", fkl on flow samples {}", num(m.fkl_is, 4))
            };
            format!(
                "fkl {}, rkl {}, sm {}{fkl_is}",
                num(m.fkl, 4),
                num(m.rkl, 4),
                num(m.sm, 4)
            )
        };
        let nll_note = match (m.nll.is_nan(), self.snf) {
            (true, _) => " (no held-out data)",
            (false, true) => " (path NLL, an upper bound)",
            (false, false) => "",
        };
        let poor = if m.ess < POOR_ESS {
            format!(
                "\nwarning           ESS {} on fresh samples: IMH and importance sampling with this model would repeat \
                 a few states and their error bars are not reliable; train longer (train.steps or max_minutes)",
                num(m.ess, 2)
            )
        } else {
            String::new()
        };
        let heavy = if m.pareto_k > HEAVY_TAIL_K {
            format!(
                "\nwarning           the importance weights of fresh samples have a heavy tail (Pareto k̂ {} > \
                 {HEAVY_TAIL_K}, docs/THEORY.md §7.10): IMH and importance sampling with this model give unreliable \
                 estimates and error bars, whatever the ESS; train longer or differently",
                num(m.pareto_k, 2)
            )
        } else {
            String::new()
        };
        let budget = match self.out_of_time {
            Some(o) => {
                // A schedule cut before its decay leaves most of the final
                // quality untaken (E5: IMH acceptance 0.155 cut at 76 % of
                // the steps, docs/NOTES.md).
                let decay = if o.lr > 2.0 * o.final_lr {
                    format!(
                        "; the learning rate is still {} (it decays to {} by step {}: most of the final quality \
                         comes in that decay)",
                        num(o.lr, 3),
                        num(o.final_lr, 3),
                        o.steps
                    )
                } else {
                    String::new()
                };
                format!(
                    "\ntime budget       spent (max_minutes = {}): stopped at step {} of {}{decay}; --resume continues",
                    o.minutes, o.step, o.steps
                )
            }
            None => String::new(),
        };
        format!(
            "wrote {}{note}\nsteps             {}\nloss              {} ({parts})\n\
             ESS               {}\nPareto k̂          {}\nIMH acceptance    {}\nheld-out NLL      {}{nll_note}\n\
             rejected steps    {}\ntime              {:.1} s{}{budget}{poor}{heavy}",
            out.display(),
            m.step,
            num(m.loss, 5),
            num(m.ess, 4),
            num(m.pareto_k, 3),
            num(m.acceptance, 4),
            num(m.nll, 4),
            self.rejections,
            self.seconds,
            self.mixture_weights.as_deref().unwrap_or("")
        )
    }
}
