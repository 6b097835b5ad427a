"""The command line's sample methods with local moves from Python (hybrid,
global-local, neutra, adaptive): exact means, variances and mode weights
within 4σ (Γ-method errors over the chains as replica) with fixed seeds,
the same numbers as `fieldflow sample`, independence of the thread count,
and one-line errors for bad settings."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

import fieldflow as ff
from conftest import MU, VAR, cli, gaussian, outputs_per_thread_count

RKL = {"seed": 1, "train": {"loss": {"preset": "rkl"}, "batch_size": 128, "steps": 150, "lr": 3e-3}}


@pytest.fixture(scope="module")
def gauss_model():
    """A flow for the Python Gaussian of conftest (d = 2), briefly trained:
    the samplers are exact whatever its quality."""
    return ff.train(RKL, target=ff.Target.from_function(gaussian, 2), progress=False)


def assert_moments(x, label):
    """Mean and variance of each coordinate of x [chains, n, 2] against the
    exact ones within 4σ."""
    for i in range(2):
        mean = ff.analyze(x[:, :, i])
        assert abs(mean["value"] - MU[i]) < 4 * mean["error"], (label, i, mean)
        var = ff.analyze((x[:, :, i] - MU[i]) ** 2)
        assert abs(var["value"] - VAR[i]) < 4 * var["error"], (label, i, var)


@pytest.mark.parametrize("method, sampler", [
    ("global_local", None),
    ("global_local", {"local": "hmc", "global": "isir", "proposals": 3}),
    ("neutra", None),
    ("hybrid", None),
])
def test_samplers_are_exact_on_a_python_gaussian(gauss_model, method, sampler):
    run = getattr(ff, method)(gauss_model, 3000, chains=4, seed=2, sampler=sampler, progress=False)
    x = run["x"]
    assert x.shape == (4, 3000, 2)
    for k in ("log_p", "log_q", "log_w", "accepted", "local_acceptance", "log_w_proposal"):
        assert run[k].shape == (4, 3000), k
    # Every flow proposal's weight is stored; neutra has no independent proposals.
    assert np.isnan(run["log_w_proposal"]).all() == (method == "neutra")
    assert np.isfinite(run["log_w_proposal"]).all() == (method != "neutra")
    assert 0.05 < run["acceptance"] < 1.0
    assert run["local_step"] > 0 and "mode" not in run  # a Python target has no modes
    assert_moments(x, (method, sampler))
    # The stored log p̃ is the target's at the stored states.
    np.testing.assert_allclose(run["log_p"].ravel(), gaussian(x.reshape(-1, 2))[0], rtol=1e-10, atol=1e-10)


def test_hybrid_metropolis_sweeps_on_the_free_field():
    """hybrid on lattice φ⁴ uses Metropolis sweeps (the CLI's default):
    <M²> of the 4×4 free field, 1/(2 m² V), within 4σ."""
    free = {"phi4": {"lattice": [4, 4], "m2": 0.5, "lambda": 0.0}}
    m = ff.train({**free, **RKL, "train": {**RKL["train"], "steps": 60, "batch_size": 64}}, progress=False)
    run = ff.hybrid(m, 2000, chains=4, seed=3, progress=False)
    assert run["x"].shape == (4, 2000, 4, 4)
    assert run["local_step"] == 0.5  # hybrid keeps its width: no warm-up
    r = ff.analyze(run["x"].mean(axis=(2, 3)) ** 2)
    assert abs(r["value"] - 1 / 16) < 4 * r["error"], r


def test_adaptive_learns_the_mode_weights():
    """Adaptive flow-MCMC from a practically untrained flow on two separated
    modes in d = 4: the production samples' weight of mode 0 is the exact 2/3
    within 4σ; the adapted model's metrics are the rounds."""
    t = ff.Target({"target": {"kind": "two_modes", "dim": 4}})
    init = ff.train({"seed": 1, "target": {"kind": "two_modes", "dim": 4},
                     "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 1, "lr": 1e-12}},
                    progress=False)
    seen = []
    adapted, run = ff.adaptive(init, 2000, chains=4, seed=1, sampler={"rounds": 15},
                               progress=lambda d, total, msg: seen.append((d, total)))
    assert len(adapted.metrics["round"]) == 15 and set(adapted.metrics) >= {"global_acceptance", "walker_mode_0"}
    assert seen[-1][0] == seen[-1][1] == 15 + 4 * 2000
    assert run["x"].shape == (4, 2000, 4)
    # The mode of every sample is returned (the target's assignment).
    np.testing.assert_array_equal(run["mode"], t.modes(run["x"].reshape(-1, 4)).reshape(4, 2000))
    w0 = ff.analyze((run["mode"] == 0).astype(float))
    exact = t.mode_weights[0]
    assert abs(exact - 2 / 3) < 1e-12
    assert abs(w0["value"] - exact) < 4 * w0["error"] and w0["error"] < 0.05, w0
    # Production is global-local with the adapted flow: the same run.
    again = ff.global_local(adapted, 2000, chains=4, seed=1, progress=False)
    np.testing.assert_array_equal(again["x"], run["x"])
    # The adapted model samples on its own (IMH: exact as well).
    imh = ff.imh(adapted, 2000, chains=4, seed=5, progress=False)
    w = ff.analyze((imh["mode"] == 0).astype(float))
    assert abs(w["value"] - exact) < 4 * w["error"], w


def test_same_seed_same_samples_and_seeds_differ(gauss_model):
    a = ff.global_local(gauss_model, 300, chains=2, seed=7, progress=False)
    b = ff.global_local(gauss_model, 300, chains=2, seed=7, progress=False)
    c = ff.global_local(gauss_model, 300, chains=2, seed=8, progress=False)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], c["x"])
    # The first chain does not depend on how many chains run beside it.
    d = ff.global_local(gauss_model, 300, chains=3, seed=7, progress=False)
    np.testing.assert_array_equal(a["x"][:2], d["x"][:2])


THREADS = """
import sys, numpy as np, fieldflow as ff
sys.path.insert(0, {tests!r})
from conftest import gaussian
g = ff.Target.from_function(gaussian, 2)
m = ff.train({{"seed": 4, "train": {{"loss": {{"preset": "rkl"}}, "batch_size": 64, "steps": 10, "lr": 1e-3}}}},
             target=g, progress=False)
out = [ff.global_local(m, 300, chains=3, progress=False)["x"], ff.neutra(m, 300, chains=3, progress=False)["x"],
       ff.hybrid(m, 300, chains=3, progress=False)["x"]]
np.save(sys.argv[1], np.concatenate([o.ravel() for o in out]))
"""


def test_samples_do_not_depend_on_the_thread_count(tmp_path):
    script = THREADS.format(tests=str(Path(__file__).parent))
    outs = outputs_per_thread_count(script, tmp_path)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("method, sampler", [("global-local", None), ("neutra", {"local": "rw"})])
def test_python_and_the_cli_give_the_same_samples(tmp_path, method, sampler):
    """The same model, settings and seed through `fieldflow sample` and from
    Python: the analysis of the CLI's file equals that of the arrays."""
    exe = cli()
    m = ff.train({"seed": 1, "target": {"kind": "mog4"},
                  "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 20, "lr": 1e-3}}, progress=False)
    m.save(tmp_path / "m.h5")
    args = [str(exe), "sample", "--model", str(tmp_path / "m.h5"), "--method", method, "--n", "700", "--chains", "3",
            "--seed", "4", "--out", str(tmp_path / "s.h5"), "-q"]
    if sampler:
        (tmp_path / "c.toml").write_text("[sampler]\n" + "".join(f'{k} = "{v}"\n' for k, v in sampler.items()))
        args += ["--config", str(tmp_path / "c.toml")]
    subprocess.run(args, check=True, capture_output=True)
    run = ff.global_local if method == "global-local" else ff.neutra
    x = run(m, 700, chains=3, seed=4, sampler=sampler, progress=False)["x"]
    rows = ff.analyze_file(tmp_path / "s.h5")["observables"]
    for i in range(2):
        assert rows[f"x{i}"]["value"] == pytest.approx(ff.analyze(x[:, :, i])["value"], rel=1e-12, abs=1e-12)


def test_bad_sampler_settings_raise_one_line_errors(gauss_model):
    cases = [
        (dict(sampler={"walkerz": 3}), "walkerz"),
        (dict(sampler={"local": "metropolis"}), "Metropolis sweeps need a lattice"),
        (dict(sampler={"local": "leapfrog"}), "local"),
        (dict(local_steps=0), "local_steps = 0"),
        (dict(local_width=-1.0), "local_width = -1"),
        (dict(sampler={"target_acceptance": 1.5}), "sampler.target_acceptance = 1.5"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match) as e:
            ff.global_local(gauss_model, 10, progress=False, **kwargs)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="n = 0"):
        ff.neutra(gauss_model, 0, progress=False)
    with pytest.raises(ValueError, match="sampler.rounds = 0"):
        ff.adaptive(gauss_model, 10, sampler={"rounds": 0}, progress=False)
    with pytest.raises(ValueError, match="sampler.adapted_model"):
        ff.adaptive(gauss_model, 10, sampler={"adapted_model": "x.h5"}, progress=False)
    with pytest.raises(ValueError, match="method = adaptive"):
        ff._native.sample(gauss_model, "adaptive", 10)


def test_a_stochastic_normalizing_flow_is_refused_where_the_method_needs_a_flow():
    snf = ff.train({"target": {"kind": "mog4"}, "flow": {"stages": [{"flow": {"n_layers": 2}},
                                                                   {"langevin": {"steps": 1, "eps": 0.01}}]},
                    "train": {"loss": {"preset": "rkl"}, "batch_size": 16, "steps": 2, "lr": 1e-3}}, progress=False)
    with pytest.raises(ValueError, match=r"method = neutra: the model is not a normalizing flow, a bijection x = f\(z\) \(a stochastic normalizing flow, a diffusion model or a mixture of flows\); use imh, isir or is$"):
        ff.neutra(snf, 10, progress=False)
    with pytest.raises(ValueError, match=r"method = global-local: the model \(a stochastic normalizing flow or an LRDS sampler\) has no"):
        ff.global_local(snf, 10, progress=False)
    with pytest.raises(ValueError, match="method = adaptive: the model is not a normalizing flow"):
        ff.adaptive(snf, 10, progress=False)


def test_an_exception_in_the_progress_callback_stops_sampling(gauss_model):
    def progress(done, total, message):
        if done > 500:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ff.global_local(gauss_model, 10**6, chains=2, progress=progress)


def test_ctrl_c_stops_sampling_and_training(gauss_model):
    """A SIGINT while Rust runs (what Ctrl-C or a notebook's interrupt
    sends) ends the call with KeyboardInterrupt at the next block or step.
    The signal comes from another process, as Ctrl-C's does."""
    import os
    import signal
    import subprocess

    # A process started in the background by a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no handler: restore
    # Python's own for the test (a terminal's Ctrl-C finds it installed).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    for call in (lambda: ff.global_local(gauss_model, 2 * 10**6, chains=2, progress=False),
                 lambda: ff.train({**RKL, "train": {**RKL["train"], "steps": 10**8}},
                                  target=ff.Target({"target": {"kind": "mog4"}}), progress=False)):
        killer = subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -INT {os.getpid()}"])
        try:
            with pytest.raises(KeyboardInterrupt):
                call()
        finally:
            killer.wait()
    signal.signal(signal.SIGINT, previous)


def test_adaptive_on_a_python_target():
    """Adaptive flow-MCMC on the numpy Gaussian (no modes): the production
    means and variances within 4σ; the adapted model keeps the target's
    python section."""
    g = ff.Target.from_function(gaussian, 2)
    init = ff.train({"seed": 1, "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 1, "lr": 1e-12}},
                    target=g, progress=False)
    adapted, run = ff.adaptive(init, 1500, chains=4, seed=3, sampler={"rounds": 8}, progress=False)
    assert adapted.config["target"]["kind"] == "python" and len(adapted.metrics["round"]) == 8
    assert_moments(run["x"], "adaptive")


def two_bumps(x):
    """0.7 N(−3·𝟙, 0.25 I) + 0.3 N(3·𝟙, 0.25 I) in d = 3 (normalized), with its score."""
    lp, sc = [], []
    for w, m in ((0.7, -3.0), (0.3, 3.0)):
        d = x - m
        lp.append(np.log(w) - 0.5 * np.sum(d * d, axis=1) / 0.25 - 1.5 * np.log(2 * np.pi * 0.25))
        sc.append(-d / 0.25)
    lp = np.stack(lp)
    top = lp.max(axis=0)
    r = np.exp(lp - top)
    r /= r.sum(axis=0)
    return top + np.log(np.exp(lp - top).sum(axis=0)), r[0][:, None] * sc[0] + r[1][:, None] * sc[1]


def test_a_mixture_of_flows_weighs_the_modes_of_a_python_target(rng):
    """[flow] mixture: one flow per k-means cluster of 60 samples, RKL, weights
    by importance sampling; IMH's mode weights within 4σ of 0.7 / 0.3."""
    n0 = 42
    data = np.concatenate([rng.normal(-3.0, 0.5, (n0, 3)), rng.normal(3.0, 0.5, (60 - n0, 3))])
    cfg = {"seed": 1, "flow": {"n_layers": 2, "mixture": {"components": 2, "weight_samples": 1000}},
           "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 100, "lr": 3e-3}}
    m = ff.train(cfg, target=ff.Target.from_function(two_bumps, 3), data=data, progress=False)
    run = ff.imh(m, 4000, chains=4, seed=5, progress=False)
    w = ff.analyze((run["x"][:, :, 0] < 0).astype(float))
    assert abs(w["value"] - 0.7) < 4 * w["error"] and w["error"] < 0.02, w
    assert run["acceptance"] > 0.5


def test_importance_sampling_of_a_mixture_with_equal_component_weights(rng):
    """``mixture_weights="equal"``: half the draws from each component (the
    trained weights put 70 % on the heavy one), and the self-normalized mode
    weight still 0.7 within 4σ; a model that is not a mixture, or another
    word, is a one-line ValueError."""
    n0 = 42
    data = np.concatenate([rng.normal(-3.0, 0.5, (n0, 3)), rng.normal(3.0, 0.5, (60 - n0, 3))])
    cfg = {"seed": 1, "flow": {"n_layers": 2, "mixture": {"components": 2, "weight_samples": 1000}},
           "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 100, "lr": 3e-3}}
    m = ff.train(cfg, target=ff.Target.from_function(two_bumps, 3), data=data, progress=False)
    n = 8000
    trained = ff.importance(m, n, seed=2)
    equal = ff.importance(m, n, seed=2, mixture_weights="equal")
    share = lambda r: np.mean(r["x"][:, 0] < 0)
    assert abs(share(trained) - 0.7) < 4 * np.sqrt(0.21 / n)
    assert abs(share(equal) - 0.5) < 4 * np.sqrt(0.25 / n)
    w = np.exp(equal["log_w"] - equal["log_w"].max())
    a = (equal["x"][:, 0] < 0).astype(float)
    r = np.sum(w * a) / np.sum(w)
    err = np.sqrt(np.sum((w * (a - r)) ** 2)) / np.sum(w)
    assert abs(r - 0.7) < 4 * err and err < 0.01, (r, err)
    with pytest.raises(ValueError, match=r"^mixture_weights = \"most\": expected \"trained\" or \"equal\"$"):
        ff.importance(m, 10, mixture_weights="most")
    single = ff.train({"seed": 1, "flow": {"n_layers": 2}, "train": {"loss": {"preset": "rkl"}, "steps": 1}},
                      target=ff.Target.from_function(two_bumps, 3), progress=False)
    with pytest.raises(ValueError, match=r"^sampler.mixture_weights = equal: the model is not a mixture of flows$"):
        ff.importance(single, 10, mixture_weights="equal")


def test_analyze_file_reports_slips_start_decided(tmp_path):
    """A SLIPS run of the CLI on two modes: every particle keeps the mode of
    its start estimate (fieldflow_slips::start_decided), and the analysis
    says so (`start_decided`, the warning); no importance weights there."""
    (tmp_path / "c.toml").write_text(
        '[target]\nkind = "two_modes"\ndim = 8\n\n[sampler]\nparticles = 64\nblock = 64\nsteps = 32\n'
        'mcmc_steps = 8\nmcmc_chains = 2\nsigma = 1.352\nt0 = 0.286\n')
    subprocess.run([str(cli()), "sample", "--method", "slips", "--config", str(tmp_path / "c.toml"),
                    "--seed", "2", "--out", str(tmp_path / "s.h5"), "-q"], check=True, capture_output=True)
    a = ff.analyze_file(tmp_path / "s.h5")
    assert a["start_decided"] == 1.0
    assert any("fixed by its start draws" in w for w in a["warnings"])
    assert a["pareto_k"] is None
    assert set(a["observables"]) >= {"mode_0", "mode_1"}
