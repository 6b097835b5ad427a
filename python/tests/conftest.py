"""Shared fixtures of the Python package's tests (run by `cargo xtask test`)."""

import numpy as np
import pytest

# The user-defined target of the tests: N(mu, diag(var)) in d = 2, written
# in numpy (log p̃ up to its constant, and its score).
MU = np.array([1.0, -2.0])
VAR = np.array([4.0, 0.25])


def gaussian(x):
    d = x - MU
    return -0.5 * np.sum(d * d / VAR, axis=1), -d / VAR


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long checks left out of the default run (see their module docstring)")
