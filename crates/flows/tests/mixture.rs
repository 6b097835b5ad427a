//! The mixture of flows (docs/THEORY.md §4.11): the component target's
//! score against central finite differences; the exact oracle of a mixture
//! whose components are the target's own; the importance-sampling weights
//! against the exact ones with components that are deliberately wrong; the
//! draws' component frequencies; determinism across thread counts.

use fieldflow_core::{Par, Proposal, ProposalDensity, Seed, Target};
use fieldflow_flows::{Affine, ComponentTarget, FlowConfig, FlowMixture, MixtureConfig};
use fieldflow_targets::mixture::Covariance;
use fieldflow_targets::GaussianMixture;
use fieldflow_testkit::{central_gradient, rel_err, FD_REL_TOL, FD_STEP};
use ndarray::{Array1, Array2, ArrayView1};

const D: usize = 3;

/// 0.7 N(−2·𝟙, 0.3 I) + 0.3 N(2·𝟙, diag(0.2, 0.5, 0.4)).
fn target() -> GaussianMixture {
    GaussianMixture::new(
        vec![Array1::from_elem(D, -2.0), Array1::from_elem(D, 2.0)],
        vec![
            Covariance::Isotropic(0.3),
            Covariance::Diagonal(Array1::from(vec![0.2, 0.5, 0.4])),
        ],
        vec![0.7, 0.3],
    )
    .unwrap()
}

fn mixture(weight_samples: usize) -> FlowMixture {
    mixture_of(weight_samples, Affine::Diagonal, true)
}

/// Two components of 4-layer MLP flows from `Seed::new(3)`.
fn mixture_of(weight_samples: usize, affine: Affine, identity_init: bool) -> FlowMixture {
    let mut flow = FlowConfig::mlp(D, 4, vec![8]);
    flow.identity_init = identity_init;
    FlowMixture::new(
        MixtureConfig {
            components: 2,
            flow,
            weight_samples,
            locate: None,
            affine,
            starts: Vec::new(),
            boundary: None,
        },
        Seed::new(3),
    )
    .unwrap()
}

/// Components exactly the target's (identity flows, exact affine maps).
fn exact(m: &mut FlowMixture) {
    m.set_affine(
        0,
        Array1::from_elem(D, -2.0).view(),
        Array1::from_elem(D, 0.3f64.sqrt()).view(),
    );
    let s1: Array1<f64> = Array1::from(vec![0.2f64, 0.5, 0.4]).mapv(f64::sqrt);
    m.set_affine(1, Array1::from_elem(D, 2.0).view(), s1.view());
}

#[test]
fn component_target_score_matches_finite_differences() {
    let t = target();
    let mut m = mixture(16);
    m.set_affine(
        1,
        Array1::from(vec![1.0, 2.5, 1.5]).view(),
        Array1::from(vec![0.5, 1.5, 0.8]).view(),
    );
    let c = ComponentTarget::new(&t, &m, 1);
    for y in [[0.1, -0.3, 0.7], [1.2, 0.4, -0.9]] {
        let y = Array1::from(y.to_vec());
        let mut g = Array1::zeros(D);
        let lp = c.log_prob_and_score(y.view(), g.view_mut());
        assert!((lp - c.log_prob(y.view())).abs() < 1e-12);
        let fd = central_gradient(|v| c.log_prob(ArrayView1::from(v)), y.as_slice().unwrap(), FD_STEP);
        let e = rel_err(g.as_slice().unwrap(), &fd);
        assert!(e < FD_REL_TOL, "score rel. error {e:e}");
        // The batch path equals the row path.
        let ys = y.clone().insert_axis(ndarray::Axis(0));
        let (mut gs, mut lps) = (Array2::zeros((1, D)), Array1::zeros(1));
        c.log_prob_and_score_batch(ys.view(), gs.view_mut(), lps.view_mut(), Par::serial(4));
        assert!((lps[0] - lp).abs() < 1e-12 && rel_err(gs.row(0).as_slice().unwrap(), g.as_slice().unwrap()) < 1e-14);
    }
    // p̃ₖ(y) = p̃(μ + s ⊙ y) Π s: the same normalizer.
    assert_eq!(c.log_z(), t.log_z());
}

#[test]
fn a_mixture_of_the_targets_components_is_the_target() {
    let t = target();
    let mut m = mixture(16);
    exact(&mut m);
    m.set_weights(&[0.7, 0.3]);
    let n = 200;
    let mut xs = Array2::zeros((n, D));
    let mut lq = Array1::zeros(n);
    m.draw_batch(Seed::new(5), xs.view_mut(), lq.view_mut(), Par::serial(16));
    let mut lp = Array1::zeros(n);
    t.log_prob_batch(xs.view(), lp.view_mut(), Par::serial(16));
    let log_z = t.log_z().unwrap();
    for (a, b) in lq.iter().zip(&lp) {
        assert!((a - (b - log_z)).abs() < 1e-10, "log q {a} vs log p {}", b - log_z);
    }
    // The density at the draws is the density of the draws.
    let mut lq2 = Array1::zeros(n);
    m.log_q_batch(xs.view(), lq2.view_mut(), Par::serial(16));
    assert_eq!(lq, lq2);
}

#[test]
fn importance_weights_are_exact_within_their_errors_with_wrong_components() {
    let t = target();
    let mut m = mixture(4000);
    // Components too wide and off-centre, equal starting weights.
    m.set_affine(0, Array1::from_elem(D, -1.8).view(), Array1::from_elem(D, 0.75).view());
    m.set_affine(1, Array1::from_elem(D, 2.2).view(), Array1::from_elem(D, 0.8).view());
    let est = m.estimate_weights(&t, None, Seed::new(11), Par::serial(64)).unwrap();
    for (w, (e, exact)) in est.weights.iter().zip(est.errors.iter().zip([0.7, 0.3])) {
        assert!((w - exact).abs() < 4.0 * e, "weight {w} ± {e} vs {exact}");
        assert!(*e < 0.01, "error {e} too large to test anything");
    }
    assert!((est.log_z - t.log_z().unwrap()).abs() < 0.05, "log Z {}", est.log_z);
    assert!(est.ess > 0.1 && est.ess < 0.9, "ess {}", est.ess);
    // Exact components: the weights are exact to round-off, so are their
    // (stratified) errors, and the ESS is that of equal allocation,
    // 1/(K Σ πₖ²) = 1/1.16.
    exact(&mut m);
    let est = m.estimate_weights(&t, None, Seed::new(11), Par::serial(64)).unwrap();
    assert!((est.weights[0] - 0.7).abs() < 1e-9 && est.errors[0] < 1e-9, "{est:?}");
    assert!((est.ess - 1.0 / 1.16).abs() < 1e-9, "{est:?}");
}

/// Mode weights from the same draws: two components on mode 0 and a third,
/// wide and centred between the modes, that alone reaches mode 1 and
/// straddles both (as a component on a mode boundary does), so no component
/// weight is mode 1's; the mode weights are still the target's 0.7, 0.3
/// within 4σ with errors below 0.01, sum to 1, and are only computed when
/// the modes are given.
#[test]
fn mode_weights_from_the_weight_draws_are_the_targets_whatever_the_components() {
    let t = target();
    let config = MixtureConfig {
        components: 3,
        ..mixture(8000).config().clone()
    };
    let mut m = FlowMixture::new(config, Seed::new(3)).unwrap();
    m.set_affine(0, Array1::from_elem(D, -1.8).view(), Array1::from_elem(D, 0.75).view());
    m.set_affine(1, Array1::from_elem(D, -2.2).view(), Array1::from_elem(D, 0.6).view());
    m.set_affine(2, Array1::from_elem(D, 1.0).view(), Array1::from_elem(D, 1.3).view());
    let est = m
        .estimate_weights(&t, Some(&t), Seed::new(11), Par::serial(64))
        .unwrap();
    let (w, e) = est.mode_weights.clone().expect("modes were given");
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{w:?}");
    for (k, exact) in [0.7, 0.3].into_iter().enumerate() {
        assert!(
            (w[k] - exact).abs() < 4.0 * e[k] && e[k] < 0.01,
            "mode {k}: {} ± {} vs {exact}",
            w[k],
            e[k]
        );
    }
    assert!(
        est.weights[2] > 0.01,
        "the straddling component carries weight: {est:?}"
    );
    let none = m.estimate_weights(&t, None, Seed::new(11), Par::serial(64)).unwrap();
    assert!(none.mode_weights.is_none());
    assert_eq!(none.weights, est.weights);
}

#[test]
fn draws_follow_the_weights_and_do_not_depend_on_threads() {
    let mut m = mixture(16);
    exact(&mut m);
    m.set_weights(&[0.25, 0.75]);
    let n = 4000;
    let draw = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut xs = Array2::zeros((n, D));
            let mut lq = Array1::zeros(n);
            m.draw_batch(Seed::new(8), xs.view_mut(), lq.view_mut(), Par::default());
            (xs, lq)
        })
    };
    let (xs, lq) = draw(1);
    assert_eq!((xs.clone(), lq.clone()), draw(2));
    let frac = xs.rows().into_iter().filter(|r| r[0] < 0.0).count() as f64 / n as f64;
    let se = (0.25f64 * 0.75 / n as f64).sqrt();
    assert!((frac - 0.25).abs() < 4.0 * se, "component 0 fraction {frac}");
    // Rebuilt from its parts, the mixture is the same.
    let again = FlowMixture::from_parts(m.config().clone(), m.params().to_vec()).unwrap();
    let mut lq2 = Array1::zeros(n);
    again.log_q_batch(xs.view(), lq2.view_mut(), Par::default());
    assert_eq!(lq, lq2);
    assert!(FlowMixture::from_parts(m.config().clone(), vec![0.0; 3]).is_err());
}

/// A 3 × 3 lower Cholesky factor (test helper).
fn chol3(a: &Array2<f64>) -> Array2<f64> {
    let mut l = Array2::<f64>::zeros((D, D));
    for i in 0..D {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[(i, k)] * l[(j, k)]).sum();
            l[(i, j)] = if i == j {
                (a[(i, i)] - s).sqrt()
            } else {
                (a[(i, j)] - s) / l[(j, j)]
            };
        }
    }
    l
}

/// Full (lower-triangular) affine maps x = μ + T y: the map and its
/// inverse round-trip, the component target's score (Tᵀ∇ log p̃) matches
/// central differences, and the density of the draws is the density at
/// the draws; the parameter vector grows by K d(d − 1)/2 and the map
/// family survives the JSON round trip.
#[test]
fn full_affine_maps_invert_and_have_the_exact_score() {
    let t = target();
    // Flows that are not the identity.
    let mut m = mixture_of(16, Affine::Laplace, false);
    assert_eq!(m.layout().len(), mixture(16).layout().len() + 2 * D * (D - 1) / 2);
    let tm = Array2::from_shape_vec((D, D), vec![0.5, 9.0, 9.0, -0.4, 1.5, 9.0, 0.3, 0.7, 0.8]).unwrap();
    m.set_affine_full(1, Array1::from(vec![1.0, 2.5, 1.5]).view(), tm.view());
    let map = m.affine_map(1);
    let y = Array1::from(vec![0.3, -1.1, 0.6]);
    let mut x = [0.0; D];
    map.to_x(y.view(), &mut x);
    // The upper triangle of the given T is ignored.
    let want = [
        1.0 + 0.5 * 0.3,
        2.5 - 0.4 * 0.3 - 1.5 * 1.1,
        1.5 + 0.3 * 0.3 - 0.7 * 1.1 + 0.8 * 0.6,
    ];
    assert!(x.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-14), "{x:?}");
    let mut back = [0.0; D];
    map.to_y(ArrayView1::from(&x), &mut back);
    assert!(back.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-14), "{back:?}");
    let c = ComponentTarget::new(&t, &m, 1);
    let mut g = Array1::zeros(D);
    c.log_prob_and_score(y.view(), g.view_mut());
    let fd = central_gradient(|v| c.log_prob(ArrayView1::from(v)), y.as_slice().unwrap(), FD_STEP);
    let e = rel_err(g.as_slice().unwrap(), &fd);
    assert!(e < FD_REL_TOL, "score rel. error {e:e}");
    let n = 50;
    let (mut xs, mut lq) = (Array2::zeros((n, D)), Array1::zeros(n));
    m.draw_component(1, Seed::new(8), xs.view_mut(), lq.view_mut(), Par::serial(8));
    let mut lq2 = Array1::zeros(n);
    m.component_log_q(1, xs.view(), lq2.view_mut(), Par::serial(8));
    assert!(lq.iter().zip(&lq2).all(|(a, b)| (a - b).abs() < 1e-10));
    let json = serde_json::to_string(m.config()).unwrap();
    assert!(json.contains("\"affine\":\"laplace\""), "{json}");
    let again = FlowMixture::from_parts(serde_json::from_str(&json).unwrap(), m.params().to_vec()).unwrap();
    assert_eq!(again.affine_map(1), map);
}

/// Correlated components, T = chol(Σₖ), identity flows: the mixture is the
/// target exactly (log q = log p to round-off), and so are the
/// importance-sampling weights.
#[test]
fn a_full_map_mixture_of_correlated_components_is_the_target() {
    let covs = [
        Array2::from_shape_vec((D, D), vec![1.0, 0.8, 0.3, 0.8, 1.0, 0.5, 0.3, 0.5, 0.6]).unwrap(),
        Array2::from_shape_vec((D, D), vec![0.4, -0.3, 0.0, -0.3, 0.5, 0.2, 0.0, 0.2, 0.3]).unwrap(),
    ];
    let means = [Array1::from_elem(D, -3.0), Array1::from_elem(D, 3.0)];
    let t = GaussianMixture::new(
        means.to_vec(),
        covs.iter().map(|c| Covariance::Full(c.clone())).collect(),
        vec![0.25, 0.75],
    )
    .unwrap();
    let mut m = mixture_of(64, Affine::Laplace, true);
    for k in 0..2 {
        m.set_affine_full(k, means[k].view(), chol3(&covs[k]).view());
    }
    let est = m.estimate_weights(&t, None, Seed::new(2), Par::serial(16)).unwrap();
    assert!((est.weights[0] - 0.25).abs() < 1e-9 && est.errors[0] < 1e-9, "{est:?}");
    m.set_weights(&est.weights);
    let n = 100;
    let (mut xs, mut lq) = (Array2::zeros((n, D)), Array1::zeros(n));
    m.draw_batch(Seed::new(5), xs.view_mut(), lq.view_mut(), Par::serial(16));
    let mut lp = Array1::zeros(n);
    t.log_prob_batch(xs.view(), lp.view_mut(), Par::serial(16));
    let log_z = t.log_z().unwrap();
    for (a, b) in lq.iter().zip(&lp) {
        assert!((a - (b - log_z)).abs() < 1e-10, "log q {a} vs log p {}", b - log_z);
    }
}
