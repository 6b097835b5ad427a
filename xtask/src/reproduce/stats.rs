//! Statistics over seeds and the number formats of the tables: mean and
//! standard error of the mean (sample standard deviation / √n) over the
//! finite entries, value ± error with the error's two significant digits.

/// Formats a number with about 3–4 significant digits.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let a = x.abs();
    if a == 0.0 || (x.fract() == 0.0 && a < 1e5) {
        format!("{x:.0}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{x:.digits$}")
    }
}

/// value ± error with the error's two significant digits.
pub fn fmt_pm(v: f64, e: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if !(e > 0.0) || !e.is_finite() {
        return fmt_num(v);
    }
    if !(1e-4..1e5).contains(&v.abs().max(e)) {
        return format!("{v:.2e} ± {e:.1e}");
    }
    let digits = (1 - e.log10().floor() as i32).clamp(0, 8) as usize;
    format!("{v:.digits$} ± {e:.digits$}")
}

/// Mean, standard error (sample std / √n; 0 for one entry) and count of the
/// finite entries; None if there are none.
pub fn mean_err(xs: &[f64]) -> Option<(f64, f64, usize)> {
    let f: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return None;
    }
    if f.iter().all(|&x| x == f[0]) {
        // Exactly (a shared reference row): no round-off error bar.
        return Some((f[0], 0.0, f.len()));
    }
    let n = f.len() as f64;
    let m = f.iter().sum::<f64>() / n;
    let var = if f.len() > 1 {
        f.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((m, (var / n).sqrt(), f.len()))
}

/// Mean ± standard error over the finite entries (notes how many were not finite).
pub fn mean_se(xs: &[f64]) -> String {
    let Some((m, e, n)) = mean_err(xs) else {
        return "—".into();
    };
    let s = if n > 1 { fmt_pm(m, e) } else { fmt_num(m) };
    if n < xs.len() {
        format!("{s} ({n}/{} finite)", xs.len())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_se_formats() {
        assert_eq!(mean_se(&[1.0, 3.0]), "2.0 ± 1.0");
        assert_eq!(mean_se(&[0.5]), "0.5000");
        assert_eq!(mean_se(&[f64::NAN]), "—");
        assert!(mean_se(&[1.0, f64::NAN]).ends_with("(1/2 finite)"));
        assert_eq!(mean_err(&[1.0, 3.0, f64::NAN]), Some((2.0, 1.0, 2)));
        assert_eq!(mean_err(&[f64::NAN]), None);
        let x = 3.107_259_24;
        assert_eq!(mean_err(&[x, x, x]), Some((x, 0.0, 3)));
        assert_eq!(mean_se(&[x, x, x]), fmt_num(x));
    }
}
