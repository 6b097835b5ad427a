//! The double well of Stochastic Normalizing Flows (docs/THEORY.md §3.4,
//! arXiv 2002.06707), in two dimensions:
//!
//! u(x) = a x₁ + b x₁² + c x₁⁴ + ½ x₂²,  log p̃(x) = −u(x),
//! score = (−(a + 2b x₁ + 4c x₁³), −x₂),  ∇²u = diag(2b + 12c x₁², 1),
//!
//! with defaults a = −0.5, b = −6, c = 1 (c > 0 is required). The density
//! factorizes: x₂ ~ N(0, 1) and x₁ has the 1-D density e^{−u₁(x₁)}/Z₁ with
//! u₁(x₁) = a x₁ + b x₁² + c x₁⁴. Hence
//!
//! * log Z = log Z₁ + ½ log 2π, with Z₁ = ∫ e^{−u₁} by composite 16-point
//!   Gauss–Legendre quadrature split at x₁ = 0 (relative accuracy ≈ 1e-14,
//!   checked by panel doubling and against a 2D grid in the tests);
//! * the exact marginal free energy along x₁ is
//!   F(x₁) = −log p(x₁) = u₁(x₁) + log Z₁ ([`DoubleWell::marginal_free_energy`]),
//!   the reference curve for free-energy bias tests of samplers;
//! * the modes are x₁ < 0 (mode 0) and x₁ ≥ 0 (mode 1), with exact weights
//!   ∫_{x₁<0} e^{−u₁}/Z₁ and ∫_{x₁≥0} e^{−u₁}/Z₁ by the same quadrature;
//! * exact samples: x₂ ~ N(0, 1); x₁ by rejection from a piecewise-constant
//!   envelope on 4096 bins, whose level on each bin is a rigorous lower bound
//!   of u₁ there (interval arithmetic on the three monomials). The support is
//!   truncated where u₁ − min u₁ > 800, i.e. the neglected mass is below
//!   e^{−800} relative — not representable in f64 — so the samples are exact.

use crate::modes::{impl_synthetic_target, Modes};
use crate::quadrature::GaussLegendre;
use fieldflow_core::{ConfigError, ExactSampler, HessianVector, Par, Seed, Target};
use ndarray::{Array1, ArrayView1, ArrayViewMut1, ArrayViewMut2};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

/// Default linear coefficient a (docs/THEORY.md §3.4).
pub const DEFAULT_A: f64 = -0.5;
/// Default quadratic coefficient b (docs/THEORY.md §3.4).
pub const DEFAULT_B: f64 = -6.0;
/// Default quartic coefficient c (docs/THEORY.md §3.4).
pub const DEFAULT_C: f64 = 1.0;

/// Truncation of the x₁ support: u₁ − min u₁ at the ends.
const TAIL_CUT: f64 = 800.0;
/// Bins of the rejection envelope.
const N_BINS: usize = 4096;
/// Gauss–Legendre panels on each half-line [lo, 0] and [0, hi].
const PANELS: usize = 512;
/// Nodes per panel.
const NODES: usize = 16;

/// The 2D double well u(x) = a x₁ + b x₁² + c x₁⁴ + ½ x₂² (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleWell {
    a: f64,
    b: f64,
    c: f64,
    /// log Z₁ of the x₁ marginal.
    log_z1: f64,
    /// Exact probabilities of x₁ < 0 and x₁ ≥ 0.
    weights: [f64; 2],
    /// Support [lo, hi] of x₁ used by the sampler.
    lo: f64,
    hi: f64,
    /// Lower bounds of u₁ on each envelope bin.
    bin_floor: Vec<f64>,
    /// Cumulative envelope mass per bin, last entry 1.
    bin_cumulative: Vec<f64>,
}

impl Default for DoubleWell {
    /// a = −0.5, b = −6, c = 1 (docs/THEORY.md §3.4).
    fn default() -> Self {
        DoubleWell::new(DEFAULT_A, DEFAULT_B, DEFAULT_C).expect("the default double well is valid")
    }
}

impl DoubleWell {
    /// The double well with coefficients a, b, c.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `a`, `b` or `c` if a value is not finite, or
    /// `c` if c ≤ 0 (the density would not be normalizable).
    pub fn new(a: f64, b: f64, c: f64) -> Result<Self, ConfigError> {
        for (name, v) in [("a", a), ("b", b), ("c", c)] {
            if !v.is_finite() {
                return Err(ConfigError::new(name, v, "must be finite"));
            }
        }
        if c <= 0.0 {
            return Err(ConfigError::new(
                "c",
                c,
                "must be > 0 (the quartic term makes the density normalizable)",
            ));
        }
        let u1 = |x: f64| a * x + b * x * x + c * x.powi(4);
        // Every critical point of u₁ satisfies |x| ≤ r_c; beyond, u₁ grows
        // monotonically away from the origin.
        let r_c = ((a.abs() + 2.0 * b.abs()) / (4.0 * c)).sqrt().max(1.0);
        let n_scan = 20_000;
        let u_min = (0..=n_scan)
            .map(|i| u1(-r_c + 2.0 * r_c * i as f64 / n_scan as f64))
            .fold(f64::INFINITY, f64::min);
        // u_min ≥ min u₁, so u₁(end) − u_min ≥ TAIL_CUT guarantees the cut.
        let find_end = |sign: f64| {
            let (mut inside, mut outside) = (r_c, 2.0 * r_c);
            while u1(sign * outside) - u_min < TAIL_CUT {
                inside = outside;
                outside *= 2.0;
            }
            for _ in 0..60 {
                let mid = 0.5 * (inside + outside);
                if u1(sign * mid) - u_min < TAIL_CUT {
                    inside = mid;
                } else {
                    outside = mid;
                }
            }
            sign * outside
        };
        let (lo, hi) = (find_end(-1.0), find_end(1.0));

        // Quadrature of e^{−(u₁ − u_min)} on each side of 0.
        let gl = GaussLegendre::new(NODES);
        let f = |x: f64| (u_min - u1(x)).exp();
        let neg = gl.integrate(f, lo, 0.0, PANELS);
        let pos = gl.integrate(f, 0.0, hi, PANELS);
        let log_z1 = (neg + pos).ln() - u_min;
        let weights = [neg / (neg + pos), pos / (neg + pos)];

        // Rejection envelope: on bin [l, r], u₁ ≥ min(a l, a r) + b·(x² at
        // its worst end) + c·(min x²)², with a small margin for rounding.
        let width = (hi - lo) / N_BINS as f64;
        let mut bin_floor = Vec::with_capacity(N_BINS);
        let mut bin_cumulative = Vec::with_capacity(N_BINS);
        let mut acc = 0.0;
        for j in 0..N_BINS {
            let l = lo + j as f64 * width;
            let r = if j + 1 == N_BINS { hi } else { l + width };
            let (sq_lo, sq_hi) = if l <= 0.0 && r >= 0.0 {
                (0.0, (l * l).max(r * r))
            } else {
                ((l * l).min(r * r), (l * l).max(r * r))
            };
            let lin = (a * l).min(a * r);
            let quad = if b >= 0.0 { b * sq_lo } else { b * sq_hi };
            let quart = c * sq_lo * sq_lo;
            let margin = 1e-12 * (lin.abs() + quad.abs() + quart.abs() + 1.0);
            let floor = lin + quad + quart - margin;
            bin_floor.push(floor);
            acc += (u_min - floor).exp();
            bin_cumulative.push(acc);
        }
        for v in &mut bin_cumulative {
            *v /= acc;
        }
        bin_cumulative[N_BINS - 1] = 1.0;
        Ok(DoubleWell {
            a,
            b,
            c,
            log_z1,
            weights,
            lo,
            hi,
            bin_floor,
            bin_cumulative,
        })
    }

    /// Linear coefficient a.
    pub fn a(&self) -> f64 {
        self.a
    }
    /// Quadratic coefficient b.
    pub fn b(&self) -> f64 {
        self.b
    }
    /// Quartic coefficient c.
    pub fn c(&self) -> f64 {
        self.c
    }

    /// u₁(x₁) = a x₁ + b x₁² + c x₁⁴, the x₁ part of the energy.
    pub fn u1(&self, x1: f64) -> f64 {
        self.a * x1 + self.b * x1 * x1 + self.c * x1.powi(4)
    }

    /// log Z₁ = log ∫ e^{−u₁(x₁)} dx₁ (quadrature, see the module docs).
    pub fn log_z1(&self) -> f64 {
        self.log_z1
    }

    /// The exact marginal free energy along x₁, F(x₁) = −log p(x₁) =
    /// u₁(x₁) + log Z₁, normalized so that ∫ e^{−F} dx₁ = 1.
    pub fn marginal_free_energy(&self, x1: f64) -> f64 {
        self.u1(x1) + self.log_z1
    }

    /// The free-energy difference of the wells,
    /// ΔF = F₊ − F₋ = −log(P(x₁ ≥ 0) / P(x₁ < 0)).
    pub fn free_energy_difference(&self) -> f64 {
        -(self.weights[1] / self.weights[0]).ln()
    }

    /// The x₁ interval [lo, hi] outside of which the sampler never goes
    /// (u₁ − min u₁ > 800 there).
    pub fn support_x1(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// One exact draw of x₁.
    fn sample_x1(&self, rng: &mut fieldflow_core::Rng) -> f64 {
        let width = (self.hi - self.lo) / N_BINS as f64;
        loop {
            let u: f64 = rng.random();
            let j = self.bin_cumulative.partition_point(|&c| c <= u).min(N_BINS - 1);
            let t: f64 = rng.random();
            let x = self.lo + (j as f64 + t) * width;
            let v: f64 = rng.random();
            if v < (self.bin_floor[j] - self.u1(x)).exp() {
                return x;
            }
        }
    }
}

impl Target for DoubleWell {
    fn dim(&self) -> usize {
        2
    }

    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        assert_eq!(x.len(), 2, "the double well is two-dimensional");
        -(self.u1(x[0]) + 0.5 * x[1] * x[1])
    }

    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        assert_eq!(x.len(), 2, "the double well is two-dimensional");
        assert_eq!(score.len(), 2, "score has the wrong dimension");
        let x1 = x[0];
        score[0] = -(self.a + 2.0 * self.b * x1 + 4.0 * self.c * x1 * x1 * x1);
        score[1] = -x[1];
        self.log_prob(x)
    }

    /// log Z₁ + ½ log 2π (quadrature, relative accuracy ≈ 1e-14).
    fn log_z(&self) -> Option<f64> {
        Some(self.log_z1 + 0.5 * (2.0 * std::f64::consts::PI).ln())
    }

    fn describe(&self) -> String {
        format!(
            "double well u = a x1 + b x1^2 + c x1^4 + x2^2/2: a = {}, b = {}, c = {}",
            self.a, self.b, self.c
        )
    }
}

impl HessianVector for DoubleWell {
    /// ∇²u = diag(2b + 12c x₁², 1).
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        assert!(
            x.len() == 2 && v.len() == 2 && out.len() == 2,
            "the double well is two-dimensional"
        );
        out[0] = (2.0 * self.b + 12.0 * self.c * x[0] * x[0]) * v[0];
        out[1] = v[1];
    }
}

impl ExactSampler for DoubleWell {
    /// Chunk k of the batch draws from stream `seed.child(k)`; per row x₁ by
    /// rejection (a variable number of uniforms), then x₂ ~ N(0, 1).
    ///
    /// # Panics
    /// If `xs` does not have 2 columns.
    fn sample_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, par: Par) {
        assert_eq!(xs.ncols(), 2, "the double well is two-dimensional");
        let mut dummy = Array1::zeros(xs.nrows());
        par.rows_mut_to_values(xs, dummy.view_mut(), |k, _, mut x, _| {
            let mut rng = seed.child(k as u64).rng();
            for mut row in x.rows_mut() {
                row[0] = self.sample_x1(&mut rng);
                row[1] = StandardNormal.sample(&mut rng);
            }
        });
    }
}

impl Modes for DoubleWell {
    fn n_modes(&self) -> usize {
        2
    }

    /// (P(x₁ < 0), P(x₁ ≥ 0)) by quadrature.
    fn true_weights(&self) -> Option<Vec<f64>> {
        Some(self.weights.to_vec())
    }

    /// Mode 0 if x₁ < 0, mode 1 otherwise.
    fn assign(&self, x: ArrayView1<f64>) -> usize {
        usize::from(x[0] >= 0.0)
    }
}

impl_synthetic_target!(DoubleWell, exact);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use ndarray::Array2;

    #[test]
    fn hessian_vector_products_match_score_differences() {
        let mut worst: f64 = 0.0;
        for (k, t) in [DoubleWell::default(), DoubleWell::new(0.3, -2.0, 0.5).unwrap()]
            .iter()
            .enumerate()
        {
            let pts = gaussian_points(Array1::zeros(2).view(), 2.5, 30, 70 + k as u64);
            worst = worst.max(assert_hvp_matches_fd_at(t, pts.view(), 80 + k as u64));
        }
        println!("double well: max hvp relative error {worst:e}");
    }

    #[test]
    fn score_matches_finite_differences() {
        assert_score_matches_fd(&DoubleWell::default(), 2.0, 40, 31);
        assert_score_matches_fd(&DoubleWell::new(1.0, 0.5, 0.2).unwrap(), 2.0, 20, 32);
    }

    #[test]
    fn quadrature_log_z_is_converged_and_matches_a_2d_grid() {
        let t = DoubleWell::default();
        let exact = t.log_z().unwrap();
        // Panel doubling of the quadrature itself.
        let gl = GaussLegendre::new(NODES);
        let z = gl.integrate(|x| (-t.u1(x)).exp(), t.lo, 0.0, 2 * PANELS)
            + gl.integrate(|x| (-t.u1(x)).exp(), 0.0, t.hi, 2 * PANELS);
        assert!((z.ln() - t.log_z1()).abs() < 1e-13, "{} vs {}", z.ln(), t.log_z1());
        let grid = grid_log_z_2d(&t, (-3.5, 3.5), (-10.0, 10.0), 0.005);
        assert!((grid - exact).abs() < 1e-8, "grid {grid} quadrature {exact}");
        // Free energy normalized: ∫ e^{−F(x₁)} dx₁ = 1.
        let one = gl.integrate(|x| (-t.marginal_free_energy(x)).exp(), t.lo, t.hi, 1024);
        assert!((one - 1.0).abs() < 1e-13);
    }

    #[test]
    fn exact_samples_follow_the_marginal_and_the_mode_weights() {
        let t = DoubleWell::default();
        let n = 40_000;
        let mut xs = Array2::zeros((n, 2));
        t.sample_batch(Seed::new(5), xs.view_mut(), Par::default());
        let w = t.true_weights().unwrap();
        assert!(w[1] > w[0], "a < 0 tilts the mass towards x₁ > 0");
        assert_fractions_within_4_sigma(&t.mode_fractions(xs.view()), &w, n);
        // Histogram of x₁ against exp(−F) integrated over each bin.
        let gl = GaussLegendre::new(NODES);
        let edges: Vec<f64> = (0..=16).map(|i| -2.4 + 0.3 * i as f64).collect();
        for e in edges.windows(2) {
            let p = gl.integrate(|x| (-t.marginal_free_energy(x)).exp(), e[0], e[1], 4);
            let f = xs.column(0).iter().filter(|&&x| x >= e[0] && x < e[1]).count() as f64 / n as f64;
            let sigma = (p * (1.0 - p) / n as f64).sqrt();
            assert!((f - p).abs() < 4.0 * sigma + 1e-12, "bin {e:?}: {f} vs {p}");
        }
        // x₂ ~ N(0, 1).
        let (m, c) = sample_moments(xs.view());
        assert!(m[1].abs() < 4.0 / (n as f64).sqrt());
        assert!((c[[1, 1]] - 1.0).abs() < 4.0 * (2.0 / n as f64).sqrt());
    }

    #[test]
    fn free_energy_difference_matches_the_weights() {
        let t = DoubleWell::default();
        let w = t.true_weights().unwrap();
        assert!((t.free_energy_difference() + (w[1] / w[0]).ln()).abs() < 1e-14);
        // A symmetric well (a = 0) has equal weights.
        let s = DoubleWell::new(0.0, -6.0, 1.0).unwrap();
        let w = s.true_weights().unwrap();
        assert!((w[0] - 0.5).abs() < 1e-13, "{w:?}");
    }

    #[test]
    fn invalid_coefficients_name_the_field() {
        assert_eq!(DoubleWell::new(0.0, -6.0, 0.0).unwrap_err().field, "c");
        assert_eq!(DoubleWell::new(f64::NAN, -6.0, 1.0).unwrap_err().field, "a");
    }
}
