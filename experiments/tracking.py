"""What a run records in MLflow besides its metrics: names, tags, provenance, artifacts."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import tempfile
from pathlib import Path

import mlflow

from experiments.config import AUTO, RunConfig, variant_specs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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
    if config.cell == "rnn" or not has_forget_gate(config):
        return "n/a"
    if config.forget_bias != AUTO:
        return config.forget_bias
    return "1" if config.cell == "lstm" else "none"


def has_forget_gate(config: RunConfig) -> bool:
    specs = variant_specs()
    if config.cell == "lstm":
        return specs.LSTM_VARIANTS[config.variant].has_forget_gate
    return config.cell == "gru" and specs.GRU_VARIANTS[config.variant].update_gate is not None


def resolved_candidate_activation(config: RunConfig) -> str:
    if config.candidate_activation != AUTO:
        return config.candidate_activation
    if config.cell == "lstm":
        return variant_specs().LSTM_VARIANTS[config.variant].candidate_activation
    return "tanh"


def run_name(config: RunConfig) -> str:
    """e.g. `copy-T100 lstm/NFG fb=0 tanh s0`: what differs between runs, readable in a list."""
    fb = resolved_forget_bias(config)
    fb = fb.removesuffix(".0") if fb.replace(".", "", 1).lstrip("-").isdigit() else fb
    gates = "" if fb == "n/a" else f" fb={fb}"
    return (
        f"{config.task}-T{config.seq_len} {config.cell}/{config.variant}{gates} "
        f"{resolved_candidate_activation(config)} s{config.seed}"
    )


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout, or ("unknown", False) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
    tags.update({f"data.{k}": v for k, v in info.items()})
    return tags


def log_figure(fig, name: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, name)
    plt.close(fig)


def log_json(payload: dict, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        mlflow.log_artifact(str(path))
