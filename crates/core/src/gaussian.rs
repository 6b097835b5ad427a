//! The isotropic Gaussian N(μ𝟙, σ²I): base distribution of flows, an exact
//! proposal for tests (q = p), and the simplest target with known log Z.
//!
//! log N(x) = −‖x − μ‖²/(2σ²) − (d/2) log(2πσ²); score −(x − μ)/σ²;
//! Hessian of the energy ∇²u = I/σ² ([`HessianVector`]).
//! As a [`Target`] it is normalized, so log Z = 0.

use crate::{ExactSampler, HessianVector, Par, Proposal, ProposalDensity, Seed, Target};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};
use rand_distr::{Distribution, StandardNormal};

/// N(μ𝟙, σ²I) in `dim` dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IsotropicGaussian {
    /// Dimension d.
    pub dim: usize,
    /// Mean μ of every coordinate.
    pub mean: f64,
    /// Standard deviation σ > 0 of every coordinate.
    pub sigma: f64,
}

impl IsotropicGaussian {
    /// Standard normal N(0, I) in `dim` dimensions.
    pub fn standard(dim: usize) -> Self {
        IsotropicGaussian {
            dim,
            mean: 0.0,
            sigma: 1.0,
        }
    }

    /// Normalization −(d/2) log(2πσ²).
    fn log_norm(&self) -> f64 {
        -0.5 * self.dim as f64 * (2.0 * std::f64::consts::PI * self.sigma * self.sigma).ln()
    }
}

impl Target for IsotropicGaussian {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        let r2: f64 = x.iter().map(|v| (v - self.mean).powi(2)).sum();
        -0.5 * r2 / (self.sigma * self.sigma) + self.log_norm()
    }
    fn log_prob_and_score(&self, x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let inv_var = 1.0 / (self.sigma * self.sigma);
        Zip::from(&mut score)
            .and(&x)
            .for_each(|s, &v| *s = -(v - self.mean) * inv_var);
        self.log_prob(x)
    }
    fn log_z(&self) -> Option<f64> {
        Some(0.0)
    }
    fn describe(&self) -> String {
        format!(
            "isotropic Gaussian: dim = {}, mean = {}, sigma = {}",
            self.dim, self.mean, self.sigma
        )
    }
}

impl HessianVector for IsotropicGaussian {
    /// ∇²u = I/σ².
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, mut out: ArrayViewMut1<f64>) {
        assert!(x.len() == self.dim && v.len() == self.dim && out.len() == self.dim);
        let inv = 1.0 / (self.sigma * self.sigma);
        Zip::from(&mut out).and(&v).for_each(|o, &vi| *o = inv * vi);
    }
}

impl ExactSampler for IsotropicGaussian {
    /// Chunk k of the batch draws from stream `seed.child(k)`.
    fn sample_batch(&self, seed: Seed, xs: ArrayViewMut2<f64>, par: Par) {
        let mut dummy = ndarray::Array1::zeros(xs.nrows());
        par.rows_mut_to_values(xs, dummy.view_mut(), |k, _, mut x, _| {
            let mut rng = seed.child(k as u64).rng();
            x.mapv_inplace(|_| {
                self.mean
                    + self.sigma * {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        z
                    }
            });
        });
    }
}

impl Proposal for IsotropicGaussian {
    fn dim(&self) -> usize {
        self.dim
    }
    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        self.sample_batch(seed, xs.view_mut(), par);
        self.log_q_batch(xs.view(), log_q, par);
    }
}

impl ProposalDensity for IsotropicGaussian {
    fn log_q_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        par.rows_to_values(xs, out, |_, _, x, mut o| {
            for (i, row) in x.axis_iter(Axis(0)).enumerate() {
                o[i] = self.log_prob(row);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn samples_have_the_stated_mean_and_variance_and_are_thread_independent() {
        let g = IsotropicGaussian {
            dim: 3,
            mean: 1.5,
            sigma: 2.0,
        };
        let n = 20_000;
        let mut xs = Array2::zeros((n, 3));
        g.sample_batch(
            Seed::new(11),
            xs.view_mut(),
            Par {
                chunk_rows: 64,
                parallel: true,
            },
        );
        let mut ys = Array2::zeros((n, 3));
        g.sample_batch(Seed::new(11), ys.view_mut(), Par::serial(64));
        assert_eq!(xs, ys);
        let m = xs.mean().unwrap();
        let v = xs.mapv(|x| (x - 1.5).powi(2)).mean().unwrap();
        let nf = (3 * n) as f64;
        // σ(mean) = σ/√n; σ(var) = σ²√(2/n).
        assert!((m - 1.5).abs() < 4.0 * 2.0 / nf.sqrt(), "mean {m}");
        assert!((v - 4.0).abs() < 4.0 * 4.0 * (2.0 / nf).sqrt(), "var {v}");
    }

    #[test]
    fn hessian_vector_product_matches_score_differences() {
        let g = IsotropicGaussian {
            dim: 5,
            mean: 0.4,
            sigma: 0.6,
        };
        let mut rng = Seed::new(3).rng();
        let mut worst = 0.0_f64;
        for _ in 0..10 {
            let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
            let x = Array1::from_shape_fn(5, |_| 2.0 * normal());
            let v = Array1::from_shape_fn(5, |_| normal());
            let err = fieldflow_testkit::hvp_rel_err(
                x.as_slice().unwrap(),
                v.as_slice().unwrap(),
                |out| g.hvp(x.view(), v.view(), out.into()),
                |y, s| g.log_prob_and_score(y.into(), s.into()),
            );
            assert!(err < 1e-6, "relative error {err:e}");
            worst = worst.max(err);
        }
        println!("isotropic Gaussian: max hvp relative error {worst:e}");
    }

    #[test]
    fn score_is_the_gradient_of_log_prob() {
        let g = IsotropicGaussian {
            dim: 4,
            mean: -0.3,
            sigma: 0.7,
        };
        let x = Array1::from(vec![0.1, -1.2, 2.0, 0.4]);
        let mut s = Array1::zeros(4);
        let lp = g.log_prob_and_score(x.view(), s.view_mut());
        assert_eq!(lp, g.log_prob(x.view()));
        let fd = fieldflow_testkit::central_gradient(
            |y| g.log_prob(y.into()),
            x.as_slice().unwrap(),
            fieldflow_testkit::FD_STEP,
        );
        for i in 0..4 {
            assert!((fd[i] - s[i]).abs() < 1e-8 * (1.0 + s[i].abs()));
        }
    }
}
