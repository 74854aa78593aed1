"""The sweep's parent MLflow run: found again on a rerun, made (or joined) on a first start,
the children of an earlier parent adopted. One parent per spec hash and profile; its children's
FINISHED runs are what a resume skips.
"""

from __future__ import annotations

import os
import time

from experiments.sweep.spec import Sweep

PARENT = "parent"
CONVERGE_SETTLE_S = 1.0


def sweep_run_name(sweep: Sweep) -> str:
    return f"sweep {sweep.study} ({sweep.profile})"


def find_parent(client, experiment_id: str, sweep: Sweep, resume: str | None):
    """The parent run to continue: `resume`, else the earliest one with this spec hash and profile
    (normally the only one; of several started at once, the one all of them settle on)."""
    if resume:
        return client.get_run(resume)
    runs = client.search_runs(
        [experiment_id], f"tags.sweep_role = '{PARENT}' and tags.sweep_spec_hash = '{sweep.spec_hash}'"
    )
    return min(runs, key=lambda r: (r.info.start_time, r.info.run_id), default=None)


def new_parent(client, experiment_id: str, sweep: Sweep, tags: dict[str, str]) -> str:
    """Make the sweep's parent run, or join the one of the same sweep started at the same time."""
    own = client.create_run(
        experiment_id, run_name=sweep_run_name(sweep), tags=tags
    ).info.run_id  # tagged at creation: a concurrent start finds it at once
    # A rival's create_run may be in flight with an earlier start_time: let it land, then all
    # starts see the same parents and keep the earliest.
    time.sleep(CONVERGE_SETTLE_S)
    earliest = find_parent(client, experiment_id, sweep, None).info.run_id
    if earliest != own:
        client.set_tag(own, "superseded_by", earliest)
        client.delete_run(own)
        print(f"joining sweep {earliest}, started at the same time", flush=True)
    return earliest


def finished_trials(client, experiment_id: str, parent_id: str) -> dict:
    """trial_key → the FINISHED child run (with its metrics) of a parent."""
    runs = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'FINISHED'"
    )
    return {r.data.tags["trial_key"]: r for r in runs if "trial_key" in r.data.tags}


def adopt_children(client, experiment_id: str, old_parent: str, new_parent: str) -> int:
    """Move a previous parent's finished children under the current parent (one parent per sweep)."""
    moved = 0
    for run in finished_trials(client, experiment_id, old_parent).values():
        client.set_tag(run.info.run_id, "mlflow.parentRunId", new_parent)
        moved += 1
    client.set_tag(old_parent, "superseded_by", new_parent)
    client.delete_run(old_parent)
    return moved


def find_experiment(client, launched: str | None) -> str:
    import mlflow

    if launched:
        return client.get_run(launched).info.experiment_id
    return os.environ.get("MLFLOW_EXPERIMENT_ID") or mlflow.get_experiment_by_name("Default").experiment_id


def sweep_tags(sweep: Sweep) -> dict[str, str]:
    return {
        "sweep_role": PARENT,
        "study": sweep.study,
        "sweep_spec": sweep.path,
        "sweep_spec_hash": sweep.spec_hash,
        "sweep_profile": sweep.profile,
        "claims": ",".join(sweep.claims),  # the report's claims this study informs
        "reference": " ".join(f"{k}={v}" for k, v in sweep.reference.items()),
        "protocol": sweep.protocol.describe() if sweep.protocol else "",
    }


def find_or_make(
    client, experiment_id: str, sweep: Sweep, resume: str | None, launched: str | None, tags: dict[str, str]
) -> str:
    """The parent run: the one `mlflow run` made (adopting an earlier parent's finished children),
    the earlier parent of this sweep, or a new one."""
    previous = find_parent(client, experiment_id, sweep, resume)
    if previous is not None and previous.info.run_id != launched and launched:
        moved = adopt_children(client, experiment_id, previous.info.run_id, launched)
        print(f"resuming sweep {previous.info.run_id}: {moved} finished trials adopted", flush=True)
    parent_id = launched or (previous.info.run_id if previous is not None else None)
    return parent_id or new_parent(client, experiment_id, sweep, tags)
