"""The claims catalogue and its evaluator's rules, without sweeps (tests/test_report.py judges real ones)."""

import pytest

from experiments.report import claim_catalogue as cat
from experiments.report import claim_evaluation as ev
from lstm_keras.variants import GRU_VARIANTS, LSTM_VARIANTS


def test_every_claim_is_complete_and_has_a_unique_id():
    ids = [c.id for c in cat.CLAIMS]
    assert len(set(ids)) == len(ids)
    for claim in cat.CLAIMS:
        assert claim.statement and claim.definition and claim.parts, claim.id
        assert all(part.contrasts for part in claim.parts), claim.id


def test_an_entry_with_an_unknown_expectation_rule_or_variant_is_refused_when_defined():
    with pytest.raises(ValueError, match="expect='worse'"):
        cat.Contrast("x", cat.NFG, (cat.VANILLA,), frozenset(), "worse")
    with pytest.raises(ValueError, match="rule='most'"):
        cat.Part("x", "x", (), "most")
    with pytest.raises(ValueError, match="Unknown lstm variant"):
        cat._side("LSTM NOPE", "lstm", "NOPE")


def test_which_cells_have_a_forget_bias_comes_from_the_library_variants():
    lstm = {v for v in LSTM_VARIANTS if cat._gated({"cell": "lstm", "variant": v})}
    gru = {v for v in GRU_VARIANTS if cat._gated({"cell": "gru", "variant": v})}
    assert lstm == set(LSTM_VARIANTS) - {"NFG", "lstm1997"}  # the two without a forget gate
    assert gru == set(GRU_VARIANTS) - {"NUG"}  # the one without an update gate
    assert not cat._gated({"cell": "rnn", "variant": "keras"})


def test_claim_verdict_combination_rules():
    assert ev.claim_verdict([ev.NOT_TESTED, ev.NOT_TESTED]) == ev.NOT_TESTED
    assert ev.claim_verdict([ev.SUPPORTED, ev.NOT_TESTED]) == ev.SUPPORTED
    assert ev.claim_verdict([ev.SUPPORTED, ev.CONTRADICTED]) == ev.CONTRADICTED
    assert ev.claim_verdict([ev.SUPPORTED, ev.INCONCLUSIVE]) == ev.INCONCLUSIVE


# ----------------------------------------------------------------------------- sweeps in MLflow


def test_a_loss_contrast_where_neither_side_learned_is_neutral():
    claim_b = next(c for c in cat.CLAIMS if c.id == "b")
    contrast = claim_b.parts[0].contrasts[0]
    row = {"n_a": 5, "n_b": 5, "diff": 0.0011, "diff_ci_low": 0.0003, "diff_ci_high": 0.002, "p_holm": 0.01}
    untrained = ev._outcome({**row, "mean_a": 1.0011, "mean_b": 1.0}, contrast, ev.Options())
    assert untrained == "neutral"
    learned = {**row, "mean_a": 0.0078, "mean_b": 0.0025}
    assert ev._outcome(learned, contrast, ev.Options()) == "for"  # NFG worse, significant
