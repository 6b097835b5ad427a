//! The command-line tool's figures (SVG): analysis and training figures built
//! from the generic [`Figure`] of `fieldflow-plot`, and 2-D density heat maps.

use crate::analysis::FileAnalysis;
use anyhow::{Context, Result};
use fieldflow_plot::{histogram, Figure, Series};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// File-name stem of an input file for figure names.
fn stem(file: &str) -> String {
    Path::new(file)
        .file_name()
        .map(|s| s.to_string_lossy().replace(".h5", "").replace('.', "_"))
        .unwrap_or_default()
}

/// The analysis figures of one file: M history and histogram, ρ(t) and
/// τ_int(W) of M with the chosen window, C(t) and m_eff(t).
pub fn analysis_figures(a: &FileAnalysis, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let name = stem(&a.file);
    let mut written = vec![];
    let mut save = |fig: Figure, what: &str| -> Result<()> {
        let p = dir.join(format!("{name}_{what}.svg"));
        fig.save(&p)?;
        written.push(p);
        Ok(())
    };
    let mut hist = Figure::new(&format!("Monte Carlo history of M ({name})"), "configuration", "M");
    for (c, h) in a.m_history.iter().enumerate().take(4) {
        hist.series.push(Series::line(
            format!("chain {c}"),
            h.iter().enumerate().map(|(i, &m)| (i as f64, m)),
        ));
    }
    save(hist, "history_M")?;
    let mut h = Figure::new(&format!("Histogram of M ({name})"), "M", "density");
    h.series.push(Series::line(
        "all chains",
        histogram(a.m_history.iter().flatten().copied(), 60),
    ));
    save(h, "histogram_M")?;
    if let Some(r) = a.row("abs_M") {
        let mut rho = Figure::new(&format!("Normalized autocorrelation of |M| ({name})"), "t", "ρ(t)");
        rho.series.push(Series::line(
            "ρ(t)",
            r.rho.iter().enumerate().map(|(t, &v)| (t as f64, v)),
        ));
        rho.marker = Some((r.window as f64, format!("window W = {}", r.window)));
        save(rho, "rho_absM")?;
        let mut tau = Figure::new(&format!("τ_int of |M| versus window ({name})"), "W", "τ_int(W)");
        tau.series.push(Series::line(
            "τ_int(W)",
            r.tau_int_vs_window.iter().enumerate().map(|(w, &v)| (w as f64, v)),
        ));
        tau.marker = Some((r.window as f64, format!("W = {}, τ_int = {:.2}", r.window, r.tau_int)));
        save(tau, "tau_int_absM")?;
    }
    let pick = |prefix: &str| -> Vec<(f64, f64, f64, Option<f64>)> {
        a.rows
            .iter()
            .filter_map(|r| {
                let t = r
                    .observable
                    .strip_prefix(prefix)?
                    .strip_suffix(')')?
                    .parse::<f64>()
                    .ok()?;
                Some((t, r.value, r.error, r.exact))
            })
            .collect()
    };
    for (prefix, what, label) in [("C(", "correlator", "C(t)"), ("m_eff(", "effective_mass", "m_eff(t)")] {
        let pts = pick(prefix);
        if pts.is_empty() {
            continue;
        }
        let mut f = Figure::new(&format!("{label} ({name})"), "t", label);
        f.series
            .push(Series::points("estimate", pts.iter().map(|p| (p.0, p.1, p.2))));
        if pts.iter().all(|p| p.3.is_some()) {
            f.series.push(Series::line(
                "exact (free field)",
                pts.iter().map(|p| (p.0, p.3.unwrap_or(f64::NAN))),
            ));
        }
        save(f, what)?;
    }
    Ok(written)
}

/// Training curves (loss parts, ESS, acceptance, NLL vs step) and, for 2-D
/// targets, the target density beside the flow density (flows only) and a
/// scatter of the model's samples. Files are named `{prefix}_*.svg`.
pub fn training_figures(
    metrics: &std::collections::BTreeMap<String, Vec<f64>>,
    target: &crate::target::RunTarget,
    model: &crate::model::Sampler,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let mut written = vec![];
    let steps = metrics.get("step").cloned().unwrap_or_default();
    let curve = |name: &str| -> Option<Series> {
        let v = metrics.get(name)?;
        let pts: Vec<(f64, f64)> = steps
            .iter()
            .zip(v)
            .map(|(&s, &y)| (s, y))
            .filter(|p| p.1.is_finite())
            .collect();
        (!pts.is_empty()).then(|| Series::line(name, pts))
    };
    for (what, title, names) in [
        (
            "loss",
            "Training loss and its parts",
            &["loss", "fkl", "rkl", "sm", "fkl_is"][..],
        ),
        (
            "ess_acceptance",
            "ESS and estimated IMH acceptance",
            &["ess", "acceptance"][..],
        ),
        ("nll", "Held-out NLL and RKL estimate", &["nll", "rkl_estimate"][..]),
    ] {
        let mut f = Figure::new(title, "step", what);
        f.series.extend(names.iter().filter_map(|n| curve(n)));
        if !f.series.is_empty() {
            let p = dir.join(format!("{prefix}_{what}.svg"));
            f.save(&p)?;
            written.push(p);
        }
    }
    if target.as_target().dim() == 2 {
        written.extend(density_figures(target, model, dir, prefix)?);
    }
    Ok(written)
}

/// Heat maps of p̃ (normalized on the grid) and, for a flow, q on one
/// common grid, and a scatter of the model's samples (an SNF's: ends of
/// paths) over exact samples of the target. The grid covers the target's
/// range (its exact samples, where it has an exact sampler) as well as the
/// model's, and every mode is marked with its exact weight, so a collapsed
/// model is visible at a glance: an empty mode, not a zoom onto the one it
/// kept.
fn density_figures(
    run_target: &crate::target::RunTarget,
    model: &crate::model::Sampler,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<PathBuf>> {
    use fieldflow_core::{Par, Proposal, Seed};
    use ndarray::{Array1, Array2};
    let target = run_target.as_target();
    let n_draw = 2000;
    let mut xs = Array2::zeros((n_draw, 2));
    let mut lq = Array1::zeros(n_draw);
    model.draw_batch(Seed::new(12345), xs.view_mut(), lq.view_mut(), Par::default());
    let exact = match run_target {
        crate::target::RunTarget::Synthetic(s) => s.exact_sampler().map(|e| {
            let mut ys = Array2::zeros((n_draw, 2));
            e.sample_batch(Seed::new(54321), ys.view_mut(), Par::default());
            ys
        }),
        crate::target::RunTarget::Phi4(_) => None,
    };
    // Each mode's centre (mean of the exact samples assigned to it) and
    // exact weight.
    let marks: Vec<(f64, f64, String)> = match (&exact, run_target.modes()) {
        (Some(ys), Some(modes)) if modes.n_modes() > 1 => {
            let weights = modes.true_weights();
            let mut sums = vec![(0.0, 0.0, 0usize); modes.n_modes()];
            for r in ys.rows() {
                let k = modes.assign(r);
                sums[k] = (sums[k].0 + r[0], sums[k].1 + r[1], sums[k].2 + 1);
            }
            sums.iter()
                .enumerate()
                .filter(|(_, s)| s.2 > 0)
                .map(|(k, s)| {
                    let w = weights.as_ref().map_or(String::new(), |w| format!(" w={:.3}", w[k]));
                    (s.0 / s.2 as f64, s.1 / s.2 as f64, format!("mode {k}{w}"))
                })
                .collect()
        }
        _ => Vec::new(),
    };
    // Grid covering the target's exact samples, the flow samples and a margin.
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for r in xs.rows().into_iter().chain(exact.iter().flat_map(|e| e.rows())) {
        for k in 0..2 {
            if r[k].is_finite() {
                lo[k] = lo[k].min(r[k]);
                hi[k] = hi[k].max(r[k]);
            }
        }
    }
    let n = 80;
    let pad: Vec<f64> = (0..2).map(|k| 0.15 * (hi[k] - lo[k]).max(1.0)).collect();
    let axis = |k: usize, i: usize| lo[k] - pad[k] + (hi[k] - lo[k] + 2.0 * pad[k]) * (i as f64 + 0.5) / n as f64;
    let mut grid = Array2::zeros((n * n, 2));
    for i in 0..n {
        for j in 0..n {
            grid[[i * n + j, 0]] = axis(0, i);
            grid[[i * n + j, 1]] = axis(1, j);
        }
    }
    let mut log_p = Array1::zeros(n * n);
    target.log_prob_batch(grid.view(), log_p.view_mut(), Par::default());
    // The model's density where it is tractable (flows; an SNF's marginal is not).
    let log_q = model.density().map(|density| {
        let mut log_q = Array1::zeros(n * n);
        density.log_q_batch(grid.view(), log_q.view_mut(), Par::default());
        log_q
    });
    let mut written = vec![];
    let cell = [
        (hi[0] - lo[0] + 2.0 * pad[0]) / n as f64,
        (hi[1] - lo[1] + 2.0 * pad[1]) / n as f64,
    ];
    let maps = std::iter::once(("target_density", &log_p)).chain(log_q.as_ref().map(|q| ("flow_density", q)));
    for (what, values) in maps {
        let max = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::MIN, f64::max);
        let p = dir.join(format!("{prefix}_{what}.svg"));
        let root = SVGBackend::new(&p, (560, 520)).into_drawing_area();
        let draw = || -> Result<(), String> {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let x0 = lo[0] - pad[0];
            let y0 = lo[1] - pad[1];
            let mut chart = ChartBuilder::on(&root)
                .caption(what.replace('_', " "), ("sans-serif", 22))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(45)
                .build_cartesian_2d(x0..x0 + n as f64 * cell[0], y0..y0 + n as f64 * cell[1])
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("x₀")
                .y_desc("x₁")
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series((0..n * n).map(|k| {
                    let (i, j) = (k / n, k % n);
                    let v = (values[k] - max).exp();
                    let c = (255.0 * (1.0 - v.clamp(0.0, 1.0))) as u8;
                    let (x, y) = (x0 + i as f64 * cell[0], y0 + j as f64 * cell[1]);
                    Rectangle::new([(x, y), (x + cell[0], y + cell[1])], RGBColor(c, c, 255).filled())
                }))
                .map_err(|e| e.to_string())?;
            for (x, y, label) in &marks {
                chart
                    .draw_series(std::iter::once(Cross::new((*x, *y), 6, RED.stroke_width(2))))
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        (*x, *y),
                        ("sans-serif", 13).into_font().color(&RED),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        draw().map_err(|e| anyhow::anyhow!("{}: cannot draw figure: {e}", p.display()))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("{}: cannot write figure: {e}", p.display()))?;
        written.push(p.clone());
    }
    let mut sc = Figure::new("Flow samples over exact target samples", "x₀", "x₁");
    if let Some(ys) = &exact {
        sc.series.push(Series::points(
            "target (exact samples)",
            ys.rows().into_iter().map(|r| (r[0], r[1], 0.0)),
        ));
    }
    if !marks.is_empty() {
        sc.series.push(Series::points(
            "mode centres",
            marks.iter().map(|(x, y, _)| (*x, *y, 0.0)),
        ));
    }
    sc.series.push(Series::points(
        "flow samples",
        xs.rows().into_iter().map(|r| (r[0], r[1], 0.0)),
    ));
    let p = dir.join(format!("{prefix}_samples.svg"));
    sc.save(&p)?;
    written.push(p);
    Ok(written)
}
