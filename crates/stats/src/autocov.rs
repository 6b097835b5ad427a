//! Lagged products of a fluctuation series, the raw material of Γ(t).
//!
//! For a series δ_0 … δ_{n−1} this module computes the lagged sums
//!
//! s(t) = Σ_{i=0}^{n−1−t} δ_i δ_{i+t},  t = 0 … t_max,
//!
//! either directly (O(n·t_max)) or by FFT (O(L log L)): with δ zero-padded to
//! a length L ≥ 2n, the inverse transform of |δ̂(k)|² is the *circular*
//! autocorrelation, whose wrap-around terms all vanish because of the padding,
//! so it equals s(t) exactly up to rounding (Wiener–Khinchin). Both paths are
//! tested to agree. Γ(t) = s(t)/(n − t) is formed by the caller
//! ([`crate::gamma`]), which also sums s(t) over replica.

use rustfft::{num_complex::Complex, FftPlanner};

/// How the lagged sums are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutocovMethod {
    /// Direct sum when n·(t_max + 1) ≤ 2²² (short chains), FFT otherwise.
    #[default]
    Auto,
    /// Always the direct O(n·t_max) sum.
    Direct,
    /// Always the zero-padded FFT.
    Fft,
}

/// Work threshold n·(t_max + 1) below which [`AutocovMethod::Auto`] sums directly.
const DIRECT_WORK_LIMIT: f64 = 4_194_304.0;

/// Lagged sums s(t) = Σ_{i=0}^{n−1−t} x_i x_{i+t} for t = 0 … `t_max`
/// (entries with t ≥ n are zero). Returns a vector of length `t_max + 1`.
pub fn lagged_sums(x: &[f64], t_max: usize, method: AutocovMethod) -> Vec<f64> {
    let n = x.len();
    let use_fft = match method {
        AutocovMethod::Direct => false,
        AutocovMethod::Fft => true,
        AutocovMethod::Auto => (n as f64) * (t_max as f64 + 1.0) > DIRECT_WORK_LIMIT,
    };
    if use_fft && n > 0 {
        lagged_sums_fft(x, t_max)
    } else {
        lagged_sums_direct(x, t_max)
    }
}

/// Direct O(n·t_max) lagged sums.
fn lagged_sums_direct(x: &[f64], t_max: usize) -> Vec<f64> {
    let n = x.len();
    (0..=t_max)
        .map(|t| {
            if t >= n {
                0.0
            } else {
                x[..n - t].iter().zip(&x[t..]).map(|(a, b)| a * b).sum()
            }
        })
        .collect()
}

/// Lagged sums through a zero-padded FFT of length L = next power of two ≥ 2n.
///
/// The real series is transformed with the half-length trick: with M = L/2
/// and z_m = x_{2m} + i x_{2m+1}, Z = FFT_M(z) gives the transforms of the
/// even and odd samples, E_k = ½(Z_k + Z*_{M−k}), O_k = −½i(Z_k − Z*_{M−k}),
/// and X_k = E_k + e^{−2πik/L} O_k (k = 0 … M). The power P_k = |X_k|² is real
/// and even (P_{L−k} = P_k), so the autocorrelation c = IFFT_L(P) is real and
/// its even and odd samples come from one inverse transform of length M:
/// c_{2m} + i c_{2m+1} = (1/L) IFFT_M(A + iB)_m with A_k = P_k + P_{M−k},
/// B_k = (P_k − P_{M−k}) e^{2πik/L}.
fn lagged_sums_fft(x: &[f64], t_max: usize) -> Vec<f64> {
    let n = x.len();
    let len = (2 * n).next_power_of_two();
    let m = len / 2;
    let mut buf: Vec<Complex<f64>> = (0..m)
        .map(|j| {
            let re = x.get(2 * j).copied().unwrap_or(0.0);
            let im = x.get(2 * j + 1).copied().unwrap_or(0.0);
            Complex::new(re, im)
        })
        .collect();
    let mut planner = FftPlanner::<f64>::new();
    planner.plan_fft_forward(m).process(&mut buf);
    // Twiddles e^{−2πik/L}, k = 0 … M.
    let twiddle: Vec<Complex<f64>> = (0..=m)
        .map(|k| {
            let (s, c) = (-2.0 * std::f64::consts::PI * k as f64 / len as f64).sin_cos();
            Complex::new(c, s)
        })
        .collect();
    let half = Complex::new(0.5, 0.0);
    let minus_half_i = Complex::new(0.0, -0.5);
    let power: Vec<f64> = (0..=m)
        .map(|k| {
            let zk = buf[k % m];
            let zc = buf[(m - k) % m].conj();
            let e = half * (zk + zc);
            let o = minus_half_i * (zk - zc);
            (e + twiddle[k] * o).norm_sqr()
        })
        .collect();
    for k in 0..m {
        let a = power[k] + power[m - k];
        let b = (power[k] - power[m - k]) * twiddle[k].conj();
        buf[k] = Complex::new(a, 0.0) + Complex::new(0.0, 1.0) * b;
    }
    planner.plan_fft_inverse(m).process(&mut buf);
    let scale = 1.0 / len as f64;
    (0..=t_max)
        .map(|t| {
            if t >= n {
                0.0
            } else if t % 2 == 0 {
                buf[t / 2].re * scale
            } else {
                buf[t / 2].im * scale
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_and_direct_sums_agree_for_every_lag() {
        // A deterministic, correlated, non-trivial series (logistic map + drift).
        let mut v = 0.3_f64;
        let x: Vec<f64> = (0..3001)
            .map(|i| {
                v = 3.9 * v * (1.0 - v);
                v - 0.5 + 1e-3 * i as f64
            })
            .collect();
        let t_max = 3100; // beyond n: the tail must be zero in both
        let d = lagged_sums(&x, t_max, AutocovMethod::Direct);
        let f = lagged_sums(&x, t_max, AutocovMethod::Fft);
        let scale = d[0];
        for t in 0..=t_max {
            assert!(
                (d[t] - f[t]).abs() <= 1e-11 * scale,
                "lag {t}: direct {} fft {}",
                d[t],
                f[t]
            );
        }
        assert_eq!(d[3001], 0.0);
    }

    #[test]
    fn tiny_series_by_hand() {
        // x = (1, 2, 3): s(0) = 14, s(1) = 1·2 + 2·3 = 8, s(2) = 3, s(3) = 0.
        for m in [AutocovMethod::Direct, AutocovMethod::Fft] {
            let s = lagged_sums(&[1.0, 2.0, 3.0], 3, m);
            let want = [14.0, 8.0, 3.0, 0.0];
            for t in 0..4 {
                assert!((s[t] - want[t]).abs() < 1e-12, "{m:?} lag {t}: {}", s[t]);
            }
        }
        // n = 1 and n = 2 (smallest transform lengths).
        let s = lagged_sums(&[2.0], 1, AutocovMethod::Fft);
        assert!((s[0] - 4.0).abs() < 1e-12 && s[1] == 0.0);
        let s = lagged_sums(&[2.0, -1.0], 1, AutocovMethod::Fft);
        assert!((s[0] - 5.0).abs() < 1e-12 && (s[1] + 2.0).abs() < 1e-12);
    }

    #[test]
    fn fft_matches_direct_for_many_lengths() {
        for n in 1..70 {
            let x: Vec<f64> = (0..n).map(|i| ((i * 37 + 11) % 17) as f64 - 8.0).collect();
            let d = lagged_sums(&x, n + 2, AutocovMethod::Direct);
            let f = lagged_sums(&x, n + 2, AutocovMethod::Fft);
            for t in 0..=n + 2 {
                assert!((d[t] - f[t]).abs() < 1e-9 * (1.0 + d[0]), "n {n} lag {t}");
            }
        }
    }
}
