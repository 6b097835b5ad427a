"""Reads the files written by tests/h5py.rs with h5py and checks them.

Usage: python h5py_check.py DIR
Exits non-zero (AssertionError) on the first mismatch.
"""
import json
import sys

import h5py
import numpy as np

d = sys.argv[1]


def value(c, t, dof):
    return c * 1000.0 + t + dof / 64.0


def check_header(f, kind):
    a = f.attrs
    for name in ("fieldflow_schema", "fieldflow_version", "config", "created", "target"):
        assert isinstance(a[name], str), (name, type(a[name]))
    assert a["fieldflow_schema"] == kind, a["fieldflow_schema"]
    assert int(a["schema_version"]) == 1
    assert a["schema_version"].dtype == np.uint64
    assert int(a["seed"]) == 42 and a["seed"].dtype == np.uint64
    assert a["config"].startswith("[lattice]\nshape = [4, 4]\n"), a["config"]
    assert a["target"] == "phi4 d=2 L=4x4 kappa=0.2 lambda=0.02"
    assert len(a["created"]) == 20 and a["created"].endswith("Z")
    assert a["sampler"] == "hmc" and isinstance(a["sampler"], str)
    assert a["step_size"] == 0.1 and a["step_size"].dtype == np.float64
    assert int(a["n_leapfrog"]) == 10


with h5py.File(f"{d}/ens.h5", "r") as f:
    check_header(f, "ensemble")
    c = f["configs"]
    assert c.shape == (2, 12, 4, 4), c.shape
    assert c.dtype == np.float64
    assert c.maxshape == (2, None, 4, 4), c.maxshape
    assert c.chunks is not None
    x = c[...]
    assert x[1, 7, 2, 3] == value(1, 7, 2 * 4 + 3)
    assert x[0, 11, 3, 3] == value(0, 11, 15)
    t = np.arange(12)
    assert f["log_p"].dtype == np.float64 and f["log_p"].shape == (2, 12)
    assert np.array_equal(f["log_p"][1], -(100 + t) * 0.5)
    assert f["accepted"].dtype == np.uint8
    assert np.array_equal(f["accepted"][0], (t % 3 == 0).astype(np.uint8))
    cp = f["checkpoint"]
    assert cp.attrs["n_cfg_written"] == 12
    chains = json.loads(cp.attrs["chains"])
    assert chains == {"n_steps": 12, "step_size": [0.1, 0.12]}, chains
    assert cp["state"].shape == (2, 16) and cp["state"].dtype == np.float64
    assert np.array_equal(cp["state"][...], x[:, 11].reshape(2, 16))

with h5py.File(f"{d}/model.h5", "r") as f:
    check_header(f, "model")
    p = f["params"]
    assert p.dtype == np.float64 and p.shape == (37,)
    assert json.loads(p.attrs["architecture"])["n_params"] == 37
    assert f["adam/step"].dtype == np.uint64 and f["adam/step"][()] == 3
    assert f["adam/m"].shape == (37,) and f["adam/v"].shape == (37,)
    assert f["rng_state"].dtype == np.uint64
    assert list(f["rng_state"][...]) == [2**64 - 1, 1, 2, 3]
    assert list(f["metrics/loss"][...]) == [1.5, 1.25]
    assert f["metrics/loss"].maxshape == (None,)

with h5py.File(f"{d}/analysis.h5", "r") as f:
    check_header(f, "analysis")
    assert list(f.keys()) == ["ens.h5"], list(f.keys())
    assert list(f["ens.h5"].keys()) == ["|M|", "χ₂"], list(f["ens.h5"].keys())
    g = f["ens.h5/χ₂"]
    assert g.attrs["value"] == 4.0 and g.attrs["error"] == 0.04
    assert g.attrs["tau_int"] == 2.5 and g.attrs["tau_int_error"] == 0.25
    assert g.attrs["window"] == 12 and g.attrs["n"] == 1000
    assert np.array_equal(g["gamma"][...], [1.0, 0.6, 0.36, 0.2])

print("h5py: all checks passed")
