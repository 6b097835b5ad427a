//! `cargo xtask compare torch [--quick] [--threads 1,2] [--batches 64,1024]
//! [--lattice 8] [--dtypes f64,f32] [--repeats N] [--min-seconds S] …`:
//! fieldflow against PyTorch CPU, side by side on this machine (issue 16,
//! "Speed"). Not part of CI or `cargo xtask test`.
//!
//! Both sides run the same reverse-KL training step of the tutorial flow on
//! 2D φ⁴ (L×L, m² = −4, λ = 8; 16 affine checkerboard couplings, conv
//! 1→8→8→2, kernel 3, LeakyReLU, tanh outputs; sample, action, backward,
//! Adam at lr 1e-3) with the same batch and thread count:
//! * the peer, `xtask/peers/torch_tutorial_bench.py`, in the venv of
//!   [`venv`] with `torch.set_num_threads(n)` (and `OMP_NUM_THREADS`,
//!   `MKL_NUM_THREADS` = n, `OMP_WAIT_POLICY` as given, default passive:
//!   on a shared machine spinning OpenMP threads slow torch several-fold);
//! * fieldflow, the `rkl_step_rate` example of fieldflow-losses
//!   (`fieldflow_losses::Trainer` with the RKL preset) with
//!   `RAYON_NUM_THREADS` = n.
//!
//! Each measurement is `--warmup` untimed steps, then timed steps until
//! `--min-steps` and `--min-seconds` are both reached. For every precision ×
//! batch × threads the two sides alternate `--repeats` times (peer first on
//! even repeats, fieldflow first on odd ones), so drifting machine load hits
//! both; the table gives the median rate of each side, the ratio of the
//! medians, fieldflow's GFLOP/s (3 × network flops per sample × batch per
//! step), the same medians per CPU-second of the process (all threads: less
//! sensitive to other processes on a shared machine; with several threads
//! it measures efficiency, not speed) and the 1-minute load average around
//! the runs (`/proc/loadavg`).
//! One JSON line per configuration is appended to
//! `data/experiments/compare_torch/results.jsonl` (or `--out`).
//!
//! Before timing, a cross-check per precision: fieldflow writes a randomly
//! initialized flow's parameters, the base draws of a batch of 8 and the
//! trainer's loss and gradient; the peer loads the same parameters (mapped
//! to torch's layout) and evaluates the same loss and gradient. They must
//! agree to round-off ([`check_tolerance`]) or the command fails: this is
//! what makes the two sides the same architecture and the same loss.
//!
//! Precision: PyTorch's f32 runs everything in f32; fieldflow's
//! `dtype = "f32"` runs the conditioner networks in f32 and keeps the
//! coupling arithmetic, log-determinants, loss and Adam in f64.

mod venv;

use crate::{run_cmd, workspace_root};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const HELP: &str = "compare torch [--quick] [--threads 1,2] [--batches 64,1024] [--lattice 8] [--dtypes f64,f32]
                   [--repeats N] [--min-seconds S] [--min-steps N] [--warmup N]
                   [--omp-wait-policy passive|active] [--out FILE]
                   fieldflow vs PyTorch CPU (venv in target/torch-venv), RKL training steps/s";

/// The peer script (relative to the workspace root).
const PEER_SCRIPT: &str = "xtask/peers/torch_tutorial_bench.py";
/// Default output (relative to the workspace root).
const DEFAULT_OUT: &str = "data/experiments/compare_torch/results.jsonl";

/// The settings of one invocation.
#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    threads: Vec<usize>,
    batches: Vec<usize>,
    lattice: usize,
    dtypes: Vec<&'static str>,
    repeats: usize,
    warmup: u64,
    min_steps: u64,
    min_seconds: f64,
    omp_wait_policy: String,
    out: PathBuf,
}

fn parse_list(flag: &str, value: &str) -> Result<Vec<usize>> {
    let parsed: Result<Vec<usize>, _> = value.split(',').map(|s| s.trim().parse::<usize>()).collect();
    match parsed {
        Ok(v) if !v.is_empty() && v.iter().all(|&x| x >= 1) => Ok(v),
        _ => bail!("{flag} {value}: expected comma-separated integers >= 1"),
    }
}

fn parse(rest: &[String]) -> Result<Settings> {
    let Some((what, rest)) = rest.split_first() else {
        bail!("compare needs a peer: `cargo xtask compare torch`\n{HELP}");
    };
    if what != "torch" {
        bail!("unknown peer `{what}` (known: torch)\n{HELP}");
    }
    let quick = rest.iter().any(|a| a == "--quick");
    let mut s = Settings {
        quick,
        threads: if quick { vec![1] } else { vec![1, 2] },
        batches: if quick { vec![64] } else { vec![64, 1024] },
        lattice: 8,
        dtypes: vec!["float64", "float32"],
        repeats: if quick { 1 } else { 3 },
        warmup: if quick { 2 } else { 3 },
        min_steps: if quick { 3 } else { 5 },
        min_seconds: if quick { 1.0 } else { 3.0 },
        omp_wait_policy: "passive".into(),
        out: workspace_root().join(DEFAULT_OUT),
    };
    let mut it = rest.iter().filter(|a| *a != "--quick");
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let int = |min: u64| -> Result<u64> {
            match value.parse::<u64>() {
                Ok(v) if v >= min => Ok(v),
                _ => bail!("{flag} {value}: expected an integer >= {min}"),
            }
        };
        match flag.as_str() {
            "--threads" => s.threads = parse_list(flag, value)?,
            "--batches" => s.batches = parse_list(flag, value)?,
            "--lattice" => s.lattice = int(2)? as usize,
            "--repeats" => s.repeats = int(1)? as usize,
            "--warmup" => s.warmup = int(0)?,
            "--min-steps" => s.min_steps = int(1)?,
            "--min-seconds" => {
                s.min_seconds = match value.parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => v,
                    _ => bail!("--min-seconds {value}: expected seconds >= 0"),
                }
            }
            "--dtypes" => {
                s.dtypes = value
                    .split(',')
                    .map(|d| match d.trim() {
                        "f64" | "float64" => Ok("float64"),
                        "f32" | "float32" => Ok("float32"),
                        other => bail!("--dtypes {value}: unknown precision `{other}` (f64, f32)"),
                    })
                    .collect::<Result<_>>()?
            }
            "--omp-wait-policy" => {
                let v = value.to_ascii_lowercase();
                if v != "passive" && v != "active" {
                    bail!("--omp-wait-policy {value}: expected passive or active");
                }
                s.omp_wait_policy = v;
            }
            "--out" => s.out = PathBuf::from(value),
            other => bail!("unknown flag `{other}`\n{HELP}"),
        }
    }
    Ok(s)
}

/// The 1-minute load average (NaN where /proc/loadavg is unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Runs one measurement and returns its JSON record (the last stdout line)
/// with the load averages before and after it added.
fn measure(program: &Path, args: &[String], env: &[(&str, String)]) -> Result<Value> {
    let load_before = load_average();
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("could not start `{}`", program.display()))?;
    let load_after = load_average();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!(
            "`{} {}` failed with {}: {last}",
            program.display(),
            args.join(" "),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("`{}` printed no JSON record", program.display()))?;
    let mut v: Value = serde_json::from_str(line).with_context(|| format!("bad JSON record: {line}"))?;
    v["load_before"] = json!(load_before);
    v["load_after"] = json!(load_after);
    Ok(v)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn rate(v: &Value) -> Result<f64> {
    v["steps_per_s"]
        .as_f64()
        .with_context(|| format!("record without steps_per_s: {v}"))
}

/// The current commit of the workspace (short hash), or "unknown".
fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The current time as an ISO 8601 UTC timestamp.
fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    iso8601_utc(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ`.
fn iso8601_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `cargo xtask compare …`.
pub fn run(rest: &[String]) -> Result<()> {
    let s = parse(rest)?;
    let python = venv::ensure()?;
    run_cmd(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "fieldflow-losses",
            "--example",
            "rkl_step_rate",
        ],
    )?;
    let root = workspace_root();
    let ours = root.join("target/release/examples/rkl_step_rate");
    let peer = root.join(PEER_SCRIPT);
    let started = utc_timestamp();
    let commit = git_commit();
    if let Some(dir) = s.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.out)
        .with_context(|| format!("cannot open {}", s.out.display()))?;
    let timing = [
        "--warmup".to_string(),
        s.warmup.to_string(),
        "--min-steps".into(),
        s.min_steps.to_string(),
        "--min-seconds".into(),
        s.min_seconds.to_string(),
    ];
    let mut checks = serde_json::Map::new();
    for &dtype in &s.dtypes {
        checks.insert(dtype.to_string(), cross_check(&python, &ours, &peer, s.lattice, dtype)?);
    }
    let mut rows = Vec::new();
    eprintln!(
        "xtask: compare torch: L = {}, {} repeat(s) per configuration, load average now {:.2}",
        s.lattice,
        s.repeats,
        load_average()
    );
    for &dtype in &s.dtypes {
        for &batch in &s.batches {
            for &threads in &s.threads {
                let n = threads.to_string();
                let mut peer_args = vec![
                    peer.display().to_string(),
                    "--L".into(),
                    s.lattice.to_string(),
                    "--batches".into(),
                    batch.to_string(),
                    "--threads".into(),
                    n.clone(),
                    "--dtype".into(),
                    dtype.into(),
                ];
                peer_args.extend(timing.iter().cloned());
                let peer_env = [
                    ("OMP_NUM_THREADS", n.clone()),
                    ("MKL_NUM_THREADS", n.clone()),
                    ("OMP_WAIT_POLICY", s.omp_wait_policy.to_uppercase()),
                ];
                let mut our_args = vec![
                    "--lattice".to_string(),
                    s.lattice.to_string(),
                    "--batch".into(),
                    batch.to_string(),
                    "--dtype".into(),
                    dtype.into(),
                ];
                our_args.extend(timing.iter().cloned());
                let our_env = [("RAYON_NUM_THREADS", n.clone())];
                let (mut peer_runs, mut our_runs) = (Vec::new(), Vec::new());
                for r in 0..s.repeats {
                    let mut one = |which: bool| -> Result<()> {
                        let v = if which {
                            measure(&python, &peer_args, &peer_env)?
                        } else {
                            measure(&ours, &our_args, &our_env)?
                        };
                        eprintln!(
                            "xtask:   {dtype} batch {batch} threads {threads} repeat {r}: {:9} {:8.3} steps/s (load {:.2})",
                            v["impl"].as_str().unwrap_or("?"),
                            rate(&v)?,
                            v["load_before"].as_f64().unwrap_or(f64::NAN)
                        );
                        if which {
                            peer_runs.push(v);
                        } else {
                            our_runs.push(v);
                        }
                        Ok(())
                    };
                    let peer_first = r % 2 == 0;
                    one(peer_first)?;
                    one(!peer_first)?;
                }
                let row = summarize(&s, dtype, batch, threads, peer_runs, our_runs)?;
                let mut record = row.clone();
                record["started"] = json!(started);
                record["git_commit"] = json!(commit);
                record["quick"] = json!(s.quick);
                record["omp_wait_policy"] = json!(s.omp_wait_policy);
                record["check"] = checks[dtype].clone();
                writeln!(out, "{record}").with_context(|| format!("cannot write {}", s.out.display()))?;
                rows.push(row);
            }
        }
    }
    print!("{}", table(&rows));
    eprintln!("xtask: records appended to {}", s.out.display());
    Ok(())
}

/// Largest relative disagreement in the loss or gradient of the cross-check
/// that still counts as the same computation: round-off of a sum of ≈ 10⁴
/// terms in f64; in f32, PyTorch rounds everything to f32 and fieldflow only
/// its conditioner networks.
fn check_tolerance(dtype: &str) -> f64 {
    if dtype == "float64" {
        1e-10
    } else {
        1e-4
    }
}

/// The cross-check of one precision (module docs of `rkl_step_rate`): the
/// same parameters and base draws through both implementations must give
/// the same loss and gradient, else the comparison is void.
fn cross_check(python: &Path, ours: &Path, peer: &Path, lattice: usize, dtype: &str) -> Result<Value> {
    let dir = workspace_root().join("target/compare-torch");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("check_L{lattice}_{dtype}.json"));
    let file_s = file.display().to_string();
    let args = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let n = lattice.to_string();
    measure(
        ours,
        &args(&[
            "--lattice",
            &n,
            "--batch",
            "8",
            "--dtype",
            dtype,
            "--check-out",
            &file_s,
        ]),
        &[("RAYON_NUM_THREADS", "1".into())],
    )?;
    let peer_s = peer.display().to_string();
    let mut v = measure(
        python,
        &args(&[&peer_s, "--check", &file_s, "--threads", "1"]),
        &[("OMP_NUM_THREADS", "1".into())],
    )?;
    let (loss_err, grad_err) = (
        v["loss_rel_err"].as_f64().unwrap_or(f64::NAN),
        v["grad_rel_err"].as_f64().unwrap_or(f64::NAN),
    );
    let tol = check_tolerance(dtype);
    eprintln!(
        "xtask: cross-check {dtype}: same parameters and z give loss rel. err {loss_err:.1e}, gradient rel. err {grad_err:.1e} (tolerance {tol:.0e})"
    );
    if !(loss_err <= tol && grad_err <= tol) {
        bail!("cross-check {dtype}: PyTorch and fieldflow disagree (loss rel. err {loss_err:.2e}, gradient {grad_err:.2e} > {tol:.0e}): not the same computation");
    }
    let obj = v.as_object_mut().context("cross-check record is not an object")?;
    obj.retain(|k, _| k.ends_with("rel_err") || k == "batch");
    Ok(v)
}

/// One configuration's record from its runs: medians, ratio, GFLOP/s, load.
fn summarize(
    s: &Settings,
    dtype: &str,
    batch: usize,
    threads: usize,
    peer: Vec<Value>,
    ours: Vec<Value>,
) -> Result<Value> {
    let peer_rates: Vec<f64> = peer.iter().map(rate).collect::<Result<_>>()?;
    let our_rates: Vec<f64> = ours.iter().map(rate).collect::<Result<_>>()?;
    let (p_params, o_params) = (peer[0]["n_params"].as_u64(), ours[0]["n_params"].as_u64());
    if p_params != o_params {
        bail!("the architectures differ: PyTorch has {p_params:?} parameters, fieldflow {o_params:?}");
    }
    let flops = ours[0]["flops_per_step"]
        .as_f64()
        .context("fieldflow record without flops_per_step")?;
    let (p_med, o_med) = (median(&peer_rates), median(&our_rates));
    // Steps per CPU-second (all threads), where both sides report it.
    let cpu_rate = |runs: &[Value]| -> Option<f64> {
        let r: Option<Vec<f64>> = runs.iter().map(|v| v["steps_per_cpu_s"].as_f64()).collect();
        r.map(|r| median(&r))
    };
    let (p_cpu, o_cpu) = (cpu_rate(&peer), cpu_rate(&ours));
    let loads: Vec<f64> = peer
        .iter()
        .chain(&ours)
        .flat_map(|v| [v["load_before"].as_f64(), v["load_after"].as_f64()])
        .flatten()
        .collect();
    let load_mean = loads.iter().sum::<f64>() / loads.len().max(1) as f64;
    Ok(json!({
        "lattice": s.lattice,
        "dtype": dtype,
        "batch": batch,
        "threads": threads,
        "repeats": s.repeats,
        "torch_version": peer[0]["torch_version"],
        "n_params": o_params,
        "flops_per_step": flops,
        "torch_steps_per_s": p_med,
        "fieldflow_steps_per_s": o_med,
        "ratio": o_med / p_med,
        "torch_steps_per_cpu_s": p_cpu,
        "fieldflow_steps_per_cpu_s": o_cpu,
        "ratio_per_cpu_s": p_cpu.zip(o_cpu).map(|(p, o)| o / p),
        "fieldflow_gflops": o_med * flops * 1e-9,
        "torch_gflops": p_med * flops * 1e-9,
        "load_mean": load_mean,
        "torch_runs": peer,
        "fieldflow_runs": ours,
    }))
}

/// The Markdown table of the configurations.
fn table(rows: &[Value]) -> String {
    let mut t = String::from(
        "\n| precision | batch | threads | PyTorch steps/s | fieldflow steps/s | fieldflow / PyTorch \
         | fieldflow GFLOP/s | PyTorch steps/CPU-s | fieldflow steps/CPU-s | ratio per CPU-s | load avg |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2} | {:.2} | {:.1}× | {:.1} | {:.2} | {:.2} | {:.1}× | {:.1} |",
            r["dtype"].as_str().unwrap_or("?"),
            r["batch"],
            r["threads"],
            f("torch_steps_per_s"),
            f("fieldflow_steps_per_s"),
            f("ratio"),
            f("fieldflow_gflops"),
            f("torch_steps_per_cpu_s"),
            f("fieldflow_steps_per_cpu_s"),
            f("ratio_per_cpu_s"),
            f("load_mean"),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn timestamps_match_the_calendar() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(iso8601_utc(1_796_154_576), "2026-12-01T19:49:36Z");
        assert_eq!(iso8601_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn flags_set_the_grid_and_quick_only_changes_defaults() {
        let s = parse(&args("torch --quick --threads 2 --dtypes f32")).unwrap();
        assert!(s.quick);
        assert_eq!(s.threads, vec![2]);
        assert_eq!(s.batches, vec![64]);
        assert_eq!(s.dtypes, vec!["float32"]);
        assert_eq!(s.repeats, 1);
        let s = parse(&args("torch --batches 64,1024 --lattice 16 --repeats 5")).unwrap();
        assert_eq!(
            (s.batches, s.lattice, s.repeats, s.threads),
            (vec![64, 1024], 16, 5, vec![1, 2])
        );
    }

    #[test]
    fn bad_flags_are_named() {
        for (line, needle) in [
            ("", "needs a peer"),
            ("jax", "unknown peer `jax`"),
            ("torch --threads 0", "--threads 0"),
            ("torch --batches 64,x", "--batches 64,x"),
            ("torch --lattice 1", "--lattice 1"),
            ("torch --dtypes f16", "`f16`"),
            ("torch --min-seconds -1", "--min-seconds -1"),
            ("torch --omp-wait-policy spin", "--omp-wait-policy spin"),
            ("torch --repeats", "--repeats needs a value"),
            ("torch --frobnicate 1", "unknown flag `--frobnicate`"),
        ] {
            let err = parse(&args(line)).unwrap_err().to_string();
            assert!(err.contains(needle), "`{line}`: {err}");
        }
    }
}
