//! Generation with *trained* scores near criticality (issue 17;
//! docs/THEORY.md §6.11.6; docs/RESULTS.md "Diffusion").
//!
//! The free field at fixed m·L (ξ = 1/m = L/(m·L) grows with L). Each linear
//! architecture (one-layer, two-layer with init 1/(2ξ), local r = 1, 2) is
//! trained the way a user trains it: Adam with a cosine-decaying rate on
//! denoising score matching over minibatches of a finite ensemble of exact
//! draws, all time levels at once, the same budget at every L. A linear
//! score generates an exact Gaussian with covariance eigenvalues v_k
//! ([`ReverseSampler::generated_variances`]), so the quality of generation
//! has no sampling noise: for every integrator and number of reverse steps,
//!
//! * KL(generated ‖ target) per site, (1/2V) Σ_k [v_k/c_k − 1 − ln(v_k/c_k)];
//! * the relative error of χ₂ = V⟨M²⟩ = v_0 (the zero mode) against c_0;
//! * the relative error of G(r) = (1/V) Σ_k v_k cos(k·r) at r = (L/4, 0, …).
//!
//! The exact score with the same samplers is the reference row: it separates
//! what the discretization and the prior N(0, I) cost from what training
//! costs.
//!
//! Usage: cargo run --release -p fieldflow-diffusion --example trained_generation --
//!        [--dim 2] [--sizes 8,16,32] [--ml 4] [--data 2048] [--batch 64]
//!        [--train-steps 2000] [--lr 0.05] [--levels 16] [--seed 1]
//!        [--reverse-steps 8,16,32,64,128,256] [--archs NAME,…] [--out FILE.jsonl]
//! Prints a table; with --out appends one JSON object per measurement.

use fieldflow_core::{ExactSampler, Par, Seed};
use fieldflow_diffusion::train::{train, Objective, Optimizer, Training};
use fieldflow_diffusion::{
    spectrum_of, Architecture, ExactScore, GaussianField, Integrator, ReverseSampler, ScoreModel, TimeGrid,
};
use fieldflow_losses::LrSchedule;
use ndarray::Array2;
use std::io::Write;
use std::time::Instant;

mod common;
use common::VP;

const INTEGRATORS: [(&str, Integrator); 3] = [
    ("heun_ode", Integrator::ProbabilityFlowHeun),
    ("exponential_sde", Integrator::ExponentialEuler),
    ("euler_maruyama", Integrator::EulerMaruyama),
];

struct Args {
    dim: usize,
    sizes: Vec<usize>,
    ml: f64,
    data: usize,
    batch: usize,
    train_steps: usize,
    lr: f64,
    levels: usize,
    seed: u64,
    reverse_steps: Vec<usize>,
    /// Trained architectures to run (all when empty).
    archs: Vec<String>,
    out: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        dim: 2,
        sizes: vec![8, 16, 32],
        ml: 4.0,
        data: 2048,
        batch: 64,
        train_steps: 2000,
        lr: 0.05,
        levels: 16,
        seed: 1,
        reverse_steps: vec![8, 16, 32, 64, 128, 256],
        archs: Vec::new(),
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let v = argv.get(i + 1).ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: not a number: {v}"));
        let count = |v: &str| v.parse::<usize>().map_err(|_| format!("{flag}: not a count: {v}"));
        let counts = |v: &str| v.split(',').map(count).collect::<Result<Vec<_>, _>>();
        match flag {
            "--dim" => a.dim = count(v)?,
            "--sizes" => a.sizes = counts(v)?,
            "--ml" => a.ml = num(v)?,
            "--data" => a.data = count(v)?,
            "--batch" => a.batch = count(v)?,
            "--train-steps" => a.train_steps = count(v)?,
            "--lr" => a.lr = num(v)?,
            "--levels" => a.levels = count(v)?,
            "--seed" => a.seed = count(v)? as u64,
            "--reverse-steps" => a.reverse_steps = counts(v)?,
            "--archs" => a.archs = v.split(',').map(str::to_string).collect(),
            "--out" => a.out = Some(v.clone()),
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    if !(1..=3).contains(&a.dim) || a.sizes.is_empty() || a.sizes.iter().any(|&l| l < 5) {
        return Err("need 1 ≤ dim ≤ 3 and sizes ≥ 5".into());
    }
    if a.data == 0 || a.batch == 0 || a.levels < 2 || a.reverse_steps.contains(&0) || !(a.ml > 0.0 && a.lr > 0.0) {
        return Err("need --data, --batch, --reverse-steps > 0, --levels ≥ 2, --ml and --lr > 0".into());
    }
    Ok(a)
}

/// KL per site, relative χ₂ error and relative G(L/4) error of a generated
/// Gaussian with eigenvalues `v` against `field`.
fn quality(field: &GaussianField, v: &[f64], cos_r: &[f64]) -> (f64, f64, f64) {
    let c = field.eigenvalues();
    let g = |w: &[f64]| w.iter().zip(cos_r).map(|(a, b)| a * b).sum::<f64>() / w.len() as f64;
    (field.kl_per_site(v), v[0] / c[0] - 1.0, g(v) / g(c) - 1.0)
}

fn main() {
    let args = common::args_or_exit(parse());
    let mut out = common::append_to(args.out.as_ref());
    println!(
        "d = {}, m·L = {}, VP β 0.1→20, t_min 1e-3, {} levels; DSM on {} exact draws, Adam lr {} → {} (cosine), \
         batch {}, {} steps; quality of the generated Gaussian (exact, no sampling noise)",
        args.dim,
        args.ml,
        args.levels,
        args.data,
        args.lr,
        args.lr / 100.0,
        args.batch,
        args.train_steps
    );
    let grid = TimeGrid {
        t_min: 1e-3,
        levels: args.levels,
    };
    for &l in &args.sizes {
        let m = args.ml / l as f64;
        let shape = vec![l; args.dim];
        let spectrum = spectrum_of(&shape).unwrap();
        let field = GaussianField::free_field(spectrum.clone(), m * m).unwrap();
        let mut r = vec![0i64; args.dim];
        r[0] = (l / 4) as i64;
        let mut cos_r = vec![0.0; spectrum.volume()];
        spectrum.cosines(&r, &mut cos_r);
        let mut data = Array2::zeros((args.data, spectrum.volume()));
        field.sample_batch(Seed::new(args.seed).child(l as u64), data.view_mut(), Par::default());
        // The ensemble's own χ₂ = V⟨M²⟩ (the mean is known to be 0): what
        // a model trained on it can at best reproduce.
        let vol = spectrum.volume() as f64;
        let data_chi2 = data.rows().into_iter().map(|r| r.sum().powi(2) / vol).sum::<f64>() / args.data as f64;
        let data_chi2_err = data_chi2 / field.eigenvalues()[0] - 1.0;
        let mut report = |name: &str, score: &dyn Fn(&ReverseSampler) -> Vec<f64>, train_seconds: f64| {
            for (iname, integrator) in INTEGRATORS {
                let mut cells = Vec::new();
                for &n in &args.reverse_steps {
                    let sampler = ReverseSampler {
                        schedule: VP,
                        integrator,
                        steps: n,
                        t_min: grid.t_min,
                    };
                    let (kl, chi2, g) = quality(&field, &score(&sampler), &cos_r);
                    cells.push(format!("{kl:.1e}/{:+.1}%/{:+.1}%", 100.0 * chi2, 100.0 * g));
                    if let Some(f) = out.as_mut() {
                        writeln!(
                            f,
                            "{{\"dim\":{},\"L\":{l},\"m2\":{},\"arch\":\"{name}\",\"integrator\":\"{iname}\",\"reverse_steps\":{n},\
                             \"kl_per_site\":{kl},\"chi2_rel_err\":{chi2},\"g_rel_err\":{g},\"train_seconds\":{train_seconds},\
                             \"train_steps\":{},\"data\":{},\"data_chi2_rel_err\":{data_chi2_err},\"batch\":{},\"levels\":{},\"seed\":{}}}",
                            args.dim,
                            m * m,
                            args.train_steps,
                            args.data,
                            args.batch,
                            args.levels,
                            args.seed
                        )
                        .unwrap();
                    }
                }
                println!("  L = {l:4} {name:<13} {iname:<16} {}", cells.join("  "));
            }
        };
        println!(
            "L = {l} (m² = {:.3e}); the ensemble's χ₂ error {:+.1}% (±{:.1}%); cells KL/site / χ₂ error / G(L/4) error at {:?} reverse steps",
            m * m,
            100.0 * data_chi2_err,
            100.0 * (2.0 / args.data as f64).sqrt(),
            args.reverse_steps
        );
        let exact = ExactScore {
            field: field.clone(),
            schedule: VP,
        };
        report("exact", &|s: &ReverseSampler| s.generated_variances(&exact), 0.0);
        let archs = [
            ("one_layer", Architecture::OneLayer),
            ("two_layer_xi", Architecture::TwoLayer { init: 0.5 * m }),
            ("local_r1", Architecture::local(1)),
            ("local_r2", Architecture::local(2)),
            ("gaussian_r1", Architecture::gaussian_local(1)),
        ];
        for (name, arch) in archs {
            if !args.archs.is_empty() && !args.archs.iter().any(|a| a == name) {
                continue;
            }
            let mut model = ScoreModel::with_schedule(arch, grid, spectrum.clone(), &VP).unwrap();
            let how = Training {
                optimizer: Optimizer::Adam { lr: args.lr },
                lr_schedule: LrSchedule::Cosine {
                    total_steps: args.train_steps as u64,
                    min_lr: args.lr / 100.0,
                },
                steps: args.train_steps,
                seed: Seed::new(args.seed).child(1000 + l as u64),
                par: Par::default(),
            };
            let start = Instant::now();
            let objective = Objective::Data {
                data: data.view(),
                batch: args.batch,
            };
            train(&mut model, &VP, objective, &how, |_, _, _| true);
            let seconds = start.elapsed().as_secs_f64();
            report(name, &|s: &ReverseSampler| s.generated_variances(&model), seconds);
        }
    }
}
