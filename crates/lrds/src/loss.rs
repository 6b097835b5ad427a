//! The log-variance loss of LRDS on detached paths (docs/THEORY.md §6.14.5,
//! §6.14.7 for several parts).
//!
//! For N paths drawn from the current sampler and then held fixed,
//! ℓᵢ(θ) = log π̃(x₀ⁱ) + Σₖ log q(x_kⁱ | x_{k−1}ⁱ) − log p_T^ref(x_Kⁱ)
//! − Σₖ log p^θ(x_{k−1}ⁱ | x_kⁱ) is the log weight of path i under θ, and
//! L(θ) = (1/N) Σᵢ (ℓᵢ − ℓ̄)², ℓ̄ = (1/N) Σᵢ ℓᵢ. L = 0 exactly when the
//! weights are constant, i.e. when the sampler's path law is the target's
//! (then x₀ ~ π). Because Σᵢ (ℓᵢ − ℓ̄) = 0,
//! ∇L = (2/N) Σᵢ (ℓᵢ − ℓ̄) ∇ℓᵢ = Σᵢ cᵢ ∇ Σₖ log p^θ(path i),
//! cᵢ = −(2/N)(ℓᵢ − ℓ̄): only θ-derivatives of the transition log densities
//! at fixed states, no differentiation through the sampling.
//!
//! A model of several parts (`per_component`) sums one such loss per part
//! over that part's own paths, with its own mean and count; "log π̃" is
//! then the part's target π̃ ρⱼ, given by the caller
//! ([`crate::LrdsModel::log_share`]).

use crate::sampler::{LrdsModel, Paths};
use fieldflow_core::{Par, Target};
use ndarray::Array1;

/// Loss, gradient and the log weights ℓ of the paths.
#[derive(Debug, Clone, PartialEq)]
pub struct LvReport {
    /// L(θ).
    pub loss: f64,
    /// ∇L.
    pub grad: Vec<f64>,
    /// ℓᵢ.
    pub log_w: Vec<f64>,
}

/// log π̃(x₀) of the paths.
pub fn log_target(target: &dyn Target, paths: &Paths, par: Par) -> Array1<f64> {
    let mut lp = Array1::zeros(paths.x0.nrows());
    target.log_prob_batch(paths.x0.view(), lp.view_mut(), par);
    lp
}

/// ℓᵢ(θ) at `params` for fixed paths (kept states), given log π̃(x₀).
pub fn path_log_weights(model: &LrdsModel, params: &[f64], log_p: &Array1<f64>, paths: &Paths, par: Par) -> Vec<f64> {
    let (kern, _) = model.kernel_terms(params, paths, None, par);
    kern.iter()
        .zip(log_p)
        .zip(&paths.log_fixed)
        .map(|((k, p), f)| p + f - k)
        .collect()
}

/// L(θ) = Σⱼ (1/Nⱼ) Σ_{i ∈ j} (ℓᵢ − ℓ̄ⱼ)², one log variance per part
/// (`part[i]`: the part of path i; one part: the plain mean (ℓ − ℓ̄)²).
pub fn log_variance_of(log_w: &[f64], part: &[usize]) -> f64 {
    let (mean, count) = part_means(log_w, part);
    log_w
        .iter()
        .zip(part)
        .map(|(l, &j)| (l - mean[j]) * (l - mean[j]) / count[j])
        .sum()
}

/// Mean and count of ℓ per part.
fn part_means(log_w: &[f64], part: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let k = part.iter().max().map_or(0, |m| m + 1);
    let mut sum = vec![0.0; k];
    let mut count = vec![0.0; k];
    for (l, &j) in log_w.iter().zip(part) {
        sum[j] += l;
        count[j] += 1.0;
    }
    let mean = sum.iter().zip(&count).map(|(s, c)| s / c).collect();
    (mean, count)
}

/// The loss and gradient at the model's parameters for training paths
/// drawn from it, given each path's log target `log_p` (module docs).
pub fn log_variance(model: &LrdsModel, log_p: &Array1<f64>, paths: &Paths, par: Par) -> LvReport {
    let log_w: Vec<f64> = log_p
        .iter()
        .zip(&paths.log_fixed)
        .zip(&paths.log_kernel)
        .map(|((p, f), k)| p + f - k)
        .collect();
    let (mean, count) = part_means(&log_w, &paths.part);
    let coef: Vec<f64> = log_w
        .iter()
        .zip(&paths.part)
        .map(|(l, &j)| -2.0 / count[j] * (l - mean[j]))
        .collect();
    let (_, grad) = model.kernel_terms(&model.params, paths, Some(&coef), par);
    LvReport {
        loss: log_variance_of(&log_w, &paths.part),
        grad,
        log_w,
    }
}
