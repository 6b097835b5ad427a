//! # fieldflow-slips: stochastic localization via iterative posterior sampling
//!
//! SLIPS (Grenioux, Noble, Gabrié, Durmus, ICML 2024, arXiv 2402.10758) is a
//! learning-free sampler for an unnormalized density p̃ with a score. It
//! follows the observation process of stochastic localization,
//!
//!   Y_t = α(t) X + σ W_t,   X ~ p, W a Brownian motion independent of X,
//!
//! which reveals X as t grows (α(t)²/t → ∞), through its Markovian SDE
//!
//!   dY_t = α′(t) E[X | Y_t] dt + σ dB_t
//!
//! (derivation in docs/THEORY.md §6.12), integrated by Euler–Maruyama on the
//! signal-to-noise-adapted grid t₀ < … < t_K ([`Schedule::snr_grid`]). The
//! denoiser E[X | Y_t = y] is estimated on the fly by MCMC on the posterior
//! p(x | y) ∝ p̃(x) exp(−‖y − α(t) x‖²/(2σ²t)) ([`McmcDenoiser`]), whose chains
//! are warm-started along the path. The output of a particle is its last
//! denoiser estimate E[X | Y_{t_K}] (the paper's choice): at the final
//! signal-to-noise ratio the posterior is narrow, so this is X up to a
//! posterior spread of order σ/g(t_K).
//!
//! **Start (the paper's initialization).** At t₀ > 0 the signal is weak:
//! Y_{t₀} ≈ α(t₀) E\[X\] + σ√t₀ ξ. A particle starts from
//! y ~ N(0, σ²t₀ I) (the target's mean is not known; 0 is the paper's
//! default estimate) and refines it by `init_langevin` unadjusted Langevin
//! steps on the law of Y_{t₀}, whose score (α E[X | y] − y)/(σ²t₀) uses the
//! same denoiser, with step σ²t₀/2. With warm-started chains this start
//! decides the mode: the chains fall into the posterior basin of the mode
//! nearest to y/α(t₀) and stay there, and the particle follows them, so the
//! mode shares are those of the start draw, not the target's (measured per
//! particle: 98–100 %, example `start_decides`; more Langevin steps or the
//! paper's MCMC step rule change nothing; docs/THEORY.md §6.12, and
//! data/experiments/slips/README.md). t₀ is where the paper's "duality of
//! log-concavity" places the start: small enough that the law of Y_{t₀} is
//! close to a Gaussian (easy to start from), large enough that the posterior
//! is concentrated enough for a short MCMC run.
//!
//! **Noise scale.** σ sets the scale of the noise against the target's (the
//! paper's guideline σ² = R²/d + τ² for a target of radius R with modes of
//! width τ). Dividing by σ shows that (σ, α) and (1, α/σ) describe the same
//! process: σ only rescales the signal-to-noise ratio.
//!
//! **Parallelism.** Particles are independent: they run in chunks on the
//! rayon pool ([`Par`]); particle i draws only from the stream
//! `seed.child(i)`, so the samples are bit-identical for any thread count
//! and any split of the particles into blocks.
//!
//! **Start-decided diagnostic.** Each particle also returns its first
//! denoiser estimate, at its start draw ([`SlipsBatch::starts`]). Where the target
//! has modes, the share of particles whose sample lies in the mode of that
//! estimate tells whether the dynamics after the start moved any particle
//! between modes; near 100 % the output weights are those of the start, not
//! the target's (`fieldflow analyze` warns).
//!
//! [`ExactDenoiser`] is the closed-form denoiser of Gaussian mixtures, the
//! oracle of the tests.

pub mod blocks;
pub mod denoiser;
pub mod em;
pub mod posterior;
pub mod schedule;
pub mod start_decided;

pub use blocks::{SlipsBlocks, SlipsSettings, START_MODE};
pub use denoiser::{Denoiser, ExactDenoiser, McmcDenoiser, McmcSettings, McmcState, StepAdaptation};
pub use em::{fit_mixture, EmFit, EmSettings};
pub use posterior::{Observation, Posterior};
pub use schedule::Schedule;
pub use start_decided::StartDecided;

use fieldflow_core::{ConfigError, ExactSampler, Par, Rng, Seed};
use ndarray::Array2;
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The observation process and its integration (crate docs); defaults from
/// the paper's two-modes benchmark settings: geometric (1, 1) schedule,
/// t₀ = 0.1 (log-SNR −2.2), t_K = 1 − 6.62·10⁻³ (log-SNR 5), 1024 steps,
/// 10 initial Langevin steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlipsConfig {
    /// α(t).
    pub schedule: Schedule,
    /// Noise scale σ.
    pub sigma: f64,
    /// Start time t₀ > 0.
    pub t0: f64,
    /// Final time t_K (below the schedule's horizon).
    pub t_end: f64,
    /// Euler–Maruyama steps K.
    pub steps: usize,
    /// Unadjusted Langevin steps on the law of Y_{t₀} at the start.
    pub init_langevin: usize,
    /// How the drift α′(t) E[X | Y_t] is integrated over a step.
    pub integrator: Integrator,
}

/// The drift increment of one Euler–Maruyama step from t to t′ with the
/// denoiser m̂ frozen at t.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrator {
    /// (α(t′) − α(t)) m̂: the drift integrated exactly with m̂ frozen.
    #[default]
    AlphaIncrement,
    /// (t′ − t) α′(t) m̂: plain Euler (the paper's code); first-order error
    /// in the step where α′ varies.
    Euler,
}

impl Default for SlipsConfig {
    fn default() -> Self {
        SlipsConfig {
            schedule: Schedule::default(),
            sigma: 1.0,
            t0: 0.1,
            t_end: 1.0 - 6.62e-3,
            steps: 1024,
            init_langevin: 10,
            integrator: Integrator::AlphaIncrement,
        }
    }
}

impl SlipsConfig {
    /// Checks every field; `field` prefixes the error's field name.
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let f = |name: &str| format!("{field}.{name}");
        self.schedule.validate(&f("schedule"))?;
        if !(self.sigma > 0.0) || !self.sigma.is_finite() {
            return Err(ConfigError::new(f("sigma"), self.sigma, "must be a finite number > 0"));
        }
        if !(self.t0 > 0.0) || !self.t0.is_finite() {
            return Err(ConfigError::new(f("t0"), self.t0, "must be a finite number > 0"));
        }
        let horizon = self.schedule.horizon();
        if !(self.t_end > self.t0 && self.t_end < horizon && self.t_end.is_finite()) {
            return Err(ConfigError::new(
                f("t_end"),
                self.t_end,
                format!("must lie in (t0, {horizon}) (t0 = {})", self.t0),
            ));
        }
        if self.steps == 0 {
            return Err(ConfigError::new(f("steps"), 0, "must be ≥ 1"));
        }
        Ok(())
    }

    /// The observation at time t: α(t) and σ² t.
    pub fn observation(&self, t: f64) -> Observation {
        Observation {
            alpha: self.schedule.alpha(t),
            var: self.sigma * self.sigma * t,
        }
    }
}

/// The SLIPS sampler with a denoiser `D` (crate docs).
pub struct Slips<'a, D: Denoiser> {
    config: SlipsConfig,
    denoiser: &'a D,
    dim: usize,
    grid: Vec<f64>,
    oracle_start: Option<&'a dyn ExactSampler>,
}

/// Per-particle buffers of one chunk of particles.
struct Work<S> {
    state: S,
    y: Vec<f64>,
    mean: Vec<f64>,
}

/// Where one particle's output goes: its sample and its start estimate
/// (rows of [`SlipsBatch::xs`] and [`SlipsBatch::starts`]).
struct Output<'o> {
    x: &'o mut [f64],
    start: &'o mut [f64],
}

impl<'a, D: Denoiser> Slips<'a, D> {
    /// A sampler in dimension `dim`.
    ///
    /// # Errors
    /// If `config` is invalid (field names under `sampler`).
    pub fn new(config: SlipsConfig, denoiser: &'a D, dim: usize) -> Result<Self, ConfigError> {
        config.validate("sampler")?;
        let grid = config.schedule.snr_grid(config.t0, config.t_end, config.steps);
        Ok(Slips {
            config,
            denoiser,
            dim,
            grid,
            oracle_start: None,
        })
    }

    /// A diagnostic, not a sampler: starts every particle from an exact
    /// observation Y_{t₀} = α(t₀) X + σ√t₀ ξ with X drawn by `exact`
    /// (instead of the paper's Gaussian-plus-Langevin start), so the error
    /// of the MCMC denoiser along the path can be told from the error of
    /// the start (data/experiments/slips/README.md).
    pub fn with_oracle_start(mut self, exact: &'a dyn ExactSampler) -> Self {
        self.oracle_start = Some(exact);
        self
    }

    /// The time grid t₀ < … < t_K.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }

    /// Runs one particle with `rng`, writing its sample and its start
    /// estimate into `out`; returns its target evaluations.
    fn particle(&self, work: &mut Work<D::State>, rng: &mut Rng, out: Output<'_>) -> u64 {
        let c = &self.config;
        let Work { state, y, mean } = work;
        self.denoiser.reset(state);
        let mut evaluations = 0;
        // Start: y ~ N(0, σ²t₀ I), then ULA on the law of Y_{t₀}.
        let t0 = self.grid[0];
        let obs = c.observation(t0);
        if let Some(exact) = self.oracle_start {
            // X ~ p into `mean` (as a 1 × d batch) from this particle's stream.
            let seed = Seed::new(rng.next_u64());
            let x = ndarray::ArrayViewMut2::from_shape((1, self.dim), &mut mean[..]).expect("d values");
            exact.sample_batch(seed, x, Par::serial(1));
        } else {
            mean.fill(0.0);
        }
        for (yi, &m) in y.iter_mut().zip(mean.iter()) {
            let xi: f64 = StandardNormal.sample(rng);
            *yi = obs.alpha * m + obs.var.sqrt() * xi;
        }
        let h = 0.5 * obs.var;
        let langevin = if self.oracle_start.is_some() {
            0
        } else {
            c.init_langevin
        };
        // The start estimate is the first call's (the chains settle there).
        let mut start = Some(out.start);
        for _ in 0..langevin {
            evaluations += self.denoiser.denoise(y, obs, state, rng, mean);
            if let Some(s) = start.take() {
                s.copy_from_slice(mean);
            }
            for (yi, &m) in y.iter_mut().zip(mean.iter()) {
                let xi: f64 = StandardNormal.sample(rng);
                let score = (obs.alpha * m - *yi) / obs.var;
                *yi += h * score + (2.0 * h).sqrt() * xi;
            }
        }
        // Euler–Maruyama with the denoiser frozen over the step:
        // y ← y + (α(t′) − α(t)) E[X | y] + σ √(t′ − t) ξ.
        for k in 0..c.steps {
            let (t, t_next) = (self.grid[k], self.grid[k + 1]);
            evaluations += self.denoiser.denoise(y, c.observation(t), state, rng, mean);
            if let Some(s) = start.take() {
                s.copy_from_slice(mean);
            }
            let drift = match c.integrator {
                Integrator::AlphaIncrement => c.schedule.alpha(t_next) - c.schedule.alpha(t),
                Integrator::Euler => (t_next - t) * c.schedule.alpha_dot(t),
            };
            let noise = c.sigma * (t_next - t).sqrt();
            for (yi, &m) in y.iter_mut().zip(mean.iter()) {
                let xi: f64 = StandardNormal.sample(rng);
                *yi += drift * m + noise * xi;
            }
        }
        evaluations += self
            .denoiser
            .denoise(y, c.observation(self.grid[c.steps]), state, rng, out.x);
        evaluations
    }

    /// Samples `n` particles, particle i drawing only from the stream
    /// `seed_of(i)`. Chunks of particles run in parallel per `par`; the
    /// result does not depend on the thread count.
    pub fn sample_with(&self, n: usize, seed_of: impl Fn(usize) -> Seed + Sync, par: Par) -> SlipsBatch {
        let chunks = par.map_chunks(n, |_, range| {
            let mut work = Work {
                state: self.denoiser.new_state(),
                y: vec![0.0; self.dim],
                mean: vec![0.0; self.dim],
            };
            let mut part = SlipsBatch {
                xs: Array2::zeros((range.len(), self.dim)),
                starts: Array2::zeros((range.len(), self.dim)),
                evaluations: Vec::with_capacity(range.len()),
                acceptance: Vec::with_capacity(range.len()),
            };
            for (row, i) in range.enumerate() {
                let mut rng = seed_of(i).rng();
                let contiguous = "rows of a standard array are contiguous";
                let out = Output {
                    x: part.xs.row_mut(row).into_slice().expect(contiguous),
                    start: part.starts.row_mut(row).into_slice().expect(contiguous),
                };
                part.evaluations.push(self.particle(&mut work, &mut rng, out));
                part.acceptance.push(self.denoiser.acceptance(&work.state));
            }
            part
        });
        let mut batch = SlipsBatch {
            xs: Array2::zeros((n, self.dim)),
            starts: Array2::zeros((n, self.dim)),
            evaluations: Vec::with_capacity(n),
            acceptance: Vec::with_capacity(n),
        };
        let mut first = 0;
        for part in chunks {
            let k = part.xs.nrows();
            batch.xs.slice_mut(ndarray::s![first..first + k, ..]).assign(&part.xs);
            batch
                .starts
                .slice_mut(ndarray::s![first..first + k, ..])
                .assign(&part.starts);
            batch.evaluations.extend(part.evaluations);
            batch.acceptance.extend(part.acceptance);
            first += k;
        }
        batch
    }

    /// [`Slips::sample_with`] for particles `first..first + n`, particle i
    /// drawing from `seed.child(i)`.
    pub fn sample(&self, seed: Seed, first: u64, n: usize, par: Par) -> SlipsBatch {
        self.sample_with(n, |i| seed.child(first + i as u64), par)
    }
}

/// The output of [`Slips::sample_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct SlipsBatch {
    /// One sample per row (the particles' last denoiser estimates).
    pub xs: Array2<f64>,
    /// Each particle's first denoiser estimate E[X | Y_{t₀} = y₀], at its
    /// start draw y₀: with MCMC chains, the posterior basin they settled in
    /// (the start-decided diagnostic compares its mode with the sample's).
    pub starts: Array2<f64>,
    /// Target evaluations (log p̃ with the score) of every particle.
    pub evaluations: Vec<u64>,
    /// Mean MCMC acceptance of every particle (NaN for an exact denoiser).
    pub acceptance: Vec<f64>,
}
