//! The settings of `fieldflow sample`: flags, the `[sampler]` table of a
//! config file, the resolved and stored configuration, validation.
//!
//! The common settings are top-level keys of the stored config (and flags);
//! the method-specific ones are the `[sampler]` table ([`SamplerSettings`]),
//! read from `--config FILE` (other tables of the file are ignored, so one
//! run file can hold `[target]`, `[flow]`, `[train]` and `[sampler]`) with
//! the flags `--proposals`, `--local`, `--warmup`, `--rounds` and
//! `--adapted-model` as overrides.

use crate::config;
use anyhow::{bail, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `fieldflow sample`.
#[derive(Args, Debug, Default)]
pub struct SampleArgs {
    /// Trained model file (from `fieldflow train`; for `adaptive` the
    /// starting flow).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples per chain.
    #[arg(long)]
    pub n: Option<u64>,
    /// Independent chains (or independent IS streams).
    #[arg(long)]
    pub chains: Option<u64>,
    /// imh, hybrid, is, isir, global-local, neutra, adaptive or slips.
    #[arg(long)]
    pub method: Option<String>,
    /// Local updates per step (hybrid, global-local, neutra, adaptive).
    #[arg(long)]
    pub local_steps: Option<u64>,
    /// Width / step of the local updates (the warm-up's starting value).
    #[arg(long)]
    pub local_width: Option<f64>,
    /// Proposals evaluated per parallel batch.
    #[arg(long)]
    pub batch: Option<u64>,
    /// TOML file whose `[sampler]` table holds the method's settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// i-SIR proposals per step K (method isir; global = isir).
    #[arg(long)]
    pub proposals: Option<u64>,
    /// Local kernel: mala, hmc, rw (random walk) or metropolis (φ⁴ sweeps).
    #[arg(long)]
    pub local: Option<String>,
    /// Warm-up updates that adapt the local step (0: keep --local-width).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Adaptation rounds (adaptive).
    #[arg(long)]
    pub rounds: Option<u64>,
    /// Where the adapted model is written (adaptive; default OUT with
    /// `.model.h5` in place of its extension).
    #[arg(long)]
    pub adapted_model: Option<PathBuf>,
    /// A mixture of flows proposes with its trained weights (`trained`) or
    /// with equal ones (`equal`: every component drawn alike, for importance
    /// sampling of light modes).
    #[arg(long)]
    pub mixture_weights: Option<String>,
    /// Output, seed, resume, verbosity.
    #[command(flatten)]
    pub run: crate::cmd::run_args::RunArgs,
}

impl SampleArgs {
    /// Whether any setting (anything but the output and verbosity) is given.
    pub(super) fn any_setting(&self) -> bool {
        self.model.is_some()
            || self.n.is_some()
            || self.method.is_some()
            || self.chains.is_some()
            || self.run.seed.is_some()
            || self.batch.is_some()
            || self.local_steps.is_some()
            || self.local_width.is_some()
            || self.config.is_some()
            || self.proposals.is_some()
            || self.local.is_some()
            || self.warmup.is_some()
            || self.rounds.is_some()
            || self.adapted_model.is_some()
            || self.mixture_weights.is_some()
    }
}

/// Sampling methods (docs/THEORY.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Independent Metropolis–Hastings.
    Imh,
    /// Local updates + IMH with the default local kernel (Metropolis
    /// sweeps for φ⁴, a random walk otherwise) at a fixed width.
    Hybrid,
    /// Importance sampling.
    Is,
    /// i-SIR: K flow proposals and the current state, one picked by weight.
    Isir,
    /// Local updates (MALA, HMC, random walk, Metropolis) + a global flow
    /// move (IMH or i-SIR), the local step adapted in a warm-up.
    GlobalLocal,
    /// neutra-MCMC: a local kernel on the flow's pulled-back density.
    Neutra,
    /// Adaptive flow-MCMC: the flow trained on global–local walkers, then
    /// global–local production with the frozen flow.
    Adaptive,
}

impl Method {
    /// The method's name (`--method`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Imh => "imh",
            Method::Hybrid => "hybrid",
            Method::Is => "is",
            Method::Isir => "isir",
            Method::GlobalLocal => "global-local",
            Method::Neutra => "neutra",
            Method::Adaptive => "adaptive",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "imh" => Method::Imh,
            "hybrid" => Method::Hybrid,
            "is" => Method::Is,
            "isir" => Method::Isir,
            "global-local" => Method::GlobalLocal,
            "neutra" => Method::Neutra,
            "adaptive" => Method::Adaptive,
            other => bail!("--method {other}: expected imh, hybrid, is, isir, global-local, neutra, adaptive or slips"),
        })
    }

    /// Whether the method makes local updates.
    pub fn has_local(self) -> bool {
        matches!(
            self,
            Method::Hybrid | Method::GlobalLocal | Method::Neutra | Method::Adaptive
        )
    }

    /// Whether the method needs the model to be a flow (a bijection with
    /// a density), not only a proposal.
    pub fn needs_flow(self) -> bool {
        matches!(self, Method::Neutra | Method::Adaptive)
    }
}

/// The global flow move of global-local and adaptive runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Global {
    /// Independent Metropolis–Hastings.
    #[default]
    Imh,
    /// i-SIR with `proposals` proposals.
    Isir,
}

/// The component weights a mixture of flows proposes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixtureWeights {
    /// The weights estimated in training, πₖ ≈ Zₖ/Z (the proposal closest
    /// to the target: IMH, and importance sampling of the whole target).
    #[default]
    Trained,
    /// πₖ = 1/K: every component drawn alike, log q the balance heuristic
    /// q̄ = (1/K) Σₖ qₖ. Importance sampling then sees a mode of weight
    /// 10⁻¹⁰ in half the draws (K = 2), so its weight gets an error bar;
    /// the price is at most a factor K in the ESS of the heavy modes.
    Equal,
}

impl MixtureWeights {
    /// `trained` or `equal` (the Python API's argument; the CLI reads the
    /// `[sampler]` key through serde).
    ///
    /// # Errors
    /// Any other word, in one line.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "trained" => Ok(MixtureWeights::Trained),
            "equal" => Ok(MixtureWeights::Equal),
            other => bail!("mixture_weights = {other:?}: expected \"trained\" or \"equal\""),
        }
    }
}

/// Local kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalKind {
    /// Metropolis-adjusted Langevin.
    Mala,
    /// Hybrid Monte Carlo trajectories.
    Hmc,
    /// Gaussian random walk on all coordinates.
    Rw,
    /// Checkerboard Metropolis sweeps (lattice φ⁴ only).
    Metropolis,
}

impl LocalKind {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "mala" => LocalKind::Mala,
            "hmc" => LocalKind::Hmc,
            "rw" => LocalKind::Rw,
            "metropolis" => LocalKind::Metropolis,
            other => bail!("--local {other}: expected mala, hmc, rw or metropolis"),
        })
    }

    /// The acceptance the warm-up aims at by default.
    pub(super) fn default_acceptance(self) -> f64 {
        match self {
            LocalKind::Mala => 0.57,
            LocalKind::Hmc => 0.65,
            LocalKind::Rw | LocalKind::Metropolis => 0.3,
        }
    }
}

/// The method-specific settings (`[sampler]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerSettings {
    /// The global move of global-local and adaptive (imh or isir).
    pub global: Global,
    /// i-SIR proposals per step K.
    pub proposals: u64,
    /// Local kernel (default: metropolis for hybrid on φ⁴, rw for hybrid
    /// otherwise; mala for the other methods).
    pub local: Option<LocalKind>,
    /// Warm-up updates adapting the local step (0: keep `local_width`).
    pub warmup: u64,
    /// Acceptance the warm-up aims at (default by kernel: MALA 0.57, HMC
    /// 0.65, random walk and Metropolis 0.3).
    pub target_acceptance: Option<f64>,
    /// HMC trajectory length (in units of the step: the warm-up keeps it).
    pub hmc_length: f64,
    /// Adaptive: walkers (default, resolved when the run starts: 256, or
    /// 8·d above d = 32, where 256 walkers lose the light mode of two modes
    /// in d = 64 on one seed in three; docs/RESULTS.md).
    pub walkers: Option<u64>,
    /// Adaptive: rounds.
    pub rounds: u64,
    /// Adaptive: global–local steps of every walker per round.
    pub steps_per_round: u64,
    /// Adaptive: Adam steps per round.
    pub train_steps: u64,
    /// Adaptive: learning rate (default, resolved when the run starts: the
    /// starting model's own `train.lr` if it was trained, so a trained flow
    /// continues at the rate it learnt with; 3e-3 for an untrained one).
    pub lr: Option<f64>,
    /// Adaptive: minibatch of walkers per Adam step.
    pub train_batch: u64,
    /// Adaptive: weight of the reverse KL added to the forward KL.
    pub w_rkl: f64,
    /// Adaptive: walkers start from N(0, init_sigma² I).
    pub init_sigma: f64,
    /// Adaptive: the adapted model file.
    pub adapted_model: String,
    /// A mixture of flows' component weights (`trained` or `equal`).
    pub mixture_weights: MixtureWeights,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        SamplerSettings {
            global: Global::Imh,
            proposals: 8,
            local: None,
            warmup: 200,
            target_acceptance: None,
            hmc_length: 1.0,
            walkers: None,
            rounds: 40,
            steps_per_round: 10,
            train_steps: 10,
            lr: None,
            train_batch: 256,
            w_rkl: 0.0,
            init_sigma: 3.0,
            adapted_model: String::new(),
            mixture_weights: MixtureWeights::Trained,
        }
    }
}

/// The common settings of a run as given (`None`: the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Given {
    /// Samples per chain (default 10 000).
    pub n: Option<u64>,
    /// Chains (default 4).
    pub chains: Option<u64>,
    /// Proposals per batch (default 256).
    pub batch: Option<u64>,
    /// Local updates per step (default 1 with local moves).
    pub local_steps: Option<u64>,
    /// Local width / starting step (default 0.1; hybrid and no local moves 0.5).
    pub local_width: Option<f64>,
    /// Master seed (default 1).
    pub seed: Option<u64>,
}

/// The resolved configuration of a sample run (stored in the file, with the
/// model's `[phi4]` or `[target]` section appended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Model file.
    pub model: String,
    /// Method.
    pub method: Method,
    /// Samples per chain.
    pub n: u64,
    /// Chains.
    pub chains: u64,
    /// Proposals per batch.
    pub batch: u64,
    /// Steps per chain per write block.
    pub block: u64,
    /// Local updates per step.
    pub local_steps: u64,
    /// Local update width / step (before the warm-up).
    pub local_width: f64,
    /// Master seed.
    pub seed: u64,
    /// Method-specific settings (absent in files of earlier versions).
    #[serde(default)]
    pub sampler: SamplerSettings,
}

/// Steps per chain per write block: the smallest multiple of `batch` from
/// 1000 on. A chain draws its proposals `batch` steps at a time and a new
/// write block starts with a fresh draw of the batch it is in (fieldflow_imh
/// `ImhChain::advance`), so blocks that the batches tile re-draw nothing:
/// with batch 256, blocks of 1000 steps drew 1.25 flow proposals and target
/// evaluations per step used, blocks of 1024 draw 1. The samples do not
/// depend on the block (step t always uses the same random numbers).
fn write_block(batch: u64) -> u64 {
    match batch {
        0 => 1000, // refused by `validate`
        b => b * 1000u64.div_ceil(b),
    }
}

impl SampleConfig {
    /// The flags and `--config` of a new run, resolved with the defaults.
    pub(super) fn resolve(args: &SampleArgs) -> Result<SampleConfig> {
        let method = Method::parse(args.method.as_deref().unwrap_or("imh"))?;
        let model = match (&args.model, method) {
            (Some(m), _) => m.clone(),
            // Adaptive from scratch: the untrained starting flow is written
            // next to the output (`SampleConfig::initial_model`).
            (None, Method::Adaptive) if args.config.is_some() => args.run.out.with_extension("init.h5"),
            (None, Method::Adaptive) => bail!(
                "--model or --config is required: adaptive starts from a model file, or from an untrained flow \
                 for the [target] (or [phi4]) section of --config"
            ),
            (None, _) => bail!("--model is required"),
        };
        let mut table = config::load_table(args.config.as_deref())?;
        let mut sampler_table = match table.remove("sampler") {
            Some(toml::Value::Table(t)) => t,
            Some(other) => bail!("sampler: expected a table, found `{other}`"),
            None => toml::Table::new(),
        };
        if let Some(k) = args.proposals {
            sampler_table.insert("proposals".into(), (k as i64).into());
        }
        if let Some(l) = &args.local {
            LocalKind::parse(l)?;
            sampler_table.insert("local".into(), l.clone().into());
        }
        if let Some(w) = args.warmup {
            sampler_table.insert("warmup".into(), (w as i64).into());
        }
        if let Some(r) = args.rounds {
            sampler_table.insert("rounds".into(), (r as i64).into());
        }
        if let Some(p) = &args.adapted_model {
            sampler_table.insert("adapted_model".into(), p.display().to_string().into());
        }
        if let Some(w) = &args.mixture_weights {
            sampler_table.insert("mixture_weights".into(), w.clone().into());
        }
        let given = Given {
            n: args.n,
            chains: args.chains,
            batch: args.batch,
            local_steps: args.local_steps,
            local_width: args.local_width,
            seed: args.run.seed,
        };
        let adapted = args.run.out.with_extension("model.h5");
        SampleConfig::from_settings(
            method,
            model.display().to_string(),
            &given,
            &sampler_table,
            Some(&adapted),
        )
    }

    /// The configuration of a `method` run of `model` from the common
    /// settings `given` and the `[sampler]` table, with the defaults for
    /// what they leave out (the flags' defaults); `adapted`: where an
    /// adaptive run writes its adapted model unless the table says.
    ///
    /// # Errors
    /// A bad `[sampler]` table (unknown key, wrong type).
    pub fn from_settings(
        method: Method,
        model: String,
        given: &Given,
        sampler_table: &toml::Table,
        adapted: Option<&std::path::Path>,
    ) -> Result<SampleConfig> {
        let mut sampler: SamplerSettings = config::parse(sampler_table, "sampler")?;
        if let (Method::Adaptive, true, Some(p)) = (method, sampler.adapted_model.is_empty(), adapted) {
            sampler.adapted_model = p.display().to_string();
        }
        if method == Method::Hybrid && !sampler_table.contains_key("warmup") {
            // The hybrid method keeps its fixed width (as before warm-ups).
            sampler.warmup = 0;
        }
        let batch = given.batch.unwrap_or(256);
        Ok(SampleConfig {
            model,
            method,
            n: given.n.unwrap_or(10_000),
            chains: given.chains.unwrap_or(4),
            batch,
            block: write_block(batch),
            local_steps: given.local_steps.unwrap_or(if method.has_local() { 1 } else { 0 }),
            local_width: given
                .local_width
                .unwrap_or(if method.has_local() && method != Method::Hybrid {
                    0.1
                } else {
                    0.5
                }),
            seed: given.seed.unwrap_or(1),
            sampler,
        })
    }

    /// Resolves the settings that depend on the model: the adaptive walkers
    /// (on the target's dimension `dim`) and learning rate (`trained_lr`: the
    /// starting model's `train.lr` if it took more than one optimizer step),
    /// so the stored config says what was used.
    pub fn resolve_for_model(&mut self, dim: usize, trained_lr: Option<f64>) {
        if self.method != Method::Adaptive {
            return;
        }
        if self.sampler.walkers.is_none() {
            self.sampler.walkers = Some(if dim > 32 { 8 * dim as u64 } else { 256 });
        }
        if self.sampler.lr.is_none() {
            self.sampler.lr = Some(trained_lr.unwrap_or(3e-3));
        }
    }

    /// The local kernel of this run (`phi4`: the target is lattice φ⁴).
    pub fn local_kind(&self, phi4: bool) -> LocalKind {
        self.sampler.local.unwrap_or(match (self.method, phi4) {
            (Method::Hybrid, true) => LocalKind::Metropolis,
            (Method::Hybrid, false) => LocalKind::Rw,
            _ => LocalKind::Mala,
        })
    }

    /// Refuses invalid settings with a one-line error naming the setting.
    ///
    /// # Errors
    /// A zero count, a non-positive width or rate, an acceptance outside (0, 1).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("n", self.n),
            ("chains", self.chains),
            ("batch", self.batch),
            ("block", self.block),
        ] {
            if v == 0 {
                bail!("{name} = 0: must be > 0");
            }
        }
        if self.method.has_local() && self.local_steps == 0 {
            bail!(
                "local_steps = 0: the {} method needs --local-steps > 0",
                self.method.as_str()
            );
        }
        if !(self.local_width.is_finite() && self.local_width > 0.0) {
            bail!("local_width = {}: must be > 0", self.local_width);
        }
        let s = &self.sampler;
        if s.proposals == 0 {
            bail!("sampler.proposals = 0: i-SIR needs K >= 1 proposals");
        }
        if let Some(a) = s.target_acceptance {
            if !(a > 0.0 && a < 1.0) {
                bail!("sampler.target_acceptance = {a}: must be in (0, 1)");
            }
        }
        if !(s.hmc_length.is_finite() && s.hmc_length > 0.0) {
            bail!("sampler.hmc_length = {}: must be > 0", s.hmc_length);
        }
        if self.method == Method::Adaptive {
            for (name, v) in [
                ("walkers", s.walkers.unwrap_or(1)),
                ("rounds", s.rounds),
                ("steps_per_round", s.steps_per_round),
                ("train_steps", s.train_steps),
                ("train_batch", s.train_batch),
            ] {
                if v == 0 {
                    bail!("sampler.{name} = 0: must be > 0");
                }
            }
            if let Some(lr) = s.lr.filter(|lr| !(lr.is_finite() && *lr > 0.0)) {
                bail!("sampler.lr = {lr}: must be > 0");
            }
            if !(s.w_rkl.is_finite() && s.w_rkl >= 0.0) {
                bail!("sampler.w_rkl = {}: must be >= 0", s.w_rkl);
            }
            if !(s.init_sigma.is_finite() && s.init_sigma > 0.0) {
                bail!("sampler.init_sigma = {}: must be > 0", s.init_sigma);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::write_block;

    #[test]
    fn write_blocks_are_tiled_by_the_proposal_batches() {
        for (batch, block) in [(256, 1024), (250, 1000), (1, 1000), (300, 1200), (5000, 5000)] {
            assert_eq!(write_block(batch), block, "batch {batch}");
        }
    }
}
