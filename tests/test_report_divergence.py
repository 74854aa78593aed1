"""A diverged run ranks worst in the report: in learning-rate selection, in comparisons, with the
divergence rate's 95 % Wilson interval printed beside n_diverged/n.

The synthetic sweep is the trap of issue 16: an unclipped ReLU candidate whose seeds at the large
learning rate reach a fine loss and then diverge (their summaries keep that pre-divergence best).
"""

import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from report_sweeps import make_sweep, noise
from scipy import stats as st

from experiments.report import comparison, divergence, selection
from experiments.report import pipeline as report
from experiments.report.metrics import PRIMARY

RELU0 = {"task": "adding", "candidate_activation": "relu", "clipnorm": "0"}
RELU1 = {"task": "adding", "candidate_activation": "relu", "clipnorm": "1.0"}
A, B = (
    "task=adding candidate_activation=relu clipnorm=0",
    "task=adding candidate_activation=relu clipnorm=1.0",
)


def _q_relu0(lr, seed):  # at lr 0.02 the best before diverging is far better than anything else
    return 0.05 + noise(seed) if lr > 0.005 else (0.01 if seed == 0 else 0.5 + noise(seed))


def _diverged_relu0(lr, seed):  # lr 0.02: 4 of 5 seeds diverge; lr 0.005: seed 0 only
    return seed < 4 if lr > 0.005 else seed == 0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("divergence_store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        configs = [
            {**RELU0, "_q": _q_relu0, "_diverged": _diverged_relu0},
            {**RELU1, "_q": lambda lr, s: 0.3 + noise(s)},
        ]
        make_sweep(
            mlflow.MlflowClient(uri), "clipping", configs, lrs=(0.005, 0.02), reference=RELU1, claims="d"
        )
        yield tmp
        mlflow.set_tracking_uri(None)


def _wilson(k: int, n: int) -> str:
    ci = st.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return f"{k}/{n} [{ci.low:.2f}, {ci.high:.2f}]"


def test_a_learning_rate_whose_seeds_mostly_diverged_is_not_chosen_for_its_pre_divergence_best():
    df = pd.DataFrame(
        {
            "config_label": ["A"] * 6,
            "learning_rate": [0.02] * 3 + [0.005] * 3,
            "m": [0.01, 0.02, 0.4, 0.3, 0.31, 0.32],
            "diverged": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    table = selection.lr_table(df, "m").set_index("learning_rate")
    assert table.loc[0.02, "n_diverged"] == 2 and table.loc[0.02, "n_nonfinite"] == 0
    assert table.loc[0.02, "mean"] == pytest.approx(0.4)  # the diverged seeds' scores are not averaged
    assert table.loc[0.005, "chosen"] and not table.loc[0.02, "chosen"]
    # Without the diverged column the same numbers choose 0.02 (mean 0.14): the column decides.
    assert selection.lr_table(df.drop(columns="diverged"), "m").set_index("learning_rate").loc[0.02, "chosen"]


def test_an_unpaired_comparison_with_a_diverged_seed_ranks_it_below_every_other():
    a, b = [math.inf, 0.5, 0.49, 0.51, 0.52], [0.3, 0.31, 0.29, 0.32, 0.28]
    c = comparison.compare(pd.Series(a), pd.Series(b), "ln")  # no seeds logged: unpaired
    assert c.test == divergence.WORST_RANK_TEST and c.n_a == 5 and not c.paired
    assert c.p == pytest.approx(st.mannwhitneyu(a, b, method="exact").pvalue)
    assert c.diff > 0 and c.mean_a == pytest.approx(np.mean(a[1:]))  # mean over the runs that did not diverge
    assert math.isnan(c.diff_ci_low) and math.isnan(c.hedges_g)
    # Diverged runs tie with each other: two sides that both fully diverged do not differ.
    assert comparison.compare(pd.Series([math.inf] * 3), pd.Series([math.inf] * 3)).p == 1.0
    # No diverged run: the ordinary small-sample test.
    assert comparison.compare(pd.Series(b), pd.Series(a[1:])).test == "mannwhitney"


def test_outcome_metrics_of_a_diverged_run_count_as_worst_and_flow_at_init_stays():
    df = pd.DataFrame(
        {"best_val_loss_over_baseline": [0.1, 0.2], "best_val_accuracy": [0.9, 0.8], "diverged": [1.0, 0.0]}
    )
    df["log10_grad_flow_ratio_init"] = [-3.0, -2.0]
    assert list(divergence.counted(df, "best_val_loss_over_baseline")) == [math.inf, 0.2]
    assert list(divergence.counted(df, "best_val_accuracy")) == [-math.inf, 0.8]  # higher is better
    assert list(divergence.counted(df, "log10_grad_flow_ratio_init")) == [-3.0, -2.0]
    nan_run = pd.DataFrame({"best_val_loss_over_baseline": [math.nan, math.nan], "diverged": [1.0, 0.0]})
    worst_nan, other = divergence.counted(nan_run, "best_val_loss_over_baseline")
    assert worst_nan == math.inf and math.isnan(other)  # a NaN that diverged is worst, not dropped


def test_the_report_chooses_the_stable_rate_ranks_diverged_seeds_worst_and_prints_the_rate_ci(store):
    rep = report.generate(["clipping"], store / "reports", log=False)
    folder = store / "reports" / "clipping"
    lr = pd.read_csv(folder / "lr_selection.csv")
    chosen = lr[lr["chosen"]].set_index("config_label")["learning_rate"]
    assert chosen[A] == 0.005 and chosen[B] == 0.005  # not 0.02, whose pre-divergence mean is 0.05
    assert lr.set_index(["config_label", "learning_rate"]).loc[(A, 0.02), "n_diverged"] == 4
    row = rep.summary.set_index("config_label").loc[A]
    assert row["n_diverged"] == 1 and row["best_val_loss_over_baseline_n"] == 4  # seed 0's 0.01 left out
    assert row["n_solved"] == 0  # seed 0 logged solved=1 (a summary from before this rule), then diverged
    assert row["best_val_loss_over_baseline_mean"] == pytest.approx(
        np.mean([0.5 + noise(s) for s in (1, 2, 3, 4)])
    )
    assert (row["divergence_ci_low"], row["divergence_ci_high"]) == pytest.approx(
        tuple(st.binomtest(1, 5).proportion_ci(0.95, method="wilson"))
    )
    assert _wilson(1, 5) in (folder / "report.md").read_text()

    claim = next(c for c in json.loads((folder / "claims.json").read_text())["claims"] if c["id"] == "d")
    d1 = claim["parts"][0]["contrasts"][0]
    # Paired by seed; seed 0 of A diverged, so its difference is +inf: the signed-rank test.
    assert d1["test"] == divergence.WORST_RANK_PAIRED and d1["diff"] > 0  # clip 0 is worse, not better
    d = np.log([0.5 + noise(s) for s in range(1, 5)]) - np.log([0.3 + noise(s) for s in range(1, 5)])
    assert d1["p"] == pytest.approx(st.wilcoxon([d.max() + 1, *d], method="exact").pvalue)
    assert d1["p"] == pytest.approx(2 / 32)  # every sign agrees: the least 5 pairs can reach
    assert (d1["diverged_a"], d1["runs_a"], d1["diverged_b"], d1["runs_b"]) == (5, 10, 0, 10)
    # One Holm family for the study: the signed-rank p and Fisher's p → 2 × Fisher's, for both.
    fisher = st.fisher_exact([[5, 5], [0, 10]]).pvalue
    assert d1["div_p"] == pytest.approx(fisher) and 2 * fisher > 2 / 32
    assert d1["p_holm"] == pytest.approx(2 * fisher) and d1["div_p_holm"] == pytest.approx(2 * fisher)
    assert d1["outcome"] == "neutral" and claim["parts"][0]["by_task"] == {"adding": "inconclusive"}
    claims_md = (folder / "claims.md").read_text()
    assert f"diverged {_wilson(5, 10)} vs {_wilson(0, 10)}" in claims_md
    assert "Diverged runs rank worst" in claims_md


def test_under_the_protocol_rates_are_chosen_on_tuning_runs_and_only_confirmatory_runs_are_judged():
    base = {"sweep": "s", "task": "adding", "diverged": 0.0}
    rows = [
        {**base, "config_label": "a", "phase": "tune", "learning_rate": lr, "seed": 7, "m": m}
        for lr, m in ((0.01, 0.2), (0.1, 0.9))
    ] + [
        {**base, "config_label": "a", "phase": "confirm", "learning_rate": 0.01, "seed": s, "m": 0.5}
        for s in (0, 1)
    ]
    rows += [
        {**base, "config_label": "b", "phase": "confirm", "learning_rate": 0.01, "seed": s, "m": 0.4}
        for s in (0, 1)
    ]
    rows += [
        {**base, "config_label": "c", "phase": None, "learning_rate": lr, "seed": 0, "m": lr}
        for lr in (0.1, 0.2)
    ]
    choice, judged = selection.protocol_runs(pd.DataFrame(rows).rename(columns={"m": PRIMARY}))
    assert set(choice.loc[choice["config_label"] == "a", "phase"]) == {"tune"}  # never the judged seeds
    assert len(choice[choice["config_label"] == "b"]) == 2  # one rate: nothing tuned, shown as it ran
    assert sorted(judged.loc[judged["config_label"] == "a", "seed"]) == [0, 1]
    assert set(judged.loc[judged["config_label"] == "a", "phase"]) == {"confirm"}
    assert list(judged.loc[judged["config_label"] == "c", "learning_rate"]) == [0.1]  # before the protocol
