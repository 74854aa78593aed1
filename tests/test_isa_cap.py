"""`--cap_isa`: every library the benchmark times is capped at the same instruction set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.bench import isa_cap

ROOT = Path(__file__).resolve().parents[1]


def test_an_unknown_cap_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown ISA cap 'avx9'\. Valid choices: avx2\."):
        isa_cap.apply("avx9")


@pytest.mark.tf_only
def test_a_cap_after_tensorflow_is_loaded_is_refused():
    import tensorflow  # noqa: F401  (the switch is read once, at load: too late now)

    before = dict(os.environ)
    with pytest.raises(RuntimeError, match="before importing tensorflow"):
        isa_cap.apply("avx2")
    assert dict(os.environ) == before


PROBE = """
import os, sys
from experiments.bench import isa_cap
if sys.argv[1] != "none":
    print("rung", isa_cap.apply(sys.argv[1]))
os.environ["ONEDNN_VERBOSE"] = "1"  # oneDNN prints the ISA it dispatches on with its first primitive
import tensorflow as tf
a = tf.random.normal((64, 256))
float(tf.reduce_sum(tf.matmul(a, a, transpose_b=True)))
try:
    import torch
    print("torch", torch.backends.cpu.get_cpu_capability())
except ImportError:
    pass
"""


def _probe(cap: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    for name in isa_cap.CAPS["avx2"][0]:
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, cap], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.mark.tf_only
def test_the_avx2_cap_reaches_tensorflows_onednn_and_pytorch():
    capped = _probe("avx2")
    assert "rung x86-64-v3" in capped
    isa = [line for line in capped.splitlines() if "onednn_verbose" in line and "isa:" in line]
    assert isa and "AVX2" in isa[0] and "AVX-512" not in isa[0], isa
    if "torch " in capped:
        assert "torch AVX2" in capped
    uncapped = _probe("none")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "avx512f" in cpuinfo.read_text():
        # Without the cap the same libraries use AVX-512 here: the cap is what changed it.
        assert any("AVX-512" in line for line in uncapped.splitlines() if "isa:" in line)
