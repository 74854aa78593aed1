"""The agreement probe's cell probe (aligned positions, readout, the states it reads), its refusal
of missing corpora before TensorFlow, and a quick run end to end with everything it logs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.probes import agreement_cell as cell
from experiments.probes import agreement_data as data
from experiments.probes import agreement_lm as lm

ROOT = Path(__file__).resolve().parents[1]


def _item(words: str, subject: int, verb: int, plural: bool = True, group: str = "g") -> data.Item:
    tokens = tuple(words.split())
    return data.Item(tokens, verb, tokens[verb], "x", plural, 0, subject=subject, group=group)


def test_the_aligned_steps_read_the_state_after_the_named_word():
    vocab = ("<eos>", "<unk>", "the", "keys", "to", "old", "green", "cabinet", "are", "one", "here")
    item = _item("the keys to the old green cabinet are here", subject=1, verb=7)
    first = _item("keys to the old green cabinet are", subject=0, verb=6)
    rows, last = lm.prefix_rows([item.prefix, first.prefix], vocab)
    steps = cell.aligned_steps([item, first])
    ids = {w: k for k, w in enumerate(vocab)}
    # the state at step s has read rows[:s + 1]: its last word is rows[s]
    expected = ["the", "keys", "to", "the", "old", "cabinet"]
    assert [vocab[rows[0, s]] for s in steps[0]] == expected
    assert rows[1, steps[1, 0]] == ids["<eos>"]  # the subject opens the sentence: before = "<eos>"
    assert [vocab[rows[1, s]] for s in steps[1, 1:]] == ["keys", "to", "the", "old", "cabinet"]
    assert steps[:, -1].tolist() == last.tolist()  # verb−1 is the step the LM scores the verb at
    assert cell.POSITIONS[0] == "before" and cell.POSITIONS[-1] == "verb−1"


def test_a_span_too_short_to_align_is_refused():
    with pytest.raises(ValueError, match="needs ≥ 4 words"):
        cell.aligned_steps([_item("the dog near us barks", subject=1, verb=4)])
    with pytest.raises(ValueError, match="needs ≥ 4 words"):
        cell.aligned_steps([_item("the dog near us barks", subject=-1, verb=4)])


def test_the_readout_finds_a_linear_code_and_not_noise():
    rng = np.random.default_rng(0)
    n, units = 200, 8
    labels = rng.integers(0, 2, n)
    groups = np.repeat(np.arange(20), 10)
    features = rng.normal(size=(n, 2, units))
    features[:, 1, 3] += 3.0 * (2 * labels - 1)  # position 1 carries the label along one unit
    hits = cell.readout(features, labels, groups)
    assert hits[:, 1].mean() > 0.9
    assert 0.3 < hits[:, 0].mean() < 0.7
    per_group = cell.by_group(hits, groups)
    assert per_group.shape == (20, 2)
    np.testing.assert_allclose(per_group[3], hits[30:40].mean(axis=0))


def test_the_traced_states_are_the_layers_own_outputs(shared_corpora):
    import keras

    from experiments.probes import agreement_options as options
    from experiments.training.model import RECURRENT, build_model

    paths = {p: shared_corpora / "ptb" / p for p in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")}
    task = lm.make_task(paths, 35, 5000, "test")
    config = options.from_args(options.build_parser("t").parse_args(["--quick", "true"]))
    model = build_model(options.run_config(config, "lstm", "keras", 0, lm=True), task)
    items = [it for it in data.read_nonce(shared_corpora / "linzen_agreement") if it.subject >= 0][:12]
    states = cell.trace_states(model, items, task.vocabulary)
    rows, last = lm.prefix_rows([it.prefix for it in items], task.vocabulary)
    inputs = keras.Input((None,), dtype="int32")
    outputs = model.get_layer(RECURRENT)(model.get_layer("embedding")(inputs))
    h = keras.Model(inputs, outputs)(rows).numpy()
    np.testing.assert_allclose(states["h"][:, -1], h[np.arange(len(items)), last], atol=1e-5)
    np.testing.assert_allclose(
        states["h"][:, 0], h[np.arange(len(items)), [it.subject for it in items]], atol=1e-5
    )
    assert states["c"].shape == (12, len(cell.POSITIONS), config.lm_units)
    assert ((states["f"] > 0) & (states["f"] < 1)).all() and states["sentence_f"].shape == (12,)


def _main_in_subprocess(args: list[str]) -> subprocess.CompletedProcess:
    code = (
        "import sys; from experiments.probes import agreement_probe\n"
        "try:\n    agreement_probe.main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print('tensorflow' in sys.modules); raise\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )


def test_a_missing_corpus_path_is_refused_before_tensorflow(tmp_path):
    missing = tmp_path / "no_such_corpora"
    result = _main_in_subprocess(["--quick", "true", "--data_dir", str(missing)])
    assert result.returncode == 2
    assert f"Invalid data_dir={str(missing)!r}: no such folder" in result.stderr
    assert result.stdout.strip() == "False" and not missing.exists()


def test_a_corrupt_corpus_file_is_refused_before_tensorflow(shared_corpora, tmp_path):
    from experiments.training import corpora

    folder = tmp_path / "linzen_agreement"
    for f in corpora.CORPORA["linzen_agreement"].files:  # linked, never copied
        (folder / f.name).parent.mkdir(parents=True, exist_ok=True)
        (folder / f.name).symlink_to(shared_corpora / "linzen_agreement" / f.name)
    (folder / "subj_agr_filtered.gold").unlink()
    (folder / "subj_agr_filtered.gold").write_text("11\tis\tare\t0\n")
    result = _main_in_subprocess(["--quick", "true", "--data_dir", str(tmp_path)])
    assert result.returncode == 2 and result.stdout.strip() == "False"
    assert "subj_agr_filtered.gold is not the expected file" in result.stderr


def test_bad_sizes_are_refused_naming_the_value():
    result = _main_in_subprocess(["--quick", "maybe"])
    assert result.returncode == 2 and "Invalid quick='maybe'. Valid choices: true, false." in result.stderr
    result = _main_in_subprocess(["--cells", "lstm/NOPE"])
    assert result.returncode == 2 and "NOPE" in result.stderr and result.stdout.strip() == "False"


@pytest.mark.slow
def test_a_quick_probe_runs_end_to_end_and_logs_everything(tracking, shared_corpora, tmp_path):
    import mlflow

    from experiments.probes import agreement_probe

    out = tmp_path / "out"
    out.mkdir()
    (out / "cell_probe.png").write_text("stale")  # an earlier run's file is replaced
    args = ["--quick", "true", "--cells", "lstm,rnn,lstm/NFG", "--data_dir", str(shared_corpora)]
    assert agreement_probe.main([*args, "--out", str(out)]) == 0
    text = (out / "agreement_probe.md").read_text()
    assert "## Probe 2" in text and "Quick size" in text and "### What the cell carries" in text
    assert "Gulordava et al. 2018" in text and "≈ 0.75 accuracy" in text
    runs = mlflow.search_runs(experiment_names=["agreement_probe"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3 * 2 + 1  # cells × seeds, and the word LM
    tags, metrics = parents[0].data.tags, parents[0].data.metrics
    verdicts = ("supported", "contradicted", "inconclusive")
    assert tags["verdict.lstm_vs_rnn"] in verdicts and tags["verdict.cell_carries_number"] in verdicts
    assert "verdict.gru_vs_rnn" not in tags  # no GRU was trained: no verdict about it
    assert {"lm.test_perplexity", "cell_probe.c_verb_1", "cell_probe.f_word", "lstm.balanced_all"} <= set(
        metrics
    )
    assert all(c.data.tags["git_commit"] and c.data.tags["data_checksum"] for c in children)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parents[0].info.run_id)}
    assert {
        "agreement_probe.md",
        "accuracy_by_attractors.png",
        "cell_probe.png",
        "cell_probe.csv",
    } <= artifacts
    assert (out / "cell_probe.png").read_bytes()[:4] == b"\x89PNG"
