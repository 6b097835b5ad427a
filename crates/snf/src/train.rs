//! Training losses of an SNF and their gradients, by hand (docs/THEORY.md §6.5).
//!
//! # Path KL (reverse KL on path space)
//! With forward paths driven by reparametrized noise (z = σε₀, Langevin
//! noises η, random-walk noises ξ and uniforms all drawn independently of θ),
//!
//!   L_KL(θ) = E\[−log w\] = E[−log p̃(x) + log N(z) − Σ ΔS]
//!           = KL(forward path ‖ target path) − log Z ≥ −log Z.
//!
//! Its gradient is the reverse mode of the path at fixed noise: x̄ = −∇log p̃(x)/N
//! and ∂L/∂ΔS = −1/N per row, back through every stage (flow layers by their
//! `backward`, Langevin steps as in [`crate::blocks`], with the Hessian-vector
//! products of [`crate::HessianVector`]). Metropolis and MALA decisions are
//! held fixed: the gradient through those blocks is biased (see
//! [`crate::blocks`]); with only flow and plain Langevin stages it is the
//! exact gradient of the Monte Carlo estimate of L_KL.
//!
//! # Maximum likelihood on path space
//! The marginal q_θ(x) of an SNF is intractable, so ML cannot be −E log q(x)
//! through the deterministic layers alone (that would ignore the stochastic
//! blocks between them). Instead, as in arXiv 2002.06707, the data x ~ μ are
//! pushed through the **backward kernels** (inverse layers, Langevin and
//! Metropolis kernels from the later point) to z, and
//!
//!   L_ML(θ) = E_{x~μ, reverse path}[−log N(z) + Σ ΔS]
//!           = KL(μ × backward path ‖ forward path) + H(μ) ≥ −E_μ log q_θ(x),
//!
//! an upper bound of the NLL that is tight (= the flow's FKL) when every
//! stage is deterministic. Its gradient is again the reverse mode at fixed
//! reverse-path noise, seeded with z̄ = z/(σ²N) and ∂L/∂ΔS = 1/N. (Check: with flow layers
//! only, ΔS = log|det ∂f/∂z| and the loss is −log N(z) + log|det ∂f/∂z| =
//! −log q(x), the FKL.)
//!
//! Rows whose loss term is not finite (a diverged Langevin path) are
//! excluded from the gradient and counted in the report; a training loop
//! should reject such a step.

use crate::snf::{PathDir, Snf};
use crate::HessianVector;
use fieldflow_core::{Par, Seed};
use fieldflow_flows::Layer;
use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};

/// Result of a path-loss evaluation.
#[derive(Debug, Clone)]
pub struct PathLossReport {
    /// The mean loss over all rows (non-finite if any row is).
    pub loss: f64,
    /// Rows excluded from the gradient because their loss was not finite.
    pub n_nonfinite: usize,
    /// Path log-weights (path KL) or path NLLs (path ML), per row.
    pub per_row: Array1<f64>,
    /// Acceptance rate of every stochastic block, in stage order.
    pub acceptance: Vec<f64>,
}

/// One chunk's share of a path loss.
struct ChunkLoss {
    rows: std::ops::Range<usize>,
    per_row: Array1<f64>,
    gp: Vec<f64>,
    bad: usize,
    accepted: Vec<usize>,
}

impl<T: HessianVector, L: Layer> Snf<T, L> {
    /// Path-KL loss and gradient on n fresh forward paths from `seed` (the
    /// same paths as [`Snf::sample_paths`] with the same seed and `par`):
    /// `grad += ∂θ L_KL`, L_KL = mean(−log w). `per_row` holds log w.
    ///
    /// # Panics
    /// If `grad.len() != n_params()`.
    pub fn path_kl_grad_batch(&self, seed: Seed, n: usize, grad: &mut [f64], par: Par) -> PathLossReport {
        assert_eq!(grad.len(), self.n_params(), "gradient length differs from n_params");
        let inv_n = 1.0 / n as f64;
        let parts = par.map_chunks(n, |k, r| {
            let mut rng = seed.child(k as u64).rng();
            let rows = r.len();
            let z = self.draw_base(&mut rng, rows);
            let mut tape = self.new_tape(rows);
            let run = self.run_chunk(PathDir::Forward, z.view(), &mut rng, Some(&mut tape));
            let mut log_w = Array1::zeros(rows);
            let mut g_end = Array2::zeros((rows, self.dim()));
            let mut c_bar = Array1::zeros(rows);
            let mut bad = 0;
            for i in 0..rows {
                let mut score = g_end.row_mut(i);
                let lp = self.target().log_prob_and_score(run.end.row(i), score.view_mut());
                log_w[i] = lp - self.log_base(z.row(i)) + run.c[i];
                if log_w[i].is_finite() && score.iter().all(|v| v.is_finite()) {
                    // L = −log w/N: x̄ = −score/N, ∂L/∂C = −1/N.
                    score.mapv_inplace(|s| -s * inv_n);
                    c_bar[i] = -inv_n;
                } else {
                    score.fill(0.0);
                    bad += 1;
                }
            }
            let mut gp = vec![0.0; self.n_params()];
            self.vjp_chunk(PathDir::Forward, &mut tape, g_end, &c_bar, &mut gp);
            ChunkLoss {
                rows: r,
                per_row: log_w,
                gp,
                bad,
                accepted: run.accepted,
            }
        });
        self.collect(parts, n, grad, |lw| -lw)
    }

    /// Path-ML loss and gradient on the rows of `xs` (data) with reverse-path
    /// noise from `seed` (the same paths as [`Snf::reverse_paths`]):
    /// `grad += ∂θ L_ML`, L_ML = mean(−log N(z) + Σ ΔS). `per_row` holds the
    /// path NLLs.
    ///
    /// # Panics
    /// If `grad.len() != n_params()` or the width of `xs` differs from `dim()`.
    pub fn path_ml_grad_batch(&self, seed: Seed, xs: ArrayView2<f64>, grad: &mut [f64], par: Par) -> PathLossReport {
        assert_eq!(grad.len(), self.n_params(), "gradient length differs from n_params");
        assert_eq!(xs.ncols(), self.dim(), "batch width differs from the SNF's dimension");
        let n = xs.nrows();
        let inv_n = 1.0 / n as f64;
        let inv_s2 = 1.0 / (self.base_sigma() * self.base_sigma());
        let parts = par.map_chunks(n, |k, r| {
            let mut rng = seed.child(k as u64).rng();
            let rows = r.len();
            let mut tape = self.new_tape(rows);
            let x = xs.slice_axis(Axis(0), Slice::from(r.clone()));
            let run = self.run_chunk(PathDir::Reverse, x, &mut rng, Some(&mut tape));
            let mut nll = Array1::zeros(rows);
            let mut g_end = Array2::zeros((rows, self.dim()));
            let mut c_bar = Array1::zeros(rows);
            let mut bad = 0;
            for i in 0..rows {
                // Reverse computation: Σ ΔS = −Σ C.
                nll[i] = -self.log_base(run.end.row(i)) - run.c[i];
                if nll[i].is_finite() {
                    // L = (−log N(z) − C)/N: z̄ = z/(σ²N), ∂L/∂C = −1/N.
                    g_end.row_mut(i).assign(&run.end.row(i).mapv(|v| v * inv_s2 * inv_n));
                    c_bar[i] = -inv_n;
                } else {
                    bad += 1;
                }
            }
            let mut gp = vec![0.0; self.n_params()];
            self.vjp_chunk(PathDir::Reverse, &mut tape, g_end, &c_bar, &mut gp);
            ChunkLoss {
                rows: r,
                per_row: nll,
                gp,
                bad,
                accepted: run.accepted,
            }
        });
        self.collect(parts, n, grad, |v| v)
    }

    /// Sums chunk results in chunk order.
    fn collect(
        &self,
        parts: Vec<ChunkLoss>,
        n: usize,
        grad: &mut [f64],
        loss_of: impl Fn(f64) -> f64,
    ) -> PathLossReport {
        let mut per_row = Array1::zeros(n);
        let mut bad = 0;
        let n_blocks = parts.first().map_or(0, |p| p.accepted.len());
        let mut accepted = vec![0usize; n_blocks];
        for ChunkLoss {
            rows: r,
            per_row: v,
            gp,
            bad: b,
            accepted: acc,
        } in parts
        {
            per_row.slice_axis_mut(Axis(0), Slice::from(r)).assign(&v);
            for (g, x) in grad.iter_mut().zip(&gp) {
                *g += x;
            }
            bad += b;
            for (a, x) in accepted.iter_mut().zip(&acc) {
                *a += x;
            }
        }
        let loss = per_row.iter().map(|&v| loss_of(v)).sum::<f64>() / n as f64;
        let steps: Vec<usize> = self
            .stages()
            .iter()
            .filter_map(|s| match s {
                crate::Stage::Stochastic(b) => Some(b.steps()),
                crate::Stage::Flow(_) => None,
            })
            .collect();
        PathLossReport {
            loss,
            n_nonfinite: bad,
            per_row,
            acceptance: steps
                .iter()
                .zip(&accepted)
                .map(|(s, &a)| a as f64 / (s * n).max(1) as f64)
                .collect(),
        }
    }
}
