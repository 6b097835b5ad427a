//! # fieldflow-testkit
//!
//! Dev-only test support shared by every fieldflow crate: central finite
//! differences, one relative-error measure and the project's tolerances.
//! The house rule it serves: every hand-written derivative is checked against
//! central finite differences in f64 with relative error below
//! [`FD_REL_TOL`] (unless a test states a tighter bound).
//!
//! The crate depends on no other crate (not even `fieldflow-core`), so any
//! crate, `fieldflow-core` included, can list it under `[dev-dependencies]`
//! without a dependency cycle; everything works on `&[f64]` slices, and a
//! caller adapts its own types (ndarray views, targets, flows) in a closure.
//!
//! ## Central differences
//!
//! For f: ℝⁿ → ℝ, a point x and a direction v,
//!
//!   D_v f(x) ≈ (f(x + h v) − f(x − h v)) / (2h),
//!
//! with truncation error h² |D_v³ f| / 6 and rounding error ≈ ε |f| / h
//! (ε = 2⁻⁵² the f64 unit roundoff). Partial derivatives take v = eᵢ, a
//! Jacobian-vector product applies the same quotient to every output of a
//! vector function. The two errors balance at h ≈ ε^{1/3} ≈ 6·10⁻⁶ (in units
//! of the scale on which f varies); the standard step [`FD_STEP`] = 10⁻⁵ sits
//! there, and gives a total error of order 10⁻¹⁰ relative to the derivative's
//! scale for smooth O(1) functions, four orders of magnitude below
//! [`FD_REL_TOL`]. A test whose function has large third derivatives (narrow
//! spline bins) passes a smaller step and says why.
//!
//! Every helper forms the shifted points as xᵢ + h vᵢ and xᵢ − h vᵢ from the
//! unshifted x (never x + h followed by − 2h), so the differences do not
//! depend on the rounding of an intermediate point.
//!
//! ## Relative error
//!
//! One measure, [`rel_err`]: for a value a and a reference b (the finite
//! differences, or whatever sets the scale),
//!
//!   rel_err(a, b) = ‖a − b‖∞ / max(‖b‖∞, floor),
//!
//! with floor = [`REL_ERR_FLOOR`] = 10⁻⁸: the error is relative to the largest
//! component of the reference, and becomes absolute (scaled by the floor)
//! only when the whole reference is below the floor. [`rel_err_with_floor`]
//! is the same measure for a test that states another floor.

/// Standard step h of the central differences (see the crate docs: it
/// balances the O(h²) truncation against the O(ε/h) rounding error).
pub const FD_STEP: f64 = 1e-5;

/// The project's tolerance for a derivative checked against central finite
/// differences: [`rel_err`] below 10⁻⁶.
pub const FD_REL_TOL: f64 = 1e-6;

/// Floor of the denominator of [`rel_err`]: below it the reference is treated
/// as zero and the error is absolute (scaled by 1/floor).
pub const REL_ERR_FLOOR: f64 = 1e-8;

fn shifted(x: &[f64], v: &[f64], h: f64, out: &mut [f64]) {
    for ((o, &xi), &vi) in out.iter_mut().zip(x).zip(v) {
        *o = xi + h * vi;
    }
}

/// Central-difference derivative f′(x) ≈ (f(x + h) − f(x − h)) / (2h) of a
/// function of one variable.
pub fn central_derivative(f: impl Fn(f64) -> f64, x: f64, h: f64) -> f64 {
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// Central-difference gradient of a scalar function of a slice: component i
/// is (f(x + h eᵢ) − f(x − h eᵢ)) / (2h).
pub fn central_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let all: Vec<usize> = (0..x.len()).collect();
    central_partials(f, x, &all, h)
}

/// [`central_gradient`] with a step of its own for every component:
/// component i is (f(x + hᵢ eᵢ) − f(x − hᵢ eᵢ)) / (2hᵢ) (e.g. steps
/// h·max(|xᵢ|, 1) relative to the size of the coordinate).
///
/// # Panics
/// If `x` and `steps` differ in length.
pub fn central_gradient_with_steps(f: impl Fn(&[f64]) -> f64, x: &[f64], steps: &[f64]) -> Vec<f64> {
    assert_eq!(x.len(), steps.len(), "x and steps differ in length");
    let mut p = x.to_vec();
    (0..x.len())
        .map(|i| central_partial(&f, x, &mut p, i, steps[i]))
        .collect()
}

/// The partial derivatives ∂f/∂x_i of [`central_gradient`] for the indices in
/// `idx` only, in that order (probing a few of many parameters).
///
/// # Panics
/// If an index is out of range.
pub fn central_partials(f: impl Fn(&[f64]) -> f64, x: &[f64], idx: &[usize], h: f64) -> Vec<f64> {
    let mut p = x.to_vec();
    idx.iter().map(|&i| central_partial(&f, x, &mut p, i, h)).collect()
}

/// ∂f/∂x_i by central differences; `p` holds x on entry and on exit.
fn central_partial(f: &impl Fn(&[f64]) -> f64, x: &[f64], p: &mut [f64], i: usize, h: f64) -> f64 {
    p[i] = x[i] + h;
    let up = f(p);
    p[i] = x[i] - h;
    let down = f(p);
    p[i] = x[i];
    (up - down) / (2.0 * h)
}

/// Central-difference directional derivative of a scalar function,
/// D_v f(x) ≈ (f(x + h v) − f(x − h v)) / (2h).
///
/// # Panics
/// If `x` and `v` differ in length.
pub fn central_directional(f: impl Fn(&[f64]) -> f64, x: &[f64], v: &[f64], h: f64) -> f64 {
    central_jvp(|p| vec![f(p)], x, v, h)[0]
}

/// Central-difference Jacobian-vector product of a vector function,
/// J_g(x) v ≈ (g(x + h v) − g(x − h v)) / (2h), one entry per output.
///
/// # Panics
/// If `x` and `v` differ in length, or the two evaluations of g differ in length.
pub fn central_jvp(g: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], v: &[f64], h: f64) -> Vec<f64> {
    assert_eq!(x.len(), v.len(), "x and v differ in length");
    let mut p = vec![0.0; x.len()];
    shifted(x, v, h, &mut p);
    let up = g(&p);
    shifted(x, v, -h, &mut p);
    let down = g(&p);
    assert_eq!(up.len(), down.len(), "g changed its output length");
    up.iter().zip(&down).map(|(u, d)| (u - d) / (2.0 * h)).collect()
}

/// Central-difference Jacobian of g: ℝⁿ → ℝᵐ, row-major m × n:
/// entry (i, j) = ∂gᵢ/∂x_j ≈ (gᵢ(x + h e_j) − gᵢ(x − h e_j)) / (2h).
///
/// # Panics
/// If g's output length changes between evaluations.
pub fn central_jacobian(g: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], h: f64) -> Vec<f64> {
    let n = x.len();
    let mut p = x.to_vec();
    let mut jac: Vec<f64> = Vec::new();
    for j in 0..n {
        p[j] = x[j] + h;
        let up = g(&p);
        p[j] = x[j] - h;
        let down = g(&p);
        p[j] = x[j];
        assert_eq!(up.len(), down.len(), "g changed its output length");
        if j == 0 {
            jac = vec![0.0; up.len() * n];
        }
        assert_eq!(up.len() * n, jac.len(), "g changed its output length");
        for (i, (u, d)) in up.iter().zip(&down).enumerate() {
            jac[i * n + j] = (u - d) / (2.0 * h);
        }
    }
    jac
}

/// Relative error of a Hessian-vector product ∇²u(x)·v of an energy
/// u = −log p̃ claimed by `hvp`, against central differences of the score
/// s = ∇log p̃ = −∇u along v:
///
///   ∇²u(x) v ≈ −(s(x + h v) − s(x − h v)) / (2h),  h = [`FD_STEP`],
///
/// measured by [`rel_err_with_floor`] with the differences as reference and
/// no floor (f64::MIN_POSITIVE: the error is 0 only if both vanish).
///
/// `hvp(out)` must overwrite `out` with ∇²u(x) v; `out` is filled with NaN
/// before the call, so an implementation that accumulates into it instead of
/// overwriting it gives NaN, an error no tolerance accepts. `score(y, out)`
/// overwrites `out` with s(y); what it returns (e.g. log p̃) is ignored.
///
/// # Panics
/// If `x` and `v` differ in length.
pub fn hvp_rel_err<R>(
    x: &[f64],
    v: &[f64],
    hvp: impl FnOnce(&mut [f64]),
    score: impl Fn(&[f64], &mut [f64]) -> R,
) -> f64 {
    let d = x.len();
    let mut hv = vec![f64::NAN; d];
    hvp(&mut hv);
    if hv.iter().any(|e| e.is_nan()) {
        return f64::NAN;
    }
    let score_jvp = central_jvp(
        |y| {
            let mut s = vec![0.0; d];
            score(y, &mut s);
            s
        },
        x,
        v,
        FD_STEP,
    );
    let fd: Vec<f64> = score_jvp.iter().map(|e| -e).collect();
    rel_err_with_floor(&hv, &fd, f64::MIN_POSITIVE)
}

/// The project's relative error ‖a − b‖∞ / max(‖b‖∞, [`REL_ERR_FLOOR`]) of a
/// value `a` against a reference `b` (see the crate docs).
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    rel_err_with_floor(a, b, REL_ERR_FLOOR)
}

/// [`rel_err`] with the floor stated by the caller:
/// ‖a − b‖∞ / max(‖b‖∞, floor). A NaN anywhere gives NaN.
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn rel_err_with_floor(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len(), "compared vectors differ in length");
    if a.iter().chain(b).any(|e| e.is_nan()) {
        return f64::NAN;
    }
    let num = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(floor);
    num / den
}

/// The index and value of the component with the largest |aᵢ − bᵢ| (the
/// first one if several tie; a NaN difference wins).
fn worst_component(a: &[f64], b: &[f64]) -> (usize, f64, f64) {
    let mut worst = (0, -1.0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs();
        if d.is_nan() {
            return (i, x.to_owned(), y.to_owned());
        }
        if d > worst.1 {
            worst = (i, d);
        }
    }
    (worst.0, a[worst.0], b[worst.0])
}

/// Asserts [`rel_err`]`(actual, reference) < tol`; the message names the
/// check, the error, the worst component (index and both values) and the
/// first few entries of each vector.
///
/// # Panics
/// If the check fails, or the vectors are empty or differ in length.
pub fn assert_close(what: &str, actual: &[f64], reference: &[f64], tol: f64) {
    assert!(!actual.is_empty(), "{what}: nothing to compare");
    let e = rel_err(actual, reference);
    if e < tol {
        return;
    }
    let (i, a, b) = worst_component(actual, reference);
    panic!(
        "{what}: relative error {e:.3e} ≥ {tol:.0e}; worst component [{i}]: {a} vs reference {b}\n actual    {:?}\n reference {:?}",
        &actual[..actual.len().min(8)],
        &reference[..reference.len().min(8)]
    );
}

/// log |det A| of a square row-major n × n matrix by LU decomposition with
/// partial pivoting (a finite-difference Jacobian's log-determinant, against
/// a layer's analytic one).
///
/// # Panics
/// If `a` does not have n² entries.
pub fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    assert_eq!(a.len(), n * n, "the matrix is not n × n");
    let mut ld = 0.0;
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .expect("c < n");
        if piv != c {
            for k in 0..n {
                a.swap(c * n + k, piv * n + k);
            }
        }
        let d = a[c * n + c];
        ld += d.abs().ln();
        for i in c + 1..n {
            let f = a[i * n + c] / d;
            for k in c..n {
                a[i * n + k] -= f * a[c * n + k];
            }
        }
    }
    ld
}

#[cfg(test)]
mod tests {
    use super::*;

    // f(x) = x₀² x₁ + sin x₂: ∇f = (2x₀x₁, x₀², cos x₂).
    fn f(x: &[f64]) -> f64 {
        x[0] * x[0] * x[1] + x[2].sin()
    }
    fn grad_f(x: &[f64]) -> Vec<f64> {
        vec![2.0 * x[0] * x[1], x[0] * x[0], x[2].cos()]
    }
    // g(x) = ∇f(x); its Jacobian is the Hessian of f.
    fn hess_f(x: &[f64]) -> Vec<f64> {
        vec![2.0 * x[1], 2.0 * x[0], 0.0, 2.0 * x[0], 0.0, 0.0, 0.0, 0.0, -x[2].sin()]
    }
    const X: [f64; 3] = [0.7, -1.3, 0.4];
    const V: [f64; 3] = [0.2, 0.5, -0.9];

    #[test]
    fn gradient_partials_and_directional_derivative_are_accurate() {
        let g = central_gradient(f, &X, FD_STEP);
        assert!(rel_err(&g, &grad_f(&X)) < 1e-9, "{g:?}");
        assert_eq!(central_partials(f, &X, &[2, 0], FD_STEP), vec![g[2], g[0]]);
        let steps = [FD_STEP; 3];
        assert_eq!(central_gradient_with_steps(f, &X, &steps), g);
        let dv = central_directional(f, &X, &V, FD_STEP);
        let exact: f64 = grad_f(&X).iter().zip(&V).map(|(a, b)| a * b).sum();
        assert!((dv - exact).abs() < 1e-9 * exact.abs(), "{dv} vs {exact}");
        let d = central_derivative(f64::exp, 0.3, FD_STEP);
        assert!((d - 0.3f64.exp()).abs() < 1e-9);
    }

    #[test]
    fn jacobian_and_jvp_of_the_gradient_are_the_hessian() {
        let jac = central_jacobian(grad_f, &X, FD_STEP);
        assert!(rel_err(&jac, &hess_f(&X)) < 1e-9, "{jac:?}");
        let jv = central_jvp(grad_f, &X, &V, FD_STEP);
        let h = hess_f(&X);
        let exact: Vec<f64> = (0..3).map(|i| (0..3).map(|j| h[3 * i + j] * V[j]).sum()).collect();
        assert!(rel_err(&jv, &exact) < 1e-9, "{jv:?} vs {exact:?}");
    }

    #[test]
    fn hvp_check_accepts_the_hessian_and_rejects_errors() {
        let h = hess_f(&X);
        let exact = |out: &mut [f64]| {
            for i in 0..3 {
                out[i] = (0..3).map(|j| h[3 * i + j] * V[j]).sum();
            }
        };
        // f plays the energy u, so the score is −∇f.
        let score = |y: &[f64], out: &mut [f64]| out.iter_mut().zip(grad_f(y)).for_each(|(o, g)| *o = -g);
        assert!(hvp_rel_err(&X, &V, exact, score) < 1e-9);
        // Accumulating into the output instead of overwriting it: NaN.
        let accumulating = |out: &mut [f64]| out.iter_mut().for_each(|o| *o += 1.0);
        assert!(hvp_rel_err(&X, &V, accumulating, score).is_nan());
        // A wrong product is caught.
        let wrong = |out: &mut [f64]| {
            exact(out);
            out[1] *= 1.001;
        };
        assert!(hvp_rel_err(&X, &V, wrong, score) > 1e-4);
    }

    #[test]
    fn rel_err_is_relative_to_the_reference_with_a_floor() {
        assert_eq!(rel_err(&[1.0, 2.0], &[1.0, 4.0]), 0.5);
        assert_eq!(rel_err(&[3.0, 2.0], &[1.0, 4.0]), 0.5);
        // Below the floor the error is absolute / floor.
        assert_eq!(rel_err(&[1e-9], &[0.0]), 1e-9 / REL_ERR_FLOOR);
        assert_eq!(rel_err_with_floor(&[1e-9], &[0.0], 1.0), 1e-9);
        assert_eq!(rel_err(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        assert!(rel_err(&[f64::NAN], &[1.0]).is_nan());
    }

    #[test]
    fn assert_close_passes_and_names_the_worst_component() {
        assert_close("ok", &[1.0, 2.0], &[1.0, 2.0 + 1e-9], FD_REL_TOL);
        let msg = std::panic::catch_unwind(|| assert_close("grad", &[1.0, 2.0, 3.0], &[1.0, 2.5, 3.0], FD_REL_TOL))
            .unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("grad") && msg.contains("[1]: 2 vs reference 2.5"), "{msg}");
        assert_eq!(worst_component(&[0.0, f64::NAN], &[0.0, 1.0]).0, 1);
    }

    #[test]
    fn log_abs_det_of_known_matrices() {
        // det [[0, 2], [3, 1]] = −6 (needs a pivot).
        assert!((log_abs_det(vec![0.0, 2.0, 3.0, 1.0], 2) - 6f64.ln()).abs() < 1e-15);
        let a = vec![2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0]; // det = 18
        assert!((log_abs_det(a, 3) - 18f64.ln()).abs() < 1e-14);
    }
}
