//! Neutra-MCMC is exact for any flow: with the exact affine flow of a
//! Gaussian log w is the constant log Z and the moments of x are the exact
//! ones; with a random flow the moments are still exact within Γ-method
//! errors (and dropping the Jacobian from the latent density is caught).
//! Blocks are bit-identical for any thread count, for a resumed run and for
//! chains split over processes.

use fieldflow_core::run::{BlockChains, ChainBlock};
use fieldflow_core::{LocalKernel, Par, Seed, Target};
use fieldflow_flowmcmc::{NeutraBlocks, NeutraChain, NeutraState};
use fieldflow_flows::{ActivationKind, Flow, FlowConfig, MaskKind, Pullback, ScaleBound};
use fieldflow_imh::{tune_step, Mala, RandomWalk, StepTuning, SAMPLE_SERIES};
use fieldflow_lattice::{HmcConfig, HmcKernel};
use fieldflow_stats::{gamma_primary, GammaConfig};
use fieldflow_targets::{Covariance, Gaussian, GaussianMixture};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayViewMut1, Axis};
use rand_distr::{Distribution, StandardNormal};

/// Builds a local kernel on a pull-back.
type MakeKernel = for<'a> fn(&'a Pullback<'a>) -> Box<dyn LocalKernel + 'a>;

/// A flow whose couplings have constant scales and shifts (conditioner
/// weights zero, last biases random): x = a ⊙ z + b exactly.
fn constant_affine_flow(d: usize, sigma: f64, seed: u64) -> Flow {
    let mut cfg = FlowConfig::mlp(d, 2, vec![3]);
    cfg.base_sigma = sigma;
    let mut flow = cfg.build(Seed::new(seed)).unwrap();
    let offsets = flow.param_offsets().to_vec();
    let mut rng = Seed::new(seed + 1).rng();
    // The last dense layer of each conditioner outputs (ŝ, t) for the |B|
    // transformed coordinates; its bias is the last 2|B| parameters.
    let n_out = 2 * (d / 2);
    for k in 0..offsets.len() - 1 {
        for p in &mut flow.params_mut()[offsets[k + 1] - n_out..offsets[k + 1]] {
            let e: f64 = StandardNormal.sample(&mut rng);
            *p = 0.7 * e;
        }
    }
    flow
}

/// The exact target of `constant_affine_flow`: its base pushed forward,
/// N(b, diag (σa)²), with x = a ⊙ z + b probed at z = 0 and z = 1.
fn pushed_base(flow: &Flow) -> Gaussian {
    let d = flow.dim();
    let mut zs = Array2::zeros((2, d));
    zs.row_mut(1).fill(1.0);
    let (mut xs, mut lq) = (Array2::zeros((2, d)), Array1::zeros(2));
    flow.forward_batch(zs.view(), xs.view_mut(), lq.view_mut(), Par::serial(2));
    let b = xs.row(0).to_owned();
    let a = &xs.row(1) - &b;
    assert!(
        a.iter().all(|v| (v - 1.0).abs() > 1e-2),
        "the flow must not be trivial: a = {a}"
    );
    let s = flow.base_sigma();
    Gaussian::new(b, Array2::from_diag(&a.mapv(|v| (s * v).powi(2)))).unwrap()
}

/// An affine RealNVP flow with random (untrained) parameters.
fn random_flow(d: usize, seed: u64, gain: f64) -> Flow {
    let mut c = FlowConfig::mlp(d, 4, vec![6]);
    c.mask = MaskKind::Random;
    c.mask_seed = 3;
    c.identity_init = false;
    c.conditioner.activation = ActivationKind::Tanh;
    c.scale_bound = ScaleBound::SoftClamp { c: 1.0 };
    let mut f = c.build(Seed::new(seed)).unwrap();
    f.params_mut().iter_mut().for_each(|v| *v *= gain);
    f
}

/// `blocks` blocks of `k` steps of `chains` chains; returns the blocks.
fn run_blocks(chain: NeutraChain<'_>, chains: usize, blocks: usize, k: usize) -> Vec<ChainBlock> {
    let states = chain.initial_states(chains);
    let mut b = NeutraBlocks::new(chain, states).unwrap();
    (0..blocks).map(|i| b.advance_block(i as u64, k, &|_| {})).collect()
}

/// x of every chain and step, `[chains, steps, dim]`, and a series, `[chains, steps]`.
fn joined(blocks: &[ChainBlock], series: &str) -> (Array3<f64>, Array2<f64>) {
    let configs: Vec<_> = blocks.iter().map(|b| b.configs.view()).collect();
    let values: Vec<Array2<f64>> = blocks
        .iter()
        .map(|b| match b.series(series).unwrap() {
            fieldflow_core::run::Series::F64(_, a) => a.clone(),
            fieldflow_core::run::Series::U8(_, a) => a.mapv(f64::from),
        })
        .collect();
    let views: Vec<_> = values.iter().map(|a| a.view()).collect();
    (
        ndarray::concatenate(Axis(1), &configs).unwrap(),
        ndarray::concatenate(Axis(1), &views).unwrap(),
    )
}

/// Γ-method mean of `f(x)` over the chains (replica), after `burn` steps.
fn mean_of(xs: &Array3<f64>, burn: usize, f: impl Fn(ArrayView1<f64>) -> f64) -> (f64, f64) {
    let replica: Vec<Vec<f64>> = xs
        .outer_iter()
        .map(|chain| chain.outer_iter().skip(burn).map(&f).collect())
        .collect();
    let r = gamma_primary(&replica, &GammaConfig::default()).unwrap();
    (r.value, r.error)
}

/// Means and variances of every coordinate of x against the exact ones
/// within 4σ; returns the largest |deviation|/σ.
fn check_moments(name: &str, xs: &Array3<f64>, burn: usize, mean: ArrayView1<f64>, var: ArrayView1<f64>) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..mean.len() {
        let (m, dm) = mean_of(xs, burn, |x| x[i]);
        let (v, dv) = mean_of(xs, burn, |x| (x[i] - mean[i]).powi(2));
        for (what, got, err, exact) in [("mean", m, dm, mean[i]), ("variance", v, dv, var[i])] {
            let z = (got - exact).abs() / err;
            assert!(
                z < 4.0,
                "{name}: {what} of x_{i} = {got} ± {err}, exact {exact} ({z:.1}σ)"
            );
            worst = worst.max(z);
        }
    }
    worst
}

#[test]
fn exact_flow_has_constant_log_w_and_exact_moments() {
    let (d, sigma) = (4, 0.8);
    let flow = constant_affine_flow(d, sigma, 5);
    let target = pushed_base(&flow);
    let pullback = Pullback::new(&flow, &target).unwrap();
    let kernel = RandomWalk {
        target: &pullback,
        width: 0.9 * sigma,
    };
    let chain = NeutraChain::new(&pullback, &kernel, 2, Seed::new(6)).unwrap();
    let blocks = run_blocks(chain, 8, 2, 1500);
    let (xs, log_w) = joined(&blocks, "log_w");
    let log_z = target.log_z().unwrap();
    let dev = log_w.iter().fold(0.0f64, |m, w| m.max((w - log_z).abs()));
    assert!(dev < 1e-10, "log w − log Z up to {dev:e}");
    let var: Array1<f64> = target.cov().diag().to_owned();
    let worst = check_moments("exact flow", &xs, 0, target.mean(), var.view());
    eprintln!("exact flow: worst deviation {worst:.2}σ");
    let (_, acc) = joined(&blocks, "local_acceptance");
    let rate = acc.mean().unwrap();
    assert!(rate > 0.2 && rate < 0.9, "local acceptance {rate}");
}

fn correlated_gaussian() -> Gaussian {
    Gaussian::new(
        Array1::from(vec![0.7, -0.4]),
        Array2::from_shape_vec((2, 2), vec![1.3, 0.6, 0.6, 0.8]).unwrap(),
    )
    .unwrap()
}

/// The random-flow fixture: an untrained affine flow far from the
/// correlated Gaussian target.
fn random_flow_fixture() -> (Flow, Gaussian) {
    (random_flow(2, 7, 2.0), correlated_gaussian())
}

/// Moments of x from `steps` steps of `chain` started at `states`, against
/// the exact ones of `target` (4σ, 100 steps of burn-in); returns the
/// largest |deviation|/σ.
fn moments_of_run(
    name: &str,
    chain: NeutraChain<'_>,
    states: Vec<NeutraState>,
    steps: usize,
    target: &Gaussian,
) -> f64 {
    let mut blocks = NeutraBlocks::new(chain, states).unwrap();
    let block = blocks.advance_block(0, steps, &|_| {});
    let (xs, log_w) = joined(std::slice::from_ref(&block), "log_w");
    let spread = log_w.std(0.0);
    assert!(
        spread > 0.1,
        "{name}: the flow must be far from exact: std log w = {spread}"
    );
    let var = target.cov().diag().to_owned();
    let worst = check_moments(name, &xs, 100, target.mean(), var.view());
    let (_, acc) = joined(&[block], "local_acceptance");
    eprintln!(
        "{name}: std log w {spread:.3}, local acceptance {:.3}, worst deviation {worst:.2}σ",
        acc.mean().unwrap()
    );
    worst
}

/// [`moments_of_run`] of chains started from their base draws.
fn moments_from_base_draws(name: &str, kernel: MakeKernel, local_steps: usize, steps: usize) -> f64 {
    let (flow, target) = random_flow_fixture();
    let pullback = Pullback::new(&flow, &target).unwrap();
    let kernel = kernel(&pullback);
    let chain = NeutraChain::new(&pullback, kernel.as_ref(), local_steps, Seed::new(8)).unwrap();
    let states = chain.initial_states(8);
    moments_of_run(name, chain, states, steps, &target)
}

#[test]
fn random_flow_still_gives_exact_moments_with_a_random_walk() {
    moments_from_base_draws("random walk", random_walk, 2, 4000);
}

#[test]
fn random_flow_still_gives_exact_moments_with_mala_after_a_step_warm_up() {
    let (flow, target) = random_flow_fixture();
    let pullback = Pullback::new(&flow, &target).unwrap();
    // The warm-up adapts ε toward acceptance 0.57 on the chains' starting
    // points (base draws), which it also thermalizes; the frozen ε then
    // runs the chains from the warmed-up points.
    let fresh = NeutraChain::new(
        &pullback,
        &RandomWalk {
            target: &pullback,
            width: 0.0,
        },
        1,
        Seed::new(8),
    )
    .unwrap()
    .initial_states(8);
    let mut zs: Vec<Vec<f64>> = fresh.into_iter().map(|s| s.z).collect();
    let tuning = StepTuning {
        initial: 0.05,
        target_acceptance: 0.57,
        updates: 300,
    };
    let eps = tune_step(
        |step| Mala {
            target: &pullback,
            step,
        },
        &mut zs,
        tuning,
        Seed::new(30),
    );
    assert!(eps > 0.0 && eps.is_finite(), "tuned step {eps}");
    let kernel = Mala {
        target: &pullback,
        step: eps,
    };
    let chain = NeutraChain::new(&pullback, &kernel, 1, Seed::new(8)).unwrap();
    let states = zs.into_iter().map(|z| chain.state_at(z, 0).unwrap()).collect();
    eprintln!("MALA: tuned step {eps:.4}");
    moments_of_run("MALA", chain, states, 4000, &target);
}

#[test]
fn random_flow_still_gives_exact_moments_with_hmc() {
    moments_from_base_draws("HMC", hmc, 1, 2000);
}

/// The flat density p̃ = 1 (score 0): its pull-back is |det ∂f/∂z| alone.
struct Flat(usize);

impl Target for Flat {
    fn dim(&self) -> usize {
        self.0
    }
    fn log_prob(&self, _x: ArrayView1<f64>) -> f64 {
        0.0
    }
    fn log_prob_and_score(&self, _x: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        score.fill(0.0);
        0.0
    }
    fn describe(&self) -> String {
        "flat".into()
    }
}

/// log p̃(f(z)) without the Jacobian, the wrong latent density: the
/// pull-back of the target minus the pull-back of the flat density.
struct NoJacobian<'a> {
    full: &'a Pullback<'a>,
    jacobian: &'a Pullback<'a>,
}

impl Target for NoJacobian<'_> {
    fn dim(&self) -> usize {
        self.full.dim()
    }
    fn log_prob(&self, z: ArrayView1<f64>) -> f64 {
        self.full.log_prob(z) - self.jacobian.log_prob(z)
    }
    fn log_prob_and_score(&self, z: ArrayView1<f64>, mut score: ArrayViewMut1<f64>) -> f64 {
        let mut jac = Array1::zeros(self.dim());
        let l = self.full.log_prob_and_score(z, score.view_mut()) - self.jacobian.log_prob_and_score(z, jac.view_mut());
        score -= &jac;
        l
    }
    fn describe(&self) -> String {
        "no-jacobian".into()
    }
}

#[test]
fn dropping_the_jacobian_is_detected() {
    // The control of the test above: the same run with the kernel on
    // p̃(f(z)) instead of π̃ must fail the 4σ check by far.
    let flow = random_flow(2, 7, 2.0);
    let target = correlated_gaussian();
    let pullback = Pullback::new(&flow, &target).unwrap();
    let flat = Flat(2);
    let jacobian = Pullback::new(&flow, &flat).unwrap();
    let wrong = NoJacobian {
        full: &pullback,
        jacobian: &jacobian,
    };
    // Its score is the chain rule of log p̃ ∘ f alone: check it once against
    // central differences, so the control is a real density with its score.
    let z = [0.3, -0.7];
    let mut score = Array1::zeros(2);
    wrong.log_prob_and_score(ArrayView1::from(&z[..]), score.view_mut());
    let fd = fieldflow_testkit::central_gradient(|z| wrong.log_prob(ArrayView1::from(z)), &z, 1e-5);
    assert!(
        fieldflow_testkit::rel_err(score.as_slice().unwrap(), &fd) < fieldflow_testkit::FD_REL_TOL,
        "{score} vs {fd:?}"
    );
    let kernel = RandomWalk {
        target: &wrong,
        width: 0.8,
    };
    let chain = NeutraChain::new(&pullback, &kernel, 2, Seed::new(8)).unwrap();
    let blocks = run_blocks(chain, 8, 1, 4000);
    let (xs, _) = joined(&blocks, "log_w");
    let mut worst = 0.0f64;
    for i in 0..2 {
        let mu = target.mean()[i];
        let (m, dm) = mean_of(&xs, 100, |x| x[i]);
        let (v, dv) = mean_of(&xs, 100, |x| (x[i] - mu).powi(2));
        worst = worst
            .max((m - mu).abs() / dm)
            .max((v - target.cov()[[i, i]]).abs() / dv);
    }
    eprintln!("without the Jacobian: worst deviation {worst:.1}σ");
    assert!(worst > 8.0, "a sampler of the wrong density passed: {worst:.1}σ");
}

fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![Array1::from(vec![0.5, -0.5, 0.0]), Array1::from(vec![-0.5, 0.8, 0.4])],
        vec![
            Covariance::Isotropic(0.7),
            Covariance::Diagonal(Array1::from(vec![0.5, 1.0, 0.6])),
        ],
        vec![0.6, 0.4],
    )
    .unwrap()
}

/// The blocks of a 4-chain run of the mixture with a random flow.
fn mixture_run(first: u64, chains: usize, blocks: usize, k: usize, kernel: MakeKernel) -> Vec<ChainBlock> {
    let flow = random_flow(3, 9, 1.5);
    let target = mixture();
    let pullback = Pullback::new(&flow, &target).unwrap();
    let kernel = kernel(&pullback);
    let chain = NeutraChain::new(&pullback, kernel.as_ref(), 3, Seed::new(10))
        .unwrap()
        .with_first_chain(first);
    run_blocks(chain, chains, blocks, k)
}

fn random_walk<'a>(pb: &'a Pullback<'a>) -> Box<dyn LocalKernel + 'a> {
    Box::new(RandomWalk { target: pb, width: 0.7 })
}

/// Every kernel the determinism tests run with.
fn mala<'a>(pb: &'a Pullback<'a>) -> Box<dyn LocalKernel + 'a> {
    Box::new(Mala { target: pb, step: 0.1 })
}

fn hmc<'a>(pb: &'a Pullback<'a>) -> Box<dyn LocalKernel + 'a> {
    Box::new(HmcKernel {
        target: pb,
        hmc: hmc_settings(),
        eps: 0.2,
    })
}

/// Trajectories of length 1 with jitter (5 leapfrog steps before tuning).
fn hmc_settings() -> fieldflow_lattice::Hmc {
    HmcConfig {
        trajectory_length: 1.0,
        n_steps: 5,
        ..HmcConfig::default()
    }
    .validate()
    .unwrap()
}

fn kernels() -> Vec<(&'static str, MakeKernel)> {
    vec![
        ("random walk", random_walk as MakeKernel),
        ("MALA", mala as MakeKernel),
        ("HMC", hmc as MakeKernel),
    ]
}

#[test]
fn blocks_are_bit_identical_for_any_thread_count() {
    for (name, kernel) in kernels() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| mixture_run(0, 4, 2, 30, kernel))
        };
        let one = run(1);
        // Debug text compares bit for bit, NaN series (no proposals) included.
        assert_eq!(format!("{one:?}"), format!("{:?}", run(2)), "{name}: 1 vs 2 threads");
        let names: Vec<&str> = one[0].series.iter().map(|s| s.name()).collect();
        let expected: Vec<&str> = SAMPLE_SERIES.iter().map(|s| s.0).collect();
        assert_eq!(names, expected);
        assert!(one[1].configs != one[0].configs, "{name}: the chains do not move");
    }
}

#[test]
fn resumed_and_split_runs_equal_the_whole_run() {
    for (name, kernel) in kernels() {
        let whole = mixture_run(0, 4, 1, 40, kernel);
        // Two blocks of 20 steps, the second from the first's JSON states.
        let flow = random_flow(3, 9, 1.5);
        let target = mixture();
        let pullback = Pullback::new(&flow, &target).unwrap();
        let k = kernel(&pullback);
        let chain = || NeutraChain::new(&pullback, k.as_ref(), 3, Seed::new(10)).unwrap();
        let first = run_blocks(chain(), 4, 1, 20).remove(0);
        let states: Vec<NeutraState> = first
            .chain_json
            .iter()
            .map(|j| serde_json::from_str(j).unwrap())
            .collect();
        let mut resumed = NeutraBlocks::new(chain(), states).unwrap();
        let second = resumed.advance_block(1, 20, &|_| {});
        for s in SAMPLE_SERIES.iter().map(|s| s.0) {
            let (xw, sw) = joined(&whole, s);
            let (xr, sr) = joined(&[first.clone(), second.clone()], s);
            assert_eq!(xw, xr, "{name}: resumed configurations");
            // Bit for bit, NaN series (no proposals) included.
            assert_eq!(
                sw.mapv(f64::to_bits),
                sr.mapv(f64::to_bits),
                "{name}: resumed series {s}"
            );
        }
        assert_eq!(whole[0].state, second.state);
        assert_eq!(whole[0].chain_json, second.chain_json);
        // Chains 0..2 and 2..4 on two "processes", joined, equal the 4-chain run.
        let parts = vec![
            mixture_run(0, 2, 1, 40, kernel).remove(0),
            mixture_run(2, 2, 1, 40, kernel).remove(0),
        ];
        assert_eq!(
            format!("{:?}", ChainBlock::concatenate(parts).unwrap()),
            format!("{:?}", whole[0]),
            "{name}: split over processes"
        );
    }
}

#[test]
fn bad_settings_are_one_line_errors() {
    let flow = random_flow(2, 7, 1.0);
    let target = correlated_gaussian();
    let pullback = Pullback::new(&flow, &target).unwrap();
    let kernel = RandomWalk {
        target: &pullback,
        width: 0.5,
    };
    let e = NeutraChain::new(&pullback, &kernel, 0, Seed::new(1)).err().unwrap();
    assert_eq!(e.to_string(), "neutra.local_steps = 0: must be >= 1");
    let chain = NeutraChain::new(&pullback, &kernel, 1, Seed::new(1)).unwrap();
    let mut states = chain.initial_states(2);
    states[1].z.push(0.0);
    let e = NeutraBlocks::new(chain, states).err().unwrap();
    assert_eq!(
        e.to_string(),
        "states[1].z = 3 entries: must have the flow's dimension 2"
    );
}
