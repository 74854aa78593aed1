"""Linux network namespaces for a cluster on one machine: probe, list, kill, clean up (root only).

Namespaces are named `rayns<pid of their creator>…`, so those of a crashed run are recognised
(their creator is dead) and deleted by the next run.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "rayns"


class NetnsError(RuntimeError):
    """Namespaces, Ray or the tracking server could not be set up; the message says why."""


def ip(*args: str) -> None:
    """Run `ip ARGS`; NetnsError with its message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def netns_pids(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def kill_namespace(ns: str, timeout: float = 10) -> int:
    """SIGKILL every process in namespace `ns` (a node losing power); return how many there were."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := netns_pids(ns)) and time.monotonic() < deadline:
        for pid in pids:  # repeated: a process may fork while we kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.1)
    return len(killed)


def unavailable() -> str | None:
    """Why this machine cannot host the cluster (not root, no `ip netns`), or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"{PREFIX}{os.getpid()}probe"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def delete_stale_namespaces() -> list[str]:
    """Delete `rayns<pid>…` namespaces (and their processes) whose creating process is dead."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    stale = []
    for line in done.stdout.splitlines():
        match = re.fullmatch(rf"{PREFIX}(\d+)(h|w\d+|probe)", line.split(" ")[0])
        if match is None or Path(f"/proc/{match[1]}").exists():
            continue
        kill_namespace(match[0])
        subprocess.run(["ip", "netns", "delete", match[0]], capture_output=True)
        stale.append(match[0])
    return stale


def free_subnet() -> int:
    """N for 10.N.0.0/24 that no address or route of this machine uses yet."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    used = used.stdout
    used += subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    candidates = [n for n in range(100, 250) if f"10.{n}." not in used]
    if not candidates:
        raise NetnsError("no free 10.N.0.0/24 subnet for the namespaces")
    return random.choice(candidates)
