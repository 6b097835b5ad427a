"""Resumable training from Python (the command line's checkpoint file) and
the model files of Python targets (a `[target] kind = "python"` section the
command line refuses with a one-line error)."""

import subprocess

import numpy as np
import pytest

import fieldflow as ff
from conftest import cli, cli_exe, gaussian

CFG = {"seed": 3, "checkpoint_every": 10,
       "train": {"loss": {"preset": "rkl"}, "batch_size": 32, "steps": 40, "lr": 2e-3, "metrics_every": 5}}


def interrupt_at(step):
    def progress(done, total, message):
        if done == step:
            raise KeyboardInterrupt
    return progress


def assert_same_model(a, b):
    np.testing.assert_array_equal(a.params, b.params)
    assert set(a.metrics) == set(b.metrics)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)


@pytest.mark.parametrize("python_target", [False, True])
def test_interrupted_training_resumes_bit_identically(tmp_path, python_target):
    if python_target:
        cfg, kw = CFG, {"target": ff.Target.from_function(gaussian, 2)}
    else:
        cfg, kw = {**CFG, "target": {"kind": "mog4"}}, {}
    whole = ff.train(cfg, progress=False, checkpoint=tmp_path / "whole.h5", **kw)
    assert list(whole.metrics["step"]) == list(range(0, 41, 5))
    # Ctrl-C (here: the progress callback) after step 17: the checkpoint
    # holds step 17, and resuming ends where the uninterrupted run ended.
    path = tmp_path / "cut.h5"
    with pytest.raises(KeyboardInterrupt):
        ff.train(cfg, progress=interrupt_at(17), checkpoint=path, **kw)
    assert path.exists()
    assert list(ff.Model.load(path, **kw).metrics["step"]) == [0, 5, 10, 15]
    if not python_target and cli_exe() is not None:
        # The command line continues the same checkpoint to the same model.
        copy = tmp_path / "cli.h5"
        copy.write_bytes(path.read_bytes())
        subprocess.run([str(cli_exe()), "train", "--resume", "--out", str(copy), "-q"], check=True,
                       capture_output=True)
        assert_same_model(whole, ff.Model.load(copy))
    resumed = ff.train(None, progress=False, checkpoint=path, resume=True, **kw)
    assert_same_model(whole, resumed)
    # and the file written at the end is that model
    assert_same_model(whole, ff.Model.load(path, **kw))
    # Extending the run: train.steps may be raised on resuming.
    longer = ff.train({"train": {"steps": 50}}, progress=False, checkpoint=path, resume=True, **kw)
    assert longer.metrics["step"][-1] == 50
    np.testing.assert_array_equal(
        longer.params, ff.train({**cfg, "train": {**cfg["train"], "steps": 50}}, progress=False, **kw).params)


def test_checkpoint_errors(tmp_path):
    g = ff.Target.from_function(gaussian, 2)
    path = tmp_path / "m.h5"
    path.write_text("precious")
    with pytest.raises(ValueError, match="exists; pass --force"):
        ff.train(CFG, target=g, progress=False, checkpoint=path)
    assert path.read_text() == "precious"
    with pytest.raises(ValueError, match="resume=True: give the checkpoint="):
        ff.train(None, target=g, progress=False, resume=True)
    with pytest.raises(ValueError, match="config: required"):
        ff.train(None, target=g, progress=False)
    ok = tmp_path / "ok.h5"
    ff.train(CFG, target=g, progress=False, checkpoint=ok)
    with pytest.raises(ValueError, match="continues with the config stored in"):
        ff.train({"train": {"lr": 1.0}}, target=g, progress=False, checkpoint=ok, resume=True)
    with pytest.raises(ValueError, match=r"a model of the Python function gaussian \(d = 2\): pass target="):
        ff.train(None, progress=False, checkpoint=ok, resume=True)




def test_a_python_target_model_names_its_target_and_the_cli_refuses_it(tmp_path):
    g = ff.Target.from_function(gaussian, 2)
    m = ff.train({"seed": 1, "train": {"loss": {"preset": "rkl"}, "batch_size": 32, "steps": 5, "lr": 1e-3}},
                 target=g, progress=False)
    assert m.config["target"] == {"kind": "python", "name": "gaussian", "dim": 2}
    m.save(tmp_path / "g.h5")
    with pytest.raises(ValueError, match=r"g\.h5: a model of the Python function gaussian \(d = 2\): pass target="):
        ff.Model.load(tmp_path / "g.h5")
    back = ff.Model.load(tmp_path / "g.h5", target=g)
    np.testing.assert_array_equal(back.params, m.params)
    exe = cli()
    r = subprocess.run([str(exe), "sample", "--model", str(tmp_path / "g.h5"), "--n", "10",
                        "--out", str(tmp_path / "s.h5")], capture_output=True, text=True)
    assert r.returncode != 0 and not (tmp_path / "s.h5").exists()
    err = r.stderr.strip()
    assert "target.kind = python" in err and "gaussian, d = 2" in err and "Model.load" in err, err
    assert "\n" not in err and "panicked" not in err, err
