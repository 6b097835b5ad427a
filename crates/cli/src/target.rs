//! The target of a run, as written in its config: `[phi4]` (a lattice field
//! theory) or `[target]` (a synthetic target of crates/targets: `kind = "mog4"`,
//! `"gaussian"`, `"double_well"`, …). Every file stores its resolved config, so
//! the same function rebuilds the target when a later stage reads the file.

use anyhow::{bail, Context, Result};
use fieldflow_core::{HessianVector, Measure, Par, Target};
use fieldflow_lattice::{Phi4, Phi4Config, Phi4Modes, Phi4Observables};
use fieldflow_targets::{Modes, SyntheticTarget, TargetConfig};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1};
use std::path::Path;
use std::sync::Arc;

/// `target.kind` of a model trained on a target given as a Python function
/// (python/): the section records the function's name and dimension, and
/// [`RunTarget::from_table`] refuses it with a one-line error (the command
/// line cannot evaluate a Python function).
pub const PYTHON_KIND: &str = "python";

/// The `[target]` section stored for a Python function `name` of dimension `dim`.
pub fn python_section(name: &str, dim: usize) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("kind".into(), PYTHON_KIND.into());
    t.insert("name".into(), name.into());
    t.insert("dim".into(), (dim as i64).into());
    t
}

/// A validated target.
#[derive(Clone)]
pub enum RunTarget {
    /// Lattice φ⁴.
    Phi4(Phi4),
    /// A synthetic target (Gaussian, mixture, double well, 1D φ⁴).
    Synthetic(Arc<dyn SyntheticTarget>),
}

impl RunTarget {
    /// Builds the target from the `[phi4]` or `[target]` section of `table`.
    pub fn from_table(table: &toml::Table, origin: &str) -> Result<Self> {
        match (table.get("phi4"), table.get("target")) {
            (Some(_), Some(_)) => bail!("{origin}: give either [phi4] or [target], not both"),
            (Some(p), None) => {
                let cfg: Phi4Config = p
                    .clone()
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("{origin}: [phi4]: {}", crate::config::one_line(&e.to_string())))?;
                Ok(RunTarget::Phi4(cfg.validate()?))
            }
            (None, Some(t)) if t.get("kind").and_then(toml::Value::as_str) == Some(PYTHON_KIND) => {
                let name = t.get("name").and_then(toml::Value::as_str).unwrap_or("?");
                let dim = t.get("dim").and_then(toml::Value::as_integer).unwrap_or(0);
                bail!(
                    "{origin}: target.kind = python: the target is a Python function ({name}, d = {dim}) that \
                     the command line cannot evaluate; load the model in Python with fieldflow.Model.load(path, target=...)"
                )
            }
            (None, Some(t)) => {
                let cfg: TargetConfig = t
                    .clone()
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("{origin}: [target]: {}", crate::config::one_line(&e.to_string())))?;
                let target = cfg.validate().map_err(|e| anyhow::anyhow!("{origin}: target.{e}"))?;
                Ok(RunTarget::Synthetic(Arc::from(target)))
            }
            (None, None) => bail!("{origin}: no target: add a [phi4] or [target] section"),
        }
    }

    /// Rebuilds the target from the config text stored in a file's header.
    pub fn from_stored(config: &str, path: &Path) -> Result<Self> {
        let table: toml::Table = config
            .parse()
            .with_context(|| format!("{}: the stored config is not TOML", path.display()))?;
        Self::from_table(&table, &path.display().to_string())
    }

    /// The density.
    pub fn as_target(&self) -> &dyn Target {
        match self {
            RunTarget::Phi4(p) => p,
            RunTarget::Synthetic(s) => s.as_target(),
        }
    }

    /// Mode structure, where the target has one (φ⁴: sign of M; mixtures: nearest mean).
    pub fn modes(&self) -> Option<&dyn Modes> {
        match self {
            RunTarget::Phi4(_) => Some(&Phi4Modes),
            RunTarget::Synthetic(s) => Some(s.as_modes()),
        }
    }

    /// Shape of one configuration (lattice extents or `[dim]`).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            RunTarget::Phi4(p) => p.lattice().shape().to_vec(),
            RunTarget::Synthetic(s) => vec![s.dim()],
        }
    }

    /// The per-configuration observables of this target.
    pub fn observables(&self) -> Box<dyn Measure> {
        match self {
            RunTarget::Phi4(p) => Box::new(Phi4WithModes(Phi4Observables::new(p))),
            RunTarget::Synthetic(s) => Box::new(VectorObservables(s.clone())),
        }
    }
}

/// The run's target as a [`Target`] (every method forwards to the model,
/// batched ones included), so generic code such as an SNF can own it.
impl Target for RunTarget {
    fn dim(&self) -> usize {
        self.as_target().dim()
    }
    fn log_prob(&self, x: ArrayView1<f64>) -> f64 {
        self.as_target().log_prob(x)
    }
    fn log_prob_and_score(&self, x: ArrayView1<f64>, score: ArrayViewMut1<f64>) -> f64 {
        self.as_target().log_prob_and_score(x, score)
    }
    fn log_z(&self) -> Option<f64> {
        self.as_target().log_z()
    }
    fn describe(&self) -> String {
        self.as_target().describe()
    }
    fn log_prob_batch(&self, xs: ArrayView2<f64>, out: ArrayViewMut1<f64>, par: Par) {
        self.as_target().log_prob_batch(xs, out, par)
    }
    fn log_prob_and_score_batch(
        &self,
        xs: ArrayView2<f64>,
        scores: ndarray::ArrayViewMut2<f64>,
        out: ArrayViewMut1<f64>,
        par: Par,
    ) {
        self.as_target().log_prob_and_score_batch(xs, scores, out, par)
    }
}

/// Exact ∇²u·v of every target the CLI knows (SNF training through
/// Langevin blocks needs it).
impl HessianVector for RunTarget {
    fn hvp(&self, x: ArrayView1<f64>, v: ArrayView1<f64>, out: ArrayViewMut1<f64>) {
        match self {
            RunTarget::Phi4(p) => p.hvp(x, v, out),
            RunTarget::Synthetic(s) => s
                .hessian_vector()
                .expect("every synthetic target implements HessianVector")
                .hvp(x, v, out),
        }
    }
}

/// The φ⁴ observables and the indicators of the two modes by the sign of M
/// ([`Phi4Modes`]: `mode_0` for M < 0, `mode_1` for M ≥ 0), so the weights
/// of the broken phase's modes and the τ_int of sign M get Γ-method errors.
pub struct Phi4WithModes(pub Phi4Observables);

impl Measure for Phi4WithModes {
    fn names(&self) -> Vec<String> {
        let mut n = self.0.names();
        n.extend((0..Phi4Modes.n_modes()).map(|k| format!("mode_{k}")));
        n
    }
    fn measure(&self, x: ArrayView1<f64>, out: &mut [f64]) {
        let n = out.len() - Phi4Modes.n_modes();
        self.0.measure(x, &mut out[..n]);
        let m = Phi4Modes.assign(x);
        for (k, o) in out[n..].iter_mut().enumerate() {
            *o = f64::from(u8::from(k == m));
        }
    }
}

/// Observables of a vector target: the first (up to 4) coordinates, ‖x‖²/d
/// and the indicator of each mode (so mode weights get Γ-method errors).
pub struct VectorObservables(pub Arc<dyn SyntheticTarget>);

impl Measure for VectorObservables {
    fn names(&self) -> Vec<String> {
        let d = self.0.dim();
        let mut n: Vec<String> = (0..d.min(4)).map(|i| format!("x{i}")).collect();
        n.push("r2_per_dim".into());
        n.extend((0..self.0.n_modes()).map(|k| format!("mode_{k}")));
        n
    }
    fn measure(&self, x: ArrayView1<f64>, out: &mut [f64]) {
        let d = self.0.dim();
        let k = d.min(4);
        for i in 0..k {
            out[i] = x[i];
        }
        out[k] = x.iter().map(|v| v * v).sum::<f64>() / d as f64;
        let m = self.0.assign(x);
        for j in 0..self.0.n_modes() {
            out[k + 1 + j] = (j == m) as u8 as f64;
        }
    }
}
