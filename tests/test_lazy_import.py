"""The package loads its Keras half on first use: the variants as data need no TensorFlow."""

import subprocess
import sys

import pytest

import lstm_keras

pytestmark = pytest.mark.backend_agnostic


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_variants_and_activation_names_import_neither_keras_nor_tensorflow():
    loaded = _run(
        "import sys, lstm_keras.variants, lstm_keras.activation_names\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    assert loaded == "[]"


def test_every_public_name_resolves_and_is_listed():
    for name in lstm_keras.__all__:
        assert getattr(lstm_keras, name) is not None, name
    assert set(lstm_keras.__all__) <= set(dir(lstm_keras))
    assert lstm_keras.layers.LSTM is lstm_keras.LSTM  # submodules as an eager package had them
    with pytest.raises(AttributeError, match="no attribute 'LTSM'"):
        lstm_keras.LTSM  # noqa: B018


@pytest.mark.slow  # two fresh processes that import TensorFlow
def test_a_saved_model_loads_in_a_process_that_imports_the_layers(tmp_path):
    path = tmp_path / "m.keras"
    _run(
        "import keras, lstm_keras as lk\n"
        "m = keras.Sequential([keras.Input((5, 3)), lk.GRU(4, variant='MUT3'), keras.layers.Dense(1)])\n"
        f"m.save({str(path)!r})"
    )
    kind = _run(
        f"import keras, lstm_keras.layers\nprint(type(keras.saving.load_model({str(path)!r}).layers[0]))"
    )
    assert kind == "<class 'lstm_keras.layers.GRU'>"
