//! Critical slowing down of score training and generation for the free field
//! (issue 17; docs/THEORY.md §6.11.6; docs/RESULTS.md "Diffusion").
//!
//! For each lattice size L (d = 1 or 2) at fixed m·L (m → 0 as L grows, the
//! approach to criticality) and each diffusion time t, gradient descent
//! with the step 1/H_max its objective allows trains one noise level of each
//! architecture on the exact population DSM objective (no sampling noise),
//! from its initialization, until the excess loss over the architecture's
//! own optimum has fallen by the factor `tol`. The number of steps is the
//! training time. The exponent z of steps ∝ L^z is fitted by least squares
//! in log–log (its error from the residuals).
//!
//! Then generation: for the exact score, the number of probability-flow
//! (Heun) steps needed to bring the KL per site below `kl` (the doubling
//! search 8, 16, … ).
//!
//! Usage: cargo run --release -p fieldflow-diffusion --example critical_slowing --
//!        [--dim 2] [--sizes 8,16,32,64] [--ml 4] [--times 0.01,0.1,0.5]
//!        [--tol 1e-3] [--kl 1e-3] [--max-steps 2000000] [--out FILE.jsonl]
//! Prints a table; with --out appends one JSON object per measurement.

use fieldflow_diffusion::dsm::population_at;
use fieldflow_diffusion::train::max_curvature;
use fieldflow_diffusion::{
    spectrum_of, Architecture, ExactScore, FieldScore, GaussianField, Integrator, ReverseSampler, ScoreModel, TimeGrid,
};
use std::io::Write;

mod common;
use common::VP;

struct Args {
    dim: usize,
    sizes: Vec<usize>,
    ml: f64,
    times: Vec<f64>,
    tol: f64,
    kl: f64,
    max_steps: usize,
    out: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        dim: 2,
        sizes: vec![8, 16, 32, 64],
        ml: 4.0,
        times: vec![0.01, 0.1, 0.5],
        tol: 1e-3,
        kl: 1e-3,
        max_steps: 2_000_000,
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let list = |s: &str| -> Result<Vec<f64>, String> {
        s.split(',')
            .map(|x| x.parse().map_err(|_| format!("not a number: {x}")))
            .collect()
    };
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).ok_or(format!("{} needs a value", argv[i]))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{}: not a number: {v}", argv[i]));
        match argv[i].as_str() {
            "--dim" => a.dim = num(v)? as usize,
            "--sizes" => a.sizes = list(v)?.into_iter().map(|x| x as usize).collect(),
            "--ml" => a.ml = num(v)?,
            "--times" => a.times = list(v)?,
            "--tol" => a.tol = num(v)?,
            "--kl" => a.kl = num(v)?,
            "--max-steps" => a.max_steps = num(v)? as usize,
            "--out" => a.out = Some(v.clone()),
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    if !(1..=3).contains(&a.dim) || a.sizes.is_empty() || a.sizes.iter().any(|&l| l < 5) {
        return Err("need 1 ≤ dim ≤ 3 and sizes ≥ 5".into());
    }
    Ok(a)
}

/// Solves the dense n × n system h x = b (Gaussian elimination with partial
/// pivoting; n is the handful of local taps).
fn solve(mut h: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| h[i * n + c].abs().total_cmp(&h[j * n + c].abs()))
            .unwrap();
        for k in 0..n {
            h.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = h[r * n + c] / h[c * n + c];
            for k in c..n {
                h[r * n + k] -= f * h[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| h[c * n + k] * x[k]).sum();
        x[c] = (b[c] - s) / h[c * n + c];
    }
    x
}

struct Outcome {
    steps: Option<usize>,
    lr: f64,
    params: usize,
    floor: f64,
}

/// Gradient descent on one noise level until the excess over the optimum
/// has fallen by `tol`.
fn train_level(arch: Architecture, field: &GaussianField, t: f64, tol: f64, max_steps: usize) -> Outcome {
    let grid = TimeGrid { t_min: t, levels: 2 };
    let model = ScoreModel::with_schedule(arch, grid, field.spectrum().clone(), &VP).unwrap();
    let n = model.params_per_level();
    let v = field.eigenvalues().len();
    // The objective at level-0 parameters p, evaluated on one scratch model.
    let scratch = std::cell::RefCell::new(model.clone());
    let f = |p: &[f64]| {
        let mut m = scratch.borrow_mut();
        m.params[..n].copy_from_slice(p);
        population_at(&m, &VP, field, t)
    };
    let level0 = |g: Vec<f64>| g[..n].to_vec();
    // Curvature: constant for the quadratic one-layer and local objectives;
    // at the balanced optimum b = −c = √(1/Σ_k) for the two-layer one.
    let mut at = model.params[..n].to_vec();
    let mut exact = vec![0.0; v];
    ExactScore {
        field: field.clone(),
        schedule: VP,
    }
    .multipliers(t, &mut exact);
    if let Architecture::TwoLayer { .. } = arch {
        for k in 0..v {
            at[k] = (-exact[k]).sqrt();
            at[v + k] = -at[k];
        }
    }
    // Gradient descent must be stable along the whole path: for the
    // two-layer model the curvature of a mode at the initialization,
    // (λ/V) Σ_k (b² + c²), exceeds its value at the optimum when
    // Σ_k · 2 init² > 2, i.e. for the infrared modes near criticality.
    let h = max_curvature(|p| level0(f(p).1), &at).max(max_curvature(|p| level0(f(p).1), &model.params[..n]));
    // The architecture's optimum: exact for one and two layers; for the
    // local model the minimizer of its quadratic, from the normal equations.
    let floor = match arch {
        Architecture::Local { .. } => {
            let g0 = level0(f(&vec![0.0; n]).1);
            let mut hm = vec![0.0; n * n];
            for j in 0..n {
                let mut e = vec![0.0; n];
                e[j] = 1.0;
                let gj = level0(f(&e).1);
                for i in 0..n {
                    hm[i * n + j] = gj[i] - g0[i];
                }
            }
            let w = solve(hm, g0.iter().map(|g| -g).collect(), n);
            f(&w).0
        }
        _ => 0.0,
    };
    let lr = 1.0 / h;
    let mut theta = model.params[..n].to_vec();
    let (first, _) = f(&theta);
    let goal = floor + tol * (first - floor);
    for step in 0..max_steps {
        let (loss, grad) = f(&theta);
        if loss <= goal {
            return Outcome {
                steps: Some(step),
                lr,
                params: n,
                floor,
            };
        }
        for (p, g) in theta.iter_mut().zip(&grad[..n]) {
            *p -= lr * g;
        }
    }
    Outcome {
        steps: None,
        lr,
        params: n,
        floor,
    }
}

/// Heun steps (doubling from 4, at most 4096) for the exact score to reach
/// KL ≤ `kl` per site, and to bring the generated χ₂ (the zero-momentum
/// variance) within 1 % of the target's (`None` if 4096 steps do not: the
/// prior N(0, I) misses the infrared mode's variance α(1)² c₀ at t = 1, a
/// floor no step count removes). Also the relative χ₂ error at 4096 steps.
fn generation_steps(field: &GaussianField, kl: f64) -> (Option<usize>, f64, Option<usize>, f64) {
    let score = ExactScore {
        field: field.clone(),
        schedule: VP,
    };
    let variances = |steps| {
        ReverseSampler {
            schedule: VP,
            integrator: Integrator::ProbabilityFlowHeun,
            steps,
            t_min: 1e-3,
        }
        .generated_variances(&score)
    };
    let chi2_err = |v: &[f64]| (v[0] / field.eigenvalues()[0] - 1.0).abs();
    let first = |ok: &dyn Fn(&[f64]) -> bool| (2..=12).map(|p| 1usize << p).find(|&s| ok(&variances(s)));
    let kl_steps = first(&|v| field.kl_per_site(v) <= kl);
    let chi2_steps = first(&|v| chi2_err(v) <= 0.01);
    let fine = variances(4096);
    (kl_steps, field.kl_per_site(&fine), chi2_steps, chi2_err(&fine))
}

/// Least-squares slope of y on x, its standard error and the residual
/// root mean square.
fn fit(lx: &[f64], ly: &[f64]) -> (f64, f64, f64) {
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = lx.iter().zip(ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let res: f64 = lx
        .iter()
        .zip(ly)
        .map(|(x, y)| (y - my - slope * (x - mx)).powi(2))
        .sum();
    if lx.len() < 3 {
        return (slope, f64::NAN, 0.0);
    }
    (slope, (res / (n - 2.0) / sxx).sqrt(), (res / n).sqrt())
}

fn main() {
    let args = common::args_or_exit(parse());
    let mut out = common::append_to(args.out.as_ref());
    println!(
        "d = {}, m·L = {}, VP β 0.1→20; GD steps to reduce the excess DSM loss by {:e}",
        args.dim, args.ml, args.tol
    );
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for &l in &args.sizes {
        let m = args.ml / l as f64;
        let shape = vec![l; args.dim];
        let field = GaussianField::free_field(spectrum_of(&shape).unwrap(), m * m).unwrap();
        let (gen_steps, fine_kl, chi2_steps, fine_chi2) = generation_steps(&field, args.kl);
        let show = |s: Option<usize>| s.map_or("> 4096".to_string(), |s| s.to_string());
        let json = |s: Option<usize>| s.map_or("null".to_string(), |s| s.to_string());
        println!(
            "L = {l:4}  m² = {:.3e}  generation (exact score, Heun): {} steps for KL/site ≤ {:e}, {} for χ₂ within 1 %; at 4096 steps KL/site {fine_kl:.2e}, χ₂ error {:.2} %",
            m * m,
            show(gen_steps),
            args.kl,
            show(chi2_steps),
            100.0 * fine_chi2
        );
        if let Some(f) = out.as_mut() {
            writeln!(
                f,
                "{{\"kind\":\"generation\",\"dim\":{},\"L\":{l},\"m2\":{},\"kl\":{},\"heun_steps\":{},\"heun_steps_chi2_1pc\":{},\"kl_at_4096\":{fine_kl},\"chi2_rel_err_at_4096\":{fine_chi2}}}",
                args.dim,
                m * m,
                args.kl,
                json(gen_steps),
                json(chi2_steps)
            )
            .unwrap();
        }
        // Two-layer at a fixed initialization, and at one shrinking with the
        // correlation length (init = m/2 = 1/(2ξ)), which keeps the
        // infrared curvature at the initialization below the optimum's.
        let archs = [
            ("one_layer", Architecture::OneLayer),
            ("two_layer", Architecture::TwoLayer { init: 0.1 }),
            ("two_layer_xi", Architecture::TwoLayer { init: 0.5 * m }),
            ("local_r1", Architecture::local(1)),
            ("local_r2", Architecture::local(2)),
        ];
        for &t in &args.times {
            for (name, arch) in archs {
                if let Architecture::Local { range, .. } = arch {
                    if 2 * range + 1 > l {
                        continue;
                    }
                }
                let o = train_level(arch, &field, t, args.tol, args.max_steps);
                let steps = o.steps.map_or("> max".to_string(), |s| s.to_string());
                println!(
                    "   t = {t:<5} {name:<10} params/level {:6}  lr {:.3e}  floor {:.3e}  steps {steps}",
                    o.params, o.lr, o.floor
                );
                if let Some(f) = out.as_mut() {
                    writeln!(
                        f,
                        "{{\"kind\":\"training\",\"dim\":{},\"L\":{l},\"m2\":{},\"t\":{t},\"arch\":\"{name}\",\"params\":{},\"lr\":{},\"floor\":{},\"tol\":{},\"steps\":{}}}",
                        args.dim,
                        m * m,
                        o.params,
                        o.lr,
                        o.floor,
                        args.tol,
                        o.steps.map_or("null".to_string(), |s| s.to_string())
                    )
                    .unwrap();
                }
                if let Some(s) = o.steps {
                    let key = format!("{name} t={t}");
                    match series.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, pts)) => pts.push((l as f64, s.max(1) as f64)),
                        None => series.push((key, vec![(l as f64, s.max(1) as f64)])),
                    }
                }
            }
        }
    }
    println!("\nfits: power law steps ∝ L^z (least squares in log–log) and logarithm steps = a + b ln L;");
    println!("relative residual rms of each (the smaller says which law the data follow):");
    for (key, pts) in &series {
        if pts.len() >= 2 {
            let lx: Vec<f64> = pts.iter().map(|p| p.0.ln()).collect();
            let ly: Vec<f64> = pts.iter().map(|p| p.1.ln()).collect();
            let y: Vec<f64> = pts.iter().map(|p| p.1).collect();
            let (z, dz, rz) = fit(&lx, &ly);
            let (b, db, rb) = fit(&lx, &y);
            let mean = y.iter().sum::<f64>() / y.len() as f64;
            println!(
                "  {key:<22} z = {z:6.3} ± {dz:.3} (rms {rz:.3})   b = {b:8.2} ± {db:.2} (rms {:.3})   ({} sizes)",
                rb / mean,
                pts.len()
            );
        }
    }
}
