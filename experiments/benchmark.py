"""Training-speed benchmark: lstm_keras layers against Keras's built-ins, side by side.

Every contender trains on the same batch in one process; rounds are interleaved and rotated
(A, B, C, then B, C, A, ...) so that the machine's noise hits all of them alike, and the table reports median
steps/s and ratios to the built-in of the same kind: the median over rounds of the two's ratio
in the same round, with the lowest and highest. Run:

    python -m experiments.benchmark [--shapes copy adding char_lm] [--variants NFG CIFG ...]
                                    [--rungs native,x86-64-v3,x86-64-v2]

When PyTorch is importable (`pip install .[bench]`), its `nn.LSTM` and `nn.GRU` train in the
same rounds, on the same batch and thread counts, and every row shows its ratio to them; the run
then measures the peak memory of one step at the char-LM shape with T=1,000, each layer in a
fresh process (`--memory_seq_len 0` leaves that out).

`--rungs` adds our LSTM and GRU on the fused kernel built with each rung of the compiler-flag
ladder (`LSTM:x86-64-v3`: what a CPU with AVX2 only gets), loaded beside the default build.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from dataclasses import dataclass

from experiments.bench import isa_cap, torch_contenders
from experiments.bench import memory as bench_memory
from experiments.bench.keras_step import compiled_step
from experiments.bench.record import log_to_mlflow
from experiments.bench.tables import format_memory, format_table, markdown_table

__all__ = ["format_memory", "format_table", "markdown_table"]  # the tables' home: experiments.bench.tables

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    seq_len: int
    features: int  # input width (vocabulary size when embedded)
    units: int
    outputs: int  # classes per step, or 1 for a scalar regression at the end
    embedding: int = 0  # >0: integer tokens through Embedding(features, embedding)
    per_step: bool = True


SHAPES = {
    "copy": Shape("copy", batch=128, seq_len=120, features=10, units=128, outputs=10),
    "adding": Shape("adding", batch=128, seq_len=200, features=2, units=128, outputs=1, per_step=False),
    "char_lm": Shape("char_lm", batch=64, seq_len=100, features=100, units=256, outputs=100, embedding=64),
}


def _batch(shape: Shape, rng):

    if shape.embedding:
        x = rng.integers(0, shape.features, (shape.batch, shape.seq_len))
    else:
        x = rng.standard_normal((shape.batch, shape.seq_len, shape.features)).astype("float32")
    if shape.per_step:
        y = rng.integers(0, shape.outputs, (shape.batch, shape.seq_len))
    else:
        y = rng.standard_normal((shape.batch, 1)).astype("float32")
    return x, y


def build_model(shape: Shape, recurrent_layer):
    import keras

    inputs = keras.Input((shape.seq_len,) if shape.embedding else (shape.seq_len, shape.features))
    x = keras.layers.Embedding(shape.features, shape.embedding)(inputs) if shape.embedding else inputs
    x = recurrent_layer(x)
    outputs = keras.layers.Dense(shape.outputs)(x)
    model = keras.Model(inputs, outputs)
    loss = (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if shape.per_step
        else keras.losses.MeanSquaredError()
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    return model


def contenders(shape: Shape, variants: list[str], rungs: dict | None = None) -> dict:
    """name → (reference name, layer factory). Our layers on the default engine (the fused
    kernel), `-while` (engine="tf_while") and `-plain` (engine="keras", i.e. keras.layers.RNN)
    are compared with their built-in; a variant on the default engine with itself on the plain
    path (`-plain`, which is compared with our plain LSTM/GRU: what the ablation saves).
    `rungs` (name → fused_engine.Kernel): our LSTM/GRU on each of those builds (`LSTM:<rung>`)."""
    import keras

    import lstm_keras as lk

    seq = shape.per_step
    out = {}
    for kind, builtin, ours in (("LSTM", keras.layers.LSTM, lk.LSTM), ("GRU", keras.layers.GRU, lk.GRU)):
        ref = f"keras.{kind}"
        out[ref] = (ref, lambda b=builtin: b(shape.units, return_sequences=seq))
        for suffix, engine in (("", "auto"), ("-while", "tf_while"), ("-plain", "keras")):
            out[f"{kind}{suffix}"] = (
                ref,
                lambda o=ours, e=engine: o(shape.units, return_sequences=seq, engine=e),
            )
        for rung in rungs or {}:
            out[f"{kind}:{rung}"] = (ref, lambda o=ours: o(shape.units, return_sequences=seq, engine="fused"))
    for v in variants:
        kind, layer = ("LSTM", lk.LSTM) if v in lk.LSTM_VARIANTS else ("GRU", lk.GRU)
        kwargs = {"variant": v, "return_sequences": seq}
        if kind == "LSTM" and not lk.LSTM_VARIANTS[v].has_forget_gate:
            kwargs["forget_bias"] = None
        for suffix, engine, ref in (("", "auto", f"{kind}/{v}-plain"), ("-plain", "keras", f"{kind}-plain")):
            out[f"{kind}/{v}{suffix}"] = (
                ref,
                lambda k=kwargs, e=engine, c=layer: c(shape.units, engine=e, **k),
            )
    return out


GATES = {"LSTM": 4, "GRU": 3}  # weight blocks per step: i, f, c, o / z, r, h
PROBE_PADS = (0, 16)  # the GEMM probe's layouts: gates·units columns, and one cache line more


def recurrent_flops(shape: Shape, kind: str) -> float:
    """GEMM FLOPs of one training step of the recurrent layer: the forward products
    [x_t, h_{t-1}] @ [W; R] and, backwards, twice as many (gradients of inputs and weights)."""
    width = (shape.embedding or shape.features) + shape.units
    return 3 * 2 * shape.batch * shape.seq_len * width * GATES[kind] * shape.units


def gemm_probe(shape: Shape, kind: str, pad: int = 0, repeats: int = 50):
    """A function that runs the per-step product (batch, in + units) @ (in + units, gates·units + pad)
    `repeats` times in one tf.function — this CPU's peak at the shape the cells use — and its FLOPs.
    `pad`: columns more, so that rows of 2 KB multiples do not share cache sets (the peak is the
    better layout's: oneDNN's AVX2 code ran at half speed on 4 KB rows)."""
    import tensorflow as tf

    width, n = (shape.embedding or shape.features) + shape.units, GATES[kind] * shape.units + pad
    a = tf.random.normal((shape.batch, width))
    b = tf.random.normal((width, n))

    @tf.function
    def products():
        acc = tf.zeros((shape.batch, n))
        for _ in tf.range(repeats):
            acc += tf.matmul(a, b)
        return acc

    return products, repeats * 2 * shape.batch * width * n


def _engine(model) -> str:
    """Which engine the model's recurrent layer trains on ("builtin" for Keras's own layers)."""
    import keras

    layer = next(layer for layer in model.layers if isinstance(layer, keras.layers.RNN))
    return layer.engine_used(training=True) if hasattr(layer, "engine_used") else "builtin"


def _rung_of(engine: str, kernel=None) -> str | None:
    """The flag-ladder rung of the kernel a contender ran: its pinned build's, else the default
    build's (None: not the fused kernel)."""
    if kernel is not None:
        return kernel.rung.name
    if engine != "fused":
        return None
    from lstm_keras import fused_engine

    return fused_engine.current().rung.name


def load_rungs(names: list[str]) -> tuple[dict, list[str]]:
    """The kernel built with each named rung (name → Kernel), and a line for each that failed."""
    from lstm_keras import fused_engine, kernel_build

    kernels, failed = {}, []
    for name in names:
        try:
            kernels[name] = fused_engine.load_rung(name)
        except (kernel_build.KernelBuildError, ValueError) as e:
            failed.append(f"{name}: {e}")
    return kernels, failed


def _kind(name: str) -> str | None:
    """LSTM / GRU for the full-gate layers (ours and the built-ins); None for ablated variants."""
    if "/" in name:
        return None
    for kind in GATES:
        if name.removeprefix("keras.").removeprefix("torch.").split(":")[0].startswith(kind):
            return kind
    return None


def _train_step(model, x, y, kernel=None):
    """One training step (`keras_step.compiled_step`); on `kernel` (a rung's build) when given:
    the step is traced on its first call, inside the pin, so every later call runs that build."""
    step = compiled_step(model, x, y)
    if kernel is None:
        return step
    from lstm_keras import fused_engine

    def pinned_step():
        with fused_engine.pinned(kernel):
            return step()

    return pinned_step


def _round_rates(jobs: dict, rounds: int, steps: int) -> dict[str, list[float]]:
    """Steps/s of each job in each of `rounds` interleaved rounds of `steps` calls."""
    for job in jobs.values():  # compile the train step and warm the caches
        for _ in range(3):
            job()
    rates: dict[str, list[float]] = {name: [] for name in jobs}
    names = list(jobs)
    for k in range(rounds):
        # Rotate the order each round so that no contender always runs first (or last).
        for name in names[k % len(names) :] + names[: k % len(names)]:
            start = time.perf_counter()
            for _ in range(steps):
                jobs[name]()
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


def paired_ratio(rates: list[float], reference: list[float]) -> tuple[float, float, float]:
    """(median, lowest, highest) over rounds of a contender's steps/s over its reference's in the
    same round: a round's two timings share the machine's state of the moment (its load, clock and
    caches), which a ratio of the two medians would not pair."""
    ratios = [a / b for a, b in zip(rates, reference, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def run_shape(
    shape: Shape,
    variants: list[str],
    rounds: int,
    steps: int,
    seed: int = 0,
    rungs: dict | None = None,
    torch=None,
) -> list[dict]:
    """Rows of one shape's contenders; with `torch` (the module), PyTorch's LSTM and GRU too,
    and each full-gate row's `vs_torch`: its steps/s over PyTorch's layer of the same kind."""
    import keras
    import numpy as np

    rungs = rungs or {}
    keras.utils.set_random_seed(seed)
    x, y = _batch(shape, np.random.default_rng(seed))
    entries = contenders(shape, variants, rungs)
    models = {name: build_model(shape, factory()) for name, (_, factory) in entries.items()}
    # `LSTM:<rung>` contenders run pinned to that rung's build.
    pins = {name: rungs[name.split(":", 1)[1]] for name in entries if ":" in name}
    jobs = {name: _train_step(model, x, y, pins.get(name)) for name, model in models.items()}
    described = {}
    for name, (ref, _) in entries.items():
        engine = _engine(models[name])
        described[name] = {
            "reference": ref,
            "params": models[name].count_params(),
            "engine": engine,
            "rung": _rung_of(engine, pins.get(name)),
        }
    for name, (step, params) in (
        torch_contenders.contenders(torch, shape, x, y, seed) if torch else {}
    ).items():
        jobs[name] = step
        described[name] = {"reference": name, "params": params, "engine": "torch", "rung": None}
    # The per-step GEMM peak is timed in the same rounds, so the same noise hits it.
    probes = {f"gemm.{kind}.{pad}": gemm_probe(shape, kind, pad) for kind in GATES for pad in PROBE_PADS}
    jobs.update({name: fn for name, (fn, _) in probes.items()})
    rates = _round_rates(jobs, rounds, steps)
    peak = {
        kind: max(
            statistics.median(rates[f"gemm.{kind}.{p}"]) * probes[f"gemm.{kind}.{p}"][1] for p in PROBE_PADS
        )
        for kind in GATES
    }
    return [_row(shape, name, d, rates, peak, torch is not None) for name, d in described.items()]


def _row(shape: Shape, name: str, described: dict, rates: dict, peak: dict, with_torch: bool) -> dict:
    """A contender's row: median steps/s, paired ratios to its reference and to PyTorch's layer of
    its kind (with each round's lowest and highest), and its share of the per-step GEMM peak."""
    kind = _kind(name)
    steps_per_s = statistics.median(rates[name])
    ratio = paired_ratio(rates[name], rates[described["reference"]])
    vs_torch = paired_ratio(rates[name], rates[f"torch.{kind}"]) if with_torch and kind else None
    return {
        "shape": shape.name,
        "layer": name,
        **described,
        "steps_per_s": steps_per_s,
        "ratio": ratio[0],
        "ratio_range": ratio[1:],
        "vs_torch": vs_torch[0] if vs_torch else None,
        "vs_torch_range": vs_torch[1:] if vs_torch else None,
        # Share of the per-step GEMM peak the whole training step reaches on the
        # recurrent products alone (embedding, head and optimizer not counted).
        "gemm_share": steps_per_s * recurrent_flops(shape, kind) / peak[kind] if kind else None,
        "gemm_peak_gflops": peak[kind] / 1e9 if kind else None,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--variants", nargs="*", default=[], help="extra LSTM/GRU variants to time")
    parser.add_argument(
        "--rungs",
        type=lambda text: [r for r in text.split(",") if r and r != "none"],
        default=[],
        help="comma-separated flag-ladder rungs to time our LSTM/GRU on, side by side "
        "(native, x86-64-v3, x86-64-v2, generic, native-no-<extension>; none: only the default build)",
    )
    parser.add_argument(
        "--cap_isa",
        default="none",
        choices=["none", *isa_cap.CAPS],
        help="run as a CPU without AVX-512 would: TensorFlow's and PyTorch's libraries capped, "
        "our layers on the matching rung's build",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="train steps per timed round")
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow's (and PyTorch's) threads; 0: every core"
    )
    parser.add_argument(
        "--memory_seq_len", type=int, default=1000, help="T of the peak-memory step (0: not measured)"
    )
    parser.add_argument("--memory_batch", type=int, default=64)
    parser.add_argument(
        "--mlflow", default="false", choices=["true", "false"], help="log a run (MLproject: true)"
    )
    parser.add_argument(
        "--readme_table",
        metavar="RUN_ID",
        help="print docs/benchmarks.md's table of a logged benchmark run and stop",
    )
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.readme_table:
        import mlflow

        print(markdown_table(mlflow.MlflowClient().get_run(args.readme_table).data.metrics))
        return []
    cap_rung = isa_cap.apply(args.cap_isa) if args.cap_isa != "none" else None
    import lstm_keras as lk
    from lstm_keras import fused_engine

    for v in args.variants:
        if v not in lk.LSTM_VARIANTS and v not in lk.GRU_VARIANTS:
            parser.error(f"unknown variant {v!r}; valid: {', '.join([*lk.LSTM_VARIANTS, *lk.GRU_VARIANTS])}")
    torch, torch_note = torch_contenders.prepare(args.threads)
    rungs, failed = load_rungs(args.rungs)
    for line in failed:
        print(f"rung {line} (left out)", flush=True)
    pin = contextlib.nullcontext()
    if cap_rung:  # the whole run on the capped rung's build, which must build like any --rungs one
        capped, cap_failed = load_rungs([cap_rung])
        if cap_failed:
            parser.error(f"--cap_isa {args.cap_isa} runs our layers on the {cap_rung} build: {cap_failed[0]}")
        pin = fused_engine.pinned(capped[cap_rung])
        print(isa_cap.describe(args.cap_isa, torch), flush=True)
    rows = []
    with pin:
        for name in args.shapes:
            rows += run_shape(SHAPES[name], args.variants, args.rounds, args.steps, rungs=rungs, torch=torch)
            print(format_table([r for r in rows if r["shape"] == name], torch_note), flush=True)
    layers = [la for la in bench_memory.LAYERS if torch or not la.startswith("torch.")]
    memory = (
        bench_memory.measure_all(args.memory_batch, args.memory_seq_len, layers)
        if args.memory_seq_len
        else []
    )
    if memory:
        print(format_memory(memory), flush=True)
    if args.mlflow == "true":
        print(f"logged to MLflow run {log_to_mlflow(rows, args, memory, torch_note)}", flush=True)
    return rows


if __name__ == "__main__":
    main()
