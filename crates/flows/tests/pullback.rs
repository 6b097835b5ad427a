//! The pulled-back density π̃(z) = p̃(f(z)) |det ∂f/∂z| of neutra-MCMC
//! (docs/THEORY.md §6.9): its latent score against central finite
//! differences (with a non-trivial target, and the log-det term alone), the
//! batched path against the single-row one, and the exactness oracle of a
//! flow that maps its base exactly onto a Gaussian target.

use fieldflow_core::{ConfigError, Par, Seed, Target};
use fieldflow_flows::{
    ActivationKind, CouplingKind, Flow, FlowConfig, MaskKind, Pullback, PullbackRows, ScaleBound, SplineConfig,
};
use fieldflow_targets::mixture::Covariance;
use fieldflow_targets::{Gaussian, GaussianMixture};
use fieldflow_testkit::{central_gradient, rel_err, FD_REL_TOL, FD_STEP};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1};
use rand_distr::{Distribution, StandardNormal};

const D: usize = 4;

fn rows(n: usize, d: usize, seed: u64, scale: f64) -> Array2<f64> {
    let mut rng = Seed::new(seed).rng();
    Array2::from_shape_fn((n, d), |_| {
        let z: f64 = StandardNormal.sample(&mut rng);
        scale * z
    })
}

/// Affine RealNVP couplings: MLP conditioners (random masks, tanh hidden,
/// soft-clamped scales).
fn affine_cfg(z2: bool) -> FlowConfig {
    let mut c = FlowConfig::mlp(D, 4, vec![7, 5]);
    c.mask = MaskKind::Random;
    c.mask_seed = 5;
    c.base_sigma = 0.8;
    c.identity_init = false;
    c.conditioner.activation = ActivationKind::Tanh;
    c.scale_bound = ScaleBound::SoftClamp { c: 2.0 };
    c.z2_equivariant = z2;
    c
}

/// Rational-quadratic spline couplings on the same conditioners.
fn spline_cfg() -> FlowConfig {
    let mut c = affine_cfg(false);
    c.coupling = CouplingKind::Spline(SplineConfig {
        bins: 6,
        tail_bound: 1.5,
    });
    c
}

/// A flow with random, non-identity parameters.
fn random_flow(cfg: &FlowConfig, seed: u64) -> Flow {
    let mut f = cfg.build(Seed::new(seed)).unwrap();
    f.params_mut().iter_mut().for_each(|v| *v *= 1.5);
    f
}

fn flows() -> Vec<(&'static str, Flow)> {
    vec![
        ("affine", random_flow(&affine_cfg(false), 1)),
        ("affine z2", random_flow(&affine_cfg(true), 2)),
        ("spline", random_flow(&spline_cfg(), 3)),
    ]
}

/// Three well-separated, anisotropic components (one with a full covariance).
fn mixture() -> GaussianMixture {
    let mut full = Array2::from_diag(&Array1::from(vec![0.6, 0.9, 0.5, 1.2]));
    full[[0, 1]] = 0.3;
    full[[1, 0]] = 0.3;
    GaussianMixture::new(
        vec![
            Array1::from(vec![1.0, -0.5, 0.3, 0.0]),
            Array1::from(vec![-1.2, 0.8, 0.0, 0.6]),
            Array1::from(vec![0.2, 0.2, -1.0, -0.4]),
        ],
        vec![
            Covariance::Full(full),
            Covariance::Diagonal(Array1::from(vec![0.4, 0.7, 1.1, 0.5])),
            Covariance::Isotropic(0.8),
        ],
        vec![0.5, 0.3, 0.2],
    )
    .unwrap()
}

/// p̃ ≡ 1: π̃(z) = |det ∂f/∂z|, so the latent score is ∇_z log|det| alone.
struct Flat(usize);

impl Target for Flat {
    fn dim(&self) -> usize {
        self.0
    }
    fn log_prob(&self, _x: ArrayView1<f64>) -> f64 {
        0.0
    }
    fn log_prob_and_score(&self, _x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        score.fill(0.0);
        0.0
    }
    fn describe(&self) -> String {
        format!("flat(dim = {})", self.0)
    }
}

/// ∇_z log π̃ from the single-row and the batched path against central
/// differences of log π̃, at `n` latent points drawn from the base.
fn check_score(name: &str, pb: &Pullback<'_>, n: usize, seed: u64) {
    let d = pb.dim();
    let zs = rows(n, d, seed, pb.flow().base_sigma());
    let mut batch_scores = Array2::zeros((n, d));
    let mut batch_lp = Array1::zeros(n);
    let chunks = Par {
        chunk_rows: 2,
        parallel: true,
    };
    pb.log_prob_and_score_batch(zs.view(), batch_scores.view_mut(), batch_lp.view_mut(), chunks);
    let mut lp_only = Array1::zeros(n);
    pb.log_prob_batch(zs.view(), lp_only.view_mut(), chunks);
    for r in 0..n {
        let z = zs.row(r).to_vec();
        let mut score = Array1::zeros(d);
        let lp = pb.log_prob_and_score(zs.row(r), score.view_mut());
        assert_eq!(lp, pb.log_prob(zs.row(r)), "{name}: log π̃ with and without the score");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
        assert!(close(lp, lp_only[r]), "{name}: batched log π̃, row {r}");
        assert_eq!(
            lp_only[r], batch_lp[r],
            "{name}: batched log π̃ with and without the score, row {r}"
        );
        let fd = central_gradient(|v| pb.log_prob(ArrayView1::from(v)), &z, FD_STEP);
        let e = rel_err(score.as_slice().unwrap(), &fd);
        assert!(e < FD_REL_TOL, "{name}: ∇_z log π̃ row {r}: rel err {e:e}");
        let eb = rel_err(batch_scores.row(r).as_slice().unwrap(), score.as_slice().unwrap());
        assert!(eb < 1e-12, "{name}: batched score row {r} differs by {eb:e}");
        assert!(score.iter().any(|v| v.abs() > 1e-3), "{name}: trivial score");
    }
}

#[test]
fn latent_score_matches_finite_differences_with_a_mixture_target() {
    let target = mixture();
    for (name, flow) in flows() {
        let pb = Pullback::new(&flow, &target).unwrap();
        check_score(name, &pb, 5, 11);
    }
}

#[test]
fn log_det_gradient_alone_matches_finite_differences() {
    let target = Flat(D);
    for (name, flow) in flows() {
        let pb = Pullback::new(&flow, &target).unwrap();
        check_score(&format!("{name} (flat target)"), &pb, 5, 12);
        // With p̃ ≡ 1, log π̃(z) = ℓ_f(z) = log N(z) − log q(f(z)).
        let zs = rows(3, D, 13, flow.base_sigma());
        let (mut xs, mut lq) = (Array2::zeros((3, D)), Array1::zeros(3));
        flow.forward_batch(zs.view(), xs.view_mut(), lq.view_mut(), Par::serial(3));
        for r in 0..3 {
            let ld = flow.log_base(zs.row(r)) - lq[r];
            let lp = pb.log_prob(zs.row(r));
            assert!((lp - ld).abs() < 1e-12 * ld.abs().max(1.0), "{name}: {lp} vs {ld}");
            assert!(ld.abs() > 1e-2, "{name}: the flow's log-det is trivial");
        }
    }
}

#[test]
fn batched_outputs_hold_x_log_p_and_log_det() {
    let target = mixture();
    let flow = random_flow(&spline_cfg(), 4);
    let n = 7;
    let zs = rows(n, D, 14, flow.base_sigma());
    let (mut xs, mut lp, mut ld) = (Array2::zeros((n, D)), Array1::zeros(n), Array1::zeros(n));
    let out = PullbackRows {
        xs: xs.view_mut(),
        log_p: lp.view_mut(),
        log_det: ld.view_mut(),
        scores: None,
    };
    flow.pullback_batch(&target, zs.view(), out, Par::serial(3));
    let (mut x_ref, mut lq) = (Array2::zeros((n, D)), Array1::zeros(n));
    flow.forward_batch(zs.view(), x_ref.view_mut(), lq.view_mut(), Par::serial(3));
    assert_eq!(xs, x_ref);
    for r in 0..n {
        assert_eq!(lp[r], target.log_prob(xs.row(r)));
        // log q = log N(z) − ℓ_f, so ℓ_f agrees to the rounding of that difference.
        assert!((ld[r] - (flow.log_base(zs.row(r)) - lq[r])).abs() < 1e-12);
    }
    // The one-row helper agrees with the batch.
    let pb = Pullback::new(&flow, &target).unwrap();
    let mut x = vec![0.0; D];
    let one = pb.push_forward(zs.row(2).as_slice().unwrap(), &mut x);
    assert_eq!(x, xs.row(2).to_vec());
    assert!((one.log_p - lp[2]).abs() < 1e-12 && (one.log_det - ld[2]).abs() < 1e-12);
}

#[test]
fn dimension_mismatch_is_a_one_line_error() {
    let flow = random_flow(&affine_cfg(false), 1);
    let target = Flat(3);
    let e: ConfigError = Pullback::new(&flow, &target).err().unwrap();
    assert_eq!(e.to_string(), "target.dim = 3: must equal the flow's dimension 4");
}

/// A flow whose couplings have constant scales and shifts (conditioner
/// weights zero, last biases random): x = a ⊙ z + b exactly.
fn constant_affine_flow(d: usize, sigma: f64, seed: u64) -> Flow {
    let mut cfg = FlowConfig::mlp(d, 2, vec![3]);
    cfg.base_sigma = sigma;
    cfg.identity_init = true;
    let mut flow = cfg.build(Seed::new(seed)).unwrap();
    let offsets = flow.param_offsets().to_vec();
    let mut rng = Seed::new(seed + 1).rng();
    // The last dense layer of each conditioner outputs (ŝ, t) for the |B|
    // transformed coordinates; its bias is the last 2|B| parameters.
    for k in 0..offsets.len() - 1 {
        let n_out = 2 * (d / 2);
        for p in &mut flow.params_mut()[offsets[k + 1] - n_out..offsets[k + 1]] {
            let e: f64 = StandardNormal.sample(&mut rng);
            *p = 0.7 * e;
        }
    }
    flow
}

/// The affine map of `flow` (x = a ⊙ z + b), probed at z = 0 and z = 1.
fn probe_affine(flow: &Flow) -> (Array1<f64>, Array1<f64>) {
    let d = flow.dim();
    let mut zs = Array2::zeros((2, d));
    zs.row_mut(1).fill(1.0);
    let (mut xs, mut lq) = (Array2::zeros((2, d)), Array1::zeros(2));
    flow.forward_batch(zs.view(), xs.view_mut(), lq.view_mut(), Par::serial(2));
    let b = xs.row(0).to_owned();
    (&xs.row(1) - &b, b)
}

#[test]
fn exact_flow_pulls_a_gaussian_back_to_its_base_times_z() {
    let (d, sigma) = (6, 0.9);
    let flow = constant_affine_flow(d, sigma, 21);
    let (a, b) = probe_affine(&flow);
    assert!(a.iter().all(|&v| v > 0.0 && (v - 1.0).abs() > 1e-3), "a = {a}");
    // The base N(0, σ²I) pushed through x = a ⊙ z + b is N(b, diag (σa)²).
    let cov = Array2::from_diag(&a.mapv(|v| (sigma * v).powi(2)));
    let target = Gaussian::new(b, cov).unwrap();
    let pb = Pullback::new(&flow, &target).unwrap();
    let log_z = target.log_z().unwrap();
    assert_eq!(pb.log_z(), Some(log_z));
    let zs = rows(50, d, 22, 2.0);
    let mut lp = Array1::zeros(50);
    pb.log_prob_batch(zs.view(), lp.view_mut(), Par::serial(8));
    for r in 0..50 {
        let c = lp[r] - flow.log_base(zs.row(r));
        assert!(
            (c - log_z).abs() < 1e-12,
            "row {r}: log π̃ − log N = {c}, log Z = {log_z}"
        );
        // ... and the latent score is the base score −z/σ².
        let mut s = Array1::zeros(d);
        pb.log_prob_and_score(zs.row(r), s.view_mut());
        let base = zs.row(r).mapv(|v| -v / (sigma * sigma));
        assert!(rel_err(s.as_slice().unwrap(), base.as_slice().unwrap()) < 1e-12);
    }
}
