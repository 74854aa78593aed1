"""What a run records in MLflow besides its metrics: names, tags, provenance, artifacts."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.training import config as run_config
from experiments.training.config import AUTO, RunConfig
from lstm_keras.variants import GRU_DEFAULT_FORGET_BIAS, LSTM_DEFAULT_FORGET_BIAS, VARIANTS

if TYPE_CHECKING:
    from experiments.tracking.offline import Recorder

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "lstm-keras",
)


def resolved_forget_bias(config: RunConfig) -> str:
    """The forget bias the cell actually gets, as text (auto → the cell's default)."""
    if not has_forget_gate(config):
        return "n/a"
    if config.forget_bias != AUTO:
        return config.forget_bias
    default = LSTM_DEFAULT_FORGET_BIAS if config.cell == "lstm" else GRU_DEFAULT_FORGET_BIAS
    return "none" if default is None else f"{default:g}"


def has_forget_gate(config: RunConfig) -> bool:
    """A forget (LSTM) or update (GRU) gate, not held open; SimpleRNN (cell rnn) has neither."""
    return run_config.has_forget_gate(config)


def resolved_candidate_activation(config: RunConfig) -> str:
    if config.candidate_activation != AUTO:
        return config.candidate_activation
    if config.cell in VARIANTS:
        return VARIANTS[config.cell][config.variant].candidate_activation
    return "tanh"  # keras.layers.SimpleRNN's default activation


def engine_tags(layer, mode: str = "training") -> dict[str, str]:
    """Which engine the recurrent layer's `mode` call ran, why not the fused kernel, and the
    flags the kernel was built with (the rung of its flag ladder). SimpleRNN: keras.layers.RNN."""
    engine = getattr(layer, "engines_run", {}).get(mode)
    if engine is None:
        return {"engine_used": "keras"}
    tags = {"engine_used": engine}
    if engine == "fused":
        from lstm_keras import fused_engine

        tags.update(fused_engine.record())
    else:
        tags["engine_fallback_reason"] = str(layer.fused_reasons.get(mode))[:500]
    return tags


def engine_fallback_line(layer, mode: str = "inference") -> str | None:
    """One line when a layer whose engine is auto/fused did not run the fused kernel."""
    tags = engine_tags(layer, mode)
    if getattr(layer, "engine", None) not in ("auto", "fused") or tags["engine_used"] == "fused":
        return None
    used, reason = tags["engine_used"], tags["engine_fallback_reason"]
    return f"engine: {used} (engine={layer.engine} fell back: {reason})"


# Short names for parameters a run name has no part of its own for (see run_name's `varying`).
NAME_ALIASES = {"learning_rate": "lr", "output_activation": "out"}


def run_name(config: RunConfig, varying: tuple[str, ...] = ()) -> str:
    """e.g. `copy-T100 lstm/NFG fb=0 tanh s0`: what differs between runs, readable in a list.

    `varying`: the parameters that differ between a sweep's trials. Their parts lead the name
    (`fb=0 s1 · copy-T5 lstm/keras tanh`), with `key=value` for those the name has no part for
    (`clipnorm=0`, `lr=0.01`): MLflow's run list shows only the first ~16 characters of a
    name, and sibling runs that differ only in learning rate or clipping would otherwise share one.
    """
    fb = resolved_forget_bias(config)
    fb = fb.removesuffix(".0") if fb.replace(".", "", 1).lstrip("-").isdigit() else fb
    parts = [
        (("task", "seq_len"), f"{config.task}-T{config.seq_len}"),
        (("cell", "variant"), f"{config.cell}/{config.variant}"),
        (("fixed_open_gate",), "" if config.fixed_open_gate == "none" else f"open={config.fixed_open_gate}"),
        (("forget_bias",), "" if fb == "n/a" else f"fb={fb}"),
        (("candidate_activation",), resolved_candidate_activation(config)),
        (("seed",), f"s{config.seed}"),
    ]
    if not varying:
        return " ".join(text for _, text in parts if text)
    own = {key for keys, _ in parts for key in keys}
    extra = [f"{NAME_ALIASES.get(k, k)}={_name_value(getattr(config, k))}" for k in varying if k not in own]
    lead = [text for keys, text in parts[:-1] if text and set(keys) & set(varying)] + extra
    lead += [parts[-1][1]] if "seed" in varying else []
    rest = [text for keys, text in parts if text and not set(keys) & set(varying)]
    return " · ".join(part for part in (" ".join(lead), " ".join(rest)) if part)


def _name_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


# Prose and reports do not change what a run computes, and a study writes each sweep's report into
# docs/ before its next sweep starts: edits there leave the checkout clean for a run's records.
NOT_CODE = (":(exclude)docs", ":(exclude)README.md")


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout, or ("unknown", False) outside git; dirty: a
    tracked file other than docs/ and README.md differs from the commit."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, str]:
    """What a run's speed and float rounding depend on: CPU model, its AVX-512/AMX flags, cores."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_fp16", "amx_tile") if f in flags]
    return {"cpu": model, "cpu_isa": " ".join(isa) or "unknown", "cpu_count": str(os.cpu_count())}


def run_tags(config: RunConfig, data_checksum: str, info: dict[str, str]) -> dict[str, str]:
    commit, dirty = git_commit()
    tags = {
        "task": config.task,
        "cell": config.cell,
        "variant": config.variant,
        "forget_bias_resolved": resolved_forget_bias(config),
        "candidate_activation_resolved": resolved_candidate_activation(config),
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "data_checksum": data_checksum,
    }
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    tags.update({f"machine.{k}": v for k, v in machine().items()})
    tags.update({f"data.{k}": v for k, v in info.items()})
    return tags


def log_figure(recorder: Recorder, fig, name: str) -> None:
    import matplotlib.pyplot as plt

    recorder.log_artifact(name, fig.savefig)
    plt.close(fig)


def log_json(recorder: Recorder, payload: dict, name: str) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    recorder.log_artifact(name, lambda path: path.write_text(text))


def config_params(client, run_id: str) -> dict[str, str]:
    """The parameters in a run's config.json artifact ({} when it is missing or unreadable: a
    run that failed before writing it, or an artifact store out of reach)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as where:
            path = client.download_artifacts(run_id, "config.json", where)
            return {k: str(v) for k, v in json.loads(Path(path).read_text()).get("params", {}).items()}
    except Exception:
        return {}


def run_params(client, run) -> dict[str, str]:
    """Every parameter a run trained with: its config.json's (a sweep child logs only what varies
    as MLflow params), under the params it logged."""
    return {**config_params(client, run.info.run_id), **run.data.params}
