"""free_energy: the command line's mode-weight estimate from Python (the
tilted 1D chain against the transfer operator; a bad config raises)."""

import pytest

import fieldflow as ff


def test_tilted_chain_log_ratio_matches_the_transfer_operator():
    # b = 0.05: w+ = 1.7e-7; small chains keep the test at a few seconds.
    r = ff.free_energy({"target": {"kind": "phi4_1d", "b": 0.05},
                        "free_energy": {"samples": 200, "warmup": 100, "field_nodes": 4}}, seed=3)
    v, e, exact = r["log_ratio"]["value"], r["log_ratio"]["error"], r["exact_log_ratio"]
    assert abs(exact - (-15.5665172513)) < 1e-8
    assert abs(v - exact) < 4 * e and e < 0.1, (v, e, exact)
    assert len(r["log_ratio"]["replicas"]) == 8


def test_bad_free_energy_config_raises_the_cli_message():
    with pytest.raises(ValueError, match="free_energy.field: missing"):
        ff.free_energy({"phi4": {"lattice": [4, 4], "m2": -1.0, "lambda": 1.0}})
    with pytest.raises(ValueError, match="free_energy.chains = 1"):
        ff.free_energy({"target": {"kind": "phi4_1d"}, "free_energy": {"chains": 1}})
