//! Single precision (`[flow] dtype = "f32"`) against double precision on
//! whole flows: the same parameters give the same samples, densities,
//! scores, FKL / RKL gradients, score-matching second-order terms and
//! importance-sampling ESS to within f32 rounding; and the direct f64 kernel
//! equals im2col to f64 rounding through whole flows. Errors are measured
//! as the largest deviation over the scale of the quantity. f32 rounds at
//! 6e-8; measured here (L = 6, 16 couplings, 37 rows): values 1e-8 – 1.2e-7,
//! gradients 2e-8 – 7e-7. The bounds (1e-6 for values, 1e-5 for gradients,
//! summed over the batch) leave an order of magnitude; any indexing error
//! would be O(1). The f64 kernels agree to < 1e-11.

use fieldflow_core::{Par, Proposal, Seed, Target};
use fieldflow_flows::{ConvKernel, CouplingKind, Dtype, Flow, FlowConfig, SplineConfig};
use fieldflow_lattice::{Phi4, Phi4Config};
use fieldflow_testkit::rel_err;
use ndarray::{Array1, Array2};

/// The tutorial architecture on L×L with random parameters of moderate size.
fn flows(cfg: &FlowConfig) -> (Flow, Flow, Flow) {
    let mut f64_flow = cfg.build(Seed::new(3)).unwrap();
    f64_flow.params_mut().iter_mut().for_each(|v| *v *= 0.7);
    let mut c32 = cfg.clone();
    c32.dtype = Dtype::F32;
    let f32_flow = Flow::from_parts(c32, f64_flow.params().to_vec()).unwrap();
    let im2col = f64_flow.clone().with_conv_kernel(ConvKernel::Im2col);
    (f64_flow, f32_flow, im2col)
}

fn configs() -> Vec<(&'static str, FlowConfig)> {
    let mut plain = FlowConfig::tutorial(6);
    plain.identity_init = false;
    let mut z2 = plain.clone();
    z2.z2_equivariant = true;
    let mut spline = plain.clone();
    spline.coupling = CouplingKind::Spline(SplineConfig {
        bins: 8,
        tail_bound: 5.0,
    });
    vec![("affine", plain), ("z2", z2), ("spline", spline)]
}

struct Outputs {
    x: Vec<f64>,
    log_q: Vec<f64>,
    rkl_grad: Vec<f64>,
    fkl_grad: Vec<f64>,
    score: Vec<f64>,
    sm_grad: Vec<f64>,
    log_w: Vec<f64>,
}

fn run(f: &Flow, target: &Phi4) -> Outputs {
    let (n, d, par) = (37, f.dim(), Par::default());
    let mut z = Array2::zeros((n, d));
    f.sample_base_batch(Seed::new(5), z.view_mut(), par);
    let (mut x, mut lq) = (Array2::zeros((n, d)), Array1::zeros(n));
    f.draw_batch(Seed::new(5), x.view_mut(), lq.view_mut(), par);
    // Reverse KL through the sampling direction with the target's score.
    let mut rkl_grad = vec![0.0; f.n_params()];
    let (mut x2, mut lq2) = (Array2::zeros((n, d)), Array1::zeros(n));
    f.forward_vjp_batch(
        z.view(),
        x2.view_mut(),
        lq2.view_mut(),
        &mut rkl_grad,
        par,
        |_, x, _, mut gx, mut glq| {
            let mut lp = Array1::zeros(x.nrows());
            target.log_prob_and_score_batch(x, gx.view_mut(), lp.view_mut(), Par::serial(64));
            gx.mapv_inplace(|v| -v / n as f64);
            glq.fill(1.0 / n as f64);
        },
    );
    // Forward KL: the gradient of the mean log q at fixed samples.
    let mut fkl_grad = vec![0.0; f.n_params()];
    let mut lq3 = Array1::zeros(n);
    let w = Array1::from_elem(n, 1.0 / n as f64);
    f.log_q_grad_batch(x.view(), w.view(), lq3.view_mut(), &mut fkl_grad, par);
    // Score and the score-matching second-order term along r = x / 3.
    let r = x.mapv(|v| v / 3.0);
    let (mut sc, mut hr) = (Array2::zeros((n, d)), Array2::zeros((n, d)));
    let mut sm_grad = vec![0.0; f.n_params()];
    let mut lq4 = Array1::zeros(n);
    f.score_second_order_batch(
        x.view(),
        r.view(),
        &mut sm_grad,
        lq4.view_mut(),
        sc.view_mut(),
        hr.view_mut(),
        par,
    );
    let mut lp = Array1::zeros(n);
    target.log_prob_batch(x.view(), lp.view_mut(), par);
    Outputs {
        x: x.into_raw_vec_and_offset().0,
        log_q: lq.to_vec(),
        rkl_grad,
        fkl_grad,
        score: sc.into_raw_vec_and_offset().0,
        sm_grad,
        log_w: (&lp - &lq).to_vec(),
    }
}

/// Kish ESS fraction of log-weights.
fn ess(log_w: &[f64]) -> f64 {
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - m).exp()).collect();
    let s: f64 = w.iter().sum();
    s * s / w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64
}

/// Largest |a − b| over the entries, relative to the largest |b| (so a
/// quantity that is near zero in some entries is judged on its scale).
fn scaled_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn single_precision_agrees_with_double_and_direct_with_im2col() {
    let target = Phi4Config::standard(&[6, 6], -4.0, 8.0).validate().unwrap();
    for (name, cfg) in configs() {
        let (f64_flow, f32_flow, im2col) = flows(&cfg);
        let (a, b, c) = (run(&f64_flow, &target), run(&f32_flow, &target), run(&im2col, &target));
        let checks = [
            ("x", &a.x, &b.x, &c.x, 1e-6),
            ("log q", &a.log_q, &b.log_q, &c.log_q, 1e-6),
            ("RKL gradient", &a.rkl_grad, &b.rkl_grad, &c.rkl_grad, 1e-5),
            ("FKL gradient", &a.fkl_grad, &b.fkl_grad, &c.fkl_grad, 1e-5),
            ("score", &a.score, &b.score, &c.score, 1e-6),
            ("SM gradient", &a.sm_grad, &b.sm_grad, &c.sm_grad, 1e-5),
        ];
        for (what, r64, r32, rim, tol) in checks {
            let e32 = scaled_err(r32, r64);
            assert!(e32 < tol, "{name} {what}: f32 vs f64 error {e32:.2e} ≥ {tol:.0e}");
            assert!(
                e32 > 0.0,
                "{name} {what}: f32 equals f64 bit for bit: the f32 path did not run"
            );
            let eim = rel_err(rim, r64);
            assert!(eim < 1e-11, "{name} {what}: direct f64 vs im2col {eim:.2e}");
        }
        let (e64, e32) = (ess(&a.log_w), ess(&b.log_w));
        assert!((e64 - e32).abs() < 1e-4 * e64, "{name} ESS: f64 {e64} vs f32 {e32}");
    }
}

#[test]
fn single_precision_runs_are_bit_identical_across_thread_counts() {
    let target = Phi4Config::standard(&[6, 6], -4.0, 8.0).validate().unwrap();
    let (_, f32_flow, _) = flows(&configs()[0].1);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let a = one.install(|| run(&f32_flow, &target));
    let b = run(&f32_flow, &target);
    assert_eq!(a.x, b.x);
    assert_eq!(a.rkl_grad, b.rkl_grad);
    assert_eq!(a.sm_grad, b.sm_grad);
}

#[test]
fn reused_work_buffers_change_no_result() {
    // The flow keeps its chunks' work buffers between calls; a buffer used
    // by another call (other rows, other kernel pass) must not leak into
    // the next result.
    let target = Phi4Config::standard(&[6, 6], -4.0, 8.0).validate().unwrap();
    for (name, cfg) in configs() {
        let (f64_flow, f32_flow, im2col) = flows(&cfg);
        for f in [&f64_flow, &f32_flow, &im2col] {
            let first = run(f, &target);
            let (mut x, mut lq) = (Array2::zeros((5, f.dim())), Array1::zeros(5));
            f.draw_batch(Seed::new(9), x.view_mut(), lq.view_mut(), Par::serial(5));
            let again = run(f, &target);
            let fresh = run(&f.clone(), &target);
            for (a, b) in [(&first, &again), (&first, &fresh)] {
                assert_eq!(a.x, b.x, "{name}");
                assert_eq!(a.log_q, b.log_q, "{name}");
                assert_eq!(a.rkl_grad, b.rkl_grad, "{name}");
                assert_eq!(a.fkl_grad, b.fkl_grad, "{name}");
                assert_eq!(a.sm_grad, b.sm_grad, "{name}");
            }
        }
    }
}
