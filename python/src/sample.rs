//! Exact sampling with a trained model: `imh` (independent Metropolis–
//! Hastings chains, or i-SIR with `proposals = K`; crates/imh `ImhChain`),
//! `importance` (self-normalized importance sampling, `importance_sample`),
//! and `sample` / `adaptive`: the CLI's `fieldflow sample` methods with
//! local moves (hybrid, global-local, neutra, adaptive; also imh and isir)
//! run by the CLI's own chain builder (`fieldflow::cmd::sample::with_chains`)
//! and adaptation (`run_adaptation`) with the same settings (the common
//! ones as keywords, the `[sampler]` table as a dict) and defaults, the
//! blocks kept in memory and returned as arrays.

use crate::convert::{err, to_table, value_error};
use crate::model::PyModel;
use crate::target::TargetKind;
use fieldflow::cmd::sample::adaptive::{adaptive_config, run_adaptation};
use fieldflow::cmd::sample::chains::check_model;
use fieldflow::cmd::sample::{with_chains, Given, Method, MixtureWeights, SampleConfig, Sampling};
use fieldflow::target::RunTarget;
use fieldflow_core::run::{BlockRun, BlockSink, ChainBlock, RunError, Series, SingleProcess};
use fieldflow_core::{Par, Seed};
use fieldflow_imh::{importance_sample, GlobalMove, ImhChain, ImhConfig};
use ndarray::{Array3, Axis};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// `chains` IMH chains of `n` steps each with the model as proposal; with
/// `proposals = K`, i-SIR (K proposals per step). Returns a dict: `x`
/// `[chains, n, *shape]`, `accepted`, `log_p`, `log_q` `[chains, n]`, the
/// `acceptance` rate and, for built-in targets with modes, the `mode` of
/// every sample `[chains, n]`.
/// `progress(done, total, message)` is called about every percent of the
/// `chains × n` steps.
#[pyfunction]
#[pyo3(signature = (model, n, chains = 4, seed = 1, batch = 256, proposals = None, progress = None))]
#[allow(clippy::too_many_arguments)] // the Python signature: model, run length, settings, callback
pub fn imh<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    n: usize,
    chains: usize,
    seed: u64,
    batch: usize,
    proposals: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = ImhConfig {
        batch,
        global: match proposals {
            Some(k) => GlobalMove::Isir { proposals: k },
            None => GlobalMove::Imh,
        },
        ..ImhConfig::default()
    };
    config.validate().map_err(value_error)?;
    if chains == 0 {
        return Err(value_error("chains = 0: must be >= 1"));
    }
    let m = model.get();
    let total = (chains * n) as u64;
    let stride = (total / 100).max(1);
    let done = AtomicU64::new(0);
    let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
    let report = |k: u64| {
        let d = done.fetch_add(k, Ordering::Relaxed) + k;
        if let (Some(cb), true) = (&progress, d.is_multiple_of(stride) || d == total) {
            if let Err(e) = Python::attach(|py| cb.bind(py).call1((d, total, "")).map(drop)) {
                callback_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        }
    };
    let run = py.detach(|| {
        let chain = ImhChain::new(m.target_kind().as_target(), m.proposal(), Seed::new(seed), config);
        let mut states = chain.initial_states(chains);
        chain.run(&mut states, n, &report)
    });
    m.target_kind().take_error()?;
    if let Some(e) = callback_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut shape = vec![chains, n];
    shape.extend(m.target_kind().shape());
    let acceptance = run.accepted.iter().map(|&a| a as f64).sum::<f64>() / (chains * n).max(1) as f64;
    let d = PyDict::new(py);
    if let Some(modes) = m.target_kind().builtin().and_then(RunTarget::modes) {
        let dim = m.target_kind().as_target().dim();
        let rows = run
            .configs
            .view()
            .into_shape_with_order((chains * n, dim))
            .map_err(value_error)?;
        let mode = modes.assign_batch(rows);
        let mode = ndarray::Array2::from_shape_vec((chains, n), mode).map_err(value_error)?;
        d.set_item("mode", mode.into_pyarray(py))?;
    }
    d.set_item(
        "x",
        run.configs
            .into_shape_with_order(shape)
            .map_err(value_error)?
            .into_pyarray(py),
    )?;
    d.set_item("accepted", run.accepted.into_pyarray(py))?;
    d.set_item("log_p", run.log_p.into_pyarray(py))?;
    d.set_item("log_q", run.log_q.into_pyarray(py))?;
    d.set_item("acceptance", acceptance)?;
    Ok(d)
}

/// `n` independent draws of the model with importance weights. Returns a
/// dict: `x` `[n, *shape]`, `log_q`, `log_p`, `log_w`, the normalized `ess`
/// and `log_z` ± `log_z_error`. `mixture_weights = "equal"`: a mixture of
/// flows draws every component alike (the CLI's `--mixture-weights`).
#[pyfunction]
#[pyo3(signature = (model, n, seed = 1, mixture_weights = "trained"))]
pub fn importance<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    n: usize,
    seed: u64,
    mixture_weights: &str,
) -> PyResult<Bound<'py, PyDict>> {
    if n == 0 {
        return Err(value_error("n = 0: must be >= 1"));
    }
    let m = model.get();
    let equal = match MixtureWeights::parse(mixture_weights).map_err(value_error)? {
        MixtureWeights::Trained => None,
        MixtureWeights::Equal => Some(m.with_equal_mixture_weights().map_err(value_error)?),
    };
    let proposal = equal.as_ref().map_or(m.proposal(), |e| e.proposal());
    let b = py.detach(|| {
        importance_sample(
            m.target_kind().as_target(),
            proposal,
            Seed::new(seed),
            n,
            Par::default(),
        )
    });
    m.target_kind().take_error()?;
    let ess = b.ess().map_err(value_error)?;
    let log_z = b.log_z().map_err(value_error)?;
    let log_w = b.log_w();
    let mut shape = vec![n];
    shape.extend(m.target_kind().shape());
    let d = PyDict::new(py);
    d.set_item(
        "x",
        b.xs.into_shape_with_order(shape).map_err(value_error)?.into_pyarray(py),
    )?;
    d.set_item("log_q", b.log_q.into_pyarray(py))?;
    d.set_item("log_p", b.log_p.into_pyarray(py))?;
    d.set_item("log_w", log_w.into_pyarray(py))?;
    d.set_item("ess", ess)?;
    d.set_item("log_z", log_z.log_z)?;
    d.set_item("log_z_error", log_z.error)?;
    Ok(d)
}

/// The common settings of the CLI's `sample` as given from Python, and the
/// `[sampler]` table (a dict).
struct Settings {
    given: Given,
    sampler: toml::Table,
}

impl Settings {
    /// The resolved and validated config of a `method` run (the CLI's
    /// defaults for what is not given).
    fn config(&self, method: Method, model: &PyModel) -> PyResult<SampleConfig> {
        let mut c =
            SampleConfig::from_settings(method, "(in memory)".into(), &self.given, &self.sampler, None).map_err(err)?;
        c.validate().map_err(err)?;
        c.resolve_for_model(model.target_kind().as_target().dim(), model.trained_lr());
        Ok(c)
    }
}

/// Calls a Python `progress(done, total, message)` from any thread, about
/// every percent, and turns its exception or a pending KeyboardInterrupt
/// into a stop request (the first error is kept).
struct Reporter<'a> {
    callback: Option<&'a Py<PyAny>>,
    target: &'a TargetKind,
    total: u64,
    done: AtomicU64,
    error: Mutex<Option<PyErr>>,
}

impl<'a> Reporter<'a> {
    fn new(callback: Option<&'a Py<PyAny>>, target: &'a TargetKind, total: u64) -> Self {
        Reporter {
            callback,
            target,
            total,
            done: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    fn keep(&self, e: PyErr) {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    }

    /// `k` more units done.
    fn advance(&self, k: u64) {
        let stride = (self.total / 100).max(1);
        let before = self.done.fetch_add(k, Ordering::Relaxed);
        let d = before + k;
        if let (Some(cb), true) = (self.callback, d / stride != before / stride || d == self.total) {
            if let Err(e) = Python::attach(|py| cb.bind(py).call1((d, self.total, "")).map(drop)) {
                self.keep(e);
            }
        }
    }

    /// Sets the count to `d` with a message.
    fn set(&self, d: u64, message: &str) {
        self.done.store(d, Ordering::Relaxed);
        if let Some(cb) = self.callback {
            if let Err(e) = Python::attach(|py| cb.bind(py).call1((d, self.total, message)).map(drop)) {
                self.keep(e);
            }
        }
    }

    /// Whether to stop: a kept error, a pending signal (Ctrl-C), or an
    /// exception of a Python target (raised by the caller).
    fn stop(&self) -> bool {
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.keep(e);
        }
        self.target.has_error() || self.error.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    fn into_error(self) -> Option<PyErr> {
        self.error.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps every block in memory.
#[derive(Default)]
struct Blocks(Vec<ChainBlock>);

impl BlockSink for Blocks {
    fn append(&mut self, block: &ChainBlock) -> Result<(), RunError> {
        self.0.push(block.clone());
        Ok(())
    }
}

/// The blocks of a run joined along the steps: configurations `[chains,
/// n, dim]` and every series `[chains, n]`.
fn join_steps(blocks: Vec<ChainBlock>) -> Result<(Array3<f64>, Vec<Series>), ndarray::ShapeError> {
    let Some(first) = blocks.first() else {
        return Ok((Array3::zeros((0, 0, 0)), Vec::new()));
    };
    let configs: Vec<_> = blocks.iter().map(|b| b.configs.view()).collect();
    let configs = ndarray::concatenate(Axis(1), &configs)?
        .as_standard_layout()
        .into_owned();
    // The blocks' pieces of one series, joined along the sample axis.
    fn join<T: Clone>(parts: Vec<ndarray::ArrayView2<'_, T>>) -> Result<ndarray::Array2<T>, ndarray::ShapeError> {
        Ok(ndarray::concatenate(Axis(1), &parts)?.as_standard_layout().into_owned())
    }
    let mut series = Vec::new();
    for (i, s) in first.series.iter().enumerate() {
        let joined = match s {
            Series::F64(name, _) => Series::F64(
                name,
                join(
                    blocks
                        .iter()
                        .filter_map(|b| b.series[i].as_f64().map(|a| a.view()))
                        .collect(),
                )?,
            ),
            Series::U8(name, _) => Series::U8(
                name,
                join(
                    blocks
                        .iter()
                        .filter_map(|b| b.series[i].as_u8().map(|a| a.view()))
                        .collect(),
                )?,
            ),
        };
        series.push(joined);
    }
    Ok((configs, series))
}

/// What a run hands back from the GIL-free part.
struct Ran {
    blocks: Vec<ChainBlock>,
    local_step: Option<f64>,
}

/// Runs `c` with `model` as the CLI's `sample` does (module
/// `fieldflow::cmd::sample::chains`), the blocks kept in memory.
fn run_chains(c: &SampleConfig, model: &PyModel, reporter: &Reporter<'_>) -> anyhow::Result<Ran> {
    let kind = model.target_kind();
    let equal = match c.sampler.mixture_weights {
        MixtureWeights::Equal => Some(model.with_equal_mixture_weights()?),
        MixtureWeights::Trained => None,
    };
    let s = Sampling {
        target: kind.as_target(),
        phi4: match kind.builtin() {
            Some(RunTarget::Phi4(p)) => Some(p),
            _ => None,
        },
        proposal: equal.as_ref().map_or(model.proposal(), |e| e.proposal()),
        density: equal.as_ref().map_or(model.density(), |e| e.density()),
        flow: model.flow(),
    };
    with_chains(c, &s, 0..c.chains as usize, None, None, |chains, prepared| {
        let mut sink = Blocks::default();
        let run = BlockRun {
            total: c.n as usize,
            block: c.block as usize,
            written: 0,
        };
        let r = run.run(
            chains,
            Some(&mut sink),
            &SingleProcess,
            &mut |_: &ChainBlock, _: usize| {},
            &|u| reporter.advance(u),
            &|_| reporter.stop(),
        );
        match r {
            Ok(()) => Ok(Ran {
                blocks: sink.0,
                local_step: prepared.local_step,
            }),
            // The kept error (KeyboardInterrupt, the callback's) is raised instead.
            Err(RunError::Interrupted { .. }) => Ok(Ran {
                blocks: Vec::new(),
                local_step: None,
            }),
            Err(e) => Err(e.into()),
        }
    })
}

/// The blocks of a run as a dict of arrays: `x` `[chains, n, *shape]`, every
/// per-step series `[chains, n]` (`log_p`, `log_q`, `log_w`, `accepted`,
/// `local_acceptance`), the `acceptance` (mean of `accepted`), the local
/// kernel's `local_step`, and for built-in targets with modes the `mode` of
/// every sample `[chains, n]` (φ⁴: the sign of M; mixtures: the nearest mean).
fn to_dict<'py>(py: Python<'py>, ran: Ran, target: &TargetKind) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let (configs, series) = join_steps(ran.blocks).map_err(value_error)?;
    let (chains, n, dim) = configs.dim();
    if let Some(modes) = target.builtin().and_then(RunTarget::modes) {
        let rows = configs
            .view()
            .into_shape_with_order((chains * n, dim))
            .map_err(value_error)?;
        let mode = ndarray::Array2::from_shape_vec((chains, n), modes.assign_batch(rows)).map_err(value_error)?;
        d.set_item("mode", mode.into_pyarray(py))?;
    }
    let shape = target.shape();
    let mut full = vec![chains, n];
    full.extend(shape);
    d.set_item(
        "x",
        configs
            .into_shape_with_order(full)
            .map_err(value_error)?
            .into_pyarray(py),
    )?;
    for s in series {
        match s {
            Series::F64(name, a) => d.set_item(name, a.into_pyarray(py))?,
            Series::U8(name, a) => {
                if name == "accepted" {
                    let acc = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len().max(1) as f64;
                    d.set_item("acceptance", acc)?;
                }
                d.set_item(name, a.into_pyarray(py))?
            }
        }
    }
    d.set_item("local_step", ran.local_step)?;
    Ok(d)
}

/// One run of the CLI's `method` (imh, hybrid, isir, global-local, neutra)
/// with `model`; see the Python wrappers for the arguments.
#[pyfunction]
#[pyo3(signature = (model, method, n, chains = None, seed = None, batch = None, local_steps = None,
                    local_width = None, sampler = None, progress = None))]
#[allow(clippy::too_many_arguments)] // the Python signature: the CLI's settings
pub fn sample<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    method: &str,
    n: u64,
    chains: Option<u64>,
    seed: Option<u64>,
    batch: Option<u64>,
    local_steps: Option<u64>,
    local_width: Option<f64>,
    sampler: Option<&Bound<'py, PyDict>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let method = match method {
        "imh" => Method::Imh,
        "hybrid" => Method::Hybrid,
        "isir" => Method::Isir,
        "global-local" => Method::GlobalLocal,
        "neutra" => Method::Neutra,
        other => {
            return Err(value_error(format!(
                "method = {other}: expected imh, hybrid, isir, global-local or neutra (adaptive: fieldflow.adaptive)"
            )))
        }
    };
    let settings = settings(n, chains, seed, batch, local_steps, local_width, sampler)?;
    let m = model.get();
    let c = settings.config(method, m)?;
    let reporter = Reporter::new(progress.as_ref(), m.target_kind(), c.n * c.chains);
    let ran = py.detach(|| run_chains(&c, m, &reporter));
    m.target_kind().take_error()?;
    if let Some(e) = reporter.into_error() {
        return Err(e);
    }
    to_dict(py, ran.map_err(err)?, m.target_kind())
}

/// The given settings (`sampler`: the `[sampler]` dict).
fn settings(
    n: u64,
    chains: Option<u64>,
    seed: Option<u64>,
    batch: Option<u64>,
    local_steps: Option<u64>,
    local_width: Option<f64>,
    sampler: Option<&Bound<'_, PyDict>>,
) -> PyResult<Settings> {
    Ok(Settings {
        given: Given {
            n: Some(n),
            chains,
            batch,
            local_steps,
            local_width,
            seed,
        },
        sampler: match sampler {
            Some(d) => to_table(d, "sampler")?,
            None => toml::Table::new(),
        },
    })
}

/// Adaptive flow-MCMC as the CLI's `sample --method adaptive`: the model's
/// flow trained on walkers moved by global–local steps (`sampler.rounds`
/// rounds), then a global-local production run of `n` steps per chain with
/// the adapted flow. Returns `(adapted model, samples dict)`; the adapted
/// model's `metrics` are the per-round records.
#[pyfunction]
#[pyo3(signature = (model, n, chains = None, seed = None, batch = None, local_steps = None,
                    local_width = None, sampler = None, progress = None))]
#[allow(clippy::too_many_arguments)] // the Python signature: the CLI's settings
pub fn adaptive<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    n: u64,
    chains: Option<u64>,
    seed: Option<u64>,
    batch: Option<u64>,
    local_steps: Option<u64>,
    local_width: Option<f64>,
    sampler: Option<&Bound<'py, PyDict>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(PyModel, Bound<'py, PyDict>)> {
    if sampler.is_some_and(|d| d.contains("adapted_model").unwrap_or(false)) {
        return Err(value_error(
            "sampler.adapted_model: from Python the adapted model is returned (save it with Model.save)",
        ));
    }
    let settings = settings(n, chains, seed, batch, local_steps, local_width, sampler)?;
    let m = model.get();
    let c = settings.config(Method::Adaptive, m)?;
    check_model(Method::Adaptive, m.flow().is_some(), m.density().is_some(), "the model").map_err(err)?;
    let rounds = c.sampler.rounds;
    let reporter = Reporter::new(progress.as_ref(), m.target_kind(), rounds + c.n * c.chains);
    let adapted = py.detach(|| -> anyhow::Result<Option<PyModel>> {
        let kind = m.target_kind();
        let phi4 = match kind.builtin() {
            Some(RunTarget::Phi4(p)) => Some(p),
            _ => None,
        };
        let modes = kind.builtin().and_then(RunTarget::modes);
        let mut flow = m.flow().expect("checked above").clone();
        let (state, _) = run_adaptation(
            &c,
            (kind.as_target(), phi4, modes),
            &mut flow,
            m.adam(),
            None,
            &mut |st, _| {
                let msg = st
                    .history
                    .last()
                    .map(|r| format!("adapt: global acc {:.3}", r.acceptance))
                    .unwrap_or_default();
                reporter.set(st.round, &msg);
                !reporter.stop()
            },
        )?;
        if !state.finished(&adaptive_config(&c)) {
            return Ok(None);
        }
        Ok(Some(m.adapted(&flow, &state, c.seed)?))
    });
    m.target_kind().take_error()?;
    let adapted = match adapted.map_err(err)? {
        Some(a) => a,
        None => {
            return Err(reporter
                .into_error()
                .unwrap_or_else(|| value_error(format!("interrupted: the adaptation stopped before {rounds} rounds"))))
        }
    };
    if let Some(e) = reporter.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let ran = py.detach(|| run_chains(&c, &adapted, &reporter));
    m.target_kind().take_error()?;
    if let Some(e) = reporter.into_error() {
        return Err(e);
    }
    let d = to_dict(py, ran.map_err(err)?, m.target_kind())?;
    Ok((adapted, d))
}
