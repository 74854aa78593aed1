"""The claims catalogue and its evaluator's rules on hand-made configurations (no MLflow; the sweeps
in tests/test_report.py go through the whole report)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from experiments.report import claim_catalogue as cat
from experiments.report import claim_evaluation as ev
from experiments.report import claim_rules as rules
from experiments.report import stats
from experiments.report.descriptors import descriptor
from experiments.report.metrics import FLOW, JUDGED
from lstm_keras.variants import GRU_VARIANTS, LSTM_VARIANTS

SPREAD = np.array([0.2, 0.5, 0.9, 0.35, 0.7, 0.28])  # per seed: the data stream's difficulty


def _claim(claim_id):
    return next(c for c in cat.CLAIMS if c.id == claim_id)


def frames(configs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(configs, chosen) from (sweep, task, params, values per seed[, n_params]) tuples."""
    rows, runs = [], []
    for sweep, task, params, values, *n_params in configs:
        label = f"task={task} " + " ".join(f"{k}={v}" for k, v in params.items())
        desc = descriptor({"task": task, **params}, {})
        desc["fixed_open_gate"] = params.get("fixed_open_gate", "none")  # a RunConfig field to come
        rows.append({"sweep": sweep, "task": task, "config_label": label, "desc": desc})
        rows[-1]["n_params"] = n_params[0] if n_params else 1000.0
        for seed, v in enumerate(values):
            runs.append({"sweep": sweep, "task": task, "config_label": label, "seed": seed})
            runs[-1].update({"learning_rate": 0.005, JUDGED: v, "diverged": 0.0, FLOW: math.log10(v)})
    return pd.DataFrame(rows), pd.DataFrame(runs)


def judge(claim_id, configs, listed=None):
    configs, chosen = frames(configs)
    results = ev.evaluate(configs, chosen, chosen, ev.Options(), listed)
    return next(r for r in results if r["id"] == claim_id)


def test_every_claim_is_complete_and_has_a_unique_id():
    ids = [c.id for c in cat.CLAIMS]
    assert len(set(ids)) == len(ids)
    for claim in cat.CLAIMS:
        assert claim.statement and claim.definition and claim.parts, claim.id
        assert all(part.contrasts for part in claim.parts), claim.id


def test_an_entry_with_an_unknown_expectation_rule_variant_or_no_margin_is_refused_when_defined():
    with pytest.raises(ValueError, match="expect='worse'"):
        cat.Contrast("x", cat.NFG, (cat.VANILLA,), frozenset(), "worse")
    with pytest.raises(ValueError, match="expect='fewer_params'"):  # a parameter count is a Fact now
        cat.Contrast("x", cat.NFG, (cat.VANILLA,), frozenset(), "fewer_params")
    with pytest.raises(ValueError, match="needs a margin > 0"):
        cat.Contrast("x", cat.NFG, (cat.VANILLA,), frozenset(), "equal")
    with pytest.raises(ValueError, match="rule='most'"):
        cat.Part("x", "x", (cat.Contrast("x", cat.NFG, (cat.VANILLA,), frozenset(), "lower"),), "most")


def test_a_rule_that_cannot_fail_is_refused_by_the_catalogue():
    """A parameter count, a configuration against itself and a part without contrasts can never
    come out against the claim: the catalogue refuses them when they are defined."""
    with pytest.raises(ValueError, match="metric='n_params'.*cannot fail; print it as a Fact"):
        cat.Contrast(
            "NIG fewer params", cat.NIG, (cat.VANILLA,), frozenset({"variant"}), "lower", metric="n_params"
        )
    with pytest.raises(ValueError, match="with itself: it cannot fail"):
        cat.Contrast("NFG vs NFG", cat.NFG, (cat.VANILLA, cat.NFG), frozenset({"variant"}), "lower")
    with pytest.raises(ValueError, match="no contrasts: its verdict could never be contradicted"):
        cat.Part("x", "x", (), "all")
    with pytest.raises(ValueError, match="Unknown lstm variant"):
        cat._side("LSTM NOPE", "lstm", "NOPE")


def test_which_cells_have_a_forget_bias_comes_from_the_library_variants():
    lstm = {v for v in LSTM_VARIANTS if cat._gated({"cell": "lstm", "variant": v})}
    gru = {v for v in GRU_VARIANTS if cat._gated({"cell": "gru", "variant": v})}
    assert lstm == set(LSTM_VARIANTS) - {"NFG", "lstm1997"}  # the two without a forget gate
    assert gru == set(GRU_VARIANTS) - {"NUG"}  # the one without an update gate
    assert not cat._gated({"cell": "rnn", "variant": "keras"})


def test_claim_verdict_on_one_task_combines_its_parts():
    assert ev.claim_verdict([ev.NOT_TESTED, ev.NOT_TESTED]) == ev.NOT_TESTED
    assert ev.claim_verdict([ev.SUPPORTED, ev.NOT_TESTED]) == ev.SUPPORTED
    assert ev.claim_verdict([ev.SUPPORTED, ev.CONTRADICTED]) == ev.CONTRADICTED
    assert ev.claim_verdict([ev.SUPPORTED, ev.INCONCLUSIVE]) == ev.INCONCLUSIVE


S, C, INC, NT = rules.SUPPORTED, rules.CONTRADICTED, rules.INCONCLUSIVE, rules.NOT_TESTED


@pytest.mark.parametrize(
    ("by_task", "overall"),
    [
        ({"copy": S, "adding": S}, S),
        ({"copy": S, "adding": S, "char_lm": INC}, S),
        ({"copy": S}, INC),  # one task is not enough
        ({"copy": C, "adding": C}, C),
        ({"copy": C}, INC),
        ({"copy": S, "adding": C}, rules.MIXED),
        ({"copy": S, "adding": S, "char_lm": C}, rules.MIXED),
        ({"copy": INC, "adding": INC}, INC),
        ({"copy": NT}, NT),
        ({}, NT),
    ],
)
def test_overall_verdict_rule_table(by_task, overall):
    assert rules.overall_verdict(by_task) == overall


def test_overall_text_names_every_task():
    text = rules.overall_text({"adding": S})
    assert (
        text == "inconclusive overall: supported on adding (1 task); not tested on copy, char_lm, sentiment"
    )
    text = rules.overall_text({"copy": S, "adding": C}, ("copy", "adding"))
    assert text == "mixed overall: supported on copy (1 task); contradicted on adding (1 task)"


def test_a_loss_contrast_where_neither_side_learned_is_neutral():
    contrast = _claim("b").parts[0].contrasts[0]
    row = {"n_a": 5, "n_b": 5, "diff": 0.0011, "diff_ci_low": 0.0003, "diff_ci_high": 0.002, "p_holm": 0.01}
    untrained = {**row, "mean_a": 1.0011, "mean_b": 1.0}
    assert rules.outcome(untrained, contrast, ev.Options()) == "neutral"
    assert untrained["note"] == "neither side learned"
    learned = {**row, "mean_a": 0.0078, "mean_b": 0.0025}
    assert rules.outcome(learned, contrast, ev.Options()) == "for"  # NFG worse, significant


# ------------------------------------------------------------------------------- equivalence (TOST)

LSTM1 = {"cell": "lstm", "variant": "keras", "forget_bias": "1", "units": "64"}
GRU64 = {"cell": "gru", "variant": "keras", "units": "64"}


def test_tost_is_for_when_the_ratio_lies_well_inside_the_margin():
    f = judge(
        "f", [("s", "copy", LSTM1, SPREAD), ("s", "copy", GRU64, SPREAD * [1.02, 0.99, 1.01, 1, 0.98, 1.01])]
    )
    (row,) = f["parts"][1]["contrasts"]  # f2: equal units
    d = np.log(SPREAD * [1.02, 0.99, 1.01, 1, 0.98, 1.01]) - np.log(SPREAD)
    bound = math.log(1.25)
    expected = max(
        st.ttest_1samp(d, -bound, alternative="greater").pvalue,
        st.ttest_1samp(d, bound, alternative="less").pvalue,
    )
    assert row["paired"] and row["p_tost"] == pytest.approx(expected)
    assert row["outcome"] == "for" and f["parts"][1]["by_task"] == {"copy": "supported"}
    assert f["parts"][1]["verdict"] == "inconclusive"  # supported on one task only
    assert f["parts"][0]["verdict"] == "not tested"  # f1: n_params match (1000 both), units do not differ


def test_tost_is_against_when_a_two_fold_gap_is_significant_even_on_tiny_losses():
    # The old absolute floor (0.1 × 0.1 of the baseline) called 0.002 vs 0.004 "equal".
    f = judge(
        "f",
        [("s", "copy", LSTM1, SPREAD / 100), ("s", "copy", GRU64, SPREAD / 50 * [1.05, 1, 0.95, 1, 1.02, 1])],
    )
    (row,) = f["parts"][1]["contrasts"]
    assert row["ratio"] == pytest.approx(2.0, rel=0.05) and row["diff_ci_low"] > math.log(1.25)
    assert row["outcome"] == "against" and f["parts"][1]["verdict"] == "inconclusive"  # one task only
    assert f["by_task"] == {"copy": "contradicted"}


def test_f1_pairs_only_parameter_matched_configurations():
    gru96 = {**GRU64, "units": "74"}
    f = judge("f", [("s", "copy", LSTM1, SPREAD, 33_000.0), ("s", "copy", gru96, SPREAD, 34_500.0)])
    assert [r["b"] for r in f["parts"][0]["contrasts"]] == [
        "task=copy cell=lstm variant=keras forget_bias=1 units=64"
    ]
    f = judge("f", [("s", "copy", LSTM1, SPREAD, 33_000.0), ("s", "copy", gru96, SPREAD, 40_000.0)])
    assert f["parts"][0]["verdict"] == "not tested" and "n_params within 10%" in f["parts"][0]["reason"]


# ------------------------------------------------------------------------------- facts, not parts


def test_parameter_counts_are_printed_facts_not_judged_parts():
    assert {p.id for p in _claim("c").parts} == {"c2"} and {p.id for p in _claim("f").parts} == {"f1", "f2"}
    f = judge("f", [("s", "copy", LSTM1, SPREAD, 33_024.0), ("s", "copy", GRU64, SPREAD * 1.01, 24_960.0)])
    (fact,) = f["facts"]
    assert (fact["n_params_a"], fact["n_params_b"]) == (24_960.0, 33_024.0)
    assert "24,960 vs 33,024" in fact["text"]
    assert all(r["metric"] == JUDGED for p in f["parts"] for r in p["contrasts"])


def test_c2_pairs_a_gate_fixed_open_with_the_variant_that_lacks_that_gate():
    vanilla = {"cell": "lstm", "variant": "vanilla"}
    configs = [("s", "adding", {**vanilla, "fixed_open_gate": "i"}, SPREAD)]
    jitter = SPREAD * [1.01, 0.99, 1.02, 1.0, 0.98, 1.01]
    configs += [("s", "adding", {"cell": "lstm", "variant": v}, jitter) for v in ("NIG", "NOG", "NFG")]
    c = judge("c", configs)
    (row,) = [r for p in c["parts"] for r in p["contrasts"]]
    assert row["contrast"] == "i open vs NIG" and row["b"].endswith("variant=NIG")
    assert "NOG" not in row["b"] and {f["fact"] for f in c["facts"]} >= {"i open vs NIG n_params"}
    assert row["p_tost"] < 0.05 and row["outcome"] == "for"


# ------------------------------------------------------------------------------- Holm, per study


def _two_claim_study(sweep, scale):
    """Forget bias 0, 1, 2 on copy: contrasts of claims (a) (loss) and (h) (gradient flow)."""
    rng = np.random.default_rng(len(sweep))
    fb = [("0", 1.3 * scale), ("1", 1.0), ("2", 1.05)]
    lstm = {"cell": "lstm", "variant": "keras"}
    return [
        (sweep, "copy", {"forget_bias": b, **lstm}, SPREAD * x * rng.uniform(0.97, 1.03, len(SPREAD)))
        for b, x in fb
    ]


def test_holm_family_is_the_study_and_does_not_change_when_a_study_is_added():
    alone_configs, alone_chosen = frames(_two_claim_study("x", 1.0))
    alone = ev.evaluate(alone_configs, alone_chosen, alone_chosen)
    both_configs, both_chosen = frames(_two_claim_study("x", 1.0) + _two_claim_study("y", 2.0))
    both = ev.evaluate(both_configs, both_chosen, both_chosen)

    def holm_of(results, sweep):
        return {
            (r["id"], c["a"], c["b"]): c["p_holm"]
            for r in results
            for p in r["parts"]
            for c in p["contrasts"]
            if c["sweep"] == sweep
        }

    assert holm_of(alone, "x") == holm_of(both, "x") and holm_of(both, "y")
    # The family spans claims: (a) and (h) rows of study x are adjusted together.
    rows = [c for r in alone for p in r["parts"] for c in p["contrasts"]]
    assert {r["contrast"] for r in rows} >= {"fb 1–2 vs 0", "fb 0 vs 1"}
    family = [r[k] for r in rows for k in ev.P_KEYS if k in r]
    adjusted = stats.holm(family)
    keyed = [(r, k) for r in rows for k in ev.P_KEYS if k in r]
    for (r, k), p in zip(keyed, adjusted):
        assert r[f"{k}_holm"] == pytest.approx(p, nan_ok=True)
    assert sum(np.isfinite(family)) >= 3  # more than one claim's worth


def test_per_task_verdicts_and_two_supported_tasks_make_an_overall_supported():
    configs = []
    for task in ("copy", "adding"):
        configs += [("s", task, {"forget_bias": "0"}, SPREAD * 1.5 * [1, 1.02, 0.98, 1, 1.01, 0.99])]
        configs += [("s", task, {"forget_bias": "1"}, SPREAD)]
    a = judge("a", configs)
    assert a["by_task"] == {"copy": "supported", "adding": "supported"} and a["verdict"] == "supported"
    assert a["overall"] == "supported overall: supported on copy, adding (2 tasks)"  # (a): memory tasks
    one = judge("a", configs[:2])
    assert one["verdict"] == "inconclusive" and "not tested on adding" in one["overall"]


def test_claim_a_needs_every_bias_in_1_to_2_to_beat_0():
    configs = [("s", "copy", {"forget_bias": "0"}, SPREAD * 1.5 * [1, 1.02, 0.98, 1, 1.01, 0.99])]
    configs += [
        ("s", "copy", {"forget_bias": "1"}, SPREAD),
        (
            "s",
            "copy",
            {"forget_bias": "2"},
            SPREAD * 1.5 * [1, 1.02, 0.98, 1, 1.01, 0.99] * [1.001, 0.999, 1, 1.002, 0.998, 1],
        ),
    ]
    a = judge("a", configs)
    assert sorted(r["outcome"] for r in a["parts"][0]["contrasts"]) == ["for", "neutral"]
    assert a["by_task"] == {"copy": "inconclusive"}  # rule all: "any" would have said supported


def test_no_variance_across_seeds_is_neutral_with_a_note_and_mde_is_printed():
    configs = [("s", "copy", {"forget_bias": "0"}, SPREAD * 2), ("s", "copy", {"forget_bias": "1"}, SPREAD)]
    (row,) = judge("a", configs)["parts"][0]["contrasts"]
    assert math.isnan(row["p"]) and row["outcome"] == "neutral" and "no variance across seeds" in row["note"]
    noisy = [("s", "copy", {"forget_bias": "0"}, SPREAD * [1.2, 0.9, 1.1, 0.8, 1.0, 1.05]), configs[1]]
    a = judge("a", noisy)
    (row,) = a["parts"][0]["contrasts"]
    assert row["outcome"] == "neutral" and row["mde_ratio"] > 1
    d = np.log([1.2, 0.9, 1.1, 0.8, 1.0, 1.05])
    assert row["mde_ratio"] == pytest.approx(math.exp(stats.mde_paired(6, d.std(ddof=1))))
    assert a["parts"][0]["mde_ratio"] == [row["mde_ratio"], row["mde_ratio"]]
