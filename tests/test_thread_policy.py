"""The thread-policy probe times real sweeps, one fresh store per policy."""

import argparse

import pytest
import yaml

from experiments import thread_policy


def test_policy_strings_are_checked():
    assert thread_policy.parse_policy("2x1") == (2, 1)
    for bad in ("2", "0x1", "ax2"):
        with pytest.raises(argparse.ArgumentTypeError, match="Invalid policy"):
            thread_policy.parse_policy(bad)


@pytest.mark.tf_only
def test_each_policy_runs_the_whole_sweep_and_reports_configurations_per_hour(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(thread_policy.Path(thread_policy.__file__).parents[1]))
    spec = {
        "study": "policy",
        "base": {
            "units": 8,
            "batch_size": 8,
            "steps": 4,
            "eval_every": 2,
            "probe_batch": 4,
            "log_model": False,
        },
        "tasks": {"adding": {"seq_len": 6}},
        "grid": {"forget_bias": ["0", "1"]},
        "seeds": [0],
        "reference": {"forget_bias": "1"},
        "profiles": {"quick": {}},
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(spec))
    rows = thread_policy.main(["--spec", str(path), "--policies", "1x1", "2x1"])
    assert [r["policy"] for r in rows] == ["1x1", "2x1"]
    assert all(
        r["finished"] == 2 and r["configs_per_hour"] == pytest.approx(2 / r["wall_s"] * 3600) for r in rows
    )
