"""Verdicts merged over studies reported one at a time (experiments/report/verdicts.py)."""

import json

from experiments.report import verdicts


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
