//! Issue 6's exactness tests: IMH and importance sampling are exact whatever
//! the proposal, so estimates must agree with known answers within errors.

use fieldflow_core::{ExactSampler, IsotropicGaussian, Par, Proposal, ProposalDensity, Seed, Target};
use fieldflow_flows::FlowConfig;
use fieldflow_imh::modes::{chain_mode_weights, raw_mode_weights};
use fieldflow_imh::{importance_sample, ImhChain, ImhConfig, ModeReport};
use fieldflow_lattice::Phi4Config;
use fieldflow_stats::{gamma_primary, GammaConfig};
use fieldflow_targets::{Gaussian, GaussianMixture, Modes};
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand::Rng as _;

/// Configurations of an IMH run, `[chains, n, dim]`, and the acceptance flags.
fn imh(target: &dyn Target, proposal: &dyn Proposal, seed: u64, chains: usize, n: usize) -> (Array3<f64>, Array2<u8>) {
    let chain = ImhChain::new(target, proposal, Seed::new(seed), ImhConfig::default());
    let mut states = chain.initial_states(chains);
    let out = chain.run(&mut states, n, &|_| {});
    (out.configs, out.accepted)
}

#[test]
fn exact_proposal_gives_acceptance_one_ess_one_and_exact_log_z() {
    // Unnormalized N(μ, I) target (log Z = (d/2) log 2π) and the normalized
    // proposal N(μ, I): log w is the constant log Z.
    let d = 3;
    let mean = Array1::from(vec![0.5; d]);
    let target = Gaussian::new(mean, Array2::eye(d)).unwrap();
    let proposal = IsotropicGaussian {
        dim: d,
        mean: 0.5,
        sigma: 1.0,
    };
    let batch = importance_sample(&target, &proposal, Seed::new(1), 4000, Par::default());
    assert!((batch.ess().unwrap() - 1.0).abs() < 1e-12);
    let lz = batch.log_z().unwrap();
    let exact = target.log_z().unwrap();
    assert!((lz.log_z - exact).abs() < 1e-10, "{} vs {exact}", lz.log_z);
    let (_, acc) = imh(&target, &proposal, 2, 2, 2000);
    assert!(acc.iter().all(|&a| a == 1));
}

#[test]
fn free_field_with_untrained_and_perturbed_flows_is_exact() {
    // 4×4 free field, m² = 1: exact χ₂ = 1/(2m²) and log Z (docs/THEORY.md §2.4).
    let target = Phi4Config::standard(&[4, 4], 1.0, 0.0).validate().unwrap();
    let exact_log_z = target.log_z().unwrap();
    let v = 16.0;
    let mut cfg = FlowConfig::tutorial(4);
    cfg.base_sigma = 0.52;
    let untrained = cfg.build(Seed::new(3)).unwrap();
    let mut perturbed = untrained.clone();
    let mut rng = Seed::new(4).rng();
    for p in perturbed.params_mut() {
        *p += 0.02 * (rng.random::<f64>() - 0.5);
    }
    for (name, flow) in [("untrained", &untrained), ("perturbed", &perturbed)] {
        // Importance sampling: log Ẑ within 4σ of the exact log Z.
        let batch = importance_sample(&target, flow, Seed::new(5), 20_000, Par::default());
        let lz = batch.log_z().unwrap();
        let ess = batch.ess().unwrap();
        assert!(
            ess > 0.005 && ess < 0.95,
            "{name}: ESS {ess} (test needs a poor but usable flow)"
        );
        assert!(
            (lz.log_z - exact_log_z).abs() < 4.0 * lz.error,
            "{name}: log Z {} ± {} vs {exact_log_z}",
            lz.log_z,
            lz.error
        );
        // IMH: χ₂ = V⟨M²⟩ within 4σ (Γ-method over 4 chains).
        let (configs, acc) = imh(&target, flow, 6, 4, 15_000);
        let m2: Vec<Vec<f64>> = configs
            .outer_iter()
            .map(|c| c.outer_iter().map(|x| v * (x.sum() / v).powi(2)).collect())
            .collect();
        let r = gamma_primary(&m2, &GammaConfig::default()).unwrap();
        let rate = acc.iter().map(|&a| a as f64).sum::<f64>() / acc.len() as f64;
        assert!(
            rate < 0.9,
            "{name}: acceptance {rate}: the flow is too good for this test"
        );
        assert!(
            (r.value - 0.5).abs() < 4.0 * r.error && r.error < 0.05,
            "{name}: χ₂ {} ± {}",
            r.value,
            r.error
        );
    }
}

/// A normalized mixture used as a proposal (log q = its log density).
struct MixtureProposal(GaussianMixture);

impl Proposal for MixtureProposal {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn draw_batch(&self, seed: Seed, mut xs: ArrayViewMut2<f64>, log_q: ArrayViewMut1<f64>, par: Par) {
        self.0.sample_batch(seed, xs.view_mut(), par);
        self.log_q_batch(xs.view(), log_q, par);
    }
}

impl ProposalDensity for MixtureProposal {
    fn log_q_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        self.0.log_prob_batch(xs, out, par);
    }
}

#[test]
fn mog4_imh_recovers_the_weights_even_when_the_proposal_gets_them_wrong() {
    let target = GaussianMixture::mog4();
    let truth = target.true_weights().unwrap();
    // Same modes, equal weights, slightly too wide: the proposal's own mode
    // weights are off by up to 0.15.
    let means: Vec<Array1<f64>> = (0..4).map(|k| target.mean(k).to_owned()).collect();
    let covs = (0..4).map(|_| fieldflow_targets::Covariance::Isotropic(0.8)).collect();
    let q = MixtureProposal(GaussianMixture::new(means, covs, vec![0.25; 4]).unwrap());
    let (configs, _) = imh(&target, &q, 7, 4, 20_000);
    let labels: Vec<Vec<usize>> = configs.outer_iter().map(|c| target.assign_batch(c)).collect();
    let imh_weights = chain_mode_weights(&labels, 4).unwrap();
    let report = ModeReport::new(imh_weights, &truth);
    assert!(report.max_deviation_sigma < 4.0, "{report:?}");
    assert!(report.estimate.errors.iter().all(|&e| e < 0.01), "{report:?}");
    // The raw proposal draws are visibly wrong (the test is not trivial).
    let batch = importance_sample(&target, &q, Seed::new(8), 20_000, Par::default());
    let raw = ModeReport::new(raw_mode_weights(&target.assign_batch(batch.xs.view()), 4), &truth);
    assert!(raw.max_deviation_sigma > 10.0, "{raw:?}");
}
