"""The benchmark runs and reports ratios against the right reference (no timing asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

from experiments import benchmark


@pytest.mark.tf_only
@pytest.mark.slow  # trains every contender
def test_benchmark_reports_each_contender_against_its_builtin():
    tiny = benchmark.Shape("tiny", batch=4, seq_len=5, features=3, units=4, outputs=2)
    rows = benchmark.run_shape(tiny, variants=["NFG", "cho2014"], rounds=1, steps=1)
    by_layer = {r["layer"]: r for r in rows}
    assert set(by_layer) == {
        "keras.LSTM",
        "LSTM",
        "LSTM-while",
        "LSTM-plain",
        "keras.GRU",
        "GRU",
        "GRU-while",
        "GRU-plain",
        "LSTM/NFG",
        "LSTM/NFG-plain",
        "GRU/cho2014",
        "GRU/cho2014-plain",
    }
    assert by_layer["keras.LSTM"]["ratio"] == 1.0
    assert by_layer["LSTM"]["reference"] == "keras.LSTM"
    assert by_layer["LSTM/NFG"]["reference"] == "LSTM/NFG-plain"  # the engine's gain for the variant
    assert by_layer["LSTM/NFG-plain"]["reference"] == "LSTM-plain"  # what the ablation saves
    engines = {name: r["engine"] for name, r in by_layer.items()}
    assert engines["LSTM"] == engines["GRU"] == engines["LSTM/NFG"] == engines["GRU/cho2014"] == "fused"
    assert engines["LSTM-while"] == engines["GRU-while"] == "tf_while"
    assert engines["LSTM-plain"] == engines["LSTM/NFG-plain"] == "keras" and engines["keras.GRU"] == "builtin"
    assert by_layer["LSTM"]["params"] == by_layer["keras.LSTM"]["params"]
    assert all(r["steps_per_s"] > 0 for r in rows)
    assert "LSTM/NFG" in benchmark.format_table(rows)


@pytest.mark.tf_only
def test_benchmark_logs_ratios_and_rates_as_metrics_of_one_run(tracking):
    import argparse

    import mlflow

    rows = [
        {
            "shape": "copy",
            "layer": "keras.LSTM",
            "reference": "keras.LSTM",
            "steps_per_s": 5.0,
            "ratio": 1.0,
            "params": 10,
        },
        {
            "shape": "copy",
            "layer": "LSTM",
            "reference": "keras.LSTM",
            "steps_per_s": 6.0,
            "ratio": 1.2,
            "ratio_range": (1.1, 1.3),
            "params": 10,
        },
    ]
    args = argparse.Namespace(shapes=["copy"], variants=[], rounds=3, steps=2)
    run_id = benchmark.log_to_mlflow(rows, args)
    run = mlflow.get_run(run_id)
    assert (
        run.data.metrics["ratio.copy.LSTM"] == 1.2 and run.data.metrics["steps_per_s.copy.keras.LSTM"] == 5.0
    )
    assert run.data.metrics["ratio_min.copy.LSTM"] == 1.1 and run.data.metrics["ratio_max.copy.LSTM"] == 1.3
    assert "ratio_min.copy.keras.LSTM" not in run.data.metrics  # no range given, none logged
    assert run.data.params["rounds"] == "3" and run.data.tags["benchmark"] == "true"
    assert "benchmark.txt" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


def test_a_ratio_pairs_the_two_timings_of_each_round():
    # Round 2 ran on a loaded machine for both: its pair still says 2×, where the medians
    # (20 against 15 steps/s) would say 1.33×.
    assert benchmark.paired_ratio([10.0, 20.0, 30.0], [5.0, 40.0, 15.0]) == (2.0, 0.5, 2.0)
    assert benchmark.paired_ratio([3.0, 6.0], [2.0, 4.0]) == (1.5, 1.5, 1.5)
    with pytest.raises(ValueError):  # rounds missing from one side are an error, not a shorter pairing
        benchmark.paired_ratio([1.0, 2.0], [1.0])


def test_readme_table_is_built_from_a_runs_metrics():
    metrics = {
        "ratio.copy.LSTM": 1.01,
        "gemm_share.copy.LSTM": 0.51,
        "ratio.copy.LSTM-while": 1.04,
        "ratio.copy.LSTM-plain": 0.96,
        "ratio.copy.GRU": 1.29,
        "ratio.copy.LSTM/NFG": 1.16,
        "gemm_share.copy.LSTM/NFG": 0.59,  # a variant's share is not shown (fewer products)
    }
    table = benchmark.markdown_table(metrics).splitlines()
    assert table[0] == (
        "| shape | LSTM (fused) | LSTM (tf_while) | LSTM (plain) | GRU (fused) | GRU (tf_while) | GRU (plain)"
        " | LSTM/NFG (vs plain) |"
    )
    assert len(table) == 5  # header, rule, copy (adding and char_lm were not run), the PyTorch note
    assert (
        table[2] == "| copy (B128, T120, 128 units) | 1.01× (51 %) | 1.04× | 0.96× | 1.29× | – | – | 1.16× |"
    )
    assert table[4].startswith("PyTorch was not installed for this run")


@pytest.mark.tf_only
@pytest.mark.slow  # compiles a rung of the kernel (cached per machine) and trains on it
def test_benchmark_times_our_layers_on_another_rung_beside_the_default_build():
    from lstm_keras import fused_engine

    kernels, failed = benchmark.load_rungs(["x86-64-v2", "no-such-rung"])
    assert list(kernels) == ["x86-64-v2"] and kernels["x86-64-v2"].suffix == "X8664V2"
    assert len(failed) == 1 and failed[0].startswith("no-such-rung: Unknown rung 'no-such-rung'")
    tiny = benchmark.Shape("tiny", batch=4, seq_len=5, features=3, units=4, outputs=2)
    rows = {r["layer"]: r for r in benchmark.run_shape(tiny, [], rounds=1, steps=1, rungs=kernels)}
    default = fused_engine.kernel().rung.name
    assert rows["LSTM"]["rung"] == rows["GRU"]["rung"] == default
    assert rows["LSTM:x86-64-v2"]["rung"] == rows["GRU:x86-64-v2"]["rung"] == "x86-64-v2"
    assert rows["LSTM:x86-64-v2"]["reference"] == "keras.LSTM" and rows["keras.GRU"]["rung"] is None
    assert rows["GRU:x86-64-v2"]["engine"] == "fused" and rows["LSTM-while"]["rung"] is None
    assert "LSTM:x86-64-v2" in benchmark.format_table(list(rows.values()))
    # A whole run pinned to a rung (--cap_isa): our default contenders run and are labelled with it.
    with fused_engine.pinned(kernels["x86-64-v2"]):
        pinned = {r["layer"]: r for r in benchmark.run_shape(tiny, [], rounds=1, steps=1)}
    assert pinned["LSTM"]["rung"] == pinned["GRU"]["rung"] == "x86-64-v2"


# --- PyTorch side by side (torch is the optional extra `bench`: these skip without it) ---

TINY = benchmark.Shape("tiny", batch=4, seq_len=5, features=3, units=4, outputs=2)
TOKENS = benchmark.Shape("tokens", batch=4, seq_len=6, features=7, units=5, outputs=7, embedding=3)
LAST = benchmark.Shape("last", batch=4, seq_len=6, features=2, units=5, outputs=1, per_step=False)


def _torch():
    return pytest.importorskip("torch", reason="PyTorch not installed (pip install '.[bench]')")


@pytest.mark.tf_only
@pytest.mark.parametrize("shape", [TINY, TOKENS, LAST], ids=lambda s: s.name)
def test_the_torch_step_trains_the_same_model_as_the_keras_step(shape):
    import keras
    import numpy as np

    from experiments.bench import torch_contenders

    torch = _torch()
    x, y = benchmark._batch(shape, np.random.default_rng(0))
    for kind, extra_bias in (("LSTM", 4), ("GRU", 0)):
        theirs = torch_contenders.build(torch, shape, kind)
        ours = benchmark.build_model(
            shape, getattr(keras.layers, kind)(shape.units, return_sequences=shape.per_step)
        )
        # nn.LSTM has two bias vectors (b_ih, b_hh: 4U more than Keras's one); nn.GRU's two are
        # Keras's GRU (reset_after=True) two, so the counts agree.
        assert torch_contenders.param_count(theirs) == ours.count_params() + extra_bias * shape.units
        before = [p.detach().clone() for p in theirs.parameters()]
        step = torch_contenders.train_step(torch, shape, theirs, x, y)
        losses = [step() for _ in range(3)]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0]  # the same batch: Adam lowers it
        # Every parameter (embedding, recurrent layer, head) took an optimizer step.
        assert all(not torch.equal(b, p) for b, p in zip(before, theirs.parameters()))


@pytest.mark.tf_only
@pytest.mark.parametrize("shape", [TOKENS, LAST], ids=lambda s: s.name)
def test_the_compiled_keras_step_does_what_train_on_batch_does(shape):
    import keras
    import numpy as np

    import lstm_keras as lk
    from experiments.bench.keras_step import compiled_step

    x, y = benchmark._batch(shape, np.random.default_rng(0))
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        models.append(benchmark.build_model(shape, lk.LSTM(shape.units, return_sequences=shape.per_step)))
    reference, ours = models
    np.testing.assert_array_equal(reference.get_weights()[1], ours.get_weights()[1])
    step = compiled_step(ours, x, y)
    expected = [float(reference.train_on_batch(x, y)) for _ in range(3)]
    got = [step() for _ in range(3)]
    # The same loss, gradient and Adam update: the same losses step by step and the same weights.
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got[-1] < got[0]
    for a, b in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.tf_only
def test_the_table_shows_each_layers_ratio_to_pytorch_beside_its_ratio_to_keras():
    torch = _torch()
    rows = {r["layer"]: r for r in benchmark.run_shape(TINY, [], rounds=1, steps=1, torch=torch)}
    assert rows["torch.LSTM"]["reference"] == "torch.LSTM" and rows["torch.LSTM"]["vs_torch"] == 1.0
    for name, kind in (("LSTM", "LSTM"), ("GRU", "GRU"), ("keras.LSTM", "LSTM"), ("GRU-while", "GRU")):
        torch_rate = rows[f"torch.{kind}"]["steps_per_s"]
        assert rows[name]["vs_torch"] == pytest.approx(rows[name]["steps_per_s"] / torch_rate)
    assert rows["torch.GRU"]["params"] == rows["keras.GRU"]["params"]
    assert rows["torch.LSTM"]["engine"] == "torch" and rows["torch.LSTM"]["gemm_share"] > 0
    table = benchmark.format_table(list(rows.values()))
    assert "torch" in table.splitlines()[0] and "torch.GRU" in table
    assert rows["LSTM"]["vs_torch_range"] == (rows["LSTM"]["vs_torch"],) * 2  # one round: its own range
    metrics = {"ratio.copy.LSTM": 1.4, "vs_torch.copy.LSTM": 0.9, "vs_torch.copy.GRU": 1.25}
    metrics.update({"vs_torch_min.copy.GRU": 1.18, "vs_torch_max.copy.GRU": 1.31})
    md = benchmark.markdown_table(metrics).splitlines()
    assert md[0].endswith("| LSTM vs torch | GRU vs torch |") and md[2].endswith(
        "| 0.90× | 1.25× (1.18–1.31) |"
    )
    assert len(md) == 3  # no 'not installed' note


HIDE_TORCH = "import sys; sys.modules['torch'] = None\n"  # what a machine without torch sees


def test_without_pytorch_the_benchmark_says_so_plainly():
    code = HIDE_TORCH + (
        "from experiments.bench import torch_contenders\n"
        "from experiments import benchmark\n"
        "torch, note = torch_contenders.torch_or_reason()\n"
        "assert torch is None\n"
        "print(benchmark.format_table([], note))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.splitlines()[-1].startswith("PyTorch not installed: ")
    assert "pip install '.[bench]'" in out.stdout


def test_peak_memory_of_a_step_grows_with_the_sequence():
    from experiments.bench import memory

    _torch()
    short, long = (memory.in_fresh_process("torch.LSTM", 16, t) for t in (10, 400))
    assert short["peak_reset"] and long["seq_len"] == 400
    # nn.LSTM keeps at least its four gates per step for the backward pass: 16·400·4·256 floats.
    assert long["first_step_mb"] - short["first_step_mb"] > 4 * 16 * 400 * 4 * 256 / memory.MB
    assert memory.stored_bytes("LSTM", memory.memory_shape(64, 1000)) == 4 * 64 * 1000 * 6 * 256
    assert memory.stored_bytes("keras.LSTM", memory.memory_shape()) is None
