"""A team MLflow tracking server on PostgreSQL, started and stopped from one directory.

    python -m experiments.tracking.server start [--dir .tracking] [--pg-port 5433] [--port 5000]
    export MLFLOW_TRACKING_URI=http://127.0.0.1:5000      # then runs and sweeps log to it
    python -m experiments.tracking.server status|stop [--dir .tracking]

`start` makes (once) a PostgreSQL cluster in <dir>/pgdata and starts it on 127.0.0.1 (its unix
socket in <dir>/pgsock), creates the role and database `mlflow` (password in <dir>/pg_password),
then starts `mlflow server` on that database with artifacts proxied into <dir>/artifacts and
waits until /health answers. PIDs go to <dir>/postgres.pid and <dir>/mlflow.pid; `stop` ends
exactly those processes (pg_ctl stop for PostgreSQL, the server's process group for MLflow).
PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user, which
must be able to reach <dir> (every parent directory searchable by it; experiments/tracking/postgres.py).

SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, so the URI names it explicitly:
`postgresql+psycopg://` (package `psycopg[binary]`); `postgresql+psycopg2://` needs psycopg2.
Tests use `running_server(directory)`, a context manager that yields the tracking URI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from experiments.tracking import pidfiles, postgres

DEFAULT_DIR = ".tracking"
ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # The server's GenAI job runner (huey consumers, a /dev/shm queue) is not needed to track runs.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


class ServerError(RuntimeError):
    """The MLflow server could not be started; the message says why (the database's: PostgresError)."""


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(uri: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


# ------------------------------------------------------------------------------ MLflow server


def start_mlflow(directory: Path, pg_port: int, port: int, workers: int = 2, timeout: float = 120) -> int:
    """`mlflow server` on the database, artifacts proxied to <dir>/artifacts; wait for /health."""
    uri = f"http://127.0.0.1:{port}"
    if healthy(uri, timeout=1):
        raise ServerError(f"Something already answers on {uri}: choose another --port.")
    artifacts = directory / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = open(directory / "mlflow.log", "ab")  # noqa: SIM115 (the server keeps it)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--artifacts-destination",
        str(artifacts.resolve()),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = {
        **os.environ,
        **ENV,
        # Through the environment, so the database password is not on a command line.
        "MLFLOW_BACKEND_STORE_URI": postgres.backend_store_uri(directory, pg_port),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    # Its own session: `stop` signals the whole group (the CLI and its uvicorn workers).
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    log.close()
    (directory / "mlflow.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not healthy(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_mlflow(directory)
            tail = (directory / "mlflow.log").read_text(errors="replace")[-3000:]
            why = f"exited with {proc.returncode}" if proc.returncode is not None else "timed out"
            raise ServerError(f"mlflow server {why} before {uri}/health answered:\n{tail}")
        time.sleep(0.5)
    return proc.pid


def stop_mlflow(directory: Path, timeout: float = 30) -> None:
    pidfile = directory / "mlflow.pid"
    pid = pidfiles.read_pid(pidfile)
    if pid and pidfiles.alive(pid) and "mlflow" not in pidfiles.cmdline(pid):
        pid = None  # a stale file: that PID now belongs to someone else
    pidfiles.signal_and_wait(pid, signal.SIGTERM, timeout, group=True)
    pidfile.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ both


def start(
    directory: str | Path = DEFAULT_DIR, pg_port: int = 5433, port: int = 5000, workers: int = 2
) -> str:
    """Start PostgreSQL then the MLflow server; return the tracking URI. Stops both on failure."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if pidfiles.alive(pidfiles.read_pid(directory / "mlflow.pid")):
        raise ServerError(f"Already running from {directory} (mlflow.pid): stop it first.")
    try:
        postgres.init(directory)
        postgres.start(directory, pg_port)
        start_mlflow(directory, pg_port, port, workers)
    except BaseException:
        stop(directory)
        raise
    (directory / "tracking_uri").write_text(f"http://127.0.0.1:{port}\n")
    return f"http://127.0.0.1:{port}"


def stop(directory: str | Path = DEFAULT_DIR) -> None:
    """Stop the MLflow server, then PostgreSQL, by the PIDs recorded in <dir>."""
    directory = Path(directory).resolve()
    try:
        stop_mlflow(directory)
    finally:
        postgres.stop(directory)
        (directory / "tracking_uri").unlink(missing_ok=True)


def status(directory: str | Path = DEFAULT_DIR) -> dict:
    directory = Path(directory).resolve()
    uri_file = directory / "tracking_uri"
    uri = uri_file.read_text().strip() if uri_file.exists() else None
    pg, server = pidfiles.read_pid(directory / "postgres.pid"), pidfiles.read_pid(directory / "mlflow.pid")
    return {
        "dir": str(directory),
        "postgres_pid": pg if pidfiles.alive(pg) else None,
        "mlflow_pid": server if pidfiles.alive(server) else None,
        "tracking_uri": uri,
        "healthy": bool(uri) and healthy(uri),
    }


@contextlib.contextmanager
def running_server(
    directory: str | Path, pg_port: int | None = None, port: int | None = None, workers: int = 2
) -> Iterator[str]:
    """A server for the block (free loopback ports unless given); stopped by PID afterwards."""
    pg_port = pg_port or free_port()
    port = port or free_port()
    uri = start(directory, pg_port=pg_port, port=port, workers=workers)
    try:
        yield uri
    finally:
        stop(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"state directory (default: {DEFAULT_DIR})")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port on 127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="MLflow server port on 127.0.0.1")
    parser.add_argument("--workers", type=int, default=2, help="MLflow server worker processes")
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            uri = start(args.dir, pg_port=args.pg_port, port=args.port, workers=args.workers)
        except (ServerError, postgres.PostgresError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(
            f"MLflow server up (PostgreSQL on 127.0.0.1:{args.pg_port}, logs in {Path(args.dir).resolve()})"
        )
        print(f"MLFLOW_TRACKING_URI={uri}")
        return 0
    if args.command == "stop":
        stop(args.dir)
        print("stopped")
        return 0
    info = status(args.dir)
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    return 0 if info["healthy"] else 1


if __name__ == "__main__":
    sys.exit(main())
