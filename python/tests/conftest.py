"""Shared fixtures of the Python package's tests (run by `cargo xtask test`)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# The user-defined target of the tests: N(mu, diag(var)) in d = 2, written
# in numpy (log p̃ up to its constant, and its score).
MU = np.array([1.0, -2.0])
VAR = np.array([4.0, 0.25])


def gaussian(x):
    d = x - MU
    return -0.5 * np.sum(d * d / VAR, axis=1), -d / VAR


def cli_exe():
    """The command line's release binary, or None if it is not built."""
    exe = Path(__file__).resolve().parents[2] / "target" / "release" / "fieldflow"
    return exe if exe.exists() else None


def cli():
    """The command line's release binary (skips the test if it is not built)."""
    exe = cli_exe()
    if exe is None:
        pytest.skip("the fieldflow binary is not built")
    return exe


def outputs_per_thread_count(script, tmp_path):
    """Runs `script` (Python source that saves one array to argv[1]) with
    RAYON_NUM_THREADS = 1 and 2 and returns the two arrays."""
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.npy"
        env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
        outs.append(np.load(out))
    return outs


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long checks left out of the default run (see their module docstring)")
