//! LRDS: the reference's exact marginals, score and reverse kernels, the
//! log-variance gradient, exactness of the path weights, IS on MOG-4,
//! thread bit-identity and resume.

use fieldflow_core::{Modes, Par, Proposal, Seed, Target};
use fieldflow_diffusion::NoiseSchedule;
use fieldflow_losses::{LossConfig, LossPreset, TrainConfig, TrainData, TrainLoop};
use fieldflow_lrds::loss::log_variance_of;
use fieldflow_lrds::{
    log_target, log_variance, path_log_weights, GmmReference, LaplaceReference, LrdsConfig, LrdsModel, LrdsTrainer,
    PathDraw,
};
use fieldflow_stats::{log_z, self_normalized_mean};
use fieldflow_targets::{Covariance, GaussianMixture};
use fieldflow_testkit::{central_gradient, rel_err};
use ndarray::{array, Array1, Array2, ArrayView1};
use rand::Rng as _;

const VP: NoiseSchedule = NoiseSchedule::VariancePreserving {
    beta_min: 0.1,
    beta_max: 20.0,
};

/// A 3-component mixture in 3 dimensions with full covariances.
fn full_mixture() -> GaussianMixture {
    let covs = [
        array![[1.0, 0.3, 0.1], [0.3, 0.5, -0.2], [0.1, -0.2, 0.8]],
        array![[0.2, 0.05, 0.0], [0.05, 0.3, 0.1], [0.0, 0.1, 0.4]],
        array![[2.0, -0.5, 0.3], [-0.5, 1.0, 0.0], [0.3, 0.0, 0.7]],
    ];
    GaussianMixture::new(
        vec![array![1.0, -2.0, 0.5], array![-1.5, 0.5, 2.0], array![0.0, 3.0, -1.0]],
        covs.into_iter().map(Covariance::Full).collect(),
        vec![0.5, 0.3, 0.2],
    )
    .unwrap()
}

/// The time-t marginal as a mixture (the oracle): means α mⱼ, covariances α²Σⱼ + σ²I.
fn marginal_mixture(m: &GaussianMixture, t: f64) -> GaussianMixture {
    let (a, s2) = (VP.alpha(t), VP.sigma2(t));
    let d = m.dim();
    GaussianMixture::new(
        (0..m.n_components()).map(|j| m.mean(j).to_owned() * a).collect(),
        (0..m.n_components())
            .map(|j| Covariance::Full(m.cov(j) * (a * a) + Array2::<f64>::eye(d) * s2))
            .collect(),
        m.weights().to_vec(),
    )
    .unwrap()
}

#[test]
fn marginals_equal_the_diffused_mixture_and_the_score_its_gradient() {
    let mix = full_mixture();
    let r = GmmReference::new(&mix, VP).unwrap();
    let mut w = r.work();
    for &t in &[0.0, 0.05, 0.3, 1.0] {
        let oracle = marginal_mixture(&mix, t);
        for x in [array![0.3, -0.7, 1.1], array![-2.0, 2.5, 0.1]] {
            let lp = r.log_marginal(t, x.view(), &mut w);
            assert!((lp - oracle.log_prob(x.view())).abs() < 1e-10, "t = {t}");
            let mut score = Array1::zeros(3);
            r.log_marginal_and_score(t, x.view(), score.view_mut(), &mut w);
            let fd = central_gradient(
                |p| r.log_marginal(t, ArrayView1::from(p), &mut r.work()),
                x.as_slice().unwrap(),
                1e-5,
            );
            let e = rel_err(score.as_slice().unwrap(), &fd);
            assert!(e < 1e-6, "score vs FD at t = {t}: {e}");
        }
    }
}

#[test]
fn reverse_kernel_is_bayes_rule_and_its_gradient_matches_fd() {
    // p^ref(x_s | x_t) p_t(x_t) = p_s(x_s) q(x_t | x_s) pointwise.
    let mix = full_mixture();
    let r = GmmReference::new(&mix, VP).unwrap();
    let mut w = r.work();
    for &(s, t) in &[(0.0, 0.03), (0.2, 0.25), (0.6, 1.0)] {
        let xt = [0.4, -1.0, 0.9];
        let xs = [0.7, -1.3, 0.2];
        let lpt = r.prepare(s, t, &xt, &mut w);
        let mut g = vec![0.0; 3];
        let lk = r.log_reverse(&mut w, &xs, Some(&mut g));
        let lps = r.log_marginal(s, ArrayView1::from(&xs[..]), &mut r.work());
        let a = VP.alpha(t) / VP.alpha(s);
        let b2 = 1.0 - a * a;
        let q: f64 = xt
            .iter()
            .zip(&xs)
            .map(|(y, x)| -0.5 * ((2.0 * std::f64::consts::PI * b2).ln() + (y - a * x).powi(2) / b2))
            .sum();
        assert!(
            (lk + lpt - lps - q).abs() < 1e-9,
            "(s, t) = ({s}, {t}): {}",
            lk + lpt - lps - q
        );
        let fd = central_gradient(
            |y| {
                let mut w2 = r.work();
                r.prepare(s, t, &xt, &mut w2);
                r.log_reverse(&mut w2, y, None)
            },
            &xs,
            1e-6,
        );
        let e = rel_err(&g, &fd);
        assert!(e < 1e-6, "kernel gradient vs FD: {e}");
    }
}

/// A small model on `reference` with every parameter random (h ≠ 0), one
/// correction per component with `per_component`.
fn random_model(reference: GmmReference, steps: usize, scale: f64, seed: u64, per_component: bool) -> LrdsModel {
    let cfg = LrdsConfig {
        steps,
        hidden: vec![8],
        per_component,
        ..LrdsConfig::default()
    };
    let mut m = cfg.build_on(reference, Seed::new(seed)).unwrap();
    let mut rng = Seed::new(seed).child(9).rng();
    for p in &mut m.params {
        *p = scale * (rng.random::<f64>() - 0.5);
    }
    m
}

#[test]
fn log_variance_gradient_matches_central_differences() {
    // One correction, and one per component (each part's loss on its own
    // paths against π̃ ρⱼ, summed).
    let target = GaussianMixture::mog4();
    let reference = GaussianMixture::new(
        vec![
            array![-3.5, -4.0],
            array![4.0, -3.0],
            array![-4.0, 4.5],
            array![3.0, 4.0],
        ],
        vec![Covariance::Isotropic(0.8); 4],
        vec![0.25; 4],
    )
    .unwrap();
    for per_component in [false, true] {
        let model = random_model(GmmReference::new(&reference, VP).unwrap(), 5, 1.0, 3, per_component);
        let par = Par::serial(3);
        let paths = model.sample_paths(10, Seed::new(4), par, PathDraw::Training);
        let lp = log_target(&target, &paths, par) + model.log_share(&paths);
        let report = log_variance(&model, &lp, &paths, par);
        // The paths' own log weights are the fixed-path weights at θ.
        let at = path_log_weights(&model, &model.params, &lp, &paths, par);
        assert!(rel_err(&at, &report.log_w) < 1e-12);
        let fd = central_gradient(
            |p| log_variance_of(&path_log_weights(&model, p, &lp, &paths, par), &paths.part),
            &model.params,
            1e-5,
        );
        let e = rel_err(&report.grad, &fd);
        assert!(e < 1e-6, "LV gradient vs FD (per_component {per_component}): {e}");
        for block in report.grad.chunks(model.net().n_params()) {
            assert!(
                block.iter().any(|g| g.abs() > 1e-3),
                "a part whose gradient cannot fail"
            );
        }
    }
}

#[test]
fn per_component_parts_split_the_reference_and_its_responsibilities() {
    // With h = 0 the parts' mixture is the reference's path law exactly (its
    // component label is latent), so the balance density must telescope as
    // the joint model's does: π̃ = μ_ref gives log w = 0 on every path; the
    // parts are drawn with the reference's weights; training paths are
    // stratified; the log shares are the components' responsibilities.
    let mix = full_mixture();
    let model = LrdsConfig {
        steps: 12,
        hidden: vec![8],
        per_component: true,
        ..LrdsConfig::default()
    }
    .build_on(GmmReference::new(&mix, VP).unwrap(), Seed::new(1))
    .unwrap();
    assert_eq!(model.n_parts(), 3);
    let n = 3000;
    let p = model.sample_paths(n, Seed::new(2), Par::default(), PathDraw::Proposal);
    let lw = &log_target(&mix, &p, Par::default()) - &p.log_q();
    let worst = lw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(worst < 1e-8, "max |log w| = {worst}");
    for (j, &w) in mix.weights().iter().enumerate() {
        let f = p.part.iter().filter(|&&k| k == j).count() as f64 / n as f64;
        let sigma = (w * (1.0 - w) / n as f64).sqrt();
        assert!((f - w).abs() < 4.0 * sigma, "part {j}: {f} vs {w}");
    }
    let t = model.sample_paths(7, Seed::new(3), Par::default(), PathDraw::Training);
    assert_eq!(t.part, vec![0, 1, 2, 0, 1, 2, 0]);
    assert!(t.log_balance.is_none());
    let share = model.log_share(&t);
    for ((x, &j), s) in t.x0.rows().into_iter().zip(&t.part).zip(&share) {
        let dens: Vec<f64> = (0..3)
            .map(|k| {
                let one = GaussianMixture::new(
                    vec![mix.mean(k).to_owned()],
                    vec![Covariance::Full(mix.cov(k))],
                    vec![1.0],
                );
                mix.weights()[k] * one.unwrap().log_prob(x).exp()
            })
            .collect();
        let want = (dens[j] / dens.iter().sum::<f64>()).ln();
        assert!((s - want).abs() < 1e-9 * (1.0 + want.abs()), "log ρ {s} vs {want}");
    }
}

#[test]
fn target_equal_to_reference_and_h_zero_gives_constant_log_weights() {
    // With h = 0 the path weight telescopes to π̃(x₀)/μ_ref(x₀); π̃ = μ_ref
    // (normalized) gives log w = log Z = 0 on every path.
    let mix = full_mixture();
    let model = LrdsConfig {
        steps: 12,
        hidden: vec![8],
        ..LrdsConfig::default()
    }
    .build_on(GmmReference::new(&mix, VP).unwrap(), Seed::new(1))
    .unwrap();
    let p = model.sample_paths(200, Seed::new(2), Par::default(), PathDraw::Proposal);
    let lp = log_target(&mix, &p, Par::default());
    let lw = &lp - &p.log_q();
    let worst = lw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(worst < 1e-8, "max |log w| = {worst}");
}

/// MOG-4's means with equal weights ¼ and covariance `var`·I (a reference
/// with the wrong weights).
fn mog4_means_equal_weights(var: f64) -> GaussianMixture {
    GaussianMixture::new(
        vec![
            array![-4.0, -4.0],
            array![4.0, -4.0],
            array![-4.0, 4.0],
            array![4.0, 4.0],
        ],
        vec![Covariance::Isotropic(var); 4],
        vec![0.25; 4],
    )
    .unwrap()
}

#[test]
fn importance_sampling_on_mog4_gives_log_z_and_mode_weights_for_any_correction() {
    // A reference with wrong weights and widths, random corrections h ≠ 0
    // (one, or one per component with the balance density): the path
    // weights are still exact.
    let target = GaussianMixture::mog4();
    let reference = mog4_means_equal_weights(0.9);
    for per_component in [false, true] {
        let model = random_model(GmmReference::new(&reference, VP).unwrap(), 8, 0.6, 7, per_component);
        let n = 6000;
        let p = model.sample_paths(n, Seed::new(11), Par::default(), PathDraw::Proposal);
        let lp = log_target(&target, &p, Par::default());
        let lw: Vec<f64> = (&lp - &p.log_q()).to_vec();
        let z = log_z(&lw).unwrap();
        assert!(
            z.log_z.abs() < 4.0 * z.error,
            "per_component {per_component}: log Z = {} ± {}",
            z.log_z,
            z.error
        );
        // Measured: ESS > 0.2 with one correction, 0.085 with four random ones.
        assert!(
            z.ess > 0.05 && z.ess < 0.99,
            "ESS {} (enough draws, and the correction must matter)",
            z.ess
        );
        let labels = target.assign_batch(p.x0.view());
        for (k, &wk) in target.true_weights().unwrap().iter().enumerate() {
            let ind: Vec<f64> = labels.iter().map(|&l| f64::from(u8::from(l == k))).collect();
            let m = self_normalized_mean(&lw, &ind).unwrap();
            assert!(
                (m.value - wk).abs() < 4.0 * m.error,
                "per_component {per_component}, mode {k}: {} ± {} vs {wk}",
                m.value,
                m.error
            );
        }
    }
}

fn mog4_trainer_setup() -> (GaussianMixture, LrdsModel, TrainConfig) {
    let target = GaussianMixture::mog4();
    let reference = mog4_means_equal_weights(0.7);
    let model = LrdsConfig {
        steps: 8,
        hidden: vec![16],
        ..LrdsConfig::default()
    }
    .build_on(GmmReference::new(&reference, VP).unwrap(), Seed::new(5))
    .unwrap();
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 64, 6, 1e-2);
    cfg.eval_batch = 64;
    cfg.seed = 21;
    (target, model, cfg)
}

#[test]
fn training_is_bit_identical_for_one_and_two_threads_and_resumes() {
    for per_component in [false, true] {
        trains_bit_identically(per_component);
    }
}

fn trains_bit_identically(per_component: bool) {
    let run = |threads: usize, split: Option<u64>| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let (target, mut model, cfg) = mog4_trainer_setup();
                if per_component {
                    let mut c = model.config().clone();
                    c.per_component = true;
                    model = c.build_on(model.reference().clone(), Seed::new(5)).unwrap();
                }
                let par = Par {
                    chunk_rows: 16,
                    parallel: true,
                };
                let mut tr = LrdsTrainer::new(&cfg, model.clone(), &target, TrainData::default(), par).unwrap();
                match split {
                    None => {
                        for _ in 0..cfg.steps {
                            tr.step().unwrap();
                        }
                    }
                    Some(s) => {
                        for _ in 0..s {
                            tr.step().unwrap();
                        }
                        let state = tr.state();
                        let mut tr2 = LrdsTrainer::new(&cfg, model, &target, TrainData::default(), par).unwrap();
                        tr2.restore(state).unwrap();
                        for _ in s..cfg.steps {
                            tr2.step().unwrap();
                        }
                        tr = tr2;
                    }
                }
                let ess = tr.metrics().ess;
                (tr.params().to_vec(), ess)
            })
    };
    let (one, ess1) = run(1, None);
    let (two, ess2) = run(2, None);
    assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(ess1.to_bits(), ess2.to_bits());
    let (resumed, _) = run(2, Some(2));
    assert!(one.iter().zip(&resumed).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(one.iter().any(|p| *p != 0.0), "training moved the last layer");
}

#[test]
fn draws_do_not_depend_on_threads_or_chunking() {
    // One correction, and one per component (parts drawn per path).
    let (_, joint, _) = mog4_trainer_setup();
    let mut split = joint.config().clone();
    split.per_component = true;
    let split = split
        .build_on(
            GmmReference::new(&mog4_means_equal_weights(0.7), VP).unwrap(),
            Seed::new(5),
        )
        .unwrap();
    for model in [joint, split] {
        draws_are_bit_identical(model);
    }
}

fn draws_are_bit_identical(mut model: LrdsModel) {
    let mut rng = Seed::new(3).rng();
    for p in &mut model.params {
        *p += 0.3 * (rng.random::<f64>() - 0.5);
    }
    let draw = |threads: usize, chunk: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut xs = Array2::zeros((37, 2));
                let mut lq = Array1::zeros(37);
                model.draw_batch(
                    Seed::new(9),
                    xs.view_mut(),
                    lq.view_mut(),
                    Par {
                        chunk_rows: chunk,
                        parallel: true,
                    },
                );
                (xs, lq)
            })
    };
    let a = draw(1, 8);
    for b in [draw(2, 8), draw(2, 5)] {
        assert!(a.0.iter().zip(&b.0).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.1.iter().zip(&b.1).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn bad_settings_are_one_line_errors() {
    let r = GmmReference::new(&GaussianMixture::mog4(), VP).unwrap();
    let e = LrdsConfig {
        steps: 0,
        ..LrdsConfig::default()
    }
    .build_on(r.clone(), Seed::new(1))
    .unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
    let e = LrdsConfig {
        t_end: -1.0,
        ..LrdsConfig::default()
    }
    .build_on(r, Seed::new(1))
    .unwrap_err();
    assert!(e.to_string().contains("t_end"), "{e}");
    let ve = NoiseSchedule::VarianceExploding {
        sigma_min: 0.01,
        sigma_max: 10.0,
    };
    let e = GmmReference::new(&GaussianMixture::mog4(), ve).unwrap_err();
    assert!(e.to_string().contains("schedule"), "{e}");
    assert!(!e.to_string().contains('\n'));
    // Frozen parts: only with per_component, some but not all of them.
    for (per_component, frozen, want) in [
        (false, vec![0], "only with per_component"),
        (true, vec![4], "some, not all"),
        (true, vec![0, 1, 2, 3], "some, not all"),
    ] {
        let e = LrdsConfig {
            per_component,
            frozen,
            ..LrdsConfig::default()
        }
        .build_on(GmmReference::new(&GaussianMixture::mog4(), VP).unwrap(), Seed::new(1))
        .unwrap_err();
        assert!(
            e.to_string().starts_with("frozen") && e.to_string().contains(want),
            "{e}"
        );
    }
}

#[test]
fn frozen_parts_are_neither_trained_nor_drawn_for_the_loss() {
    // MOG-4 with one correction per component and part 1 frozen: training
    // paths come from parts 0, 2, 3 in turn; after a few steps every other
    // part's correction has moved and part 1's is still zero (h = 0).
    let (target, _, cfg) = mog4_trainer_setup();
    let model = LrdsConfig {
        steps: 8,
        hidden: vec![16],
        per_component: true,
        frozen: vec![1],
        ..LrdsConfig::default()
    }
    .build_on(
        GmmReference::new(&mog4_means_equal_weights(0.7), VP).unwrap(),
        Seed::new(5),
    )
    .unwrap();
    let t = model.sample_paths(6, Seed::new(1), Par::default(), PathDraw::Training);
    assert_eq!(t.part, vec![0, 2, 3, 0, 2, 3]);
    let np = model.net().n_params();
    let before = model.params.clone();
    let mut tr = LrdsTrainer::new(&cfg, model, &target, TrainData::default(), Par::default()).unwrap();
    for _ in 0..cfg.steps {
        tr.step().unwrap();
    }
    let after = &tr.model().params;
    for j in 0..4 {
        let moved = after[j * np..(j + 1) * np] != before[j * np..(j + 1) * np];
        assert_eq!(moved, j != 1, "part {j} moved: {moved}");
    }
}

#[test]
fn imh_on_the_path_weights_gives_the_mode_weights() {
    // A reference wider than every target mode (bounded weights) and a
    // random correction: IMH on the path weights reproduces MOG-4's
    // weights within 4σ (Γ-method errors).
    let target = GaussianMixture::mog4();
    let reference = mog4_means_equal_weights(0.9);
    let model = random_model(GmmReference::new(&reference, VP).unwrap(), 8, 0.6, 7, false);
    let chain = fieldflow_imh::ImhChain::new(&target, &model, Seed::new(5), fieldflow_imh::ImhConfig::default());
    let mut states = chain.initial_states(2);
    let n = 6000;
    let run = chain.run(&mut states, n, &|_| {});
    let exact = target.true_weights().unwrap();
    for (k, &wk) in exact.iter().enumerate() {
        let series: Vec<Vec<f64>> = (0..2)
            .map(|c| {
                let xs = run.configs.index_axis(ndarray::Axis(0), c);
                target
                    .assign_batch(xs)
                    .iter()
                    .map(|&l| f64::from(u8::from(l == k)))
                    .collect()
            })
            .collect();
        let g = fieldflow_stats::gamma_primary(&series, &fieldflow_stats::GammaConfig::default()).unwrap();
        assert!(
            (g.value - wk).abs() < 4.0 * g.error,
            "mode {k}: {} ± {} vs {wk}",
            g.value,
            g.error
        );
    }
}

#[test]
fn training_moves_mass_toward_the_target_mode_weights() {
    // Two modes (d = 4) with a reference of the right means and widths but
    // weights ½, ½: the untrained sampler puts half of its draws in each
    // mode; training by the log-variance loss moves draws toward ⅔, ⅓.
    let target = GaussianMixture::two_modes(4).unwrap();
    let reference = GaussianMixture::new(
        vec![Array1::from_elem(4, -2.0 / 3.0), Array1::from_elem(4, 4.0 / 3.0)],
        vec![Covariance::Isotropic(0.05); 2],
        vec![0.5, 0.5],
    )
    .unwrap();
    let model = LrdsConfig {
        steps: 16,
        hidden: vec![32, 32],
        ..LrdsConfig::default()
    }
    .build_on(GmmReference::new(&reference, VP).unwrap(), Seed::new(1))
    .unwrap();
    let fraction = |m: &LrdsModel| {
        let p = m.sample_paths(4000, Seed::new(77), Par::default(), PathDraw::Proposal);
        target.mode_fractions(p.x0.view())[0]
    };
    let before = fraction(&model);
    let mut cfg = TrainConfig::new(LossConfig::preset(LossPreset::Rkl), 256, 150, 1e-2);
    cfg.seed = 4;
    let mut tr = LrdsTrainer::new(&cfg, model, &target, TrainData::default(), Par::default()).unwrap();
    let first = tr.evaluate(0).total;
    for _ in 0..cfg.steps {
        tr.step().unwrap();
    }
    let last = tr.evaluate(cfg.steps).total;
    let after = fraction(tr.model());
    eprintln!("mode-0 fraction {before} → {after}; loss {first} → {last}");
    // Binomial error of a fraction of 4000 draws: ≤ 0.008.
    let sigma = (0.25f64 / 4000.0).sqrt();
    assert!((before - 0.5).abs() < 4.0 * sigma, "untrained fraction {before}");
    assert!(
        after - before > 4.0 * sigma * 2f64.sqrt(),
        "fraction {before} → {after}"
    );
    assert!(last < first, "log-variance loss {first} → {last}");
}

#[test]
fn the_reference_is_fitted_to_walkers_on_the_modes() {
    // EM on MALA walker end points finds MOG-4's four means (within 0.3).
    let target = GaussianMixture::mog4();
    let mut cfg = LrdsConfig {
        walkers: 512,
        walker_sigma: 5.0,
        ..LrdsConfig::default()
    };
    cfg.fit_reference(&target, Some(&target), Seed::new(3)).unwrap();
    let fit = cfg.reference.as_ref().unwrap();
    assert_eq!(fit.weights.len(), 4);
    for k in 0..4 {
        let m = target.mean(k);
        let nearest = fit
            .means
            .iter()
            .map(|f| f.iter().zip(m).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt())
            .fold(f64::INFINITY, f64::min);
        assert!(nearest < 0.3, "mode {k}: nearest fitted mean at {nearest}");
    }
    // Given, the reference is kept as is.
    let before = cfg.reference.clone();
    cfg.fit_reference(&target, Some(&target), Seed::new(4)).unwrap();
    assert_eq!(cfg.reference, before);
    assert!(cfg.build(Seed::new(1)).is_ok());
}

#[test]
fn the_laplace_reference_is_each_modes_gaussian_with_equal_weights() {
    // Two well-separated Gaussians: Newton from c·𝟙 reaches each mean and
    // the inverse Hessian there is the component's covariance (the other
    // component's share of the density is e^{-50}); weights ½, ½ whatever
    // the target's (⅔, ⅓).
    let c0 = array![[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]];
    let c1 = array![[0.4, 0.0, 0.1], [0.0, 0.6, 0.0], [0.1, 0.0, 0.3]];
    let target = GaussianMixture::new(
        vec![array![5.0, 5.0, 5.0], array![-5.0, -5.0, -5.0]],
        vec![Covariance::Full(c0.clone()), Covariance::Full(c1.clone())],
        vec![2.0 / 3.0, 1.0 / 3.0],
    )
    .unwrap();
    let mut cfg = LrdsConfig {
        laplace: Some(LaplaceReference {
            starts: vec![4.0, -4.0],
            boundary: None,
        }),
        ..LrdsConfig::default()
    };
    cfg.fit_reference(&target, None, Seed::new(1)).unwrap();
    let r = cfg.reference.as_ref().unwrap();
    assert_eq!(r.weights, vec![0.5, 0.5]);
    for (k, (c, m)) in [(c0, 5.0), (c1, -5.0)].iter().enumerate() {
        assert!(r.means[k].iter().all(|v| (v - m).abs() < 1e-8), "{:?}", r.means[k]);
        for i in 0..3 {
            for j in 0..3 {
                assert!(
                    (r.covs[k][i][j] - c[(i, j)]).abs() < 1e-6,
                    "cov {k} ({i},{j}): {}",
                    r.covs[k][i][j]
                );
                assert_eq!(r.covs[k][i][j].to_bits(), r.covs[k][j][i].to_bits());
            }
        }
    }
    // Bad settings are one-line errors naming the key.
    for (l, components, key) in [
        (vec![], None, "laplace.starts"),
        (vec![f64::NAN], None, "laplace.starts"),
        (vec![4.0, -4.0], Some(3), "components"),
        (vec![4.0, 4.5], None, "laplace.starts"),
    ] {
        let mut bad = LrdsConfig {
            components,
            laplace: Some(LaplaceReference {
                starts: l,
                boundary: None,
            }),
            ..LrdsConfig::default()
        };
        let e = bad.fit_reference(&target, None, Seed::new(1)).unwrap_err();
        assert!(e.to_string().contains(key) && !e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn the_laplace_reference_with_a_boundary_weighs_the_tilted_chains_light_mode() {
    // The 1D φ⁴ chain at b = 0.075: its light mode (middle site ≥ 0, weight
    // e^{-22}) is mostly the heavy phase dipping through zero at the middle.
    // The untrained sampler (h = 0) draws the reference exactly; with the
    // boundary's Gaussian, importance sampling gives ln(w₊/w₋) within 4σ of
    // the transfer operator; with the two phases' Gaussians alone it is
    // far off (their ratio is the phases' free-energy difference).
    let target = fieldflow_targets::Phi4Field1d::new(100, 0.1, 20.0, 0.075).unwrap();
    let exact = target.true_weights().unwrap();
    let exact_ratio = (exact[1] / exact[0]).ln();
    let ratio = |boundary: Option<fieldflow_flows::Boundary>| {
        let mut cfg = LrdsConfig {
            laplace: Some(LaplaceReference {
                starts: vec![1.0, -1.0],
                boundary,
            }),
            ..LrdsConfig::default()
        };
        cfg.fit_reference(&target, Some(&target), Seed::new(1)).unwrap();
        let model = cfg.build(Seed::new(1)).unwrap();
        let p = model.sample_paths(3000, Seed::new(2), Par::default(), PathDraw::Proposal);
        let lw: Vec<f64> = (&log_target(&target, &p, Par::default()) - &p.log_q()).to_vec();
        let plus: Vec<f64> = target
            .assign_batch(p.x0.view())
            .iter()
            .map(|&l| f64::from(u8::from(l == 1)))
            .collect();
        let m = self_normalized_mean(&lw, &plus).unwrap();
        // ln(w/(1 − w)) and its delta-method error.
        ((m.value / (1.0 - m.value)).ln(), m.error / (m.value * (1.0 - m.value)))
    };
    let (with, err) = ratio(Some(fieldflow_flows::Boundary { site: 49, value: 0.0 }));
    assert!(
        (with - exact_ratio).abs() < 4.0 * err && err < 0.2,
        "with the boundary: {with} ± {err} vs {exact_ratio}"
    );
    let (without, err) = ratio(None);
    assert!(
        (without - exact_ratio).abs() > 10.0 * err.max(0.05),
        "two phases alone: {without} ± {err} vs {exact_ratio}"
    );
}
