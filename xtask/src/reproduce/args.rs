//! The command line of `cargo xtask reproduce`: the experiments to run and
//! the sizes of the invocation ([`Scale`]).

use super::{Experiment, EXPERIMENTS};
use crate::workspace_root;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub const HELP: &str =
    "reproduce [mog4|mog8|phi4|snf|modes|flowmcmc|diffusion|all] [--quick] [--seeds N] [--out DIR] [--steps N]
                   [--mix-steps N] [--phi4-steps N] [--recipe-steps N] [--snf-steps N]
                   [--sets tutorial,e1,..] [--losses fkl,scorenf,recipe] [--sweep 10,100,..] [--n-cfg N] [--samples N] [--force]
                   [--jobs N]  runs of a grid at once (default: the cores), each with cores/N threads
                   [--full] [--peers] [--methods mixture,scorenf,lrds,..] [--targets mog4,two_modes_d16,..]
                   the papers' experiments into results/reproduce/ (see docs/RESULTS.md)";

/// The training losses compared (fieldflow's `train.loss` presets).
pub const LOSSES: [&str; 5] = ["fkl", "rkl", "sm", "scorenf", "rkl_sm"];
/// The φ⁴ method that trains by `fieldflow train`'s default recipe (the
/// set's `[phi4]` alone: reverse KL, no data; docs/THEORY.md §5.7).
pub const RECIPE: &str = "recipe";
/// The methods of the φ⁴ loss comparison: the loss presets on the
/// ensemble's configurations, and the recipe.
pub const PHI4_METHODS: [&str; 6] = ["fkl", "rkl", "sm", "scorenf", "rkl_sm", RECIPE];
/// The methods of E1–E5 by default (the tutorial set gets all): the four
/// losses and the recipe; `rkl_sm`, ScoreNF's first design, only with
/// `--losses`.
pub const PHI4_DEFAULT_METHODS: [&str; 5] = ["fkl", "rkl", "sm", "scorenf", RECIPE];
/// The φ⁴ parameter sets (`data/configs/<set>.toml`).
pub const PHI4_SETS: [&str; 6] = ["tutorial", "e1", "e2", "e3", "e4", "e5"];

/// Sizes of one invocation.
#[derive(Debug, Clone)]
pub struct Scale {
    pub quick: bool,
    pub seeds: u64,
    /// Training steps of the mixtures (None: the config's).
    pub mix_steps: Option<u64>,
    /// Training steps on φ⁴ (None: the config's).
    pub phi4_steps: Option<u64>,
    /// Training steps of the φ⁴ recipe rows (its schedule and curriculum
    /// scale with them; the recipe's own budget is 8·10⁶/V steps).
    pub recipe_steps: u64,
    /// HMC: configurations per chain (None: the config's) and thermalization.
    pub n_cfg: Option<u64>,
    pub n_therm: Option<u64>,
    /// IMH samples per chain and chains.
    pub samples: u64,
    pub chains: u64,
    /// φ⁴ sets that get the loss comparison.
    pub sets: Vec<String>,
    /// Training-set sizes of the sweep.
    pub sweep: Vec<u64>,
    /// SNF training steps.
    pub snf_steps: u64,
    /// Methods of the loss comparison on E1–E5 (the tutorial set gets all).
    pub losses: Vec<String>,
    /// `modes`: the full grid (every dimension of the two-mode target).
    pub full: bool,
    /// `modes`: run the flowMC peer too (a Python venv under target/).
    pub peers: bool,
    /// `modes`: only these methods (None: all; names of
    /// [`super::modes::method_names`]).
    pub methods: Option<Vec<String>>,
    /// `modes`: only these targets (None: all of the scale's).
    pub targets: Option<Vec<String>>,
    /// Runs of a grid (methods × seeds) at once, each `fieldflow` child
    /// with cores/`jobs` threads (results do not depend on the thread
    /// count; wall seconds in the tables are then per job).
    pub jobs: usize,
}

impl Scale {
    /// Whether `modes` runs the method `name` (`--methods`).
    pub fn wants_method(&self, name: &str) -> bool {
        selects(&self.methods, name)
    }

    /// Whether `modes` runs the target `name` (`--targets`).
    pub fn wants_target(&self, name: &str) -> bool {
        selects(&self.targets, name)
    }

    fn new(quick: bool) -> Self {
        let strings = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        if quick {
            Scale {
                quick,
                seeds: 1,
                mix_steps: Some(300),
                phi4_steps: Some(60),
                recipe_steps: 300,
                n_cfg: Some(1000),
                n_therm: Some(200),
                samples: 2000,
                chains: 2,
                sets: strings(&["tutorial", "e1"]),
                sweep: vec![10, 100, 1000],
                snf_steps: 200,
                losses: strings(&PHI4_METHODS),
                full: false,
                peers: false,
                methods: None,
                targets: None,
                jobs: cores(),
            }
        } else {
            Scale {
                quick,
                seeds: 3,
                mix_steps: None,
                phi4_steps: None,
                recipe_steps: 10_000,
                n_cfg: None,
                n_therm: None,
                samples: 10_000,
                chains: 4,
                sets: strings(&PHI4_SETS),
                sweep: vec![10, 100, 1000, 10_000],
                snf_steps: 1500,
                losses: strings(&PHI4_DEFAULT_METHODS),
                full: false,
                peers: false,
                methods: None,
                targets: None,
                jobs: cores(),
            }
        }
    }
}

/// The cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether a filter (`None`: everything) lets `name` through.
fn selects(filter: &Option<Vec<String>>, name: &str) -> bool {
    filter.as_ref().is_none_or(|names| names.iter().any(|x| x == name))
}

/// A parsed command line.
pub struct Opts {
    pub experiments: Vec<&'static Experiment>,
    pub scale: Scale,
    pub out: PathBuf,
    pub force: bool,
}

fn parse_list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>> {
    v.split(',')
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{flag} {v}: cannot parse `{s}`"))
        })
        .collect()
}

/// A comma-separated list of names (of `what`), each one of `allowed`.
fn parse_names(flag: &str, what: &str, v: &str, allowed: &[&str]) -> Result<Vec<String>> {
    let names = parse_list::<String>(flag, v)?;
    if let Some(bad) = names.iter().find(|s| !allowed.contains(&s.as_str())) {
        bail!(
            "{flag}: unknown {what} `{bad}` (expected some of {})",
            allowed.join(",")
        );
    }
    Ok(names)
}

pub fn parse_args(rest: &[String]) -> Result<Opts> {
    let quick = rest.iter().any(|a| a == "--quick");
    let mut scale = Scale::new(quick);
    let mut experiments: Vec<&'static Experiment> = vec![];
    let mut out = None;
    let mut force = false;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value =
            |flag: &str| -> Result<String> { it.next().cloned().with_context(|| format!("{flag} needs a value")) };
        let num = |flag: &str, v: String| -> Result<u64> {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("{flag} {v}: expected a positive integer"))
        };
        match a.as_str() {
            "--quick" => {}
            "--force" => force = true,
            "--full" => scale.full = true,
            "--peers" => scale.peers = true,
            "--seeds" => scale.seeds = num("--seeds", value("--seeds")?)?,
            "--jobs" => scale.jobs = num("--jobs", value("--jobs")?)? as usize,
            "--steps" => {
                let s = num("--steps", value("--steps")?)?;
                scale.mix_steps = Some(s);
                scale.phi4_steps = Some(s);
            }
            "--mix-steps" => scale.mix_steps = Some(num("--mix-steps", value("--mix-steps")?)?),
            "--phi4-steps" => scale.phi4_steps = Some(num("--phi4-steps", value("--phi4-steps")?)?),
            "--snf-steps" => scale.snf_steps = num("--snf-steps", value("--snf-steps")?)?,
            "--losses" => scale.losses = parse_names("--losses", "loss", &value("--losses")?, &PHI4_METHODS)?,
            "--recipe-steps" => scale.recipe_steps = num("--recipe-steps", value("--recipe-steps")?)?,
            "--n-cfg" => scale.n_cfg = Some(num("--n-cfg", value("--n-cfg")?)?),
            "--samples" => scale.samples = num("--samples", value("--samples")?)?,
            "--sets" => scale.sets = parse_names("--sets", "set", &value("--sets")?, &PHI4_SETS)?,
            "--sweep" => scale.sweep = parse_list::<u64>("--sweep", &value("--sweep")?)?,
            "--methods" => {
                let all = super::modes::method_names();
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                scale.methods = Some(parse_names("--methods", "method", &value("--methods")?, &all)?);
            }
            "--targets" => {
                let all: Vec<String> = super::modes::targets(false, true)
                    .into_iter()
                    .chain(super::modes::targets(true, false))
                    .map(|t| t.name)
                    .collect();
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                scale.targets = Some(parse_names("--targets", "target", &value("--targets")?, &all)?);
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "all" => experiments.extend(EXPERIMENTS),
            name => match EXPERIMENTS.iter().find(|e| e.name == name) {
                Some(e) => experiments.push(e),
                None => bail!("reproduce: unknown argument `{name}`; usage: cargo xtask {HELP}"),
            },
        }
    }
    if experiments.is_empty() {
        experiments.extend(EXPERIMENTS);
    }
    experiments.dedup_by_key(|e| e.name);
    let out = out.unwrap_or_else(|| {
        workspace_root().join(if quick {
            "results/reproduce-quick"
        } else {
            "results/reproduce"
        })
    });
    Ok(Opts {
        experiments,
        scale,
        out,
        force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_select_experiments_in_order() {
        let o = parse_args(&args(&["snf", "mog4", "mog4", "--quick"])).unwrap();
        let names: Vec<&str> = o.experiments.iter().map(|e| e.name).collect();
        assert_eq!(names, ["snf", "mog4"]);
        assert!(o.scale.quick);
        let all = parse_args(&args(&[])).unwrap();
        assert_eq!(all.experiments.len(), EXPERIMENTS.len());
    }

    #[test]
    fn bad_input_names_the_flag_and_value() {
        let e = |xs: &[&str]| parse_args(&args(xs)).err().unwrap().to_string();
        assert_eq!(
            e(&["--losses", "fkl,xyz"]),
            "--losses: unknown loss `xyz` (expected some of fkl,rkl,sm,scorenf,rkl_sm,recipe)"
        );
        assert_eq!(
            e(&["--sets", "e9"]),
            "--sets: unknown set `e9` (expected some of tutorial,e1,e2,e3,e4,e5)"
        );
        assert_eq!(e(&["--seeds", "0"]), "--seeds 0: expected a positive integer");
        assert_eq!(e(&["--jobs", "x"]), "--jobs x: expected a positive integer");
        assert_eq!(e(&["--sweep", "1,x"]), "--sweep 1,x: cannot parse `x`");
        assert!(e(&["mog5"]).starts_with("reproduce: unknown argument `mog5`"));
        assert!(e(&["--methods", "mixture,nope"])
            .starts_with("--methods: unknown method `nope` (expected some of mixture,"));
        assert!(e(&["--targets", "mog5"]).starts_with("--targets: unknown target `mog5` (expected some of mog4,mog8,"));
    }

    #[test]
    fn modes_filters_select_methods_and_targets() {
        let o = parse_args(&args(&[
            "modes",
            "--methods",
            "scorenf+spline,lrds",
            "--targets",
            "two_modes_d128",
        ]))
        .unwrap();
        assert!(o.scale.wants_method("lrds") && o.scale.wants_method("scorenf+spline"));
        assert!(!o.scale.wants_method("scorenf") && !o.scale.wants_method("slips"));
        assert!(o.scale.wants_target("two_modes_d128") && !o.scale.wants_target("mog4"));
        let all = parse_args(&args(&["modes"])).unwrap();
        assert!(all.scale.wants_method("free-energy") && all.scale.wants_target("mog4"));
    }
}
