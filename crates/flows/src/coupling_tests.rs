//! Finite-difference proofs of every derivative of the coupling layer, for
//! each conditioner, mask, activation, bound, the Z₂ option and the
//! rational-quadratic spline transform, on random inputs (for splines both
//! inside the bins and in the tails) and random (non-identity) parameters;
//! the same proofs for the free-field layer ([`crate::free_field`]) on 1-,
//! 2- and 3-dimensional lattices, through [`FlowLayer`]'s dispatch.

use super::*;
use crate::config::Dtype;
use crate::flow_layer::FlowLayer;
use crate::free_field::FreeField;
use crate::mask;
use fieldflow_core::Seed;
use fieldflow_testkit::{
    assert_close, central_gradient, central_jacobian, central_jvp, log_abs_det, FD_REL_TOL, FD_STEP,
};
use ndarray::Array1;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

const ROWS: usize = 3;
const H: f64 = FD_STEP;
const TOL: f64 = FD_REL_TOL;

fn cases() -> Vec<(&'static str, Coupling)> {
    let t = Act::ScaledTanh(1.0);
    vec![
        (
            "mlp/halves/silu/softclamp",
            Coupling::new(
                &mask::halves(6, 0),
                ConditionerSpec::Mlp {
                    hidden: vec![5, 4],
                    act: Act::Silu,
                    out_act: Act::Identity,
                },
                Act::ScaledTanh(2.0),
                false,
            ),
        ),
        (
            "mlp/random/tanh/z2",
            Coupling::new(
                &mask::random(7, 1, 3),
                ConditionerSpec::Mlp {
                    hidden: vec![6],
                    act: t,
                    out_act: Act::Identity,
                },
                Act::ScaledTanh(1.5),
                true,
            ),
        ),
        (
            "mlp/halves/leaky/tanh-out",
            Coupling::new(
                &mask::halves(5, 1),
                ConditionerSpec::Mlp {
                    hidden: vec![4],
                    act: Act::LeakyRelu(0.1),
                    out_act: t,
                },
                Act::Identity,
                false,
            ),
        ),
        (
            "mlp/halves/softplus/tanh-bound",
            Coupling::new(
                &mask::halves(4, 0),
                ConditionerSpec::Mlp {
                    hidden: vec![3, 3],
                    act: Act::Softplus,
                    out_act: Act::Identity,
                },
                t,
                false,
            ),
        ),
        (
            "conv1d/checkerboard/softplus/tanh-out",
            Coupling::new(
                &mask::checkerboard(&[6], 1),
                ConditionerSpec::Conv {
                    geom: ConvGeometry::periodic(&[6], 3),
                    hidden: vec![3],
                    act: Act::Softplus,
                    out_act: t,
                    dtype: Dtype::F64,
                },
                Act::Identity,
                false,
            ),
        ),
        (
            "conv2d/checkerboard/silu/z2",
            Coupling::new(
                &mask::checkerboard(&[4, 4], 0),
                ConditionerSpec::Conv {
                    geom: ConvGeometry::periodic(&[4, 4], 3),
                    hidden: vec![4, 3],
                    act: Act::Silu,
                    out_act: Act::Identity,
                    dtype: Dtype::F64,
                },
                Act::ScaledTanh(3.0),
                true,
            ),
        ),
        (
            "conv2d/tutorial-like/leaky/tanh-out",
            Coupling::new(
                &mask::checkerboard(&[4, 4], 1),
                ConditionerSpec::Conv {
                    geom: ConvGeometry::periodic(&[4, 4], 3),
                    hidden: vec![8, 8],
                    act: Act::LeakyRelu(0.01),
                    out_act: t,
                    dtype: Dtype::F64,
                },
                Act::Identity,
                false,
            ),
        ),
        (
            "mlp/halves/silu/spline K=5",
            Coupling::with_transform(
                &mask::halves(6, 0),
                ConditionerSpec::Mlp {
                    hidden: vec![5, 4],
                    act: Act::Silu,
                    out_act: Act::Identity,
                },
                Transform::Spline(RqSpline::new(5, 1.2)),
                false,
            ),
        ),
        (
            "mlp/random/tanh/spline K=2",
            Coupling::with_transform(
                &mask::random(7, 1, 3),
                ConditionerSpec::Mlp {
                    hidden: vec![6],
                    act: t,
                    out_act: Act::Identity,
                },
                Transform::Spline(RqSpline::new(2, 1.0)),
                false,
            ),
        ),
        (
            "mlp/halves/softplus/tanh-out/spline K=4",
            Coupling::with_transform(
                &mask::halves(5, 1),
                ConditionerSpec::Mlp {
                    hidden: vec![3, 3],
                    act: Act::Softplus,
                    out_act: t,
                },
                Transform::Spline(RqSpline::new(4, 1.5)),
                false,
            ),
        ),
        (
            "conv2d/checkerboard/silu/spline K=8",
            Coupling::with_transform(
                &mask::checkerboard(&[4, 4], 1),
                ConditionerSpec::Conv {
                    geom: ConvGeometry::periodic(&[4, 4], 3),
                    hidden: vec![3],
                    act: Act::Silu,
                    out_act: Act::Identity,
                    dtype: Dtype::F64,
                },
                Transform::Spline(RqSpline::new(8, 1.5)),
                false,
            ),
        ),
        (
            "conv3d/kernel3/tanh/z2",
            Coupling::new(
                &mask::checkerboard(&[3, 2, 2], 0),
                ConditionerSpec::Conv {
                    geom: ConvGeometry::periodic(&[3, 2, 2], 3),
                    hidden: vec![2],
                    act: t,
                    out_act: Act::Identity,
                    dtype: Dtype::F64,
                },
                Act::ScaledTanh(2.0),
                true,
            ),
        ),
    ]
}

/// Every coupling case, and free-field layers on lattices of 1, 2 (square
/// and not) and 3 dimensions, as the layers a flow is built from.
fn layer_cases() -> Vec<(String, FlowLayer)> {
    let ff = [vec![6], vec![4, 4], vec![3, 4], vec![2, 3, 2]]
        .into_iter()
        .map(|shape| {
            (
                format!("free field {shape:?}"),
                FlowLayer::FreeField(FreeField::new(&shape)),
            )
        });
    cases()
        .into_iter()
        .map(|(n, c)| (n.to_string(), FlowLayer::Coupling(c)))
        .chain(ff)
        .collect()
}

fn random_params(c: &FlowLayer, seed: u64) -> Vec<f64> {
    let mut p = vec![0.0; c.n_params()];
    let mut rng = Seed::new(seed).rng();
    match c {
        FlowLayer::Coupling(c) => c.net().init_params(&mut p, &mut rng, false),
        FlowLayer::FreeField(_) => p.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut rng)),
    }
    // Stronger than the default init so every nonlinearity is exercised.
    p.iter_mut().for_each(|v| *v *= 1.7);
    p
}

fn random_rows(rows: usize, cols: usize, seed: u64, scale: f64) -> Array2<f64> {
    let mut rng = Seed::new(seed).rng();
    Array2::from_shape_fn((rows, cols), |_| {
        let z: f64 = StandardNormal.sample(&mut rng);
        scale * z
    })
}

fn apply<L: Layer>(c: &L, dir: Direction, p: &[f64], x: &Array2<f64>) -> (Array2<f64>, Array1<f64>) {
    let mut tape = c.new_tape(x.nrows(), false);
    let mut y = Array2::zeros(x.raw_dim());
    let mut ld = Array1::zeros(x.nrows());
    c.apply(
        dir,
        p,
        x.view(),
        y.view_mut(),
        ld.view_mut(),
        &mut tape,
        &mut Scratch::default(),
    );
    (y, ld)
}

fn jvp<L: ScoreLayer>(c: &L, p: &[f64], x: &Array2<f64>, dx: &Array2<f64>) -> [Array2<f64>; 2] {
    let mut tape = c.new_tape(x.nrows(), true);
    let mut y = Array2::zeros(x.raw_dim());
    let mut dy = Array2::zeros(x.raw_dim());
    let mut ld = Array1::zeros(x.nrows());
    let mut dld = Array1::zeros(x.nrows());
    c.inverse_jvp(
        p,
        x.view(),
        dx.view(),
        y.view_mut(),
        dy.view_mut(),
        ld.view_mut(),
        dld.view_mut(),
        &mut tape,
        &mut Scratch::default(),
    );
    let lds = Array2::from_shape_fn((x.nrows(), 2), |(r, k)| if k == 0 { ld[r] } else { dld[r] });
    [ndarray::concatenate![ndarray::Axis(1), y, dy], lds]
}

#[test]
fn inverse_undoes_forward_and_log_dets_cancel() {
    for (name, c) in layer_cases() {
        let p = random_params(&c, 1);
        let x = random_rows(ROWS, c.dim(), 2, 1.5);
        let (y, ldf) = apply(&c, Direction::Forward, &p, &x);
        let (x2, ldi) = apply(&c, Direction::Inverse, &p, &y);
        let err = (&x2 - &x).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-12, "{name}: |f⁻¹(f(x)) − x| = {err:e}");
        let lderr = (&ldf + &ldi).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(lderr < 1e-12, "{name}: logdets do not cancel: {lderr:e}");
        assert!(ldf.iter().any(|v| v.abs() > 1e-3), "{name}: trivial layer");
        let (x3, _) = apply(&c, Direction::Forward, &p, &apply(&c, Direction::Inverse, &p, &x).0);
        let err = (&x3 - &x).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-12, "{name}: |f(f⁻¹(x)) − x| = {err:e}");
    }
}

#[test]
fn log_det_matches_finite_difference_jacobian() {
    for (name, c) in layer_cases() {
        let d = c.dim();
        let p = random_params(&c, 3);
        let x = random_rows(1, d, 4, 1.0);
        // Narrow spline bins have large third derivatives: a smaller step
        // keeps the O(h²) truncation of the Jacobian below the tolerance.
        let h = match c.as_coupling().map(Coupling::transform) {
            Some(Transform::Spline(_)) => 1e-6,
            _ => H,
        };
        for dir in [Direction::Forward, Direction::Inverse] {
            let y_of = |v: &[f64]| {
                let (y, _) = apply(&c, dir, &p, &Array2::from_shape_vec((1, d), v.to_vec()).unwrap());
                y.into_raw_vec_and_offset().0
            };
            let jac = central_jacobian(y_of, x.as_slice().unwrap(), h);
            let fd = log_abs_det(jac, d);
            let (_, ld) = apply(&c, dir, &p, &x);
            assert!(
                (fd - ld[0]).abs() < 1e-8 * (1.0 + fd.abs()),
                "{name} {dir:?}: {} vs {fd}",
                ld[0]
            );
        }
    }
}

#[test]
fn backward_matches_finite_differences_in_both_directions() {
    for (name, c) in layer_cases() {
        let d = c.dim();
        let p = random_params(&c, 5);
        let x = random_rows(ROWS, d, 6, 1.2);
        let a = random_rows(ROWS, d, 7, 1.0);
        let b = random_rows(ROWS, 1, 8, 1.0).column(0).to_owned();
        for dir in [Direction::Forward, Direction::Inverse] {
            let loss = |p: &[f64], x: &Array2<f64>| {
                let (y, ld) = apply(&c, dir, p, x);
                (&y * &a).sum() + ld.dot(&b)
            };
            let mut tape = c.new_tape(ROWS, false);
            let mut scratch = Scratch::default();
            let mut y = Array2::zeros(x.raw_dim());
            let mut ld = Array1::zeros(ROWS);
            c.apply(dir, &p, x.view(), y.view_mut(), ld.view_mut(), &mut tape, &mut scratch);
            let mut gx = Array2::zeros(x.raw_dim());
            let mut gp = vec![0.0; p.len()];
            c.backward(
                &p,
                &tape,
                a.view(),
                b.view(),
                gx.view_mut(),
                Some(&mut gp),
                &mut scratch,
            );
            let fdx = central_gradient(
                |v| loss(&p, &Array2::from_shape_vec(x.raw_dim(), v.to_vec()).unwrap()),
                x.as_slice().unwrap(),
                H,
            );
            assert_close(&format!("{name} {dir:?} ∂L/∂x"), gx.as_slice().unwrap(), &fdx, TOL);
            let fdp = central_gradient(|q| loss(q, &x), &p, H);
            assert_close(&format!("{name} {dir:?} ∂L/∂θ"), &gp, &fdp, TOL);
            // Without gp the input gradient is the same.
            let mut gx2 = Array2::zeros(x.raw_dim());
            c.backward(&p, &tape, a.view(), b.view(), gx2.view_mut(), None, &mut scratch);
            assert_eq!(gx, gx2);
        }
    }
}

#[test]
fn inverse_jvp_matches_finite_differences() {
    for (name, c) in layer_cases() {
        let d = c.dim();
        let p = random_params(&c, 9);
        let x = random_rows(ROWS, d, 10, 1.2);
        let dx = random_rows(ROWS, d, 11, 1.0);
        let [ydy, lds] = jvp(&c, &p, &x, &dx);
        // Differences of (y, log-det) along dx: y entries first, then log-dets.
        let y_ld_of = |v: &[f64]| {
            let (y, ld) = apply(
                &c,
                Direction::Inverse,
                &p,
                &Array2::from_shape_vec((ROWS, d), v.to_vec()).unwrap(),
            );
            y.iter().chain(&ld).copied().collect::<Vec<f64>>()
        };
        let fd = central_jvp(y_ld_of, x.as_slice().unwrap(), dx.as_slice().unwrap(), H);
        let fd_dy = Array2::from_shape_vec((ROWS, d), fd[..ROWS * d].to_vec()).unwrap();
        let fd_dld = &fd[ROWS * d..];
        let (y0, ld0) = apply(&c, Direction::Inverse, &p, &x);
        for r in 0..ROWS {
            for i in 0..d {
                assert_eq!(ydy[(r, i)], y0[(r, i)], "{name}: primal of the JVP differs");
                let (an, fd) = (ydy[(r, d + i)], fd_dy[(r, i)]);
                assert!((an - fd).abs() < 1e-7 * (1.0 + fd.abs()), "{name}: dy {an} vs {fd}");
            }
            assert_eq!(lds[(r, 0)], ld0[r]);
            let (an, fd) = (lds[(r, 1)], fd_dld[r]);
            assert!(
                (an - fd).abs() < 1e-7 * (1.0 + fd.abs()),
                "{name}: dlogdet {an} vs {fd}"
            );
        }
    }
}

#[test]
fn reverse_mode_of_the_jvp_matches_finite_differences() {
    for (name, c) in layer_cases() {
        let d = c.dim();
        let p = random_params(&c, 12);
        let x = random_rows(ROWS, d, 13, 1.2);
        let dx = random_rows(ROWS, d, 14, 1.0);
        let a = random_rows(ROWS, d, 15, 1.0);
        let cc = random_rows(ROWS, d, 16, 1.0);
        let b = random_rows(ROWS, 1, 17, 1.0).column(0).to_owned();
        let e = random_rows(ROWS, 1, 18, 1.0).column(0).to_owned();
        // L = ⟨a, y⟩ + ⟨c, dy⟩ + ⟨b, logdet⟩ + ⟨e, dlogdet⟩.
        let loss = |p: &[f64], x: &Array2<f64>, dx: &Array2<f64>| {
            let [ydy, lds] = jvp(&c, p, x, dx);
            let mut l = 0.0;
            for r in 0..ROWS {
                for i in 0..d {
                    l += a[(r, i)] * ydy[(r, i)] + cc[(r, i)] * ydy[(r, d + i)];
                }
                l += b[r] * lds[(r, 0)] + e[r] * lds[(r, 1)];
            }
            l
        };
        let mut tape = c.new_tape(ROWS, true);
        let mut scratch = Scratch::default();
        let (mut y, mut dy) = (Array2::zeros(x.raw_dim()), Array2::zeros(x.raw_dim()));
        let (mut ld, mut dld) = (Array1::zeros(ROWS), Array1::zeros(ROWS));
        c.inverse_jvp(
            &p,
            x.view(),
            dx.view(),
            y.view_mut(),
            dy.view_mut(),
            ld.view_mut(),
            dld.view_mut(),
            &mut tape,
            &mut scratch,
        );
        let (mut gx, mut gdx) = (Array2::zeros(x.raw_dim()), Array2::zeros(x.raw_dim()));
        let mut gp = vec![0.0; p.len()];
        c.inverse_jvp_backward(
            &p,
            &tape,
            a.view(),
            cc.view(),
            b.view(),
            e.view(),
            gx.view_mut(),
            gdx.view_mut(),
            &mut gp,
            &mut scratch,
        );
        let shape = x.raw_dim();
        let mk = |v: &[f64]| Array2::from_shape_vec(shape, v.to_vec()).unwrap();
        let fdx = central_gradient(|v| loss(&p, &mk(v), &dx), x.as_slice().unwrap(), H);
        assert_close(&format!("{name} ∂L/∂x"), gx.as_slice().unwrap(), &fdx, TOL);
        let fddx = central_gradient(|v| loss(&p, &x, &mk(v)), dx.as_slice().unwrap(), H);
        assert_close(&format!("{name} ∂L/∂dx"), gdx.as_slice().unwrap(), &fddx, TOL);
        let fdp = central_gradient(|q| loss(q, &x, &dx), &p, H);
        assert_close(&format!("{name} ∂L/∂θ"), &gp, &fdp, TOL);
    }
}

#[test]
fn equivariant_layers_are_odd_maps_with_even_log_det() {
    for (name, c) in cases().into_iter().filter(|(_, c)| c.is_equivariant()) {
        let p = random_params(&FlowLayer::Coupling(c.clone()), 19);
        let x = random_rows(ROWS, c.dim(), 20, 1.0);
        for dir in [Direction::Forward, Direction::Inverse] {
            let (y, ld) = apply(&c, dir, &p, &x);
            let (ym, ldm) = apply(&c, dir, &p, &x.mapv(|v| -v));
            assert_eq!(ym, y.mapv(|v| -v), "{name}: f(−x) ≠ −f(x)");
            assert_eq!(ld, ldm, "{name}: log|det| not even");
        }
    }
}

#[test]
fn identity_initialized_layer_is_the_identity() {
    for (name, c) in cases() {
        let mut p = vec![0.0; c.n_params()];
        c.net().init_params(&mut p, &mut Seed::new(21).rng(), true);
        assert!(p.iter().any(|&v| v != 0.0) || c.n_params() == 0);
        let x = random_rows(ROWS, c.dim(), 22, 1.0);
        match c.transform() {
            Transform::Affine(_) => {
                let (y, ld) = apply(&c, Direction::Forward, &p, &x);
                assert_eq!(y, x, "{name}");
                assert!(ld.iter().all(|&v| v == 0.0), "{name}");
            }
            // Equal bins with unit slopes: the identity up to rounding.
            Transform::Spline(_) => {
                for dir in [Direction::Forward, Direction::Inverse] {
                    let (y, ld) = apply(&c, dir, &p, &x);
                    let err = (&y - &x).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert!(err < 1e-14, "{name} {dir:?}: |y − x| = {err:e}");
                    assert!(ld.iter().all(|&v| v.abs() < 1e-14), "{name} {dir:?}: {ld}");
                }
            }
        }
        let _ = Seed::new(0).rng().random::<f64>();
    }
}

/// The random inputs of the derivative tests put transformed coordinates
/// of every spline case both inside [−B, B) and in the tails.
#[test]
fn spline_test_inputs_reach_the_bins_and_the_tails() {
    for (name, c) in cases() {
        let Transform::Spline(sp) = c.transform() else {
            continue;
        };
        let free: Vec<usize> = c.out_map.iter().map(|e| e.x).collect();
        for (seed, rows, scale) in [(2, ROWS, 1.5), (6, ROWS, 1.2), (10, ROWS, 1.2), (13, ROWS, 1.2)] {
            let x = random_rows(rows, c.dim(), seed, scale);
            let vals: Vec<f64> = x
                .rows()
                .into_iter()
                .flat_map(|r| free.iter().map(move |&j| r[j]))
                .collect();
            let b = sp.tail_bound();
            assert!(
                vals.iter().any(|v| v.abs() < b),
                "{name} seed {seed}: no point in the bins"
            );
            assert!(
                vals.iter().any(|v| v.abs() >= b),
                "{name} seed {seed}: no point in the tails"
            );
        }
    }
}
