"""One trial, one run: how concurrent (and resumed) sweeps agree on who trains a trial.

A worker makes its child run first, then takes the trial's lease on the parent run by logging
the param `claim.<trial_key>.<n>` = its run id (the param keeps its first name, so sweeps logged
before stay resumable). MLflow params never change: of two workers logging the same key with
different values exactly one succeeds, on every tracking store (sqlite, PostgreSQL, a tracking
server), so taking a lease is atomic. A worker that finds lease n taken looks at the run holding it:

    FINISHED                                → done already: delete its own run, skip the trial
    RUNNING and alive                       → another sweep trains it now: delete its own run, skip
    FAILED, KILLED, deleted, RUNNING but dead → stale: delete that run, try lease n + 1

Alive: not an earlier attempt of this same sweep (the same driver dispatches a trial once, so
one of its own RUNNING holders is a worker that died and Ray retried), and its worker process
(host, pid, start time: tag `sweep_owner`) still runs — checked directly on the same host; on
another host, its heartbeat (tag `sweep_heartbeat`, renewed every HEARTBEAT_S) is younger than
LEASE_S. So a rerun after a killed sweep takes over at once on one machine, and after LEASE_S
for trials that ran on another host. The parent's lease params record which run did each trial.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

OWNER_TAG, DRIVER_TAG, HEARTBEAT_TAG = "sweep_owner", "sweep_driver", "sweep_heartbeat"
HEARTBEAT_S, LEASE_S = 20.0, 90.0
FINISHED, RUNNING = "finished", "running"


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the pid, names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_id(pid: int | None = None) -> str:
    """host:pid:start of a process (this one by default)."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or ''}"


def _process_alive(owner: str) -> bool | None:
    """Whether the process named by process_id() runs; None when it is on another host."""
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    if ticks and Path("/proc/self/stat").exists():
        return _start_ticks(int(pid_text)) == ticks  # not a later process that reused the pid
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_tags(driver: str) -> dict[str, str]:
    """Tags a run that takes a lease carries from its creation."""
    return {OWNER_TAG: process_id(), DRIVER_TAG: driver, HEARTBEAT_TAG: f"{time.time():.0f}"}


def is_live(run, driver: str) -> bool:
    """A RUNNING run whose worker still works on it (see the module docstring)."""
    if run.info.lifecycle_stage != "active" or run.info.status not in ("RUNNING", "SCHEDULED"):
        return False
    tags = run.data.tags
    if driver and tags.get(DRIVER_TAG) == driver:
        return False  # our own earlier attempt: Ray retries a trial only after its worker died
    alive = _process_alive(tags.get(OWNER_TAG, ""))
    if alive is not None:
        return alive
    try:
        return time.time() - float(tags.get(HEARTBEAT_TAG, "0")) < LEASE_S
    except ValueError:
        return False


def acquire(client, experiment_id: str, parent_id: str, trial_key: str, run_id: str, driver: str):
    """Take the lease on `trial_key` for run `run_id`: (None, stale runs deleted) if it is ours, else
    (FINISHED or RUNNING, ...): the trial is done or under way in another sweep."""
    from mlflow.exceptions import MlflowException

    prefix = f"claim.{trial_key}."
    params = client.get_run(parent_id).data.params
    attempt = max((int(k.removeprefix(prefix)) for k in params if k.startswith(prefix)), default=1)
    stale: list[str] = []
    while True:
        key = f"{prefix}{attempt}"
        try:
            client.log_param(parent_id, key, run_id)
            break
        except MlflowException:
            holder = client.get_run(parent_id).data.params.get(key)
            if holder is None:
                raise  # not a taken lease: a real error
        if holder == run_id:
            break
        try:
            other = client.get_run(holder)
        except MlflowException:
            other = None  # removed for good
        if other is not None and other.info.lifecycle_stage == "active":
            if other.info.status == "FINISHED":
                return FINISHED, stale
            if is_live(other, driver):
                return RUNNING, stale
            with contextlib.suppress(MlflowException):  # a rival may be deleting it too
                client.delete_run(holder)
            stale.append(holder)
        attempt += 1
    # Attempts from before leases existed, or whose worker died before taking one.
    for run in client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and tags.trial_key = '{trial_key}'"
    ):
        if run.info.run_id != run_id and run.info.status != "FINISHED" and not is_live(run, driver):
            with contextlib.suppress(MlflowException):
                client.delete_run(run.info.run_id)
            stale.append(run.info.run_id)
    return None, stale


@contextlib.contextmanager
def heartbeat(client, run_id: str) -> Iterator[None]:
    """Renew the run's heartbeat tag every HEARTBEAT_S while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a missed beat only shortens the lease
                client.set_tag(run_id, HEARTBEAT_TAG, f"{time.time():.0f}")

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
