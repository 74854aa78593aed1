"""The fused kernel's flag ladder: a rung that fails sends the build one rung down, a build that
fails everywhere is loud, and a kernel from a lower rung computes what tf_while computes.

Compilers that refuse some flags are shell wrappers around the real one, passed as CXX; every
test builds into its own kernel cache."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lstm_keras import kernel_build

pytestmark = pytest.mark.tf_only

# The error g++ 12.2 gives for TensorFlow 2.21's Eigen with -march=native on a Sapphire Rapids CPU.
SPR_ERROR = (
    "/usr/lib/python3/site-packages/tensorflow/include/Eigen/src/Core/arch/AVX512/PacketMathFP16.h:740:49: "
    "error: expected initializer before '<' token"
)


def _wrapper(tmp_path: Path, name: str, refuse_if: str, message: str) -> str:
    """A compiler that fails a build (a command with -shared) when the shell test `refuse_if`
    holds over its arguments (`$native`, `$nofp16` set), and otherwise runs the real g++."""
    script = tmp_path / name
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            native=0; nofp16=0; build=0
            for a in "$@"; do
              case "$a" in
                -march=native|-mcpu=native) native=1 ;;
                -mno-avx512fp16) nofp16=1 ;;
                -shared) build=1 ;;
              esac
            done
            if [ $build = 1 ] && {refuse_if}; then
              echo "{message}" >&2
              exit 1
            fi
            exec {os.environ.get("CXX", "g++")} "$@"
            """
        )
    )
    script.chmod(0o755)
    return str(script)


def _env(tmp_path: Path, cxx: str, **extra) -> dict:
    env = {**os.environ, "CXX": cxx, "LSTM_KERAS_KERNEL_CACHE": str(tmp_path / "cache")}
    env.pop(kernel_build.OPT_OUT, None)
    return {**env, **extra}


def _build_cli(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lstm_keras.fused_engine", "build"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_errors_in_eigens_per_isa_files_name_the_extension_to_leave_out():
    assert kernel_build.extensions_blamed(SPR_ERROR) == {"avx512fp16"}
    assert kernel_build.extensions_blamed("Eigen/src/Core/arch/AVX512/PacketMathBF16.h:3: error") == {
        "avx512bf16"
    }
    assert kernel_build.extensions_blamed("Eigen/src/Core/arch/AVX512/Complex.h:9: error") == {"avx512f"}
    assert kernel_build.extensions_blamed("fused_rnn.cc:12: error: 'foo' was not declared") == set()


def test_rungs_by_name_and_their_op_suffixes():
    names = [r.name for r in kernel_build.fixed_rungs()]
    assert names[0] == "native" and names[-1] == "generic"
    for name in names:
        assert kernel_build.rung_named(name).name == name
    rung = kernel_build.rung_named("native-no-avx512fp16-no-amx-tile")
    assert rung.flags[1:] == ("-mno-amx-tile", "-mno-avx512fp16")
    assert kernel_build.op_suffix(kernel_build.rung_named("x86-64-v3")) == "X8664V3"
    with pytest.raises(ValueError, match=r"Unknown rung 'avx9'\. Valid choices: native, "):
        kernel_build.rung_named("avx9")


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_a_compiler_that_builds_nothing_fails_setup_with_every_rungs_errors(tmp_path):
    cxx = _wrapper(tmp_path, "broken++", "true", "broken.cc:1:1: error: this compiler builds nothing")
    done = _build_cli(_env(tmp_path, cxx))
    assert done.returncode == 1, done.stderr
    for rung in kernel_build.fixed_rungs():
        assert f"rung {rung.name} (" in done.stderr and "error: this compiler builds nothing" in done.stderr
    assert "no rung of the flag ladder built the fused kernel" in done.stderr
    assert "LSTM_KERAS_FUSED=0" in done.stderr  # the documented way out
    (log,) = (tmp_path / "cache").glob("*.log")
    # Every fixed rung, and native without the extensions known to break Eigen where this CPU
    # has them (a Sapphire Rapids CPU: native-no-avx512fp16).
    tried = [r.name for r in kernel_build.fixed_rungs()]
    if set(kernel_build.KNOWN_TO_BREAK_EIGEN) & kernel_build.native_extensions(cxx):
        tried.insert(1, "native-no-" + "-no-".join(sorted(kernel_build.KNOWN_TO_BREAK_EIGEN)))
    manifest = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert manifest["rung"] is None and [f["rung"] for f in manifest["failures"]] == tried
    assert log.read_text().count("error: this compiler builds nothing") == len(tried)
    assert not list((tmp_path / "cache").glob("*.so"))

    # A layer in that environment runs tf_while and names the cause (the cached failure, not a
    # second climb down the ladder).
    script = "import lstm_keras as lk\nl = lk.LSTM(3)\nprint(l.engine_used()); print(l.fused_engine_reason())"
    layer = subprocess.run(
        [sys.executable, "-c", script], env=_env(tmp_path, cxx), capture_output=True, text=True, timeout=300
    )
    engine, reason = layer.stdout.strip().splitlines()[-2:]
    assert engine == "tf_while"
    assert reason.startswith("the fused kernel is not available: no rung of the flag ladder built")
    assert log.read_text().count("builds nothing") == len(tried)

    # The opt-out: setup passes and says the kernel is off on purpose.
    off = _build_cli(_env(tmp_path, cxx, LSTM_KERAS_FUSED="0"))
    assert off.returncode == 0 and "LSTM_KERAS_FUSED=0 (the fused kernel is switched off" in off.stderr


@pytest.mark.slow  # a training, a compiler or a fresh TensorFlow in a subprocess
def test_opted_out_layers_use_tf_while_and_say_why(tmp_path):
    script = "import lstm_keras as lk\nl = lk.GRU(3)\nprint(l.engine_used()); print(l.fused_engine_reason())"
    env = _env(tmp_path, "g++", LSTM_KERAS_FUSED="off")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip().splitlines()[-2:] == [
        "tf_while",
        "LSTM_KERAS_FUSED=off (the fused kernel is switched off; the layers use tf_while)",
    ]
    assert not (tmp_path / "cache").exists()  # nothing built


@pytest.mark.slow
def test_native_failing_in_eigen_is_rebuilt_without_the_extension_the_errors_name(tmp_path, monkeypatch):
    """The Sapphire Rapids case: native fails in Eigen's AVX512-FP16 file; the next rung leaves
    that extension out (whether or not this CPU has it) and builds."""
    cxx = _wrapper(tmp_path, "spr++", "[ $native = 1 ] && [ $nofp16 = 0 ]", SPR_ERROR)
    for key, value in _env(tmp_path, cxx).items():
        monkeypatch.setenv(key, value)
    result = kernel_build.build()
    assert result.rung.name.startswith("native-no-") and "-mno-avx512fp16" in result.rung.flags
    assert [f["rung"] for f in result.failures] == ["native"]
    assert result.failures[0]["errors"] == [SPR_ERROR]
    assert result.library.exists() and result.library.name.endswith(f"-{result.rung.name}.so")
    assert SPR_ERROR in result.log.read_text()
    manifest = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert (manifest["rung"], manifest["flags"]) == (result.rung.name, list(result.rung.flags))
    assert kernel_build.cached().library == result.library  # the cache key includes the rung


# Run in a fresh process: the kernel's ops are registered once per process.
_EQUIVALENCE = """
import json, sys
import numpy as np, tensorflow as tf
import lstm_keras as lk
from lstm_keras import fused_engine

rng = np.random.default_rng(0)
B, T, F, U = 67, 23, 5, 7  # an odd batch, several chunks over the intra-op threads
for cls in (lk.LSTM, lk.GRU):
    fused, tf_while = (cls(U, return_sequences=True, engine=e) for e in ("fused", "tf_while"))
    for layer in (fused, tf_while):
        layer.build((B, T, F))
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in fused.get_weights()]
    for layer in (fused, tf_while):
        layer.set_weights(weights)
    assert fused.engine_used() == "fused" and tf_while.engine_used() == "tf_while"
    x = tf.constant(rng.normal(size=(B, T, F)).astype("float32"))
    results = []
    for layer in (fused, tf_while):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(3.0 * layer(x)))
        results.append([layer(x), *tape.gradient(loss, [x, *layer.trainable_weights])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, rtol=1e-5)
print(json.dumps(fused_engine.record()))
"""


@pytest.mark.slow
def test_with_native_refused_the_kernel_builds_lower_and_matches_tf_while(tmp_path):
    refusal = "cc1plus: error: bad value 'native' for -march"
    cxx = _wrapper(tmp_path, "no-native++", "[ $native = 1 ]", refusal)
    done = subprocess.run(
        [sys.executable, "-c", _EQUIVALENCE],
        env=_env(tmp_path, cxx),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    lower = kernel_build.fixed_rungs()[1]  # x86-64-v3 on x86-64, generic elsewhere
    assert record == {"fused_kernel_rung": lower.name, "fused_kernel_flags": " ".join(lower.flags)}
    assert "bad value 'native'" in next((tmp_path / "cache").glob("*.log")).read_text()
