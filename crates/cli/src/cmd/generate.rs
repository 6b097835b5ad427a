//! `fieldflow generate`: MCMC ensembles of lattice φ⁴ (HMC or local Metropolis).
//!
//! The configuration comes from a TOML file (`--config`, see data/configs/)
//! and/or flags; flags override single keys. Configurations are written in
//! blocks of `block` per chain, each followed by a checkpoint and a flush, to
//! `OUT.partial`, renamed to OUT at the end. A killed or interrupted run
//! continues with `--resume` and produces exactly the file an uninterrupted
//! run would have produced: update t of chain c always uses the random stream
//! `seed.child(c).child(t)`, so the chains' state (field, update counter,
//! frozen step size) is all a resume needs.

use crate::blocks::append_block;
use crate::blocks::{write_blocks, BlockData, Series};
use crate::config::{self, parse_shape};
use crate::interrupt;
use crate::interrupt::Interrupted;
use crate::mpi_dist::{Dist, Gathered};
use crate::output::check_new_output;
use crate::progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use fieldflow_core::{ConfigError, Seed, Target};
use fieldflow_io::{EnsembleSpec, EnsembleWriter, FileKind, Header, SeriesSpec};
use fieldflow_lattice::{advance, init_states, thermalize, Algorithm, AlgorithmConfig, ChainRecords, ChainState};
use fieldflow_lattice::{Phi4, Phi4Config, Start};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `fieldflow generate`.
#[derive(Args, Debug, Default)]
pub struct GenerateArgs {
    /// TOML config (data/configs/*.toml); flags below override its keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Lattice extents, e.g. 16x16.
    #[arg(long)]
    pub lattice: Option<String>,
    /// Bare mass squared m² (standard form).
    #[arg(long, allow_hyphen_values = true)]
    pub m2: Option<f64>,
    /// Quartic coupling λ (standard form).
    #[arg(long, allow_hyphen_values = true)]
    pub lambda: Option<f64>,
    /// Hopping parameter κ (hopping form).
    #[arg(long, allow_hyphen_values = true)]
    pub kappa: Option<f64>,
    /// Quartic coupling λ̂ (hopping form).
    #[arg(long, allow_hyphen_values = true)]
    pub lambda_hat: Option<f64>,
    /// Update algorithm: hmc or metropolis.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Thermalization updates per chain (step size tuned here only).
    #[arg(long)]
    pub n_therm: Option<u64>,
    /// Saved configurations per chain.
    #[arg(long)]
    pub n_cfg: Option<u64>,
    /// Updates between saved configurations.
    #[arg(long)]
    pub thin: Option<u64>,
    /// Independent chains.
    #[arg(long)]
    pub chains: Option<u64>,
    /// Master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output ensemble file.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output file (only once the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Continue the interrupted run whose unfinished file is OUT.partial.
    #[arg(long)]
    pub resume: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The resolved configuration of a `generate` run (stored in the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Master seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Independent chains.
    #[serde(default = "default_chains")]
    pub chains: u64,
    /// Thermalization updates per chain.
    #[serde(default = "default_n_therm")]
    pub n_therm: u64,
    /// Saved configurations per chain.
    #[serde(default = "default_n_cfg")]
    pub n_cfg: u64,
    /// Updates between saves.
    #[serde(default = "one")]
    pub thin: u64,
    /// Saved configurations per chain per write block (checkpoint interval).
    #[serde(default = "default_block")]
    pub block: u64,
    /// How chains start.
    #[serde(default)]
    pub start: Start,
    /// The φ⁴ model.
    pub phi4: Phi4Config,
    /// Update algorithm (`[algorithm.hmc]` or `[algorithm.metropolis]`).
    #[serde(default = "default_algorithm")]
    pub algorithm: AlgorithmConfig,
}

fn default_seed() -> u64 {
    1
}
fn default_chains() -> u64 {
    4
}
fn default_n_therm() -> u64 {
    500
}
fn default_n_cfg() -> u64 {
    1000
}
fn one() -> u64 {
    1
}
fn default_block() -> u64 {
    100
}
fn default_algorithm() -> AlgorithmConfig {
    AlgorithmConfig::Hmc(Default::default())
}

/// A validated run.
pub struct Resolved {
    /// The config as stored in the file.
    pub config: GenerateConfig,
    /// The target.
    pub target: Phi4,
    /// The algorithm.
    pub algorithm: Algorithm,
}

impl GenerateConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        let target = self.phi4.validate()?;
        let algorithm = self.algorithm.validate()?;
        for (name, v) in [
            ("chains", self.chains),
            ("n_cfg", self.n_cfg),
            ("thin", self.thin),
            ("block", self.block),
        ] {
            if v == 0 {
                return Err(ConfigError::new(name, v, "must be > 0"));
            }
        }
        if let Start::Hot { sigma } = self.start {
            if !(sigma > 0.0 && sigma.is_finite()) {
                return Err(ConfigError::new("start.hot.sigma", sigma, "must be > 0"));
            }
        }
        Ok(Resolved {
            config: self.clone(),
            target,
            algorithm,
        })
    }
}

/// Builds the config table from `--config` and the flags.
fn resolve(args: &GenerateArgs) -> Result<GenerateConfig> {
    let mut t = config::load_table(args.config.as_deref())?;
    if let Some(l) = &args.lattice {
        let shape: Vec<i64> = parse_shape(l)?.into_iter().map(|v| v as i64).collect();
        config::set(&mut t, "phi4.lattice", shape);
    }
    let standard = args.m2.is_some() || args.lambda.is_some();
    let hopping = args.kappa.is_some() || args.lambda_hat.is_some();
    if standard && hopping {
        bail!("--m2/--lambda and --kappa/--lambda-hat are two forms of the couplings: give one");
    }
    let forms = [
        ("m2", args.m2),
        ("lambda", args.lambda),
        ("kappa", args.kappa),
        ("lambda_hat", args.lambda_hat),
    ];
    for (i, (key, v)) in forms.iter().enumerate() {
        if let Some(v) = v {
            config::set(&mut t, &format!("phi4.{key}"), *v);
            // A flag in one form replaces the file's couplings of the other form.
            let others = if i < 2 { &forms[2..] } else { &forms[..2] };
            for (k, _) in others {
                config::remove(&mut t, &format!("phi4.{k}"));
            }
        }
    }
    if let Some(a) = &args.algorithm {
        let a = a.to_lowercase();
        if a != "hmc" && a != "metropolis" {
            bail!("--algorithm {a}: expected hmc or metropolis");
        }
        let keep = t.get("algorithm").and_then(|v| v.get(&a)).cloned();
        let mut alg = toml::Table::new();
        alg.insert(
            a.clone(),
            keep.unwrap_or_else(|| toml::Value::Table(toml::Table::new())),
        );
        t.insert("algorithm".into(), toml::Value::Table(alg));
    }
    for (key, v) in [
        ("n_therm", args.n_therm),
        ("n_cfg", args.n_cfg),
        ("thin", args.thin),
        ("chains", args.chains),
        ("seed", args.seed),
    ] {
        if let Some(v) = v {
            config::set(&mut t, key, i64::try_from(v).context("value too large")?);
        }
    }
    if !t.contains_key("phi4") {
        bail!("no model given: pass --config FILE or --lattice, --m2 and --lambda");
    }
    config::parse(&t, "generate")
}

/// Per-step series of an ensemble file.
fn spec(n_chains: usize, shape: &[usize]) -> EnsembleSpec {
    EnsembleSpec::new(n_chains, shape.to_vec())
        .with_series(SeriesSpec::f64("log_p"))
        .with_series(SeriesSpec::u8("accepted"))
        .with_series(SeriesSpec::f64("delta_h"))
        .with_series(SeriesSpec::f64("acceptance"))
}

/// Runs `fieldflow generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    interrupt::install();
    let dist = Dist::init()?;
    if dist.is_parallel() {
        let r = run_parallel(&args, &dist);
        return dist.finish(r);
    }
    let (mut writer, resolved, mut states) = if args.resume {
        let any_setting = args.config.is_some()
            || args.lattice.is_some()
            || args.m2.is_some()
            || args.lambda.is_some()
            || args.kappa.is_some()
            || args.lambda_hat.is_some()
            || args.algorithm.is_some()
            || args.n_therm.is_some()
            || args.n_cfg.is_some()
            || args.thin.is_some()
            || args.chains.is_some()
            || args.seed.is_some();
        if any_setting {
            bail!(
                "--resume continues with the configuration stored in {}.partial; pass only --out",
                args.out.display()
            );
        }
        let (writer, resumed) = EnsembleWriter::resume(&args.out, args.force)?;
        let config: GenerateConfig = toml::from_str(&resumed.header.config).map_err(|e| {
            anyhow::anyhow!(
                "{}: stored config unreadable: {}",
                args.out.display(),
                config::one_line(&e.to_string())
            )
        })?;
        let resolved = config.validate()?;
        let states = match resumed.checkpoint {
            Some(cp) => serde_json::from_str::<Vec<ChainState>>(&cp.chains)
                .with_context(|| format!("{}: checkpoint unreadable", args.out.display()))?,
            None => Vec::new(),
        };
        (writer, resolved, states)
    } else {
        let config = resolve(&args)?;
        let resolved = config.validate()?;
        check_new_output(&args.out, args.force)?;
        let c = &resolved.config;
        let header = Header::new(
            FileKind::Ensemble,
            toml::to_string(c)?,
            c.seed,
            resolved.target.describe(),
        )
        .with_attr("algorithm", resolved.algorithm.describe());
        let writer = EnsembleWriter::create(
            &args.out,
            &header,
            &spec(c.chains as usize, &c.phi4.lattice),
            args.force,
        )?;
        (writer, resolved, Vec::new())
    };
    let summary = generate(&mut writer, &resolved, &mut states, args.quiet)?;
    let path = writer.finish()?;
    if !args.quiet {
        crate::output::emit(&summary.render(&path));
    }
    Ok(())
}

/// What a finished run prints.
pub struct GenerateSummary {
    /// Mean acceptance over all saved updates.
    pub acceptance: f64,
    /// ⟨ΔH⟩ (NaN for Metropolis).
    pub mean_delta_h: f64,
    /// ⟨e^{−ΔH}⟩ with its Γ-method error (NaN for Metropolis).
    pub exp_delta_h: (f64, f64),
    /// Frozen step size / width per chain.
    pub tuned: Vec<f64>,
    /// Seconds per update (all chains, wall clock / updates per chain).
    pub seconds_per_update: f64,
}

impl GenerateSummary {
    fn render(&self, path: &Path) -> String {
        let tuned: Vec<String> = self.tuned.iter().map(|t| format!("{t:.4}")).collect();
        let mut s = format!(
            "wrote {}\nacceptance        {:.4}\ntuned step/width  {}\n",
            path.display(),
            self.acceptance,
            tuned.join(" ")
        );
        if self.mean_delta_h.is_finite() {
            s += &format!(
                "<dH>              {:.5}\n<exp(-dH)>        {:.5} +- {:.5}  (Creutz: 1)\n",
                self.mean_delta_h, self.exp_delta_h.0, self.exp_delta_h.1
            );
        }
        s += &format!(
            "time per update   {:.3} ms (wall clock, chains in parallel)",
            1e3 * self.seconds_per_update
        );
        s
    }
}

/// Thermalizes (unless the states already are) and writes the remaining
/// blocks; returns the run's summary.
pub fn generate(
    writer: &mut EnsembleWriter,
    r: &Resolved,
    states: &mut Vec<ChainState>,
    quiet: bool,
) -> Result<GenerateSummary> {
    let c = &r.config;
    let seed = Seed::new(c.seed);
    let n_chains = c.chains as usize;
    let start = Instant::now();
    if states.is_empty() {
        *states = init_states(n_chains, r.target.dim(), c.start, seed, &r.algorithm);
    }
    if !states[0].thermalized {
        let pb = progress::bar(c.n_therm * c.chains, "therm");
        if quiet {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        thermalize(&r.target, &r.algorithm, seed, states, c.n_therm, &|k| pb.inc(k));
        pb.finish_and_clear();
    }
    let tuned: Vec<f64> = states.iter().map(|s| s.tuned).collect();
    let total = c.n_cfg as usize;
    let pb = progress::bar((total - writer.n_cfg()) as u64 * c.thin * c.chains, "generate");
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t_run = Instant::now();
    let mut updates = 0u64;
    let mut stats = AcceptanceStats::default();
    let dim = r.target.dim();
    let produce = |k: usize| -> Result<BlockData> {
        let mut rec = ChainRecords::new(n_chains, k, dim);
        advance(&r.target, &r.algorithm, seed, states, c.thin, &mut rec, &|u| pb.inc(u));
        updates += k as u64 * c.thin;
        stats.add(&rec);
        pb.set_message(format!("acc {:.3}", stats.acceptance()));
        Ok(BlockData {
            state: ndarray::Array2::from_shape_fn((n_chains, dim), |(i, j)| states[i].phi[j]),
            chains_json: serde_json::to_string(&states)?,
            series: vec![
                Series::F64("log_p", rec.log_p),
                Series::U8("accepted", rec.accepted.mapv(u8::from)),
                Series::F64("delta_h", rec.delta_h),
                Series::F64("acceptance", rec.acceptance),
            ],
            configs: rec.configs,
        })
    };
    write_blocks(writer, total, c.block as usize, produce, |_| {}).inspect_err(|_| pb.abandon())?;
    pb.finish_and_clear();
    let secs = t_run.elapsed().as_secs_f64();
    writer.set_attr("seconds", start.elapsed().as_secs_f64())?;
    writer.set_attr("tuned", serde_json::to_string(&tuned)?)?;
    Ok(GenerateSummary {
        acceptance: stats.acceptance(),
        mean_delta_h: stats.mean_delta_h(),
        exp_delta_h: stats.creutz(),
        tuned,
        seconds_per_update: if updates > 0 { secs / updates as f64 } else { f64::NAN },
    })
}

/// Accumulates acceptance and ΔH over the blocks of this run.
#[derive(Default)]
struct AcceptanceStats {
    acceptance: Vec<f64>,
    delta_h: Vec<Vec<f64>>,
}

impl AcceptanceStats {
    fn add(&mut self, rec: &ChainRecords) {
        self.acceptance.extend(rec.acceptance.iter());
        if self.delta_h.is_empty() {
            self.delta_h = vec![Vec::new(); rec.n_chains()];
        }
        for (c, row) in rec.delta_h.outer_iter().enumerate() {
            self.delta_h[c].extend(row.iter().filter(|v| !v.is_nan()));
        }
    }
    fn acceptance(&self) -> f64 {
        self.acceptance.iter().sum::<f64>() / self.acceptance.len().max(1) as f64
    }
    fn mean_delta_h(&self) -> f64 {
        let n: usize = self.delta_h.iter().map(Vec::len).sum();
        if n == 0 {
            return f64::NAN;
        }
        self.delta_h.iter().flatten().sum::<f64>() / n as f64
    }
    /// ⟨e^{−ΔH}⟩ over all chains (replica) with its Γ-method error.
    fn creutz(&self) -> (f64, f64) {
        let replica: Vec<Vec<f64>> = self
            .delta_h
            .iter()
            .filter(|d| d.len() > 1)
            .map(|d| d.iter().map(|x| (-x).exp()).collect())
            .collect();
        if replica.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        match fieldflow_stats::gamma_primary(&replica, &Default::default()) {
            Ok(r) => (r.value, r.error),
            Err(_) => (f64::NAN, f64::NAN),
        }
    }
}

/// `fieldflow generate` on the ranks of an MPI job (docs/MPI.md): rank r
/// runs the contiguous block of chains [`Dist::block`]; chain c's updates
/// use the streams of (seed, c) as in one process, so the file rank 0
/// writes (it gathers every block) is the one-process file whatever the
/// number of ranks.
fn run_parallel(args: &GenerateArgs, dist: &Dist) -> Result<()> {
    if args.resume {
        bail!("--resume is not supported with several MPI ranks: resume with one process (the file is the same)");
    }
    let config = resolve(args)?;
    let resolved = config.validate()?;
    let c = &resolved.config;
    let mut writer = if dist.is_root() {
        let w = check_new_output(&args.out, args.force).and_then(|()| {
            let header = Header::new(
                FileKind::Ensemble,
                toml::to_string(c)?,
                c.seed,
                resolved.target.describe(),
            )
            .with_attr("algorithm", resolved.algorithm.describe());
            Ok(EnsembleWriter::create(
                &args.out,
                &header,
                &spec(c.chains as usize, &c.phi4.lattice),
                args.force,
            )?)
        });
        Some(dist.agree(w)?)
    } else {
        dist.agree(Ok(()))?;
        None
    };
    let quiet = args.quiet || !dist.is_root();
    let summary = generate_parallel(writer.as_mut(), &resolved, quiet, dist)?;
    let path = dist.agree(match writer {
        Some(w) => w.finish().map_err(anyhow::Error::from).map(Some),
        None => Ok(None),
    })?;
    if let (Some(path), false) = (path, quiet) {
        crate::output::emit(&format!("{}\n({} MPI ranks)", summary.render(&path), dist.size()));
    }
    Ok(())
}

/// The block loop of [`generate`] with the chains spread over the ranks.
fn generate_parallel(
    mut writer: Option<&mut EnsembleWriter>,
    r: &Resolved,
    quiet: bool,
    dist: &Dist,
) -> Result<GenerateSummary> {
    let c = &r.config;
    let seed = Seed::new(c.seed);
    let n_chains = c.chains as usize;
    let dim = r.target.dim();
    let start = Instant::now();
    let mine = dist.block(n_chains, dist.rank());
    let mut states: Vec<ChainState> = init_states(n_chains, dim, c.start, seed, &r.algorithm)
        .drain(mine.clone())
        .collect();
    let pb = progress::bar(c.n_therm * mine.len() as u64, "therm");
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    thermalize(&r.target, &r.algorithm, seed, &mut states, c.n_therm, &|k| pb.inc(k));
    pb.finish_and_clear();
    let total = c.n_cfg as usize;
    let pb = progress::bar(total as u64 * c.thin * mine.len() as u64, "generate");
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t_run = Instant::now();
    let mut stats = AcceptanceStats::default();
    let mut all_states: Vec<ChainState> = Vec::new();
    let (mut written, mut blocks) = (0usize, 0usize);
    while written < total {
        let k = (c.block as usize).min(total - written);
        let mut rec = ChainRecords::new(mine.len(), k, dim);
        advance(&r.target, &r.algorithm, seed, &mut states, c.thin, &mut rec, &|u| {
            pb.inc(u)
        });
        let accepted: Vec<f64> = rec.accepted.iter().map(|&a| f64::from(u8::from(a))).collect();
        let mine_arrays = [
            rec.configs.iter().copied().collect::<Vec<f64>>(),
            rec.log_p.iter().copied().collect(),
            rec.delta_h.iter().copied().collect(),
            rec.acceptance.iter().copied().collect(),
            accepted,
        ];
        let views: Vec<&[f64]> = mine_arrays.iter().map(Vec::as_slice).collect();
        let gathered = dist.gather_arrays(&views, &serde_json::to_string(&states)?);
        let appended = match (writer.as_deref_mut(), gathered) {
            (Some(w), Ok(Some(g))) => assemble(g, n_chains, k, dim).and_then(|(full, states)| {
                all_states = states;
                stats.add(&full);
                let data = BlockData {
                    state: ndarray::Array2::from_shape_fn((n_chains, dim), |(i, j)| all_states[i].phi[j]),
                    chains_json: serde_json::to_string(&all_states)?,
                    series: vec![
                        Series::F64("log_p", full.log_p),
                        Series::U8("accepted", full.accepted.mapv(u8::from)),
                        Series::F64("delta_h", full.delta_h),
                        Series::F64("acceptance", full.acceptance),
                    ],
                    configs: full.configs,
                };
                append_block(w, &data)
            }),
            (_, Err(e)) => Err(e),
            _ => Ok(()),
        };
        dist.agree(appended)?;
        written += k;
        blocks += 1;
        pb.set_message(format!("acc {:.3}", stats.acceptance()));
        if dist.any(interrupt::requested() || interrupt::simulated(blocks)) && written < total {
            pb.abandon();
            let partial = writer.as_deref().map(|w| w.partial_path().display().to_string());
            return Err(Interrupted(format!(
                "interrupted: {written} of {total} steps per chain saved in {}; continue with --resume (one process)",
                partial.unwrap_or_default()
            ))
            .into());
        }
    }
    pb.finish_and_clear();
    let secs = t_run.elapsed().as_secs_f64();
    let tuned: Vec<f64> = all_states.iter().map(|s| s.tuned).collect();
    dist.agree(match writer {
        Some(w) => w
            .set_attr("seconds", start.elapsed().as_secs_f64())
            .and_then(|()| w.set_attr("tuned", serde_json::to_string(&tuned).unwrap_or_default()))
            .map_err(anyhow::Error::from),
        None => Ok(()),
    })?;
    let updates = total as u64 * c.thin;
    Ok(GenerateSummary {
        acceptance: stats.acceptance(),
        mean_delta_h: stats.mean_delta_h(),
        exp_delta_h: stats.creutz(),
        tuned,
        seconds_per_update: if updates > 0 { secs / updates as f64 } else { f64::NAN },
    })
}

/// The records and states of all chains from the ranks' gathered messages
/// (arrays: configs, log_p, delta_h, acceptance, accepted as 0/1; JSON: the
/// ranks' chain states).
fn assemble(g: Gathered, n_chains: usize, k: usize, dim: usize) -> Result<(ChainRecords, Vec<ChainState>)> {
    let mut states: Vec<ChainState> = Vec::with_capacity(n_chains);
    for json in &g.json {
        let part: Vec<ChainState> = serde_json::from_str(json).context("MPI block message: chain states unreadable")?;
        states.extend(part);
    }
    if states.len() != n_chains {
        bail!("MPI block message: {} chain states, expected {n_chains}", states.len());
    }
    let shape_err = |_| anyhow::anyhow!("MPI block message: array sizes do not match the block");
    let mut arrays = g.arrays.into_iter();
    let mut next = || arrays.next().context("MPI block message: arrays missing");
    let configs = ndarray::Array3::from_shape_vec((n_chains, k, dim), next()?).map_err(shape_err)?;
    let mut two = || -> Result<ndarray::Array2<f64>> {
        ndarray::Array2::from_shape_vec((n_chains, k), next()?).map_err(shape_err)
    };
    let (log_p, delta_h, acceptance, accepted) = (two()?, two()?, two()?, two()?);
    Ok((
        ChainRecords {
            configs,
            accepted: accepted.mapv(|a| a != 0.0),
            delta_h,
            log_p,
            acceptance,
        },
        states,
    ))
}
