"""The benchmark's tables: the console table of a run's rows, and docs/benchmarks.md's markdown
table of a logged run's metrics."""

from __future__ import annotations

KINDS = ("LSTM", "GRU")


def _ratio(value: float | None) -> str:
    return f"{value:6.2f}" if value is not None else f"{'':6}"


def _span(span: tuple[float, float] | None) -> str:
    return f"{span[0]:.2f}–{span[1]:.2f}" if span else ""


def format_table(rows: list[dict], torch_note: str | None = None) -> str:
    """One line per contender; `vs torch` is its steps/s over PyTorch's layer of the same kind
    (>1: faster than PyTorch), `rounds` the lowest and highest of that ratio in one round.
    `torch_note`: why PyTorch is missing, said under the table."""
    lines = [
        f"{'shape':8} {'layer':18} {'engine':8} {'rung':18} {'steps/s':>8} {'ratio':>6}  vs {'':12} "
        f"{'torch':>6} {'rounds':>9} {'params':>8} gemm%"
    ]
    for r in rows:
        share = f"{100 * r['gemm_share']:5.0f}" if r.get("gemm_share") else ""
        lines.append(
            f"{r['shape']:8} {r['layer']:18} {r.get('engine', ''):8} {r.get('rung') or '':18} "
            f"{r['steps_per_s']:8.2f} {r['ratio']:6.2f}  vs {r['reference']:12} "
            f"{_ratio(r.get('vs_torch'))} {_span(r.get('vs_torch_range')):>9} {r['params']:8d} {share}"
        )
    peaks = {
        r["layer"].removeprefix("keras."): r["gemm_peak_gflops"] for r in rows if r.get("gemm_peak_gflops")
    }
    if peaks:
        lines.append(
            "gemm% = recurrent GEMM FLOP/s of a training step / this CPU's per-step GEMM peak ("
            + ", ".join(f"{k}: {v:.0f} GFLOP/s" for k, v in peaks.items() if k in KINDS)
            + ")"
        )
    if torch_note:
        lines.append(torch_note)
    return "\n".join(lines)


def format_memory(results: list[dict]) -> str:
    """Peak RSS rise of one training step, per layer: at the long sequence and at T=10."""
    lines = [f"{'layer':12} {'T':>5} {'batch':>5} {'step MB':>8} {'2nd step':>8} stored"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['layer']:12} {r['error']}")
            continue
        stored = f"{r['stored_mb']:.0f} MB" if r.get("stored_mb") else ""
        lines.append(
            f"{r['layer']:12} {r['seq_len']:5d} {r['batch']:5d} {r['first_step_mb']:8.0f} "
            f"{r['second_step_mb']:8.0f} {stored}"
        )
    return "\n".join(lines)


def _cell(metrics: dict[str, float], shape: str, layer: str) -> str:
    ratio = metrics.get(f"ratio.{shape}.{layer}")
    share = metrics.get(f"gemm_share.{shape}.{layer}") if "/" not in layer else None
    if ratio is None:
        return "–"
    return f"{ratio:.2f}×" + (f" ({100 * share:.0f} %)" if share is not None else "")


def _torch_cell(metrics: dict[str, float], key: str) -> str:
    """Ours over PyTorch, with the lowest and highest round's ratio where the run logged them."""
    if (value := metrics.get(f"vs_torch.{key}")) is None:
        return "–"
    span = (metrics.get(f"vs_torch_min.{key}"), metrics.get(f"vs_torch_max.{key}"))
    return f"{value:.2f}×" + (f" ({_span(span)})" if None not in span else "")


def _memory_table(metrics: dict[str, float]) -> list[str]:
    keys = sorted(k.split(".", 2)[1:] for k in metrics if k.startswith("memory_mb."))
    if not keys:
        return []
    lines = ["", "| peak RSS rise of one training step | MB |", "|---|---|"]
    lines += [f"| {layer} ({shape}) | {metrics[f'memory_mb.{shape}.{layer}']:.0f} |" for shape, layer in keys]
    return lines


def markdown_table(metrics: dict[str, float]) -> str:
    """The performance table of docs/benchmarks.md from a benchmark run's metrics (`ratio.<shape>.<layer>`,
    `gemm_share.<shape>.<layer>`, `vs_torch[_min|_max].<shape>.<layer>`, `memory_mb.<shape>.<layer>`): one
    row per shape, ours against the built-ins and against PyTorch (with its rounds' range)."""
    from experiments.benchmark import SHAPES

    shapes = [s for s in SHAPES if f"ratio.{s}.LSTM" in metrics]
    variants = sorted(
        {k.split(".", 2)[2] for k in metrics if k.startswith("ratio.") and "/" in k and "-plain" not in k}
    )
    with_torch = any(k.startswith("vs_torch.") for k in metrics)
    layers = {"LSTM": "fused", "LSTM-while": "tf_while", "LSTM-plain": "plain"}
    layers.update({k.replace("LSTM", "GRU"): v for k, v in layers.items()})
    head = [
        "shape",
        *(f"{k.split('-')[0]} ({v})" for k, v in layers.items()),
        *(f"{v} (vs plain)" for v in variants),
        *(f"{kind} vs torch" for kind in KINDS if with_torch),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for shape in shapes:
        sh = SHAPES[shape]
        desc = f"{shape} (B{sh.batch}, T{sh.seq_len}, {sh.units} units)"
        row = [desc, *(_cell(metrics, shape, layer) for layer in (*layers, *variants))]
        if with_torch:
            row += [_torch_cell(metrics, f"{shape}.{kind}") for kind in KINDS]
        lines.append("| " + " | ".join(row) + " |")
    if not with_torch:
        lines.append("")
        lines.append("PyTorch was not installed for this run: no comparison with `nn.LSTM` / `nn.GRU`.")
    return "\n".join(lines + _memory_table(metrics))
