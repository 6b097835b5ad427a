//! End-to-end training tests of the trainer (issue 5): RKL learns
//! a Gaussian, FKL learns MOG-4 from exact samples, checkpoint/resume is
//! bit-identical, non-finite steps are rejected cleanly, metrics are exact
//! where the answer is known.

use fieldflow_core::{ExactSampler, Par, Seed, Target};
use fieldflow_flows::{CouplingKind, Flow, FlowConfig, SplineConfig};
use fieldflow_losses::{
    Annealing, LossConfig, LossPreset, LrSchedule, SmOn, StepOutcome, TrainConfig, TrainData, TrainError, Trainer,
    TrainerState, SPLINE_SM_MIN_BASE_FRACTION,
};
use fieldflow_targets::{Gaussian, GaussianMixture, Modes};
use ndarray::{array, Array1, Array2, ArrayView1, ArrayViewMut1};
use std::time::Instant;

fn exact(t: &dyn ExactSampler, n: usize, dim: usize, seed: u64) -> Array2<f64> {
    let mut x = Array2::zeros((n, dim));
    t.sample_batch(Seed::new(seed), x.view_mut(), Par::default());
    x
}

/// mean and standard error of a series.
fn mean_err(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// KL(q‖p) by Monte Carlo over flow samples, with its standard error.
fn kl_q_p(flow: &Flow, target: &dyn Target, n: usize, seed: u64) -> (f64, f64) {
    use fieldflow_core::Proposal;
    let d = flow.dim();
    let (mut x, mut lq, mut lp) = (Array2::zeros((n, d)), Array1::zeros(n), Array1::zeros(n));
    flow.draw_batch(Seed::new(seed), x.view_mut(), lq.view_mut(), Par::default());
    target.log_prob_batch(x.view(), lp.view_mut(), Par::default());
    let log_z = target.log_z().unwrap();
    let diff: Vec<f64> = lq.iter().zip(lp.iter()).map(|(q, p)| q - (p - log_z)).collect();
    mean_err(&diff)
}

/// RKL on a full-covariance 2D Gaussian with a flow that can represent it
/// exactly: two couplings with linear conditioners (x = A z + b for any
/// A, b), so the optimum is the target itself.
#[test]
fn rkl_learns_a_full_covariance_gaussian() {
    let t0 = Instant::now();
    let target = Gaussian::new(array![1.0, -0.5], array![[2.0, 0.8], [0.8, 0.7]]).unwrap();
    let flow_cfg = FlowConfig::mlp(2, 2, vec![]);
    let flow = flow_cfg.build(Seed::new(3)).unwrap();
    let steps = 1500;
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 256, steps, 2e-2);
    cfg.lr_schedule = LrSchedule::Cosine {
        total_steps: steps,
        min_lr: 1e-5,
    };
    cfg.eval_batch = 20_000;
    cfg.seed = 5;
    let mut tr = Trainer::new(&cfg, flow, &target, TrainData::default(), Par::default()).unwrap();
    let before = tr.metrics();
    for _ in 0..steps {
        assert!(matches!(tr.step().unwrap(), StepOutcome::Accepted(_)));
    }
    let m = tr.metrics();
    let (kl, err) = kl_q_p(tr.flow(), &target, 100_000, 99);
    eprintln!(
        "RKL Gaussian: KL {kl:.2e} ± {err:.1e}, ESS {:.5} (before {:.3}), acceptance {:.4}, {:.1} s",
        m.ess,
        before.ess,
        m.acceptance,
        t0.elapsed().as_secs_f64()
    );
    assert!(before.ess < 0.9, "the initial flow must be far from the target");
    assert!(kl < 1e-3 && kl > -5.0 * err, "KL = {kl} ± {err}");
    assert!(m.ess > 0.99, "ESS = {}", m.ess);
    // The RKL estimate is KL − log Z.
    assert!((m.rkl_estimate + target.log_z().unwrap()).abs() < 2e-3);
}

/// FKL (maximum likelihood) on exact MOG-4 samples with an MLP-coupling
/// flow; returns (NLL − H, its error, flow mode weights).
fn fkl_mog4(n_layers: usize, batch: usize, steps: u64) -> (f64, f64, Vec<f64>) {
    let t0 = Instant::now();
    let mog = GaussianMixture::mog4();
    let train = exact(&mog, 20_000, 2, 1);
    let held = exact(&mog, 20_000, 2, 2);
    let flow = FlowConfig::mlp(2, n_layers, vec![32, 32]).build(Seed::new(4)).unwrap();
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Fkl), batch, steps, 3e-3);
    cfg.lr_schedule = LrSchedule::Cosine {
        total_steps: steps,
        min_lr: 1e-5,
    };
    cfg.clip_grad_norm = Some(50.0);
    cfg.eval_batch = 40_000;
    cfg.seed = 6;
    let data = TrainData {
        train: Some(train),
        held_out: Some(held.clone()),
        modes: Some(&mog),
    };
    let mut tr = Trainer::new(&cfg, flow, &mog, data, Par::default()).unwrap();
    for _ in 0..steps {
        assert!(matches!(tr.step().unwrap(), StepOutcome::Accepted(_)));
    }
    let m = tr.metrics();
    // Entropy H = −E log p by Monte Carlo on the held-out samples (log Z = 0),
    // and NLL − H paired on the same samples (KL(p‖q) with a small error).
    use fieldflow_core::ProposalDensity;
    let n = held.nrows();
    let (mut lp, mut lq) = (Array1::zeros(n), Array1::zeros(n));
    mog.log_prob_batch(held.view(), lp.view_mut(), Par::default());
    tr.flow().log_q_batch(held.view(), lq.view_mut(), Par::default());
    let (h, h_err) = mean_err(&lp.mapv(|v| -v).to_vec());
    let (gap, gap_err) = mean_err(&lp.iter().zip(lq.iter()).map(|(p, q)| p - q).collect::<Vec<_>>());
    eprintln!(
        "FKL MOG-4 ({n_layers} layers, batch {batch}, {steps} steps): NLL {:.4}, entropy {h:.4} ± {h_err:.4}, \
         NLL − H = {gap:.4} ± {gap_err:.4}, weights {:?}, TV {:.4}, ESS {:.3}, acceptance {:.3}, \
         covering {:.4}, {:.1} s",
        m.nll,
        m.mode_weights,
        m.tv_distance,
        m.ess,
        m.acceptance,
        m.covering,
        t0.elapsed().as_secs_f64()
    );
    assert!((m.nll - (h + gap)).abs() < 1e-9);
    assert_eq!(m.n_collapsed, 0);
    (gap, gap_err, m.mode_weights)
}

/// The test-time budget (~10 s on one free core): mode weights within 0.02
/// of (0.1, 0.2, 0.3, 0.4); NLL within 0.10 nats of the entropy. The
/// issue's 0.05 nats needs a larger budget: see the ignored test below.
#[test]
fn fkl_learns_mog4_from_exact_samples() {
    let (gap, gap_err, w) = fkl_mog4(8, 256, 2500);
    assert!(gap + 2.0 * gap_err < 0.10, "NLL − H = {gap} ± {gap_err}");
    for (w, t) in w.iter().zip([0.1, 0.2, 0.3, 0.4]) {
        assert!((w - t).abs() < 0.02, "weight {w} vs {t}");
    }
}

/// The issue's criterion, NLL within 0.05 nats of the entropy, with a
/// bigger flow and budget (12 layers, batch 512, 8000 steps: NLL − H =
/// 0.025 ± 0.002, ~160 s, too slow for the default suite):
/// `cargo xtask validate` runs it (with every other ignored test).
#[test]
#[ignore = "~160 s: long validation run, executed by `cargo xtask validate`"]
fn fkl_learns_mog4_within_005_nats() {
    let (gap, gap_err, w) = fkl_mog4(12, 512, 8000);
    assert!(gap + 2.0 * gap_err < 0.05, "NLL − H = {gap} ± {gap_err}");
    for (w, t) in w.iter().zip([0.1, 0.2, 0.3, 0.4]) {
        assert!((w - t).abs() < 0.02, "weight {w} vs {t}");
    }
}

/// A small ScoreNF set-up that uses every random stream (minibatch, noise),
/// annealing, a cosine schedule and clipping.
fn resume_setup<'a>(mog: &'a GaussianMixture, train: &Array2<f64>) -> (TrainConfig, Trainer<'a>) {
    let flow = FlowConfig::mlp(2, 4, vec![16]).build(Seed::new(8)).unwrap();
    let mut cfg = TrainConfig::new(LossConfig::weights(0.2, 1.0, 0.1, SmOn::Data), 64, 40, 5e-3);
    cfg.lr_schedule = LrSchedule::Cosine {
        total_steps: 40,
        min_lr: 1e-4,
    };
    cfg.annealing = Annealing::Geometric { beta0: 0.2, steps: 30 };
    cfg.clip_grad_norm = Some(1.0);
    cfg.eval_batch = 256;
    cfg.seed = 77;
    let data = TrainData {
        train: Some(train.clone()),
        held_out: None,
        modes: Some(mog),
    };
    let tr = Trainer::new(
        &cfg,
        flow,
        mog,
        data,
        Par {
            chunk_rows: 16,
            parallel: true,
        },
    )
    .unwrap();
    (cfg, tr)
}

#[test]
fn checkpoint_resume_is_bit_identical() {
    let mog = GaussianMixture::mog4();
    let train = exact(&mog, 500, 2, 3);
    let n = 20;
    let (_, mut straight) = resume_setup(&mog, &train);
    for _ in 0..2 * n {
        straight.step().unwrap();
    }
    let (_, mut first) = resume_setup(&mog, &train);
    for _ in 0..n {
        first.step().unwrap();
    }
    let json = serde_json::to_string(&first.state()).unwrap();
    drop(first);
    let state: TrainerState = serde_json::from_str(&json).unwrap();
    let (_, mut resumed) = resume_setup(&mog, &train);
    resumed.restore(state).unwrap();
    for _ in 0..n {
        resumed.step().unwrap();
    }
    let bits = |t: &Trainer| t.flow().params().iter().map(|p| p.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&straight), bits(&resumed));
    // Debug text: NaN fields (inactive loss parts, no held-out data)
    // compare equal as text.
    assert_eq!(format!("{:?}", straight.state()), format!("{:?}", resumed.state()));
    assert_eq!(format!("{:?}", straight.metrics()), format!("{:?}", resumed.metrics()));
    // The comparison has teeth: one step more changes the parameters.
    resumed.step().unwrap();
    assert_ne!(bits(&straight), bits(&resumed));
    // A state of another shape or chunking is refused.
    let mut bad = straight.state();
    bad.chunk_rows = 7;
    assert!(matches!(resumed.restore(bad), Err(TrainError::State(_))));
    let mut bad = straight.state();
    bad.params.pop();
    assert!(matches!(resumed.restore(bad), Err(TrainError::State(_))));
}

/// A target whose log density is NaN for x₀ > 1.5 (a bug in a user's action).
struct NanBeyond(Gaussian);

impl Target for NanBeyond {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        if x[0] > 1.5 {
            f64::NAN
        } else {
            self.0.log_prob(x)
        }
    }
    fn log_prob_and_score(&self, x: ArrayView1<f64>, score: ArrayViewMut1<f64>) -> f64 {
        let lp = self.0.log_prob_and_score(x, score);
        if x[0] > 1.5 {
            f64::NAN
        } else {
            lp
        }
    }
    fn describe(&self) -> String {
        "NaN beyond x0 = 1.5".into()
    }
}

#[test]
fn non_finite_steps_are_rejected_and_training_stops_cleanly() {
    let target = NanBeyond(Gaussian::new(array![0.0, 0.0], array![[1.0, 0.0], [0.0, 1.0]]).unwrap());
    let flow = FlowConfig::mlp(2, 2, vec![4]).build(Seed::new(1)).unwrap();
    let start = flow.params().to_vec();
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 128, 100, 1e-2);
    cfg.max_consecutive_rejections = 3;
    let mut tr = Trainer::new(&cfg, flow, &target, TrainData::default(), Par::default()).unwrap();
    // With 128 draws of N(0, 1), some x₀ > 1.5 in every batch (P ≈ 1 − 0.933¹²⁸).
    for k in 1..=3 {
        match tr.step().unwrap() {
            StepOutcome::Rejected {
                step,
                reason,
                consecutive,
            } => {
                assert_eq!((step, consecutive), (k - 1, k as u32));
                assert!(reason.contains("non-finite"), "{reason}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
    let err = tr.step().unwrap_err();
    assert!(matches!(err, TrainError::TooManyRejections { consecutive: 3, .. }));
    assert!(err.to_string().contains("training stopped"), "{err}");
    assert!(tr.step().is_err(), "a stopped trainer stays stopped");
    assert!(tr.stopped());
    assert_eq!(tr.flow().params(), &start[..], "the last good parameters are kept");
    assert_eq!(tr.total_rejections(), 3);
    assert_eq!(tr.metrics().total_rejections, 3);
}

/// An absurd learning rate must not crash: every step is either applied
/// with finite parameters or rejected, and the parameters stay finite.
#[test]
fn huge_learning_rate_does_not_panic_and_keeps_parameters_finite() {
    let mog = GaussianMixture::mog4();
    let flow = FlowConfig::mlp(2, 4, vec![16, 16]).build(Seed::new(2)).unwrap();
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 64, 50, 1e6);
    cfg.max_consecutive_rejections = 5;
    let mut tr = Trainer::new(&cfg, flow, &mog, TrainData::default(), Par::default()).unwrap();
    let (mut accepted, mut rejected, mut stopped) = (0, 0, false);
    for _ in 0..50 {
        match tr.step() {
            Ok(StepOutcome::Accepted(_)) => accepted += 1,
            Ok(StepOutcome::Rejected { .. }) => rejected += 1,
            Err(TrainError::TooManyRejections { .. }) => {
                stopped = true;
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(tr.flow().params().iter().all(|p| p.is_finite()));
    }
    eprintln!("lr = 1e6: {accepted} accepted, {rejected} rejected, stopped = {stopped}");
    assert!(tr.flow().params().iter().all(|p| p.is_finite()));
    let _ = tr.metrics(); // metrics of a wrecked flow: NaNs allowed, no panic
}

/// With q = p exactly (identity flow, standard-normal target) every metric
/// has a known value.
#[test]
fn metrics_are_exact_when_the_flow_is_the_target() {
    let target = Gaussian::new(array![0.0, 0.0, 0.0], Array2::eye(3)).unwrap();
    let flow = FlowConfig::mlp(3, 2, vec![4]).build(Seed::new(1)).unwrap(); // identity init
    let held = exact(&target, 50_000, 3, 4);
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 32, 10, 1e-3);
    cfg.eval_batch = 50_000;
    let data = TrainData {
        train: None,
        held_out: Some(held),
        modes: Some(&target as &dyn Modes),
    };
    let tr = Trainer::new(&cfg, flow, &target, data, Par::default()).unwrap();
    let m = tr.metrics();
    let log_z = target.log_z().unwrap();
    assert!((m.ess - 1.0).abs() < 1e-12, "{}", m.ess);
    assert_eq!(m.acceptance, 1.0);
    assert!((m.rkl_estimate + log_z).abs() < 1e-12);
    // NLL of exact samples under q = p: the entropy (3/2)(1 + ln 2π) ± ~0.004.
    let h = 1.5 * (1.0 + (2.0 * std::f64::consts::PI).ln());
    assert!((m.nll - h).abs() < 0.02, "{} vs {h}", m.nll);
    assert_eq!(
        (m.mode_weights.clone(), m.tv_distance, m.n_collapsed),
        (vec![1.0], 0.0, 0)
    );
    // Covering: about 0.1 % of flow samples fall below the 0.1 % quantile.
    assert!(m.covering > 0.0003 && m.covering < 0.002, "{}", m.covering);
    assert!(m.loss.is_nan() && m.step == 0);
}

#[test]
fn train_config_parses_from_toml_and_names_bad_fields() {
    let doc = r#"
batch_size = 256
steps = 5000
lr = 1e-3
seed = 42
clip_grad_norm = 10.0
max_consecutive_rejections = 10
metrics_every = 100
eval_batch = 2048

[loss]
preset = "rkl_sm"

[lr_schedule]
kind = "cosine"
total_steps = 5000
min_lr = 1e-5

[optimizer]
beta1 = 0.9
beta2 = 0.999

[annealing]
kind = "geometric"
beta0 = 0.1
steps = 2000
"#;
    let cfg: TrainConfig = toml::from_str(doc).unwrap();
    let loss = cfg.validate().unwrap();
    assert_eq!(loss.w_rkl, 1.0);
    let minimal: TrainConfig = toml::from_str("batch_size = 8\nsteps = 1\nlr = 0.1\n[loss]\npreset = \"rkl\"").unwrap();
    assert_eq!(minimal.annealing, Annealing::Constant);
    assert!(toml::from_str::<TrainConfig>(&format!("{doc}\ntypo = 1")).is_err());
    let field = |f: &dyn Fn(&mut TrainConfig)| {
        let mut c = cfg.clone();
        f(&mut c);
        c.validate().unwrap_err().field
    };
    assert_eq!(field(&|c| c.lr = -1.0), "lr");
    assert_eq!(field(&|c| c.batch_size = 0), "batch_size");
    assert_eq!(field(&|c| c.clip_grad_norm = Some(0.0)), "clip_grad_norm");
    assert_eq!(field(&|c| c.loss.w_sm = Some(f64::NAN)), "loss.w_sm");
    assert_eq!(
        field(&|c| c.annealing = Annealing::Linear { beta0: 2.0, steps: 1 }),
        "annealing.beta0"
    );
    assert_eq!(
        field(&|c| c.max_consecutive_rejections = 0),
        "max_consecutive_rejections"
    );
    // A loss that needs data, without data: refused up front.
    let mog = GaussianMixture::mog4();
    let flow = FlowConfig::mlp(2, 2, vec![4]).build(Seed::new(1)).unwrap();
    let err = Trainer::new(&cfg, flow, &mog, TrainData::default(), Par::default())
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Loss(_)), "{err}");
}

/// Spline couplings trained by score matching on the flow's own samples
/// from a base much narrower than the data are refused before any work
/// (`check_spline_base`, docs/RESULTS.md "Spline couplings and score
/// matching on flow samples": MOG-4 from a N(0, 1) base collapsed in every
/// run); the rule is pinned at its threshold, and every other combination
/// (a wide base, affine couplings, SM on data, no SM) is accepted.
#[test]
fn spline_sm_on_flow_samples_needs_a_base_as_wide_as_the_data() {
    let mog = GaussianMixture::mog4();
    let train = exact(&mog, 100, 2, 11);
    let scale = train.columns().into_iter().map(|c| c.std(0.0)).fold(0.0f64, f64::max);
    assert!(scale > 3.5 && scale < 4.5, "MOG-4 coordinate std {scale}");
    let flow = |spline: bool, sigma: f64| {
        let mut f = FlowConfig::mlp(2, 2, vec![8]);
        if spline {
            f.coupling = CouplingKind::Spline(SplineConfig {
                bins: 4,
                tail_bound: 12.0,
            });
        }
        f.base_sigma = sigma;
        f.build(Seed::new(1)).unwrap()
    };
    let new = |spline: bool, sigma: f64, loss: LossConfig| {
        let cfg = TrainConfig::new(loss, 64, 10, 1e-3);
        let data = TrainData {
            train: Some(train.clone()),
            ..Default::default()
        };
        Trainer::new(&cfg, flow(spline, sigma), &mog, data, Par::default()).map(|_| ())
    };
    let modes = LossConfig::preset(LossPreset::Scorenf);
    let min = SPLINE_SM_MIN_BASE_FRACTION * scale;
    for sigma in [1.0, 0.99 * min] {
        match new(true, sigma, modes) {
            Err(TrainError::Config(e)) => {
                assert_eq!(e.field, "flow.base_sigma");
                assert!(e.problem.contains(&format!("base_sigma >= {min:.3}")), "{e}");
            }
            other => panic!("σ = {sigma}: expected a refusal, got {other:?}"),
        }
    }
    new(true, 1.01 * min, modes).unwrap();
    new(true, 3.0, modes).unwrap();
    new(false, 1.0, modes).unwrap();
    new(true, 1.0, LossConfig::weights(1.0, 0.1, 0.1, SmOn::Data)).unwrap();
    new(true, 1.0, LossConfig::preset(LossPreset::Fkl)).unwrap();
}

/// The property behind `check_spline_base`, on the `scorenf` recipe
/// (MOG-4, 100 samples, spline couplings, B = 6): from a N(0, 1) base the
/// flow piles mass up just inside the tail bound within 30 steps, where its
/// score is huge and SM on flow samples explodes; from a base as wide as the
/// data (σ = 3) SM stays O(1). The flows are assembled from their layers
/// (no `FlowConfig` attached) so that the trainer does not refuse σ = 1.
#[test]
fn a_narrow_base_piles_spline_mass_up_at_the_tail_bound() {
    let mog = GaussianMixture::mog4();
    let train = exact(&mog, 100, 2, 100);
    let par = Par::default();
    let run = |sigma: f64| {
        let mut fc = FlowConfig::mlp(2, 8, vec![32, 32]);
        fc.coupling = CouplingKind::Spline(SplineConfig {
            bins: 8,
            tail_bound: 6.0,
        });
        fc.base_sigma = sigma;
        let built = fc.build(Seed::new(1)).unwrap();
        let flow = Flow::from_layers(sigma, fc.layers().unwrap(), built.params().to_vec());
        let steps = 30;
        let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Scorenf), 256, 2000, 2e-3);
        cfg.annealing = Annealing::Geometric {
            beta0: 0.1,
            steps: 1000,
        };
        cfg.fkl_decay = Some(fieldflow_losses::scorenf_fkl_decay(2000));
        cfg.clip_grad_norm = Some(100.0);
        cfg.seed = 1;
        let data = TrainData {
            train: Some(train.clone()),
            ..Default::default()
        };
        let mut tr = Trainer::new(&cfg, flow, &mog, data, par).unwrap();
        for _ in 0..steps {
            tr.step().unwrap();
        }
        // SM and the outermost coordinate of 4096 fresh flow samples.
        let flow = tr.flow();
        let n = 4096;
        let mut zs = Array2::zeros((n, 2));
        flow.sample_base_batch(Seed::new(7), zs.view_mut(), par);
        let (mut xs, mut lq) = (Array2::zeros((n, 2)), Array1::zeros(n));
        flow.forward_batch(zs.view(), xs.view_mut(), lq.view_mut(), par);
        let mut g = vec![0.0; flow.n_params()];
        let beta = cfg.annealing.beta(steps);
        let sm = fieldflow_losses::loss::sm_value_and_grad(flow, &mog, xs.view(), beta, 0.0, &mut g, par);
        let outer = xs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        (sm, outer)
    };
    let (sm_narrow, outer_narrow) = run(1.0);
    let (sm_wide, _) = run(3.0);
    assert!(sm_wide < 10.0, "σ = 3: SM {sm_wide}");
    assert!(sm_narrow > 100.0, "σ = 1: SM {sm_narrow} (σ = 3: {sm_wide})");
    assert!(
        outer_narrow > 5.9 && outer_narrow < 6.0,
        "σ = 1: outermost |x_j| {outer_narrow}"
    );
}
