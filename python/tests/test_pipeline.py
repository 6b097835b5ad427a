"""The pipeline from Python: generate, train, save/load, IMH and
importance sampling; statistical checks against exact values with
Γ-method error bars; analyze against pyerrors; thread-count independence."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

import fieldflow as ff
from conftest import MU, VAR, cli, gaussian, outputs_per_thread_count

FREE = {"phi4": {"lattice": [4, 4], "m2": 0.5, "lambda": 0.0}}


def test_generate_file_and_array_agree(tmp_path):
    cfg = {**FREE, "n_cfg": 50, "n_therm": 20, "chains": 2, "seed": 7}
    a = ff.generate(cfg)
    assert a.shape == (2, 50, 4, 4) and a.dtype == np.float64
    b = ff.generate(cfg, out=tmp_path / "ens.h5")
    assert (tmp_path / "ens.h5").exists()
    np.testing.assert_array_equal(a, b)
    c = ff.generate(cfg, out=tmp_path / "ens.h5", force=True)
    np.testing.assert_array_equal(a, c)


def test_generate_free_field_m2_is_exact():
    # <M²> of the free field: M = φ̃(0)/V, <|φ̃(0)|²> = V/(2 m²) (S = ½φᵀ(2A)φ).
    cfg = {**FREE, "n_cfg": 1000, "n_therm": 100, "chains": 2, "seed": 3}
    ens = ff.generate(cfg)
    v = 16
    exact = 1.0 / (2 * 0.5 * v)
    r = ff.analyze(ens.mean(axis=(2, 3)) ** 2)
    assert abs(r["value"] - exact) < 4 * r["error"], r


def test_model_save_load_round_trip(tmp_path):
    cfg = {"seed": 2, "target": {"kind": "mog4"},
           "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 20, "lr": 1e-3, "metrics_every": 10}}
    m = ff.train(cfg, progress=False)
    assert set(m.metrics) >= {"step", "loss", "ess"} and list(m.metrics["step"]) == [0.0, 10.0, 20.0]
    x, lq = m.sample(100, seed=5)
    assert x.shape == (100, 2) and lq.shape == (100,)
    np.testing.assert_allclose(m.log_q(x), lq, rtol=1e-10, atol=1e-10)
    m.save(tmp_path / "m.h5")
    back = ff.Model.load(tmp_path / "m.h5")
    x2, lq2 = back.sample(100, seed=5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(lq, lq2)
    assert back.config["flow"] == m.config["flow"]
    # Training is reproducible: the same config gives the same model.
    np.testing.assert_array_equal(ff.train(cfg, progress=False).sample(10, seed=1)[0], m.sample(10, seed=1)[0])


def test_python_target_model_round_trip(tmp_path):
    g = ff.Target.from_function(gaussian, 2)
    m = ff.train({"seed": 1, "train": {"loss": {"preset": "rkl"}, "batch_size": 32, "steps": 5, "lr": 1e-3}}, target=g,
                 progress=False)
    m.save(tmp_path / "g.h5")
    with pytest.raises(ValueError, match="pass target="):
        ff.Model.load(tmp_path / "g.h5")
    back = ff.Model.load(tmp_path / "g.h5", target=g)
    np.testing.assert_array_equal(back.sample(10, seed=2)[0], m.sample(10, seed=2)[0])


def test_user_gaussian_rkl_then_imh_is_exact():
    """A Python Gaussian target trained by RKL and sampled by IMH: the
    chain's mean and variance agree with the exact ones within 4σ (σ: Γ-method
    over the chains as replica)."""
    g = ff.Target.from_function(gaussian, 2)
    calls = []
    m = ff.train({"seed": 1, "train": {"loss": {"preset": "rkl"}, "batch_size": 128, "steps": 300, "lr": 3e-3}},
                 target=g, progress=lambda done, total, msg: calls.append(done))
    assert calls[-1] == 300
    # One call of the function per step's batch (+ the metrics' batches).
    assert 300 <= g.calls <= 310
    run = ff.imh(m, 5000, chains=4, seed=2)
    x = run["x"]
    assert x.shape == (4, 5000, 2)
    assert 0.5 < run["acceptance"] < 1.0
    for i in range(2):
        mean = ff.analyze(x[:, :, i])
        assert abs(mean["value"] - MU[i]) < 4 * mean["error"], (i, mean)
        var = ff.analyze((x[:, :, i] - MU[i]) ** 2)
        assert abs(var["value"] - VAR[i]) < 4 * var["error"], (i, var)
    # The log-weights IMH used are those of the target and the flow.
    lp, _ = gaussian(x.reshape(-1, 2))
    np.testing.assert_allclose(run["log_p"].ravel(), lp, rtol=1e-12)
    # Importance sampling: log Z of the unnormalized Gaussian within 4σ.
    s = ff.importance(m, 20000, seed=3)
    exact = 0.5 * np.sum(np.log(2 * np.pi * VAR))
    assert abs(s["log_z"] - exact) < 4 * s["log_z_error"], s["log_z"]
    assert 0.5 < s["ess"] <= 1.0
    # i-SIR with 4 proposals per step: exact as well.
    r = ff.isir(m, 2000, proposals=4, chains=2, seed=4)
    mean = ff.analyze(r["x"][:, :, 0])
    assert abs(mean["value"] - MU[0]) < 4 * mean["error"]


@pytest.mark.parametrize("tau", [0.0, 0.8])
def test_analyze_agrees_with_pyerrors(tau, rng):
    pe = pytest.importorskip("pyerrors")
    n = 20000
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for t in range(1, n):  # AR(1), ρ(t) = a^t
        x[t] = tau * x[t - 1] + e[t]
    x += 3.0
    ours = ff.analyze(x)
    obs = pe.Obs([x], ["ens"])
    obs.gamma_method(S=1.5)
    assert abs(ours["value"] - obs.value) < 1e-12
    assert abs(ours["error"] / obs.dvalue - 1) < 0.05, (ours, obs.dvalue)
    assert abs(ours["tau_int"] / obs.e_tauint["ens"] - 1) < 0.05, (ours, obs.e_tauint)
    # and the exact τ_int = ½ (1 + a)/(1 − a) within 4σ
    exact = 0.5 * (1 + tau) / (1 - tau)
    assert abs(ours["tau_int"] - exact) < 4 * ours["tau_int_error"], ours


def test_analyze_flags_chains_that_disagree(rng):
    # Four independent chains: Wolff's Q is a number in (0, 1]; one chain
    # shifted by 10 of its own errors: Q ≈ 0 and the warning names it.
    x = rng.normal(size=(4, 4000))
    ok = ff.analyze(x)
    assert 0.0 < ok["replica_q"] <= 1.0 and ok["n_replica"] == 4
    x[2] += 10.0 / np.sqrt(4000)
    bad = ff.analyze(x)
    assert bad["replica_q"] < 1e-6
    assert any(w.startswith("ReplicaDisagreement") for w in bad["warnings"]), bad["warnings"]
    assert ff.analyze(x[0])["replica_q"] is None


THREADS = """
import sys, numpy as np, fieldflow as ff
sys.path.insert(0, {tests!r})
from conftest import gaussian
g = ff.Target.from_function(gaussian, 2)
m = ff.train({{"seed": 4, "train": {{"loss": {{"preset": "rkl"}}, "batch_size": 96, "steps": 20, "lr": 1e-3}}}}, target=g, progress=False, chunk_rows=32)
b = ff.train({{"seed": 4, "target": {{"kind": "mog4"}}, "train": {{"loss": {{"preset": "rkl"}}, "batch_size": 96, "steps": 20, "lr": 1e-3}}}}, progress=False)
r = ff.imh(m, 300, chains=2)
np.save(sys.argv[1], np.concatenate([m.sample(50, seed=1)[0].ravel(), b.sample(50, seed=1)[0].ravel(), r["x"].ravel()]))
"""


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    script = THREADS.format(tests=str(Path(__file__).parent))
    outs = outputs_per_thread_count(script, tmp_path)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_generate_writes_the_file_of_the_cli(tmp_path):
    cfg = {**FREE, "n_cfg": 60, "n_therm": 20, "chains": 2, "seed": 7}
    ff.generate(cfg, out=tmp_path / "py.h5")
    subprocess.run([str(cli()), "generate", "--lattice", "4x4", "--m2", "0.5", "--lambda", "0", "--n-cfg", "60",
                    "--n-therm", "20", "--chains", "2", "--seed", "7", "--quiet", "--out", str(tmp_path / "cli.h5")],
                   check=True, capture_output=True)
    a, b = ff.analyze_file(tmp_path / "py.h5"), ff.analyze_file(tmp_path / "cli.h5")
    assert a["observables"] == b["observables"]


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    ff.train({"target": {"kind": "mog4"}, "train": {"loss": {"preset": "rkl"}, "batch_size": 16, "steps": 7,
                                                    "lr": 1e-3}})
    err = capsys.readouterr().err
    assert "train" in err and "7/7" in err
    seen = []
    m = ff.train({"target": {"kind": "mog4"}, "train": {"loss": {"preset": "rkl"}, "batch_size": 16, "steps": 2,
                                                        "lr": 1e-3}}, progress=False)
    ff.imh(m, 1000, chains=2, progress=lambda done, total, msg: seen.append((done, total)))
    assert seen[-1] == (2000, 2000) and len(seen) == 100
    ff.imh(m, 300, chains=2)
    assert "imh" in capsys.readouterr().err


def test_the_cli_samples_a_model_saved_from_python(tmp_path):
    exe = cli()
    m = ff.train({"seed": 1, "target": {"kind": "mog4"},
                  "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 10, "lr": 1e-3}}, progress=False)
    m.save(tmp_path / "m.h5")
    out = tmp_path / "s.h5"
    subprocess.run([str(exe), "sample", "--model", str(tmp_path / "m.h5"), "--n", "100", "--chains", "2",
                    "--out", str(out)], check=True, capture_output=True)
    assert out.exists()


def test_analyze_file_is_the_array_analysis(tmp_path):
    cfg = {**FREE, "n_cfg": 300, "n_therm": 50, "chains": 2, "seed": 5}
    ens = ff.generate(cfg, out=tmp_path / "e.h5")
    a = ff.analyze_file(tmp_path / "e.h5")
    assert a["chains"] == 2 and a["n_per_chain"] == 300 and a["method"] == "mcmc"
    row = a["observables"]["M2"]
    ours = ff.analyze(ens.mean(axis=(2, 3)) ** 2)
    for k in ("value", "error", "tau_int", "window"):
        assert row[k] == pytest.approx(ours[k], rel=1e-12), k
    assert row["exact"] == pytest.approx(1 / 16)


def test_modes_of_a_mixture(rng):
    t = ff.Target({"target": {"kind": "mog4"}})
    assert t.mode_weights == pytest.approx([0.1, 0.2, 0.3, 0.4])
    x = rng.normal(size=(50, 2)) * 5
    k = t.modes(x)
    assert k.shape == (50,) and set(k) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="no mode structure"):
        ff.Target.from_function(gaussian, 2).modes(x)


def test_chunk_rows_sets_the_calls_per_step():
    cfg = {"seed": 1, "train": {"loss": {"preset": "rkl"}, "batch_size": 128, "steps": 10, "lr": 1e-3,
                                "metrics_every": 100}}
    one = ff.Target.from_function(gaussian, 2)
    ff.train(cfg, target=one, progress=False)
    four = ff.Target.from_function(gaussian, 2)
    ff.train(cfg, target=four, progress=False, chunk_rows=32)
    # + the metrics' evaluations at steps 0 and 10 (batched as a whole)
    assert one.calls - 10 == four.calls - 40 and 10 <= one.calls <= 14
    with pytest.raises(ValueError, match="chunk_rows: only for a Python target"):
        ff.train({"target": {"kind": "mog4"}, **cfg}, progress=False, chunk_rows=32)


def test_a_diffusion_model_from_python(tmp_path):
    ens = ff.generate({**FREE, "n_cfg": 500, "n_therm": 100, "chains": 2, "seed": 1})
    cfg = {**FREE, "seed": 2, "diffusion": {"architecture": {"kind": "local", "range": 1}, "levels": 8},
           "train": {"steps": 100, "lr": 0.05, "batch_size": 64, "metrics_every": 50}}
    m = ff.train(cfg, data=ens.reshape(-1, 4, 4)[::2], progress=False)
    assert "diffusion" in m.config and m.has_density
    x, lq = m.sample(50, seed=1)
    np.testing.assert_allclose(m.log_q(x), lq, rtol=1e-8, atol=1e-8)
    m.save(tmp_path / "d.h5")
    np.testing.assert_array_equal(ff.Model.load(tmp_path / "d.h5").sample(5, seed=3)[0], m.sample(5, seed=3)[0])
    assert ff.imh(m, 200, chains=2, progress=False)["x"].shape == (2, 200, 4, 4)
    # A diffusion model has a density (local moves work) but is no bijection.
    assert ff.global_local(m, 200, chains=2, progress=False)["x"].shape == (2, 200, 4, 4)
    with pytest.raises(ValueError, match="method = neutra: the model is not a normalizing flow.*use imh, isir, is, "
                                         "hybrid or global-local"):
        ff.neutra(m, 10, progress=False)
    with pytest.raises(ValueError, match="diffusion: "):
        ff.train({"diffusion": cfg["diffusion"], "train": cfg["train"]}, target=ff.Target.from_function(gaussian, 2),
                 progress=False)


def test_max_minutes_ends_training_early():
    m = ff.train({"target": {"kind": "mog4"}, "train": {"loss": {"preset": "rkl"}, "batch_size": 16, "steps": 10**9,
                                                        "lr": 1e-3, "max_minutes": 0.01}}, progress=False)
    assert 0 < m.metrics["step"][-1] < 10**9
