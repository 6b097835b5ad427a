"""fieldflow from Python: sampling unnormalized densities p(x) ∝ exp(−S(x))
with MCMC and normalizing flows, made exact by IMH; Γ-method errors.

The Rust core (the `fieldflow` command line's library) does the work; this
package passes numpy arrays and plain dicts equal to the TOML sections of
the command line's configs (docs/FORMATS.md)::

    import fieldflow as ff
    ens = ff.generate({"phi4": {"lattice": [8, 8], "m2": 0.5, "lambda": 0.0},
                       "n_cfg": 2000, "chains": 4, "seed": 1})
    model = ff.train({"phi4": {...}, "train": {"loss": {"preset": "rkl"}, ...}})
    run = ff.imh(model, 10000, chains=4)
    ff.analyze(run["x"].mean(axis=(2, 3)))      # value, error, tau_int, window

A target may be a Python function of a batch (``Target.from_function``),
called once per batch. The samplers with local moves (``hybrid``,
``global_local``, ``neutra``, ``adaptive``) run the command line's own
code with its ``[sampler]`` settings as a dict. Errors are ``ValueError``
with the command line's one-line messages. Progress bars (``train`` and
the samplers) use tqdm
when it is installed (in a notebook, ``tqdm.auto`` picks the widget), and
are silent otherwise; ``generate`` is silent.
"""

import numpy as _np

from . import _native
from ._native import Model, Target

__all__ = ["Target", "Model", "generate", "train", "imh", "isir", "importance", "hybrid", "global_local", "neutra",
           "adaptive", "free_energy", "analyze", "analyze_file"]


def _f64(x, what="x"):
    """x as a C-contiguous float64 array (a clear error otherwise)."""
    try:
        return _np.ascontiguousarray(x, dtype=_np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not convertible to a float64 array ({e})") from None


def _progress_callback(progress, what):
    """A callback `(done, total, message)` drawing a tqdm bar, or None."""
    if progress is False:
        return None, None
    if callable(progress):
        return progress, None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, None
    state = {"bar": None}

    def callback(done, total, message):
        bar = state["bar"]
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=what, leave=False)
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def close():
        if state["bar"] is not None:
            state["bar"].close()

    return callback, close


def _target_arg(target):
    """A Target from a Target, a config dict or None."""
    if target is None or isinstance(target, Target):
        return target
    if isinstance(target, dict):
        return Target(target)
    raise ValueError(f"target: expected a fieldflow.Target or a config dict, not {type(target).__name__}")


def generate(config, out=None, force=False):
    """An MCMC ensemble of lattice φ⁴ (HMC or Metropolis), as the command
    line's ``generate`` with the same config (dict of the TOML: ``phi4``,
    ``algorithm``, ``n_therm``, ``n_cfg``, ``chains``, ``seed``, …).

    Returns the configurations, shape ``[chains, n_cfg, *lattice]``; with
    ``out`` the ensemble file is kept there (an existing file is refused
    unless ``force``)."""
    return _native.generate(config, None if out is None else str(out), force)


def train(config, target=None, data=None, held_out=None, progress=True, chunk_rows=None, checkpoint=None,
          resume=False):
    """Trains a flow (or an SNF) as ``fieldflow train`` does with the same
    config dict (``seed``, ``flow``, ``data``, ``train`` and the target as
    ``phi4`` / ``target``, unless ``target`` is given: a Target, e.g. a
    Python function). ``data`` / ``held_out``: samples ``[n, *shape]`` for
    losses with a data term. ``progress``: True (tqdm if installed), False,
    or a callable ``(done, total, message)``. ``chunk_rows`` (Python targets
    only): rows per call of the function, by default the whole minibatch
    (one call per step); smaller chunks let the flow's share of a step run
    on all cores at the cost of more calls. ``checkpoint``: a model file
    the run writes every ``checkpoint_every`` steps and at the end, as
    ``fieldflow train --out`` (an existing file is refused); if the run is
    interrupted (Ctrl-C, an exception in ``progress``), ``train(None,
    checkpoint=path, resume=True)`` continues it bit-identically with the
    stored config (``config`` may be ``{"train": {"steps": n}}`` to extend;
    a Python target and data arrays must be passed again). Returns a Model."""
    return _with_progress(progress, "train", lambda cb: _native.train(
        config,
        _target_arg(target),
        None if data is None else _f64(data, "data"),
        None if held_out is None else _f64(held_out, "held_out"),
        cb,
        chunk_rows,
        None if checkpoint is None else str(checkpoint),
        resume,
    ))


def _with_progress(progress, what, run):
    callback, close = _progress_callback(progress, what)
    try:
        return run(callback)
    finally:
        if close is not None:
            close()


def imh(model, n, chains=4, seed=1, batch=256, progress=True):
    """``chains`` independent Metropolis–Hastings chains of ``n`` steps with
    the model as proposal (exact for the model's target). Returns a dict:
    ``x`` ``[chains, n, *shape]``, ``accepted``, ``log_p``, ``log_q``,
    ``acceptance`` and, for built-in targets with modes, ``mode``.
    ``progress`` as for ``train``."""
    return _with_progress(progress, "imh", lambda cb: _native.imh(model, n, chains, seed, batch, None, cb))


def isir(model, n, proposals, chains=4, seed=1, batch=256, progress=True):
    """i-SIR chains: ``proposals`` = K flow proposals per step (as ``imh``)."""
    return _with_progress(progress, "isir", lambda cb: _native.imh(model, n, chains, seed, batch, proposals, cb))


_SAMPLE_DOC = """

    The command line's ``fieldflow sample --method {method}``, run by its own
    code with the same settings and defaults: ``chains`` (4), ``seed`` (1),
    ``batch`` (256), ``local_steps`` (1) and ``local_width`` ({width}; the
    warm-up's starting step) as keywords, and ``sampler``: a dict equal to
    the ``[sampler]`` TOML table (``local``: mala, hmc, rw or metropolis;
    ``warmup``, ``target_acceptance``, ``hmc_length``, ``global``,
    ``proposals``, …; docs/FORMATS.md). Returns a dict: ``x`` ``[chains, n,
    *shape]``, the per-step series ``log_p``, ``log_q``, ``log_w``,
    ``accepted``, ``local_acceptance``, ``log_w_proposal`` (the log weight
    of the step's flow proposal, accepted or not; NaN for neutra)
    ``[chains, n]``, ``acceptance`` (the
    mean of ``accepted``), ``local_step`` (the kernel's step after the
    warm-up) and, for built-in targets with modes, ``mode`` ``[chains, n]``
    (the mode of every sample). ``progress`` as for ``train``."""


def _sample(method, model, n, chains, seed, batch, local_steps, local_width, sampler, progress):
    return _with_progress(progress, method, lambda cb: _native.sample(
        model, method, n, chains, seed, batch, local_steps, local_width, sampler, cb))


def hybrid(model, n, chains=None, seed=None, batch=None, local_steps=None, local_width=None, sampler=None,
           progress=True):
    """``local_steps`` local updates (Metropolis sweeps for lattice φ⁴, a
    Gaussian random walk otherwise, at the fixed width ``local_width``
    unless ``sampler["warmup"]`` is given) before every IMH flow proposal."""
    return _sample("hybrid", model, n, chains, seed, batch, local_steps, local_width, sampler, progress)


def global_local(model, n, chains=None, seed=None, batch=None, local_steps=None, local_width=None, sampler=None,
                 progress=True):
    """``local_steps`` updates of a local kernel (MALA by default), its step
    adapted in a warm-up, then a global flow move (``sampler["global"]``:
    imh or isir with ``proposals``)."""
    return _sample("global-local", model, n, chains, seed, batch, local_steps, local_width, sampler, progress)


def neutra(model, n, chains=None, seed=None, batch=None, local_steps=None, local_width=None, sampler=None,
           progress=True):
    """neutra-MCMC: the local kernel (MALA by default) runs on the flow's
    pulled-back density in latent space; states are mapped back through the
    flow. ``accepted`` is the last local update's decision."""
    return _sample("neutra", model, n, chains, seed, batch, local_steps, local_width, sampler, progress)


hybrid.__doc__ += _SAMPLE_DOC.format(method="hybrid", width="0.5")
global_local.__doc__ += _SAMPLE_DOC.format(method="global-local", width="0.1")
neutra.__doc__ += _SAMPLE_DOC.format(method="neutra", width="0.1")


def adaptive(model, n, chains=None, seed=None, batch=None, local_steps=None, local_width=None, sampler=None,
             progress=True):
    """Adaptive flow-MCMC (``fieldflow sample --method adaptive``): the
    model's flow is trained on ``sampler["walkers"]`` walkers moved by
    global–local steps for ``sampler["rounds"]`` rounds (``steps_per_round``,
    ``train_steps``, ``train_batch``, ``lr``, ``w_rkl``, ``init_sigma``: the
    ``[sampler]`` keys, the command line's defaults), then production is a
    global-local run of ``n`` steps per chain with the adapted flow.
    Returns ``(adapted_model, samples)``: a Model (its ``metrics`` are the
    per-round records: ``round``, ``global_acceptance``, ``loss``,
    ``walker_mode_k``…) and the dict of ``global_local``. The progress bar
    counts the rounds, then the production steps."""
    return _with_progress(progress, "adaptive", lambda cb: _native.adaptive(
        model, n, chains, seed, batch, local_steps, local_width, sampler, cb))


def importance(model, n, seed=1, mixture_weights="trained"):
    """``n`` independent model draws with importance weights: a dict with
    ``x``, ``log_q``, ``log_p``, ``log_w``, ``ess`` and ``log_z`` ± ``log_z_error``.
    ``mixture_weights="equal"``: a mixture of flows draws every component
    alike (log q the balance heuristic), so a light mode is measured."""
    return _native.importance(model, n, seed, mixture_weights)


def free_energy(config, seed=None):
    """The log ratio of a target's two mode weights, log(w+/w-), by
    free-energy integration through its phases (the command line's
    ``free-energy``; docs/THEORY.md §6.13): ``config`` is a dict with
    ``target`` (kind "phi4_1d", its tilt b is the field) or ``phi4`` (with
    ``free_energy["field"]``) and optional ``free_energy`` settings. Returns
    the report dict: ``log_ratio`` (``value``, ``error``, ``replicas``),
    ``exact_log_ratio``, ``pull``, ``delta``, ``log_t_minus``,
    ``log_t_plus``, diagnostics, ``settings``."""
    return _native.free_energy(config, seed)


def analyze(data, s_tau=1.5):
    """Γ-method (Wolff) of one observable's history: ``data`` of shape
    ``[n]`` (one chain) or ``[replica, n]``. Returns a dict with ``value``,
    ``error``, ``tau_int``, ``tau_int_error``, ``window`` and more."""
    return _native.analyze(_f64(data, "data"), s_tau)


def analyze_file(path, skip=0):
    """The command line's ``analyze`` of an ensemble or sample file: each
    observable of its target with Γ-method error, τ_int, window and the
    exact value where known (dict ``observables``: name → dict), the file's
    ``warnings``, ``pareto_k`` (the importance weights' Pareto k̂, or None)
    and ``start_decided`` (SLIPS files: the share of particles that kept the
    mode of their start, or None)."""
    return _native.analyze_file(str(path), skip)
