//! Experiment (not a test): RealNVP vs RealNVP + stochastic blocks on the
//! double well of docs/THEORY.md §3.4 (a = −0.5, b = −6, c = 1), as in Fig. 3 of
//! arXiv 2002.06707.
//!
//! Both models share the coupling architecture and initial parameters; the
//! SNF inserts a plain overdamped-Langevin block (linear λ schedule, the
//! last block at λ = 1) after every flow stage. Both are trained with the
//! same loss, w_ml·L_ML + w_kl·L_KL ([`crate::train`]; for the plain flow
//! these are exactly the FKL on exact target samples and the RKL), by the
//! [`SnfTrainer`] (Adam; path ML on minibatches of 10⁵ exact samples).
//! Then N fresh samples of each are scored by
//!
//! * the normalized ESS of the (path) weights and log Ẑ;
//! * the free-energy profile along x₁: on bins of width h,
//!   F̂(bin) = −ln(Σ_{x₁∈bin} w / (h Σ w)) (reweighted) or from raw counts
//!   (unweighted), against the exact F(bin) = −ln(∫_bin e^{−F(x₁)} dx₁ / h)
//!   with F the exact marginal free energy ([`DoubleWell::marginal_free_energy`]);
//!   the bias is the mean and max of |F̂ − F| in kT over the bins with
//!   F − min F < 8 kT (bins without samples are counted, not averaged);
//! * ΔF = F₊ − F₋ between the wells, with its delta-method error.

use crate::blocks::{LangevinBlock, StochasticBlock};
use crate::config::LambdaSchedule;
use crate::snf::{Snf, Stage};
use crate::trainer::SnfTrainer;
use fieldflow_core::{ExactSampler, Par, Seed, Target};
use fieldflow_flows::FlowConfig;
use fieldflow_losses::{LossConfig, SmOn, StepOutcome, TrainConfig, TrainData, TrainLoop};
use fieldflow_stats::{log_z, self_normalized_mean};
use fieldflow_targets::DoubleWell;
use ndarray::Array2;
use std::fmt;
use std::time::Instant;

/// Settings of the double-well comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// Coupling layers (split into `n_layers / 2` flow stages of 2 for the SNF).
    pub n_layers: usize,
    /// Hidden widths of the MLP conditioners.
    pub hidden: Vec<usize>,
    /// Adam steps.
    pub train_steps: usize,
    /// Paths (KL) and data points (ML) per step.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Weight of the path-ML (FKL) term on exact target samples.
    pub ml_weight: f64,
    /// Weight of the path-KL (RKL) term.
    pub kl_weight: f64,
    /// Langevin steps per stochastic block.
    pub langevin_steps: usize,
    /// Langevin step size ε.
    pub eps: f64,
    /// λ of the SNF's blocks (`Linear`: λ_j = (j + 1)/K; or an explicit list
    /// of `n_layers / 2` values, e.g. all 1 for blocks on the target only).
    pub schedule: LambdaSchedule,
    /// Samples used for the evaluation.
    pub n_eval: usize,
    /// Profile bin width h along x₁.
    pub bin_width: f64,
    /// Master seed.
    pub seed: u64,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            n_layers: 8,
            hidden: vec![32, 32],
            train_steps: 1500,
            batch: 256,
            lr: 1e-3,
            ml_weight: 1.0,
            kl_weight: 1.0,
            langevin_steps: 10,
            eps: 0.005,
            schedule: LambdaSchedule::Linear,
            n_eval: 100_000,
            bin_width: 0.1,
            seed: 1,
        }
    }
}

/// Figures of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// "RealNVP" or "RealNVP + Langevin".
    pub name: String,
    /// Mean training loss over the last 10 % of the steps.
    pub final_loss: f64,
    /// Normalized ESS of the evaluation weights.
    pub ess: f64,
    /// log Ẑ and its error.
    pub log_z: (f64, f64),
    /// Reweighted ΔF and its error (kT).
    pub delta_f: (f64, f64),
    /// Unweighted ΔF from raw sample counts (kT).
    pub delta_f_raw: f64,
    /// Reweighted profile bias: mean and max |F̂ − F| (kT).
    pub profile_bias: (f64, f64),
    /// Unweighted profile bias: mean and max |F̂ − F| (kT).
    pub profile_bias_raw: (f64, f64),
    /// Bins in the scored range without any sample.
    pub empty_bins: usize,
    /// Training wall time (s).
    pub train_seconds: f64,
    /// Sampling wall time for the evaluation (s).
    pub sample_seconds: f64,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentReport {
    /// The settings.
    pub config: ExperimentConfig,
    /// log Z and ΔF of the target (quadrature).
    pub exact_log_z: f64,
    /// Exact ΔF = F₊ − F₋ (kT).
    pub exact_delta_f: f64,
    /// RealNVP alone, then RealNVP + stochastic blocks.
    pub models: Vec<ModelReport>,
}

impl fmt::Display for ExperimentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "double well a=-0.5 b=-6 c=1; {} couplings, hidden {:?}; {} Adam steps, batch {}, lr {}; loss = {}·ML + {}·KL; \
             Langevin blocks: {} steps, eps {}, lambda {:?}; N = {}",
            c.n_layers, c.hidden, c.train_steps, c.batch, c.lr, c.ml_weight, c.kl_weight, c.langevin_steps, c.eps, c.schedule, c.n_eval
        )?;
        writeln!(
            f,
            "exact: log Z = {:.4}, dF = {:.4} kT",
            self.exact_log_z, self.exact_delta_f
        )?;
        writeln!(
            f,
            "| model | loss | ESS | log Z | dF reweighted | dF raw | profile bias rw mean/max (kT) | raw mean/max (kT) | empty bins | train s |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|")?;
        for m in &self.models {
            writeln!(
                f,
                "| {} | {:.4} | {:.3} | {:.4} ± {:.4} | {:.3} ± {:.3} | {:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {} | {:.1} |",
                m.name,
                m.final_loss,
                m.ess,
                m.log_z.0,
                m.log_z.1,
                m.delta_f.0,
                m.delta_f.1,
                m.delta_f_raw,
                m.profile_bias.0,
                m.profile_bias.1,
                m.profile_bias_raw.0,
                m.profile_bias_raw.1,
                m.empty_bins,
                m.train_seconds
            )?;
        }
        Ok(())
    }
}

/// Exact samples in the path-ML training set (a fresh minibatch of
/// `batch` rows is drawn from it every step).
const TRAIN_SET: usize = 100_000;

/// Trains `snf` with w_ml·L_ML + w_kl·L_KL by the [`SnfTrainer`] (Adam,
/// constant learning rate, no clipping; rejected steps are skipped); returns
/// it with the mean loss of the accepted steps in the last 10 %.
fn train(snf: Snf<DoubleWell>, cfg: &ExperimentConfig, seed: u64, par: Par) -> (Snf<DoubleWell>, f64) {
    let loss = LossConfig::weights(cfg.ml_weight, cfg.kl_weight, 0.0, SmOn::Data);
    let mut tc = TrainConfig::new(loss, cfg.batch, cfg.train_steps as u64, cfg.lr);
    tc.seed = seed;
    tc.max_consecutive_rejections = u32::MAX;
    let train = (cfg.ml_weight > 0.0).then(|| {
        let mut xs = Array2::zeros((TRAIN_SET, 2));
        snf.target().sample_batch(Seed::new(seed).child(99), xs.view_mut(), par);
        xs
    });
    let data = TrainData {
        train,
        ..TrainData::default()
    };
    let mut trainer = SnfTrainer::new(&tc, snf, data, par).expect("valid experiment settings");
    let mut tail = Vec::new();
    for step in 0..cfg.train_steps {
        if let Ok(StepOutcome::Accepted(r)) = trainer.step() {
            if step >= cfg.train_steps - cfg.train_steps / 10 {
                tail.push(r.loss);
            }
        }
    }
    let mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    (trainer.into_snf(), mean)
}

/// Profile bias (mean, max |F̂ − F|, empty bins) of weighted x₁ samples.
fn profile_bias(t: &DoubleWell, x1: &[f64], w: &[f64], h: f64) -> (f64, f64, usize) {
    let (lo, hi) = (-3.0, 3.0);
    let nb = ((hi - lo) / h).round() as usize;
    let total: f64 = w.iter().sum();
    let mut mass = vec![0.0; nb];
    for (&x, &wi) in x1.iter().zip(w) {
        if x >= lo && x < hi {
            mass[((x - lo) / h) as usize % nb] += wi;
        }
    }
    // Exact bin free energies by Simpson on 20 sub-intervals.
    let exact: Vec<f64> = (0..nb)
        .map(|j| {
            let a = lo + j as f64 * h;
            let m = 20;
            let dx = h / m as f64;
            let f = |x: f64| (-t.marginal_free_energy(x)).exp();
            let mut s = f(a) + f(a + h);
            for i in 1..m {
                s += if i % 2 == 1 { 4.0 } else { 2.0 } * f(a + i as f64 * dx);
            }
            -(s * dx / 3.0 / h).ln()
        })
        .collect();
    let fmin = exact.iter().cloned().fold(f64::INFINITY, f64::min);
    let (mut sum, mut max, mut n, mut empty) = (0.0, 0.0f64, 0, 0);
    for j in 0..nb {
        if exact[j] - fmin >= 8.0 {
            continue;
        }
        if mass[j] <= 0.0 {
            empty += 1;
            continue;
        }
        let est = -(mass[j] / (total * h)).ln();
        let d = (est - exact[j]).abs();
        sum += d;
        max = max.max(d);
        n += 1;
    }
    (sum / n.max(1) as f64, max, empty)
}

fn evaluate(name: &str, snf: &Snf<DoubleWell>, cfg: &ExperimentConfig, final_loss: f64, train_s: f64) -> ModelReport {
    let t0 = Instant::now();
    let b = snf.sample_paths(Seed::new(cfg.seed).child(1_000_000), cfg.n_eval, Par::default());
    let sample_seconds = t0.elapsed().as_secs_f64();
    let t = snf.target();
    let log_w = b.log_w.to_vec();
    let x1: Vec<f64> = b.xs.column(0).to_vec();
    let lz = log_z(&log_w).ok();
    let right: Vec<f64> = x1.iter().map(|&x| f64::from(u8::from(x >= 0.0))).collect();
    let (delta_f, ess) = match self_normalized_mean(&log_w, &right) {
        Ok(p) => (
            (-(p.value / (1.0 - p.value)).ln(), p.error / (p.value * (1.0 - p.value))),
            p.ess,
        ),
        Err(_) => ((f64::NAN, f64::NAN), f64::NAN),
    };
    let raw = right.iter().sum::<f64>() / right.len() as f64;
    let lmax = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - lmax).exp()).collect();
    let ones = vec![1.0; x1.len()];
    let (m, mx, empty) = profile_bias(t, &x1, &w, cfg.bin_width);
    let (mr, mxr, _) = profile_bias(t, &x1, &ones, cfg.bin_width);
    ModelReport {
        name: name.to_string(),
        final_loss,
        ess,
        log_z: lz.map_or((f64::NAN, f64::NAN), |r| (r.log_z, r.error)),
        delta_f,
        delta_f_raw: -(raw / (1.0 - raw)).ln(),
        profile_bias: (m, mx),
        profile_bias_raw: (mr, mxr),
        empty_bins: empty,
        train_seconds: train_s,
        sample_seconds,
    }
}

/// Runs the comparison (RealNVP, then RealNVP + Langevin blocks).
///
/// # Panics
/// If `n_layers` is odd or zero, the architecture is invalid, or a λ list
/// is shorter than `n_layers / 2`.
pub fn run_double_well_experiment(cfg: &ExperimentConfig) -> ExperimentReport {
    assert!(
        cfg.n_layers >= 2 && cfg.n_layers.is_multiple_of(2),
        "n_layers must be even and ≥ 2"
    );
    let t = DoubleWell::default();
    let par = Par::default();
    let flow_cfg = FlowConfig::mlp(2, cfg.n_layers, cfg.hidden.clone());
    let flow = flow_cfg.build(Seed::new(cfg.seed)).expect("valid architecture");
    let layers = flow.layers().to_vec();
    let params = flow.params().to_vec();
    let n_stages = cfg.n_layers / 2;
    let mut stages = Vec::new();
    for s in 0..n_stages {
        stages.push(Stage::Flow(2 * s..2 * s + 2));
        stages.push(Stage::Stochastic(StochasticBlock::Langevin(LangevinBlock {
            steps: cfg.langevin_steps,
            eps: cfg.eps,
            mala: false,
            lambda: match &cfg.schedule {
                LambdaSchedule::Linear => (s + 1) as f64 / n_stages as f64,
                LambdaSchedule::List(l) => l[s],
            },
        })));
    }
    let models: Vec<(&str, Snf<DoubleWell>)> = vec![
        (
            "RealNVP",
            Snf::new(
                t.clone(),
                1.0,
                layers.clone(),
                params.clone(),
                vec![Stage::Flow(0..cfg.n_layers)],
            ),
        ),
        ("RealNVP + Langevin", Snf::new(t.clone(), 1.0, layers, params, stages)),
    ];
    let reports = models
        .into_iter()
        .map(|(name, snf)| {
            let t0 = Instant::now();
            let (snf, loss) = train(snf, cfg, cfg.seed + 7, par);
            let train_s = t0.elapsed().as_secs_f64();
            evaluate(name, &snf, cfg, loss, train_s)
        })
        .collect();
    ExperimentReport {
        config: cfg.clone(),
        exact_log_z: t.log_z().unwrap(),
        exact_delta_f: t.free_energy_difference(),
        models: reports,
    }
}
