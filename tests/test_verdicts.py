"""Verdicts merged over studies reported one at a time (experiments/report/verdicts.py)."""

import json
from pathlib import Path

import pytest

from experiments.report import readme_claims, verdicts


def _study(folder, name, claims):
    (folder / name).mkdir()
    body = [{"id": cid, "statement": f"claim {cid}", "by_task": by_task} for cid, by_task in claims.items()]
    (folder / name / "claims.json").write_text(json.dumps({"claims": body}))


def test_studies_agreeing_on_two_tasks_support_a_claim_and_a_disagreement_is_inconclusive(tmp_path):
    _study(
        tmp_path,
        "forget_bias",
        {"a": {"copy": "supported", "adding": "supported"}, "g": {"adding": "supported"}},
    )
    _study(tmp_path, "lstm_vs_gru", {"g": {"adding": "contradicted", "copy": "supported"}, "a": {}})
    merged = {c["id"]: c for c in verdicts.write(tmp_path)}
    assert merged["a"]["verdict"] == "supported" and merged["a"]["by_task"] == {
        "copy": "supported",
        "adding": "supported",
    }
    assert merged["g"]["by_task"] == {"adding": "inconclusive", "copy": "supported"}
    assert merged["g"]["verdict"] == "inconclusive"
    assert merged["g"]["studies"]["adding"] == ["forget_bias: supported", "lstm_vs_gru: contradicted"]
    page = (tmp_path / "verdicts.md").read_text()
    assert "`forget_bias`, `lstm_vs_gru`" in page and "| a | claim a | supported overall" in page
    assert json.loads((tmp_path / "verdicts.json").read_text())["studies"] == ["forget_bias", "lstm_vs_gru"]


def test_one_task_alone_decides_nothing_overall(tmp_path):
    _study(tmp_path, "gradient_flow", {"h": {"adding": "contradicted"}})
    (only,) = verdicts.write(tmp_path)
    assert only["verdict"] == "inconclusive" and "contradicted on adding (1 task)" in only["overall"]
    assert verdicts.main([str(tmp_path / "missing")]) == 2


def _contrast(part, task, outcome, p, a="forget_bias=1", b="forget_bias=0"):
    return {
        "part": part,
        "task": task,
        "outcome": outcome,
        "p_holm": p,
        "a": f"task={task} {a}",
        "b": f"task={task} {b}",
        "metric": "test_over_baseline",
        "ratio": 0.5,
        "ratio_ci_low": 0.25,
        "ratio_ci_high": 0.9,
        "seeds_a": [1000, 1001, 1002],
    }


def test_studies_merge_part_by_part_so_a_contradicted_part_contradicts_the_claim_on_that_task(tmp_path):
    """Two studies testing different parts of one claim on one task do not 'disagree': the claim's
    verdict there follows the one-study rule (a contradicted part contradicts it)."""
    for study, part, verdict in (("forget_bias", "h2", "supported"), ("gradient_flow", "h1", "contradicted")):
        (tmp_path / study).mkdir()
        claim = {
            "id": "h",
            "statement": "claim h",
            "by_task": {"adding": verdict},
            "parts": [{"id": part, "rule": "all", "by_task": {"adding": verdict}, "contrasts": []}],
        }
        (tmp_path / study / "claims.json").write_text(json.dumps({"claims": [claim]}))
    (merged,) = verdicts.write(tmp_path)
    assert merged["by_task"] == {"adding": "contradicted"}
    assert merged["parts"]["h1"]["by_task"] == {"adding": "contradicted"}
    assert merged["studies"]["adding"] == ["h2 forget_bias: supported", "h1 gradient_flow: contradicted"]


def test_the_deciding_contrast_is_the_weakest_for_an_all_rule_and_the_strongest_otherwise():
    rows = [_contrast("a", "copy", "for", 0.001), _contrast("a", "copy", "for", 0.04)]
    assert readme_claims.deciding(rows, "supported", "all")["p_holm"] == 0.04
    assert readme_claims.deciding(rows, "supported", "any")["p_holm"] == 0.001
    mixed = [*rows, _contrast("a", "copy", "neutral", 0.3)]
    assert readme_claims.deciding(mixed, "inconclusive", "all")["outcome"] == "neutral"
    assert readme_claims.deciding([], "not tested", "all") is None


def test_the_readme_table_names_verdict_effect_seeds_and_a_link_and_refuses_a_readme_without_markers(
    tmp_path,
):
    (tmp_path / "copy_study").mkdir()
    claim = {
        "id": "a",
        "statement": "claim a",
        "by_task": {"copy": "supported"},
        "parts": [
            {
                "id": "a",
                "rule": "all",
                "by_task": {"copy": "supported"},
                "contrasts": [{k: v for k, v in _contrast("a", "copy", "for", 0.01).items() if k != "part"}],
            }
        ],
    }
    (tmp_path / "copy_study" / "claims.json").write_text(json.dumps({"claims": [claim]}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{readme_claims.START}\nold\n{readme_claims.END}\ntail\n")
    assert verdicts.main([str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.endswith("tail\n")
    assert (
        "| a | claim a | inconclusive | copy | supported | `forget_bias=1 / forget_bias=0` ×0.5 [0.25, 0.9], "
        "p_holm 0.01 (test_over_baseline, for) | 1000–1002 (3) | [copy_study](copy_study/claims.md) |"
    ) in text
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="claims-table markers"):
        verdicts.main([str(tmp_path), "--readme", str(readme)])
    assert verdicts.main([str(tmp_path), "--readme", str(tmp_path / "missing.md")]) == 2


def test_the_readme_quotes_the_committed_standard_reports():
    """README.md's claims table is what the committed docs/studies/standard reports generate:
    rerun the command in readme_claims' docstring after committing a study's report."""
    root = Path(__file__).resolve().parents[1]
    folder = root / "docs" / "studies" / "standard"
    text = (root / "README.md").read_text()
    block = text.split(readme_claims.START, 1)[1].split(readme_claims.END, 1)[0].strip()
    assert block == readme_claims.table(verdicts.merge(folder), folder, root)


def test_the_page_states_each_studys_wall_time_from_its_runs(tmp_path):
    import pandas as pd

    _study(tmp_path, "timed", {"a": {"copy": "supported"}})
    _study(tmp_path, "untimed", {"a": {"adding": "supported"}})
    pd.DataFrame(
        {
            "start_time": ["2026-12-03 19:00:00+00:00", "2026-12-03 19:30:00+00:00"],
            "end_time": ["2026-12-03 19:20:00+00:00", "2026-12-03 20:30:00+00:00"],
        }
    ).to_csv(tmp_path / "timed" / "runs.csv", index=False)
    verdicts.write(tmp_path)
    # 19:20–19:30 nobody ran: 80 minutes, not the 90 from first start to last end.
    assert verdicts.wall_times(tmp_path) == {"timed": 80.0, "untimed": None}
    assert (
        "timed 80 min, untimed not recorded; 1.3 h for the 1 timed." in (tmp_path / "verdicts.md").read_text()
    )
