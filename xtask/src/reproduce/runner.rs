//! Running the experiments' stages: the `fieldflow` CLI (train, sample,
//! analyze, compare, generate) with every output kept and reused while its
//! key (arguments, resolved config, upstream identity; stored beside it in
//! `configs/<name>.key`) is unchanged, and the results folder's tables and
//! figures.

use super::args::Scale;
use super::cli_json::{Analysis, Comparison};
use super::config::Config;
use super::records::Values;
use super::table::Table;
use crate::workspace_root;
use anyhow::{bail, Context, Result};
use fieldflow_plot::Figure;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub struct Runner {
    exe: PathBuf,
    /// The results folder.
    pub out: PathBuf,
    force: bool,
    pub scale: Scale,
    /// (title, markdown) of every table, in order.
    pub sections: Vec<(String, String)>,
}

/// A finished child process's output.
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl Captured {
    /// Runs `program args…` in the workspace root and captures its output.
    pub fn run(program: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> Result<Self> {
        Self::run_with_env(program, args, &[])
    }

    /// As [`Captured::run`], with `env` added to the child's environment.
    pub fn run_with_env(program: &Path, args: &[impl AsRef<std::ffi::OsStr>], env: &[(&str, String)]) -> Result<Self> {
        let out = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(workspace_root())
            .output()
            .with_context(|| format!("could not start {}", program.display()))?;
        Ok(Captured {
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
            ok: out.status.success(),
        })
    }

    /// The last non-blank line of stderr (the error, for a failed run).
    pub fn last_error(&self) -> &str {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
    }
}

impl Runner {
    pub fn new(exe: PathBuf, out: PathBuf, force: bool, scale: Scale) -> Self {
        Runner {
            exe,
            out,
            force,
            scale,
            sections: vec![],
        }
    }

    /// The environment of `fieldflow` children: with several grid runs at
    /// once, each gets its share of the cores (RAYON_NUM_THREADS, unless
    /// the caller set it).
    fn child_env(&self) -> Vec<(&'static str, String)> {
        if self.scale.jobs <= 1 || std::env::var_os("RAYON_NUM_THREADS").is_some() {
            return vec![];
        }
        let threads = (super::args::cores() / self.scale.jobs).max(1);
        vec![("RAYON_NUM_THREADS", threads.to_string())]
    }

    /// `sub`/`name` in the results folder.
    pub fn path(&self, sub: &str, name: &str) -> PathBuf {
        self.out.join(sub).join(name)
    }

    /// Runs `fieldflow args…`, logging its output to logs/`log`.log; returns stdout.
    fn fieldflow(&self, args: &[String], log: &str) -> Result<String> {
        let t0 = Instant::now();
        let run = Captured::run_with_env(&self.exe, args, &self.child_env())?;
        let log_path = self.path("logs", &format!("{log}.log"));
        let _ = std::fs::write(
            &log_path,
            format!(
                "$ fieldflow {}\n{}\n--- stderr ---\n{}",
                args.join(" "),
                run.stdout,
                run.stderr
            ),
        );
        if !run.ok {
            bail!(
                "fieldflow {} failed ({}): {}",
                args[0],
                log_path.display(),
                run.last_error()
            );
        }
        let verb = args.first().map(String::as_str).unwrap_or("");
        if verb != "analyze" && verb != "compare" {
            eprintln!("reproduce: {verb:<8} {log:<40} {:>7.1} s", t0.elapsed().as_secs_f64());
        }
        Ok(run.stdout)
    }

    /// Runs the stage `fieldflow args…` (log: logs/`log`.log) unless all its
    /// `outputs` exist and were made with `key` (stored as configs/`stamp`.key);
    /// returns the seconds it took if it ran.
    pub fn stage(&self, stamp: &str, log: &str, outputs: &[&Path], args: &[String], key: &str) -> Result<Option<f64>> {
        let stamp = self.path("configs", &format!("{stamp}.key"));
        let fresh = !self.force
            && outputs.iter().all(|o| o.exists())
            && std::fs::read_to_string(&stamp).is_ok_and(|k| k == key);
        if fresh {
            return Ok(None);
        }
        let t0 = Instant::now();
        self.fieldflow(args, log)?;
        let secs = t0.elapsed().as_secs_f64();
        std::fs::write(&stamp, key).with_context(|| format!("{}: cannot write", stamp.display()))?;
        Ok(Some(secs))
    }

    /// Trains (unless up to date) `cfg` as models/`name`.h5 with `extra`
    /// flags; returns the last metrics record (with `train_seconds`) and the
    /// model's identity for downstream stages (its key and metrics).
    pub fn train(&self, name: &str, cfg: &Config, extra: &[String], upstream: &str) -> Result<(Values, String)> {
        let text = cfg.text()?;
        let cfg_path = self.path("configs", &format!("{name}.toml"));
        std::fs::write(&cfg_path, &text).with_context(|| format!("{}: cannot write", cfg_path.display()))?;
        let model = self.path("models", &format!("{name}.h5"));
        let csv = PathBuf::from(format!("{}.metrics.csv", model.display()));
        let key = format!("{text}\n{}\n{upstream}", extra.join(" "));
        let mut args: Vec<String> = vec!["train".into(), "--config".into(), cfg_path.display().to_string()];
        args.extend([
            "--out".into(),
            model.display().to_string(),
            "--force".into(),
            "--quiet".into(),
        ]);
        args.extend(extra.iter().cloned());
        let seconds = self.path("logs", &format!("train_{name}.seconds"));
        if let Some(s) = self.stage(name, &format!("train_{name}"), &[&csv, &model], &args, &key)? {
            std::fs::write(&seconds, format!("{s}"))?;
        }
        let mut last = last_csv_row(&csv)?;
        if let Some(s) = std::fs::read_to_string(&seconds)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
        {
            last.insert("train_seconds".into(), s);
        }
        let identity = std::fs::read_to_string(&csv).unwrap_or_default();
        Ok((last, format!("{key}\n{identity}")))
    }

    /// IMH-samples models/`name`.h5 into samples/`name`.h5 (unless up to
    /// date); returns the samples' path and the realized acceptance.
    pub fn sample(&self, name: &str, seed: u64, model_identity: &str) -> Result<(PathBuf, f64)> {
        let (out, log) = self.sample_with(name, "imh", seed, model_identity)?;
        let acc = summary_numbers(&log, "acceptance").first().copied().unwrap_or(f64::NAN);
        Ok((out, acc))
    }

    /// Samples models/`name`.h5 with `fieldflow sample --method METHOD`
    /// (imh: into samples/`name`.h5, otherwise samples/`name`_METHOD.h5;
    /// unless up to date), `scale.chains` chains × `scale.samples`; returns
    /// the samples' path and the run's log (its printed summary: acceptance,
    /// or ESS/N and log Z estimate; read with [`summary_numbers`]).
    pub fn sample_with(&self, name: &str, method: &str, seed: u64, model_identity: &str) -> Result<(PathBuf, String)> {
        self.sample_with_args(name, method, seed, model_identity, &[])
    }

    /// As [`Runner::sample_with`], with `extra` arguments of `fieldflow sample`.
    pub fn sample_with_args(
        &self,
        name: &str,
        method: &str,
        seed: u64,
        model_identity: &str,
        extra: &[&str],
    ) -> Result<(PathBuf, String)> {
        let model = self.path("models", &format!("{name}.h5"));
        let tag = if method == "imh" {
            name.to_string()
        } else {
            format!("{name}_{method}")
        };
        let out = self.path("samples", &format!("{tag}.h5"));
        let s = &self.scale;
        let mut args: Vec<String> = [
            "sample",
            "--model",
            &model.display().to_string(),
            "--n",
            &s.samples.to_string(),
            "--chains",
            &s.chains.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            &out.display().to_string(),
            "--force",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // IMH is the CLI's default (its key, and so earlier results, unchanged).
        if method != "imh" {
            args.extend(["--method".to_string(), method.to_string()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        self.sample_stage(&tag, &out, &args, model_identity)
    }

    /// Runs `fieldflow ARGS` (a sample command writing `out`) as the stage
    /// `sample_TAG` unless up to date with `identity`; returns `out` and the
    /// run's log (its printed summary, read with [`summary_numbers`]).
    pub fn sample_stage(&self, tag: &str, out: &Path, args: &[String], identity: &str) -> Result<(PathBuf, String)> {
        let key = format!("{}\n{identity}", args.join(" "));
        let stamp = format!("sample_{tag}");
        self.stage(&stamp, &stamp, &[out], args, &key)?;
        let log = std::fs::read_to_string(self.path("logs", &format!("{stamp}.log"))).unwrap_or_default();
        Ok((out.to_path_buf(), log))
    }

    /// [`Runner::train`] then [`Runner::sample`] with the same seed: the
    /// training's last metrics record with `imh_acceptance`, and the samples.
    pub fn train_and_sample(
        &self,
        name: &str,
        cfg: &Config,
        extra: &[String],
        upstream: &str,
        seed: u64,
    ) -> Result<(Values, PathBuf)> {
        let (mut values, identity) = self.train(name, cfg, extra, upstream)?;
        let (samples, acc) = self.sample(name, seed, &identity)?;
        values.insert("imh_acceptance".into(), acc);
        Ok((values, samples))
    }

    /// `fieldflow analyze FILE --json` (its first analysis).
    pub fn analyze(&self, file: &Path) -> Result<Analysis> {
        let s = self.fieldflow(
            &["analyze".into(), file.display().to_string(), "--json".into()],
            &format!("analyze_{}", stem(file)),
        )?;
        Analysis::parse_first(&s).with_context(|| format!("analyze {}: unreadable JSON", file.display()))
    }

    /// `fieldflow compare A B --json`.
    pub fn compare(&self, a: &Path, b: &Path) -> Result<Vec<Comparison>> {
        let s = self.fieldflow(
            &[
                "compare".into(),
                a.display().to_string(),
                b.display().to_string(),
                "--json".into(),
            ],
            &format!("compare_{}", stem(b)),
        )?;
        Comparison::parse_all(&s).with_context(|| format!("compare {}: unreadable JSON", b.display()))
    }

    /// Writes `name`.md (under the heading `file_title`) and `name`.csv, and
    /// keeps the section `title` with the Markdown `md` for summary.md.
    pub fn section(&mut self, name: &str, file_title: &str, title: &str, md: String, csv: &str) -> Result<()> {
        let md_path = self.out.join(format!("{name}.md"));
        std::fs::write(&md_path, format!("## {file_title}\n\n{md}"))
            .with_context(|| format!("{}: cannot write", md_path.display()))?;
        let csv_path = self.out.join(format!("{name}.csv"));
        std::fs::write(&csv_path, csv).with_context(|| format!("{}: cannot write", csv_path.display()))?;
        self.sections.push((title.to_string(), md));
        Ok(())
    }

    /// Writes the table `t` with `note` below it as `name`.md and `name`.csv.
    pub fn table(&mut self, name: &str, title: &str, note: &str, t: &Table) -> Result<()> {
        self.section(name, title, title, format!("{}\n{note}\n", t.markdown()), &t.csv())
    }

    /// Saves `fig` as `name`.svg in the results folder and links it (with
    /// `alt` text) at the end of the last section. A figure without data is
    /// skipped; a figure that cannot be written only warns (the tables stand).
    pub fn figure(&mut self, name: &str, alt: &str, mut fig: Figure) {
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
}

/// The numbers on the first line of a run's printed summary that starts
/// with `label`: "log Z estimate    -1.25 ± 0.03" → [−1.25, 0.03] (words
/// that are not numbers are skipped; empty if there is no such line).
pub fn summary_numbers(log: &str, label: &str) -> Vec<f64> {
    log.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|rest| rest.split_whitespace().filter_map(|w| w.parse::<f64>().ok()).collect())
        .unwrap_or_default()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The last row of a metrics CSV as name → value.
fn last_csv_row(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_numbers_read_the_printed_summary() {
        let log = "$ fieldflow sample …\nESS/N             0.4123 (this run)\nlog Z estimate    -1.25000 ± 0.03000\n";
        assert_eq!(summary_numbers(log, "ESS/N"), [0.4123]);
        assert_eq!(summary_numbers(log, "log Z estimate"), [-1.25, 0.03]);
        assert!(summary_numbers(log, "acceptance").is_empty());
        assert_eq!(
            summary_numbers("acceptance        0.5000 (this run)", "acceptance"),
            [0.5]
        );
    }
}
