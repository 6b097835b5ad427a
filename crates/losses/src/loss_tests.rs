//! Finite-difference checks of every loss gradient (docs/THEORY.md §5):
//! a small non-identity MLP flow (SiLU, no kinks) in f64, fixed noise and
//! data, β ≠ 1; the analytic gradient must match central differences of the
//! loss *value* to a relative error below 1e-6.

use super::*;
use fieldflow_core::Seed;
use fieldflow_flows::{ActivationKind, FlowConfig};
use fieldflow_targets::{Covariance, GaussianMixture};
use fieldflow_testkit::{central_gradient, rel_err_with_floor, FD_REL_TOL, FD_STEP};
use ndarray::{array, Array2};
use rand_distr_free::normal_rows;

/// Standard-normal rows without pulling in rand_distr (Box–Muller).
mod rand_distr_free {
    use fieldflow_core::Seed;
    use ndarray::Array2;
    use rand::Rng as _;

    pub fn normal_rows(n: usize, d: usize, scale: f64, seed: u64) -> Array2<f64> {
        let mut rng = Seed::new(seed).rng();
        Array2::from_shape_fn((n, d), |_| {
            let (u, v): (f64, f64) = (rng.random(), rng.random());
            scale * (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        })
    }
}

const DIM: usize = 3;
const BETA: f64 = 0.7;

fn config() -> FlowConfig {
    let mut c = FlowConfig::mlp(DIM, 4, vec![6]);
    c.mask = fieldflow_flows::MaskKind::Random;
    c.mask_seed = 3;
    c.base_sigma = 0.9;
    c.identity_init = false;
    c.conditioner.activation = ActivationKind::Silu;
    c.conditioner.output_activation = ActivationKind::Tanh;
    c
}

fn flow_at(params: &[f64]) -> Flow {
    Flow::from_parts(config(), params.to_vec()).unwrap()
}

/// A two-component 3D mixture with a full covariance: a nonlinear score.
fn target() -> GaussianMixture {
    let cov = array![[1.0, 0.3, -0.2], [0.3, 0.8, 0.1], [-0.2, 0.1, 1.5]];
    GaussianMixture::new(
        vec![array![1.0, -0.5, 0.2], array![-1.0, 0.7, -0.3]],
        vec![Covariance::Full(cov), Covariance::Isotropic(0.6)],
        vec![0.4, 0.6],
    )
    .unwrap()
}

struct Fixture {
    theta: Vec<f64>,
    data: Array2<f64>,
    noise: Array2<f64>,
    target: GaussianMixture,
}

fn fixture() -> Fixture {
    let flow = config().build(Seed::new(11)).unwrap();
    // Perturb the initialization so every parameter matters at O(1).
    let bump = normal_rows(1, flow.n_params(), 0.3, 5);
    let theta: Vec<f64> = flow.params().iter().zip(bump.iter()).map(|(a, b)| a + b).collect();
    Fixture {
        theta,
        data: normal_rows(13, DIM, 1.2, 7),
        noise: normal_rows(11, DIM, 0.9, 9),
        target: target(),
    }
}

/// The RKL value at parameters `th` on the fixture's noise (reparametrized).
fn rkl_at(fx: &Fixture, th: &[f64], par: Par) -> f64 {
    rkl_value_and_grad(
        &flow_at(th),
        &fx.target,
        fx.noise.view(),
        BETA,
        0.0,
        &mut vec![0.0; th.len()],
        par,
    )
    .value
}

/// The shared relative error with a negligible floor (these gradients are
/// checked to be far from zero).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    rel_err_with_floor(a, b, 1e-300)
}

/// Checks `loss` at the fixture: analytic gradient vs FD of its value.
fn check(loss: Loss, par: Par) {
    let fx = fixture();
    let inputs = LossInputs {
        data: Some(fx.data.view()),
        noise: Some(fx.noise.view()),
    };
    let value = |th: &[f64]| {
        loss.value_and_grad(&flow_at(th), &fx.target, inputs, BETA, par)
            .unwrap()
            .total
    };
    let rep = loss
        .value_and_grad(&flow_at(&fx.theta), &fx.target, inputs, BETA, par)
        .unwrap();
    assert!(rep.total.is_finite());
    let gmax = rep.grad.iter().map(|g| g.abs()).fold(0.0, f64::max);
    assert!(gmax > 1e-3, "gradient too small to test: {gmax}");
    let fd = central_gradient(value, &fx.theta, FD_STEP);
    let e = rel_err(&rep.grad, &fd);
    assert!(e < FD_REL_TOL, "{loss:?}: relative error {e:.3e}");
}

#[test]
fn fkl_gradient_matches_finite_differences() {
    check(LossConfig::preset(LossPreset::Fkl).validate().unwrap(), Par::serial(4));
}

#[test]
fn rkl_gradient_matches_finite_differences() {
    check(LossConfig::preset(LossPreset::Rkl).validate().unwrap(), Par::default());
}

#[test]
fn sm_on_data_gradient_matches_finite_differences() {
    check(LossConfig::preset(LossPreset::Sm).validate().unwrap(), Par::serial(5));
}

#[test]
fn weighted_sum_gradient_matches_finite_differences() {
    check(
        LossConfig::weights(0.3, 0.5, 0.2, SmOn::Data).validate().unwrap(),
        Par::serial(3),
    );
}

/// SM on flow samples holds x = f_θ(z) fixed, so its gradient is that of
/// SM on the *data* x₀ = f_θ₀(z): differences of θ ↦ SM(θ; x₀). The RKL
/// part of the same call keeps its reparametrized gradient.
#[test]
fn sm_on_flow_samples_gradient_treats_samples_as_fixed() {
    let fx = fixture();
    let par = Par::serial(4);
    let (w_rkl, w_sm) = (0.4, 0.6);
    let loss = LossConfig::weights(0.0, w_rkl, w_sm, SmOn::Flow).validate().unwrap();
    let inputs = LossInputs {
        data: None,
        noise: Some(fx.noise.view()),
    };
    let flow0 = flow_at(&fx.theta);
    let rep = loss.value_and_grad(&flow0, &fx.target, inputs, BETA, par).unwrap();
    let (x0, _) = flow_samples(&flow0, &fx.target, fx.noise.view(), par);
    let value = |th: &[f64]| {
        let sm = sm_value_and_grad(
            &flow_at(th),
            &fx.target,
            x0.view(),
            BETA,
            0.0,
            &mut vec![0.0; th.len()],
            par,
        );
        w_rkl * rkl_at(&fx, th, par) + w_sm * sm
    };
    assert!((value(&fx.theta) - rep.total).abs() < 1e-12 * rep.total.abs().max(1.0));
    let fd = central_gradient(value, &fx.theta, FD_STEP);
    let e = rel_err(&rep.grad, &fd);
    assert!(e < FD_REL_TOL, "relative error {e:.3e}");
    // And it differs from the full derivative through the sampling path.
    let full = central_gradient(
        |th: &[f64]| {
            loss.value_and_grad(&flow_at(th), &fx.target, inputs, BETA, par)
                .unwrap()
                .total
        },
        &fx.theta,
        FD_STEP,
    );
    assert!(rel_err(&rep.grad, &full) > 1e-3);
}

#[test]
fn parts_by_products_and_chunking_are_consistent() {
    let fx = fixture();
    let loss = LossConfig {
        w_fkl_is: Some(0.4),
        ..LossConfig::weights(0.3, 0.5, 0.2, SmOn::Data)
    }
    .validate()
    .unwrap();
    let inputs = LossInputs {
        data: Some(fx.data.view()),
        noise: Some(fx.noise.view()),
    };
    let flow = flow_at(&fx.theta);
    let a = loss
        .value_and_grad(&flow, &fx.target, inputs, BETA, Par::serial(3))
        .unwrap();
    let b = loss
        .value_and_grad(&flow, &fx.target, inputs, BETA, Par::default())
        .unwrap();
    assert!((a.total - (0.3 * a.fkl + 0.5 * a.rkl + 0.2 * a.sm + 0.4 * a.fkl_is)).abs() < 1e-12);
    assert!(rel_err(&a.grad, &b.grad) < 1e-12);
    // log w at β = 1 and the RKL value at β are tied by log q = log p̃ − log w.
    assert_eq!(a.log_w.len(), 11);
    let (_, lw) = flow_samples(&flow, &fx.target, fx.noise.view(), Par::serial(3));
    assert!(rel_err(&a.log_w, &lw) < 1e-12);
    // Bit-identical for any thread count at a fixed chunking.
    let par1 = Par {
        chunk_rows: 4,
        parallel: false,
    };
    let par2 = Par {
        chunk_rows: 4,
        parallel: true,
    };
    let c = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par1).unwrap();
    let d = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par2).unwrap();
    assert_eq!(c, d);
}

#[test]
fn presets_overrides_and_errors() {
    let s = LossConfig::preset(LossPreset::RklSm).validate().unwrap();
    assert_eq!(
        (s.w_fkl, s.w_rkl, s.w_sm, s.sm_on),
        (0.0, 1.0, RKL_SM_DEFAULT_W_SM, SmOn::Data)
    );
    let c: LossConfig = toml::from_str("preset = \"rkl_sm\"\nw_sm = 0.5\nsm_on = \"flow\"").unwrap();
    let l = c.validate().unwrap();
    assert_eq!((l.w_rkl, l.w_sm, l.sm_on), (1.0, 0.5, SmOn::Flow));
    assert!(l.needs_noise() && !l.needs_data());
    // ScoreNF: FKL + 0.1 RKL + 0.1 SM on the flow's samples (also under its
    // former name); an explicit sm_on still overrides the preset's.
    for name in ["scorenf", "scorenf_modes"] {
        let m: LossConfig = toml::from_str(&format!("preset = \"{name}\"")).unwrap();
        assert_eq!(m.preset, Some(LossPreset::Scorenf));
        let m = m.validate().unwrap();
        assert_eq!((m.w_fkl, m.w_rkl, m.w_sm, m.sm_on), (1.0, 0.1, 0.1, SmOn::Flow));
        assert_eq!(m.w_fkl_is, SCORENF_W_FKL_IS);
    }
    // FKL on flow samples belongs to `scorenf` only; an explicit weight wins.
    for p in [LossPreset::Fkl, LossPreset::Rkl, LossPreset::Sm, LossPreset::RklSm] {
        assert_eq!(LossConfig::preset(p).validate().unwrap().w_fkl_is, 0.0, "{p:?}");
    }
    let m: LossConfig = toml::from_str("preset = \"scorenf\"\nw_fkl_is = 0.0").unwrap();
    assert_eq!(m.validate().unwrap().w_fkl_is, 0.0);
    assert_eq!(
        scorenf_fkl_decay(2000),
        FklDecay {
            start: 1000,
            steps: 500,
            factor: 0.01
        }
    );
    assert_eq!(scorenf_fkl_decay(1).steps, 1);
    let m: LossConfig = toml::from_str("preset = \"scorenf\"\nsm_on = \"data\"").unwrap();
    assert_eq!(m.validate().unwrap().sm_on, SmOn::Data);
    assert_eq!(
        toml::Value::try_from(LossPreset::Scorenf).unwrap().as_str(),
        Some("scorenf")
    );
    assert_eq!(
        scorenf_annealing(2000),
        Annealing::Geometric {
            beta0: SCORENF_BETA0,
            steps: 1000
        }
    );
    assert_eq!(scorenf_annealing(1).beta(1), 1.0);
    assert!(toml::from_str::<LossConfig>("preset = \"rkl\"\nw_typo = 1.0").is_err());
    assert!(toml::from_str::<LossConfig>("preset = \"nope\"").is_err());
    let e = LossConfig {
        w_sm: Some(-1.0),
        ..LossConfig::preset(LossPreset::Rkl)
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.to_string(), "loss.w_sm = -1: must be finite and >= 0");
    assert_eq!(LossConfig::default().validate().unwrap_err().field, "loss");
    // Missing and mis-shaped inputs are errors, not panics.
    let fx = fixture();
    let flow = flow_at(&fx.theta);
    let fkl = LossConfig::preset(LossPreset::Fkl).validate().unwrap();
    let err = fkl
        .value_and_grad(&flow, &fx.target, LossInputs::default(), 1.0, Par::default())
        .unwrap_err();
    assert_eq!(err, LossError::MissingData { term: "fkl" });
    let wide = Array2::zeros((4, DIM + 1));
    let err = fkl
        .value_and_grad(
            &flow,
            &fx.target,
            LossInputs {
                data: Some(wide.view()),
                noise: None,
            },
            1.0,
            Par::default(),
        )
        .unwrap_err();
    assert!(matches!(err, LossError::Dimension { what: "data", .. }));
    let rkl = LossConfig::preset(LossPreset::Rkl).validate().unwrap();
    let err = rkl
        .value_and_grad(&flow, &fx.target, LossInputs::default(), 1.0, Par::default())
        .unwrap_err();
    assert_eq!(err, LossError::MissingNoise { term: "rkl" });
}

/// `sm_fraction`: SM on the first ⌈f·n_c⌉ rows of every chunk, averaged
/// over those rows only — its value is plain SM on exactly those rows, its
/// gradient matches central differences, and it does not depend on the
/// thread count.
#[test]
fn sm_on_a_fraction_of_every_chunk_is_sm_on_those_rows() {
    let fx = fixture();
    let par = Par::serial(4);
    let mut cfg = LossConfig::weights(0.0, 0.0, 1.0, SmOn::Data);
    cfg.sm_fraction = Some(0.4);
    let loss = cfg.validate().unwrap();
    let inputs = LossInputs {
        data: Some(fx.data.view()),
        noise: None,
    };
    let flow = flow_at(&fx.theta);
    let rep = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par).unwrap();
    // 13 rows in chunks of 4, 4, 4, 1: ⌈1.6⌉ = 2, 2, 2 and 1 rows.
    let rows = [0, 1, 4, 5, 8, 9, 12];
    let x = fx.data.select(ndarray::Axis(0), &rows);
    let mut g = vec![0.0; flow.n_params()];
    let sm = sm_value_and_grad(&flow, &fx.target, x.view(), BETA, 1.0, &mut g, par);
    assert!((rep.sm - sm).abs() < 1e-12 * sm.abs(), "{} vs {sm}", rep.sm);
    assert!(rel_err(&rep.grad, &g) < 1e-12);
    check(loss, par);
    // On flow samples, with RKL beside it, and in parallel: bit-identical.
    let mut cfg = LossConfig::weights(0.0, 0.5, 0.5, SmOn::Flow);
    cfg.sm_fraction = Some(0.5);
    let loss = cfg.validate().unwrap();
    let inputs = LossInputs {
        data: None,
        noise: Some(fx.noise.view()),
    };
    let par2 = Par {
        chunk_rows: 4,
        parallel: true,
    };
    let a = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par).unwrap();
    let b = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par2).unwrap();
    assert!(a.total.to_bits() == b.total.to_bits() && a.grad == b.grad && a.log_w == b.log_w);
    let full = LossConfig::weights(0.0, 0.5, 0.5, SmOn::Flow).validate().unwrap();
    let c = full.value_and_grad(&flow, &fx.target, inputs, BETA, par).unwrap();
    assert!(a.rkl == c.rkl && a.sm != c.sm);
    for bad in [0.0, 1.5, f64::NAN] {
        let mut cfg = LossConfig::preset(LossPreset::Scorenf);
        cfg.sm_fraction = Some(bad);
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.field, "loss.sm_fraction");
    }
    let c: LossConfig = toml::from_str("preset = \"scorenf\"\nsm_fraction = 0.25").unwrap();
    assert_eq!(c.validate().unwrap().sm_fraction, 0.25);
}

/// `sm_cauchy_scale = c₀`: each row's SM residual u = ‖s_θ − β s_p‖² enters
/// as c ln(1 + u/c) with c = c₀·d — its value is that of the rows' plain
/// residuals, its gradient matches central differences (alone and in a
/// weighted sum), a huge scale gives plain SM back, the result does not
/// depend on the thread count, and bad scales are refused.
#[test]
fn cauchy_damped_sm_is_the_damped_residual_with_its_exact_gradient() {
    let fx = fixture();
    let par = Par::serial(4);
    let damped = |w_fkl: f64, w_rkl: f64, c0: f64| {
        let mut cfg = LossConfig::weights(w_fkl, w_rkl, 0.8, SmOn::Data);
        cfg.sm_cauchy_scale = Some(c0);
        cfg.validate().unwrap()
    };
    let flow = flow_at(&fx.theta);
    let inputs = LossInputs {
        data: Some(fx.data.view()),
        noise: Some(fx.noise.view()),
    };
    let c0 = 0.3;
    let c = c0 * DIM as f64;
    let rep = damped(0.0, 0.0, c0)
        .value_and_grad(&flow, &fx.target, inputs, BETA, par)
        .unwrap();
    // The plain residual of every row, one row at a time.
    let mut g = vec![0.0; flow.n_params()];
    let u: Vec<f64> = (0..fx.data.nrows())
        .map(|i| {
            sm_value_and_grad(
                &flow,
                &fx.target,
                fx.data.slice(s![i..i + 1, ..]),
                BETA,
                0.0,
                &mut g,
                par,
            )
        })
        .collect();
    let expect = u.iter().map(|&u| c * (u / c).ln_1p()).sum::<f64>() / u.len() as f64;
    assert!((rep.sm - expect).abs() < 1e-12 * expect, "{} vs {expect}", rep.sm);
    assert!((rep.total - 0.8 * expect).abs() < 1e-12 * expect);
    // Damping matters at this scale: some rows have u ≫ c.
    let plain = u.iter().sum::<f64>() / u.len() as f64;
    assert!(rep.sm < 0.8 * plain, "{} vs plain {plain}", rep.sm);
    check(damped(0.0, 0.0, c0), par);
    check(damped(0.3, 0.5, c0), Par::default());
    // c → ∞: plain SM.
    let far = damped(0.0, 0.0, 1e12)
        .value_and_grad(&flow, &fx.target, inputs, BETA, par)
        .unwrap();
    let sm = LossConfig::weights(0.0, 0.0, 0.8, SmOn::Data)
        .validate()
        .unwrap()
        .value_and_grad(&flow, &fx.target, inputs, BETA, par)
        .unwrap();
    assert!((far.sm - sm.sm).abs() < 1e-9 * sm.sm && rel_err(&far.grad, &sm.grad) < 1e-9);
    // On flow samples, any thread count: bit-identical.
    let mut cfg = LossConfig::weights(0.0, 0.5, 0.5, SmOn::Flow);
    cfg.sm_cauchy_scale = Some(c0);
    let loss = cfg.validate().unwrap();
    let par2 = Par {
        chunk_rows: 4,
        parallel: true,
    };
    let a = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par).unwrap();
    let b = loss.value_and_grad(&flow, &fx.target, inputs, BETA, par2).unwrap();
    assert!(a.total.to_bits() == b.total.to_bits() && a.grad == b.grad);
    for bad in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
        let mut cfg = LossConfig::preset(LossPreset::Scorenf);
        cfg.sm_cauchy_scale = Some(bad);
        assert_eq!(cfg.validate().unwrap_err().field, "loss.sm_cauchy_scale");
    }
    // The preset's default, an explicit scale, `inf` = plain SM; other
    // presets and explicit weights are plain by default.
    let scale = |text: &str| {
        toml::from_str::<LossConfig>(text)
            .unwrap()
            .validate()
            .unwrap()
            .sm_cauchy_scale
    };
    assert_eq!(scale("preset = \"scorenf\""), Some(SCORENF_SM_CAUCHY_SCALE));
    assert_eq!(scale("preset = \"scorenf\"\nsm_cauchy_scale = 10.0"), Some(10.0));
    assert_eq!(scale("preset = \"scorenf\"\nsm_cauchy_scale = inf"), None);
    assert_eq!(scale("preset = \"rkl_sm\""), None);
    assert_eq!(scale("w_sm = 1.0"), None);
}

/// The fixture's flow samples x₀ = f_θ₀(z) and their tempered log-weights
/// β log p̃(x₀) − log q_θ₀(x₀), which FKL_IS holds fixed.
fn fixed_flow_samples(fx: &Fixture, par: Par) -> (Array2<f64>, Vec<f64>) {
    let (x0, _) = flow_samples(&flow_at(&fx.theta), &fx.target, fx.noise.view(), par);
    let lq0 = log_q_at(&fx.theta, &x0, par);
    let mut lp0 = Array1::zeros(x0.nrows());
    fx.target.log_prob_batch(x0.view(), lp0.view_mut(), par);
    let lw = lq0.iter().zip(&lp0).map(|(q, p)| BETA * p - q).collect();
    (x0, lw)
}

/// log q_θ at the rows of `x`.
fn log_q_at(theta: &[f64], x: &Array2<f64>, par: Par) -> Array1<f64> {
    let mut lq = Array1::zeros(x.nrows());
    flow_at(theta).inverse_batch(x.view(), Array2::zeros(x.raw_dim()).view_mut(), lq.view_mut(), par);
    lq
}

/// FKL on flow samples by self-normalized importance sampling holds the
/// samples x₀ = f_θ₀(z) and their weights w̄ (from β log p̃ − log q at θ₀)
/// fixed: its gradient is that of θ ↦ −Σᵢ w̄ᵢ log q_θ(x₀ᵢ). Checked alone
/// and beside RKL, for chunkings that split the batch's normalization
/// across chunks, against central differences.
#[test]
fn fkl_by_importance_sampling_on_flow_samples_has_the_fixed_weight_gradient() {
    let fx = fixture();
    let flow0 = flow_at(&fx.theta);
    let inputs = LossInputs {
        data: None,
        noise: Some(fx.noise.view()),
    };
    let par = Par::serial(64);
    let (x0, lw) = fixed_flow_samples(&fx, par);
    let lse = fieldflow_stats::weights::log_sum_exp(&lw);
    let w_bar: Vec<f64> = lw.iter().map(|l| (l - lse).exp()).collect();
    assert!((w_bar.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let fixed = |th: &[f64]| {
        -log_q_at(th, &x0, par)
            .iter()
            .zip(&w_bar)
            .map(|(q, w)| w * q)
            .sum::<f64>()
    };
    for (w_rkl, w_is) in [(0.0, 1.0), (0.4, 0.7)] {
        let loss = LossConfig {
            w_rkl: Some(w_rkl),
            w_fkl_is: Some(w_is),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let value = |th: &[f64]| w_rkl * rkl_at(&fx, th, par) + w_is * fixed(th);
        let fd = central_gradient(value, &fx.theta, FD_STEP);
        let mut reference: Option<LossReport> = None;
        for chunk in [64, 4, 3, 1] {
            let rep = loss
                .value_and_grad(&flow0, &fx.target, inputs, BETA, Par::serial(chunk))
                .unwrap();
            assert!((rep.fkl_is - fixed(&fx.theta)).abs() < 1e-12 * rep.fkl_is.abs().max(1.0));
            assert!((rep.total - value(&fx.theta)).abs() < 1e-12 * rep.total.abs().max(1.0));
            let e = rel_err(&rep.grad, &fd);
            assert!(
                e < FD_REL_TOL,
                "w_rkl {w_rkl}, chunks of {chunk}: relative error {e:.3e}"
            );
            if let Some(r) = &reference {
                assert!(rel_err(&rep.grad, &r.grad) < 1e-12, "chunks of {chunk}");
            }
            reference = Some(rep);
        }
    }
    // A slope error of 1e-4 in one row's weight is caught.
    let mut bad = w_bar.clone();
    bad[0] *= 1.0 + 1e-4;
    let rep = LossConfig {
        w_fkl_is: Some(1.0),
        ..Default::default()
    }
    .validate()
    .unwrap()
    .value_and_grad(&flow0, &fx.target, inputs, BETA, par)
    .unwrap();
    let fd_bad = central_gradient(
        |th: &[f64]| -log_q_at(th, &x0, par).iter().zip(&bad).map(|(q, w)| w * q).sum::<f64>(),
        &fx.theta,
        FD_STEP,
    );
    assert!(rel_err(&rep.grad, &fd_bad) > FD_REL_TOL);
}

/// FKL_IS on a fraction of the flow rows (`fkl_is_fraction`): the first
/// ⌈f·n_c⌉ rows of every chunk of n_c, self-normalized over those rows
/// only. Its gradient is that of θ ↦ −Σ_{i∈used} w̄ᵢ log q_θ(x₀ᵢ) with w̄
/// normalized over the used rows (central differences), and it does not
/// depend on the thread count at a fixed chunking.
#[test]
fn fkl_is_on_a_fraction_of_the_rows_has_the_subset_gradient() {
    let fx = fixture();
    let flow0 = flow_at(&fx.theta);
    let inputs = LossInputs {
        data: None,
        noise: Some(fx.noise.view()),
    };
    let all = Par::serial(64);
    let (x0, lw0) = fixed_flow_samples(&fx, all);
    let n = x0.nrows();
    for (chunk, f) in [(4, 0.5), (3, 0.34), (5, 0.2), (64, 0.6)] {
        let used: Vec<usize> = (0..n)
            .filter(|&i| {
                let (k, len) = (i / chunk, chunk.min(n - (i / chunk) * chunk));
                i - k * chunk < ((f * len as f64).ceil() as usize).clamp(1, len)
            })
            .collect();
        assert!(used.len() < n);
        let lw: Vec<f64> = used.iter().map(|&i| lw0[i]).collect();
        let lse = fieldflow_stats::weights::log_sum_exp(&lw);
        let w_bar: Vec<f64> = lw.iter().map(|l| (l - lse).exp()).collect();
        let fixed = |th: &[f64]| {
            let lq = log_q_at(th, &x0, all);
            -used.iter().zip(&w_bar).map(|(&i, w)| w * lq[i]).sum::<f64>()
        };
        let loss = LossConfig {
            w_fkl_is: Some(0.8),
            fkl_is_fraction: Some(f),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let rep = loss
            .value_and_grad(&flow0, &fx.target, inputs, BETA, Par::serial(chunk))
            .unwrap();
        assert!((rep.fkl_is - fixed(&fx.theta)).abs() < 1e-12 * rep.fkl_is.abs().max(1.0));
        let fd = central_gradient(|th: &[f64]| 0.8 * fixed(th), &fx.theta, FD_STEP);
        let e = rel_err(&rep.grad, &fd);
        assert!(e < FD_REL_TOL, "chunks of {chunk}, f = {f}: relative error {e:.3e}");
        let threads = loss
            .value_and_grad(
                &flow0,
                &fx.target,
                inputs,
                BETA,
                Par {
                    chunk_rows: chunk,
                    parallel: true,
                },
            )
            .unwrap();
        assert_eq!(threads.grad, rep.grad);
    }
    let mut cfg = LossConfig {
        w_fkl_is: Some(1.0),
        ..Default::default()
    };
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        cfg.fkl_is_fraction = Some(bad);
        assert_eq!(cfg.validate().unwrap_err().field, "loss.fkl_is_fraction");
    }
}
