"""Peak memory of one training step on a long sequence, each contender in a fresh process.

    python -m experiments.bench.memory --layer LSTM [--seq_len 1000 --batch 64]

prints one JSON line. The child builds the model, resets the kernel's high-water mark
(`/proc/self/clear_refs`), and reports how far the first training step raises the peak RSS
(VmHWM) above the RSS it started from, then the same for a second step. TensorFlow keeps
the first step's buffers (its RSS stays at the peak after the step), so its second step shows
almost nothing: the first step is the figure that compares, and the same step at a short
sequence (T=10) tells how much of it is the tracing and the fixed cost rather than the sequence.
glibc's `MALLOC_MMAP_THRESHOLD_` is fixed so that large buffers go back to the system when freed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

LAYERS = ("LSTM", "keras.LSTM", "torch.LSTM", "GRU", "keras.GRU", "torch.GRU")
ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    """The process's peak RSS since the last reset: VmHWM, the counter `ru_maxrss` reads, without
    the peaks of threads that have exited, which `ru_maxrss` also keeps and a reset does not clear."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _reset_peak() -> bool:
    """Set the peak RSS back to the current RSS (Linux ≥ 4.0); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _step(layer: str, shape):
    """One training step of `layer` (ours, `keras.*` or `torch.*`) at `shape`."""
    import numpy as np

    from experiments import benchmark

    x, y = benchmark._batch(shape, np.random.default_rng(0))
    if layer.startswith("torch."):
        from experiments.bench import torch_contenders as tc

        torch, reason = tc.torch_or_reason()
        if torch is None:
            raise SystemExit(reason)
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        return tc.train_step(torch, shape, tc.build(torch, shape, layer.split(".")[1]), x, y)
    import keras

    import lstm_keras as lk

    kind = layer.split(".")[-1]
    factory = getattr(keras.layers, kind) if layer.startswith("keras.") else getattr(lk, kind)
    model = benchmark.build_model(shape, factory(shape.units, return_sequences=shape.per_step))
    return lambda: model.train_on_batch(x, y)


def measure(layer: str, shape) -> dict:
    """This process's peak RSS rise over its first training step (which also traces the graph),
    then over a second one, each from the RSS the step started at."""
    step = _step(layer, shape)
    rises = []
    for _ in range(2):
        reset = _reset_peak()
        before = _peak_bytes() if reset else _rss_bytes()
        step()
        rises.append((_peak_bytes() - before) / MB)
    return {
        "layer": layer,
        "batch": shape.batch,
        "seq_len": shape.seq_len,
        "first_step_mb": rises[0],
        "second_step_mb": rises[1],
        "rss_mb": _rss_bytes() / MB,
        "peak_reset": reset,
    }


def memory_shape(batch: int = 64, seq_len: int = 1000):
    """The char-LM shape at a long sequence."""
    from experiments.benchmark import SHAPES

    return dataclasses.replace(SHAPES["char_lm"], name=f"char_lm_T{seq_len}", batch=batch, seq_len=seq_len)


def in_fresh_process(layer: str, batch: int, seq_len: int, timeout: float = 600) -> dict:
    """`measure` in a child process; {"layer", "error"} when it fails (torch missing, say)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "experiments.bench.memory", "--layer", layer]
    cmd += ["--batch", str(batch), "--seq_len", str(seq_len)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"layer": layer, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def stored_bytes(layer: str, shape) -> int | None:
    """What our fused kernel keeps from the forward pass for the backward one: h and c (B, T, U)
    and the four activated gates (B, T, 4U), float32. None for layers not ours."""
    per_step = {"LSTM": 6, "GRU": 5}.get(layer)  # GRU: h and act (z, r, h̃, U_h h + b_h)
    return None if per_step is None else 4 * shape.batch * shape.seq_len * per_step * shape.units


def measure_all(batch: int, seq_len: int, layers=LAYERS) -> list[dict]:
    """Peak memory of one training step of each layer, each in a fresh process, with what our
    fused kernel keeps for the backward pass beside ours."""
    shape = memory_shape(batch, seq_len)
    results = [in_fresh_process(layer, batch, seq_len) for layer in layers]
    for r in results:
        stored = stored_bytes(r["layer"], shape)
        r["stored_mb"] = stored / MB if stored else None
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", required=True, choices=LAYERS)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq_len", type=int, default=1000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.layer, memory_shape(args.batch, args.seq_len))), flush=True)


if __name__ == "__main__":
    main()
