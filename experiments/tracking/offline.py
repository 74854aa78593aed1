"""A tracking server that is down or goes away: refuse to start, or keep the run's results locally.

Before any training, `unreachable(uri)` asks an http(s) tracking server for /health: a server
that is down costs a second and a one-line error, not MLflow's minutes of retries and a run
half made. If the server is lost mid-run, training goes on: `Recorder` writes what could not
be logged (params, tags, metrics at their steps and times, artifacts, the final status) to

    offline_runs/<run id>/     (or $LSTM_KERAS_OFFLINE_DIR/<run id>)

the run exits 1 naming that folder, and once the server is back

    python -m experiments.tracking.offline replay offline_runs/<run id> [--tracking_uri URI]

logs it into the same run, in order, each operation once (a replay cut short resumes).

How long the first call after a loss blocks training is MLflow's HTTP retry policy: by default
7 retries with exponential backoff (about 4 minutes) and a 120 s timeout per request. To give
up sooner, e.g. `export MLFLOW_HTTP_REQUEST_MAX_RETRIES=2 MLFLOW_HTTP_REQUEST_TIMEOUT=10`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

OFFLINE_DIR_ENV = "LSTM_KERAS_OFFLINE_DIR"
JOURNAL, META, REPLAYED, ARTIFACTS = "journal.jsonl", "run.json", "replayed", "artifacts"


class TrackingLostError(RuntimeError):
    """The tracking server went away mid-run; the message names the folder holding the rest."""


def redacted(uri: str) -> str:
    """The URI without a password (MLflow accepts http://user:password@host)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why an http(s) tracking server cannot be reached, or None (reached, or not a server).

    Any HTTP answer counts as reached (a proxy may answer 401/404 for /health): only a server
    that does not answer at all is a fault here.
    """
    if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"the MLflow tracking server {redacted(uri)} is unreachable ({reason})"


@contextlib.contextmanager
def _fail_fast() -> Iterator[None]:
    """MLflow's HTTP calls in the block give up at once instead of retrying for minutes."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="2")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_store(uri: str) -> str | None:
    """Ready the tracking store before a run or sweep: None, or the one-line error refusing it.

    A server must answer. A new sqlite store is made under a lock: MLflow creates its tables
    on first use, and two processes doing that at once fail ("table ... already exists").
    """
    problem = unreachable(uri)
    if problem is not None:
        return (
            f"error: {problem}. Start it, or set MLFLOW_TRACKING_URI to a store that answers; "
            "nothing was run."
        )
    folder = Path(uri.removeprefix("sqlite:///")).resolve().parent
    if not uri.startswith("sqlite:///") or not folder.is_dir():
        return None  # (a missing folder: MLflow's own error says so)
    import fcntl

    import mlflow

    # The lock is on the store's folder: no lock file left behind, released when closed.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    finally:
        os.close(descriptor)
    return None


def offline_dir() -> Path:
    return Path(os.environ.get(OFFLINE_DIR_ENV, "offline_runs")).resolve()


class Recorder:
    """Logs one run: to MLflow while the tracking server answers, then to a local folder.

    A logging call that fails while the server does not answer switches the recorder offline
    for the rest of the run (no retries per call); any other failure is raised as before.
    """

    def __init__(self, run_id: str, tracking_uri: str, experiment_id: str):
        import mlflow

        self.run_id, self.tracking_uri, self.experiment_id = run_id, tracking_uri, experiment_id
        self.client = mlflow.MlflowClient(tracking_uri)
        self.folder: Path | None = None

    # -------------------------------------------------------------- the calls a run makes

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        batch = [Param(k, str(v)) for k, v in params.items()]
        self._do({"op": "params", "params": params}, lambda: self.client.log_batch(self.run_id, params=batch))

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self._do({"op": "tags", "tags": tags}, lambda: self.client.log_batch(self.run_id, tags=batch))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        op = {"op": "metrics", "metrics": metrics, "step": step, "timestamp": now}
        self._do(op, lambda: self.client.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, name: str, write: Callable[[Path], None]) -> None:
        """`write(path)` makes the file; it is logged as artifact `name`."""

        def online() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / name
                write(path)
                try:
                    self.client.log_artifact(self.run_id, str(path))
                except OSError as error:  # say where: the store, not the temporary copy
                    store = self.client.get_run(self.run_id).info.artifact_uri
                    raise OSError(error.errno, f"{error.strerror}: cannot store {name} in {store}") from error

        self._do({"op": "artifact", "name": name}, online, offline=lambda: write(self._artifact(name)))

    def call(self, online: Callable[[], object], fallback: tuple[str, Callable[[Path], None]]) -> bool:
        """Run `online` (e.g. log_model); offline, keep `fallback` (name, write) as an artifact
        instead. True if `online` ran."""
        name, write = fallback
        ran = []
        self._do(
            {"op": "artifact", "name": name},
            lambda: ran.append(online()),
            offline=lambda: write(self._artifact(name)),
        )
        return bool(ran)

    def end(self, status: str) -> None:
        """End the run (and pop it from MLflow's active runs, also when that call fails)."""
        import mlflow

        end_time = int(time.time() * 1000)

        def online() -> None:
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.run_id:
                mlflow.end_run(status)  # pops the run first, then tells the server
            else:
                self.client.set_terminated(self.run_id, status, end_time)

        self._do({"op": "end", "status": status, "end_time": end_time}, online)
        active = mlflow.active_run()
        if self.folder is not None and active is not None and active.info.run_id == self.run_id:
            # Offline since earlier: end_run pops the run, then fails to reach the server (at once).
            with _fail_fast(), contextlib.suppress(Exception):
                mlflow.end_run(status)

    def lost(self) -> TrackingLostError | None:
        """The error to end the run with if anything was kept locally, else None."""
        if self.folder is None:
            return None
        return TrackingLostError(
            f"lost the MLflow tracking server {redacted(self.tracking_uri)} during run {self.run_id}; "
            f"what it could not log is in {self.folder}. When the server is back: "
            f"python -m experiments.tracking.offline replay {self.folder}"
        )

    # -------------------------------------------------------------- machinery

    def _do(self, op: dict, online: Callable[[], None], offline: Callable[[], None] | None = None) -> None:
        if self.folder is None:
            try:
                online()
                return
            except Exception as error:
                if unreachable(self.tracking_uri) is None:
                    raise  # the server answers: a real error, not a lost server
                self._go_offline(error)
        if offline is not None:
            offline()
        with (self.folder / JOURNAL).open("a") as journal:
            journal.write(json.dumps(op) + "\n")

    def _go_offline(self, error: Exception) -> None:
        self.folder = offline_dir() / self.run_id
        (self.folder / ARTIFACTS).mkdir(parents=True, exist_ok=True)
        meta = {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "error": f"{type(error).__name__}: {error}"[:2000],
        }
        (self.folder / META).write_text(json.dumps(meta, indent=2))
        print(
            f"warning: lost the MLflow tracking server {redacted(self.tracking_uri)}; training goes on "
            f"and run {self.run_id} is kept in {self.folder}",
            file=sys.stderr,
            flush=True,
        )

    def _artifact(self, name: str) -> Path:
        return self.folder / ARTIFACTS / name


def replay(folder: str | Path, tracking_uri: str | None = None) -> tuple[str, int]:
    """Log a kept run's journal into its run; (run id, operations replayed now)."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    run_id = meta["run_id"]
    client = mlflow.MlflowClient(tracking_uri or meta["tracking_uri"])
    ops = [json.loads(line) for line in (folder / JOURNAL).read_text().splitlines() if line.strip()]
    done = int((folder / REPLAYED).read_text()) if (folder / REPLAYED).exists() else 0
    for index in range(done, len(ops)):
        op = ops[index]
        if op["op"] == "params":
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in op["params"].items()])
        elif op["op"] == "tags":
            client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in op["tags"].items()])
        elif op["op"] == "metrics":
            metrics = [Metric(k, float(v), op["timestamp"], op["step"]) for k, v in op["metrics"].items()]
            client.log_batch(run_id, metrics=metrics)
        elif op["op"] == "artifact":
            client.log_artifact(run_id, str(folder / ARTIFACTS / op["name"]))
        elif op["op"] == "end":
            client.set_terminated(run_id, op["status"], op["end_time"])
        # A replay cut short goes on from here next time: nothing is logged twice.
        (folder / REPLAYED).write_text(str(index + 1))
    return run_id, len(ops) - done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Replay a run kept locally while the tracking server was lost."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("replay", help="log a kept run into its run on the tracking server")
    cmd.add_argument("folder", help="offline_runs/<run id>")
    cmd.add_argument("--tracking_uri", default=None, help="default: the URI the run was logging to")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not (folder / META).is_file() or not (folder / JOURNAL).is_file():
        print(f"error: {folder} is not a kept run (no {META} and {JOURNAL}).", file=sys.stderr)
        return 2
    uri = args.tracking_uri or json.loads((folder / META).read_text())["tracking_uri"]
    problem = unreachable(uri)
    if problem:
        print(f"error: {problem}; nothing was replayed.", file=sys.stderr)
        return 1
    run_id, count = replay(folder, uri)
    print(f"replayed {count} operations into run {run_id} at {redacted(uri)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
