"""Bad input raises a clear one-line exception (never a crash, never an
overwritten file)."""

import numpy as np
import pytest

import fieldflow as ff
from conftest import gaussian

RKL = {"train": {"loss": {"preset": "rkl"}, "batch_size": 32, "steps": 5, "lr": 1e-3}}


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match=r"phi4\.m2"):
        ff.Target({"phi4": {"lattice": [4, 4], "m2": 0.5}})
    with pytest.raises(ValueError, match="no target"):
        ff.Target({})
    with pytest.raises(ValueError, match="target"):
        ff.Target({"target": {"kind": "no_such_target"}})
    with pytest.raises(ValueError, match="n_cfg = 0"):
        ff.generate({"phi4": {"lattice": [4], "m2": 1.0, "lambda": 0.0}, "n_cfg": 0})
    with pytest.raises(ValueError, match=r"^lr = -1: must be finite"):
        ff.train({"target": {"kind": "mog4"}, "train": {"loss": {"preset": "rkl"}, "batch_size": 8, "steps": 1, "lr": -1.0}})
    with pytest.raises(TypeError, match="config value"):
        ff.Target({"phi4": {"lattice": [4], "m2": object(), "lambda": 0.0}})


def test_messages_are_one_line():
    for bad in ({"phi4": {"lattice": [4, 4], "m2": 0.5}}, {"phi4": {"lattice": [0], "m2": 1.0, "lambda": 0.0}}):
        with pytest.raises(ValueError) as e:
            ff.Target(bad)
        assert "\n" not in str(e.value)


def test_bad_shapes():
    t = ff.Target({"phi4": {"lattice": [4, 4], "m2": 0.5, "lambda": 0.0}})
    with pytest.raises(ValueError, match=r"x: shape \[3, 5\]"):
        t.log_prob(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="x: shape"):
        t.log_prob(np.zeros(16))
    with pytest.raises(ValueError, match="float64"):
        t.log_prob([["a", "b"]])
    with pytest.raises(ValueError, match="data"):
        ff.analyze(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="data"):
        ff.analyze([1.0])


def test_python_target_errors_propagate():
    def broken(x):
        raise RuntimeError("my density failed")

    with pytest.raises(RuntimeError, match="my density failed"):
        ff.Target.from_function(broken, 2).log_prob(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="my density failed"):
        ff.train(RKL, target=ff.Target.from_function(broken, 2), progress=False)

    def wrong_shape(x):
        return np.zeros(len(x)), np.zeros((len(x), 3))

    with pytest.raises(ValueError, match=r"wrong_shape: returned log_p of shape \[4\] and score of shape \[4, 3\]"):
        ff.Target.from_function(wrong_shape, 2).score(np.zeros((4, 2)))

    def not_a_tuple(x):
        return 1.0

    with pytest.raises(ValueError, match="must return \\(log_p, score\\)"):
        ff.Target.from_function(not_a_tuple, 2).log_prob(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="dim = 0"):
        ff.Target.from_function(gaussian, 0)
    with pytest.raises(ValueError, match="not callable"):
        ff.Target.from_function(3, 2)


def test_target_given_twice_and_python_target_without_data():
    g = ff.Target.from_function(gaussian, 2)
    with pytest.raises(ValueError, match="target is given twice"):
        ff.train({"target": {"kind": "mog4"}, **RKL}, target=g, progress=False)
    with pytest.raises(ValueError, match="data: a Python target"):
        ff.train({"data": {"exact": True}, **RKL}, target=g, progress=False)
    with pytest.raises(ValueError, match="flow.stages"):
        ff.train({"flow": {"stages": [{"flow": {"n_layers": 2}}, {"langevin": {"steps": 1, "eps": 0.01}}]}, **RKL},
                 target=g, progress=False)


def test_existing_files_are_not_overwritten(tmp_path):
    out = tmp_path / "ens.h5"
    out.write_text("precious")
    cfg = {"phi4": {"lattice": [4], "m2": 1.0, "lambda": 0.0}, "n_cfg": 10, "n_therm": 10, "chains": 1}
    with pytest.raises(ValueError, match="exists; pass --force"):
        ff.generate(cfg, out=out)
    model = ff.train({"target": {"kind": "mog4"}, **RKL}, progress=False)
    with pytest.raises(ValueError, match="exists; pass --force"):
        model.save(out)
    assert out.read_text() == "precious"
    with pytest.raises(ValueError, match="missing.h5"):
        ff.Model.load(tmp_path / "missing.h5")


def test_an_exception_in_the_progress_callback_stops_training():
    seen = []

    def progress(done, total, message):
        seen.append(done)
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ff.train({"target": {"kind": "mog4"}, **RKL, "train": {**RKL["train"], "steps": 50}}, progress=progress)
    assert max(seen) == 3
