"""A multi-host Ray cluster on one Linux machine: network namespaces joined by a bridge (root only).

    sudo .venv/bin/python -m experiments.sweep.ray_netns \
        --spec experiments/sweeps/forget_bias.yaml --kill-worker

Ray will not form a second node on loopback, so each node gets a network namespace of its own —
its own interfaces, address and ports, like a separate machine on a LAN:

    <tag>h    10.N.0.1    head: the bridge, `ray start --head --num-cpus 0` (no trial ever runs
                          beside the driver), the MLflow tracking server, the sweep driver
    <tag>w1   10.N.0.2    worker: `ray start --address 10.N.0.1:6379 --num-cpus 1`
    <tag>w2   10.N.0.3    worker ...
    (root)    10.N.0.254  a veth into the bridge, so this process can read the tracking server

The driver is `python -m experiments.sweep --ray_address 10.N.0.1:6379` run inside the head
namespace, exactly as on a real cluster. Every process of a node lives in its namespace, so
"kill a node" is SIGKILL to `ip netns pids <ns>`: raylet, workers, agents — nothing else on the
machine. Namespaces are named after this process (`rayns<pid>`): `close()` deletes them, and a
later run deletes those whose creator is dead (a crashed run; experiments/sweep/netns.py). Ray
temp dirs are per node and short (its socket paths must stay under 107 characters), so nothing
touches /tmp/ray.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from experiments.sweep import netns
from experiments.tracking.server import healthy

ROOT = Path(__file__).resolve().parents[2]
GCS_PORT, MLFLOW_PORT = 6379, 5000
ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    # A lost node is declared dead after ~3 s instead of Ray's default 15 s or more, so a killed
    # node's trial is retried while the sweep is still short; a real cluster keeps the defaults.
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


@dataclass
class NetnsCluster:
    """Ray head + workers, each in a network namespace, and an MLflow server on the head."""

    workdir: Path
    workers: int = 2
    worker_cpus: int = 1
    tag: str = field(default_factory=lambda: f"{netns.PREFIX}{os.getpid()}")
    subnet: int = field(default_factory=netns.free_subnet)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    tempdir: Path | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def head_ns(self) -> str:
        return f"{self.tag}h"

    def worker_ns(self, i: int) -> str:
        return f"{self.tag}w{i}"

    def ip(self, host: int) -> str:
        return f"10.{self.subnet}.0.{host}"

    @property
    def head_ip(self) -> str:
        return self.ip(1)

    def worker_ip(self, i: int) -> str:
        return self.ip(1 + i)

    @property
    def worker_ips(self) -> dict[str, str]:
        """Worker namespace → its address."""
        return {self.worker_ns(i): self.worker_ip(i) for i in range(1, self.workers + 1)}

    @property
    def ray_address(self) -> str:
        return f"{self.head_ip}:{GCS_PORT}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.head_ip}:{MLFLOW_PORT}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
        # Ray 2.60's head turns token authentication on: every node and driver needs the mode and
        # the token. Ours, not ~/.ray/auth_token, which other Ray users of this machine share.
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.tempdir / "auth_token"))
        for key in ("RAY_ADDRESS", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
            env.pop(key, None)  # this machine's settings must not leak into the other "hosts"
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    # ------------------------------------------------------------------ network

    def _add_namespace(self, ns: str) -> None:
        netns.ip("netns", "add", ns)
        self.namespaces.append(ns)
        netns.ip("-n", ns, "link", "set", "lo", "up")

    def _plug(self, ns: str | None, name: str, address: str) -> None:
        """A veth from `ns` (None: this namespace) into the head's bridge, `address` on its end."""
        outer, inner = f"{name}a", f"{name}b"
        netns.ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        netns.ip("link", "set", inner, "netns", self.head_ns)
        netns.ip("-n", self.head_ns, "link", "set", inner, "master", "br0")
        netns.ip("-n", self.head_ns, "link", "set", inner, "up")
        where = ["-n", ns] if ns else []
        if ns:
            netns.ip("link", "set", outer, "netns", ns)
            netns.ip("-n", ns, "link", "set", outer, "name", "eth0")
            outer = "eth0"
        netns.ip(*where, "addr", "add", f"{address}/24", "dev", outer)
        netns.ip(*where, "link", "set", outer, "up")
        if ns:  # a default route, so Ray's "which address reaches the outside" finds this one
            netns.ip("-n", ns, "route", "add", "default", "via", self.head_ip)

    def _network(self) -> None:
        self._add_namespace(self.head_ns)
        netns.ip("-n", self.head_ns, "link", "add", "br0", "type", "bridge")
        netns.ip("-n", self.head_ns, "addr", "add", f"{self.head_ip}/24", "dev", "br0")
        netns.ip("-n", self.head_ns, "link", "set", "br0", "up")
        netns.ip("-n", self.head_ns, "route", "add", "default", "dev", "br0")
        for i in range(1, self.workers + 1):
            self._add_namespace(self.worker_ns(i))
            self._plug(self.worker_ns(i), self.worker_ns(i), self.worker_ip(i))
        # Deleting the head namespace deletes this veth's peer, and with it the pair.
        self._plug(None, f"{self.tag}r", self.ip(254))

    # ------------------------------------------------------------------ processes

    def popen(self, ns: str, name: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start `cmd` in namespace `ns` (its own session), output to <workdir>/<name>.log."""
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *cmd],
                stdout=kwargs.pop("stdout", log),
                stderr=subprocess.STDOUT,
                env=kwargs.pop("env", self.env()),
                cwd=kwargs.pop("cwd", self.workdir),
                start_new_session=True,
                **kwargs,
            )
        self.procs[name] = proc
        return proc

    def _ray_start(self, ns: str, name: str, ip: str, head: bool) -> None:
        temp = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tempdir))
        role = ["--head", "--port", str(GCS_PORT), "--num-cpus", "0", "--include-dashboard", "false"]
        role = role if head else []
        role = role or ["--address", self.ray_address, "--num-cpus", str(self.worker_cpus)]
        proc = self.popen(
            ns,
            name,
            [
                sys.executable,
                "-m",
                "ray.scripts.scripts",
                "start",
                *role,
                "--node-ip-address",
                ip,
                "--num-gpus",
                "0",
                "--disable-usage-stats",
                "--object-store-memory",
                str(100 * 1024**2),
                "--temp-dir",
                str(temp),
                "--block",
            ],
        )
        # `ray start` writes the cluster address into its temp dir once the node has joined.
        self._wait(lambda: (temp / "ray_current_cluster").exists(), proc, name, 120)

    def start_worker(self, i: int) -> None:
        """(Re)start worker node i in its namespace."""
        self._ray_start(self.worker_ns(i), f"worker{i}", self.worker_ip(i), head=False)

    def _wait(self, ready, proc: subprocess.Popen, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                why = f"exited with {proc.returncode}" if proc.returncode is not None else "timed out"
                raise netns.NetnsError(f"{name} {why} before it was ready:\n{log}")
            time.sleep(0.25)

    def start(self) -> NetnsCluster:
        netns.delete_stale_namespaces()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Ray's socket paths live under its temp dir: keep it short, whatever workdir is.
        self.tempdir = Path(tempfile.mkdtemp(prefix="rayns", dir="/tmp"))
        token = self.tempdir / "auth_token"
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
        try:
            self._network()
            server = self.popen(
                self.head_ns,
                "mlflow_server",
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{self.workdir.resolve() / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(self.workdir.resolve() / "artifacts"),
                    "--serve-artifacts",
                    "--host",
                    self.head_ip,
                    "--port",
                    str(MLFLOW_PORT),
                    "--workers",
                    "1",
                ],
            )
            self._ray_start(self.head_ns, "head", self.head_ip, head=True)
            for i in range(1, self.workers + 1):
                self.start_worker(i)
            self._wait(lambda: healthy(self.tracking_uri), server, "mlflow_server", 120)
        except BaseException:
            self.close()
            raise
        return self

    def ensure_workers(self) -> list[int]:
        """Restart the worker nodes that have no process left (killed); return which."""
        dead = [i for i in range(1, self.workers + 1) if not netns.netns_pids(self.worker_ns(i))]
        for i in dead:
            self.start_worker(i)
        return dead

    def kill_worker(self, i: int) -> int:
        """Every process of worker node i, SIGKILLed at once; return how many."""
        return netns.kill_namespace(self.worker_ns(i))

    def close(self) -> None:
        """Kill every process in our namespaces, delete them (and their links) and the temp dirs."""
        for ns in reversed(self.namespaces):
            netns.kill_namespace(ns)
        for proc in self.procs.values():  # the `ip netns exec` parents, already gone: reap them
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        self.namespaces.clear()
        if self.tempdir is not None:
            shutil.rmtree(self.tempdir, ignore_errors=True)


@contextlib.contextmanager
def netns_cluster(workdir: Path, workers: int = 2) -> Iterator[NetnsCluster]:
    """A started cluster for the block; every process and namespace is gone afterwards."""
    cluster = NetnsCluster(Path(workdir), workers=workers).start()
    try:
        yield cluster
    finally:
        cluster.close()


# ---------------------------------------------------------------------------- a sweep on it


def _children(client, study: str) -> list:
    return client.search_runs(["0"], f"tags.sweep_role = 'child' and tags.study = '{study}'")


def run_sweep(
    cluster: NetnsCluster,
    spec: Path,
    profile: str = "quick",
    *,
    kill_worker: int | None = None,
    timeout: float = 600,
) -> dict:
    """The sweep driver in the head namespace, submitting to the cluster by address.

    kill_worker=i: once worker i runs a trial that has logged a metric, SIGKILL that whole node.
    Returns the study, the driver's exit code and output, and what was killed: the node, the
    trial and its run, the training step it had logged last, how many processes died.
    """
    import mlflow
    import yaml

    study = yaml.safe_load(Path(spec).read_text())["study"]
    env = {**cluster.env(), "MLFLOW_TRACKING_URI": cluster.tracking_uri}
    cmd = [sys.executable, "-m", "experiments.sweep", "--spec", str(Path(spec).resolve())]
    cmd += ["--profile", profile, "--ray_address", cluster.ray_address]
    out = cluster.workdir / f"sweep_{study}.log"
    with open(out, "wb") as log:
        driver = cluster.popen(cluster.head_ns, f"sweep_{study}", cmd, env=env, stdout=log)
    client = mlflow.MlflowClient(cluster.tracking_uri)
    killed: dict = {}
    deadline = time.monotonic() + timeout
    while driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        if kill_worker is None or killed:
            continue
        victim = cluster.worker_ip(kill_worker)
        for run in _children(client, study):
            if (
                run.info.status == "RUNNING"
                and run.data.tags.get("ray_node_ip") == victim
                and "loss" in run.data.metrics  # logged after the first training steps, not at step 0
            ):
                pids = cluster.kill_worker(kill_worker)
                killed = {
                    "node_ip": victim,
                    "trial_key": run.data.tags["trial_key"],
                    "run_id": run.info.run_id,
                    "last_step": max(m.step for m in client.get_metric_history(run.info.run_id, "loss")),
                    "processes": pids,
                    "at": time.time(),
                }
                break
    if driver.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        raise netns.NetnsError(f"the sweep did not finish within {timeout:.0f} s (log: {out})")
    output = out.read_text(errors="replace")
    return {"study": study, "returncode": driver.returncode, "output": output, "killed": killed}


def trial_table(cluster: NetnsCluster, study: str) -> list[dict]:
    """One row per child run: trial, status, the node that ran it, retried_from."""
    import mlflow

    client = mlflow.MlflowClient(cluster.tracking_uri)
    return [
        {
            "trial_key": r.data.tags.get("trial_key"),
            "config": r.data.tags.get("config_label"),
            "seed": r.data.params.get("seed"),
            "status": r.info.status,
            "node_ip": r.data.tags.get("ray_node_ip"),
            "retried_from": r.data.tags.get("retried_from", ""),
        }
        for r in _children(client, study)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-worker", action="store_true", help="kill the last worker mid-trial")
    parser.add_argument("--workdir", default=None, help="logs, tracking database (default: temp dir)")
    args = parser.parse_args(argv)
    why = netns.unavailable()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ray_netns_"))
    with netns_cluster(workdir, workers=args.workers) as cluster:
        print(f"head {cluster.head_ip} (driver, tracking server {cluster.tracking_uri})", flush=True)
        print("workers " + ", ".join(f"{ns} {ip}" for ns, ip in cluster.worker_ips.items()), flush=True)
        result = run_sweep(
            cluster, Path(args.spec), args.profile, kill_worker=args.workers if args.kill_worker else None
        )
        print(result["output"], end="")
        if result["killed"]:
            print(f"killed worker node {result['killed']}")
        for row in trial_table(cluster, result["study"]):
            print(" ".join(f"{k}={v}" for k, v in row.items()))
    print(f"logs and tracking database: {workdir}")
    return result["returncode"]


if __name__ == "__main__":
    sys.exit(main())
