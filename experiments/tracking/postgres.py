"""The tracking server's PostgreSQL: a cluster in <dir>/pgdata, on 127.0.0.1, with the role and
database `mlflow` (password in <dir>/pg_password); its PID in <dir>/postgres.pid.

PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user, which must
be able to reach <dir> (every parent directory searchable by it).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from experiments.tracking import pidfiles

PG_USER = "postgres"  # the OS user PostgreSQL runs as when we are root
DB_NAME = DB_ROLE = "mlflow"


class PostgresError(RuntimeError):
    """The tracking server's database could not be set up or started; the message says why."""


def bindir() -> Path | None:
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
        raise PostgresError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return done.stdout


def _pg_paths(directory: Path) -> tuple[Path, Path, Path]:
    return directory / "pgdata", directory / "pgsock", directory / "postgres.log"


def init(directory: Path) -> None:
    """initdb a cluster in <dir>/pgdata unless one is there (local socket: trust; TCP: password)."""
    bin_dir = bindir()
    if bin_dir is None:
        raise PostgresError("No PostgreSQL server binaries (initdb): apt-get install postgresql")
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
            raise PostgresError(
                f"The {PG_USER} user cannot reach {pgdata}: make every parent directory of "
                f"{directory} searchable by it (chmod o+x), or choose another --dir."
            )
    _run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
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


def start(directory: Path, pg_port: int, timeout: float = 60) -> int:
    """Start the cluster on 127.0.0.1:pg_port; create role and database `mlflow`; return its PID."""
    bin_dir = bindir()
    pgdata, sockdir, log = _pg_paths(directory)
    options = f"-c listen_addresses=127.0.0.1 -p {pg_port} -k {sockdir}"
    if not pidfiles.alive(
        pidfiles.read_pid(pgdata / "postmaster.pid")
    ):  # else: left running from this dir, reuse it
        _run(
            _as_postgres(
                [str(bin_dir / "pg_ctl"), "start", "-D", str(pgdata), "-l", str(log), "-o", options, "-w"]
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


def stop(directory: Path, timeout: float = 60) -> None:
    """pg_ctl stop (fast) the cluster; if that fails, SIGINT (fast shutdown) the recorded PID."""
    pidfile = directory / "postgres.pid"
    pgdata, _, _ = _pg_paths(directory)
    bin_dir = bindir()
    if bin_dir is not None and (pgdata / "postmaster.pid").exists():
        done = subprocess.run(
            _as_postgres(
                [
                    str(bin_dir / "pg_ctl"),
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
            pidfiles.signal_and_wait(pidfiles.read_pid(pidfile), signal.SIGINT, timeout, group=False)
    elif pidfile.exists():
        pidfiles.signal_and_wait(pidfiles.read_pid(pidfile), signal.SIGINT, timeout, group=False)
    pidfile.unlink(missing_ok=True)
