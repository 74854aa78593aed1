"""The benchmark runs and reports ratios against the right reference (no timing asserted)."""

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
    assert engines["LSTM"] == engines["GRU"] == engines["LSTM/NFG"] == "fused"  # the default, here
    assert engines["LSTM-while"] == engines["GRU/cho2014"] == "tf_while"  # no fused cho2014 GRU
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
            "params": 10,
        },
    ]
    args = argparse.Namespace(shapes=["copy"], variants=[], rounds=3, steps=2)
    run_id = benchmark.log_to_mlflow(rows, args)
    run = mlflow.get_run(run_id)
    assert (
        run.data.metrics["ratio.copy.LSTM"] == 1.2 and run.data.metrics["steps_per_s.copy.keras.LSTM"] == 5.0
    )
    assert run.data.params["rounds"] == "3" and run.data.tags["benchmark"] == "true"
    assert "benchmark.txt" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


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
    assert len(table) == 3  # header, rule, copy: adding and char_lm were not run
    assert (
        table[2] == "| copy (B128, T120, 128 units) | 1.01× (51 %) | 1.04× | 0.96× | 1.29× | – | – | 1.16× |"
    )


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
