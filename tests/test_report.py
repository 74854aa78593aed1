"""The sweep report: best-over-LR, claims verdicts and the written/logged report.

Sweeps are built in a temporary MLflow sqlite store (tests/report_sweeps.py) and read back like
real sweeps. The statistics are tested in tests/test_stats.py.
"""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from report_sweeps import every_sweep
from scipy import stats as st

from experiments.report import analyse, claim_catalogue, load, selection
from experiments.report import claim_evaluation as ev
from experiments.report import pipeline as report
from experiments.report.metrics import FLOW, FLOW_FINAL


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store with every sweep the tests read: (client, {study: (parent id, values)})."""
    tmp = tmp_path_factory.mktemp("report_store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(uri)
        sweeps = every_sweep(client, tmp)
        yield client, sweeps
        mlflow.set_tracking_uri(None)


def _claim(results, claim_id):
    return next(r for r in results if r["id"] == claim_id)


def check_html(folder, claim_ids="abcdefghi"):
    """report.html: self-contained, every PNG embedded once, the claims checklist and the CSV tables."""
    text = (folder / "report.html").read_text()
    pngs = list(folder.glob("*.png"))
    assert pngs and text.count("<img ") == text.count('src="data:image/png;base64,') == len(pngs)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    claims_html = text[text.index('<section id="claims">') :]
    for claim_id in claim_ids:
        assert f'id="claim-{claim_id}"' in claims_html and f"({claim_id})" in claims_html, claim_id
    assert "Verdict rules" in claims_html and "<strong>Verdict:" in claims_html
    assert "summary_" in text and "lr_selection.csv" in text and text.count("<table") >= 4
    return text


# ----------------------------------------------------------------------------- selection and verdicts


def test_best_over_lr_picks_the_lr_with_the_best_mean_over_seeds():
    df = pd.DataFrame(
        {
            "config_label": ["A"] * 6 + ["B"] * 4,
            "learning_rate": [0.01] * 3 + [0.001] * 3 + [0.01] * 2 + [0.001] * 2,
            "seed": [0, 1, 2] * 2 + [0, 1] * 2,
            "m": [0.2, 0.3, 0.25, 0.5, 0.1, 0.6, 0.9, 0.8, np.nan, 0.1],
        }
    )
    low = selection.best_over_lr(df, "m", higher_is_better=False)
    # A: 0.01 → mean 0.25 beats 0.001 → 0.4; B: 0.001 has a non-finite seed, so 0.01 wins.
    assert set(zip(low["config_label"], low["learning_rate"])) == {("A", 0.01), ("B", 0.01)}
    assert len(low) == 5
    high = selection.best_over_lr(df, "m", higher_is_better=True)
    assert set(zip(high["config_label"], high["learning_rate"])) == {("A", 0.001), ("B", 0.01)}


def test_resolving_a_study_name_picks_the_most_recent_parent(store):
    client, sweeps = store
    assert load.resolve_parent(client, "fb_worse").info.run_id == sweeps["fb_worse"][0]
    assert load.resolve_parent(client, sweeps["fb_worse_old"][0]).info.run_id == sweeps["fb_worse_old"][0]
    with pytest.raises(load.ReportError, match="fb_worse"):  # the message lists the known studies
        load.resolve_parent(client, "no_such_study")


def test_report_tables_plots_claims_and_artifacts(store, tmp_path):
    client, sweeps = store
    parent, values = sweeps["fb_worse"]
    rep = report.generate(["fb_worse"], tmp_path / "reports")
    folder = tmp_path / "reports" / "fb_worse"
    assert rep.folder == folder
    for name in ("report.md", "claims.md", "claims.json", "lr_selection.csv", "summary_fb_worse_copy.csv"):
        assert (folder / name).is_file(), name
    pngs = {p.name for p in folder.glob("*.png")}
    assert {"curves_fb_worse_copy.png", "final_fb_worse_copy.png", "forget_bias_fb_worse_copy.png"} <= pngs
    assert {"gradient_flow_fb_worse_copy.png", "gates_fb_worse_copy.png", "claim_a.png"} <= pngs

    table = pd.read_csv(folder / "summary_fb_worse_copy.csv").set_index("config_label")
    for fb in ("0", "1", "2"):
        row = table.loc[f"task=copy forget_bias={fb}"]
        assert row["learning_rate"] == 0.005  # lr 0.02 is 0.3 worse for every configuration
        x = np.array(values[(f"task=copy forget_bias={fb}", 0.005)])
        low, high = st.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=st.sem(x))
        assert row["n_seeds"] == 5
        assert row["best_val_loss_over_baseline_mean"] == pytest.approx(x.mean())
        assert (row["best_val_loss_over_baseline_ci_low"], row["best_val_loss_over_baseline_ci_high"]) == (
            pytest.approx((low, high))
        )
        assert row["best_val_recall_accuracy_mean"] == pytest.approx(np.mean(1 - 0.9 * x))
    assert bool(table.loc["task=copy forget_bias=1", "is_reference"])
    fb0 = table.loc["task=copy forget_bias=0"]
    x0 = values[("task=copy forget_bias=0", 0.005)]
    x1 = values[("task=copy forget_bias=1", 0.005)]
    # Paired by seed (the same seed = the same data stream), loss ratios on the log scale.
    assert fb0["test"] == "paired t" and fb0["paired"] and fb0["n_pairs"] == 5
    assert fb0["p"] == pytest.approx(st.ttest_rel(np.log(x0), np.log(x1)).pvalue)
    assert fb0["p_holm"] == pytest.approx(min(1.0, 2 * fb0["p"]))  # two comparisons vs the reference
    assert fb0["solve_rate"] == 0 and table.loc["task=copy forget_bias=1", "solve_rate"] == 1

    result = json.loads((folder / "claims.json").read_text())
    a = _claim(result["claims"], "a")
    assert a["by_task"] == {"copy": "supported"} and a["verdict"] == "inconclusive"  # one task only
    assert a["overall"] == "inconclusive overall: supported on copy (1 task); not tested on adding"
    assert "claim_a.png" in a["plots"] and "forget_bias_fb_worse_copy.png" in a["plots"]
    assert {c["outcome"] for c in a["parts"][0]["contrasts"]} == {"for"}
    assert _claim(result["claims"], "b")["verdict"] == "not tested"
    md = (folder / "claims.md").read_text()
    assert "## Verdict rules" in md and "One Holm family per study" in md and "| (a) A forget bias" in md
    assert "Per task: copy: **supported**." in md and a["overall"] in md
    text = check_html(folder)
    assert "<strong>supported</strong>" in text and "task=copy forget_bias=0" in text

    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/claims.md", "report/claims.json", "report/report.html", "report/claim_a.png"} <= logged
    assert client.get_run(parent).info.status == "FINISHED"
    assert all(
        r.info.status != "RUNNING" for r in client.search_runs([client.get_run(parent).info.experiment_id])
    )


@pytest.mark.parametrize(
    ("study", "verdict"),
    [("fb_worse", "supported"), ("fb_same", "inconclusive"), ("fb_reversed", "contradicted")],
)
def test_claim_a_verdicts(store, tmp_path, study, verdict):
    rep = report.generate([study], tmp_path, log=False, plots=False)
    a = _claim(rep.claims, "a")
    assert a["by_task"] == {"copy": verdict}
    assert a["verdict"] == "inconclusive"  # one task: never enough for an overall verdict
    if study == "fb_same":  # equal values on every seed: no variance of the differences, no p
        (row,) = a["parts"][0]["contrasts"]
        assert row["note"] == "no variance across seeds" and row["p"] != row["p"]


def test_the_report_lists_every_run_id_and_names_commit_and_cpu(store, tmp_path):
    client, sweeps = store
    parent, _ = sweeps["fb_worse"]
    report.generate(["fb_worse"], tmp_path / "reports")
    folder = tmp_path / "reports" / "fb_worse"
    finished = mlflow.search_runs(
        [client.get_run(parent).info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'FINISHED'",
    )
    listed = pd.read_csv(folder / "runs.csv")  # every judged or tuning run, by id, with its commit
    assert sorted(listed["run_id"]) == sorted(finished["run_id"])
    assert set(listed["git_commit"]) == {"0123456789abcdef"} and "test_over_baseline" in listed
    assert listed["start_time"].notna().all()
    assert "Provenance: git commit 0123456789; CPU Test CPU, 2 cores;" in (folder / "report.md").read_text()


def test_missing_configurations_are_not_tested_with_a_reason(store, tmp_path):
    rep = report.generate(["variants"], tmp_path, log=False, plots=False)
    for claim_id in "abcdefghi":
        result = _claim(rep.claims, claim_id)
        assert result["verdict"] == "not tested", claim_id
        assert result["reason"], claim_id
    assert "NFG" in _claim(rep.claims, "b")["reason"]  # the one claim `variants` lists
    # A claim the study does not list is not judged on it at all.
    assert _claim(rep.claims, "a")["reason"] == "no sweep in this report lists claim (a)"
    assert _claim(rep.claims, "i")["reason"] == "no sweep in this report lists claim (i)"
    # No is_reference tags: the spec artifact's `reference: {units: 64}` names the reference.
    refs = rep.summary.set_index("config_label")["is_reference"]
    assert refs["task=adding units=64"] and not refs["task=adding units=32"]
    assert "Studies listing this claim: variants" in (tmp_path / "variants" / "claims.md").read_text()


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_combined_report_uses_every_sweep_and_logs_on_each_parent(store, tmp_path):
    client, sweeps = store
    rep = report.generate(["fb_worse", sweeps["cells"][0]], tmp_path)
    assert rep.folder == tmp_path / "combined"
    # Every contrast of both studies is on copy: a verdict per task, never an overall one.
    f = _claim(rep.claims, "f")
    assert f["by_task"] == {"copy": "supported"} and f["verdict"] == "inconclusive"
    assert (
        f["overall"]
        == "inconclusive overall: supported on copy (1 task); not tested on adding, char_lm, sentiment"
    )
    # f1 needs parameter-matched units (none here); f2: equal units, ratio within ±0.5 % → TOST for.
    assert [p["verdict"] for p in f["parts"]] == ["not tested", "inconclusive"]
    (f2,) = f["parts"][1]["contrasts"]
    assert f2["paired"] and f2["outcome"] == "for" and f2["p_tost_holm"] < 0.05
    (fact,) = f["facts"]  # the GRU's fewer parameters: printed, not judged
    assert (fact["n_params_a"], fact["n_params_b"]) == (18816.0, 24832.0)
    h = _claim(rep.claims, "h")
    assert [p["by_task"] for p in h["parts"]] == [
        {"copy": "supported"}
    ] * 3  # rnn 1e-6 vs 0.1; fb 0 0.01 vs 0.1; rnn after training too
    assert h["by_task"] == {"copy": "supported"} and set(h["sweeps"]) == {"fb_worse", "cells"}
    a = _claim(rep.claims, "a")
    assert a["by_task"] == {"copy": "supported"} and a["sweeps"] == ["fb_worse"]  # `cells` does not list (a)
    i = _claim(rep.claims, "i")  # lstm1997 0.8 vs keras LSTM 0.3 on copy
    assert i["by_task"] == {"copy": "supported"} and i["sweeps"] == ["cells"]
    (row,) = i["parts"][0]["contrasts"]
    assert (row["a"], row["b"], row["outcome"]) == (
        "task=copy cell=lstm variant=lstm1997",
        "task=copy cell=lstm",
        "for",
    )
    assert row["mean_a"] == pytest.approx(0.8) and row["mean_b"] == pytest.approx(0.3)
    assert row["p_holm"] < 0.05 and row["diff"] > 0 and row["test"] == "paired t"
    assert row["ratio"] == pytest.approx(
        np.exp(np.mean(np.log([(0.8 + n) / (0.3 + n) for n in (-0.02, -0.01, 0, 0.01, 0.02)])))
    )
    # One Holm family per study: adding `fb_worse` to the report leaves `cells`'s p_holm as it was.
    alone = _claim(report.generate(["cells"], tmp_path / "alone", log=False, plots=False).claims, "i")
    assert alone["parts"][0]["contrasts"][0]["p_holm"] == pytest.approx(row["p_holm"])
    text = check_html(rep.folder)
    assert "claim_i.png" in text and "lstm1997" in text
    for parent in (sweeps["fb_worse"][0], sweeps["cells"][0]):
        assert "report/combined/claims.md" in {
            a.path for a in client.list_artifacts(parent, "report/combined")
        }


def test_cli_writes_the_report_and_fails_clearly_on_an_unknown_sweep(store, tmp_path, capsys):
    assert report.main(["--sweep", "fb_same", "--out", str(tmp_path), "--no_log"]) == 0
    assert (tmp_path / "fb_same" / "claims.md").is_file()
    assert report.main(["--sweep", "nope", "--out", str(tmp_path)]) == 2
    assert "no sweep parent run with study='nope'" in capsys.readouterr().err


def test_a_gradient_that_underflowed_to_zero_counts_as_vanished_not_missing():
    raw = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "status": ["FINISHED", "FINISHED"],
            "start_time": [1, 2],
            "tags.trial_key": ["k1", "k2"],
            "params.task": ["adding", "adding"],
            "metrics.grad_flow_ratio_init": [0.0, 1e-8],
            "metrics.grad_flow_ratio_final": [float("nan"), 1e-3],
        }
    )
    tidy = load.tidy(raw, "s", "study")
    flow = tidy.set_index("run_id")[FLOW]
    assert flow["a"] == pytest.approx(np.log10(np.finfo(np.float32).smallest_subnormal)) and flow["a"] < -44
    assert flow["b"] == pytest.approx(-8.0)
    assert np.isnan(tidy.set_index("run_id").loc["a", FLOW_FINAL])


def test_a_new_catalogue_entry_is_judged_by_the_evaluator_as_it_stands(store):
    client, _ = store
    sweep = load.load_sweep(client, "fb_worse")
    analysis = analyse.analyse([sweep], sweep.runs)
    fb2 = claim_catalogue._side("forget bias 2", "lstm", where=lambda d: d["forget_bias"] == "2")
    contrast = claim_catalogue.Contrast(
        "fb 0 vs 2", claim_catalogue.FB0, (fb2,), frozenset({"forget_bias"}), "higher"
    )
    claim = claim_catalogue.Claim(
        "z",
        "Forget bias 0 is worse than 2.",
        "as stated",
        (claim_catalogue.Part("z", "0 is worse", (contrast,), "any"),),
    )
    result = ev.evaluate_claim(claim, analysis.configs, analysis.chosen, analysis.runs, ev.Options())
    assert result["by_task"] == {"copy": "supported"}  # fb 0: 0.9, fb 2: 0.15 (tests/report_sweeps.py)
    (row,) = result["parts"][0]["contrasts"]
    assert (row["a"], row["b"]) == ("task=copy forget_bias=0", "task=copy forget_bias=2") and row[
        "diff"
    ] > 0.7


def test_report_html_embeds_each_plot_once_anchors_claims_and_renders_pipe_tables(tmp_path):
    from experiments.report.html_page import markdown_html
    from experiments.report.write import markdown_table

    (tmp_path / "a.png").write_bytes(b"\x89PNG not really")
    table = markdown_table(["claim", "value"], [["(a)", "x | y"], ["(b)", "`code`"]])
    text = f"# Title\n\n## (a) A claim\n\n![a.png](a.png)\n\n{table}\n\n![a.png](a.png)\n\n![b.png](b.png)\n"
    embedded: set[str] = set()
    page = markdown_html(text, tmp_path, embedded, shift=1)
    assert embedded == {"a.png"} and page.count('src="data:image/png;base64,') == 1
    assert "<em>(a.png — shown above)</em>" in page and "<em>(b.png)</em>" in page  # repeat, missing
    assert '<h2 id="title">Title</h2>' in page and '<h3 id="claim-a">(a) A claim</h3>' in page
    assert (
        '<div class="scroll"><table>' in page
        and "<td>x | y</td>" in page
        and "<td><code>code</code></td>" in page
    )
