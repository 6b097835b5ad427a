//! Denoising score matching (docs/THEORY.md §6.11.4), its gradient by hand,
//! and its exact population version for a Gaussian target.
//!
//! With t ~ U[t_min, 1], x_t = α_t x₀ + σ_t ε and the weight λ(t) = σ_t²,
//!
//! ℓ(θ) = E (λ/2V) ‖s_θ(x_t, t) + ε/σ_t‖².
//!
//! Its minimizer over all functions is the score of the noised target. For
//! a linear score with multipliers m(t) (spectrum.rs), r = s + ε/σ and
//! ∂ℓ/∂m_k(t) = (λ/V²) Re(x̂_{t,k} conj r̂_k), pushed to the parameters by
//! [`ScoreModel::distribute`] and [`ScoreModel::chain`].
//!
//! The cubic term of [`crate::Architecture::LocalCubic`] adds
//! ∂ℓ/∂c(t) = (λ/V) Σ_i r_i x_{t,i}³.
//! The network of [`crate::Architecture::LocalNet`] is back-propagated with
//! the same r ([`crate::net`]; [`ScoreModel::network_gradient`]).
//!
//! For data x₀ ~ N(0, C), E over x₀ and ε gives
//! ℓ = E_t (λ/2V)[Σ_k (m_k² Σ_k + 2m_k) + V/σ²], Σ_k = α²c_k + σ², whose excess
//! over the exact score is E_t (λ/2V) Σ_k Σ_k (m_k + 1/Σ_k)² and gradient
//! (λ/V)(m_k Σ_k + 1) ([`population`]; the t-average by 3-point
//! Gauss–Legendre on every level interval, exact for the interpolation but
//! not for the schedule's exponentials: a deterministic objective, not a
//! stochastic estimate).

use crate::model::{FieldScore, ScoreModel};
use crate::net::NetWork;
use crate::oracle::GaussianField;
use crate::schedule::NoiseSchedule;
use crate::spectrum::SpectrumWork;
use fieldflow_core::{Par, Seed};
use ndarray::ArrayView2;
use rand::Rng as _;
use rand_distr::StandardNormal;

/// Per-chunk buffers of the DSM gradient.
struct ChunkWork {
    spec: SpectrumWork,
    m: Vec<f64>,
    eps: Vec<f64>,
    xt: Vec<f64>,
    s: Vec<f64>,
    /// ∂m_k/∂K_k(t) of a Gaussian local model.
    f: Vec<f64>,
    net: NetWork,
}

impl ChunkWork {
    fn new(v: usize) -> Self {
        ChunkWork {
            spec: SpectrumWork::default(),
            m: vec![0.0; v],
            eps: vec![0.0; v],
            xt: vec![0.0; v],
            s: vec![0.0; v],
            f: vec![0.0; v],
            net: NetWork::default(),
        }
    }
}

/// The DSM loss of a batch of data (rows) and its gradient with respect to
/// the model's parameters, averaged over rows. Row noise and times come from
/// one stream per chunk of `par`, so the result is bit-identical for any
/// thread count.
pub fn loss_and_gradient(
    model: &ScoreModel,
    schedule: &NoiseSchedule,
    data: ArrayView2<f64>,
    seed: Seed,
    par: Par,
) -> (f64, Vec<f64>) {
    let spectrum = model.spectrum();
    let v = spectrum.volume();
    assert_eq!(data.ncols(), v, "data rows differ from the lattice volume");
    let levels = model.grid().levels;
    let t_min = model.grid().t_min;
    let parts = par.map_chunks(data.nrows(), |chunk, rows| {
        let mut rng = seed.child(chunk as u64).rng();
        let mut w = ChunkWork::new(v);
        let mut mode_grad = vec![0.0; levels * v];
        let mut cubic_grad = vec![0.0; levels];
        // Gradient of the network weights, directly in parameter layout.
        let mut net_grad = vec![
            0.0;
            if model.network().is_some() {
                model.params.len()
            } else {
                0
            }
        ];
        let mut loss = 0.0;
        for row in rows {
            let t = t_min + (1.0 - t_min) * rng.random::<f64>();
            let (alpha, s2) = (schedule.alpha(t), schedule.sigma2(t));
            let sigma = s2.sqrt();
            for e in w.eps.iter_mut() {
                *e = rng.sample(StandardNormal);
            }
            for ((xt, x0), e) in w.xt.iter_mut().zip(data.row(row)).zip(&w.eps) {
                *xt = alpha * x0 + sigma * e;
            }
            // The levels' variables: the multipliers, or a Gaussian model's
            // kernels K_j (then ∂m/∂K(t) per mode, as in `ScoreModel::distribute`).
            let gaussian = model.multipliers_and_factors(t, &mut w.m, &mut w.f);
            spectrum.apply(&w.m, &w.xt, &mut w.s, &mut w.spec);
            let c = model.cubic(t);
            model.add_network(t, &w.xt, &mut w.s, &mut w.net);
            // r = s + ε/σ with s = M x + c x³ + n(x), kept in s.
            for ((s, e), x) in w.s.iter_mut().zip(&w.eps).zip(&w.xt) {
                *s += c * x * x * x + e / sigma;
            }
            let lambda = s2;
            loss += 0.5 * lambda / v as f64 * w.s.iter().map(|r| r * r).sum::<f64>();
            spectrum.forward2(&w.s, &mut w.spec);
            let (j, u) = model.grid().locate(t);
            let scale = lambda / v as f64;
            let factors = gaussian.then_some(&w.f[..]);
            spectrum.accumulate_mode_gradient(scale * (1.0 - u), factors, &mut mode_grad[j * v..(j + 1) * v], &w.spec);
            spectrum.accumulate_mode_gradient(scale * u, factors, &mut mode_grad[(j + 1) * v..(j + 2) * v], &w.spec);
            if !model.is_linear() {
                let g: f64 = w.s.iter().zip(&w.xt).map(|(r, x)| r * x * x * x).sum::<f64>() * scale;
                cubic_grad[j] += (1.0 - u) * g;
                cubic_grad[j + 1] += u * g;
            }
            model.network_gradient(t, &w.s, scale, &mut net_grad, &mut w.net);
        }
        (loss, mode_grad, cubic_grad, net_grad)
    });
    let n = data.nrows().max(1) as f64;
    let mut loss = 0.0;
    let mut mode_grad = vec![0.0; levels * v];
    let mut cubic_grad = vec![0.0; levels];
    let mut grad = vec![0.0; model.params.len()];
    for (l, g, c, ng) in parts {
        for (a, b) in grad.iter_mut().zip(&ng) {
            *a += b;
        }
        loss += l;
        for (a, b) in mode_grad.iter_mut().zip(&g) {
            *a += b;
        }
        for (a, b) in cubic_grad.iter_mut().zip(&c) {
            *a += b;
        }
    }
    mode_grad.iter_mut().for_each(|g| *g /= n);
    cubic_grad.iter_mut().for_each(|g| *g /= n);
    grad.iter_mut().for_each(|g| *g /= n);
    model.chain(&mode_grad, &mut grad);
    model.chain_cubic(&cubic_grad, &mut grad);
    (loss / n, grad)
}

/// 3-point Gauss–Legendre nodes and weights on [0, 1].
const GAUSS3: [(f64, f64); 3] = [
    (0.112_701_665_379_258_3, 5.0 / 18.0),
    (0.5, 8.0 / 18.0),
    (0.887_298_334_620_741_7, 5.0 / 18.0),
];

/// The exact excess DSM loss of `model` for data from `field` (t-averaged
/// by quadrature) and its gradient with respect to the parameters.
///
/// # Panics
/// For a non-linear model (the closed form holds for linear scores).
pub fn population(model: &ScoreModel, schedule: &NoiseSchedule, field: &GaussianField) -> (f64, Vec<f64>) {
    let grid = model.grid();
    let intervals = grid.levels - 1;
    let nodes = (0..intervals).flat_map(|j| {
        let (a, b) = (grid.level(j), grid.level(j + 1));
        GAUSS3.map(|(node, weight)| (a + node * (b - a), weight / intervals as f64))
    });
    population_over(model, schedule, field, nodes)
}

/// The exact excess DSM loss at the single time `t` (no t-average) and its
/// gradient: the objective of one noise level.
pub fn population_at(model: &ScoreModel, schedule: &NoiseSchedule, field: &GaussianField, t: f64) -> (f64, Vec<f64>) {
    population_over(model, schedule, field, [(t, 1.0)])
}

/// Σ over (t, weight) of the excess loss at t, and its gradient.
fn population_over(
    model: &ScoreModel,
    schedule: &NoiseSchedule,
    field: &GaussianField,
    nodes: impl IntoIterator<Item = (f64, f64)>,
) -> (f64, Vec<f64>) {
    assert!(
        model.is_linear(),
        "the population objective is closed-form for linear scores only"
    );
    let v = field.eigenvalues().len();
    let mut mode_grad = vec![0.0; model.grid().levels * v];
    let mut m = vec![0.0; v];
    let mut g = vec![0.0; v];
    let mut excess = 0.0;
    for (t, w) in nodes {
        let (a2, s2) = (schedule.alpha(t).powi(2), schedule.sigma2(t));
        model.multipliers(t, &mut m);
        let lambda = s2;
        let mut e = 0.0;
        for ((gk, &mk), &ck) in g.iter_mut().zip(&m).zip(field.eigenvalues()) {
            let sig = a2 * ck + s2;
            let d = mk + 1.0 / sig;
            e += sig * d * d;
            *gk = lambda / v as f64 * (mk * sig + 1.0);
        }
        excess += w * 0.5 * lambda / v as f64 * e;
        model.distribute(t, w, &g, &mut mode_grad);
    }
    let mut grad = vec![0.0; model.params.len()];
    model.chain(&mode_grad, &mut grad);
    (excess, grad)
}
