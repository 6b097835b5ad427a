//! Many independent Markov chains, advanced in parallel and reproducibly.
//!
//! **Randomness.** Update t (0, 1, 2, …, counting thermalization) of the
//! chain with id c draws all its random numbers from a fresh generator
//! [`update_seed`]`(seed, c, t)` = `seed.child(c).child(t)`. (Note:
//! `seed.child(c).with_stream(t)` would *not* do: `with_stream` replaces the
//! stream index c, so every chain would get the same numbers.) A chain
//! therefore depends on nothing but its own [`ChainState`], which is plain
//! data — the field, the number of updates done, the tuned step size /
//! width and whether thermalization is over — so:
//!
//! * results are bit-identical for any number of rayon threads (chains run
//!   in parallel, each on one thread; nothing is shared);
//! * `advance(n)` followed by `advance(m)` equals `advance(n + m)` bit for
//!   bit, and a run resumes exactly from serialized states.
//!
//! **Thermalization** ([`thermalize`]) runs updates while tuning the step
//! size / width per chain by dual averaging ([`crate::tuning`]) and then
//! freezes the averaged value; **production** ([`advance`]) never tunes.
//!
//! **Records.** With thinning k, update u (counted within the call, from 1) is
//! saved when u is a multiple of k: the field after it, its log p̃, and the
//! `accepted` flag and ΔH of that update; `acceptance` is the mean
//! acceptance fraction of the k updates since the previous save (HMC: the
//! fraction of accepted trajectories; Metropolis: of accepted hits). ΔH is
//! NaN for Metropolis.

use crate::action::Phi4;
use crate::hmc::{trajectory, Hmc, HmcConfig, HmcWorkspace};
use crate::metropolis::{sweep, Metropolis, MetropolisConfig};
use crate::tuning::DualAveraging;
pub use crate::update::UpdateRecord;
use fieldflow_core::{ConfigError, Seed, Target};
use ndarray::{Array2, Array3, ArrayView1, ArrayViewMut1, ArrayViewMut2};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which update algorithm, as written in a config: exactly one of
/// `hmc = {…}` or `metropolis = {…}` (TOML `[algorithm.hmc]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AlgorithmConfig {
    /// Hybrid Monte Carlo.
    Hmc(HmcConfig),
    /// Local Metropolis.
    Metropolis(MetropolisConfig),
}

impl AlgorithmConfig {
    /// Validates the chosen algorithm's settings.
    ///
    /// # Errors
    /// As [`HmcConfig::validate`] / [`MetropolisConfig::validate`].
    pub fn validate(&self) -> Result<Algorithm, ConfigError> {
        Ok(match self {
            AlgorithmConfig::Hmc(c) => Algorithm::Hmc(c.validate()?),
            AlgorithmConfig::Metropolis(c) => Algorithm::Metropolis(c.validate()?),
        })
    }
}

/// A validated update algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    /// Hybrid Monte Carlo.
    Hmc(Hmc),
    /// Local Metropolis.
    Metropolis(Metropolis),
}

impl Algorithm {
    /// Step size (HMC) or width (Metropolis) before tuning.
    pub fn initial_tuned(&self) -> f64 {
        match self {
            Algorithm::Hmc(h) => h.initial_step_size,
            Algorithm::Metropolis(m) => m.initial_width,
        }
    }

    /// Whether thermalization tunes the step size / width.
    pub fn tunes(&self) -> bool {
        match self {
            Algorithm::Hmc(h) => h.tune,
            Algorithm::Metropolis(m) => m.tune,
        }
    }

    /// Target acceptance of the tuning.
    pub fn target_acceptance(&self) -> f64 {
        match self {
            Algorithm::Hmc(h) => h.target_acceptance,
            Algorithm::Metropolis(m) => m.target_acceptance,
        }
    }

    /// A one-line description for provenance.
    pub fn describe(&self) -> String {
        match self {
            Algorithm::Hmc(h) => format!(
                "hmc: integrator = {:?}, trajectory length = {}, initial n_steps = {}, target acceptance = {}, tune = {}",
                h.integrator, h.trajectory_length, h.n_steps, h.target_acceptance, h.tune
            ),
            Algorithm::Metropolis(m) => format!(
                "metropolis: hits = {}, initial width = {}, target acceptance = {}, tune = {}",
                m.hits, m.initial_width, m.target_acceptance, m.tune
            ),
        }
    }
}

/// The complete, resumable state of one chain (plain data, serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    /// Chain id c: selects the random streams `seed.child(c)`.
    pub chain: u64,
    /// Current field, row-major, length V.
    pub phi: Vec<f64>,
    /// Updates done so far (thermalization included): the next update is t = n_updates.
    pub n_updates: u64,
    /// Current step size (HMC) or width (Metropolis).
    pub tuned: f64,
    /// True once [`thermalize`] has frozen `tuned`.
    pub thermalized: bool,
}

/// How fresh chains start.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// φ = 0 everywhere.
    #[default]
    Cold,
    /// φ(x) ~ N(0, σ²) independently.
    Hot {
        /// σ.
        sigma: f64,
    },
}

/// The generator seed of update `t` of chain `chain`: `seed.child(chain).child(t)`.
pub fn update_seed(seed: Seed, chain: u64, t: u64) -> Seed {
    seed.child(chain).child(t)
}

/// `n_chains` fresh chains with ids 0..n_chains and fields of length `dim`;
/// a hot start of chain c draws from `seed.child(c).child(u64::MAX)` (a
/// stream no update uses).
pub fn init_states(n_chains: usize, dim: usize, start: Start, seed: Seed, algorithm: &Algorithm) -> Vec<ChainState> {
    (0..n_chains as u64)
        .map(|c| {
            let phi = match start {
                Start::Cold => vec![0.0; dim],
                Start::Hot { sigma } => {
                    let mut rng = seed.child(c).child(u64::MAX).rng();
                    (0..dim)
                        .map(|_| {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            sigma * z
                        })
                        .collect()
                }
            };
            ChainState {
                chain: c,
                phi,
                n_updates: 0,
                tuned: algorithm.initial_tuned(),
                thermalized: false,
            }
        })
        .collect()
}

/// Per-chain scratch space of an algorithm (allocated once per call).
enum Workspace {
    Hmc(HmcWorkspace),
    Metropolis,
}

impl Workspace {
    fn new(algorithm: &Algorithm, dim: usize) -> Self {
        match algorithm {
            Algorithm::Hmc(_) => Workspace::Hmc(HmcWorkspace::new(dim)),
            Algorithm::Metropolis(_) => Workspace::Metropolis,
        }
    }
}

/// Runs update number `state.n_updates` of one chain with step/width `tuned`.
fn update(
    target: &Phi4,
    algorithm: &Algorithm,
    seed: Seed,
    state: &mut ChainState,
    tuned: f64,
    ws: &mut Workspace,
) -> UpdateRecord {
    let mut rng = update_seed(seed, state.chain, state.n_updates).rng();
    let rec = match (algorithm, ws) {
        (Algorithm::Hmc(h), Workspace::Hmc(w)) => trajectory(target, h, tuned, &mut state.phi, w, &mut rng),
        (Algorithm::Metropolis(m), _) => sweep(target, m, tuned, &mut state.phi, &mut rng),
        (Algorithm::Hmc(_), Workspace::Metropolis) => {
            unreachable!("workspace built for the algorithm")
        }
    };
    state.n_updates += 1;
    rec
}

/// What thermalization did, per chain (index = position in `states`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalizationReport {
    /// Frozen step size / width.
    pub tuned: Vec<f64>,
    /// Mean acceptance over the second half of thermalization.
    pub acceptance: Vec<f64>,
}

fn check_states(target: &Phi4, states: &[ChainState]) {
    for s in states {
        assert_eq!(
            s.phi.len(),
            target.dim(),
            "chain {}: field length differs from V",
            s.chain
        );
    }
}

/// Runs `n_therm` updates on every chain, tuning the step size / width (if
/// the algorithm tunes) toward the target acceptance, then freezes the
/// averaged value in `state.tuned` and marks the chains thermalized.
/// `progress(k)` is called (from any thread) after every k finished updates
/// (k = 1 currently).
///
/// # Panics
/// If a state's field length differs from `target.dim()`.
pub fn thermalize(
    target: &Phi4,
    algorithm: &Algorithm,
    seed: Seed,
    states: &mut [ChainState],
    n_therm: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> ThermalizationReport {
    check_states(target, states);
    let results: Vec<(f64, f64)> = states
        .par_iter_mut()
        .map(|state| {
            let mut ws = Workspace::new(algorithm, target.dim());
            let tune = algorithm.tunes();
            let mut tuner = DualAveraging::new(state.tuned, algorithm.target_acceptance());
            let mut tuned = state.tuned;
            let (mut acc_sum, mut acc_n) = (0.0, 0u64);
            for u in 0..n_therm {
                let rec = update(target, algorithm, seed, state, tuned, &mut ws);
                if tune {
                    tuned = tuner.update(rec.accept_prob);
                }
                if 2 * u >= n_therm {
                    acc_sum += rec.acceptance;
                    acc_n += 1;
                }
                progress(1);
            }
            if tune && n_therm > 0 {
                state.tuned = tuner.final_value();
            }
            state.thermalized = true;
            (state.tuned, if acc_n > 0 { acc_sum / acc_n as f64 } else { f64::NAN })
        })
        .collect();
    ThermalizationReport {
        tuned: results.iter().map(|r| r.0).collect(),
        acceptance: results.iter().map(|r| r.1).collect(),
    }
}

/// Caller-provided output of [`advance`]: `n_saved` records per chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainRecords {
    /// Saved fields, [n_chains, n_saved, V] (reshape the last axis to the lattice shape).
    pub configs: Array3<f64>,
    /// `accepted` of the update that produced each saved field, [n_chains, n_saved].
    pub accepted: Array2<bool>,
    /// ΔH of that update (NaN for Metropolis), [n_chains, n_saved].
    pub delta_h: Array2<f64>,
    /// log p̃ = −S of each saved field, [n_chains, n_saved].
    pub log_p: Array2<f64>,
    /// Mean acceptance fraction of the `thin` updates ending at each save.
    pub acceptance: Array2<f64>,
}

impl ChainRecords {
    /// Zeroed buffers for `n_chains` chains, `n_saved` saves, fields of length `dim`.
    pub fn new(n_chains: usize, n_saved: usize, dim: usize) -> Self {
        ChainRecords {
            configs: Array3::zeros((n_chains, n_saved, dim)),
            accepted: Array2::from_elem((n_chains, n_saved), false),
            delta_h: Array2::zeros((n_chains, n_saved)),
            log_p: Array2::zeros((n_chains, n_saved)),
            acceptance: Array2::zeros((n_chains, n_saved)),
        }
    }

    /// Number of chains.
    pub fn n_chains(&self) -> usize {
        self.configs.dim().0
    }

    /// Saves per chain.
    pub fn n_saved(&self) -> usize {
        self.configs.dim().1
    }
}

/// Runs `out.n_saved() · thin` updates on every chain (no tuning) and saves
/// every `thin`-th field and its records into `out` (row c ↔ `states[c]`).
/// `progress(k)` is called (from any thread) after every k finished updates
/// (k = 1 currently). `thin = 0` is treated as 1.
///
/// # Panics
/// If `out` does not have `states.len()` chains and fields of length V, or a
/// state's field length differs from `target.dim()`.
pub fn advance(
    target: &Phi4,
    algorithm: &Algorithm,
    seed: Seed,
    states: &mut [ChainState],
    thin: u64,
    out: &mut ChainRecords,
    progress: &(dyn Fn(u64) + Sync),
) {
    check_states(target, states);
    let dim = target.dim();
    assert_eq!(
        out.n_chains(),
        states.len(),
        "records and states differ in the number of chains"
    );
    assert_eq!(out.configs.dim().2, dim, "record width differs from V");
    let thin = thin.max(1);
    let rows: Vec<_> = states
        .iter_mut()
        .zip(out.configs.outer_iter_mut())
        .zip(out.accepted.outer_iter_mut())
        .zip(out.delta_h.outer_iter_mut())
        .zip(out.log_p.outer_iter_mut())
        .zip(out.acceptance.outer_iter_mut())
        .map(|(((((s, c), a), d), l), f)| ChainRows {
            state: s,
            configs: c,
            accepted: a,
            delta_h: d,
            log_p: l,
            acceptance: f,
        })
        .collect();
    rows.into_par_iter().for_each(|mut r| {
        let mut ws = Workspace::new(algorithm, dim);
        let tuned = r.state.tuned;
        for k in 0..r.configs.nrows() {
            let mut acc = 0.0;
            let mut rec = None;
            for _ in 0..thin {
                let x = update(target, algorithm, seed, r.state, tuned, &mut ws);
                acc += x.acceptance;
                rec = Some(x);
                progress(1);
            }
            let rec = rec.expect("thin >= 1");
            r.configs.row_mut(k).assign(&ArrayView1::from(&r.state.phi[..]));
            r.accepted[k] = rec.accepted;
            r.delta_h[k] = rec.delta_h;
            r.log_p[k] = rec.log_p;
            r.acceptance[k] = acc / thin as f64;
        }
    });
}

/// One chain's state and output rows.
struct ChainRows<'a> {
    state: &'a mut ChainState,
    configs: ArrayViewMut2<'a, f64>,
    accepted: ArrayViewMut1<'a, bool>,
    delta_h: ArrayViewMut1<'a, f64>,
    log_p: ArrayViewMut1<'a, f64>,
    acceptance: ArrayViewMut1<'a, f64>,
}
