//! `cargo xtask reproduce [mog4|mog8|phi4|snf|all] [--quick] [--seeds N] [--out DIR] …`:
//! the seed papers' experiments, driven through the release `fieldflow`
//! binary and the configs under `data/configs/reproduce/`.
//!
//! * `mog4`, `mog8`: FKL vs RKL vs SM vs ScoreNF from a small exact-sample
//!   set (`mogX.toml`), several seeds; last metrics record of each run (ESS,
//!   IMH acceptance, held-out NLL, mode TV, collapsed modes, covering) and an
//!   IMH chain's mode weights vs the exact ones; then annealed vs plain RKL
//!   (`mogX_annealed.toml` against the plain-RKL runs).
//! * `phi4`: HMC ensembles of the tutorial set and E1–E5
//!   (`data/configs/{tutorial,e1..e5}.toml`); the four losses trained on
//!   `n_train` configurations of each (`phi4.toml`), IMH-sampled and compared
//!   with HMC (`fieldflow compare`: ⟨|M|⟩, χ₂, U₄, τ_int ratios, cost per
//!   independent sample); a training-set size sweep (ScoreNF vs FKL) on the
//!   tutorial set.
//! * `snf`: the double-well example of crates/snf (RealNVP vs SNF).
//!
//! Every stage's output is kept (`ensembles/`, `models/`, `samples/`,
//! `configs/`, `logs/`) and reused by a later invocation when its resolved
//! config and inputs are unchanged (`--force` reruns everything). Tables
//! (Markdown and CSV), SVG figures (fieldflow-plot, from the same records as
//! the tables) and `summary.md` go to the results folder. Errors over seeds
//! are standard errors of the mean (sample std / √n).

use crate::{run_cmd, workspace_root};
use anyhow::{bail, Context, Result};
use fieldflow_plot::{Figure, Series};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const HELP: &str = "reproduce [mog4|mog8|phi4|snf|all] [--quick] [--seeds N] [--out DIR] [--steps N]
                   [--mix-steps N] [--phi4-steps N] [--snf-steps N] [--sets tutorial,e1,..]
                   [--losses fkl,scorenf] [--sweep 10,100,..] [--n-cfg N] [--samples N] [--force]
                   the papers' experiments into results/reproduce/ (see docs/RESULTS.md)";

const LOSSES: [&str; 4] = ["fkl", "rkl", "sm", "scorenf"];
const PHI4_SETS: [&str; 6] = ["tutorial", "e1", "e2", "e3", "e4", "e5"];

/// Sizes of one invocation.
#[derive(Debug, Clone)]
struct Scale {
    quick: bool,
    seeds: u64,
    /// Training steps of the mixtures (None: the config's).
    mix_steps: Option<u64>,
    /// Training steps on φ⁴ (None: the config's).
    phi4_steps: Option<u64>,
    /// HMC: configurations per chain (None: the config's) and thermalization.
    n_cfg: Option<u64>,
    n_therm: Option<u64>,
    /// IMH samples per chain and chains.
    samples: u64,
    chains: u64,
    /// φ⁴ sets that get the loss comparison.
    sets: Vec<String>,
    /// Training-set sizes of the sweep.
    sweep: Vec<u64>,
    /// SNF training steps.
    snf_steps: u64,
    /// Losses of the loss comparison on E1–E5 (the tutorial set gets all four).
    losses: Vec<String>,
}

impl Scale {
    fn new(quick: bool) -> Self {
        if quick {
            Scale {
                quick,
                seeds: 1,
                mix_steps: Some(300),
                phi4_steps: Some(60),
                n_cfg: Some(1000),
                n_therm: Some(200),
                samples: 2000,
                chains: 2,
                sets: vec!["tutorial".into(), "e1".into()],
                sweep: vec![10, 100, 1000],
                snf_steps: 200,
                losses: LOSSES.iter().map(|s| s.to_string()).collect(),
            }
        } else {
            Scale {
                quick,
                seeds: 3,
                mix_steps: None,
                phi4_steps: None,
                n_cfg: None,
                n_therm: None,
                samples: 10_000,
                chains: 4,
                sets: PHI4_SETS.iter().map(|s| s.to_string()).collect(),
                sweep: vec![10, 100, 1000, 10_000],
                snf_steps: 1500,
                losses: LOSSES.iter().map(|s| s.to_string()).collect(),
            }
        }
    }
}

struct Opts {
    modes: Vec<&'static str>,
    scale: Scale,
    out: PathBuf,
    force: bool,
}

fn parse_list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>> {
    v.split(',')
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{flag} {v}: cannot parse `{s}`"))
        })
        .collect()
}

fn parse_args(rest: &[String]) -> Result<Opts> {
    let quick = rest.iter().any(|a| a == "--quick");
    let mut scale = Scale::new(quick);
    let mut modes = vec![];
    let mut out = None;
    let mut force = false;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value =
            |flag: &str| -> Result<String> { it.next().cloned().with_context(|| format!("{flag} needs a value")) };
        let num = |flag: &str, v: String| -> Result<u64> {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("{flag} {v}: expected a positive integer"))
        };
        match a.as_str() {
            "--quick" => {}
            "--force" => force = true,
            "--seeds" => scale.seeds = num("--seeds", value("--seeds")?)?,
            "--steps" => {
                let s = num("--steps", value("--steps")?)?;
                scale.mix_steps = Some(s);
                scale.phi4_steps = Some(s);
            }
            "--mix-steps" => scale.mix_steps = Some(num("--mix-steps", value("--mix-steps")?)?),
            "--phi4-steps" => scale.phi4_steps = Some(num("--phi4-steps", value("--phi4-steps")?)?),
            "--snf-steps" => scale.snf_steps = num("--snf-steps", value("--snf-steps")?)?,
            "--losses" => {
                scale.losses = parse_list::<String>("--losses", &value("--losses")?)?;
                if let Some(bad) = scale.losses.iter().find(|s| !LOSSES.contains(&s.as_str())) {
                    bail!("--losses: unknown loss `{bad}` (expected some of {})", LOSSES.join(","));
                }
            }
            "--n-cfg" => scale.n_cfg = Some(num("--n-cfg", value("--n-cfg")?)?),
            "--samples" => scale.samples = num("--samples", value("--samples")?)?,
            "--sets" => {
                scale.sets = parse_list::<String>("--sets", &value("--sets")?)?;
                if let Some(bad) = scale.sets.iter().find(|s| !PHI4_SETS.contains(&s.as_str())) {
                    bail!("--sets: unknown set `{bad}` (expected some of {})", PHI4_SETS.join(","));
                }
            }
            "--sweep" => scale.sweep = parse_list::<u64>("--sweep", &value("--sweep")?)?,
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "mog4" | "mog8" | "phi4" | "snf" => modes.push(match a.as_str() {
                "mog4" => "mog4",
                "mog8" => "mog8",
                "phi4" => "phi4",
                _ => "snf",
            }),
            "all" => modes.extend(["mog4", "mog8", "phi4", "snf"]),
            other => bail!("reproduce: unknown argument `{other}`; usage: cargo xtask {HELP}"),
        }
    }
    if modes.is_empty() {
        modes.extend(["mog4", "mog8", "phi4", "snf"]);
    }
    modes.dedup();
    let out = out.unwrap_or_else(|| {
        workspace_root().join(if quick {
            "results/reproduce-quick"
        } else {
            "results/reproduce"
        })
    });
    Ok(Opts {
        modes,
        scale,
        out,
        force,
    })
}

/// Runs `cargo xtask reproduce …`.
pub fn run(rest: &[String]) -> Result<()> {
    let opts = parse_args(rest)?;
    run_cmd("cargo", &["build", "--release", "--package", "fieldflow"])?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { workspace_root().join(p) })
        .unwrap_or_else(|| workspace_root().join("target"));
    let exe = target_dir.join("release/fieldflow");
    if !exe.exists() {
        bail!("{}: not found after the build", exe.display());
    }
    for sub in ["configs", "ensembles", "models", "samples", "logs"] {
        let d = opts.out.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("{}: cannot create folder", d.display()))?;
    }
    let mut r = Runner {
        exe,
        out: opts.out.clone(),
        force: opts.force,
        scale: opts.scale.clone(),
        sections: vec![],
        timings: vec![],
    };
    for mode in &opts.modes {
        let t0 = Instant::now();
        match *mode {
            "mog4" | "mog8" => r.mixture(mode)?,
            "phi4" => r.phi4()?,
            _ => r.snf()?,
        }
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("reproduce: {mode} done in {secs:.0} s");
        r.timings.push((mode.to_string(), secs));
    }
    let summary = r.summary(&opts.modes);
    let path = opts.out.join("summary.md");
    std::fs::write(&path, summary).with_context(|| format!("{}: cannot write", path.display()))?;
    eprintln!(
        "reproduce: tables in {}, overview {}",
        opts.out.display(),
        path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Running fieldflow

struct Runner {
    exe: PathBuf,
    out: PathBuf,
    force: bool,
    scale: Scale,
    /// (title, markdown) of every table, in order.
    sections: Vec<(String, String)>,
    timings: Vec<(String, f64)>,
}

/// One run's numbers (one seed of one variant).
#[derive(Debug, Clone, Default)]
struct Record {
    variant: String,
    seed: u64,
    values: BTreeMap<String, f64>,
}

impl Runner {
    /// Runs `fieldflow args…`, logging its output to logs/`log`.log; returns stdout.
    fn fieldflow(&self, args: &[String], log: &str) -> Result<String> {
        let t0 = Instant::now();
        let out = Command::new(&self.exe)
            .args(args)
            .current_dir(workspace_root())
            .output()
            .with_context(|| format!("could not start {}", self.exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let log_path = self.out.join("logs").join(format!("{log}.log"));
        let _ = std::fs::write(
            &log_path,
            format!("$ fieldflow {}\n{stdout}\n--- stderr ---\n{stderr}", args.join(" ")),
        );
        if !out.status.success() {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            bail!("fieldflow {} failed ({}): {last}", args[0], log_path.display());
        }
        let verb = args.first().map(String::as_str).unwrap_or("");
        if verb != "analyze" && verb != "compare" {
            eprintln!("reproduce: {verb:<8} {log:<40} {:>7.1} s", t0.elapsed().as_secs_f64());
        }
        Ok(stdout)
    }

    /// Is `output` up to date with `key` (stored beside it as configs/`name`.key)?
    fn fresh(&self, name: &str, output: &Path, key: &str) -> bool {
        let stamp = self.out.join("configs").join(format!("{name}.key"));
        !self.force && output.exists() && std::fs::read_to_string(stamp).is_ok_and(|k| k == key)
    }

    fn stamp(&self, name: &str, key: &str) -> Result<()> {
        let stamp = self.out.join("configs").join(format!("{name}.key"));
        std::fs::write(&stamp, key).with_context(|| format!("{}: cannot write", stamp.display()))
    }

    /// Trains (unless up to date) the config `text` as models/`name`.h5 with
    /// `extra` flags; returns the last metrics record and whether it ran.
    fn train(
        &self,
        name: &str,
        text: &str,
        extra: &[String],
        upstream: &str,
    ) -> Result<(BTreeMap<String, f64>, String)> {
        let cfg = self.out.join("configs").join(format!("{name}.toml"));
        std::fs::write(&cfg, text).with_context(|| format!("{}: cannot write", cfg.display()))?;
        let model = self.out.join("models").join(format!("{name}.h5"));
        let csv = PathBuf::from(format!("{}.metrics.csv", model.display()));
        let key = format!("{text}\n{}\n{upstream}", extra.join(" "));
        if !self.fresh(name, &csv, &key) || !model.exists() {
            let mut args = vec![
                "train".to_string(),
                "--config".into(),
                cfg.display().to_string(),
                "--out".into(),
                model.display().to_string(),
                "--force".into(),
                "--quiet".into(),
            ];
            args.extend(extra.iter().cloned());
            let t0 = Instant::now();
            self.fieldflow(&args, &format!("train_{name}"))?;
            self.stamp(name, &key)?;
            std::fs::write(
                self.out.join("logs").join(format!("train_{name}.seconds")),
                format!("{}", t0.elapsed().as_secs_f64()),
            )?;
        }
        let mut last = last_csv_row(&csv)?;
        if let Some(s) = std::fs::read_to_string(self.out.join("logs").join(format!("train_{name}.seconds")))
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
        {
            last.insert("train_seconds".into(), s);
        }
        // The model's identity for downstream stages: its config and metrics.
        let identity = std::fs::read_to_string(&csv).unwrap_or_default();
        Ok((last, format!("{key}\n{identity}")))
    }

    /// IMH-samples models/`name`.h5 into samples/`name`.h5 (unless up to date).
    fn sample(&self, name: &str, seed: u64, model_identity: &str) -> Result<(PathBuf, f64)> {
        let model = self.out.join("models").join(format!("{name}.h5"));
        let out = self.out.join("samples").join(format!("{name}.h5"));
        let args: Vec<String> = [
            "sample",
            "--model",
            &model.display().to_string(),
            "--n",
            &self.scale.samples.to_string(),
            "--chains",
            &self.scale.chains.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            &out.display().to_string(),
            "--force",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let key = format!("{}\n{model_identity}", args.join(" "));
        let stamp_name = format!("sample_{name}");
        if !self.fresh(&stamp_name, &out, &key) {
            self.fieldflow(&args, &stamp_name)?;
            self.stamp(&stamp_name, &key)?;
        }
        // The realized acceptance, from the run's printed summary.
        let log = std::fs::read_to_string(self.out.join("logs").join(format!("{stamp_name}.log"))).unwrap_or_default();
        let acc = log
            .lines()
            .find_map(|l| l.strip_prefix("acceptance"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        Ok((out, acc))
    }

    fn analyze(&self, file: &Path) -> Result<Json> {
        let s = self.fieldflow(
            &["analyze".into(), file.display().to_string(), "--json".into()],
            &format!("analyze_{}", stem(file)),
        )?;
        Json::parse(&s).with_context(|| format!("analyze {}: unreadable JSON", file.display()))
    }

    fn compare(&self, a: &Path, b: &Path) -> Result<Json> {
        let s = self.fieldflow(
            &[
                "compare".into(),
                a.display().to_string(),
                b.display().to_string(),
                "--json".into(),
            ],
            &format!("compare_{}", stem(b)),
        )?;
        Json::parse(&s).with_context(|| format!("compare {}: unreadable JSON", b.display()))
    }

    /// Writes `name`.md and `name`.csv (aggregated) and keeps the section.
    fn table(&mut self, name: &str, title: &str, note: &str, t: &Table) -> Result<()> {
        let md = format!("{}\n{note}\n", t.markdown());
        std::fs::write(self.out.join(format!("{name}.md")), format!("## {title}\n\n{md}"))?;
        std::fs::write(self.out.join(format!("{name}.csv")), t.csv())?;
        self.sections.push((title.to_string(), md));
        Ok(())
    }

    /// Saves `fig` as `name`.svg in the results folder and links it (with
    /// `alt` text) at the end of the last section. A figure without data is
    /// skipped; a figure that cannot be written only warns (the tables stand).
    fn figure(&mut self, name: &str, alt: &str, mut fig: Figure) {
        if fig.series.iter().all(|s| s.data.is_empty()) {
            eprintln!("reproduce: figure {name}.svg skipped (no data)");
            return;
        }
        legend_room(&mut fig);
        let file = format!("{name}.svg");
        if let Err(e) = fig.save(&self.out.join(&file)) {
            eprintln!("reproduce: warning: {e:#}");
            return;
        }
        if let Some((_, body)) = self.sections.last_mut() {
            let _ = writeln!(body, "\n![{alt}]({file})");
        }
    }

    fn steps_override(text: &str, steps: Option<u64>) -> String {
        let Some(s) = steps else { return text.to_string() };
        let mut t = set_key(text, "train", "steps", &s.to_string());
        if has_section(&t, "train.lr_schedule") {
            t = set_key(&t, "train.lr_schedule", "total_steps", &s.to_string());
        }
        if has_section(&t, "train.annealing") {
            t = set_key(&t, "train.annealing", "steps", &(s / 2).max(1).to_string());
        }
        if s < 1000 {
            t = set_key(&t, "", "checkpoint_every", &s.to_string());
            t = set_key(&t, "train", "metrics_every", &(s / 2).max(1).to_string());
        }
        t
    }

    // -----------------------------------------------------------------------
    // Mixtures

    fn mixture(&mut self, mix: &str) -> Result<()> {
        let cfg_dir = workspace_root().join("data/configs/reproduce");
        let base = read(&cfg_dir.join(format!("{mix}.toml")))?;
        let base = Self::steps_override(&base, self.scale.mix_steps);
        let annealed = read(&cfg_dir.join(format!("{mix}_annealed.toml")))?;
        let annealed = Self::steps_override(&annealed, self.scale.mix_steps);
        let mut records = vec![];
        let variants: Vec<(&str, &str)> = LOSSES
            .iter()
            .map(|l| (*l, *l))
            .chain([("rkl+annealing", "annealed")])
            .collect();
        for seed in 1..=self.scale.seeds {
            for (variant, tag) in &variants {
                let name = format!("{mix}_{tag}_s{seed}");
                let (text, extra) = if *tag == "annealed" {
                    (annealed.clone(), vec!["--seed".to_string(), seed.to_string()])
                } else {
                    let t = set_key(&base, "train", "loss", &format!("{{ preset = \"{tag}\" }}"));
                    (t, vec!["--seed".to_string(), seed.to_string()])
                };
                let (mut values, identity) = self.train(&name, &text, &extra, "")?;
                let (samples, acc) = self.sample(&name, seed, &identity)?;
                values.insert("imh_acceptance".into(), acc);
                let a = self.analyze(&samples)?;
                let rows = &a.idx(0).get("rows");
                let mut tv = 0.0;
                let mut k = 0;
                while let Some(row) = rows
                    .arr()
                    .iter()
                    .find(|r| r.get("observable").str() == format!("mode_{k}"))
                {
                    let (w, e, exact) = (row.get("value").num(), row.get("error").num(), row.get("exact").num());
                    values.insert(format!("imh_mode_{k}"), w);
                    values.insert(format!("imh_mode_{k}_err"), e);
                    values.insert(format!("true_mode_{k}"), exact);
                    tv += 0.5 * (w - exact).abs();
                    k += 1;
                }
                values.insert("imh_tv".into(), tv);
                values.insert("n_modes".into(), k as f64);
                records.push(Record {
                    variant: variant.to_string(),
                    seed,
                    values,
                });
            }
        }
        write_raw(&self.out.join(format!("runs_{mix}.csv")), &records)?;
        let n_modes = records
            .first()
            .and_then(|r| r.values.get("n_modes"))
            .copied()
            .unwrap_or(0.0) as usize;
        let truth: Vec<String> = (0..n_modes)
            .map(|k| {
                format!(
                    "{:.3}",
                    records[0]
                        .values
                        .get(&format!("true_mode_{k}"))
                        .copied()
                        .unwrap_or(f64::NAN)
                )
            })
            .collect();
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
        let losses_only: Vec<Record> = records
            .iter()
            .filter(|r| r.variant != "rkl+annealing")
            .cloned()
            .collect();
        let t = Table::aggregate("loss", &losses_only, &cols);
        let title = format!("{}: FKL vs RKL vs SM vs ScoreNF", mix.to_uppercase());
        let note = self.mix_note(mix, &base);
        self.table(&format!("loss_{mix}"), &title, &note, &t)?;
        // IMH mode weights vs exact.
        let mode_cols: Vec<(String, String)> = (0..n_modes)
            .map(|k| (format!("w{k}"), format!("imh_mode_{k}")))
            .collect();
        let mode_cols_ref: Vec<(&str, &str)> = mode_cols.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let mut t = Table::aggregate("loss", &records, &mode_cols_ref);
        t.rows.push(
            std::iter::once("exact".to_string())
                .chain(truth.iter().cloned())
                .collect(),
        );
        self.table(
            &format!("modes_{mix}"),
            &format!("{}: IMH mode weights (nearest-mean assignment)", mix.to_uppercase()),
            &format!(
                "{} IMH chains × {} samples per run; mean ± s.e. over seeds of the chains' mode fractions.",
                self.scale.chains, self.scale.samples
            ),
            &t,
        )?;
        let mut fig = Figure::new(
            &format!("{}: IMH mode weights", mix.to_uppercase()),
            "mode index",
            "IMH mode weight (mean ± s.e. over seeds)",
        );
        let variants = variants_of(&records);
        for (i, v) in variants.iter().enumerate() {
            // Side by side within a mode so that the error bars stay apart.
            let dx = 0.08 * (i as f64 - (variants.len() - 1) as f64 / 2.0);
            fig.series.push(Series::points(
                *v,
                (0..n_modes).filter_map(|k| {
                    let (m, e) = stat(&records, v, &format!("imh_mode_{k}"))?;
                    Some((k as f64 + dx, m, e))
                }),
            ));
        }
        let exact = (0..n_modes).filter_map(|k| Some((k as f64, stat(&records, "", &format!("true_mode_{k}"))?.0)));
        fig.series.push(Series::line("exact", exact));
        self.figure(&format!("modes_{mix}"), &format!("{mix} mode weights"), fig);
        // Annealed vs plain RKL.
        cols.retain(|(_, k)| *k != "nll");
        let ann: Vec<Record> = records
            .iter()
            .filter(|r| r.variant == "rkl" || r.variant == "rkl+annealing")
            .cloned()
            .collect();
        let t = Table::aggregate("variant", &ann, &cols);
        self.table(
            &format!("anneal_{mix}"),
            &format!("{}: plain vs annealed RKL (mode collapse)", mix.to_uppercase()),
            &format!(
                "Annealing: {}; otherwise identical to the plain-RKL runs.",
                section_text(&annealed, "train.annealing").replace('\n', " ")
            ),
            &t,
        )?;
        Ok(())
    }

    fn mix_note(&self, mix: &str, cfg: &str) -> String {
        format!(
            "{} seed(s) (mean ± s.e.); config data/configs/reproduce/{mix}.toml: {}, {} exact training samples, \
             {} held-out; metrics = last record of the metrics CSV (fresh flow batch of train.eval_batch samples); \
             'mode TV (IMH)' from {} IMH chains × {} samples.",
            self.scale.seeds,
            steps_desc(cfg),
            key_value(cfg, "data", "n_train").unwrap_or_default(),
            key_value(cfg, "data", "n_heldout").unwrap_or_default(),
            self.scale.chains,
            self.scale.samples
        )
    }

    // -----------------------------------------------------------------------
    // φ⁴

    /// Generates (unless up to date) ensembles/`set`.h5; returns its path and identity.
    fn ensemble(&self, set: &str) -> Result<(PathBuf, String)> {
        let cfg = workspace_root().join(format!("data/configs/{set}.toml"));
        let out = self.out.join("ensembles").join(format!("{set}.h5"));
        let mut args = vec![
            "generate".to_string(),
            "--config".into(),
            cfg.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--force".into(),
            "--quiet".into(),
        ];
        if let Some(n) = self.scale.n_cfg {
            args.extend(["--n-cfg".into(), n.to_string()]);
        }
        if let Some(n) = self.scale.n_therm {
            args.extend(["--n-therm".into(), n.to_string()]);
        }
        let key = format!("{}\n{}", args.join(" "), read(&cfg)?);
        let name = format!("ensemble_{set}");
        if !self.fresh(&name, &out, &key) {
            self.fieldflow(&args, &name)?;
            self.stamp(&name, &key)?;
        }
        Ok((out, key))
    }

    fn phi4(&mut self) -> Result<()> {
        let base = read(&workspace_root().join("data/configs/reproduce/phi4.toml"))?;
        let base = Self::steps_override(&base, self.scale.phi4_steps);
        let mut sets: Vec<String> = self.scale.sets.clone();
        if !sets.iter().any(|s| s == "tutorial") {
            sets.insert(0, "tutorial".into());
        }
        let mut hmc_rows: BTreeMap<String, Json> = BTreeMap::new();
        let mut loss_records: Vec<(String, Vec<Record>)> = vec![];
        for set in &sets {
            let (ens, ens_id) = self.ensemble(set)?;
            let a = self.analyze(&ens)?;
            hmc_rows.insert(set.clone(), a.idx(0).clone());
            if !self.scale.sets.contains(set) {
                continue;
            }
            let mut records = vec![];
            let losses: Vec<&str> = if set == "tutorial" {
                LOSSES.to_vec()
            } else {
                self.scale.losses.iter().map(String::as_str).collect()
            };
            for seed in 1..=self.scale.seeds {
                for &loss in &losses {
                    let name = format!("phi4_{set}_{loss}_s{seed}");
                    let text = set_key(&base, "train", "loss", &format!("{{ preset = \"{loss}\" }}"));
                    let extra = vec![
                        "--data".to_string(),
                        ens.display().to_string(),
                        "--seed".into(),
                        seed.to_string(),
                    ];
                    let (mut values, identity) = self.train(&name, &text, &extra, &ens_id)?;
                    let (samples, acc) = self.sample(&name, seed, &identity)?;
                    values.insert("imh_acceptance".into(), acc);
                    let cmp = self.compare(&ens, &samples)?;
                    for obs in ["abs_M", "chi2", "U4"] {
                        let row = cmp
                            .arr()
                            .iter()
                            .find(|r| r.get("observable").str() == obs)
                            .cloned()
                            .unwrap_or(Json::Null);
                        let (hv, he, ht) = (
                            row.get("a").idx(0).num(),
                            row.get("a").idx(1).num(),
                            row.get("a").idx(2).num(),
                        );
                        let (iv, ie, it) = (
                            row.get("b").idx(0).num(),
                            row.get("b").idx(1).num(),
                            row.get("b").idx(2).num(),
                        );
                        values.insert(format!("hmc_{obs}"), hv);
                        values.insert(format!("hmc_{obs}_err"), he);
                        values.insert(format!("hmc_tau_{obs}"), ht);
                        values.insert(format!("imh_{obs}"), iv);
                        values.insert(format!("imh_{obs}_err"), ie);
                        values.insert(format!("imh_tau_{obs}"), it);
                        values.insert(format!("dev_{obs}"), row.get("deviation_sigma").num());
                        values.insert(format!("tau_ratio_{obs}"), row.get("tau_ratio").num());
                        values.insert(format!("cost_hmc_{obs}"), row.get("cost").idx(0).num());
                        values.insert(format!("cost_imh_{obs}"), row.get("cost").idx(1).num());
                    }
                    let imh = self.analyze(&samples)?;
                    values.insert("imh_seconds".into(), imh.idx(0).get("seconds").num());
                    records.push(Record {
                        variant: loss.to_string(),
                        seed,
                        values,
                    });
                }
            }
            loss_records.push((set.clone(), records));
        }
        let all: Vec<Record> = loss_records
            .iter()
            .flat_map(|(set, rs)| {
                rs.iter().map(move |r| Record {
                    variant: format!("{set}/{}", r.variant),
                    ..r.clone()
                })
            })
            .collect();
        write_raw(&self.out.join("runs_phi4.csv"), &all)?;
        // Loss comparison, one table per set.
        let cols = [
            ("ESS", "ess"),
            ("IMH acc. (est.)", "acceptance"),
            ("IMH acc.", "imh_acceptance"),
            ("held-out NLL", "nll"),
            ("RKL est.", "rkl_estimate"),
            ("IMH ⟨|M|⟩", "imh_abs_M"),
            ("Δ/σ", "dev_abs_M"),
            ("IMH χ₂", "imh_chi2"),
            ("IMH U₄", "imh_U4"),
            ("τ_int |M| IMH", "imh_tau_abs_M"),
            ("train s", "train_seconds"),
        ];
        let mut md_all = String::new();
        let mut csv_all = String::new();
        for (set, rs) in &loss_records {
            let mut t = Table::aggregate("loss", rs, &cols);
            if let Some(h) = hmc_rows.get(set) {
                let get = |o: &str| {
                    let r = h
                        .get("rows")
                        .arr()
                        .iter()
                        .find(|r| r.get("observable").str() == o)
                        .cloned()
                        .unwrap_or(Json::Null);
                    (r.get("value").num(), r.get("error").num(), r.get("tau_int").num())
                };
                let (m, me, mt) = get("abs_M");
                let (c, ce, _) = get("chi2");
                let (u, ue, _) = get("U4");
                let mut row = vec!["HMC (reference)".to_string(), String::new()];
                for (_, k) in cols {
                    row.push(match k {
                        "imh_abs_M" => fmt_pm(m, me),
                        "imh_chi2" => fmt_pm(c, ce),
                        "imh_U4" => fmt_pm(u, ue),
                        "imh_tau_abs_M" => fmt_num(mt),
                        _ => String::new(),
                    });
                }
                t.rows.push(row);
            }
            let _ = writeln!(
                md_all,
                "**{}** ({})\n\n{}",
                set,
                target_of(hmc_rows.get(set)),
                t.markdown()
            );
            csv_all += &t
                .csv()
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        format!("set,{l}\n")
                    } else {
                        format!("{set},{l}\n")
                    }
                })
                .collect::<String>();
        }
        let note = format!(
            "{} seed(s) (mean ± s.e. over seeds); config data/configs/reproduce/phi4.toml ({}, n_train = {}); \
             HMC: data/configs/<set>.toml{}; IMH: {} chains × {} samples; Δ/σ = (HMC − IMH)/combined error of ⟨|M|⟩.",
            self.scale.seeds,
            steps_desc(&base),
            key_value(&base, "data", "n_train").unwrap_or_default(),
            match (self.scale.n_cfg, self.scale.n_therm) {
                (Some(n), Some(t)) => format!(" with n_cfg = {n}, n_therm = {t}"),
                (Some(n), None) => format!(" with n_cfg = {n}"),
                _ => String::new(),
            },
            self.scale.chains,
            self.scale.samples
        );
        std::fs::write(
            self.out.join("loss_phi4.md"),
            format!("## φ⁴: FKL vs RKL vs SM vs ScoreNF\n\n{md_all}{note}\n"),
        )?;
        std::fs::write(self.out.join("loss_phi4.csv"), csv_all)?;
        self.sections
            .push(("φ⁴: FKL vs RKL vs SM vs ScoreNF".into(), format!("{md_all}{note}\n")));
        // τ_int of IMH vs HMC as L grows.
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
        for (set, rs) in &loss_records {
            let l = lattice_of(hmc_rows.get(set));
            for loss in LOSSES {
                let sel: Vec<&Record> = rs.iter().filter(|r| r.variant == loss).collect();
                if sel.is_empty() {
                    continue;
                }
                let ms = |k: &str| {
                    mean_se(
                        &sel.iter()
                            .map(|r| r.values.get(k).copied().unwrap_or(f64::NAN))
                            .collect::<Vec<_>>(),
                    )
                };
                tau.rows.push(vec![
                    set.clone(),
                    l.clone(),
                    loss.to_string(),
                    ms("imh_acceptance"),
                    ms("hmc_tau_abs_M"),
                    ms("imh_tau_abs_M"),
                    ms("tau_ratio_abs_M"),
                    ms("cost_hmc_abs_M"),
                    ms("cost_imh_abs_M"),
                    ms("train_seconds"),
                ]);
            }
        }
        self.table(
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
        let by_l: Vec<(f64, &[Record])> = loss_records
            .iter()
            .filter(|(set, _)| set != "tutorial")
            .filter_map(|(set, rs)| Some((lattice_of(hmc_rows.get(set)).parse::<f64>().ok()?, rs.as_slice())))
            .collect();
        let log10 = |(m, e): (f64, f64)| (m > 0.0).then(|| (m.log10(), e / (m * std::f64::consts::LN_10)));
        fig.series.push(Series::points(
            "HMC",
            by_l.iter().filter_map(|&(l, rs)| {
                let (m, e) = log10(stat(rs, "", "hmc_tau_abs_M")?)?;
                Some((l, m, e))
            }),
        ));
        for (i, loss) in LOSSES.iter().enumerate() {
            let dx = 0.06 * (i as f64 + 1.0);
            fig.series.push(Series::points(
                format!("IMH ({loss})"),
                by_l.iter().filter_map(|&(l, rs)| {
                    let (m, e) = log10(stat(rs, loss, "imh_tau_abs_M")?)?;
                    Some((l + dx, m, e))
                }),
            ));
        }
        fig.series.retain(|s| !s.data.is_empty());
        self.figure("tau_vs_L", "τ_int vs L", fig);
        // Training-set size sweep on the tutorial set.
        let (ens, ens_id) = self.ensemble("tutorial")?;
        let total = hmc_rows
            .get("tutorial")
            .map(|h| h.get("chains").num() * h.get("n_per_chain").num())
            .unwrap_or(0.0) as u64;
        let heldout: u64 = key_value(&base, "data", "n_heldout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let mut sweep = vec![];
        let mut skipped = vec![];
        for &n in &self.scale.sweep {
            if n + heldout > total {
                skipped.push(n);
                continue;
            }
            for seed in 1..=self.scale.seeds {
                for loss in ["scorenf", "fkl"] {
                    let text = set_key(&base, "train", "loss", &format!("{{ preset = \"{loss}\" }}"));
                    // The loss comparison's run when the size is the config's own.
                    let name = if key_value(&text, "data", "n_train") == Some(n.to_string()) {
                        format!("phi4_tutorial_{loss}_s{seed}")
                    } else {
                        format!("sweep_tutorial_{loss}_n{n}_s{seed}")
                    };
                    let text = if key_value(&text, "data", "n_train") == Some(n.to_string()) {
                        text
                    } else {
                        set_key(&text, "data", "n_train", &n.to_string())
                    };
                    let extra = vec![
                        "--data".to_string(),
                        ens.display().to_string(),
                        "--seed".into(),
                        seed.to_string(),
                    ];
                    let (values, _) = self.train(&name, &text, &extra, &ens_id)?;
                    sweep.push(Record {
                        variant: format!("{loss} n_train={n}"),
                        seed,
                        values,
                    });
                }
            }
        }
        write_raw(&self.out.join("runs_sweep.csv"), &sweep)?;
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
            self.scale.seeds,
            steps_desc(&base)
        );
        if !skipped.is_empty() {
            let _ = write!(note, " Skipped (ensemble too small): n_train = {skipped:?}.");
        }
        self.table(
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
            for (i, loss) in ["scorenf", "fkl"].iter().enumerate() {
                fig.series.push(Series::points(
                    *loss,
                    self.scale.sweep.iter().filter_map(|&n| {
                        let (m, e) = stat(&sweep, &format!("{loss} n_train={n}"), key)?;
                        Some(((n as f64).log10() + 0.02 * i as f64, m, e))
                    }),
                ));
            }
            self.figure(name, &format!("sweep: {key} vs n_train"), fig);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // SNF

    /// The double-well example for three coupling capacities (the default
    /// 8 × [32, 32], and the weak 4 × [8] and 2 × [8] where a flow alone is
    /// visibly imperfect) and every seed; per-seed rows in runs_snf.csv,
    /// mean ± s.e. over seeds in snf.md / snf.csv.
    fn snf(&mut self) -> Result<()> {
        let steps = self.scale.snf_steps.to_string();
        let t0 = Instant::now();
        let capacities: [(&str, &[&str]); 3] = [
            ("8 × [32, 32]", &[]),
            ("4 × [8]", &["--layers=4", "--hidden=8"]),
            ("2 × [8]", &["--layers=2", "--hidden=8"]),
        ];
        let mut records = Vec::new();
        let mut log = String::new();
        for (name, flags) in capacities {
            for seed in 1..=self.scale.seeds {
                eprintln!("reproduce: snf      double_well {name}, seed {seed}, {steps} steps");
                let seed_flag = format!("--seed={seed}");
                let mut args = vec![
                    "run",
                    "--quiet",
                    "--release",
                    "-p",
                    "fieldflow-snf",
                    "--example",
                    "double_well",
                    "--",
                    &steps,
                    &seed_flag,
                ];
                args.extend(flags);
                let out = Command::new("cargo")
                    .args(&args)
                    .current_dir(workspace_root())
                    .output()
                    .context("could not start cargo")?;
                let stdout = String::from_utf8_lossy(&out.stdout).to_string();
                let stderr = String::from_utf8_lossy(&out.stderr).to_string();
                let _ = writeln!(log, "=== {name}, seed {seed}\n{stdout}\n--- stderr ---\n{stderr}");
                if !out.status.success() {
                    std::fs::write(self.out.join("logs/snf.log"), &log)?;
                    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                    bail!("snf double_well example failed: {last}");
                }
                records.extend(snf_records(&stdout, name, seed));
            }
        }
        std::fs::write(self.out.join("logs/snf.log"), &log)?;
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("reproduce: snf      done in {secs:.1} s");
        write_raw(&self.out.join("runs_snf.csv"), &records)?;
        let cols = [
            ("ESS", "ess"),
            ("log Z", "log_z"),
            ("ΔF reweighted (exact −1.6906)", "df_rw"),
            ("ΔF raw", "df_raw"),
            ("profile bias rw mean (kT)", "bias_rw_mean"),
            ("rw max", "bias_rw_max"),
            ("profile bias raw mean (kT)", "bias_raw_mean"),
            ("raw max", "bias_raw_max"),
            ("train s", "train_s"),
        ];
        let t = Table::aggregate("capacity, model", &records, &cols);
        let note = format!(
            "`cargo run --release -p fieldflow-snf --example double_well -- {steps} --seed=S [--layers=N --hidden=H]`, \
             seeds 1–{} (mean ± s.e. over seeds), loss 1·ML + 1·KL, Langevin blocks of 10 steps, ε = 0.005, linear λ; \
             N = 10⁵ evaluation samples per run; exact log Z = 10.2935. Per-run tables: logs/snf.log; raw: runs_snf.csv.",
            self.scale.seeds
        );
        let md = format!("{}\n{note}\n", t.markdown());
        std::fs::write(
            self.out.join("snf.md"),
            format!("## SNF double well (arXiv 2002.06707)\n\n{md}"),
        )?;
        std::fs::write(self.out.join("snf.csv"), t.csv())?;
        self.sections.push((
            "SNF double well (arXiv 2002.06707): RealNVP vs RealNVP + Langevin blocks".into(),
            md,
        ));
        let x_label = capacities
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{i}: {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut fig = Figure::new(
            "SNF double well: ESS per coupling capacity",
            &format!("capacity ({x_label})"),
            "ESS (mean ± s.e. over seeds)",
        );
        for (j, model) in ["RealNVP", "RealNVP + Langevin"].iter().enumerate() {
            fig.series.push(Series::points(
                *model,
                capacities.iter().enumerate().filter_map(|(i, (c, _))| {
                    let (m, e) = stat(&records, &format!("{c}, {model}"), "ess")?;
                    Some((i as f64 + 0.05 * j as f64, m, e))
                }),
            ));
        }
        self.figure("snf", "SNF ESS per capacity", fig);
        Ok(())
    }

    fn summary(&self, modes: &[&str]) -> String {
        let s = &self.scale;
        let mut md = String::from("# fieldflow reproduce: results\n\n");
        let _ = writeln!(
            md,
            "`cargo xtask reproduce {}{}` — seeds {}, IMH {} chains × {} samples, φ⁴ sets {:?}, sweep {:?}, \
             mixture steps {}, φ⁴ steps {}, HMC n_cfg {}, {} threads available.\n",
            modes.join(" "),
            if s.quick { " --quick" } else { "" },
            s.seeds,
            s.chains,
            s.samples,
            s.sets,
            s.sweep,
            s.mix_steps.map_or("config".into(), |v| v.to_string()),
            s.phi4_steps.map_or("config".into(), |v| v.to_string()),
            s.n_cfg.map_or("config".into(), |v| v.to_string()),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _ = writeln!(md, "| mode | wall clock (s) |\n|---|---|");
        for (m, t) in &self.timings {
            let _ = writeln!(md, "| {m} | {t:.0} |");
        }
        md.push('\n');
        for (title, body) in &self.sections {
            let _ = writeln!(md, "## {title}\n\n{body}");
        }
        md
    }
}

// ---------------------------------------------------------------------------
// Tables

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: vec![],
        }
    }

    /// One row per variant (in order of first appearance): mean ± s.e. over seeds.
    fn aggregate(first: &str, records: &[Record], cols: &[(&str, &str)]) -> Self {
        let mut h = vec![first.to_string(), "seeds".to_string()];
        h.extend(cols.iter().map(|(t, _)| t.to_string()));
        let mut t = Table {
            header: h,
            rows: vec![],
        };
        for v in variants_of(records) {
            let sel: Vec<&Record> = records.iter().filter(|r| r.variant == v).collect();
            let mut row = vec![v.to_string(), sel.len().to_string()];
            for (_, key) in cols {
                let xs: Vec<f64> = sel
                    .iter()
                    .map(|r| r.values.get(*key).copied().unwrap_or(f64::NAN))
                    .collect();
                row.push(mean_se(&xs));
            }
            t.rows.push(row);
        }
        t
    }

    fn markdown(&self) -> String {
        let esc = |r: &[String]| r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ");
        let mut s = format!("| {} |\n|{}\n", esc(&self.header), "---|".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", esc(r));
        }
        s
    }

    fn csv(&self) -> String {
        let mut s = self.header.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n";
        for r in &self.rows {
            s += &(r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n");
        }
        s
    }
}

/// Fixes the y range so that the data stay below the legend (upper right, about
/// 0.05 of the height per entry).
fn legend_room(fig: &mut Figure) {
    let (lo, hi) = fig
        .series
        .iter()
        .flat_map(|s| &s.data)
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|p| {
            if p.2.is_finite() {
                (p.1 - p.2, p.1 + p.2)
            } else {
                (p.1, p.1)
            }
        })
        .fold((f64::MAX, f64::MIN), |(a, b), (l, h)| (a.min(l), b.max(h)));
    if lo > hi {
        return;
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let legend = 0.05 * (fig.series.len() + 1) as f64 + 0.05;
    fig.y_range = Some((lo - 0.05 * span, hi + span * legend / (1.0 - legend)));
}

/// The records' variants in order of first appearance.
fn variants_of(records: &[Record]) -> Vec<&str> {
    let mut variants: Vec<&str> = vec![];
    for r in records {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    variants
}

/// Mean and standard error over seeds of `key` in the records of `variant`
/// (all records for ""), as in the tables; None without a finite value.
fn stat(records: &[Record], variant: &str, key: &str) -> Option<(f64, f64)> {
    let xs: Vec<f64> = records
        .iter()
        .filter(|r| variant.is_empty() || r.variant == variant)
        .map(|r| r.values.get(key).copied().unwrap_or(f64::NAN))
        .collect();
    mean_err(&xs).map(|(m, e, _)| (m, e))
}

fn csv_cell(c: &str) -> String {
    if c.contains(',') || c.contains('"') {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// The two model rows of the double-well example's table as records
/// (variant "CAPACITY, MODEL"): "a ± b" cells give a, "a / b" cells give both.
fn snf_records(stdout: &str, capacity: &str, seed: u64) -> Vec<Record> {
    let first = |c: &str| {
        c.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let pair = |c: &str| {
        let mut it = c.split('/').map(|v| v.trim().parse::<f64>().unwrap_or(f64::NAN));
        (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN))
    };
    stdout
        .lines()
        .filter(|l| l.starts_with("| RealNVP"))
        .map(|l| {
            let c: Vec<&str> = l.trim().trim_matches('|').split('|').map(str::trim).collect();
            let (rw_mean, rw_max) = pair(c.get(6).copied().unwrap_or(""));
            let (raw_mean, raw_max) = pair(c.get(7).copied().unwrap_or(""));
            let values = [
                ("ess", first(c.get(2).copied().unwrap_or(""))),
                ("log_z", first(c.get(3).copied().unwrap_or(""))),
                ("df_rw", first(c.get(4).copied().unwrap_or(""))),
                ("df_raw", first(c.get(5).copied().unwrap_or(""))),
                ("bias_rw_mean", rw_mean),
                ("bias_rw_max", rw_max),
                ("bias_raw_mean", raw_mean),
                ("bias_raw_max", raw_max),
                ("train_s", first(c.get(9).copied().unwrap_or(""))),
            ];
            Record {
                variant: format!("{capacity}, {}", c[0]),
                seed,
                values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            }
        })
        .collect()
}

/// All records with every value, one row per (variant, seed).
fn write_raw(path: &Path, records: &[Record]) -> Result<()> {
    let mut keys: Vec<&String> = records.iter().flat_map(|r| r.values.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut s = format!(
        "variant,seed,{}\n",
        keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
    );
    for r in records {
        let vals: Vec<String> = keys
            .iter()
            .map(|k| r.values.get(*k).map_or(String::new(), |v| format!("{v}")))
            .collect();
        let _ = writeln!(s, "{},{},{}", csv_cell(&r.variant), r.seed, vals.join(","));
    }
    std::fs::write(path, s).with_context(|| format!("{}: cannot write", path.display()))
}

/// Formats a number with about 3–4 significant digits.
fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let a = x.abs();
    if a == 0.0 || (x.fract() == 0.0 && a < 1e5) {
        format!("{x:.0}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{x:.digits$}")
    }
}

/// value ± error with the error's two significant digits.
fn fmt_pm(v: f64, e: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if !(e > 0.0) || !e.is_finite() {
        return fmt_num(v);
    }
    if !(1e-4..1e5).contains(&v.abs().max(e)) {
        return format!("{v:.2e} ± {e:.1e}");
    }
    let digits = (1 - e.log10().floor() as i32).clamp(0, 8) as usize;
    format!("{v:.digits$} ± {e:.digits$}")
}

/// Mean, standard error (sample std / √n; 0 for one entry) and count of the
/// finite entries; None if there are none.
fn mean_err(xs: &[f64]) -> Option<(f64, f64, usize)> {
    let f: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return None;
    }
    let n = f.len() as f64;
    let m = f.iter().sum::<f64>() / n;
    let var = if f.len() > 1 {
        f.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((m, (var / n).sqrt(), f.len()))
}

/// Mean ± standard error over the finite entries (notes how many were not finite).
fn mean_se(xs: &[f64]) -> String {
    let Some((m, e, n)) = mean_err(xs) else {
        return "—".into();
    };
    let s = if n > 1 { fmt_pm(m, e) } else { fmt_num(m) };
    if n < xs.len() {
        format!("{s} ({n}/{} finite)", xs.len())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------
// Config text: minimal TOML line editing of our own templates

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn header_of(line: &str) -> Option<&str> {
    let t = line.trim();
    (t.starts_with('[') && !t.starts_with("[["))
        .then(|| t.trim_start_matches('[').split(']').next().unwrap_or("").trim())
}

fn has_section(text: &str, section: &str) -> bool {
    text.lines().any(|l| header_of(l) == Some(section))
}

/// The (start, end) line range of `section`'s body ("" = top level).
fn section_range(lines: &[&str], section: &str) -> Option<(usize, usize)> {
    let start = if section.is_empty() {
        0
    } else {
        lines.iter().position(|l| header_of(l) == Some(section))? + 1
    };
    let end = lines[start..]
        .iter()
        .position(|l| header_of(l).is_some())
        .map_or(lines.len(), |p| start + p);
    Some((start, end))
}

fn key_of(line: &str) -> Option<&str> {
    let t = line.trim();
    if t.starts_with('#') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim())
}

/// Sets `key = value` in `section` (replacing the line, or adding it; the
/// section is appended if missing).
fn set_key(text: &str, section: &str, key: &str, value: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let new = format!("{key} = {value}");
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    match section_range(&lines, section) {
        Some((s, e)) => match (s..e).find(|&i| key_of(lines[i]) == Some(key)) {
            Some(i) => out[i] = new,
            None => {
                // After the last non-blank line of the section.
                let mut at = e;
                while at > s && lines[at - 1].trim().is_empty() {
                    at -= 1;
                }
                out.insert(at, new);
            }
        },
        None => {
            out.push(String::new());
            out.push(format!("[{section}]"));
            out.push(new);
        }
    }
    out.join("\n") + "\n"
}

/// The raw value text of `key` in `section` (comments stripped).
fn key_value(text: &str, section: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (s, e) = section_range(&lines, section)?;
    (s..e).find(|&i| key_of(lines[i]) == Some(key)).map(|i| {
        let v = lines[i].split_once('=').map_or("", |(_, v)| v);
        v.split('#').next().unwrap_or("").trim().to_string()
    })
}

fn section_text(text: &str, section: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    section_range(&lines, section)
        .map(|(s, e)| {
            lines[s..e]
                .iter()
                .filter(|l| key_of(l).is_some())
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn steps_desc(cfg: &str) -> String {
    format!(
        "{} steps, batch {}, lr {} ({})",
        key_value(cfg, "train", "steps").unwrap_or_default(),
        key_value(cfg, "train", "batch_size").unwrap_or_default(),
        key_value(cfg, "train", "lr").unwrap_or_default(),
        key_value(cfg, "train.lr_schedule", "kind")
            .unwrap_or_else(|| "constant".into())
            .trim_matches('"')
    )
}

fn target_of(a: Option<&Json>) -> String {
    a.map(|a| a.get("target").str().to_string()).unwrap_or_default()
}

/// "L" from the target description "phi4: L = 8x8, …".
fn lattice_of(a: Option<&Json>) -> String {
    let t = target_of(a);
    t.split("L = ")
        .nth(1)
        .and_then(|r| r.split(&[',', 'x'][..]).next())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The last row of a metrics CSV as name → value.
fn last_csv_row(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = read(path)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{}: empty", path.display()))?
        .split(',')
        .collect();
    let last = lines
        .next_back()
        .with_context(|| format!("{}: no records", path.display()))?;
    Ok(header
        .iter()
        .zip(last.split(','))
        .map(|(k, v)| (k.to_string(), v.trim().parse::<f64>().unwrap_or(f64::NAN)))
        .collect())
}

// ---------------------------------------------------------------------------
// A minimal JSON reader (fieldflow's --json output; xtask has no serde)

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(s: &str) -> Result<Json> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = parse_value(b, &mut i)?;
        skip_ws(b, &mut i);
        if i != b.len() {
            bail!("trailing characters at byte {i}");
        }
        Ok(v)
    }
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map_or(&NULL, |(_, v)| v),
            _ => &NULL,
        }
    }
    fn idx(&self, i: usize) -> &Json {
        match self {
            Json::Arr(v) => v.get(i).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => &[],
        }
    }
    /// The number (NaN for null and non-numbers).
    fn num(&self) -> f64 {
        match self {
            Json::Num(x) => *x,
            _ => f64::NAN,
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => "",
        }
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn parse_value(b: &[u8], i: &mut usize) -> Result<Json> {
    skip_ws(b, i);
    let Some(&c) = b.get(*i) else {
        bail!("unexpected end of JSON")
    };
    let lit = |i: &mut usize, word: &str, v: Json| -> Result<Json> {
        if b[*i..].starts_with(word.as_bytes()) {
            *i += word.len();
            Ok(v)
        } else {
            bail!("bad literal at byte {i}")
        }
    };
    match c {
        b'n' => lit(i, "null", Json::Null),
        b't' => lit(i, "true", Json::Bool(true)),
        b'f' => lit(i, "false", Json::Bool(false)),
        b'"' => Ok(Json::Str(parse_string(b, i)?)),
        b'[' => {
            *i += 1;
            let mut v = vec![];
            loop {
                skip_ws(b, i);
                if b.get(*i) == Some(&b']') {
                    *i += 1;
                    return Ok(Json::Arr(v));
                }
                v.push(parse_value(b, i)?);
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {}
                    _ => bail!("expected , or ] at byte {i}"),
                }
            }
        }
        b'{' => {
            *i += 1;
            let mut kv = vec![];
            loop {
                skip_ws(b, i);
                if b.get(*i) == Some(&b'}') {
                    *i += 1;
                    return Ok(Json::Obj(kv));
                }
                let k = parse_string(b, i)?;
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    bail!("expected : at byte {i}");
                }
                *i += 1;
                kv.push((k, parse_value(b, i)?));
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {}
                    _ => bail!("expected , or }} at byte {i}"),
                }
            }
        }
        _ => {
            let start = *i;
            while *i < b.len() && matches!(b[*i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                *i += 1;
            }
            let s = std::str::from_utf8(&b[start..*i]).unwrap_or("");
            s.parse::<f64>()
                .map(Json::Num)
                .map_err(|_| anyhow::anyhow!("bad number `{s}` at byte {start}"))
        }
    }
}

fn parse_string(b: &[u8], i: &mut usize) -> Result<String> {
    if b.get(*i) != Some(&b'"') {
        bail!("expected a string at byte {i}");
    }
    *i += 1;
    let mut out: Vec<u8> = vec![];
    while let Some(&c) = b.get(*i) {
        *i += 1;
        match c {
            b'"' => return String::from_utf8(out).context("JSON string is not UTF-8"),
            b'\\' => {
                let Some(&e) = b.get(*i) else { break };
                *i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'u' => {
                        let hex = std::str::from_utf8(b.get(*i..*i + 4).unwrap_or(b"")).unwrap_or("");
                        let code =
                            u32::from_str_radix(hex, 16).map_err(|_| anyhow::anyhow!("bad \\u escape at byte {i}"))?;
                        *i += 4;
                        let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    other => out.push(other),
                }
            }
            _ => out.push(c),
        }
    }
    bail!("unterminated JSON string")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_fieldflow_output() {
        let j =
            Json::parse(r#"[{"observable": "abs_M", "a": [0.5, 1e-3, 2.5], "cost": [null, 3.0], "s": "x\"y\u00e9"}]"#)
                .unwrap();
        let r = j.idx(0);
        assert_eq!(r.get("observable").str(), "abs_M");
        assert_eq!(r.get("a").idx(2).num(), 2.5);
        assert!(r.get("cost").idx(0).num().is_nan());
        assert_eq!(r.get("s").str(), "x\"yé");
        assert!(Json::parse("[1, 2").is_err());
    }

    #[test]
    fn set_key_edits_sections() {
        let t = "seed = 1\n\n[train]\nsteps = 10 # c\nlr = 1\n\n[train.lr_schedule]\ntotal_steps = 10\n";
        let u = set_key(t, "train", "steps", "5");
        assert_eq!(key_value(&u, "train", "steps").as_deref(), Some("5"));
        assert_eq!(key_value(&u, "train.lr_schedule", "total_steps").as_deref(), Some("10"));
        let u = set_key(&u, "train", "loss", "{ preset = \"fkl\" }");
        assert_eq!(key_value(&u, "train", "loss").as_deref(), Some("{ preset = \"fkl\" }"));
        assert!(u.contains("lr = 1\nloss = { preset = \"fkl\" }\n\n[train.lr_schedule]"));
        let u = set_key(&u, "", "checkpoint_every", "3");
        assert!(u.starts_with("seed = 1\ncheckpoint_every = 3\n"));
        let u = set_key(&u, "data", "n_train", "7");
        assert_eq!(key_value(&u, "data", "n_train").as_deref(), Some("7"));
    }

    #[test]
    fn mean_se_formats() {
        assert_eq!(mean_se(&[1.0, 3.0]), "2.0 ± 1.0");
        assert_eq!(mean_se(&[0.5]), "0.5000");
        assert_eq!(mean_se(&[f64::NAN]), "—");
        assert!(mean_se(&[1.0, f64::NAN]).ends_with("(1/2 finite)"));
        assert_eq!(mean_err(&[1.0, 3.0, f64::NAN]), Some((2.0, 1.0, 2)));
        assert_eq!(mean_err(&[f64::NAN]), None);
    }

    #[test]
    fn stat_aggregates_a_variant_over_seeds() {
        let rec = |variant: &str, seed, v: f64| Record {
            variant: variant.into(),
            seed,
            values: [("ess".to_string(), v)].into_iter().collect(),
        };
        let rs = [rec("a", 1, 1.0), rec("a", 2, 3.0), rec("b", 1, 10.0)];
        assert_eq!(stat(&rs, "a", "ess"), Some((2.0, 1.0)));
        assert_eq!(stat(&rs, "b", "ess"), Some((10.0, 0.0)));
        assert_eq!(stat(&rs, "c", "ess"), None);
        assert_eq!(stat(&rs, "a", "nll"), None);
        assert_eq!(variants_of(&rs), ["a", "b"]);
    }
}
