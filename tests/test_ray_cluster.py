"""A sweep on a real multi-node Ray cluster: the head (driver, tracking server) and two worker
nodes are separate Linux network namespaces with their own addresses (experiments/sweep/ray_netns.py).
The sweep is submitted by address, its trials run only on the worker nodes and log to the one
tracking server; a worker node killed mid-trial has that trial re-run by Ray on the other node.
Needs root (`ip netns`); CI runs as root."""

import mlflow
import pytest
import yaml

from experiments.sweep import netns, ray_netns
from experiments.sweep.spec import load

pytestmark = [pytest.mark.tf_only, pytest.mark.slow]  # starts a multi-node Ray cluster

# Long enough (early_stop off) that a trial is still training when its node is killed: the
# watcher polls every 0.5 s, and 100 steps of this model took less than that here.
BASE = {"units": 8, "batch_size": 8, "steps": 600, "eval_every": 20, "probe_batch": 4}


def _spec(tmp_path, study: str):
    spec = {
        "study": study,
        "base": {**BASE, "log_model": False, "early_stop": False},
        "tasks": {"copy": {"seq_len": 5}},
        "grid": {"forget_bias": ["0", "1"]},
        "seeds": [0, 1],
        "reference": {"forget_bias": "1"},
        "profiles": {"quick": {}},
    }
    path = tmp_path / f"{study}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = netns.unavailable()
    if why:
        pytest.skip(f"a multi-node Ray cluster on one machine needs network namespaces: {why}")
    # Every process runs in one of the cluster's namespaces; all are killed and deleted afterwards.
    with ray_netns.netns_cluster(tmp_path_factory.mktemp("netns"), workers=2) as running:
        yield running


def _parent(cluster, study: str):
    client = mlflow.MlflowClient(cluster.tracking_uri)
    (parent,) = client.search_runs(["0"], f"tags.sweep_role = 'parent' and tags.study = '{study}'")
    return parent


def _show(rows: list[dict]) -> None:
    for row in rows:
        print(" ".join(f"{k}={v}" for k, v in row.items()))


def test_a_sweep_submitted_by_address_runs_its_trials_on_the_worker_nodes(cluster, tmp_path):
    cluster.ensure_workers()
    spec = _spec(tmp_path, "netns_spread")
    result = ray_netns.run_sweep(cluster, spec, timeout=420)
    assert result["returncode"] == 0, result["output"][-3000:]
    assert f"Connecting to existing Ray cluster at address: {cluster.ray_address}" in result["output"]
    rows = ray_netns.trial_table(cluster, "netns_spread")
    _show(rows)
    # Every trial exactly once, FINISHED, in the one tracking server.
    assert sorted(r["trial_key"] for r in rows) == sorted(t.trial_key for t in load(spec, "quick").trials)
    assert all(r["status"] == "FINISHED" for r in rows)
    # On both worker nodes, never on the head (the driver's node offers Ray no CPU).
    assert {r["node_ip"] for r in rows} == set(cluster.worker_ips.values())
    assert _parent(cluster, "netns_spread").data.metrics["trials_finished"] == 4


def test_a_worker_node_killed_mid_trial_has_its_trial_rerun_by_ray_on_the_other_node(cluster, tmp_path):
    cluster.ensure_workers()
    spec = _spec(tmp_path, "netns_kill")
    result = ray_netns.run_sweep(cluster, spec, kill_worker=2, timeout=420)
    killed = result["killed"]
    print(f"killed: {killed}")
    assert killed, f"worker node 2 never trained a trial:\n{result['output'][-3000:]}"
    assert 0 < killed["last_step"] < BASE["steps"]  # mid-training
    assert result["returncode"] == 0, result["output"][-3000:]
    rows = ray_netns.trial_table(cluster, "netns_kill")
    _show(rows)
    assert sorted(r["trial_key"] for r in rows) == sorted(t.trial_key for t in load(spec, "quick").trials)
    assert all(r["status"] == "FINISHED" for r in rows)
    # Ray's own task retry (max_retries), as its driver reports it:
    assert "so the task will be retried" in result["output"]
    assert (
        f"the node it was running on is dead or unavailable. Node IP: {killed['node_ip']}" in result["output"]
    )
    # Ray's task retry re-ran the killed trial on the surviving node; the dead attempt's run is gone.
    (redone,) = [r for r in rows if r["retried_from"]]
    assert redone["trial_key"] == killed["trial_key"] and redone["retried_from"] == killed["run_id"]
    assert redone["node_ip"] == cluster.worker_ip(1)
    client = mlflow.MlflowClient(cluster.tracking_uri)
    assert client.get_run(killed["run_id"]).info.lifecycle_stage == "deleted"
    retry = client.search_runs(["0"], f"tags.retried_from = '{killed['run_id']}'")[0]
    print(f"retry started {retry.info.start_time / 1000 - killed['at']:.1f} s after the kill")
    parent = _parent(cluster, "netns_kill")
    assert parent.data.metrics["trials_retried"] == 1 and parent.data.metrics["trials_finished"] == 4
    # The report says what was retried.
    from experiments.report import pipeline as report

    mlflow.set_tracking_uri(cluster.tracking_uri)
    try:
        sweep = report.load_sweep(mlflow.MlflowClient(), parent.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
    header = "\n".join(report._sweep_header(sweep, sweep.runs))
    assert "trials_retried 1" in header and "Retried after a lost worker or node" in header
    assert killed["run_id"] in header and cluster.worker_ip(1) in header
