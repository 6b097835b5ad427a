"""Targets: arrays in and out, built-in values against independent numpy
oracles (the action of README's conventions), scores against finite
differences, and Python functions as targets."""

import numpy as np
import pytest

import fieldflow as ff
from conftest import MU, VAR, gaussian


def phi4_action(phi, m2, lam):
    """S(φ) = Σₓ [Σ_μ (φ(x+μ̂) − φ(x))² + m²φ² + λφ⁴] (periodic), batch [n, *L]."""
    s = (m2 * phi**2 + lam * phi**4).reshape(len(phi), -1).sum(axis=1)
    for mu in range(1, phi.ndim):
        d = np.roll(phi, -1, axis=mu) - phi
        s += (d * d).reshape(len(phi), -1).sum(axis=1)
    return s


def phi4_force(phi, m2, lam):
    """∇S: 2 Σ_μ (2φ(x) − φ(x+μ̂) − φ(x−μ̂)) + 2m²φ + 4λφ³."""
    g = 2 * m2 * phi + 4 * lam * phi**3
    for mu in range(1, phi.ndim):
        g += 2 * (2 * phi - np.roll(phi, -1, axis=mu) - np.roll(phi, 1, axis=mu))
    return g


@pytest.mark.parametrize("lattice", [[6], [4, 4], [2, 3, 4]])
def test_phi4_log_prob_and_score_match_the_action(lattice, rng):
    m2, lam = -1.5, 0.7
    t = ff.Target({"phi4": {"lattice": lattice, "m2": m2, "lambda": lam}})
    assert t.shape == lattice and t.dim == int(np.prod(lattice))
    x = rng.normal(size=[7] + lattice)
    lp, score = t.log_prob_and_score(x)
    assert lp.shape == (7,) and score.shape == x.shape
    np.testing.assert_allclose(lp, -phi4_action(x, m2, lam), rtol=1e-12)
    np.testing.assert_allclose(score, -phi4_force(x, m2, lam), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(t.log_prob(x), lp)
    np.testing.assert_array_equal(t.score(x), score)


def test_free_field_log_z_is_exact():
    # Free field: Z = Π_k (π / ω_k²)^{1/2}, ω_k² = m² + Σ_μ 4 sin²(k_μ/2) (S = φᵀAφ, A = ω²).
    L, m2 = 4, 0.5
    k = 2 * np.pi * np.arange(L) / L
    w2 = m2 + 4 * np.sin(k[:, None] / 2) ** 2 + 4 * np.sin(k[None, :] / 2) ** 2
    exact = 0.5 * np.sum(np.log(np.pi / w2))
    t = ff.Target({"phi4": {"lattice": [L, L], "m2": m2, "lambda": 0.0}})
    assert abs(t.log_z - exact) < 1e-10


def test_synthetic_gaussian_matches_numpy(rng):
    t = ff.Target({"target": {"kind": "gaussian", "mean": list(MU), "cov": list(VAR)}})
    x = rng.normal(size=(9, 2))
    lp, s = t.log_prob_and_score(x)
    ref_lp, ref_s = gaussian(x)
    np.testing.assert_allclose(lp, ref_lp, rtol=1e-12)
    np.testing.assert_allclose(s, ref_s, rtol=1e-12)
    assert abs(t.log_z - 0.5 * np.sum(np.log(2 * np.pi * VAR))) < 1e-12


def test_mog4_score_matches_finite_differences(rng):
    t = ff.Target({"target": {"kind": "mog4"}})
    x = rng.normal(size=(5, t.dim)) * 3
    _, s = t.log_prob_and_score(x)
    h = 1e-5
    for i in range(t.dim):
        e = np.zeros(t.dim)
        e[i] = h
        fd = (t.log_prob(x + e) - t.log_prob(x - e)) / (2 * h)
        np.testing.assert_allclose(s[:, i], fd, rtol=1e-6, atol=1e-8)


def test_array_likes_round_trip(rng):
    t = ff.Target({"phi4": {"lattice": [4, 4], "m2": 0.5, "lambda": 0.3}})
    x = rng.normal(size=(3, 4, 4))
    ref = t.log_prob(x)
    np.testing.assert_array_equal(t.log_prob(x.astype(np.float32).astype(np.float64)), t.log_prob(x.astype(np.float32)))
    np.testing.assert_array_equal(t.log_prob(x.tolist()), ref)
    np.testing.assert_array_equal(t.log_prob(x.reshape(3, 16)), ref)
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(t.log_prob(xt), ref)
    np.testing.assert_array_equal(t.score(x[:, ::1, ::1]), t.score(np.ascontiguousarray(x)))
    np.testing.assert_array_equal(t.log_prob(x[::2]), ref[::2])  # a strided batch
    assert t.config() == {"phi4": {"lattice": [4, 4], "m2": 0.5, "lambda": 0.3}}


def test_python_function_target_is_called_once_per_batch(rng):
    t = ff.Target.from_function(gaussian, 2)
    x = rng.normal(size=(1000, 2))
    lp, s = t.log_prob_and_score(x)
    ref_lp, ref_s = gaussian(x)
    np.testing.assert_array_equal(lp, ref_lp)
    np.testing.assert_array_equal(s, ref_s)
    assert t.calls == 1
    t.log_prob(x)
    assert t.calls == 2
