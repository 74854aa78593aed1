"""The thread-policy probe times real sweeps, one fresh store per policy."""

import argparse

import pytest
from test_sweep import ROOT, _spec, _write

from experiments import thread_policy


def test_policy_strings_are_checked():
    assert thread_policy.parse_policy("2x1") == (2, 1)
    for bad in ("2", "0x1", "ax2"):
        with pytest.raises(argparse.ArgumentTypeError, match="Invalid policy"):
            thread_policy.parse_policy(bad)


@pytest.mark.tf_only
def test_each_policy_runs_the_whole_sweep_and_reports_configurations_per_hour(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = _write(tmp_path, _spec(study="policy", seeds=[0]), "policy.yaml")
    rows = thread_policy.main(["--spec", str(path), "--policies", "1x1", "2x1"])
    assert [r["policy"] for r in rows] == ["1x1", "2x1"]
    assert all(
        r["finished"] == 2 and r["configs_per_hour"] == pytest.approx(2 / r["wall_s"] * 3600) for r in rows
    )
