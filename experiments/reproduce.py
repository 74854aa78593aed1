"""MLproject `reproduce`: rerun a run from its recorded parameters and say whether every metric matched.

    mlflow run . -e reproduce -P run_id=<run id>

The parameters come from the run's config.json artifact (a sweep child logs only those that
vary across its sweep as MLflow params). The rerun is a full training run of its own (same
logging), tagged `reproduces=<run id>`. Every metric step of the original is compared bitwise
with the rerun's, except wall-clock timings; the verdict is logged (`reproduced` 0/1, tag
`reproduce_mismatches`) and printed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from experiments.run import TIMING_METRICS, check_data, train_and_log
from experiments.tracking.records import run_params
from experiments.training.config import ConfigError, RunConfig, from_strings


def config_of(params: dict[str, str]) -> tuple[RunConfig, dict[str, str]]:
    """The RunConfig a logged run used; parameters the CLI doesn't know (e.g. a sweep's) are left."""
    known = {f.name for f in fields(RunConfig)}
    raw = {k: v for k, v in params.items() if k in known}
    return from_strings(raw), raw


def metric_histories(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    run = client.get_run(run_id)
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in run.data.metrics
        if key not in TIMING_METRICS and key != "reproduced"
    }


def _same(a: list[tuple[int, float]] | None, b: list[tuple[int, float]] | None) -> bool:
    """Same steps and bitwise-equal values (NaN equals NaN)."""
    if a is None or b is None or len(a) != len(b):
        return False
    return all(sa == sb and (va == vb or (va != va and vb != vb)) for (sa, va), (sb, vb) in zip(a, b))


def compare(original: dict[str, list], rerun: dict[str, list]) -> list[str]:
    """Names of metrics whose step histories differ."""
    return [key for key in sorted(set(original) | set(rerun)) if not _same(original.get(key), rerun.get(key))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_id", required=True)
    args = parser.parse_args(argv)
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        original = client.get_run(args.run_id)
    except MlflowException as error:
        print(
            f"error: no run with run_id={args.run_id!r} in {mlflow.get_tracking_uri()}: {error.message}",
            file=sys.stderr,
        )
        return 2
    try:
        config, raw = config_of(run_params(client, original))
    except ConfigError as error:
        print(f"error: run {args.run_id} cannot be rerun: {error}", file=sys.stderr)
        return 2
    check_data(config)
    result = train_and_log(config, raw, extra_tags={"reproduces": args.run_id})
    original_histories = metric_histories(client, args.run_id)
    mismatches = compare(original_histories, metric_histories(client, result["run_id"]))
    with mlflow.start_run(run_id=result["run_id"]):
        mlflow.log_metric("reproduced", float(not mismatches))
        mlflow.set_tag("reproduce_mismatches", ",".join(mismatches) or "none")
    if mismatches:
        print(f"reproduce: MISMATCH in {len(mismatches)} metric(s): {', '.join(mismatches)}")
    else:
        n = len(original_histories)
        print(f"reproduce: every metric matched ({n} metrics, every step) — run {args.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
