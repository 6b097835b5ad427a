//! `fieldflow demo`: the complete small pipeline into one results folder.
//!
//! 1. **MOG-4** (docs/THEORY.md §3.3): the recommended mixture of flows
//!    (one per mode, docs/THEORY.md §4.11; first), then single flows trained
//!    with `scorenf` (spline couplings; annealed FKL + RKL + damped SM on flow samples, FKL
//!    then handed over to the flow's samples), FKL, RKL, SM
//!    and `rkl_sm`
//!    from a small set of exact samples, each sampled with IMH and with
//!    importance sampling; a table of NLL, RNLL, ESS, acceptance, mode
//!    weights, collapse and covering; figures of target vs flow densities.
//! 2. **Two modes in d = 16 without samples** (docs/THEORY.md §6.10):
//!    adaptive flow-MCMC from walkers spread by a broad Gaussian (the
//!    recommended sampler when no target samples exist), then neutra-MCMC
//!    and i-SIR with the adapted flow; mode weights against the exact ⅔, ⅓.
//!    (Section 1b of the report.)
//! 3. **A mode weight of 1.7·10⁻⁷** (docs/THEORY.md §6.13): the tilted 1D
//!    φ⁴ chain (b = 0.05) by free-energy integration through its phases,
//!    and by a mixture of Laplace flows (phases and mode boundary, §4.11)
//!    with importance sampling, against the transfer operator. (Section 1c
//!    of the report.)
//! 4. **Free field** (λ = 0): an HMC ensemble checked against the exact
//!    oracle of docs/THEORY.md §2.4.
//! 5. **φ⁴ at the tutorial set** (L = 8, m² = −4, λ = 8): an HMC ensemble, a
//!    flow trained by the default φ⁴ recipe (reverse KL, no data; lattice
//!    curriculum, warm-up–stable–decay, f32, free-field layer; docs/THEORY.md
//!    §5.7, §4.12), an IMH chain;
//!    ⟨|M|⟩, χ₂, U₄ … from both with errors and τ_int, side by side.
//!
//! Everything goes to one folder: HDF5 files, figures/, report.md (tables
//! and figures) and summary.json (the key numbers, for tests).

use crate::analysis::{analyze_file, fmt_err, render_table, FileAnalysis};
use crate::cmd::compare::{compare, Comparison};
use crate::cmd::free_energy;
use crate::cmd::generate::{self, GenerateArgs};
use crate::cmd::phi4_args::Phi4Args;
use crate::cmd::run_args::RunArgs;
use crate::cmd::sample::{self, SampleArgs};
use crate::cmd::train::{self, TrainArgs};
use crate::output::{emit, num, or_none};
use crate::plots;
use anyhow::{bail, Context, Result};
use clap::Args;
use fieldflow_io::{EnsembleReader, ModelFile};
use fieldflow_stats::GammaConfig;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `fieldflow demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Results folder.
    #[arg(long, default_value = "results/demo")]
    pub out: PathBuf,
    /// Replace the files of an existing results folder.
    #[arg(long)]
    pub force: bool,
    /// Reduced sizes (CI): about a minute instead of a few.
    #[arg(long)]
    pub quick: bool,
}

/// Sizes of the demo runs.
struct Budget {
    mog_steps: u64,
    mog_samples: u64,
    phi4_cfg: u64,
    phi4_steps: u64,
    phi4_samples: u64,
    /// Steps and batch of the chain's Laplace-flow mixture.
    chain_steps: u64,
    chain_batch: u64,
}

impl Budget {
    fn new(quick: bool) -> Self {
        if quick {
            Budget {
                mog_steps: 300,
                mog_samples: 4000,
                phi4_cfg: 2000,
                phi4_steps: 1000,
                phi4_samples: 4000,
                chain_steps: 100,
                chain_batch: 64,
            }
        } else {
            Budget {
                // The settings of the scan that chose the recommended recipe
                // (batch 256, 2000 steps): with batch 128 and 1500 steps it
                // collapsed on the demo's seed (docs/NOTES.md).
                mog_steps: 2000,
                mog_samples: 20000,
                phi4_cfg: 10000,
                // The φ⁴ recipe scaled to 4000 steps (≈ 15 s; its own
                // budget for 8×8 is 50 000 steps, docs/THEORY.md §5.7).
                phi4_steps: 4000,
                phi4_samples: 20000,
                // The `reproduce modes` base config of the chain.
                chain_steps: 1000,
                chain_batch: 256,
            }
        }
    }
}

/// One MOG-4 training run.
#[derive(Debug, Clone, Serialize)]
pub struct MogRun {
    /// Loss preset.
    pub loss: String,
    /// Held-out NLL (nats).
    pub nll: f64,
    /// RNLL = −E_q log p (log Z = 0 for the normalized mixture).
    pub rnll: f64,
    /// Normalized ESS of importance weights.
    pub ess: f64,
    /// IMH acceptance rate.
    pub acceptance: f64,
    /// Flow's own mode weights (raw draws).
    pub flow_weights: Vec<f64>,
    /// IMH mode weights with errors.
    pub imh_weights: Vec<(f64, f64)>,
    /// Reweighted (IS) mode weights with errors.
    pub is_weights: Vec<(f64, f64)>,
    /// Modes with flow mass below half their weight.
    pub n_collapsed: usize,
    /// Covering fraction (docs/THEORY.md §8.6).
    pub covering: f64,
}

/// The demo's key numbers (summary.json).
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// True MOG-4 weights.
    pub mog_truth: Vec<f64>,
    /// MOG-4 runs.
    pub mog: Vec<MogRun>,
    /// Free-field rows: (observable, value, error, exact).
    pub free_field: Vec<(String, f64, f64, f64)>,
    /// φ⁴ tutorial: HMC vs flow IMH.
    pub phi4: Vec<Comparison>,
    /// φ⁴ flow: IMH acceptance and training ESS.
    pub phi4_flow: (f64, f64),
    /// Two modes in d = 16: the flow-MCMC samplers.
    pub flow_mcmc: Vec<FlowMcmcRun>,
    /// The tilted 1D φ⁴ chain by free-energy integration.
    pub free_energy: free_energy::Report,
    /// The same chain by a mixture of Laplace flows and importance sampling.
    pub chain_mixture: ChainMixture,
}

/// The tilted 1D φ⁴ chain sampled by the recommended flow model: a mixture
/// of flows on the two phases' Laplace Gaussians and the mode boundary
/// (docs/THEORY.md §4.11), importance sampling with equal component weights.
#[derive(Debug, Clone, Serialize)]
pub struct ChainMixture {
    /// w₊ (middle site ≥ 0) with its Γ-method error.
    pub weight: (f64, f64),
    /// The transfer operator's w₊.
    pub exact_weight: f64,
    /// ln(w₊/w₋) with its error, σ(w₊)/(w₊w₋).
    pub log_ratio: (f64, f64),
    /// The transfer operator's ln(w₊/w₋).
    pub exact_log_ratio: f64,
    /// ESS/N of the importance weights.
    pub ess: f64,
    /// Wall time of training and sampling.
    pub seconds: f64,
}

/// One flow-MCMC run of the demo (two modes, d = 16).
#[derive(Debug, Clone, Serialize)]
pub struct FlowMcmcRun {
    /// Method.
    pub method: String,
    /// Mode weights with Γ-method errors.
    pub weights: Vec<(f64, f64)>,
    /// τ_int of the mode indicator.
    pub tau_mode: f64,
    /// Acceptance of the method's decisions.
    pub acceptance: f64,
    /// Wall time of the command (adaptive: adaptation included).
    pub seconds: f64,
}

/// The two-modes target of the demo's adaptive run (the run starts from an
/// untrained flow for it: no model, no samples).
const TWO_MODES: &str = "[target]
kind = \"two_modes\"
dim = 16
";

/// Adaptive flow-MCMC on two modes in d = 16 from nothing but the target,
/// then neutra and i-SIR with the adapted flow.
fn run_flow_mcmc(out: &Path, b: &Budget) -> Result<Vec<FlowMcmcRun>> {
    eprintln!("demo: two modes in d = 16, adaptive flow-MCMC from a broad start");
    let cfg = out.join("two_modes.toml");
    std::fs::write(&cfg, TWO_MODES).with_context(|| format!("{}: cannot write", cfg.display()))?;
    let adapted = out.join("two_modes_adapted.h5");
    let mut runs = Vec::new();
    for method in ["adaptive", "isir", "neutra"] {
        let file = out.join(format!("two_modes_{method}.h5"));
        let t0 = std::time::Instant::now();
        let adaptive = method == "adaptive";
        sample::run(SampleArgs {
            model: (!adaptive).then(|| adapted.clone()),
            config: adaptive.then(|| cfg.clone()),
            method: Some(method.into()),
            n: Some(b.mog_samples),
            chains: Some(4),
            rounds: adaptive.then_some(if b.mog_samples < 10_000 { 30 } else { 40 }),
            adapted_model: adaptive.then(|| adapted.clone()),
            run: demo_run(file.clone(), Some(17)),
            ..Default::default()
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        let a = analyze_file(&file, 0, &GammaConfig::default())?;
        let tau_mode = a
            .rows
            .iter()
            .find(|r| r.observable == "mode_0")
            .map_or(f64::NAN, |r| r.tau_int);
        runs.push(FlowMcmcRun {
            method: method.into(),
            weights: modes(&a),
            tau_mode,
            acceptance: EnsembleReader::open(&file)?
                .series("accepted")?
                .mean()
                .unwrap_or(f64::NAN),
            seconds,
        });
    }
    Ok(runs)
}

/// The run arguments of every demo step: quiet, replacing earlier results.
fn demo_run(out: PathBuf, seed: Option<u64>) -> RunArgs {
    RunArgs {
        seed,
        out,
        force: true,
        quiet: true,
        ..Default::default()
    }
}

const MOG_TRUTH: [f64; 4] = [0.1, 0.2, 0.3, 0.4];

/// The recommended method for multimodal targets with samples
/// (docs/RESULTS.md, "Mixture of flows"): a mixture of flows, one per mode
/// found in the data, RKL per component, weights by importance sampling
/// (docs/THEORY.md §4.11). It leads the demo's MOG-4 table.
const RECOMMENDED: &str = "mixture";

/// The best single flow (docs/RESULTS.md, "FKL on the flow's own samples"),
/// with spline couplings ([`BEST_SINGLE_FLOW`]); its annealing and FKL
/// handover come with the preset (`fieldflow train` adds them).
const BEST_SINGLE: &str = "scorenf";

/// The best single flow's couplings: rational-quadratic splines over
/// MOG-4's range (tail bound 12) on a base as wide as the data (σ = 3; a
/// spline cannot widen a narrow base), as in the runs that met issue 14's
/// single-flow line (data/experiments/scorenf_mog8).
const BEST_SINGLE_FLOW: &str = "[flow]\ncoupling = { spline = { bins = 8, tail_bound = 12.0 } }\nbase_sigma = 3.0\n";

/// The MOG-4 methods of the demo, the recommended one first: the mixture,
/// then single flows trained with each objective.
const MOG_LOSSES: [&str; 6] = [RECOMMENDED, BEST_SINGLE, "fkl", "rkl", "sm", "rkl_sm"];

fn mog_config(method: &str, steps: u64) -> String {
    // The mixture is RKL per component.
    let (loss, flow) = if method == RECOMMENDED {
        ("rkl", "[flow]\nmixture = { components = 4 }\n")
    } else if method == BEST_SINGLE {
        (method, BEST_SINGLE_FLOW)
    } else {
        (method, "")
    };
    format!(
        "seed = 7\ncheckpoint_every = 1000000\n[target]\nkind = \"mog4\"\n[data]\nexact = true\nn_train = 100\nn_heldout = 2000\n{flow}\
         [train]\nloss = {{ preset = \"{loss}\" }}\nbatch_size = 256\nsteps = {steps}\nlr = 2e-3\nmetrics_every = {}\nseed = 7\n\
         lr_schedule = {{ kind = \"cosine\", total_steps = {steps}, min_lr = 1e-5 }}\n",
        (steps / 10).max(1)
    )
}

/// The tilted chain by the Laplace-flow mixture against the transfer
/// operator (terminal and report).
fn chain_mixture_table(s: &DemoSummary) -> String {
    let c = &s.chain_mixture;
    format!(
        "| tilted 1D φ⁴ chain, b = 0.05 | flow mixture + IS | exact (transfer operator) | Δ/σ |\n|---|---|---|---|\n\
         | w₊ | {} | {:.4e} | |\n| ln(w₊/w₋) | {} | {:.4} | {:+.2} |\n\n\
         ESS/N {}, {:.0} s for training and sampling.\n",
        fmt_sci(c.weight.0, c.weight.1),
        c.exact_weight,
        fmt_err(c.log_ratio.0, c.log_ratio.1),
        c.exact_log_ratio,
        (c.log_ratio.0 - c.exact_log_ratio) / c.log_ratio.1,
        num(c.ess, 3),
        c.seconds
    )
}

/// value ± error in scientific notation with the error's two digits.
fn fmt_sci(value: f64, error: f64) -> String {
    if !(value != 0.0 && value.is_finite() && error > 0.0 && error.is_finite()) {
        return fmt_err(value, error);
    }
    let exp = value.abs().log10().floor() as i32;
    let scale = 10f64.powi(exp);
    let digits = (1 - (error / scale).log10().floor() as i32).clamp(0, 12) as usize;
    format!("({:.digits$} ± {:.digits$})e{exp}", value / scale, error / scale)
}

/// The normalized ESS of an importance-sampling file's weights (NaN if
/// none is finite).
fn importance_ess(file: &Path) -> Result<f64> {
    let log_w: Vec<f64> = EnsembleReader::open(file)?.series("log_w")?.iter().copied().collect();
    Ok(fieldflow_stats::ess_normalized(&log_w).unwrap_or(f64::NAN))
}

fn metric_last(m: &ModelFile, name: &str) -> f64 {
    m.metrics.get(name).and_then(|v| v.last().copied()).unwrap_or(f64::NAN)
}

fn modes(a: &FileAnalysis) -> Vec<(f64, f64)> {
    (0..4)
        .filter_map(|k| a.row(&format!("mode_{k}")).map(|r| (r.value, r.error)))
        .collect()
}

fn run_mog(out: &Path, loss: &str, b: &Budget) -> Result<MogRun> {
    let cfg = out.join(format!("mog4_{loss}.toml"));
    std::fs::write(&cfg, mog_config(loss, b.mog_steps)).with_context(|| format!("{}: cannot write", cfg.display()))?;
    let model = out.join(format!("mog4_{loss}.h5"));
    eprintln!("demo: MOG-4, training with {loss}");
    train::run(TrainArgs {
        config: Some(cfg),
        plots: Some(out.join("figures").join(format!("mog4_{loss}"))),
        run: demo_run(model.clone(), None),
        ..Default::default()
    })?;
    let mut results = vec![];
    for method in ["imh", "is"] {
        let file = out.join(format!("mog4_{loss}_{method}.h5"));
        sample::run(SampleArgs {
            model: Some(model.clone()),
            n: Some(b.mog_samples),
            chains: Some(4),
            method: Some(method.into()),
            run: demo_run(file.clone(), Some(11)),
            ..Default::default()
        })?;
        results.push(analyze_file(&file, 0, &GammaConfig::default())?);
    }
    let m = ModelFile::read(&model)?;
    let is_path = out.join(format!("mog4_{loss}_is.h5"));
    let log_p: Vec<f64> = EnsembleReader::open(&is_path)?
        .series("log_p")?
        .iter()
        .copied()
        .collect();
    let imh_file = EnsembleReader::open(out.join(format!("mog4_{loss}_imh.h5")))?;
    let acc = imh_file.series("accepted")?;
    Ok(MogRun {
        loss: loss.into(),
        nll: metric_last(&m, "nll"),
        rnll: -log_p.iter().sum::<f64>() / log_p.len() as f64,
        ess: importance_ess(&is_path)?,
        acceptance: acc.mean().unwrap_or(f64::NAN),
        flow_weights: (0..4).map(|k| metric_last(&m, &format!("mode_weight_{k}"))).collect(),
        imh_weights: modes(&results[0]),
        is_weights: modes(&results[1]),
        n_collapsed: metric_last(&m, "n_collapsed") as usize,
        covering: metric_last(&m, "covering"),
    })
}

/// The recommended flow model on the tilted chain at b = 0.05 (module docs).
fn chain_mixture_config(steps: u64, batch: u64) -> String {
    format!(
        "[target]\nkind = \"phi4_1d\"\nb = 0.05\n[flow]\nn_layers = 4\n\
         mixture = {{ components = 3, affine = \"laplace\", starts = [1.0, -1.0], boundary = {{ site = 49, value = 0.0 }} }}\n\
         [train]\nloss = {{ preset = \"rkl\" }}\nbatch_size = {batch}\nsteps = {steps}\nlr = 1e-3\n"
    )
}

fn run_chain_mixture(out: &Path, b: &Budget) -> Result<ChainMixture> {
    eprintln!("demo: tilted 1D φ⁴ chain (b = 0.05), mixture of Laplace flows");
    let start = std::time::Instant::now();
    let cfg = out.join("phi4_1d_mixture.toml");
    std::fs::write(&cfg, chain_mixture_config(b.chain_steps, b.chain_batch))
        .with_context(|| format!("{}: cannot write", cfg.display()))?;
    let model = out.join("phi4_1d_mixture.h5");
    train::run(TrainArgs {
        config: Some(cfg),
        run: demo_run(model.clone(), Some(1)),
        ..Default::default()
    })?;
    let file = out.join("phi4_1d_mixture_is.h5");
    sample::run(SampleArgs {
        model: Some(model),
        n: Some(b.mog_samples),
        chains: Some(4),
        method: Some("is".into()),
        mixture_weights: Some("equal".into()),
        run: demo_run(file.clone(), Some(11)),
        ..Default::default()
    })?;
    let a = analyze_file(&file, 0, &GammaConfig::default())?;
    let row = a.row("mode_1").context("the chain's IS analysis has no mode_1 row")?;
    let (w, e) = (row.value, row.error);
    let exact = row.exact.unwrap_or(f64::NAN);
    Ok(ChainMixture {
        weight: (w, e),
        exact_weight: exact,
        log_ratio: fieldflow_stats::complement_log_ratio(1.0 - w, w, e),
        exact_log_ratio: (exact / (1.0 - exact)).ln(),
        ess: importance_ess(&file)?,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn generate_hmc(file: &Path, m2: f64, lambda: f64, b: &Budget) -> Result<()> {
    generate::run(GenerateArgs {
        phi4: Phi4Args {
            lattice: Some("8x8".into()),
            m2: Some(m2),
            lambda: Some(lambda),
            ..Default::default()
        },
        algorithm: Some("hmc".into()),
        n_therm: Some(500),
        n_cfg: Some(b.phi4_cfg),
        chains: Some(4),
        run: demo_run(file.to_path_buf(), Some(2026)),
        ..Default::default()
    })
}

/// The pipeline behind `fieldflow demo`.
pub fn run_demo(out: &Path, force: bool, quick: bool) -> Result<DemoSummary> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create folder", out.display()))?;
    let report_path = out.join("report.md");
    if report_path.exists() && !force {
        bail!(
            "{}: exists; pass --force to overwrite the demo's results",
            report_path.display()
        );
    }
    let b = Budget::new(quick);
    let figures = out.join("figures");
    let mog = MOG_LOSSES
        .iter()
        .map(|l| run_mog(out, l, &b))
        .collect::<Result<Vec<_>>>()?;
    let flow_mcmc = run_flow_mcmc(out, &b)?;

    eprintln!("demo: tilted 1D φ⁴ chain (b = 0.05), free-energy integration");
    let fe_config = format!(
        "[target]\nkind = \"phi4_1d\"\nb = 0.05\n{}",
        if quick {
            "[free_energy]\nsamples = 300\nwarmup = 150\n"
        } else {
            ""
        }
    );
    std::fs::write(out.join("free_energy_phi4_1d.toml"), &fe_config)
        .with_context(|| format!("{}: cannot write", out.display()))?;
    let table: toml::Table = fe_config.parse().context("the demo's free-energy config")?;
    let free_energy = free_energy::evaluate(&table, Some(3), || Ok(()), None)?
        .context("the demo's free-energy run was interrupted")?;
    let chain_mixture = run_chain_mixture(out, &b)?;

    eprintln!("demo: free field, HMC");
    let free = out.join("free_field.h5");
    generate_hmc(&free, 0.5, 0.0, &b)?;
    let free_a = analyze_file(&free, 0, &GammaConfig::default())?;
    plots::analysis_figures(&free_a, &figures)?;

    eprintln!("demo: φ⁴ tutorial set, HMC ensemble");
    let hmc = out.join("phi4_hmc.h5");
    generate_hmc(&hmc, -4.0, 8.0, &b)?;
    eprintln!("demo: φ⁴ tutorial set, a flow by the default recipe (reverse KL, no data)");
    let model = out.join("phi4_flow.h5");
    train::run(TrainArgs {
        phi4: Phi4Args {
            lattice: Some("8x8".into()),
            m2: Some(-4.0),
            lambda: Some(8.0),
            ..Default::default()
        },
        loss: Some("rkl".into()),
        steps: Some(b.phi4_steps),
        plots: Some(figures.join("phi4_flow")),
        run: demo_run(model.clone(), Some(5)),
        ..Default::default()
    })?;
    let imh = out.join("phi4_imh.h5");
    sample::run(SampleArgs {
        model: Some(model.clone()),
        n: Some(b.phi4_samples),
        chains: Some(4),
        run: demo_run(imh.clone(), Some(13)),
        ..Default::default()
    })?;
    let hmc_a = analyze_file(&hmc, 0, &GammaConfig::default())?;
    let imh_a = analyze_file(&imh, 0, &GammaConfig::default())?;
    plots::analysis_figures(&hmc_a, &figures)?;
    plots::analysis_figures(&imh_a, &figures)?;
    let phi4 = compare(&hmc_a, &imh_a);
    let m = ModelFile::read(&model)?;
    let imh_acc = EnsembleReader::open(&imh)?
        .series("accepted")?
        .mean()
        .unwrap_or(f64::NAN);

    let summary = DemoSummary {
        mog_truth: MOG_TRUTH.to_vec(),
        mog,
        free_field: free_a
            .rows
            .iter()
            .filter_map(|r| r.exact.map(|e| (r.observable.clone(), r.value, r.error, e)))
            .collect(),
        phi4,
        phi4_flow: (imh_acc, metric_last(&m, "ess")),
        flow_mcmc,
        free_energy,
        chain_mixture,
    };
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("{}: cannot write summary.json", out.display()))?;
    std::fs::write(&report_path, report(&summary, &[&free_a, &hmc_a, &imh_a], quick))
        .with_context(|| format!("{}: cannot write report", report_path.display()))?;
    Ok(summary)
}

/// Runs the demo and prints where everything went.
pub fn run(args: DemoArgs) -> Result<()> {
    let s = run_demo(&args.out, args.force, args.quick)?;
    emit(&mog_table(&s));
    emit(&flow_mcmc_table(&s));
    emit(&free_energy::table_text(&s.free_energy));
    emit(&chain_mixture_table(&s));
    emit(&phi4_table(&s));
    emit(&format!("report: {}", args.out.join("report.md").display()));
    Ok(())
}

fn w_err(w: &[(f64, f64)]) -> String {
    w.iter().map(|(v, e)| fmt_err(*v, *e)).collect::<Vec<_>>().join(", ")
}

fn mog_table(s: &DemoSummary) -> String {
    let mut t = String::from(
        "| loss | NLL | RNLL | ESS | IMH acc. | flow mode weights | IMH mode weights | collapsed | covering |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &s.mog {
        let fw: Vec<String> = r.flow_weights.iter().map(|w| num(*w, 3)).collect();
        // A mode the flow (almost) never proposes cannot be repaired by IMH;
        // an under-weighted one can, at the price of longer runs.
        let missing = r
            .flow_weights
            .iter()
            .zip(&s.mog_truth)
            .filter(|(q, w)| !(**q >= 1e-3 * **w))
            .count();
        let mut name = if r.loss == RECOMMENDED {
            format!(
                "**{}** (recommended: one flow per mode, RKL, weights by importance sampling)",
                r.loss
            )
        } else if r.loss == BEST_SINGLE {
            format!("{} (best single flow, spline couplings)", r.loss)
        } else {
            r.loss.clone()
        };
        if missing > 0 {
            name += &format!(" ⚠ collapsed: {missing} mode(s) missing from the flow, IMH cannot visit them");
        } else if r.n_collapsed > 0 {
            name += &format!(
                " ⚠ {} mode(s) under-weighted in the flow (< ½): IMH can correct them, at the cost of longer runs",
                r.n_collapsed
            );
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            num(r.nll, 3),
            num(r.rnll, 3),
            num(r.ess, 3),
            num(r.acceptance, 3),
            fw.join(", "),
            w_err(&r.imh_weights),
            r.n_collapsed,
            num(r.covering, 4)
        );
    }
    t
}

fn flow_mcmc_table(s: &DemoSummary) -> String {
    let mut t = String::from(
        "| sampler (two modes, d = 16, exact ⅔ : ⅓) | mode weights | τ_int(mode) | acceptance | seconds |\n|---|---|---|---|---|\n",
    );
    for r in &s.flow_mcmc {
        let name = match r.method.as_str() {
            "adaptive" => "**adaptive flow-MCMC** (recommended without samples; adaptation + global-local production)",
            "isir" => "i-SIR, K = 8, adapted flow",
            "neutra" => "neutra-MCMC (MALA in latent space), adapted flow ⚠ cannot cross modes: large τ_int",
            other => other,
        };
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {:.1} |",
            w_err(&r.weights),
            num(r.tau_mode, 1),
            num(r.acceptance, 3),
            r.seconds
        );
    }
    t
}

fn phi4_table(s: &DemoSummary) -> String {
    let mut t =
        String::from("| observable | HMC | τ_int HMC | flow + IMH | τ_int IMH | Δ/σ |\n|---|---|---|---|---|---|\n");
    for c in s
        .phi4
        .iter()
        .filter(|c| ["abs_M", "M2", "chi2", "chi", "U4", "xi2", "action_density"].contains(&c.observable.as_str()))
    {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            c.observable,
            fmt_err(c.a.0, c.a.1),
            num(c.a.2, 2),
            fmt_err(c.b.0, c.b.1),
            num(c.b.2, 2),
            or_none(c.deviation_sigma, |d| format!("{d:+.2}"))
        );
    }
    t
}

fn report(s: &DemoSummary, analyses: &[&FileAnalysis], quick: bool) -> String {
    let mut r = String::from("# fieldflow demo report\n\n");
    let _ = writeln!(
        r,
        "Produced by `fieldflow demo{}` (fieldflow {}). Errors: Wolff's Γ-method with the chains as replica; \
         derived quantities by gradient projection; importance-sampling estimates are self-normalized.\n",
        if quick { " --quick" } else { "" },
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        r,
        "## 1. MOG-4 from 100 exact samples: a mixture of flows and five objectives for one flow\n\nThe first row is \
         the recommended method for multimodal targets with samples, `mixture`: one flow per mode found by k-means in \
         the samples, each trained by RKL on the target seen through its cluster's mean and spread, the mode weights by \
         importance sampling (docs/THEORY.md §4.11). The second is the best single flow, `scorenf` with spline couplings (fieldflow's ScoreNF: \
         FKL + 0.1 RKL + 0.1 SM on the flow's samples, damped and annealed, then FKL handed over from the samples to \
         the flow's own draws by importance sampling; docs/RESULTS.md); the last, `rkl_sm` (RKL + SM on the \
         samples), is the first reading of ScoreNF, kept to show its collapse. The mixture needs every mode in the samples: a \
         mode without a sample gets no component, and nothing reveals it. True weights (0.1, 0.2, 0.3, 0.4). NLL on 2000 held-out \
         exact samples; RNLL = −E_q log p; ESS from importance weights; IMH mode weights carry Γ-method errors. \
         IMH is exact only if the flow proposes every mode: a collapsed flow (RKL) leaves modes unvisited, which the \
         collapse column flags.\n\n{}",
        mog_table(s)
    );
    for l in MOG_LOSSES {
        let _ = writeln!(
            r,
            "\n**{l}**: ![target](figures/mog4_{l}/train_target_density.svg) ![flow](figures/mog4_{l}/train_flow_density.svg) ![loss](figures/mog4_{l}/train_loss.svg)"
        );
    }
    let _ = writeln!(
        r,
        "\n## 1b. Two modes in d = 16 without a single target sample\n\nAdaptive flow-MCMC (docs/THEORY.md §6.10) \
         from an untrained flow and nothing but the target (`two_modes.toml`): 256 walkers from N(0, 3²I), MALA warm-up, rounds of global-local moves and FKL steps on the walkers; \
         production with the frozen flow. The adapted flow is then used by i-SIR and neutra-MCMC \
         (docs/RESULTS.md, \"Flow-MCMC benchmark\").\n\n{}",
        flow_mcmc_table(s)
    );
    let _ = writeln!(
        r,
        "\n## 1c. A mode weight of 1.7·10⁻⁷: the tilted 1D φ⁴ chain\n\nThe 1D φ⁴ chain (N = 100, a = 0.1, β = 20, tilt \
         b = 0.05; modes by the sign of the middle site) weighs its minority mode at 1.7·10⁻⁷: no sampler of the full chain \
         sees it. `fieldflow free-energy` (docs/THEORY.md §6.13; config `free_energy_phi4_1d.toml`) integrates the phases' \
         free-energy difference along the tilt and the probability that a phase's middle site crosses 0 along a clamped \
         profile; the error is the spread of 8 independent replicas; the exact value is the transfer operator's.\n\n```\n{}\n```",
        free_energy::table_text(&s.free_energy)
    );
    let _ = writeln!(
        r,
        "\nThe same chain sampled by flows (`phi4_1d_mixture.toml`, docs/THEORY.md §4.11): a mixture of three flows \
         whose affine maps are Laplace Gaussians — of the two ordered phases (Newton from φ = ±1) and of the mode \
         boundary φ₄₉ = 0, where the light mode's mass lies once the tilt is strong — trained by reverse KL without \
         samples, then importance sampling with equal component weights (`sample --mixture-weights equal`: a third \
         of the draws near each, so a weight of 10⁻⁷ gets an error bar):\n\n{}\n\
         Coupling flows started from N(0, I) do not get here: the chain is stiff, and they stay tens of nats away \
         (docs/RESULTS.md, \"Why flows fail on the 1D φ⁴ chain\").",
        chain_mixture_table(s)
    );
    let _ = writeln!(
        r,
        "\n## 2. φ⁴ at the tutorial set (L = 8, m² = −4, λ = 8)\n\nHMC ensemble vs a flow trained by the default φ⁴ \
         recipe (reverse KL, no data; half-size lattice for the first third, warm-up–stable–decay, single precision, \
         a learned free-field layer in front of the couplings; docs/THEORY.md §5.7, §4.12), sampled with IMH (acceptance {}; training ESS {}).\n\n{}",
        num(s.phi4_flow.0, 3),
        num(s.phi4_flow.1, 3),
        phi4_table(s)
    );
    let _ = writeln!(
        r,
        "\n![ESS](figures/phi4_flow/train_ess_acceptance.svg) ![loss](figures/phi4_flow/train_loss.svg)\n"
    );
    let _ = writeln!(r, "## 3. Full tables\n");
    for a in analyses {
        let stem = Path::new(&a.file)
            .file_name()
            .map(|s| s.to_string_lossy().replace(".h5", ""))
            .unwrap_or_default();
        let _ = writeln!(r, "```\n{}```\n", render_table(a));
        for fig in [
            "history_M",
            "histogram_M",
            "rho_absM",
            "tau_int_absM",
            "correlator",
            "effective_mass",
        ] {
            let _ = write!(r, "![{fig}](figures/{stem}_{fig}.svg) ");
        }
        r.push_str("\n\n");
    }
    r
}
