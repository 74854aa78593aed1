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
must be able to reach <dir> (every parent directory searchable by it).

SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, so the URI names it explicitly:
`postgresql+psycopg://` (package `psycopg[binary]`); `postgresql+psycopg2://` needs psycopg2.
Tests use `running_server(directory)`, a context manager that yields the tracking URI.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DIR = ".tracking"
PG_USER = "postgres"  # the OS user PostgreSQL runs as when we are root
DB_NAME = DB_ROLE = "mlflow"
ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # The server's GenAI job runner (huey consumers, a /dev/shm queue) is not needed to track runs.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


class ServerError(RuntimeError):
    """The tracking server or its database could not be started; the message says why."""


# ------------------------------------------------------------------------------ PostgreSQL


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries (Debian's /usr/lib/postgresql/N/bin, else PATH)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if found:
        return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL will not run as root: run its commands as the postgres user then."""
    return ["runuser", "-u", PG_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _chown_to_postgres(*paths: Path) -> None:
    if os.geteuid() == 0:
        for path in paths:
            shutil.chown(path, PG_USER, PG_USER)


def _run(cmd: list[str], what: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServerError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return done.stdout


def _pg_paths(directory: Path) -> tuple[Path, Path, Path]:
    return directory / "pgdata", directory / "pgsock", directory / "postgres.log"


def init_postgres(directory: Path) -> None:
    """initdb a cluster in <dir>/pgdata unless one is there (local socket: trust; TCP: password)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerError("No PostgreSQL server binaries (initdb): apt-get install postgresql")
    pgdata, sockdir, log = _pg_paths(directory)
    if (pgdata / "PG_VERSION").exists():
        return
    for path in (pgdata, sockdir):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
    log.touch()
    _chown_to_postgres(pgdata, sockdir, log)
    if os.geteuid() == 0:
        probe = subprocess.run(_as_postgres(["test", "-w", str(pgdata)]), capture_output=True)
        if probe.returncode != 0:
            raise ServerError(
                f"The {PG_USER} user cannot reach {pgdata}: make every parent directory of "
                f"{directory} searchable by it (chmod o+x), or choose another --dir."
            )
    _run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(pgdata),
                "--username",
                PG_USER,
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                # The socket directory is private to the postgres user (and root); TCP needs a password.
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
            ]
        ),
        "initdb",
    )


def start_postgres(directory: Path, pg_port: int, timeout: float = 60) -> int:
    """Start the cluster on 127.0.0.1:pg_port; create role and database `mlflow`; return its PID."""
    bindir = postgres_bindir()
    pgdata, sockdir, log = _pg_paths(directory)
    options = f"-c listen_addresses=127.0.0.1 -p {pg_port} -k {sockdir}"
    if not _alive(_read_pid(pgdata / "postmaster.pid")):  # else: left running from this dir, reuse it
        _run(
            _as_postgres(
                [str(bindir / "pg_ctl"), "start", "-D", str(pgdata), "-l", str(log), "-o", options, "-w"]
                + ["-t", str(int(timeout))]
            ),
            f"pg_ctl start (log: {log})",
        )
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    (directory / "postgres.pid").write_text(f"{pid}\n")
    _ensure_database(directory, pg_port)
    return pid


def _password(directory: Path) -> str:
    path = directory / "pg_password"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _ensure_database(directory: Path, pg_port: int) -> None:
    import psycopg
    from psycopg import sql

    _, sockdir, _ = _pg_paths(directory)
    password = _password(directory)
    with psycopg.connect(
        host=str(sockdir), port=pg_port, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_ROLE,)).fetchone()
        # Utility statements take no bind parameters: compose the literal (the file's password wins).
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(DB_ROLE), sql.Literal(password)
            )
        )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DB_NAME), sql.Identifier(DB_ROLE)
                )
            )


def backend_store_uri(directory: Path, pg_port: int) -> str:
    return f"postgresql+psycopg://{DB_ROLE}:{_password(directory)}@127.0.0.1:{pg_port}/{DB_NAME}"


def stop_postgres(directory: Path, timeout: float = 60) -> None:
    """pg_ctl stop (fast) the cluster; if that fails, SIGINT (fast shutdown) the recorded PID."""
    pidfile = directory / "postgres.pid"
    pgdata, _, _ = _pg_paths(directory)
    bindir = postgres_bindir()
    if bindir is not None and (pgdata / "postmaster.pid").exists():
        done = subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(timeout)),
                ]
            ),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 and pidfile.exists():
            _signal_and_wait(_read_pid(pidfile), signal.SIGINT, timeout, group=False)
    elif pidfile.exists():
        _signal_and_wait(_read_pid(pidfile), signal.SIGINT, timeout, group=False)
    pidfile.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ processes


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child of ours has exited
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _signal_and_wait(pid: int | None, sig: int, timeout: float, *, group: bool) -> None:
    """Send `sig` to pid (or its process group), wait for it to exit, then SIGKILL it."""
    if not _alive(pid):
        return
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        send(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid) or group:  # group: uvicorn workers may outlive their parent
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


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
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri(directory, pg_port),
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
    pid = _read_pid(pidfile)
    if pid and _alive(pid) and "mlflow" not in _cmdline(pid):
        pid = None  # a stale file: that PID now belongs to someone else
    _signal_and_wait(pid, signal.SIGTERM, timeout, group=True)
    pidfile.unlink(missing_ok=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------------------ both


def start(
    directory: str | Path = DEFAULT_DIR, pg_port: int = 5433, port: int = 5000, workers: int = 2
) -> str:
    """Start PostgreSQL then the MLflow server; return the tracking URI. Stops both on failure."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if _alive(_read_pid(directory / "mlflow.pid")):
        raise ServerError(f"Already running from {directory} (mlflow.pid): stop it first.")
    try:
        init_postgres(directory)
        start_postgres(directory, pg_port)
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
        stop_postgres(directory)
        (directory / "tracking_uri").unlink(missing_ok=True)


def status(directory: str | Path = DEFAULT_DIR) -> dict:
    directory = Path(directory).resolve()
    uri_file = directory / "tracking_uri"
    uri = uri_file.read_text().strip() if uri_file.exists() else None
    pg, server = _read_pid(directory / "postgres.pid"), _read_pid(directory / "mlflow.pid")
    return {
        "dir": str(directory),
        "postgres_pid": pg if _alive(pg) else None,
        "mlflow_pid": server if _alive(server) else None,
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
        except ServerError as error:
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
