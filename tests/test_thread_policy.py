"""The thread-policy probe times real sweeps, one fresh store per policy."""

import argparse

import pytest
from test_sweep import ROOT, _spec, _write

from experiments.sweep import thread_policy

pytestmark = pytest.mark.slow  # runs a sweep per policy, several rounds


def test_policy_strings_are_checked():
    assert thread_policy.parse_policy("2x1") == (2, 1)
    for bad in ("2", "0x1", "ax2"):
        with pytest.raises(argparse.ArgumentTypeError, match="Invalid policy"):
            thread_policy.parse_policy(bad)


@pytest.mark.tf_only
def test_each_policy_runs_the_whole_sweep_each_round_and_reports_median_configurations_per_hour(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = _write(tmp_path, _spec(study="policy", seeds=[0]), "policy.yaml")
    rows = thread_policy.main(["--spec", str(path), "--policies", "1x1", "2x1", "--rounds", "2"])
    assert [r["policy"] for r in rows] == ["1x1", "2x1"]
    assert all(r["finished"] == 2 and len(r["ratios"]) == 2 for r in rows)
    assert rows[0]["ratios"] == [1.0, 1.0]
    printed = capsys.readouterr().out
    # Round 2 runs the policies in the other order (the machine drifts; neither always goes first).
    order = [line.split()[2].rstrip(":") for line in printed.splitlines() if line.startswith("round")]
    assert order == ["1x1", "2x1", "2x1", "1x1"]
    for r in rows:
        per_round = [
            float(line.split(" = ")[1].split()[0])
            for line in printed.splitlines()
            if line.startswith("round") and f" {r['policy']}:" in line
        ]
        assert r["configs_per_hour"] == pytest.approx(sum(per_round) / 2, abs=1)  # median of two


def test_rounds_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        thread_policy.main(["--spec", "x.yaml", "--rounds", "0"])
    assert "Invalid rounds=0" in capsys.readouterr().err
