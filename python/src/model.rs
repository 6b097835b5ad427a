//! `train(config)` → [`PyModel`]: a flow (or an SNF, or a diffusion model) trained by the CLI's
//! pieces (`TrainRunConfig` parses the same dict as `fieldflow train`'s
//! TOML, `ModelConfig` builds the model and its trainer, `TrainRun` drives
//! it), in memory; `Model.save(path)` writes the CLI's model file
//! (docs/FORMATS.md), so `fieldflow sample --model` reads a model trained
//! in Python on a built-in target, and `Model.load` reads the CLI's.
//!
//! A Python target trains a flow (not an SNF: its Langevin blocks need
//! Hessian-vector products) with the minibatch as one chunk, so its
//! function is called once per step's batch. Its model file stores the
//! section `[target] kind = "python"` with the function's name and dimension,
//! which the command line refuses with a one-line error (it cannot call the
//! function); `Model.load(path, target)` takes the function again.

use crate::convert::{err, from_table, rows, to_table, value_error, ArrayPair};
use crate::target::{PyTarget, TargetKind};
use anyhow::bail;
use fieldflow::cmd::train::data::load_data;
use fieldflow::cmd::train::sink::{csv_path, restore_state, ModelSink};
use fieldflow::cmd::train::with_defaults;
use fieldflow::model::{
    curriculum_targets, default_vector_flow, flow_trainer, resolve_auto_components, ModelConfig, Sampler,
};
use fieldflow::mpi_dist::Dist;
use fieldflow::target::{python_section, PYTHON_KIND};
use fieldflow_core::{Par, Proposal, ProposalDensity, Seed};
use fieldflow_flowmcmc::AdaptiveState;
use fieldflow_flows::{Flow, FlowMixture};
use fieldflow_io::{FileKind, Header, ModelFile, ModelState, ModelWriter};
use fieldflow_losses::{
    AdamState, CheckpointSink, MetricsRecord, MixtureTrainer, RunError, RunSchedule, SingleProcess, StepOutcome,
    TrainData, TrainLoop, TrainObserver, TrainRun, TrainerState,
};
use ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArray1, PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A trained model as a proposal (with a density where it has one).
enum Proposer {
    /// A flow or SNF rebuilt as the CLI rebuilds it.
    Builtin(Sampler),
    /// A flow trained for a Python target.
    Flow(Flow),
    /// A mixture of flows trained for a Python target.
    Mixture(FlowMixture),
}

impl Proposer {
    /// The model of `state` for `target`, rebuilt from its architecture and
    /// parameters.
    fn rebuild(target: &TargetKind, state: &ModelState) -> anyhow::Result<Self> {
        Ok(match target.builtin() {
            Some(rt) => Proposer::Builtin(Sampler::from_parts(&state.architecture, state.params.clone(), rt)?),
            None => match ModelConfig::from_json(&state.architecture)? {
                ModelConfig::Flow(_) => {
                    Proposer::Flow(Flow::from_json_parts(&state.architecture, state.params.clone())?)
                }
                ModelConfig::Mixture(cfg) => Proposer::Mixture(FlowMixture::from_parts(cfg, state.params.clone())?),
                ModelConfig::Snf(_) => bail!("a stochastic normalizing flow needs its built-in target"),
                ModelConfig::Diffusion(_) => bail!("a diffusion model needs its built-in lattice target"),
                ModelConfig::Lrds(_) => bail!("an LRDS sampler needs its built-in target"),
            },
        })
    }
    fn proposal(&self) -> &dyn Proposal {
        match self {
            Proposer::Builtin(s) => s,
            Proposer::Flow(f) => f,
            Proposer::Mixture(m) => m,
        }
    }
    fn density(&self) -> Option<&dyn ProposalDensity> {
        match self {
            Proposer::Builtin(s) => s.density(),
            Proposer::Flow(f) => Some(f),
            Proposer::Mixture(m) => Some(m),
        }
    }
}

/// A mixture of flows proposing with equal component weights
/// ([`PyModel::with_equal_mixture_weights`]).
pub struct EqualWeights(Proposer);

impl EqualWeights {
    /// The mixture as a proposal.
    pub fn proposal(&self) -> &dyn Proposal {
        self.0.proposal()
    }
    /// The mixture's density q̄(x).
    pub fn density(&self) -> Option<&dyn ProposalDensity> {
        self.0.density()
    }
}

/// A trained flow or stochastic normalizing flow with its target.
#[pyclass(name = "Model", module = "fieldflow._native", frozen)]
pub struct PyModel {
    target: Arc<TargetKind>,
    proposer: Arc<Proposer>,
    state: ModelState,
    config: toml::Table,
    metrics: BTreeMap<String, Vec<f64>>,
    seed: u64,
}

impl PyModel {
    /// The target.
    pub fn target_kind(&self) -> &Arc<TargetKind> {
        &self.target
    }
    /// The model as a proposal.
    pub fn proposal(&self) -> &dyn Proposal {
        self.proposer.proposal()
    }
    /// The model's density q(x), if it has one.
    pub fn density(&self) -> Option<&dyn ProposalDensity> {
        self.proposer.density()
    }
    /// The model with a mixture's trained weights replaced by equal ones
    /// (`sampler.mixture_weights = "equal"`, as the CLI's
    /// `Sampler::equalize_mixture_weights`): a proposer of its own, the
    /// model itself is not changed.
    ///
    /// # Errors
    /// The model is not a mixture of flows.
    pub fn with_equal_mixture_weights(&self) -> anyhow::Result<EqualWeights> {
        Ok(EqualWeights(match Proposer::rebuild(&self.target, &self.state)? {
            Proposer::Builtin(mut s) => {
                s.equalize_mixture_weights()?;
                Proposer::Builtin(s)
            }
            Proposer::Mixture(mut m) => {
                m.set_equal_weights();
                Proposer::Mixture(m)
            }
            Proposer::Flow(_) => bail!("{}", fieldflow::model::NOT_A_MIXTURE),
        }))
    }
    /// The model as a bijection x = f(z), if it is a flow.
    pub fn flow(&self) -> Option<&Flow> {
        match &*self.proposer {
            Proposer::Builtin(s) => s.flow(),
            Proposer::Flow(f) => Some(f),
            Proposer::Mixture(_) => None,
        }
    }
    /// The learning rate the model trained with (its config's `train.lr`)
    /// if it took more than one optimizer step (the CLI's rule for an
    /// adaptive run's default rate).
    pub fn trained_lr(&self) -> Option<f64> {
        fieldflow::cmd::sample::adaptive::lr_of_trained(self.state.adam_step, &self.config)
    }
    /// The Adam state of the model's training.
    pub fn adam(&self) -> AdamState {
        AdamState {
            m: self.state.adam_m.clone(),
            v: self.state.adam_v.clone(),
            step: self.state.adam_step,
        }
    }
    /// This model's target and config with the parameters of `flow` after an
    /// adaptation (`state`: its optimizer state and per-round records).
    pub fn adapted(&self, flow: &Flow, state: &AdaptiveState, seed: u64) -> anyhow::Result<Self> {
        let t = &state.trainer;
        let model = ModelState {
            architecture: flow
                .architecture_json()
                .ok_or_else(|| anyhow::anyhow!("the flow has no architecture to store"))?,
            params: flow.params().to_vec(),
            adam_m: t.adam.m.clone(),
            adam_v: t.adam.v.clone(),
            adam_step: t.adam.step,
            rng_state: vec![seed, t.step],
        };
        let metrics = fieldflow::cmd::sample::adaptive::round_metrics(state);
        PyModel::build(self.target.clone(), model, self.config.clone(), metrics, seed)
    }

    fn build(
        target: Arc<TargetKind>,
        state: ModelState,
        config: toml::Table,
        metrics: BTreeMap<String, Vec<f64>>,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let proposer = Proposer::rebuild(&target, &state)?;
        let dim = target.as_target().dim();
        if proposer.proposal().dim() != dim {
            bail!(
                "model dimension {} differs from the target's {dim}",
                proposer.proposal().dim()
            );
        }
        Ok(PyModel {
            target,
            proposer: Arc::new(proposer),
            state,
            config,
            metrics,
            seed,
        })
    }
}

/// Keeps the metrics records in memory (the model file is written by `save`).
#[derive(Default)]
struct MemorySink {
    metrics: BTreeMap<String, Vec<f64>>,
}

impl CheckpointSink for MemorySink {
    type Error = std::convert::Infallible;
    fn metrics(&mut self, record: &MetricsRecord) {
        for (name, v) in record.columns() {
            self.metrics.entry(name).or_default().push(v);
        }
    }
    fn save(&mut self, _state: &TrainerState) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Where a run's checkpoints go: memory (the model is saved by `save`), or
/// the CLI's model file (`fieldflow train`'s sink: parameters, Adam state,
/// trainer counters and metrics, rewritten atomically at every checkpoint,
/// with the metrics CSV beside it), which `resume=True` continues.
enum Checkpoints {
    Memory(MemorySink),
    File(Box<ModelSink>),
}

impl CheckpointSink for Checkpoints {
    type Error = anyhow::Error;
    fn metrics(&mut self, record: &MetricsRecord) {
        match self {
            Checkpoints::Memory(m) => m.metrics(record),
            Checkpoints::File(f) => f.metrics(record),
        }
    }
    fn save(&mut self, state: &TrainerState) -> anyhow::Result<()> {
        match self {
            Checkpoints::Memory(_) => Ok(()),
            Checkpoints::File(f) => f.save(state),
        }
    }
}

/// A run that checkpoints to the model file `path`: a new one, or the
/// opened checkpoint of an interrupted run and its saved state.
struct FileRun {
    path: PathBuf,
    resumed: Option<(ModelWriter, ModelState)>,
}

/// Reports steps to a Python callback `progress(done, total, message)` and
/// turns Ctrl-C (a pending KeyboardInterrupt) into a stop request.
struct PyProgress<'a> {
    callback: Option<&'a Py<PyAny>>,
    stop: &'a AtomicBool,
    error: Option<PyErr>,
    first: u64,
    total: u64,
    done: u64,
    message: String,
}

impl PyProgress<'_> {
    fn report(&mut self) {
        let r = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(cb) = self.callback {
                cb.bind(py).call1((self.done, self.total, self.message.as_str()))?;
            }
            Ok(())
        });
        if let Err(e) = r {
            self.stop.store(true, Ordering::Relaxed);
            self.error.get_or_insert(e);
        }
    }
}

impl TrainObserver for PyProgress<'_> {
    fn started(&mut self, first: u64, steps: u64) {
        self.first = first;
        self.total = steps.saturating_sub(first);
        self.report();
    }
    fn step(&mut self, outcome: &StepOutcome) {
        self.done += 1;
        if let StepOutcome::Rejected { step, reason, .. } = outcome {
            self.message = format!("step {step} rejected ({reason})");
        }
        self.report();
    }
    fn metrics(&mut self, m: &MetricsRecord) {
        self.message = format!("loss {:.4} ess {:.3} acc {:.3}", m.loss, m.ess, m.acceptance);
    }
}

/// What a training run hands back from the GIL-free part.
struct Trained {
    state: ModelState,
    stored: toml::Table,
    metrics: BTreeMap<String, Vec<f64>>,
    seed: u64,
    error: Option<PyErr>,
}

/// Samples `[n, *shape]` from Python as rows.
fn opt_rows(x: Option<PyReadonlyArrayDyn<'_, f64>>, dim: usize, what: &str) -> PyResult<Option<Array2<f64>>> {
    x.map(|a| rows(a.as_array(), dim, what)).transpose()
}

fn train_impl(
    table: toml::Table,
    target: &TargetKind,
    data: (Option<Array2<f64>>, Option<Array2<f64>>),
    progress: Option<&Py<PyAny>>,
    chunk_rows: Option<usize>,
    file: Option<FileRun>,
) -> anyhow::Result<Trained> {
    // The CLI's defaults (batch_size, steps, lr, the loss by the data at hand).
    let (table, c) = with_defaults(table, data.0.is_some())?;
    let dim = target.as_target().dim();
    let (train, held_out) = match (data, target.builtin()) {
        ((None, None), Some(rt)) => load_data(&c, rt)?,
        ((None, None), None) if c.data.file.is_some() || c.data.exact => {
            bail!("data: a Python target has no [data] file or exact sampler: pass data= (and held_out=) arrays")
        }
        (d, _) => d,
    };
    let auto = resolve_auto_components(c.flow.as_ref(), train.as_ref(), target.as_target(), c.train.seed)?;
    let flow = auto.as_ref().map(|a| &a.0).or(c.flow.as_ref());
    let model = match target.builtin() {
        Some(rt) => ModelConfig::from_sections(flow, c.diffusion.as_ref(), c.lrds.as_ref(), rt, c.seed)?,
        None if c.lrds.is_some() => {
            bail!("lrds: an LRDS sampler needs a built-in target (its reference is fitted by walkers on it)")
        }
        None if c.diffusion.is_some() => {
            bail!("diffusion: the diffusion models are lattice-field models; a Python target trains a flow")
        }
        None => ModelConfig::over_default(flow, default_vector_flow(dim))?,
    };
    let data = TrainData {
        train,
        held_out,
        modes: target.builtin().and_then(|rt| rt.modes()),
    };
    let stages = curriculum_targets(&table, &c.train)?;
    let mut trainer: Box<dyn TrainLoop + '_> = match (&model, target.builtin()) {
        (_, Some(rt)) => model.trainer(&c.train, c.seed, rt, &stages, data, &Dist::single())?,
        (ModelConfig::Flow(f), None) => {
            // By default the minibatch is one chunk: one call of the Python
            // function per step (the flow's share then runs on one thread).
            let par = Par {
                chunk_rows: chunk_rows.unwrap_or(c.train.batch_size).max(1),
                parallel: true,
            };
            Box::new(flow_trainer(f, &c.train, c.seed, target.as_target(), data, par)?)
        }
        (ModelConfig::Mixture(m), None) => {
            let par = Par {
                chunk_rows: chunk_rows.unwrap_or(c.train.batch_size).max(1),
                parallel: true,
            };
            Box::new(MixtureTrainer::new(&c.train, m, c.seed, target.as_target(), data, par)?)
        }
        (ModelConfig::Lrds(_), None) => bail!("lrds: an LRDS sampler needs a built-in target"),
        (ModelConfig::Snf(_) | ModelConfig::Diffusion(_), None) => bail!(
            "flow.stages: a stochastic normalizing flow needs a built-in target (its Langevin blocks need Hessian-vector products)"
        ),
    };
    let schedule = RunSchedule {
        steps: c.train.steps,
        metrics_every: c.train.metrics_every,
        checkpoint_every: c.checkpoint_every,
    };
    let stop_flag = AtomicBool::new(false);
    // Stops on Ctrl-C or the callback's exception, and at the first
    // exception of a Python target (a KeyboardInterrupt while its function
    // runs arrives as one), which `train` raises.
    let stop = |_: u64| stop_flag.load(Ordering::Relaxed) || target.has_error();
    let mut run = TrainRun::new(trainer.as_mut(), schedule)?.with_stop(&stop);
    if let Some(minutes) = c.train.max_minutes {
        run = run.with_deadline(std::time::Duration::from_secs_f64(60.0 * minutes));
    }
    // The config that rebuilds this model (a Python target: the section
    // that names it, which the command line refuses).
    let mut stored = table.clone();
    stored.insert(model.section_name().into(), model.to_section()?);
    if let TargetKind::Python(f) = target {
        stored.remove("phi4");
        stored.insert("target".into(), python_section(f.name(), f.dim()).into());
    }
    let path = file.as_ref().map(|f| f.path.clone());
    let mut sink = match file {
        None => Checkpoints::Memory(MemorySink::default()),
        Some(FileRun { path, resumed }) => {
            let writer = match resumed {
                Some((mut w, saved)) => {
                    run.resume(restore_state(&mut w, saved, &path)?)?;
                    w
                }
                None => {
                    let header = Header::new(
                        FileKind::Model,
                        toml::to_string(&stored)?,
                        c.seed,
                        target.as_target().describe(),
                    );
                    ModelWriter::create(&path, header, false)?
                }
            };
            Checkpoints::File(Box::new(ModelSink {
                writer: Some(writer),
                architecture: model.to_json()?,
                seed: c.train.seed,
                csv: csv_path(&path),
            }))
        }
    };
    let mut obs = PyProgress {
        callback: progress,
        stop: &stop_flag,
        error: None,
        first: 0,
        total: 0,
        done: 0,
        message: String::new(),
    };
    let result = run.run(&mut SingleProcess, &mut [&mut obs], &mut sink);
    if let Err(e) = result {
        let saved = match &path {
            Some(p) => format!("; checkpoint in {}; continue with resume=True", p.display()),
            None => String::new(),
        };
        match e {
            RunError::Interrupted { .. } if obs.error.is_some() || target.has_error() => {}
            RunError::Interrupted { step, steps } => bail!("interrupted at step {step} of {steps}{saved}"),
            RunError::Train(e) if path.is_some() => bail!("{e}{saved}"),
            RunError::Sink(e) => return Err(e),
            e => bail!("{e}"),
        }
    }
    let st = run.trainer().state();
    let metrics = match sink {
        Checkpoints::Memory(m) => m.metrics,
        Checkpoints::File(f) => f.writer.map(|w| w.metrics().clone()).unwrap_or_default(),
    };
    Ok(Trained {
        state: ModelState {
            architecture: model.to_json()?,
            params: st.params,
            adam_m: st.adam.m,
            adam_v: st.adam.v,
            adam_step: st.adam.step,
            rng_state: vec![c.train.seed, st.step],
        },
        stored,
        metrics,
        seed: c.seed,
        error: obs.error,
    })
}

/// Trains a model: `config` is the dict of `fieldflow train`'s TOML
/// (`seed`, `[flow]` or `[diffusion]`, `[data]`, `[train]`, and the target
/// as `[phi4]` or `[target]` unless `target` is given), with the CLI's
/// defaults for what it leaves out. `data` / `held_out`: training and
/// held-out samples `[n, *shape]` (instead of `[data]`). `progress(done,
/// total, message)` is called after every step. `chunk_rows` (Python
/// targets only): rows per call of the function, default the whole
/// minibatch; smaller chunks let the flow's work of a step run on all cores
/// at the cost of more calls. `checkpoint`: the model file the run
/// checkpoints to every `checkpoint_every` steps, as `fieldflow train
/// --out`; with `resume`, the interrupted run in it continues with its
/// stored config (`config` None, or `{"train": {"steps": n}}` to extend).
#[pyfunction]
#[pyo3(signature = (config, target = None, data = None, held_out = None, progress = None, chunk_rows = None,
                    checkpoint = None, resume = false))]
#[allow(clippy::too_many_arguments)] // the Python signature
pub fn train(
    py: Python<'_>,
    config: Option<&Bound<'_, PyDict>>,
    target: Option<PyRef<'_, PyTarget>>,
    data: Option<PyReadonlyArrayDyn<'_, f64>>,
    held_out: Option<PyReadonlyArrayDyn<'_, f64>>,
    progress: Option<Py<PyAny>>,
    chunk_rows: Option<usize>,
    checkpoint: Option<PathBuf>,
    resume: bool,
) -> PyResult<PyModel> {
    let given = config.map(|c| to_table(c, "")).transpose()?;
    let (mut table, file) = match (resume, checkpoint) {
        (true, None) => {
            return Err(PyValueError::new_err(
                "resume=True: give the checkpoint= file to continue",
            ))
        }
        (true, Some(path)) => {
            let (mut w, saved) = ModelWriter::resume(&path).map_err(value_error)?;
            let mut stored: toml::Table =
                w.header_mut().config.parse().map_err(|e| {
                    PyValueError::new_err(format!("{}: stored config is not TOML: {e}", path.display()))
                })?;
            // An older file's loss resumes as it was trained (as `fieldflow
            // train --resume`).
            fieldflow::cmd::train::legacy_loss(&mut stored);
            if let Some(g) = given {
                let steps = steps_only(&g).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "config: resume=True continues with the config stored in {}; pass config=None \
                         (or {{\"train\": {{\"steps\": n}}}} to extend)",
                        path.display()
                    ))
                })?;
                fieldflow::config::set(&mut stored, "train.steps", steps);
            }
            (
                stored,
                Some(FileRun {
                    path,
                    resumed: Some((w, saved)),
                }),
            )
        }
        (false, path) => {
            let table = given.ok_or_else(|| PyValueError::new_err("config: required (None only with resume=True)"))?;
            if let Some(p) = &path {
                fieldflow::output::check_new_output(p, false).map_err(err)?;
            }
            (table, path.map(|path| FileRun { path, resumed: None }))
        }
    };
    let stored_python = python_kind(&table);
    let kind = match (target, stored_python) {
        (Some(t), Some(_)) => {
            table.remove("target");
            t.kind.clone()
        }
        (Some(t), None) => {
            if table.contains_key("phi4") || table.contains_key("target") {
                return Err(PyValueError::new_err(
                    "config: the target is given twice (the target argument and a [phi4] or [target] section)",
                ));
            }
            t.kind.clone()
        }
        (None, Some((name, dim))) => {
            return Err(PyValueError::new_err(format!(
                "checkpoint: a model of the Python function {name} (d = {dim}): pass target= (the Target it was trained on)"
            )))
        }
        (None, None) => PyTarget::from_config(table.clone()).map_err(err)?.kind,
    };
    if chunk_rows.is_some() && kind.builtin().is_some() {
        return Err(PyValueError::new_err(
            "chunk_rows: only for a Python target (a built-in target is evaluated in chunks of 32 rows on all cores)",
        ));
    }
    if chunk_rows == Some(0) {
        return Err(PyValueError::new_err("chunk_rows = 0: must be >= 1"));
    }
    let dim = kind.as_target().dim();
    let samples = (opt_rows(data, dim, "data")?, opt_rows(held_out, dim, "held_out")?);
    let k = kind.clone();
    let result = py.detach(move || train_impl(table, &k, samples, progress.as_ref(), chunk_rows, file));
    kind.take_error()?;
    let trained = result.map_err(err)?;
    // A KeyboardInterrupt (Ctrl-C) or the progress callback's exception.
    if let Some(e) = trained.error {
        return Err(e);
    }
    PyModel::build(kind, trained.state, trained.stored, trained.metrics, trained.seed).map_err(err)
}

/// `n` if `t` is `{"train": {"steps": n}}` (what may be changed on resuming).
fn steps_only(t: &toml::Table) -> Option<i64> {
    match t.get("train").and_then(toml::Value::as_table) {
        Some(train) if t.len() == 1 && train.len() == 1 => train.get("steps").and_then(toml::Value::as_integer),
        _ => None,
    }
}

/// The function's name and dimension of a stored `[target] kind = "python"`.
fn python_kind(t: &toml::Table) -> Option<(String, i64)> {
    let target = t.get("target")?;
    if target.get("kind").and_then(toml::Value::as_str) != Some(PYTHON_KIND) {
        return None;
    }
    Some((
        target
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .to_string(),
        target.get("dim").and_then(toml::Value::as_integer).unwrap_or(0),
    ))
}

#[pymethods]
impl PyModel {
    /// `n` draws x ~ q (shaped `[n, *shape]`) and their log q (an SNF: its
    /// path log-weight), from the random stream `seed`.
    #[pyo3(signature = (n, seed = 0))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
    ) -> PyResult<ArrayPair<'py, PyArrayDyn<f64>, PyArray1<f64>>> {
        let p = self.proposer.clone();
        let mut shape = vec![n];
        shape.extend(self.target.shape());
        let (xs, lq) = py.detach(move || {
            let d = p.proposal().dim();
            let mut xs = Array2::zeros((n, d));
            let mut lq = Array1::zeros(n);
            p.proposal()
                .draw_batch(Seed::new(seed), xs.view_mut(), lq.view_mut(), Par::default());
            (xs, lq)
        });
        let xs = xs.into_shape_with_order(shape).map_err(value_error)?;
        Ok((xs.into_pyarray(py), lq.into_pyarray(py)))
    }

    /// log q(x) of the batch `x` (`[n, *shape]`); flows only.
    fn log_q<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x = crate::convert::f64_array(x, "x")?;
        let xs = rows(x.as_array(), self.proposer.proposal().dim(), "x")?;
        if self.proposer.density().is_none() {
            return Err(PyValueError::new_err(
                "log_q: a stochastic normalizing flow has no tractable density q(x)",
            ));
        }
        let p = self.proposer.clone();
        let out = py.detach(move || {
            let mut out = Array1::zeros(xs.nrows());
            if let Some(d) = p.density() {
                d.log_q_batch(xs.view(), out.view_mut(), Par::default());
            }
            out
        });
        Ok(out.into_pyarray(py))
    }

    /// Writes the model file (the CLI's format); an existing file is
    /// refused unless `force`.
    #[pyo3(signature = (path, force = false))]
    fn save(&self, path: PathBuf, force: bool) -> PyResult<()> {
        let config = toml::to_string(&self.config).map_err(value_error)?;
        let file = ModelFile {
            header: Header::new(FileKind::Model, config, self.seed, self.target.as_target().describe()),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
        };
        fieldflow::output::check_new_output(&path, force).map_err(err)?;
        file.write(&path, force).map_err(value_error)
    }

    /// Reads a model file (from `save` or `fieldflow train`); a model of a
    /// Python target needs that `target` again.
    #[staticmethod]
    #[pyo3(signature = (path, target = None))]
    fn load(path: PathBuf, target: Option<PyRef<'_, PyTarget>>) -> PyResult<Self> {
        let file = ModelFile::read(&path).map_err(value_error)?;
        let config: toml::Table = file
            .header
            .config
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{}: stored config is not TOML: {e}", path.display())))?;
        let kind = match (target, python_kind(&config)) {
            (Some(t), _) => t.kind.clone(),
            (None, Some((name, dim))) => {
                return Err(PyValueError::new_err(format!(
                    "{}: a model of the Python function {name} (d = {dim}): pass target= (the Target it was trained on)",
                    path.display()
                )));
            }
            (None, None) => {
                PyTarget::from_config(config.clone())
                    .map_err(|e| {
                        PyValueError::new_err(format!(
                            "{}: {e:#} (a model of a Python target: pass target=)",
                            path.display()
                        ))
                    })?
                    .kind
            }
        };
        PyModel::build(kind, file.state, config, file.metrics, file.header.seed)
            .map_err(|e| PyValueError::new_err(format!("{}: cannot rebuild the model: {e:#}", path.display())))
    }

    /// The model's parameters θ (a copy).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.state.params.clone().into_pyarray(py)
    }

    /// The training metrics, one array per column (docs/FORMATS.md).
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.metrics {
            d.set_item(k, v.clone().into_pyarray(py))?;
        }
        Ok(d)
    }

    /// The resolved config (the dict that would retrain this model).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        from_table(py, &self.config)
    }

    /// The target.
    #[getter]
    fn target(&self) -> PyTarget {
        PyTarget {
            kind: self.target.clone(),
        }
    }

    /// Number of values of one configuration.
    #[getter]
    fn dim(&self) -> usize {
        self.proposer.proposal().dim()
    }

    /// Whether the model has a density q(x) (flows; not SNFs).
    #[getter]
    fn has_density(&self) -> bool {
        self.proposer.density().is_some()
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({} parameters, target {})",
            self.state.params.len(),
            self.target.as_target().describe()
        )
    }
}
