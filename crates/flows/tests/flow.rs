//! End-to-end proofs for whole flows: invertibility, exact identity
//! initialization, score, FKL / RKL gradients and the score-matching
//! second-order term against finite differences, Z₂ symmetry, thread-count
//! independence and bit-identical serialization round trips, for affine
//! and rational-quadratic spline couplings.

use fieldflow_core::{Par, Proposal, ProposalDensity, Seed};
use fieldflow_flows::{
    ActivationKind, CouplingKind, Flow, FlowConfig, FlowError, FlowLayer, Layer, MaskKind, ScaleBound, ScoreModel,
    SplineConfig,
};
use fieldflow_testkit::{central_gradient, central_jvp, central_partials, rel_err, FD_REL_TOL, FD_STEP};
use ndarray::{Array1, Array2};
use rand_distr::{Distribution, StandardNormal};

const H: f64 = FD_STEP;
const TOL: f64 = FD_REL_TOL;

fn rows(n: usize, d: usize, seed: u64, scale: f64) -> Array2<f64> {
    let mut rng = Seed::new(seed).rng();
    Array2::from_shape_fn((n, d), |_| {
        let z: f64 = StandardNormal.sample(&mut rng);
        scale * z
    })
}

fn assert_close(what: &str, a: &[f64], b: &[f64]) {
    fieldflow_testkit::assert_close(what, a, b, TOL);
}

/// Tutorial architecture on L×L (SiLU hidden for the finite-difference
/// checks: LeakyReLU kinks spoil central differences of a 16-layer flow).
fn tutorial_smooth(l: usize, z2: bool) -> FlowConfig {
    let mut c = FlowConfig::tutorial(l);
    c.conditioner.activation = ActivationKind::Silu;
    c.z2_equivariant = z2;
    c.identity_init = false;
    c
}

fn mlp_cfg() -> FlowConfig {
    let mut c = FlowConfig::mlp(6, 4, vec![7, 5]);
    c.mask = MaskKind::Random;
    c.mask_seed = 5;
    c.base_sigma = 0.8;
    c.identity_init = false;
    c.conditioner.activation = ActivationKind::Tanh;
    c.scale_bound = ScaleBound::SoftClamp { c: 2.0 };
    c
}

fn spline(mut c: FlowConfig, bins: usize, tail_bound: f64) -> FlowConfig {
    c.coupling = CouplingKind::Spline(SplineConfig { bins, tail_bound });
    c
}

/// Spline couplings with an MLP conditioner (random masks, tanh hidden).
fn spline_mlp_cfg() -> FlowConfig {
    spline(mlp_cfg(), 6, 1.5)
}

/// Spline couplings with the tutorial's convolutional conditioner (SiLU).
fn spline_conv_cfg() -> FlowConfig {
    spline(tutorial_smooth(4, false), 4, 2.0)
}

/// The smooth tutorial flow behind a free-field layer.
fn free_field_cfg() -> FlowConfig {
    FlowConfig {
        free_field: true,
        ..tutorial_smooth(4, false)
    }
}

/// A flow with random, non-trivial parameters (the free-field layer, which
/// starts at the identity, gets log-eigenvalues of order 0.5).
fn random_flow(cfg: &FlowConfig, seed: u64, gain: f64) -> Flow {
    let mut f = cfg.build(Seed::new(seed)).unwrap();
    f.params_mut().iter_mut().for_each(|v| *v *= gain);
    let n_ff: usize = f
        .layers()
        .iter()
        .filter(|l| matches!(l, FlowLayer::FreeField(_)))
        .map(|l| l.n_params())
        .sum();
    for (i, v) in f.params_mut()[..n_ff].iter_mut().enumerate() {
        *v = 0.6 * ((i as f64 + seed as f64) * 1.3).sin();
    }
    f
}

fn with_params(f: &Flow, p: &[f64]) -> Flow {
    let mut g = f.clone();
    g.params_mut().copy_from_slice(p);
    g
}

/// Parameter indices probed by finite differences (all if few).
fn probe(n: usize) -> Vec<usize> {
    let step = (n / 150).max(1);
    (0..n).step_by(step).collect()
}

fn fd_params(f: &Flow, idx: &[usize], loss: impl Fn(&Flow) -> f64) -> Vec<f64> {
    central_partials(|p| loss(&with_params(f, p)), f.params(), idx, H)
}

fn log_q(f: &Flow, x: &Array2<f64>) -> Array1<f64> {
    let mut out = Array1::zeros(x.nrows());
    f.log_q_batch(x.view(), out.view_mut(), Par::serial(4));
    out
}

fn scores(f: &Flow, x: &Array2<f64>) -> (Array2<f64>, Array1<f64>) {
    let mut s = Array2::zeros(x.raw_dim());
    let mut lq = Array1::zeros(x.nrows());
    f.score_batch(x.view(), s.view_mut(), lq.view_mut(), Par::serial(4));
    (s, lq)
}

#[test]
fn flows_invert_and_agree_on_log_q_in_both_directions() {
    for (name, cfg) in [
        (
            "tutorial L=4",
            FlowConfig {
                identity_init: false,
                ..FlowConfig::tutorial(4)
            },
        ),
        ("tutorial L=6 z2", tutorial_smooth(6, true)),
        ("mlp", mlp_cfg()),
        ("spline mlp", spline_mlp_cfg()),
        ("spline conv", spline_conv_cfg()),
        ("free field", free_field_cfg()),
    ] {
        let f = random_flow(&cfg, 1, 1.5);
        let d = f.dim();
        let z = rows(9, d, 2, f.base_sigma());
        let (mut x, mut lq_f) = (Array2::zeros((9, d)), Array1::zeros(9));
        f.forward_batch(z.view(), x.view_mut(), lq_f.view_mut(), Par::serial(4));
        let (mut z2, mut lq_i) = (Array2::zeros((9, d)), Array1::zeros(9));
        f.inverse_batch(x.view(), z2.view_mut(), lq_i.view_mut(), Par::serial(4));
        let ez = (&z2 - &z).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let el = (&lq_i - &lq_f).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(ez < 1e-10, "{name}: |f⁻¹(f(z)) − z| = {ez:e}");
        assert!(el < 1e-10, "{name}: log q differs by {el:e}");
        assert!((&x - &z).iter().any(|v| v.abs() > 1e-2), "{name}: flow is trivial");
    }
}

#[test]
fn identity_initialized_flow_is_its_base_distribution() {
    for mut cfg in [FlowConfig::tutorial(4), FlowConfig::mlp(5, 3, vec![8])] {
        cfg.base_sigma = 0.7;
        let f = cfg.build(Seed::new(3)).unwrap();
        let x = rows(5, f.dim(), 4, 1.0);
        let lq = log_q(&f, &x);
        let base = fieldflow_core::IsotropicGaussian {
            dim: f.dim(),
            mean: 0.0,
            sigma: 0.7,
        };
        for r in 0..5 {
            let exact = fieldflow_core::Target::log_prob(&base, x.row(r));
            assert_eq!(lq[r], exact);
        }
    }
}

#[test]
fn the_free_field_layer_comes_first_and_needs_a_lattice() {
    let f = free_field_cfg().build(Seed::new(3)).unwrap();
    assert!(matches!(f.layers()[0], FlowLayer::FreeField(_)));
    assert_eq!(f.layers().len(), free_field_cfg().n_layers + 1);
    // Only lattice fields have momenta: an MLP flow refuses the layer.
    let mut mlp = FlowConfig::mlp(5, 3, vec![8]);
    mlp.free_field = true;
    assert_eq!(
        mlp.validate().unwrap_err().to_string(),
        "flow.free_field = true: needs a convolutional conditioner (a periodic lattice field)"
    );
}

#[test]
fn identity_initialized_spline_and_free_field_flows_are_their_base_distribution_to_rounding() {
    for mut cfg in [
        spline(FlowConfig::tutorial(4), 8, 3.0),
        spline(FlowConfig::mlp(5, 3, vec![8]), 4, 2.0),
        FlowConfig {
            free_field: true,
            ..FlowConfig::tutorial(4)
        },
    ] {
        cfg.base_sigma = 0.7;
        let f = cfg.build(Seed::new(3)).unwrap();
        let x = rows(5, f.dim(), 4, 1.5);
        let lq = log_q(&f, &x);
        let base = fieldflow_core::IsotropicGaussian {
            dim: f.dim(),
            mean: 0.0,
            sigma: 0.7,
        };
        for r in 0..5 {
            let exact = fieldflow_core::Target::log_prob(&base, x.row(r));
            assert!((lq[r] - exact).abs() < 1e-12, "{} vs {exact}", lq[r]);
        }
        let (s, _) = scores(&f, &x);
        let err = (&s + &x.mapv(|v| v / 0.49)).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-12, "score of the identity flow off by {err:e}");
    }
}

#[test]
fn score_matches_finite_differences_of_log_q() {
    for (name, cfg) in [
        ("tutorial L=4", tutorial_smooth(4, false)),
        ("mlp", mlp_cfg()),
        ("spline mlp", spline_mlp_cfg()),
        ("spline conv", spline_conv_cfg()),
        ("free field", free_field_cfg()),
    ] {
        let f = random_flow(&cfg, 5, 1.5);
        let x = rows(3, f.dim(), 6, 1.0);
        let (s, lq) = scores(&f, &x);
        assert_eq!(lq, log_q(&f, &x));
        for r in 0..3 {
            let log_q_row = |v: &[f64]| log_q(&f, &Array2::from_shape_vec((1, v.len()), v.to_vec()).unwrap())[0];
            let fd = central_gradient(log_q_row, &x.row(r).to_vec(), H);
            assert_close(&format!("{name} score row {r}"), s.row(r).as_slice().unwrap(), &fd);
        }
    }
}

#[test]
fn forward_kl_gradient_matches_finite_differences() {
    for (name, cfg) in [
        ("tutorial L=4", tutorial_smooth(4, true)),
        ("mlp", mlp_cfg()),
        ("spline mlp", spline_mlp_cfg()),
        ("spline conv", spline_conv_cfg()),
        ("free field", free_field_cfg()),
    ] {
        let f = random_flow(&cfg, 7, 1.5);
        let x = rows(5, f.dim(), 8, 1.0);
        let w = rows(5, 1, 9, 1.0).column(0).to_owned();
        let mut grad = vec![0.0; f.n_params()];
        let mut lq = Array1::zeros(5);
        f.log_q_grad_batch(x.view(), w.view(), lq.view_mut(), &mut grad, Par::serial(2));
        let idx = probe(f.n_params());
        let fd = fd_params(&f, &idx, |g| log_q(g, &x).dot(&w));
        let an: Vec<f64> = idx.iter().map(|&i| grad[i]).collect();
        assert_close(&format!("{name} FKL ∂θ"), &an, &fd);
    }
}

#[test]
fn reverse_kl_gradient_through_the_forward_pass_matches_finite_differences() {
    for (name, cfg) in [
        ("tutorial L=4", tutorial_smooth(4, false)),
        ("mlp", mlp_cfg()),
        ("spline mlp", spline_mlp_cfg()),
        ("spline conv", spline_conv_cfg()),
        ("free field", free_field_cfg()),
    ] {
        let f = random_flow(&cfg, 10, 1.5);
        let d = f.dim();
        let z = rows(5, d, 11, f.base_sigma());
        let a = rows(5, d, 12, 1.0);
        let c = rows(5, 1, 13, 1.0).column(0).to_owned();
        // L = Σᵢ ⟨aᵢ, xᵢ⟩ + cᵢ log q(xᵢ) with xᵢ = f(zᵢ), zᵢ fixed.
        let loss = |g: &Flow| {
            let (mut x, mut lq) = (Array2::zeros((5, d)), Array1::zeros(5));
            g.forward_batch(z.view(), x.view_mut(), lq.view_mut(), Par::serial(2));
            (&x * &a).sum() + lq.dot(&c)
        };
        let mut grad = vec![0.0; f.n_params()];
        let (mut x, mut lq) = (Array2::zeros((5, d)), Array1::zeros(5));
        f.forward_vjp_batch(
            z.view(),
            x.view_mut(),
            lq.view_mut(),
            &mut grad,
            Par::serial(2),
            |first, _x, _lq, mut gx, mut glq| {
                for r in 0..gx.nrows() {
                    gx.row_mut(r).assign(&a.row(first + r));
                    glq[r] = c[first + r];
                }
            },
        );
        let idx = probe(f.n_params());
        let fd = fd_params(&f, &idx, loss);
        let an: Vec<f64> = idx.iter().map(|&i| grad[i]).collect();
        assert_close(&format!("{name} RKL ∂θ"), &an, &fd);
    }
}

#[test]
fn score_matching_second_order_term_matches_finite_differences() {
    for (name, cfg) in [
        ("tutorial L=4", tutorial_smooth(4, false)),
        ("tutorial L=4 z2", tutorial_smooth(4, true)),
        ("mlp", mlp_cfg()),
        ("spline mlp", spline_mlp_cfg()),
        ("spline conv", spline_conv_cfg()),
        ("free field", free_field_cfg()),
    ] {
        let f = random_flow(&cfg, 14, 1.5);
        let d = f.dim();
        let x = rows(3, d, 15, 1.0);
        let r = rows(3, d, 16, 1.0);
        let mut grad = vec![0.0; f.n_params()];
        ScoreModel::score_param_vjp_batch(&f, x.view(), r.view(), &mut grad, Par::serial(2));
        let idx = probe(f.n_params());
        let fd = fd_params(&f, &idx, |g| (&scores(g, &x).0 * &r).sum());
        let an: Vec<f64> = idx.iter().map(|&i| grad[i]).collect();
        assert_close(&format!("{name} ∂θ⟨r, score⟩"), &an, &fd);

        // By-products of the same sweep: log q, the score, and ∇²log q · r.
        let mut grad2 = vec![0.0; f.n_params()];
        let (mut lq, mut s, mut hr) = (Array1::zeros(3), Array2::zeros((3, d)), Array2::zeros((3, d)));
        f.score_second_order_batch(
            x.view(),
            r.view(),
            &mut grad2,
            lq.view_mut(),
            s.view_mut(),
            hr.view_mut(),
            Par::serial(2),
        );
        assert_eq!(grad, grad2);
        let (s0, lq0) = scores(&f, &x);
        assert!(
            rel_err(s.as_slice().unwrap(), s0.as_slice().unwrap()) < 1e-12,
            "{name}: score by-product"
        );
        assert!(rel_err(lq.as_slice().unwrap(), lq0.as_slice().unwrap()) < 1e-12);
        let score_of = |v: &[f64]| {
            let (s, _) = scores(&f, &Array2::from_shape_vec((3, d), v.to_vec()).unwrap());
            s.into_raw_vec_and_offset().0
        };
        let fd_hr = central_jvp(score_of, x.as_slice().unwrap(), r.as_slice().unwrap(), H);
        assert_close(&format!("{name} ∇²log q · r"), hr.as_slice().unwrap(), &fd_hr);
    }
}

#[test]
fn z2_equivariant_flow_has_symmetric_density() {
    let mut cfg = FlowConfig::tutorial(6);
    cfg.z2_equivariant = true;
    cfg.identity_init = false;
    let f = random_flow(&cfg, 17, 1.5);
    let x = rows(16, f.dim(), 18, 1.3);
    let lq = log_q(&f, &x);
    let lqm = log_q(&f, &x.mapv(|v| -v));
    let err = (&lq - &lqm).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(err <= 1e-12, "log q(φ) − log q(−φ) = {err:e}");
    let (s, _) = scores(&f, &x);
    let (sm, _) = scores(&f, &x.mapv(|v| -v));
    let err = (&s + &sm).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(err <= 1e-12, "score not odd: {err:e}");
    // A non-equivariant flow with the same parameters is not symmetric.
    let g = Flow::from_parts(
        FlowConfig {
            z2_equivariant: false,
            ..cfg
        },
        f.params().to_vec(),
    )
    .unwrap();
    let d = (&log_q(&g, &x) - &log_q(&g, &x.mapv(|v| -v)))
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(d > 1e-3);
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn every_batched_result_is_bit_identical_for_one_and_two_threads() {
    let affine = FlowConfig {
        identity_init: false,
        ..FlowConfig::tutorial(4)
    };
    for cfg in [
        affine.clone(),
        spline(affine.clone(), 8, 2.0),
        FlowConfig {
            free_field: true,
            ..affine
        },
    ] {
        bit_identical_for_one_and_two_threads(&random_flow(&cfg, 19, 1.3));
    }
}

fn bit_identical_for_one_and_two_threads(f: &Flow) {
    let d = f.dim();
    let n = 37;
    let par = Par {
        chunk_rows: 8,
        parallel: true,
    };
    let run = || {
        let (mut x, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
        f.draw_batch(Seed::new(5), x.view_mut(), lq.view_mut(), par);
        let mut lq2 = Array1::zeros(n);
        f.log_q_batch(x.view(), lq2.view_mut(), par);
        let (mut s, mut lq3) = (Array2::zeros((n, d)), Array1::zeros(n));
        f.score_batch(x.view(), s.view_mut(), lq3.view_mut(), par);
        let mut g_fkl = vec![0.0; f.n_params()];
        let w = Array1::from_elem(n, -1.0 / n as f64);
        f.log_q_grad_batch(x.view(), w.view(), lq3.view_mut(), &mut g_fkl, par);
        let mut g_sm = vec![0.0; f.n_params()];
        ScoreModel::score_param_vjp_batch(f, x.view(), s.view(), &mut g_sm, par);
        let z = rows(n, d, 6, 1.0);
        let mut g_rkl = vec![0.0; f.n_params()];
        let (mut x2, mut lq4) = (Array2::zeros((n, d)), Array1::zeros(n));
        f.forward_vjp_batch(
            z.view(),
            x2.view_mut(),
            lq4.view_mut(),
            &mut g_rkl,
            par,
            |_, x, _, mut gx, mut glq| {
                gx.assign(&x.mapv(|v| 2.0 * v));
                glq.fill(1.0);
            },
        );
        (x, lq, lq2, s, g_fkl, g_sm, g_rkl)
    };
    let one = in_pool(1, run);
    let two = in_pool(2, run);
    assert_eq!(one, two);
    // log q from the draw and from the density pass agree.
    assert!(rel_err(one.1.as_slice().unwrap(), one.2.as_slice().unwrap()) < 1e-12);
    // Serial execution with the same chunking gives the same bits too.
    let (mut x, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
    f.draw_batch(Seed::new(5), x.view_mut(), lq.view_mut(), Par::serial(8));
    assert_eq!(x, one.0);
}

#[test]
fn serde_round_trip_gives_bit_identical_outputs() {
    for cfg in [tutorial_smooth(4, true), spline_conv_cfg(), free_field_cfg()] {
        serde_round_trip(&random_flow(&cfg, 21, 1.2));
    }
}

fn serde_round_trip(f: &Flow) {
    let json = f.architecture_json().unwrap();
    let params = f.params().to_vec();
    let g = Flow::from_json_parts(&json, params.clone()).unwrap();
    assert_eq!(*f, g);
    let x = rows(6, f.dim(), 22, 1.0);
    assert_eq!(scores(f, &x), scores(&g, &x));
    let (mut a, mut la) = (Array2::zeros((6, f.dim())), Array1::zeros(6));
    let (mut b, mut lb) = (Array2::zeros((6, f.dim())), Array1::zeros(6));
    f.draw_batch(Seed::new(1), a.view_mut(), la.view_mut(), Par::default());
    g.draw_batch(Seed::new(1), b.view_mut(), lb.view_mut(), Par::default());
    assert_eq!((a, la), (b, lb));
    let short = Flow::from_json_parts(&json, params[1..].to_vec());
    assert!(matches!(short, Err(FlowError::ParamLength { .. })));
    assert!(matches!(
        Flow::from_json_parts("{\"shape\": [4]}", params),
        Err(FlowError::Json(_))
    ));
}

#[test]
fn samples_of_an_identity_flow_have_the_base_moments() {
    let mut cfg = FlowConfig::mlp(3, 2, vec![4]);
    cfg.base_sigma = 1.7;
    let f = cfg.build(Seed::new(0)).unwrap();
    let n = 20_000;
    let (mut x, mut lq) = (Array2::zeros((n, 3)), Array1::zeros(n));
    f.draw_batch(Seed::new(9), x.view_mut(), lq.view_mut(), Par::default());
    let var = x.mapv(|v| v * v).mean().unwrap();
    assert!((var - 1.7f64.powi(2)).abs() < 0.06, "var {var}");
}
