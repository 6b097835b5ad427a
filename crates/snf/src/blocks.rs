//! The stochastic blocks and their path terms (docs/THEORY.md §6.4–§6.5; Wu, Köhler &
//! Noé, arXiv 2002.06707).
//!
//! # Conventions
//! A block maps its input a (earlier in time) to its output b (later in
//! time) by a Markov kernel q(b | a) at fixed schedule point λ, and is paired
//! with a backward kernel q̃(a | b). Its path term is
//!
//!   ΔS = log q̃(a | b) − log q(b | a),
//!
//! so that for a whole path z = y₀ → y₁ → … → y_T = x
//!
//!   log w = log p̃(x) − log N(z; 0, σ²I) + Σ_t ΔS_t,
//!
//! the log-ratio of the backward path density p(x) Π q̃ (times Z) to the
//! forward one N(z) Π q. A deterministic layer has ΔS = log|det ∂f/∂y|.
//!
//! ## Overdamped Langevin (unadjusted)
//! One step with reparametrized noise η ~ N(0, I):
//!
//!   b = a − ε ∇u_λ(a) + √(2ε) η,   q(b | a) = N(b; a − ε∇u_λ(a), 2ε I).
//!
//! The backward kernel is the same Langevin kernel run from b:
//! q̃(a | b) = N(a; b − ε∇u_λ(b), 2ε I), whose noise is
//!
//!   η̃ = (a − b + ε ∇u_λ(b)) / √(2ε) = √(ε/2) (∇u_λ(a) + ∇u_λ(b)) − η.
//!
//! The Gaussian normalizations cancel, so ΔS = ½ (‖η‖² − ‖η̃‖²)
//! (equivalently η̃ = (a − b − εF(b))/√(2ε) with the force F = −∇u_λ).
//! A block of n steps adds the n step terms.
//!
//! ## Metropolis random walk and MALA
//! A kernel K that satisfies detailed balance e^{−u_λ(a)} K(b | a) =
//! e^{−u_λ(b)} K(a | b) is paired with itself as backward kernel, so
//!
//!   ΔS = log K(a | b) − log K(b | a) = u_λ(b) − u_λ(a)
//!
//! for the whole block (the per-step terms telescope; a rejected step adds
//! 0). The random walk proposes b′ = a + w ξ, ξ ~ N(0, I), and accepts with
//! min(1, e^{u_λ(a) − u_λ(b′)}); MALA proposes the Langevin step b′ above
//! and accepts with min(1, e^{u_λ(a) − u_λ(b′) + ½‖η‖² − ½‖η̃‖²}). A
//! non-finite proposed energy is a rejection.
//!
//! ## Reverse mode (used by [`crate::Snf`]'s gradients)
//! With the noise held fixed, a Langevin step is differentiable. Writing
//! g_a = ∇u_λ(a), g_b = ∇u_λ(b), H = ∇²u_λ, given ∂L/∂b = b̄ and ∂L/∂ΔS = c̄:
//!
//!   η̃̄ = −c̄ η̃,   ḡ_a = ḡ_b = √(ε/2) η̃̄,
//!   b̄ ← b̄ + H(b) ḡ_b,   ḡ_a ← ḡ_a − ε b̄,   ā = b̄ + H(a) ḡ_a,
//!
//! two Hessian-vector products per step ([`crate::HessianVector`]).
//! Metropolis and MALA blocks are not differentiable: their accept decisions
//! are **held fixed** (the uniform and the proposal noise are reparametrized,
//! the decision is not). An accepted random-walk step then has Jacobian I
//! (b = a + wξ), a rejected step Jacobian I (b = a), an accepted MALA step
//! I − εH(a); ΔS = u_λ(b) − u_λ(a) is differentiated at the endpoints. This
//! drops the score-function term of the accept indicator (the derivative of
//! the acceptance probability), so the gradient through such blocks is
//! **biased** (it is the gradient of the realized path with the decision
//! pattern frozen, exact wherever no decision flips); the weights and
//! everything sampled remain exact. Langevin blocks give unbiased gradients.

use crate::energy::{Energy, HessianVector};
use fieldflow_core::{Rng, Target};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, Zip};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// An overdamped Langevin block (plain or MALA-corrected) at schedule point λ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LangevinBlock {
    /// Number of steps n ≥ 1.
    pub steps: usize,
    /// Step size ε > 0 (the noise has variance 2ε).
    pub eps: f64,
    /// Metropolis-adjust every step (MALA).
    pub mala: bool,
    /// Schedule point λ ∈ [0, 1] of u_λ.
    pub lambda: f64,
}

/// A Gaussian random-walk Metropolis block at schedule point λ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetropolisBlock {
    /// Number of steps n ≥ 1.
    pub steps: usize,
    /// Proposal width w > 0: b′ = a + w ξ.
    pub width: f64,
    /// Schedule point λ ∈ [0, 1] of u_λ.
    pub lambda: f64,
}

/// A stochastic block of an SNF.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum StochasticBlock {
    /// Overdamped Langevin (plain or MALA).
    Langevin(LangevinBlock),
    /// Random-walk Metropolis.
    Metropolis(MetropolisBlock),
}

impl StochasticBlock {
    /// The schedule point λ of the block.
    pub fn lambda(&self) -> f64 {
        match self {
            StochasticBlock::Langevin(b) => b.lambda,
            StochasticBlock::Metropolis(b) => b.lambda,
        }
    }

    /// Whether the block has accept/reject decisions (MALA, Metropolis).
    pub fn has_decisions(&self) -> bool {
        match self {
            StochasticBlock::Langevin(b) => b.mala,
            StochasticBlock::Metropolis(_) => true,
        }
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        match self {
            StochasticBlock::Langevin(b) => b.steps,
            StochasticBlock::Metropolis(b) => b.steps,
        }
    }
}

/// What one block records on one row for the reverse mode.
#[derive(Debug, Default)]
pub(crate) struct RowTape {
    /// Positions before every step and after the last (n + 1 rows).
    pub pos: Vec<Array1<f64>>,
    /// ∇u_λ at `pos` (n + 1 rows).
    pub grad: Vec<Array1<f64>>,
    /// The step noises η (plain Langevin only).
    pub noise: Vec<Array1<f64>>,
    /// Accept decisions (MALA / Metropolis).
    pub accepted: Vec<bool>,
}

/// Per-row work buffers of a block.
pub(crate) struct RowWork {
    ga: Array1<f64>,
    gb: Array1<f64>,
    prop: Array1<f64>,
    noise: Array1<f64>,
    eta_t: Array1<f64>,
}

impl RowWork {
    pub fn new(dim: usize) -> Self {
        RowWork {
            ga: Array1::zeros(dim),
            gb: Array1::zeros(dim),
            prop: Array1::zeros(dim),
            noise: Array1::zeros(dim),
            eta_t: Array1::zeros(dim),
        }
    }
}

fn fill_normal(mut v: ArrayViewMut1<f64>, rng: &mut Rng) {
    for x in v.iter_mut() {
        *x = StandardNormal.sample(rng);
    }
}

fn norm2(v: ArrayView1<f64>) -> f64 {
    v.iter().map(|x| x * x).sum()
}

/// η̃ = √(ε/2)(g_a + g_b) − η into `out`.
fn backward_noise(eps: f64, ga: ArrayView1<f64>, gb: ArrayView1<f64>, eta: ArrayView1<f64>, out: &mut Array1<f64>) {
    let c = (0.5 * eps).sqrt();
    Zip::from(out)
        .and(&ga)
        .and(&gb)
        .and(&eta)
        .for_each(|o, &a, &b, &n| *o = c * (a + b) - n);
}

/// Runs `block` on one row `x` (in place) with noise from `rng` and returns
/// the computation-order path term C of the block and the number of accepted
/// steps. C is ΔS when the block runs forward in time; when it runs from a
/// later to an earlier point (`reverse` paths) the caller negates it. The
/// random numbers consumed per step are fixed (dim normals, plus one uniform
/// for MALA / Metropolis), whatever the parameters or decisions.
pub(crate) fn run_row<T: Target>(
    block: &StochasticBlock,
    energy: &Energy<'_, T>,
    mut x: ArrayViewMut1<f64>,
    rng: &mut Rng,
    w: &mut RowWork,
    mut tape: Option<&mut RowTape>,
) -> (f64, usize) {
    if let Some(t) = tape.as_deref_mut() {
        t.pos.clear();
        t.grad.clear();
        t.noise.clear();
        t.accepted.clear();
    }
    let mut ua = energy.value_and_grad(x.view(), w.ga.view_mut());
    let u_start = ua;
    let record = |t: &mut Option<&mut RowTape>, x: ArrayView1<f64>, g: &Array1<f64>| {
        if let Some(t) = t.as_deref_mut() {
            t.pos.push(x.to_owned());
            t.grad.push(g.clone());
        }
    };
    record(&mut tape, x.view(), &w.ga);
    let mut n_acc = 0;
    match *block {
        StochasticBlock::Langevin(LangevinBlock { steps, eps, mala, .. }) => {
            let s = (2.0 * eps).sqrt();
            let mut c_sum = 0.0;
            for _ in 0..steps {
                fill_normal(w.noise.view_mut(), rng);
                Zip::from(&mut w.prop)
                    .and(&x)
                    .and(&w.ga)
                    .and(&w.noise)
                    .for_each(|p, &a, &g, &n| *p = a - eps * g + s * n);
                let ub = energy.value_and_grad(w.prop.view(), w.gb.view_mut());
                backward_noise(eps, w.ga.view(), w.gb.view(), w.noise.view(), &mut w.eta_t);
                let c = 0.5 * (norm2(w.noise.view()) - norm2(w.eta_t.view()));
                let accept = if mala {
                    let u: f64 = rng.random();
                    let log_ratio = ua - ub + c;
                    ub.is_finite() && log_ratio.is_finite() && u.ln() < log_ratio
                } else {
                    c_sum += c;
                    true
                };
                if accept {
                    x.assign(&w.prop);
                    std::mem::swap(&mut w.ga, &mut w.gb);
                    ua = ub;
                    n_acc += 1;
                }
                if let Some(t) = tape.as_deref_mut() {
                    if mala {
                        t.accepted.push(accept);
                    } else {
                        t.noise.push(w.noise.clone());
                    }
                }
                record(&mut tape, x.view(), &w.ga);
            }
            if mala {
                (ua - u_start, n_acc)
            } else {
                (c_sum, n_acc)
            }
        }
        StochasticBlock::Metropolis(MetropolisBlock { steps, width, .. }) => {
            for _ in 0..steps {
                fill_normal(w.noise.view_mut(), rng);
                let u: f64 = rng.random();
                Zip::from(&mut w.prop)
                    .and(&x)
                    .and(&w.noise)
                    .for_each(|p, &a, &n| *p = a + width * n);
                let ub = energy.value(w.prop.view());
                let accept = ub.is_finite() && u.ln() < ua - ub;
                if accept {
                    x.assign(&w.prop);
                    ua = ub;
                    n_acc += 1;
                }
                if let Some(t) = tape.as_deref_mut() {
                    t.accepted.push(accept);
                }
            }
            if tape.is_some() {
                // ΔS needs ∇u_λ at the block's end point only.
                energy.value_and_grad(x.view(), w.ga.view_mut());
                record(&mut tape, x.view(), &w.ga);
            }
            (ua - u_start, n_acc)
        }
    }
}

/// Reverse mode of [`run_row`] with the noise and decisions of `tape` held
/// fixed: `g` holds ∂L/∂(block output) on entry and ∂L/∂(block input) on
/// exit; `c_bar` = ∂L/∂C.
pub(crate) fn vjp_row<T: HessianVector>(
    block: &StochasticBlock,
    energy: &Energy<'_, T>,
    tape: &RowTape,
    mut g: ArrayViewMut1<f64>,
    c_bar: f64,
    w: &mut RowWork,
) {
    let n = tape.pos.len() - 1;
    match *block {
        StochasticBlock::Langevin(LangevinBlock { eps, mala: false, .. }) => {
            let c = (0.5 * eps).sqrt();
            for t in (0..n).rev() {
                let (a, b) = (&tape.pos[t], &tape.pos[t + 1]);
                let (ga, gb) = (&tape.grad[t], &tape.grad[t + 1]);
                backward_noise(eps, ga.view(), gb.view(), tape.noise[t].view(), &mut w.eta_t);
                // ḡ_a = ḡ_b = √(ε/2) η̃̄ = −c̄ √(ε/2) η̃.
                let gbar = w.eta_t.mapv(|v| -c_bar * c * v);
                energy.hvp(b.view(), gbar.view(), w.prop.view_mut());
                g += &w.prop; // b̄ ← b̄ + H(b) ḡ_b
                Zip::from(&mut w.noise)
                    .and(&gbar)
                    .and(&g)
                    .for_each(|o, &gb_, &bb| *o = gb_ - eps * bb); // ḡ_a − ε b̄
                energy.hvp(a.view(), w.noise.view(), w.prop.view_mut());
                g += &w.prop; // ā = b̄ + H(a) ḡ_a
            }
        }
        StochasticBlock::Langevin(LangevinBlock { eps, mala: true, .. }) => {
            // C = u(end) − u(start).
            g.scaled_add(c_bar, &tape.grad[n]);
            for t in (0..n).rev() {
                if tape.accepted[t] {
                    // b = a − ε∇u(a) + √(2ε)η: ā = b̄ − ε H(a) b̄.
                    energy.hvp(tape.pos[t].view(), g.view(), w.prop.view_mut());
                    g.scaled_add(-eps, &w.prop);
                }
            }
            g.scaled_add(-c_bar, &tape.grad[0]);
        }
        StochasticBlock::Metropolis(_) => {
            // Identity Jacobian with decisions fixed; C = u(end) − u(start).
            g.scaled_add(c_bar, &tape.grad[n]);
            g.scaled_add(-c_bar, &tape.grad[0]);
        }
    }
}

/// Workspace for the rows of one chunk: the tapes of every row.
pub(crate) type BlockTape = Vec<RowTape>;

/// Runs a block on all rows of `xs` in place; adds C to `c_acc`, returns
/// accepted steps, and fills `tape` (one entry per row) when given.
pub(crate) fn run_rows<T: Target>(
    block: &StochasticBlock,
    energy: &Energy<'_, T>,
    xs: &mut Array2<f64>,
    c_acc: &mut Array1<f64>,
    rng: &mut Rng,
    mut tape: Option<&mut BlockTape>,
) -> usize {
    let mut w = RowWork::new(xs.ncols());
    if let Some(t) = tape.as_deref_mut() {
        t.resize_with(xs.nrows(), RowTape::default);
    }
    let mut acc = 0;
    for (i, row) in xs.rows_mut().into_iter().enumerate() {
        let rt = tape.as_deref_mut().map(|t| &mut t[i]);
        let (c, a) = run_row(block, energy, row, rng, &mut w, rt);
        c_acc[i] += c;
        acc += a;
    }
    acc
}
