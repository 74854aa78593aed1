"""The "but" probe (issue 17, probe 1): token → gate-step alignment, controls, composites,
statistics, the refusal of a missing corpus, and one quick end-to-end run (slow)."""

import csv
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from reference import lstm_step
from scipy import stats as sps

import lstm_keras as lk
from experiments.probes import but_stats, composites, connectives, gates, options

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ["", "[UNK]", "the", "film", "is", "dull", "but", "acting", "great", "and", "yet", "fun", "a", "bore"]
ID = {w: k for k, w in enumerate(VOCAB)}
SENTENCE = ["the", "film", "is", "dull", "but", "the", "acting", "is", "great"]  # "but" is token 4
BUT_INDEX = 4


def _ids(words, seq_len=12, front=False):
    ids = [ID[w] for w in words]
    pad = [0] * (seq_len - len(ids))
    return np.array(pad + ids if front else ids + pad, dtype=np.int32)


def test_token_steps_follow_the_mask_whatever_the_padding_side():
    end = _ids(SENTENCE) != 0
    front = _ids(SENTENCE, front=True) != 0
    assert connectives.token_steps(end)[BUT_INDEX] == BUT_INDEX
    assert connectives.token_steps(front)[BUT_INDEX] == BUT_INDEX + 3  # 12 steps, 9 tokens
    assert len(connectives.token_steps(front)) == len(SENTENCE)


def test_the_connective_of_a_hand_made_sentence_is_found_at_its_index():
    x = np.stack(
        [
            _ids(SENTENCE),
            _ids(["a", "film", "is", "fun", "and", "the", "acting", "is", "great"]),
            _ids(["the", "film", "is", "great", "but"]),  # no word after "but": in neither group
            _ids(["the", "film", "and", "the", "acting", "yet"]),  # a late "yet" bars its "and" too
        ]
    )
    contrastive, candidates = connectives.find_occurrences(x, VOCAB)
    assert [(o.sentence, o.word, o.index, o.n_tokens) for o in contrastive] == [(0, "but", BUT_INDEX, 9)]
    assert [(o.sentence, o.word, o.index) for o in candidates] == [(1, "and", 4)]
    assert contrastive[0].relative == pytest.approx(BUT_INDEX / 8)


def test_controls_are_matched_by_relative_position_without_reuse():
    occ = connectives.Occurrence
    contrastive = [occ(0, "but", 2, 11, "contrastive"), occ(1, "but", 8, 11, "contrastive")]
    candidates = [occ(5, "and", 8, 9, "and"), occ(6, "and", 2, 10, "and"), occ(7, "and", 7, 9, "and")]
    chosen = connectives.match_controls(contrastive, candidates)
    # relative positions 0.2 and 0.8 against 1.0, 0.22, 0.875: each takes its nearest
    assert [o.sentence for o in chosen] == [6, 7]
    assert [o.sentence for o in connectives.match_controls(contrastive * 2, candidates)] == [6, 7, 5]


def _model(seq_len=12, units=5, cell="lstm", variant="keras"):
    inputs = keras.Input((seq_len,), dtype="int32")
    x = keras.layers.Embedding(len(VOCAB), 3, mask_zero=True, name="embedding")(inputs)
    layer_class = lk.LSTM if cell == "lstm" else lk.GRU
    h = layer_class(units, variant=variant, name="recurrent")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(h))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.7, w.shape).astype("float32") for w in model.get_weights()])
    return model, model.get_layer("recurrent")


def _reference_forget_gates(model, words):
    """f at every token by the numpy equations of tests/reference.py, run over the words alone."""
    layer = model.get_layer("recurrent")
    w = {v.name: keras.ops.convert_to_numpy(v) for v in layer.cell.weights}
    units = layer.cell.units

    def blocks(m):
        return {s: m[..., k * units : (k + 1) * units] for k, s in enumerate("ifco")}

    weights = {"W": blocks(w["kernel"]), "R": blocks(w["recurrent_kernel"]), "b": blocks(w["bias"])}
    table = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings)
    h, c, fs = np.zeros((1, units)), np.zeros((1, units)), []
    for word in words:
        h, c, _, g = lstm_step("keras", weights, table[[ID[word]]], h, c)
        fs.append(g["f"][0])
    return np.array(fs), h


@pytest.mark.parametrize("front", [False, True], ids=["end-padded", "front-padded"])
def test_the_gate_read_for_a_token_is_that_tokens_step(front):
    """The forget gate the probe reads at "but" is the one the numpy equations compute at "but"
    when they read the sentence alone, whichever side the row is padded on."""
    model, layer = _model()
    x = np.stack([_ids(SENTENCE, front=front), _ids(["a", "film", "is", "fun"], front=front)])
    gate = gates.keep_gate_trace(model, layer, x)
    f_ref, h_ref = _reference_forget_gates(model, SENTENCE)
    read = gate[0][connectives.token_steps(x[0] != 0)]
    np.testing.assert_allclose(read, f_ref, atol=1e-5)
    contrastive, _ = connectives.find_occurrences(x, VOCAB)
    drops = connectives.gate_drops(gate, x != 0, contrastive)
    profile = f_ref.mean(axis=1)
    np.testing.assert_allclose(drops[0, 0], profile.mean() - profile[BUT_INDEX], atol=1e-6)
    np.testing.assert_allclose(
        drops[0, 2], profile.mean() - profile[BUT_INDEX : BUT_INDEX + 3].mean(), atol=1e-6
    )
    # ... and it is the state the model itself classifies from
    head = model.get_layer("head")
    np.testing.assert_allclose(model(x[:1]).numpy(), head(h_ref.astype("float32")).numpy(), atol=1e-5)


def test_which_gate_keeps_the_state():
    assert gates.keep_gate_name(_model(cell="gru")[1]) == "z"  # h = z h_{t-1} + (1 - z) h~
    assert gates.keep_gate_name(_model(cell="gru", variant="MUT3")[1]) == "1-z"  # z writes there
    assert gates.keep_gate_name(_model(variant="NFG")[1]) is None
    assert "z keeps the old state" in gates.convention(_model(cell="gru")[1])
    model, layer = _model(variant="CIFG")
    x = _ids(SENTENCE)[None]
    trace = lk.gate_trace(layer, model.get_layer("embedding")(x), mask=x != 0)
    np.testing.assert_allclose(gates.keep_gate_trace(model, layer, x), 1 - trace["i"], atol=1e-6)
    model, layer = _model(variant="NFG")
    assert gates.keep_gate_trace(model, layer, x) is None


def test_composites_put_the_connective_after_the_first_clause():
    x = np.stack(
        [_ids(["the", "film", "is", "great"]), _ids(["a", "dull", "bore"]), _ids(["fun", "and", "great"])]
    )
    y = np.array([1, 0, 1])
    probs = np.array([[0.05, 0.95], [0.97, 0.03], [0.01, 0.99]])
    positive, negative = composites.clause_pool(x, y, probs, VOCAB, confidence=0.9)
    assert positive.tolist() == [0] and negative.tolist() == [1]  # row 2 holds "and"
    _, none = composites.clause_pool(x, y, probs, VOCAB, confidence=0.98)
    assert none.tolist() == []
    pairs = composites.sample_pairs(positive, negative, 5, np.random.default_rng(0))
    assert pairs.tolist() == [[0, 1]]
    rows, index = composites.compose(x, pairs[:, 0], pairs[:, 1], ID["but"], 12)
    assert connectives.words_of(rows[0], VOCAB) == ["the", "film", "is", "great", "but", "a", "dull", "bore"]
    assert index.tolist() == [4] and rows[0, index[0]] == ID["but"]
    with pytest.raises(ValueError, match="seq_len=6"):
        composites.compose(x, pairs[:, 0], pairs[:, 1], ID["but"], 6)


def test_statistics_agree_with_scipy_and_the_verdict_rule():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.02, 0.01, 40), rng.normal(0.0, 0.01, 50)
    row = but_stats.compare_groups(a, b)
    assert row["diff"] == pytest.approx(a.mean() - b.mean())
    assert row["welch_p"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert row["mannwhitney_p"] == pytest.approx(sps.mannwhitneyu(a, b, method="exact").pvalue)
    low, high = but_stats.bootstrap_diff_ci(a, b)
    assert low < a.mean() - b.mean() < high and low > 0
    over = but_stats.over_seeds([0.01, 0.02, 0.015, 0.012, 0.018])
    ci = sps.ttest_1samp([0.01, 0.02, 0.015, 0.012, 0.018], 0).confidence_interval()
    assert (over["seeds_ci_low"], over["seeds_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert but_stats.verdict(0.001, 0.02) == "supported"
    assert but_stats.verdict(-0.02, -0.001) == "contradicted"
    assert but_stats.verdict(-0.01, 0.02) == "inconclusive"
    assert but_stats.verdict(float("nan"), float("nan")) == "inconclusive"
    rate, low, high = but_stats.rate_ci(45, 50)
    assert rate == 0.9 and low < 0.9 < high


def test_bad_cells_are_refused_naming_the_choices():
    with pytest.raises(options.ConfigError, match="Valid choices"):
        options.parse_cells("lstm/NOPE")
    with pytest.raises(options.ConfigError, match="SimpleRNN"):
        options.parse_cells("rnn")


def test_a_missing_corpus_path_is_refused_before_tensorflow(tmp_path):
    missing = tmp_path / "no_such_corpora"
    code = (
        "import sys; from experiments.probes import but_probe\n"
        "try:\n    but_probe.main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print('tensorflow' in sys.modules); raise\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--quick", "true", "--data_dir", str(missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    assert result.returncode == 2
    assert f"Invalid data_dir={str(missing)!r}: no such folder" in result.stderr
    assert result.stdout.strip() == "False"  # refused before TensorFlow loaded
    assert not missing.exists()  # never created


@pytest.mark.slow
def test_a_quick_probe_runs_end_to_end_and_logs_everything(tracking, shared_corpora, tmp_path):
    import mlflow

    from experiments.probes import but_probe

    out = tmp_path / "out"
    args = ["--quick", "true", "--seeds", "2", "--data_dir", str(shared_corpora), "--out", str(out)]
    assert but_probe.main(args) == 0
    text = (out / "but_probe.md").read_text()
    assert "## Probe 1" in text
    assert any(f"Verdict: **{v}**" in text for v in ("supported", "contradicted", "inconclusive"))
    assert "z keeps the old state" in text  # the GRU's convention is stated
    runs = mlflow.search_runs(experiment_names=["but_probe"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4 * 2
    parent = parents[0]
    assert parent.data.tags["verdict"] in ("supported", "contradicted", "inconclusive")
    assert "lstm.gate_at.diff" in parent.data.metrics and "lstm.follow_b.but" in parent.data.metrics
    assert {c.data.params["seed"] for c in children} == {"0", "1"}
    assert all(c.data.tags["git_commit"] and c.data.tags["data_checksum"] for c in children)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"but_probe.md", "aligned_gate_curve.png", "gate_heatmap_lstm.png", "follow_b.png"} <= artifacts
    assert {"gate_summary.csv", "follow_b_summary.csv", "models.csv"} <= artifacts
    with (out / "gate_tests.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["cell"] for r in rows} == {"lstm", "gru", "lstm/CIFG"}  # NFG has no forget gate to read
    assert all(int(float(r["n_contrastive"])) > 50 for r in rows)


def _fake_runs(shift: float, seeds: int = 5, rng=None):
    """Per-seed results as the pipeline hands them on, with a known contrastive − and shift."""
    rng = rng or np.random.default_rng(0)
    runs = []
    for seed in range(seeds):
        w = len(connectives.WINDOWS)
        gate = {
            "sentences_contrastive": [(k, "but", 3) for k in range(30)],
            "sentences_and": [(100 + k, "and", 3) for k in range(25)],
            "drops_contrastive": rng.normal(0, 0.01, (30, w)) + shift,
            "drops_and": rng.normal(0, 0.01, (25, w)),
            "curves_contrastive": rng.normal(0, 0.01, (30, 11)),
            "curves_and": rng.normal(0, 0.01, (25, 11)),
            "examples": [],
        }
        follows = {
            w: {"follows": rng.random(40) < 0.8, "both_orders": rng.random(20) < 0.6} for w in ("but", "and")
        }
        follow = {"n_pairs": 20, "n_positive_clauses": 50, "n_negative_clauses": 60, **follows}
        results = {"final_val_accuracy": 0.81 + 0.001 * seed, "test_accuracy": 0.8, "steps_per_s": 10.0}
        runs.append({"seed": seed, "run_id": f"r{seed}", "results": results, "gate": gate, "follow": follow})
    return runs


@pytest.mark.parametrize(
    ("shift", "verdict"), [(0.03, "supported"), (-0.03, "contradicted"), (0.0, "inconclusive")]
)
def test_the_report_states_the_verdict_the_rule_gives(tmp_path, shift, verdict):
    from experiments.probes import outputs, report

    nfg = [{**r, "gate": None} for r in _fake_runs(0.0, seeds=2)]
    per_cell = {"lstm": _fake_runs(shift), "lstm/NFG": nfg}
    tables = outputs.tables(per_cell)
    assert tables["gate_summary"]["lstm"][0]["verdict"] == verdict
    assert tables["gate_summary"]["lstm/NFG"] == []
    figures = outputs.figures(per_cell, tables, tmp_path)
    facts = {"n_contrastive": 30, "n_and": 25, "words": "but 30", "rel_contrastive": 0.5, "rel_and": 0.5}
    facts |= {"len_contrastive": 20.0, "len_and": 19.0}
    params = options.from_args(options.build_parser("x").parse_args([])).as_params()
    text = report.write(
        params=params,
        models=tables["models"],
        gate_summary=tables["gate_summary"],
        follow_summary=tables["follow_summary"],
        conventions={"lstm": "f", "lstm/NFG": "none"},
        selection=facts,
        figures=figures,
        verdict_cell="lstm",
        timing={"wall_s": 1.0, "steps_per_s": 10.0},
    )
    assert f"Verdict: **{verdict}** for lstm" in text
    assert "reaches the target dev accuracy 0.80" in text
    assert "| lstm/NFG | – | no keep gate |" in text
    for name, _ in figures:
        assert (tmp_path / name).stat().st_size > 0 and f"]({name})" in text
    outputs.write_tables(tmp_path, tables, facts, {}, params)
    with (tmp_path / "gate_drops.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert (first["dev_row"], first["word"]) == ("0", "but") and "drop_next_2" in first
    metrics, verdicts = outputs.summary_metrics(tables)
    assert verdicts == {"lstm": verdict} and metrics["lstm.gate_at.diff"] == pytest.approx(shift, abs=0.01)
    (tmp_path / "gate_heatmap_old.png").write_text("stale")
    keep = tmp_path / "mine.txt"
    keep.write_text("a user's file")
    outputs.clear(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
