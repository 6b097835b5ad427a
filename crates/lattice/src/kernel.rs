//! The fused φ⁴ action-and-force kernel (docs/THEORY.md §2.2).
//!
//! With a = 2d + m² and the neighbour sum n(x) = Σ_μ [φ(x+μ̂) + φ(x−μ̂)],
//!
//! S = Σₓ [ −φ(x) n(x) + a φ(x)² + λ φ(x)⁴ ]
//!   = Σₓ [ −2 Σ_μ φ(x)φ(x+μ̂) + (2d + m²) φ(x)² + λ φ(x)⁴ ],
//! ∂S/∂φ(x) = −2 n(x) + 2a φ(x) + 4λ φ(x)³,
//!
//! (every bond appears twice in Σₓ φ(x) n(x), hence the factor 1 instead of 2).
//! An axis of extent 1 links a site to itself: it adds 2φ(x) to n(x) and 2 to
//! a, which cancel exactly as the difference form (φ(x+μ̂) − φ(x))² = 0 says.
//!
//! **Traversal.** The field is row-major, so the last axis is contiguous. The
//! kernel walks the V / L_{d−1} *lines* along the last axis; for a line, the
//! neighbours along the other d − 1 axes are whole lines (found once per line
//! from the neighbour tables), and the in-line neighbours are the shifted
//! line with its two ends wrapped. The interior of a line is a branch-free
//! loop over equal-length slices that the compiler vectorizes; the action is
//! accumulated in four interleaved partial sums (fixed order, so the result is
//! deterministic). No neighbour table is read per site and nothing is
//! allocated. The constant `N = 2(d − 1)` is the number of neighbour lines,
//! so every dimension gets its own monomorphized loop.

use crate::geometry::Lattice;

/// Couplings of the kernel: `a = 2d + m²` and `lambda = λ`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KernelCouplings {
    /// a = 2d + m².
    pub a: f64,
    /// λ.
    pub lambda: f64,
}

/// Returns S(φ) and, if `out` is given, writes `scale · ∂S/∂φ` into it
/// (`scale = −1` yields the score ∇ log p̃).
///
/// # Panics
/// If `phi` (or `out`) does not have length V.
pub(crate) fn action_and_force(
    lat: &Lattice,
    c: KernelCouplings,
    phi: &[f64],
    out: Option<&mut [f64]>,
    scale: f64,
) -> f64 {
    assert_eq!(phi.len(), lat.volume(), "field length differs from V");
    match out {
        Some(f) => {
            assert_eq!(f.len(), lat.volume(), "force length differs from V");
            match lat.dim() {
                1 => lines::<0, true>(lat, c, phi, f, scale),
                2 => lines::<2, true>(lat, c, phi, f, scale),
                3 => lines::<4, true>(lat, c, phi, f, scale),
                _ => lines::<6, true>(lat, c, phi, f, scale),
            }
        }
        None => {
            let f: &mut [f64] = &mut [];
            match lat.dim() {
                1 => lines::<0, false>(lat, c, phi, f, scale),
                2 => lines::<2, false>(lat, c, phi, f, scale),
                3 => lines::<4, false>(lat, c, phi, f, scale),
                _ => lines::<6, false>(lat, c, phi, f, scale),
            }
        }
    }
}

/// Loops over the lines along the last axis; `N` = number of neighbour lines.
fn lines<const N: usize, const FORCE: bool>(
    lat: &Lattice,
    c: KernelCouplings,
    phi: &[f64],
    force: &mut [f64],
    scale: f64,
) -> f64 {
    let d = lat.dim();
    let n = lat.shape()[d - 1];
    let mut total = 0.0;
    let mut start = 0;
    while start < phi.len() {
        let nb: [&[f64]; N] = std::array::from_fn(|k| {
            let mu = k / 2;
            let o = if k % 2 == 0 {
                lat.fwd(start, mu)
            } else {
                lat.bwd(start, mu)
            };
            &phi[o..o + n]
        });
        let f: &mut [f64] = if FORCE { &mut force[start..start + n] } else { &mut [] };
        total += line::<N, FORCE>(&phi[start..start + n], nb, c, f, scale);
        start += n;
    }
    total
}

/// Action and (scaled) force of one line, returning the line's action.
#[inline(always)]
fn line<const N: usize, const FORCE: bool>(
    p: &[f64],
    nb: [&[f64]; N],
    c: KernelCouplings,
    f: &mut [f64],
    scale: f64,
) -> f64 {
    let n = p.len();
    let (a, lam) = (c.a, c.lambda);
    let two_s = 2.0 * scale;
    let four_s = 4.0 * scale;
    // One site, with explicit in-line neighbour indices (used at the ends).
    let site = |j: usize, jp: usize, jm: usize, f: &mut [f64]| -> f64 {
        let mut s = p[jp] + p[jm];
        for k in 0..N {
            s += nb[k][j];
        }
        let x = p[j];
        let x2 = x * x;
        if FORCE {
            f[j] = two_s * (a * x - s) + four_s * lam * x * x2;
        }
        x * (a * x + lam * x * x2 - s)
    };
    if n < 3 {
        let mut acc = 0.0;
        for j in 0..n {
            acc += site(j, (j + 1) % n, (j + n - 1) % n, f);
        }
        return acc;
    }
    let mut acc = site(0, 1, n - 1, f);
    acc += site(n - 1, 0, n - 2, f);
    // Interior 1..n−1: equal-length slices, no bounds checks, vectorizable.
    let m = n - 2;
    let pc = &p[1..n - 1];
    let pl = &p[..m];
    let pr = &p[2..];
    let nbs: [&[f64]; N] = std::array::from_fn(|k| &nb[k][1..n - 1]);
    let mut lanes = [0.0f64; 4];
    let mut fdummy: [f64; 0] = [];
    let fo: &mut [f64] = if FORCE { &mut f[1..n - 1] } else { &mut fdummy };
    // Equal lengths stated up front let the compiler drop the bounds checks.
    assert!(pc.len() == m && pl.len() == m && pr.len() == m);
    assert!(nbs.iter().all(|s| s.len() == m));
    assert!(!FORCE || fo.len() == m);
    let body = |j: usize, fo: &mut [f64]| -> f64 {
        let mut s = pl[j] + pr[j];
        for k in 0..N {
            s += nbs[k][j];
        }
        let x = pc[j];
        let x2 = x * x;
        if FORCE {
            fo[j] = two_s * (a * x - s) + four_s * lam * x * x2;
        }
        x * (a * x + lam * x * x2 - s)
    };
    let chunks = m / 4;
    for q in 0..chunks {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += body(4 * q + l, fo);
        }
    }
    for j in 4 * chunks..m {
        lanes[j - 4 * chunks] += body(j, fo);
    }
    acc + ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
}
