//! `reproduce diffusion`: critical slowing down of score training for the
//! free field (issue 17; docs/THEORY.md §6.11.6). Runs the example
//! `critical_slowing` of crates/diffusion for d = 2 (L = 8 … 128), d = 1
//! (L = 16 … 1024) and d = 3 (L = 8 … 32) at fixed m·L = 4, reads its JSON lines, and writes per
//! dimension a table of gradient-descent steps per architecture, diffusion
//! time and L, the generation table (Heun steps for the exact score), and a
//! log–log figure of steps against L at t = 0.01. Deterministic (the
//! population objective has no sampling noise), a few seconds of CPU.
//! Then generation with trained scores (example `trained_generation`, one
//! seed, d = 2 L = 8 … 32 and d = 1 L = 16 … 256; about two minutes): the
//! generated χ₂ and G(L/4) errors per architecture, the Gaussian local
//! model beside the plain ones (docs/THEORY.md §6.11.8).

use super::runner::{Captured, Runner};
use super::table::Table;
use anyhow::{bail, Context, Result};
use fieldflow_plot::{Figure, Series};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// (dimension, sizes, maximum GD steps).
const RUNS: [(usize, &str, &str); 3] = [
    (2, "8,16,32,64,128", "400000"),
    (1, "16,32,64,128,256,512,1024", "1000000"),
    (3, "8,12,16,24,32", "400000"),
];

const ARCHS: [&str; 5] = ["one_layer", "two_layer", "two_layer_xi", "local_r1", "local_r2"];

pub fn run(r: &mut Runner) -> Result<()> {
    let mut body = String::new();
    let mut csv = String::from("dim,kind,L,t,arch,steps,heun_steps_kl,heun_steps_chi2,chi2_rel_err\n");
    let mut figures = Vec::new();
    for (dim, sizes, max_steps) in RUNS {
        eprintln!("reproduce: diffusion critical slowing, d = {dim}, L = {sizes}");
        let dim_s = dim.to_string();
        let (run, rows) = run_example(
            r,
            "critical_slowing",
            &format!("critical_slowing_d{dim}"),
            &[
                "--dim",
                &dim_s,
                "--sizes",
                sizes,
                "--times",
                "0.01,0.1,0.5",
                "--max-steps",
                max_steps,
            ],
        )?;
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
        let cell = |x: Option<f64>| x.map_or("> max".to_string(), |s| format!("{s:.0}"));

        // Training table: one row per (t, arch), one column per L.
        let ls: Vec<f64> = rows
            .iter()
            .filter(|v| v["kind"] == "generation")
            .filter_map(|v| num(v, "L"))
            .collect();
        let mut header = vec![
            "t".to_string(),
            "architecture".to_string(),
            "params/level (largest L)".to_string(),
        ];
        header.extend(ls.iter().map(|l| format!("L = {l}")));
        let mut t = Table::new(&header.iter().map(String::as_str).collect::<Vec<_>>());
        for time in [0.01, 0.1, 0.5] {
            for arch in ARCHS {
                let pts: Vec<&Value> = rows
                    .iter()
                    .filter(|v| v["kind"] == "training" && v["arch"] == arch && num(v, "t") == Some(time))
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                let mut row = vec![
                    time.to_string(),
                    arch.to_string(),
                    pts.last()
                        .and_then(|v| num(v, "params"))
                        .map_or(String::new(), |p| p.to_string()),
                ];
                for &l in &ls {
                    let s = pts.iter().find(|v| num(v, "L") == Some(l));
                    row.push(s.map_or("–".into(), |v| cell(num(v, "steps"))));
                    if let Some(v) = s {
                        let _ = writeln!(
                            csv,
                            "{dim},training,{l},{time},{arch},{},,,",
                            num(v, "steps").map_or(String::new(), |s| s.to_string())
                        );
                    }
                }
                t.rows.push(row);
            }
        }
        let mut gen = Table::new(&[
            "L",
            "m²",
            "Heun steps, KL/site ≤ 1e-3",
            "Heun steps, χ₂ within 1 %",
            "χ₂ error at 4096 steps",
        ]);
        for v in rows.iter().filter(|v| v["kind"] == "generation") {
            let l = num(v, "L").unwrap_or(f64::NAN);
            let err = num(v, "chi2_rel_err_at_4096").unwrap_or(f64::NAN);
            gen.rows.push(vec![
                format!("{l}"),
                format!("{:.3e}", num(v, "m2").unwrap_or(f64::NAN)),
                cell(num(v, "heun_steps")).replace("> max", "> 4096"),
                cell(num(v, "heun_steps_chi2_1pc")).replace("> max", "> 4096"),
                format!("{:.2} %", 100.0 * err),
            ]);
            let _ = writeln!(
                csv,
                "{dim},generation,{l},,,,{},{},{err}",
                num(v, "heun_steps").map_or(String::new(), |s| s.to_string()),
                num(v, "heun_steps_chi2_1pc").map_or(String::new(), |s| s.to_string())
            );
        }
        let fits: String = run
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("fits:"))
            .map(|l| format!("    {l}\n"))
            .collect();
        let _ = write!(
            body,
            "### d = {dim}\n\nGradient-descent steps (step 1/H_max) to reduce the excess DSM loss of one noise level by 10⁻³, \
             free field at m·L = 4, VP schedule β 0.1 → 20:\n\n{}\nGeneration with the exact score (probability-flow ODE, Heun, t_min = 10⁻³):\n\n{}\nFits (from the example's output):\n\n{fits}\n",
            t.markdown(),
            gen.markdown()
        );
        let mut fig = Figure::new(
            &format!("Score training near criticality, d = {dim}, t = 0.01, m·L = 4"),
            "log10 L",
            "log10 gradient-descent steps",
        );
        for arch in ARCHS {
            fig.series.push(Series::line(
                arch,
                rows.iter()
                    .filter(|v| v["kind"] == "training" && v["arch"] == arch && num(v, "t") == Some(0.01))
                    .filter_map(|v| Some((num(v, "L")?.log10(), num(v, "steps")?.max(1.0).log10()))),
            ));
        }
        figures.push((dim, fig));
    }
    let (gen_md, gen_csv, gen_fig) = trained_generation(r)?;
    body.push_str(&gen_md);
    csv.push_str(&gen_csv);
    figures.push((0, gen_fig));
    r.section(
        "diffusion",
        "Diffusion: critical slowing down of score training (free field)",
        "Diffusion: critical slowing down of score training (issue 17)",
        body,
        &csv,
    )?;
    for (dim, fig) in figures {
        if dim == 0 {
            r.figure("diffusion_generation_d2", "generated χ₂ error against L, d = 2", fig);
        } else {
            r.figure(
                &format!("diffusion_d{dim}"),
                &format!("training steps against L, d = {dim}"),
                fig,
            );
        }
    }
    Ok(())
}

/// Runs `cargo run --release -p fieldflow-diffusion --example <example> --
/// <args> --out logs/<tag>.jsonl`, keeps its output in logs/<tag>.log and
/// returns it with the JSON lines it wrote.
fn run_example(r: &Runner, example: &str, tag: &str, args: &[&str]) -> Result<(Captured, Vec<Value>)> {
    let jsonl = r.path("logs", &format!("{tag}.jsonl"));
    let _ = std::fs::remove_file(&jsonl);
    let out = jsonl.display().to_string();
    let mut all = vec![
        "run",
        "--quiet",
        "--release",
        "-p",
        "fieldflow-diffusion",
        "--example",
        example,
        "--",
    ];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", &out]);
    let run = Captured::run(Path::new("cargo"), &all)?;
    std::fs::write(
        r.path("logs", &format!("{tag}.log")),
        format!("{}\n--- stderr ---\n{}", run.stdout, run.stderr),
    )?;
    if !run.ok {
        bail!("{example} example failed: {}", run.last_error());
    }
    let text = std::fs::read_to_string(&jsonl).with_context(|| format!("{}: cannot read", jsonl.display()))?;
    Ok((run, text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()))
}

/// (dimension, sizes) of the trained-generation runs.
const GENERATION_RUNS: [(usize, &str); 2] = [(2, "8,16,32"), (1, "16,64,256")];

/// The architectures of `trained_generation`, in its order.
const GENERATION_ARCHS: [&str; 6] = [
    "exact",
    "one_layer",
    "two_layer_xi",
    "local_r1",
    "local_r2",
    "gaussian_r1",
];

/// Generation with trained linear scores: markdown, CSV rows and the d = 2
/// figure of the generated χ₂ error against L.
fn trained_generation(r: &Runner) -> Result<(String, String, Figure)> {
    let mut md = String::from(
        "### Generation with trained scores

DSM with Adam (lr 0.05 → 5·10⁻⁴, cosine) on 2048 exact draws, batch 64, \
         4000 steps, 64 time levels, seed 1; the generated law of a linear score is an exact Gaussian, so every number \
         is free of sampling noise. Cells: χ₂ error / G(L/4) error (%) / KL per site, probability-flow ODE with 256 \
         Heun steps. The ensemble row is the χ₂ error of the 2048 draws themselves (±3.1 %): what a trained model \
         can at best reproduce.\n\n",
    );
    let mut csv = String::new();
    let mut fig = Figure::new(
        "Generated χ₂ of trained scores near criticality, d = 2, m·L = 4",
        "log10 L",
        "χ₂ error (%)",
    );
    for (dim, sizes) in GENERATION_RUNS {
        eprintln!("reproduce: diffusion generation with trained scores, d = {dim}, L = {sizes}");
        let dim_s = dim.to_string();
        let (_, rows) = run_example(
            r,
            "trained_generation",
            &format!("trained_generation_d{dim}"),
            &[
                "--dim",
                &dim_s,
                "--sizes",
                sizes,
                "--levels",
                "64",
                "--train-steps",
                "4000",
                "--reverse-steps",
                "16,64,256",
            ],
        )?;
        let at = |arch: &str, l: f64| {
            rows.iter().find(|v| {
                v["arch"] == arch
                    && v["integrator"] == "heun_ode"
                    && v["reverse_steps"].as_f64() == Some(256.0)
                    && v["L"].as_f64() == Some(l)
            })
        };
        let ls: Vec<f64> = sizes.split(',').filter_map(|x| x.parse().ok()).collect();
        let mut header = vec!["architecture".to_string()];
        header.extend(ls.iter().map(|l| format!("L = {l}")));
        let mut t = Table::new(&header.iter().map(String::as_str).collect::<Vec<_>>());
        let mut ensemble = vec!["(the ensemble's own χ₂)".to_string()];
        for &l in &ls {
            let e = at("exact", l).and_then(|v| v["data_chi2_rel_err"].as_f64());
            ensemble.push(e.map_or("–".into(), |e| format!("{:+.1}", 100.0 * e)));
        }
        t.rows.push(ensemble);
        for arch in GENERATION_ARCHS {
            let mut row = vec![arch.to_string()];
            let mut pts = Vec::new();
            for &l in &ls {
                let Some(v) = at(arch, l) else {
                    row.push("–".into());
                    continue;
                };
                let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                let (chi2, g, kl) = (f("chi2_rel_err"), f("g_rel_err"), f("kl_per_site"));
                row.push(format!("{:+.1} / {:+.1} / {kl:.1e}", 100.0 * chi2, 100.0 * g));
                // chi2_rel_err: at 256 Heun steps here, at 4096 for the exact-score rows.
                let _ = writeln!(csv, "{dim},trained_generation,{l},,{arch},,,,{chi2}");
                pts.push((l.log10(), 100.0 * chi2));
            }
            t.rows.push(row);
            if dim == 2 {
                fig.series.push(Series::line(arch, pts));
            }
        }
        let _ = write!(
            md,
            "d = {dim}:

{}
",
            t.markdown()
        );
    }
    Ok((md, csv, fig))
}
