"""The benchmark runs and reports ratios against the right reference (no timing asserted)."""

import pytest

from experiments import benchmark


@pytest.mark.tf_only
def test_benchmark_reports_each_contender_against_its_builtin():
    tiny = benchmark.Shape("tiny", batch=4, seq_len=5, features=3, units=4, outputs=2)
    rows = benchmark.run_shape(tiny, variants=["NFG", "cho2014"], rounds=1, steps=1)
    by_layer = {r["layer"]: r for r in rows}
    assert set(by_layer) == {"keras.LSTM", "LSTM", "keras.GRU", "GRU", "LSTM/NFG", "GRU/cho2014"}
    assert by_layer["keras.LSTM"]["ratio"] == 1.0
    assert by_layer["LSTM"]["reference"] == "keras.LSTM"
    assert by_layer["LSTM/NFG"]["reference"] == "LSTM"
    assert by_layer["LSTM"]["params"] == by_layer["keras.LSTM"]["params"]
    assert all(r["steps_per_s"] > 0 for r in rows)
    assert "LSTM/NFG" in benchmark.format_table(rows)
