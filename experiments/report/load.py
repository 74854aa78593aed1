"""A study's runs read back from MLflow: the sweep's parent run, its spec, its FINISHED trials as a table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.report.descriptors import descriptor
from experiments.report.metrics import FLOW, FLOW_FINAL, GROUP, JUDGED, JUDGED_BY_ERROR

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportError(RuntimeError):
    """A sweep that cannot be found or read; the message says which and what exists."""


@dataclass
class SweepResults:
    parent_id: str
    study: str
    label: str  # the study, or study@<id prefix> when one study is given twice
    experiment_id: str
    tags: dict
    metrics: dict
    spec: dict
    spec_source: str
    runs: pd.DataFrame  # tidy FINISHED children, one per trial
    statuses: dict = field(default_factory=dict)
    retried: list[str] = field(default_factory=list)  # FINISHED trials whose first attempt died


def resolve_parent(client, ref: str):
    """A parent run from its id, or the most recent parent tagged `study=<ref>` in any experiment."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if RUN_ID.match(ref):
        try:
            run = client.get_run(ref)
        except MlflowException as error:
            raise ReportError(f"no run {ref} in {mlflow.get_tracking_uri()}: {error.message}") from None
        if run.data.tags.get("sweep_role") != "parent":
            raise ReportError(
                f"run {ref} is not a sweep parent (tag sweep_role={run.data.tags.get('sweep_role')!r})"
            )
        return run
    if "'" in ref or not ref:
        raise ReportError(f"invalid sweep {ref!r}: a parent run id or a study name (no quotes)")
    found = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.sweep_role = 'parent' and tags.study = '{ref}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not found:
        parents = mlflow.search_runs(
            search_all_experiments=True, filter_string="tags.sweep_role = 'parent'", output_format="list"
        )
        studies = sorted({r.data.tags.get("study", "?") for r in parents})
        raise ReportError(
            f"no sweep parent run with study={ref!r} in {mlflow.get_tracking_uri()}. "
            f"Valid choices: a parent run id or one of: {', '.join(studies) or '(no sweeps)'}."
        )
    return found[0]


def load_spec(client, parent) -> tuple[dict, str]:
    """(spec, where it came from): the copy the sweep logged on its parent (exactly what ran), else
    the tagged path, else experiments/sweeps/<study>.yaml; ({}, "not found") if none reads.

    Only `reference` (when children lack the `is_reference` tag) and `claims` are used from it.
    """
    import yaml

    tag = parent.data.tags.get("sweep_spec", "")
    study = parent.data.tags.get("study", "")
    try:
        names = [
            a.path for a in client.list_artifacts(parent.info.run_id) if a.path.endswith((".yaml", ".yml"))
        ]
    except Exception:  # an unreachable artifact store: fall back to the project's files
        names = []
    sources = []
    if names:
        name = next((n for n in names if Path(n).name == Path(tag).name), names[0])
        sources.append(
            (lambda: client.download_artifacts(parent.info.run_id, name), f"artifact {name} of the parent")
        )
    for path in ([Path(tag), PROJECT_ROOT / tag] if tag else []) + [
        PROJECT_ROOT / "experiments" / "sweeps" / f"{study}.yaml"
    ]:
        sources.append((lambda path=path: path, str(path)))
    for locate, where in sources:
        try:
            spec = yaml.safe_load(Path(locate()).read_text())
        except Exception:  # missing, unreadable (artifact store) or not YAML: try the next
            continue
        if isinstance(spec, dict):
            return spec, where
    return {}, "not found"


def _clean(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if isinstance(v, str)}


def judged(runs: pd.DataFrame) -> np.ndarray:
    """Each run's `JUDGED` value: the error ratio for a task in `JUDGED_BY_ERROR`, else the loss
    ratio; as logged, or derived from the test metric and baseline for a run logged before it."""

    def column(name: str) -> np.ndarray:
        return runs[name].to_numpy(dtype=float) if name in runs else np.full(len(runs), np.nan)

    def logged_or(name: str, derived: np.ndarray) -> np.ndarray:
        values = column(name)
        return np.where(np.isnan(values), derived, values)

    loss = logged_or("test_loss_over_baseline", column("test_loss") / column("baseline"))
    error = logged_or(
        "test_error_over_baseline", (1 - column("test_accuracy")) / (1 - column("baseline_accuracy"))
    )
    by_error = runs["task"].isin(JUDGED_BY_ERROR).to_numpy() if "task" in runs else False
    return np.where(by_error, error, loss)


# runs.csv / the report's provenance line: column -> the run tag it comes from.
PROVENANCE = {
    "git_commit": "git_commit",
    "git_dirty": "git_dirty",
    "cpu": "machine.cpu",
    "cpu_isa": "machine.cpu_isa",
    "cpu_count": "machine.cpu_count",
    "engine": "engine_used",
    "kernel_flags": "fused_kernel_flags",
    "tensorflow": "version.tensorflow-cpu",
    "keras": "version.keras",
    "data_checksum": "data_checksum",
}


def tidy(raw: pd.DataFrame, sweep: str, study: str) -> pd.DataFrame:
    """FINISHED children (latest per trial_key), metrics unprefixed, params/tags kept as mlflow names."""
    if raw.empty or "status" not in raw:
        return pd.DataFrame(columns=["run_id", *GROUP, "learning_rate", "seed"])
    df = raw[raw["status"] == "FINISHED"].sort_values("start_time")
    if "tags.trial_key" in df:
        keyed = df["tags.trial_key"].notna()
        df = pd.concat([df[keyed].drop_duplicates("tags.trial_key", keep="last"), df[~keyed]])
    df = df.reset_index(drop=True)
    out = pd.DataFrame({"run_id": df["run_id"], "sweep": sweep, "study": study})
    params = [{k[7:]: v for k, v in r.items() if k.startswith("params.")} for r in df.to_dict("records")]
    tags = [_clean({k[5:]: v for k, v in r.items() if k.startswith("tags.")}) for r in df.to_dict("records")]
    out["task"] = [t.get("task") or p.get("task", "copy") for p, t in zip(params, tags)]
    out["learning_rate"] = [float(p.get("learning_rate", "nan")) for p in params]
    out["seed"] = [int(float(p.get("seed", "0"))) for p in params]
    out["start_time"] = df["start_time"].to_numpy()
    out["end_time"] = df["end_time"].to_numpy() if "end_time" in df else pd.NaT
    for name, tag in PROVENANCE.items():  # what a reader needs to rerun a trial (absent: not recorded)
        out[name] = [t.get(tag) for t in tags]
    descs = [descriptor(_clean(p), t) for p, t in zip(params, tags)]
    out["config_label"] = [t.get("config_label") for t in tags]
    if out["config_label"].isna().any():  # not made by experiments.sweep: label what varies
        varying = sorted({k for d in descs for k in d if len({x.get(k) for x in descs}) > 1})
        fallback = [" ".join(f"{k}={d[k]}" for k in varying) or "all" for d in descs]
        out["config_label"] = out["config_label"].fillna(pd.Series(fallback))
    out["desc"] = descs
    out["params"] = [_clean(p) for p in params]
    out["is_reference"] = [t.get("is_reference") for t in tags]
    out["phase"] = [t.get("phase") for t in tags]  # protocol tune/confirm; None: before the protocol
    for col in df.columns:
        if col.startswith("metrics."):
            out[col[8:]] = df[col].astype(float).to_numpy()
    out[JUDGED] = judged(out)
    for name, src in ((FLOW, "grad_flow_ratio_init"), (FLOW_FINAL, "grad_flow_ratio_final")):
        values = out[src].to_numpy(dtype=float) if src in out else np.full(len(out), np.nan)
        # A ratio of exactly 0 is a gradient that underflowed float32: it vanished, so it counts
        # at the float32 floor (an upper bound on its true size) instead of being dropped.
        floored = np.where(values == 0, np.finfo(np.float32).smallest_subnormal, values)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(floored > 0, np.log10(floored), np.nan)
    return out


def with_constants(client, raw: pd.DataFrame) -> pd.DataFrame:
    """`raw` with each FINISHED child's unlogged parameters (its sweep's constants) filled in from
    its config.json artifact, so a configuration is described by every parameter it ran with."""
    from concurrent.futures import ThreadPoolExecutor

    from experiments.tracking.records import config_params

    if raw.empty or "status" not in raw:
        return raw
    rows = raw.index[raw["status"] == "FINISHED"]
    with ThreadPoolExecutor(8) as pool:  # one small download per run; I/O-bound
        full = list(pool.map(lambda i: config_params(client, raw.at[i, "run_id"]), rows))
    filled = pd.DataFrame(
        [{f"params.{k}": v for k, v in p.items()} for p in full], index=rows, dtype=object
    ).reindex(raw.index)
    return raw.combine_first(filled) if len(filled.columns) else raw


def load_sweep(client, ref: str) -> SweepResults:
    import mlflow

    parent = resolve_parent(client, ref)
    raw = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    raw = with_constants(client, raw)
    spec, source = load_spec(client, parent)
    study = parent.data.tags.get("study") or spec.get("study") or parent.info.run_id[:8]
    statuses = raw["status"].value_counts().to_dict() if len(raw) else {}
    retried = [
        f"`{r.get('tags.config_label')} lr={r.get('params.learning_rate')} s{r.get('params.seed')}` "
        f"on {node if isinstance(node := r.get('tags.ray_node_ip'), str) else 'this machine'} "
        f"(replaced run {r['tags.retried_from']})"
        for r in (raw.to_dict("records") if "tags.retried_from" in raw else [])
        if r["status"] == "FINISHED" and isinstance(r["tags.retried_from"], str) and r["tags.retried_from"]
    ]
    return SweepResults(
        parent_id=parent.info.run_id,
        study=study,
        label=study,
        experiment_id=parent.info.experiment_id,
        tags=dict(parent.data.tags),
        metrics=dict(parent.data.metrics),
        spec=spec,
        spec_source=source,
        runs=tidy(raw, study, study),
        statuses={str(k): int(v) for k, v in statuses.items()},
        retried=retried,
    )


def listed_claims(sweep: SweepResults) -> set[str]:
    """Claim ids the sweep says it informs: the parent's `claims` tag, else the spec's `claims:`."""
    text = sweep.tags.get("claims") or ",".join(str(c) for c in sweep.spec.get("claims") or [])
    return {c.strip() for c in text.split(",") if c.strip()}
