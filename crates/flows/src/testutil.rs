//! Finite-difference helpers shared by the unit tests.

/// Central-difference gradient of `f` at `x0` with step `h`.
pub fn fd_grad(f: impl Fn(&[f64]) -> f64, x0: &[f64], h: f64) -> Vec<f64> {
    let mut x = x0.to_vec();
    (0..x0.len())
        .map(|i| {
            x[i] = x0[i] + h;
            let fp = f(&x);
            x[i] = x0[i] - h;
            let fm = f(&x);
            x[i] = x0[i];
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

/// max|a − b| / max(max|b|, 1e-8).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(1e-8);
    num / den
}

/// Asserts rel_err(analytic, fd) < tol with a readable message.
pub fn assert_close(what: &str, analytic: &[f64], fd: &[f64], tol: f64) {
    let e = rel_err(analytic, fd);
    assert!(
        e < tol,
        "{what}: relative error {e:.3e} ≥ {tol:.0e}\n analytic {:?}\n fd       {:?}",
        &analytic[..analytic.len().min(8)],
        &fd[..fd.len().min(8)]
    );
}

/// log|det A| of a square row-major matrix by LU with partial pivoting.
pub fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut ld = 0.0;
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap();
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
