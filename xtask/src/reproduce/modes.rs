//! `reproduce modes`: the multimodal benchmark of issue 14 §1 — do the
//! trained flows, and the exact samplers built on them, get the *relative
//! weights* of the modes right?
//!
//! **Targets** (each with exact mode weights w_k; `[target] kind = …`):
//! MOG-4, MOG-8; two modes in d dimensions (weights ⅔, ⅓; d ∈ {8, 16, 32,
//! 64} by default, {2, …, 128} with `--full`); separated mixtures (d = 8,
//! two equal modes s σ apart, s ∈ {4, 8, 16}); the 1D φ⁴ chain (N = 100,
//! a = 0.1, β = 20) with tilt b ∈ {0, 0.025, 0.05, 0.075, 0.1}, modes by the
//! sign of the middle site, exact weights from the transfer-operator oracle
//! (printed by `fieldflow analyze` in the exact column).
//!
//! **Methods** ([`RECIPES`], name → TOML overrides merged over the base
//! config `data/configs/reproduce/modes/{mixture,phi4_1d}.toml`; a new recipe
//! is one line): the recommended method where samples exist, `mixture` (a
//! mixture of flows, one per mode found by k-means in the data, RKL per
//! component, weights by importance sampling; docs/THEORY.md §4.11), the
//! best single-flow recipe `scorenf` (annealed), the loss presets fkl, rkl, sm, rkl_sm and annealed RKL
//! (β: 0.1 → 1 over the first half of training), on the φ⁴ chain `laplace`
//! (a mixture whose components start as the Laplace Gaussians of the two
//! ordered phases, RKL, no samples; affine couplings only) and
//! `laplace+boundary` (a third, untrained component on the mode boundary
//! φ₄₉ = 0), each with affine couplings
//! and with rational-quadratic spline couplings (`+spline`: 8 bins, a tail
//! bound B per target that covers its range, and a base σ about the data's
//! largest coordinate standard deviation: a spline cannot widen a narrow
//! base, docs/RESULTS.md "Spline couplings and score matching on flow
//! samples"). Recipes that train on data
//! need exact samples; the φ⁴ chain has none (and the CLI generates MCMC
//! ensembles only for lattice φ⁴), so it gets the data-free recipes only.
//! Every model is sampled twice: IMH (`fieldflow sample`) and importance
//! sampling (`--method is`, self-normalized reweighting in `analyze`; a
//! mixture of flows with `--mixture-weights equal`, every component drawn
//! alike, so a mode of weight 10⁻¹⁰ is measured, not missed).
//!
//! **Metrics** per run, mean ± s.e. over seeds in one table per target:
//! the mode weights ŵ_k of IMH and IS with Γ-method errors σ_k, the number
//! of modes (w_k > 0) never seen and, when every mode was seen, the largest
//! deviation max_k |ŵ_k − w_k|/σ_k (over the modes with σ_k > 0); TV = ½ Σ_k |ŵ_k − w_k|; for two modes
//! |ŵ₀ − w₀| and the log-ratio error
//!
//! Δ = ln(ŵ₁/ŵ₀) − ln(w₁/w₀),   σ_Δ = σ₀/(ŵ₀ ŵ₁)
//!
//! (ŵ₁ = 1 − ŵ₀, so d ln(ŵ₁/ŵ₀)/dŵ₀ = −1/(ŵ₀ŵ₁); undefined, and counted as
//! "minority unseen", when the lighter mode got no weight); the flow's
//! own mode TV, collapsed modes and covering (training metrics); ESS of the
//! last training record and ESS/N of the IS run; IMH acceptance;
//! log Ẑ − log Z of the IS run (mixtures are normalized: log Z = 0; for the
//! φ⁴ chain the CLI prints no exact log Z, the table shows log Ẑ); wall
//! time of training and of each sampler.
//!
//! **Figures**: |ŵ₀ − ⅔| (IMH) against the dimension of the two-mode
//! target, and the IS log-ratio error against the tilt b of the φ⁴ chain,
//! one series per method.
//!
//! **Free-energy integration** ([`super::modes_free_energy`]): `fieldflow
//! free-energy` on the φ⁴ chain (method "free-energy", columns "… FE": its
//! log-ratio error, replica error, deviation in σ, wall time).
//!
//! **SLIPS** ([`super::modes_slips`]): `fieldflow sample --method slips`
//! (no model, no training) on MOG-4/8, the two-mode targets and the φ⁴
//! chain, the method "slips" of each table (its samples in the IMH columns).
//!
//! **LRDS** ([`super::modes_lrds`]): the learned-reference diffusion
//! sampler trained by `fieldflow train` from an `[lrds]` config on the
//! mixtures (and the φ⁴ chain with `--full`), sampled by IMH and IS like
//! the flows, the method "lrds" of each table.
//!
//! **Peers** (`--peers`): flowMC 0.6.4 (xtask/peers/flowmc_modes.py,
//! RQ-spline flow + MALA, its tutorial settings) on MOG-4, MOG-8, the
//! two-mode targets, the separated mixtures and the φ⁴ chain (its exact
//! weights passed from fieldflow's transfer operator), one run per seed, in a venv under target/peers (created with
//! `python3 -m venv target/peers && target/peers/bin/python -m pip install
//! flowMC==0.6.4` on first use: CPU wheels from PyPI; never in CI). Its
//! result (`peers/<target>_s<seed>.json`, reused) appears as the method
//! "flowMC" in the same tables: the IMH columns hold its pooled production
//! samples (nearest-mean assignment, errors over its 40 chains), "IMH acc."
//! its global (flow) acceptance, "IMH s" its wall time (training included).
//! Without the script or the venv the step warns and the tables stand.
//!
//! Scale: `--quick` (300 steps, 1 seed, 2 × 2000 samples, small targets) is
//! the smoke test; the default (config steps, 3 seeds, 4 × 10 000 samples)
//! is sized for about an hour on 2 cores; `--full` adds the rest of the
//! dimensions. Every stage is resumable (see [`super::runner`]).
//! `--methods a,b` and `--targets x,y` restrict the grid (names as in the
//! tables, e.g. `--methods mixture,scorenf,lrds --targets mog4,two_modes_d16`);
//! the tables of such a run hold only those rows.
//!
//! TODO (not yet here): lattice φ⁴ in the broken phase (L = 16, m² = −4,
//! λ = 4; exact sign-of-M weights ½, HMC as the baseline): `fieldflow
//! analyze` prints no sign-of-M mode rows for lattice ensembles yet; once it
//! does, the target is an HMC ensemble (`fieldflow generate --lattice 16x16
//! --m2 -4 --lambda 4 …`, as [`super::phi4`] makes them) and training from
//! it with `[data] file = …`, behind a flag. The hybrid sampler
//! (`--method hybrid`) is one more [`Runner::sample_with`] call. FKL, SM and
//! ScoreNF on the φ⁴ chain need training data: MCMC ensembles of synthetic
//! targets (`fieldflow generate` makes lattice φ⁴ only).

use super::cli_json::{num, Analysis};
use super::config::Config;
use super::mode_weights;
use super::records::{flatten, grid, stat, variants_of, write_raw, Record, Values};
use super::runner::{summary_numbers, Captured, Runner};
use super::table::Table;
use crate::workspace_root;
use anyhow::{bail, Context, Result};
use fieldflow_plot::{Figure, Series};
use std::path::{Path, PathBuf};

/// A training recipe: a name and TOML overrides merged over the base config.
#[derive(Debug)]
pub struct Recipe {
    pub name: &'static str,
    /// Trains on exact samples (`[data]`), so needs a target that has them.
    pub data: bool,
    pub overrides: &'static str,
    /// A mixture of flows with one component per mode of the target
    /// (`flow.mixture = { components = K }`, docs/THEORY.md §4.11).
    pub mixture: bool,
    /// A mixture of flows whose components start as Laplace Gaussians: the
    /// `flow.mixture` override ([`LAPLACE_MIXTURE`],
    /// [`LAPLACE_BOUNDARY_MIXTURE`]); the φ⁴ chain only, affine couplings
    /// only.
    pub laplace: Option<&'static str>,
}

/// The `laplace` recipe's mixture: Newton from φ = ±1 (the ordered phases;
/// MALA walkers miss the + phase at b ≥ 0.075, data/experiments/phi4_1d_laplace).
const LAPLACE_MIXTURE: &str = r#"flow.mixture = { components = 2, affine = "laplace", starts = [1.0, -1.0] }"#;

/// The `laplace+boundary` recipe's mixture: the two phases and a third
/// component on the mode boundary φ₄₉ = 0 (the chain's middle site at
/// N = 100), where the light mode's mass lies at b ≥ 0.075
/// (docs/THEORY.md §4.11).
const LAPLACE_BOUNDARY_MIXTURE: &str = r#"flow.mixture = { components = 3, affine = "laplace", starts = [1.0, -1.0], boundary = { site = 49, value = 0.0 } }"#;

/// The methods of the benchmark (each also with spline couplings).
pub const RECIPES: &[Recipe] = &[
    // The recommended method where samples exist: a mixture of flows, one
    // per k-means cluster of the data, RKL per component, weights by
    // importance sampling (docs/THEORY.md §4.11).
    Recipe {
        name: "mixture",
        data: true,
        overrides: r#"train.loss = { preset = "rkl" }"#,
        mixture: true,
        laplace: None,
    },
    // The best single-flow multimodal recipe (docs/RESULTS.md, "Multimodal
    // ScoreNF scan"): FKL + 0.1 RKL + 0.1 SM on flow samples (damped,
    // c₀ = 100), annealed over the first half of the steps (`fieldflow
    // train` adds the annealing).
    Recipe {
        name: "scorenf",
        data: true,
        overrides: r#"train.loss = { preset = "scorenf" }"#,
        mixture: false,
        laplace: None,
    },
    Recipe {
        name: "fkl",
        data: true,
        overrides: r#"train.loss = { preset = "fkl" }"#,
        mixture: false,
        laplace: None,
    },
    Recipe {
        name: "rkl",
        data: false,
        overrides: r#"train.loss = { preset = "rkl" }"#,
        mixture: false,
        laplace: None,
    },
    Recipe {
        name: "sm",
        data: true,
        overrides: r#"train.loss = { preset = "sm" }"#,
        mixture: false,
        laplace: None,
    },
    // The first reading of ScoreNF (the `scorenf` preset until 2026-12-02).
    Recipe {
        name: "rkl_sm",
        data: true,
        overrides: r#"train.loss = { preset = "rkl_sm" }"#,
        mixture: false,
        laplace: None,
    },
    // Without samples, on the stiff φ⁴ chain: one component per phase, each
    // starting as the phase's Laplace Gaussian (docs/THEORY.md §4.11).
    Recipe {
        name: "laplace",
        data: false,
        overrides: r#"train.loss = { preset = "rkl" }"#,
        mixture: false,
        laplace: Some(LAPLACE_MIXTURE),
    },
    // The same with a third, untrained component on the mode boundary: the
    // light mode of the strongly tilted chain is a dip of the heavy phase
    // through zero at the middle site, which neither phase's Gaussian covers.
    Recipe {
        name: "laplace+boundary",
        data: false,
        overrides: r#"train.loss = { preset = "rkl" }"#,
        mixture: false,
        laplace: Some(LAPLACE_BOUNDARY_MIXTURE),
    },
    Recipe {
        name: "rkl+anneal",
        data: false,
        overrides: r#"train.loss = { preset = "rkl" }
                      train.annealing = { kind = "geometric", beta0 = 0.1, steps = 1000 }"#,
        mixture: false,
        laplace: None,
    },
];

/// Bins of the spline variants.
const SPLINE_BINS: u64 = 8;

/// One target of the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Name in file names and tables, e.g. "two_modes_d16".
    pub name: String,
    /// The `[target]` table (TOML).
    pub section: String,
    /// Tail bound B of the spline couplings: covers the target's range.
    pub tail_bound: f64,
    /// Base σ of the spline variants: about the data's largest coordinate
    /// standard deviation (a spline cannot widen a narrow base, see
    /// `fieldflow_losses::check_spline_base`).
    pub spline_base_sigma: f64,
    /// Base config under data/configs/reproduce/modes/.
    pub base: &'static str,
    /// Exact samples exist (the data recipes can train).
    pub exact_data: bool,
    /// log Z where the CLI's target is known to be normalized.
    pub log_z: Option<f64>,
    /// The family and its parameter (the figures' x axis).
    pub family: &'static str,
    pub x: f64,
    /// Spline variants run (on the φ⁴ chain, d = 100, they cost ten times
    /// the affine ones: `--full` only).
    pub spline: bool,
    /// Number of modes (components of the mixture recipe).
    pub modes: usize,
}

/// Training steps of the default scale (`--full`: the configs' 2000, the
/// protocol of issue 14; `--quick` and `--steps` set their own).
pub const DEFAULT_STEPS: u64 = 1000;

/// The dimension of the separated mixtures (their separation s varies).
const SEPARATED_DIM: usize = 8;

/// Sites of the φ⁴ chain (the `phi4_1d` default, which the sections keep).
const PHI4_1D_SITES: usize = 100;

/// The targets of one invocation (module docs: `quick` small ones, `full`
/// every dimension, separation and the φ⁴ spline variants).
pub fn targets(quick: bool, full: bool) -> Vec<Spec> {
    let mixture = |name: String, section: String, tail_bound: f64, spline_base_sigma: f64, family, x, modes| Spec {
        name,
        section,
        tail_bound,
        spline_base_sigma,
        base: "mixture",
        exact_data: true,
        log_z: Some(0.0),
        family,
        x,
        spline: true,
        modes,
    };
    // Largest coordinate std: MOG-4 4.0, MOG-8 7.1 (modes on the circle of
    // radius 10, variance 0.7), two modes 0.97, separated hypot(s/(2√8), 1).
    let mut v = vec![mixture(
        "mog4".into(),
        "kind = \"mog4\"".into(),
        12.0,
        3.0,
        "mog",
        4.0,
        4,
    )];
    if !quick {
        v.push(mixture(
            "mog8".into(),
            "kind = \"mog8\"".into(),
            24.0,
            6.0,
            "mog",
            8.0,
            8,
        ));
    }
    let dims: &[usize] = match (quick, full) {
        (true, _) => &[8],
        (false, false) => &[8, 16],
        (false, true) => &[2, 4, 8, 16, 32, 64, 128],
    };
    for &d in dims {
        v.push(mixture(
            format!("two_modes_d{d}"),
            format!("kind = \"two_modes\"\ndim = {d}"),
            6.0,
            1.0,
            "two_modes",
            d as f64,
            2,
        ));
    }
    let seps: &[f64] = match (quick, full) {
        (true, _) => &[8.0],
        (false, false) => &[4.0, 16.0],
        (false, true) => &[4.0, 8.0, 16.0],
    };
    for &s in seps {
        // Means ±(s/2)𝟙/√d: |coordinate| ≤ s/(2√8) < 3 for s ≤ 16.
        v.push(mixture(
            format!("separated_d{SEPARATED_DIM}_s{s}"),
            format!("kind = \"separated_mixture\"\ndim = {SEPARATED_DIM}\nseparation = {s:?}"),
            6.0,
            (s / (2.0 * 8f64.sqrt())).hypot(1.0),
            "separated",
            s,
            2,
        ));
    }
    let tilts: &[f64] = if quick {
        &[0.0, 0.05]
    } else {
        &[0.0, 0.025, 0.05, 0.075, 0.1]
    };
    for &b in tilts {
        v.push(Spec {
            name: format!("phi4_1d_b{b}"),
            section: format!("kind = \"phi4_1d\"\nb = {b:?}"),
            tail_bound: 4.0,
            spline_base_sigma: 1.0,
            base: "phi4_1d",
            exact_data: false,
            log_z: None,
            family: "phi4_1d",
            x: b,
            spline: full,
            modes: 2,
        });
    }
    v
}

/// One method: a recipe with affine or spline couplings.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    pub recipe: &'static Recipe,
    pub spline: bool,
}

impl Method {
    pub fn name(&self) -> String {
        if self.spline {
            format!("{}+spline", self.recipe.name)
        } else {
            self.recipe.name.to_string()
        }
    }

    /// The run config: `base` with the target, the recipe and the coupling.
    pub fn config(&self, base: &Config, t: &Spec, steps: Option<u64>) -> Result<Config> {
        let mut c = base.merged(&format!("[target]\n{}", t.section))?;
        c = c.merged(self.recipe.overrides)?;
        if self.recipe.mixture {
            c = c.merged(&format!("flow.mixture = {{ components = {} }}", t.modes))?;
        }
        if let Some(mixture) = self.recipe.laplace {
            c = c.merged(mixture)?;
        }
        if self.spline {
            // A mixture's components see the target whitened by their
            // cluster's spread: a unit base and a bound of 5 cover them.
            let (bound, sigma) = if self.recipe.mixture {
                (5.0, 1.0)
            } else {
                (t.tail_bound, t.spline_base_sigma)
            };
            c = c.merged(&format!(
                "flow.coupling = {{ spline = {{ bins = {SPLINE_BINS}, tail_bound = {bound:?} }} }}\nflow.base_sigma = {sigma:?}"
            ))?;
        }
        c.with_steps(steps)
    }
}

/// The methods that can train on `t`.
pub fn methods(t: &Spec) -> Vec<Method> {
    let mut m = vec![];
    for spline in [false, true].into_iter().filter(|&s| !s || t.spline) {
        let fits =
            |r: &&Recipe| (t.exact_data || !r.data) && (r.laplace.is_none() || (t.family == "phi4_1d" && !spline));
        for recipe in RECIPES.iter().filter(fits) {
            m.push(Method { recipe, spline });
        }
    }
    m
}

/// The methods with rows of their own beside the flows' (SLIPS, LRDS,
/// free-energy integration): name and the records of a target.
type Rows = fn(&Runner, &Spec) -> Result<Vec<Record>>;
const SAMPLERS: [(&str, Rows); 3] = [
    (super::modes_slips::NAME, super::modes_slips::records),
    (super::modes_lrds::NAME, super::modes_lrds::records),
    (super::modes_free_energy::NAME, super::modes_free_energy::records),
];

/// Every method name of the benchmark (`--methods`): the recipes with
/// affine and spline couplings, and the samplers without a flow.
pub fn method_names() -> Vec<String> {
    let mut v: Vec<String> = RECIPES.iter().map(|r| r.name.to_string()).collect();
    v.extend(
        RECIPES
            .iter()
            .filter(|r| r.laplace.is_none())
            .map(|r| format!("{}+spline", r.name)),
    );
    v.extend(SAMPLERS.iter().map(|(name, _)| name.to_string()));
    v
}

/// How far estimated mode weights are from the exact ones: ŵ_k, their
/// errors σ_k and the exact w_k → values `PREFIX_max_dev_sigma`,
/// `PREFIX_w0_abs_err` and, for two modes, `PREFIX_log_ratio_err`,
/// `PREFIX_log_ratio_dev_sigma`, `PREFIX_minority_unseen`, `exact_log_ratio`
/// (module docs).
pub fn weight_errors(prefix: &str, w: &[f64], err: &[f64], exact: &[f64]) -> Values {
    let mut v = Values::new();
    // With a mode never seen the error bars describe the modes seen only
    // (a chain that stayed in one mode has σ = 0; reweighting gives σ ≈ 0):
    // the unseen modes are counted and no deviation in σ is claimed.
    let unseen = (0..w.len()).filter(|&k| w[k] <= 0.0 && exact[k] > 0.0).count();
    let dev = |k: usize| {
        let d = (w[k] - exact[k]).abs();
        if d == 0.0 {
            Some(0.0)
        } else {
            (err[k] > 0.0).then(|| d / err[k])
        }
    };
    let max_dev = if unseen == 0 {
        (0..w.len()).filter_map(dev).fold(f64::NAN, f64::max)
    } else {
        f64::NAN
    };
    v.insert(format!("{prefix}_max_dev_sigma"), max_dev);
    v.insert(format!("{prefix}_unseen"), unseen as f64);
    if let (Some(w0), Some(e0)) = (w.first(), exact.first()) {
        v.insert(format!("{prefix}_w0_abs_err"), (w0 - e0).abs());
    }
    if w.len() == 2 {
        let exact_lr = (exact[1] / exact[0]).ln();
        let minority = if exact[1] <= exact[0] { 1 } else { 0 };
        let unseen = w[minority] <= 0.0;
        let (err_lr, dev_lr) = if w[0] > 0.0 && w[1] > 0.0 {
            let delta = (w[1] / w[0]).ln() - exact_lr;
            let sigma = err[0] / (w[0] * w[1]);
            (delta, if sigma > 0.0 { delta / sigma } else { f64::NAN })
        } else {
            (f64::NAN, f64::NAN)
        };
        v.insert("exact_log_ratio".into(), exact_lr);
        v.insert(format!("{prefix}_log_ratio_err"), err_lr);
        v.insert(format!("{prefix}_log_ratio_dev_sigma"), dev_lr);
        v.insert(format!("{prefix}_minority_unseen"), f64::from(u8::from(unseen)));
    }
    v
}

/// The mode weights of `a` (IMH or IS, by `prefix`) with their errors from
/// the exact ones ([`weight_errors`]) and the sampler's wall time.
pub(super) fn sampler_values(prefix: &str, a: &Analysis) -> Values {
    let mut v = mode_weights::values_as(prefix, a);
    let n = v.get("n_modes").copied().unwrap_or(0.0) as usize;
    let col = |key: &str| -> Vec<f64> { (0..n).map(|k| v[&key.replace("{k}", &k.to_string())]).collect() };
    let (w, e, exact) = (
        col(&format!("{prefix}_mode_{{k}}")),
        col(&format!("{prefix}_mode_{{k}}_err")),
        col("true_mode_{k}"),
    );
    if exact.iter().all(|x| x.is_finite()) && n > 0 {
        v.extend(weight_errors(prefix, &w, &e, &exact));
    }
    v.insert(format!("{prefix}_seconds"), num(a.seconds));
    v
}

/// Trains, IMH-samples and IS-samples one method (`method`: its name in
/// the tables) with the training config `cfg` on one target.
pub(super) fn run_one(r: &Runner, t: &Spec, method: &str, cfg: &Config, seed: u64) -> Result<Values> {
    let name = format!("modes_{}_{}_s{seed}", t.name, method.replace('+', "_"));
    let extra = ["--seed".to_string(), seed.to_string()];
    let (mut v, identity) = r.train(&name, cfg, &extra, "")?;
    let (imh, log) = r.sample_with(&name, "imh", seed, &identity)?;
    let acc = summary_numbers(&log, "acceptance");
    v.insert("imh_acceptance".into(), acc.first().copied().unwrap_or(f64::NAN));
    v.extend(sampler_values("imh", &r.analyze(&imh)?));
    // A mixture's IS draws every component alike (its light modes get error
    // bars even at weight 1e-10); IMH keeps the trained weights.
    let is_extra: &[&str] = if cfg.get("flow", "mixture").is_some() {
        &["--mixture-weights", "equal"]
    } else {
        &[]
    };
    let (is, log) = r.sample_with_args(&name, "is", seed, &identity, is_extra)?;
    v.extend(sampler_values("is", &r.analyze(&is)?));
    let ess = summary_numbers(&log, "ESS/N");
    v.insert("is_ess".into(), ess.first().copied().unwrap_or(f64::NAN));
    let lz = summary_numbers(&log, "log Z estimate");
    let log_z = lz.first().copied().unwrap_or(f64::NAN);
    v.insert("is_log_z".into(), log_z);
    v.insert("is_log_z_err".into(), t.log_z.map_or(f64::NAN, |z| log_z - z));
    Ok(v)
}

/// The columns of a target's table (title, key).
pub fn columns(t: &Spec, n_modes: usize) -> Vec<(&'static str, &'static str)> {
    let mut c = vec![];
    if n_modes == 2 {
        c.extend([
            ("ŵ₀ IMH", "imh_mode_0"),
            ("Γ σ(ŵ₀) IMH", "imh_mode_0_err"),
            ("ŵ₀ IS", "is_mode_0"),
            ("|ŵ₀ − w₀| IMH", "imh_w0_abs_err"),
            ("ln-ratio err IMH", "imh_log_ratio_err"),
            ("ln-ratio err IS", "is_log_ratio_err"),
            ("ln-ratio dev/σ IS", "is_log_ratio_dev_sigma"),
        ]);
        if t.family == "phi4_1d" {
            c.extend([
                ("minority unseen IS", "is_minority_unseen"),
                ("ln-ratio err FE", "fe_log_ratio_err"),
                ("σ FE", "fe_log_ratio_sigma"),
                ("dev/σ FE", "fe_dev_sigma"),
                ("FE s", "fe_seconds"),
            ]);
        }
    }
    c.extend([
        ("unseen IMH", "imh_unseen"),
        ("unseen IS", "is_unseen"),
        ("max dev/σ IMH", "imh_max_dev_sigma"),
        ("max dev/σ IS", "is_max_dev_sigma"),
        ("TV IMH", "imh_tv"),
        ("TV IS", "is_tv"),
        ("TV flow", "tv_distance"),
        ("collapsed", "n_collapsed"),
        ("covering", "covering"),
        ("ESS (train)", "ess"),
        ("ESS/N IS", "is_ess"),
        ("IMH acc.", "imh_acceptance"),
    ]);
    c.push(if t.log_z.is_some() {
        ("log Ẑ − log Z", "is_log_z_err")
    } else {
        ("log Ẑ (IS)", "is_log_z")
    });
    c.extend([
        ("train s", "train_seconds"),
        ("IMH s", "imh_seconds"),
        ("IS s", "is_seconds"),
        ("evals/sample (SLIPS)", "slips_evals_per_sample"),
        ("kept start mode (SLIPS)", "slips_start_decided"),
    ]);
    c
}

/// Runs the benchmark.
pub fn run(r: &mut Runner) -> Result<()> {
    let cfg_dir = workspace_root().join("data/configs/reproduce/modes");
    let mut specs = targets(r.scale.quick, r.scale.full);
    if let Some(wanted) = &r.scale.targets {
        if let Some(bad) = wanted.iter().find(|w| !specs.iter().any(|t| &t.name == *w)) {
            bail!(
                "--targets: `{bad}` is not a target of this scale (the larger dimensions and separations need --full)"
            );
        }
    }
    specs.retain(|t| r.scale.wants_target(&t.name));
    let peers = if r.scale.peers { peer_setup() } else { None };
    let mut groups: Vec<(String, Vec<Record>)> = vec![];
    for t in &specs {
        let base = Config::read(&cfg_dir.join(format!("{}.toml", t.base)))?;
        let ms: Vec<Method> = methods(t)
            .into_iter()
            .filter(|m| r.scale.wants_method(&m.name()))
            .collect();
        let names: Vec<String> = ms.iter().map(Method::name).collect();
        let runner = &*r;
        let steps = steps(&runner.scale);
        let mut records = grid(runner.scale.jobs, runner.scale.seeds, &names, |name, seed| {
            let m = ms.iter().find(|m| m.name() == name).expect("a listed method");
            let cfg = m.config(&base, t, steps)?;
            run_one(runner, t, name, &cfg, seed).with_context(|| format!("modes: {} / {name} / seed {seed}", t.name))
        })?;
        for (name, rows) in SAMPLERS {
            if r.scale.wants_method(name) {
                records.extend(rows(r, t)?);
            }
        }
        if let Some(python) = &peers {
            let peer = peer_records(r, python, t, &records)?;
            records.extend(peer);
        }
        target_table(r, t, &base, &records)?;
        groups.push((t.name.clone(), records));
    }
    write_raw(&r.out.join("runs_modes.csv"), &flatten(&groups))?;
    let fig = family_figure(
        &specs,
        &groups,
        "two_modes",
        "two modes (w₀ = ⅔): IMH weight error against dimension",
        "dimension d",
        "|ŵ₀ − ⅔| (IMH, mean ± s.e.)",
        "imh_w0_abs_err",
    );
    r.figure("modes_two_modes_dim", "weight error against dimension", fig);
    let fig = family_figure(
        &specs,
        &groups,
        "phi4_1d",
        "1D φ⁴: IS log-ratio error against tilt b",
        "tilt b",
        "ln(ŵ₊/ŵ₋) − exact (IS, mean ± s.e.)",
        "is_log_ratio_err",
    );
    r.figure("modes_phi4_1d_tilt", "log-ratio error against tilt", fig);
    let fig = family_figure(
        &specs,
        &groups,
        "phi4_1d",
        "1D φ⁴: free-energy log-ratio error against tilt b",
        "tilt b",
        "ln(ŵ₊/ŵ₋) − exact (free-energy integration, mean ± s.e.)",
        "fe_log_ratio_err",
    );
    r.figure("modes_phi4_1d_tilt_fe", "free-energy log-ratio error against tilt", fig);
    Ok(())
}

/// Training steps: `--steps`/`--quick`'s, else [`DEFAULT_STEPS`], or the
/// configs' with `--full`.
fn steps(s: &super::args::Scale) -> Option<u64> {
    s.mix_steps.or((!s.full).then_some(DEFAULT_STEPS))
}

/// One target's summary table (and, for more than two modes, its IMH mode
/// weights table).
fn target_table(r: &mut Runner, t: &Spec, base: &Config, records: &[Record]) -> Result<()> {
    let n_modes = records.first().map_or(0.0, |x| x.get("n_modes")) as usize;
    let table = Table::aggregate("method", records, &columns(t, n_modes));
    let exact: Vec<String> = (0..n_modes)
        .map(|k| {
            let w = stat(records, "", &format!("true_mode_{k}")).map_or(f64::NAN, |s| s.0);
            if w >= 1e-3 {
                format!("{w:.6}")
            } else {
                format!("{w:.4e}")
            }
        })
        .collect();
    let ratio = stat(records, "", "exact_log_ratio")
        .map(|(lr, _)| format!(", exact ln(w₁/w₀) = {lr:.4}"))
        .unwrap_or_default();
    let skipped: Vec<&str> = RECIPES
        .iter()
        .filter(|x| x.data && !t.exact_data)
        .map(|x| x.name)
        .collect();
    let note = format!(
        "[target] {}. Exact weights [{}]{ratio}. {} seed(s), mean ± s.e.; base config \
         data/configs/reproduce/modes/{}.toml ({}{}); IMH and IS {} chains × {} samples each; \
         spline variants: {}.{}",
        t.section.replace('\n', ", "),
        exact.join(", "),
        r.scale.seeds,
        t.base,
        base.clone().with_steps(steps(&r.scale))?.steps_desc(),
        if t.exact_data {
            format!(", {} exact training samples", base.show("data", "n_train"))
        } else {
            String::new()
        },
        r.scale.chains,
        r.scale.samples,
        if t.spline {
            format!(
                "{SPLINE_BINS} bins, tail bound {}, base σ {:.2}",
                t.tail_bound, t.spline_base_sigma
            )
        } else {
            "with --full only".to_string()
        },
        if skipped.is_empty() {
            String::new()
        } else {
            format!(
                " Not run (no exact samples or MCMC data for this target): {}.",
                skipped.join(", ")
            )
        }
    );
    r.table(
        &format!("modes_{}", t.name),
        &format!("modes: {}", t.name),
        &note,
        &table,
    )?;
    if n_modes > 2 {
        r.table(
            &format!("modes_{}_weights", t.name),
            &format!("modes: {} IMH mode weights", t.name),
            "Mean ± s.e. over seeds of the IMH chains' mode fractions.",
            &mode_weights::table("method", records),
        )?;
    }
    Ok(())
}

/// `key` (mean ± s.e. over seeds) against the family's parameter, one
/// series per method (offset a little along x so that error bars stay apart).
fn family_figure(
    specs: &[Spec],
    groups: &[(String, Vec<Record>)],
    family: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    key: &str,
) -> Figure {
    let mut fig = Figure::new(title, x_label, y_label);
    let members: Vec<(&Spec, &Vec<Record>)> = specs
        .iter()
        .zip(groups)
        .filter(|(s, _)| s.family == family)
        .map(|(s, (_, rs))| (s, rs))
        .collect();
    let mut methods: Vec<&str> = vec![];
    for (_, rs) in &members {
        for v in variants_of(rs) {
            if !methods.contains(&v) {
                methods.push(v);
            }
        }
    }
    let xs: Vec<f64> = members.iter().map(|(s, _)| s.x).collect();
    let (lo, hi) = xs.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let log_x = family == "two_modes";
    let span = if log_x {
        (hi / lo).log2().max(1.0)
    } else {
        (hi - lo).max(1e-9)
    };
    for (i, m) in methods.iter().enumerate() {
        let dx = 0.01 * span * (i as f64 - (methods.len() as f64 - 1.0) / 2.0);
        let data = members.iter().filter_map(|(s, rs)| {
            let (y, e) = stat(rs, m, key)?;
            let x = if log_x { s.x.log2() + dx } else { s.x + dx };
            Some((x, y, e))
        });
        fig.series.push(Series::points(*m, data));
    }
    if log_x {
        fig.x_label = format!("log₂ {x_label}");
    }
    fig
}

/// The flowMC script of the peer comparison.
fn peer_script() -> PathBuf {
    workspace_root().join("xtask/peers/flowmc_modes.py")
}

/// The venv's python with flowMC installed (created under target/peers on
/// first use), or None (with a warning) if the script or the venv is not
/// available: the peer columns are optional.
fn peer_setup() -> Option<PathBuf> {
    if !peer_script().exists() {
        eprintln!(
            "reproduce: --peers: {} not found; peers skipped",
            peer_script().display()
        );
        return None;
    }
    let venv = workspace_root().join("target/peers");
    let python = venv.join("bin/python");
    let ready = |p: &Path| Captured::run(p, &["-c", "import flowMC"]).is_ok_and(|c| c.ok);
    if python.exists() && ready(&python) {
        return Some(python);
    }
    eprintln!("reproduce: --peers: installing flowMC into {} (once)", venv.display());
    let steps: [(&Path, Vec<String>); 2] = [
        (
            Path::new("python3"),
            vec!["-m".into(), "venv".into(), venv.display().to_string()],
        ),
        (
            &python,
            ["-m", "pip", "install", "--quiet", "flowMC==0.6.4"]
                .map(String::from)
                .to_vec(),
        ),
    ];
    for (prog, args) in &steps {
        match Captured::run(prog, args) {
            Ok(c) if c.ok => {}
            Ok(c) => {
                eprintln!(
                    "reproduce: --peers: {} failed: {}; peers skipped",
                    prog.display(),
                    c.last_error()
                );
                return None;
            }
            Err(e) => {
                eprintln!("reproduce: --peers: {e:#}; peers skipped");
                return None;
            }
        }
    }
    ready(&python).then_some(python)
}

/// flowMC's runs on `t`, one per seed, each kept as
/// `peers/<target>_s<seed>.json` and reused. The φ⁴ chain's exact weights
/// (the transfer operator's) come from fieldflow's `records` of the same
/// target; without them the chain has no flowMC row.
fn peer_records(r: &Runner, python: &Path, t: &Spec, records: &[Record]) -> Result<Vec<Record>> {
    let target = match t.family {
        "mog" => t.name.as_str(),
        "two_modes" | "separated" | "phi4_1d" => t.family,
        _ => return Ok(vec![]),
    };
    let dim = match t.family {
        "two_modes" => t.x as usize,
        "separated" => SEPARATED_DIM,
        "phi4_1d" => PHI4_1D_SITES,
        _ => 2,
    };
    let mut family_args = match t.family {
        "separated" => vec!["--separation".to_string(), t.x.to_string()],
        _ => vec![],
    };
    if t.family == "phi4_1d" {
        let exact = |k: usize| {
            records
                .iter()
                .map(|rec| rec.get(&format!("true_mode_{k}")))
                .find(|w| w.is_finite())
        };
        let (Some(w0), Some(w1)) = (exact(0), exact(1)) else {
            eprintln!(
                "reproduce: --peers: no exact weights of {} (no fieldflow run); flowMC skipped",
                t.name
            );
            return Ok(vec![]);
        };
        family_args.extend([
            "--tilt".to_string(),
            t.x.to_string(),
            "--exact".to_string(),
            format!("{w0:e},{w1:e}"),
        ]);
    }
    let dir = r.out.join("peers");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let mut records = vec![];
    for seed in 1..=r.scale.seeds {
        let json = dir.join(format!("{}_s{seed}.json", t.name));
        if !json.exists() {
            let mut args = vec![
                peer_script().display().to_string(),
                "--target".into(),
                target.into(),
                "--dim".into(),
                dim.to_string(),
                "--seed".into(),
                seed.to_string(),
                "--json".into(),
                json.display().to_string(),
            ];
            args.extend(family_args.iter().cloned());
            let t0 = std::time::Instant::now();
            let c = Captured::run(python, &args)?;
            let log = r.path("logs", &format!("peer_flowmc_{}_s{seed}.log", t.name));
            let _ = std::fs::write(&log, format!("{}\n--- stderr ---\n{}", c.stdout, c.stderr));
            if !c.ok {
                bail!(
                    "flowMC peer on {} failed ({}): {}",
                    t.name,
                    log.display(),
                    c.last_error()
                );
            }
            eprintln!(
                "reproduce: flowMC   {:<40} {:>7.1} s",
                t.name,
                t0.elapsed().as_secs_f64()
            );
        }
        let text = std::fs::read_to_string(&json).with_context(|| format!("{}: cannot read", json.display()))?;
        records.push(Record {
            variant: "flowMC".into(),
            seed,
            values: peer_values(&text).with_context(|| format!("{}: unreadable", json.display()))?,
        });
    }
    Ok(records)
}

/// The peer's JSON result as values in the IMH columns (its pooled
/// production samples; errors over its chains). Its exact weights (the
/// script's, rounded to 4 digits) enter the errors only: the tables' exact
/// row stays fieldflow's.
pub fn peer_values(json: &str) -> Result<Values> {
    #[derive(serde::Deserialize)]
    struct Peer {
        mode_frac: Vec<f64>,
        mode_frac_se: Vec<f64>,
        true_w: Vec<f64>,
        global_acc_prod: f64,
        wall_s: f64,
    }
    let p: Peer = serde_json::from_str(json)?;
    if p.mode_frac.len() != p.true_w.len() || p.mode_frac_se.len() != p.true_w.len() {
        bail!("mode_frac, mode_frac_se and true_w differ in length");
    }
    let mut v = Values::new();
    let mut tv = 0.0;
    for (k, ((w, e), x)) in p.mode_frac.iter().zip(&p.mode_frac_se).zip(&p.true_w).enumerate() {
        v.insert(format!("imh_mode_{k}"), *w);
        v.insert(format!("imh_mode_{k}_err"), *e);
        tv += 0.5 * (w - x).abs();
    }
    v.insert("imh_tv".into(), tv);
    v.insert("n_modes".into(), p.true_w.len() as f64);
    v.insert("imh_acceptance".into(), p.global_acc_prod);
    v.insert("imh_seconds".into(), p.wall_s);
    v.extend(weight_errors("imh", &p.mode_frac, &p.mode_frac_se, &p.true_w));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_errors_of_two_modes() {
        let v = weight_errors("is", &[0.7, 0.3], &[0.01, 0.01], &[2.0 / 3.0, 1.0 / 3.0]);
        let delta = (0.3f64 / 0.7).ln() - 0.5f64.ln();
        assert!((v["is_log_ratio_err"] - delta).abs() < 1e-15);
        // σ_Δ = σ₀/(ŵ₀ŵ₁): the delta method for ln((1 − w)/w).
        let sigma = 0.01 / (0.7 * 0.3);
        assert!((v["is_log_ratio_dev_sigma"] - delta / sigma).abs() < 1e-12);
        assert!((v["is_w0_abs_err"] - (0.7 - 2.0 / 3.0)).abs() < 1e-15);
        assert!((v["is_max_dev_sigma"] - (0.7 - 2.0 / 3.0) / 0.01).abs() < 1e-9);
        assert!((v["exact_log_ratio"] - 0.5f64.ln()).abs() < 1e-15);
        assert_eq!(v["is_minority_unseen"], 0.0);
        // The delta-method σ matches a finite difference of ln((1 − w)/w).
        let f = |w: f64| ((1.0 - w) / w).ln();
        let h = 1e-6;
        let slope = (f(0.7 + h) - f(0.7 - h)) / (2.0 * h);
        assert!((slope.abs() * 0.01 / sigma - 1.0).abs() < 1e-6);
    }

    #[test]
    fn unseen_minority_mode_is_flagged_not_a_number() {
        // φ⁴ with tilt: mode 0 (φ < 0) dominates; the chain never saw mode 1.
        let v = weight_errors("imh", &[1.0, 0.0], &[0.0, 0.0], &[1.0 - 1e-7, 1e-7]);
        assert_eq!((v["imh_minority_unseen"], v["imh_unseen"]), (1.0, 1.0));
        assert!(v["imh_log_ratio_err"].is_nan() && v["imh_log_ratio_dev_sigma"].is_nan());
        // No mode has an error bar: no deviation in σ.
        assert!(v["imh_max_dev_sigma"].is_nan());
        let v = weight_errors("is", &[0.5, 0.0, 0.5], &[0.1, 0.0, 0.1], &[0.4, 0.2, 0.4]);
        assert_eq!(v["is_unseen"], 1.0);
        assert!(v["is_max_dev_sigma"].is_nan());
        let v = weight_errors("is", &[0.5, 0.1, 0.4], &[0.1, 0.05, 0.0], &[0.4, 0.2, 0.4]);
        assert_eq!(v["is_unseen"], 0.0);
        assert!((v["is_max_dev_sigma"] - 2.0).abs() < 1e-12);
        // The heavier mode missing is not "minority unseen".
        let v = weight_errors("imh", &[0.0, 1.0], &[0.0, 0.0], &[0.6, 0.4]);
        assert_eq!((v["imh_minority_unseen"], v["imh_unseen"]), (0.0, 1.0));
        // Exact agreement: no deviation, even with zero errors.
        let v = weight_errors("imh", &[0.5, 0.5], &[0.0, 0.0], &[0.5, 0.5]);
        assert_eq!((v["imh_max_dev_sigma"], v["imh_log_ratio_err"]), (0.0, 0.0));
        assert_eq!(v["imh_unseen"], 0.0);
        // More than two modes: no ratio.
        let v = weight_errors("imh", &[0.2, 0.3, 0.5], &[0.1; 3], &[0.2, 0.3, 0.5]);
        assert!(!v.contains_key("imh_log_ratio_err") && !v.contains_key("exact_log_ratio"));
    }

    #[test]
    fn targets_and_methods_of_each_scale() {
        let quick = targets(true, false);
        let names: Vec<&str> = quick.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["mog4", "two_modes_d8", "separated_d8_s8", "phi4_1d_b0", "phi4_1d_b0.05"]
        );
        assert_eq!(targets(false, false).len(), 1 + 1 + 2 + 2 + 5);
        assert_eq!(targets(false, true).len(), 1 + 1 + 7 + 3 + 5);
        let mog4 = &quick[0];
        let names: Vec<String> = methods(mog4).iter().map(Method::name).collect();
        // Every recipe but the chain's two `laplace`, with affine and spline couplings.
        assert_eq!(names.len(), 2 * (RECIPES.len() - 2));
        assert_eq!(names[..2], ["mixture", "scorenf"]);
        assert_eq!(names[names.len() - 1], "rkl+anneal+spline");
        // The φ⁴ chain has no exact samples: the data-free recipes only
        // (`laplace` with affine couplings only), and its spline variants
        // with --full only.
        let phi = quick.iter().find(|t| t.family == "phi4_1d").unwrap();
        let names: Vec<String> = methods(phi).iter().map(Method::name).collect();
        assert_eq!(names, ["rkl", "laplace", "laplace+boundary", "rkl+anneal"]);
        let full = targets(false, true);
        let phi = full.iter().find(|t| t.family == "phi4_1d").unwrap();
        let names: Vec<String> = methods(phi).iter().map(Method::name).collect();
        assert_eq!(
            names,
            [
                "rkl",
                "laplace",
                "laplace+boundary",
                "rkl+anneal",
                "rkl+spline",
                "rkl+anneal+spline"
            ]
        );
        let base = Config::read(&workspace_root().join("data/configs/reproduce/modes/phi4_1d.toml")).unwrap();
        let c = methods(phi)[1].config(&base, phi, None).unwrap();
        assert_eq!(
            c.section_text("flow.mixture"),
            "affine = \"laplace\", components = 2, starts = [1.0, -1.0]"
        );
        let c = methods(phi)[2].config(&base, phi, None).unwrap();
        assert!(
            c.section_text("flow.mixture")
                .contains("boundary = { site = 49, value = 0.0 }"),
            "{}",
            c.section_text("flow.mixture")
        );
    }

    #[test]
    fn method_configs_merge_target_recipe_and_coupling() {
        let base = Config::read(&workspace_root().join("data/configs/reproduce/modes/mixture.toml")).unwrap();
        let t = &targets(true, false)[1];
        let anneal = methods(t)
            .into_iter()
            .find(|m| m.name() == "rkl+anneal+spline")
            .unwrap();
        let c = anneal.config(&base, t, Some(300)).unwrap();
        assert_eq!(c.section_text("target"), "kind = \"two_modes\", dim = 8");
        assert_eq!(c.get("train", "loss").unwrap().to_string(), "{ preset = \"rkl\" }");
        assert_eq!(c.count("train.annealing", "steps"), Some(150));
        assert_eq!(c.count("train", "steps"), Some(300));
        assert_eq!(c.section_text("flow.coupling.spline"), "bins = 8, tail_bound = 6.0");
        assert_eq!(c.get("flow", "base_sigma").and_then(|v| v.as_float()), Some(1.0));
        // The data section of the base stays (and the plain recipe has no spline).
        assert_eq!(c.show("data", "n_train"), "100");
        let fkl = methods(t).into_iter().find(|m| m.name() == "fkl").unwrap();
        let fkl = fkl.config(&base, t, None).unwrap();
        assert!(!fkl.has("flow") && !fkl.has("train.annealing"));
        assert_eq!(fkl.count("train", "steps"), Some(2000));
        // The mixture recipe: one component per mode of the target.
        let mixture = methods(t).into_iter().find(|m| m.name() == "mixture").unwrap();
        let c = mixture.config(&base, t, None).unwrap();
        assert_eq!(c.section_text("flow.mixture"), "components = 2");
        assert_eq!(c.get("train", "loss").unwrap().to_string(), "{ preset = \"rkl\" }");
        // The φ⁴ base config has a target table only after the merge.
        let phi_base = Config::read(&workspace_root().join("data/configs/reproduce/modes/phi4_1d.toml")).unwrap();
        let phi = targets(true, false).into_iter().find(|t| t.x == 0.05).unwrap();
        let c = methods(&phi)[0].config(&phi_base, &phi, None).unwrap();
        assert_eq!(c.section_text("target"), "kind = \"phi4_1d\", b = 0.05");
        assert!(!c.has("data"));
    }

    #[test]
    fn table_columns_fit_the_target() {
        let ts = targets(true, false);
        let two = columns(&ts[1], 2);
        assert_eq!(two[0], ("ŵ₀ IMH", "imh_mode_0"));
        assert!(two.contains(&("log Ẑ − log Z", "is_log_z_err")));
        let mog = columns(&ts[0], 4);
        assert!(!mog.iter().any(|c| c.1.contains("log_ratio")));
        let phi = columns(ts.last().unwrap(), 2);
        assert!(phi.contains(&("log Ẑ (IS)", "is_log_z")) && !phi.contains(&("log Ẑ − log Z", "is_log_z_err")));
    }

    #[test]
    fn peer_json_fills_the_imh_columns() {
        let json = r#"{"target": "two_modes", "mode_frac": [0.65, 0.35], "mode_frac_se": [0.01, 0.01],
                       "true_w": [0.6667, 0.3333], "global_acc_prod": 0.3, "wall_s": 70.5, "cfg": {}}"#;
        let v = peer_values(json).unwrap();
        assert_eq!((v["imh_mode_0"], v["imh_seconds"], v["n_modes"]), (0.65, 70.5, 2.0));
        assert!(!v.contains_key("true_mode_0"));
        assert!((v["imh_tv"] - 0.0167).abs() < 1e-12);
        assert!((v["imh_w0_abs_err"] - 0.0167).abs() < 1e-12);
        assert!(v["imh_log_ratio_err"].is_finite());
        let bad = r#"{"mode_frac": [1.0], "mode_frac_se": [0.0, 0.0], "true_w": [0.5, 0.5], "global_acc_prod": 0, "wall_s": 1}"#;
        assert!(peer_values(bad).unwrap_err().to_string().contains("differ in length"));
    }
}
