"""Processes this project started, named by PID files: read, alive, signalled and waited for."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int | None) -> bool:
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


def signal_and_wait(pid: int | None, sig: int, timeout: float, *, group: bool) -> None:
    """Send `sig` to pid (or its process group), wait for it to exit, then SIGKILL it."""
    if not alive(pid):
        return
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        send(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if alive(pid) or group:  # group: uvicorn workers may outlive their parent
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
