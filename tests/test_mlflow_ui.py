"""The MLflow UI as a person sees it: a real 4-trial sweep logged to a real tracking server
(PostgreSQL-backed, on loopback), then Debian's Chromium, headless through Playwright, opens the
experiment's runs, expands the sweep, selects its trials and compares them: the parameter that
varies and the summary metrics must be on the parallel-coordinates plot and in the tables.

Screenshots go to $LSTM_KERAS_TEST_ARTIFACTS (default: the test's tmp_path).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import mlflow
import pytest
import yaml
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright
from test_team_tracking import _run_sweep as run_sweep_in_own_group

from experiments.sweep.spec import load
from experiments.tracking import postgres
from experiments.tracking import server as tracking_server
from experiments.tracking.records import run_name
from experiments.training.config import from_strings

pytestmark = pytest.mark.slow  # starts a server and a browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
STUDY = "ui"
SPEC = {
    "study": STUDY,
    "base": {
        "cell": "lstm",
        "variant": "keras",
        "units": 8,
        "batch_size": 8,
        "steps": 20,
        "eval_every": 10,
        "probe_batch": 4,
        "log_model": False,
    },
    "tasks": {"copy": {"seq_len": 5}},
    "grid": {"forget_bias": ["0", "1"]},
    "learning_rates": [0.01],
    "seeds": [0, 1],
    "reference": {"forget_bias": "1"},
    "profiles": {"quick": {}},
}
# What the children must be called: what differs between them first (the run list cuts names short).
CHILD_NAMES = {(fb, seed): f"fb={fb} s{seed} · copy-T5 lstm/keras tanh" for fb in "01" for seed in "01"}
PARENT_NAME = f"sweep {STUDY} (quick)"
# The plot colours its lines by the last axis: the best loss, not the (here constant) solved flag.
PLOT_METRICS = ("solved", "best_val_loss_over_baseline")
VIEWPORT = {"width": 1440, "height": 1000}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: bash scripts/ci_system_packages.sh (apt-get install chromium)",
)


@pytest.fixture
def artifacts(tmp_path) -> Path:
    path = Path(os.environ.get("LSTM_KERAS_TEST_ARTIFACTS") or tmp_path) / "mlflow_ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    """A team tracking server: PostgreSQL-backed if its binaries are here, else on sqlite."""
    if postgres.bindir() is None:
        yield from _sqlite_server(tmp_path)
        return
    # As root PostgreSQL runs as the postgres user, which cannot enter pytest's 0700 tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="lstm-keras-ui-"))
    directory.chmod(0o711)
    try:
        with tracking_server.running_server(directory / "tracking", workers=1) as uri:
            yield uri
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sqlite_server(tmp_path: Path) -> Iterator[str]:
    port = tracking_server.free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--workers", "1"]
    cmd += ["--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts"]
    env = {**os.environ, **tracking_server.ENV}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "mlflow.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not tracking_server.healthy(uri):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "mlflow.log").read_text()
            time.sleep(0.5)
        yield uri
    finally:  # its own process group: the CLI and its uvicorn worker, by PID
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _run_sweep(uri: str, experiment_id: str, tmp_path: Path) -> str:
    spec = tmp_path / "ui.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cmd = [sys.executable, "-m", "experiments.sweep", "--spec", str(spec), "--profile", "quick"]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_ID": experiment_id,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    returncode, output = run_sweep_in_own_group([*cmd, "--max_concurrent", "2"], tmp_path, env, timeout=300)
    assert returncode == 0, output[-3000:]
    return output


def _axes(page) -> dict[str, tuple[str, str]]:
    """Parallel-coordinates axes: title -> (top, bottom) extent labels, as plotly drew them."""
    found = page.locator(".pcp-plot g.y-axis").evaluate_all(
        """groups => groups.map(g => [
            g.querySelector('.axis-title')?.textContent,
            g.querySelector('.axis-extent-top-text')?.textContent,
            g.querySelector('.axis-extent-bottom-text')?.textContent,
        ])"""
    )
    return {title: (top, bottom) for title, top, bottom in found if title}


def _metric_row(page, metric: str) -> list[str]:
    """The values on the row of `metric` in the compare page's metrics grid, left to right.

    Two virtualised grids (names, values) of absolutely placed cells: a row is the value cells
    at the name cell's height. Only rows scrolled into the grid's window exist."""
    link = page.locator("[role='grid'] a[title='Plot chart']").filter(has_text=re.compile(f"^{metric}$"))
    return link.evaluate(
        """link => {
            const cell = link.closest('[role="grid"] [style*="top"]');
            const names = link.closest('[role="grid"]');
            let box = names.parentElement;
            while (box.querySelectorAll('[role="grid"]').length < 2) box = box.parentElement;
            const values = [...box.querySelectorAll('[role="grid"]')].find(g => g !== names);
            return [...values.querySelectorAll('[style*="top"]')]
                .filter(d => d.style.top === cell.style.top && d.style.left !== '')
                .sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left))
                .map(d => d.textContent.trim());
        }"""
    )


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_trial_of_a_shipped_sweep_has_its_own_name_led_by_what_differs(profile):
    """The run list cuts names at ~16 characters: trials must differ there, not only further on."""
    for path in sorted((ROOT / "experiments" / "sweeps").glob("*.yaml")):
        sweep = load(path, profile)
        names = [run_name(from_strings(t.params), t.varying) for t in sweep.trials]
        assert len(set(names)) == len(names), path.name
        for trial, name in zip(sweep.trials, names):
            lead = name.split(" · ")[0]
            assert f"s{trial.params['seed']}" in lead.split(), (path.name, name)
            if len({t.params["learning_rate"] for t in sweep.trials}) > 1:
                assert f"lr={float(trial.params['learning_rate']):g}" in lead.split(), (path.name, name)
    # Outside a sweep a run keeps its usual name.
    assert run_name(from_strings({"forget_bias": "0", "seed": "1"})) == "adding-T100 lstm/keras fb=0 tanh s1"
    # Compared within a task: a task's own parameters (seq_len, corpus) are not differences.
    activation = load(ROOT / "experiments" / "sweeps" / "activation.yaml", "full")  # copy and adding
    assert activation.trials[0].varying == (
        "task",
        "candidate_activation",
        "output_activation",
        "clipnorm",
        "learning_rate",
        "seed",
    )


@pytest.mark.tf_only
@needs_chromium
def test_a_person_compares_a_sweeps_trials_in_the_mlflow_ui(server, artifacts, tmp_path):
    uri = server
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("lstm-keras ui")
    started = time.perf_counter()
    _run_sweep(uri, experiment_id, tmp_path)
    swept = time.perf_counter() - started
    (parent,) = client.search_runs([experiment_id], "tags.sweep_role = 'parent'")
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == set(CHILD_NAMES.values())
    assert all(r.info.status == "FINISHED" for r in children)
    for (fb, seed), name in CHILD_NAMES.items():
        assert (by_name[name].data.params["forget_bias"], by_name[name].data.params["seed"]) == (fb, seed)
    _drive_ui(uri, experiment_id, children, artifacts)
    print(
        f"\nsweep {swept:.0f}s, UI {time.perf_counter() - started - swept:.0f}s; screenshots in {artifacts}"
    )


def _drive_ui(uri: str, experiment_id: str, children: list, artifacts: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport=VIEWPORT)
            # Generous: the page competes for two shared cores with whatever else runs there.
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            _select_the_trials(page, uri, experiment_id, children, artifacts)
            _compare_in_parallel_coordinates(page, children, artifacts)
            _compare_params_and_metrics(page, {r.info.run_name: r for r in children}, artifacts)
        finally:
            browser.close()


def _select_the_trials(page, uri: str, experiment_id: str, children: list, artifacts: Path) -> None:
    """The sweep in the runs list, expanded: its trials nested under it, each selected."""
    # The experiment in the "Model training" view (its toggle navigates to this URL; a
    # fresh browser would open the GenAI overview, whose tour popover blocks clicks).
    page.goto(f"{uri}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    names = page.locator('[role="gridcell"][col-id="attributes.`Run Name`"]')
    parent_cell = names.filter(has_text=PARENT_NAME)
    expect(parent_cell).to_be_visible()
    _close_assistant(page)
    expect(names).to_have_count(1)  # the trials are nested under their sweep
    parent_cell.get_by_role("button").click()  # the expand (+) icon
    for name in CHILD_NAMES.values():
        expect(names.get_by_text(name, exact=True)).to_be_visible()
    expect(names).to_have_count(1 + len(CHILD_NAMES))
    # The list shows only the start of a name: there, siblings must already differ.
    listed = [text.strip() for text in names.all_inner_texts() if PARENT_NAME not in text]
    assert len({text[:16] for text in listed}) == len(CHILD_NAMES), listed
    for run in children:
        page.locator(f'[role="row"][row-id="{run.info.run_id}"] input.ag-checkbox-input').check()
    page.screenshot(path=artifacts / "01_runs_sweep_expanded_trials_selected.png")


def _compare_in_parallel_coordinates(page, children: list, artifacts: Path) -> None:
    """Compare: the four runs, the parameters that differ and the summaries on one plot."""
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_role("heading", name="Comparing 4 Runs from 1 Experiment")).to_be_visible()
    assert set(json.loads(re.search(r"runs=(\[[^&]*\])", unquote(page.url)).group(1))) == {
        r.info.run_id for r in children
    }
    _close_assistant(page)
    # Parallel coordinates: MLflow puts the parameters that differ on it by itself ...
    params_select = page.locator("div:text-is('Parameters:') + .du-bois-light-select")
    metrics_select = page.locator("div:text-is('Metrics:') + .du-bois-light-select")
    chosen = params_select.locator(".du-bois-light-select-selection-item-content")
    expect(chosen).to_have_text(["forget_bias", "seed"])
    # ... but its metric is whichever the runs logged first (a last-step curve value):
    # a person picks the summaries instead.
    _choose(page, metrics_select, PLOT_METRICS)
    expect(page.locator(".pcp-plot .axis-title")).to_have_count(2 + len(PLOT_METRICS))
    axes = _axes(page)
    assert list(axes) == ["forget_bias", "seed", *PLOT_METRICS]
    best = [r.data.metrics["best_val_loss_over_baseline"] for r in children]
    assert axes["best_val_loss_over_baseline"] == (f"{max(best):.5f}", f"{min(best):.5f}")
    assert axes["forget_bias"] == ("1.00000", "0.00000") and axes["seed"] == ("1.00000", "0.00000")
    page.locator(".pcp-plot").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "02_compare_parallel_coordinates.png")


def _compare_params_and_metrics(page, by_name: dict, artifacts: Path) -> None:
    """The compare page's parameter table (diff only) and metrics grid, run by run."""
    # The parameter table: the four each trial logs (task, learning_rate and what varies:
    # forget_bias, seed; the constants are in config.json), two of which differ.
    params_table = page.locator("table.mlflow-compare-run-table").filter(
        has=page.locator("th", has_text=re.compile("^forget_bias$"))
    )
    rows = params_table.locator("tbody tr th")
    assert set(by_name[CHILD_NAMES["0", "0"]].data.params) == {
        "task",
        "learning_rate",
        "seed",
        "forget_bias",
    }
    expect(rows).to_have_count(4)
    page.get_by_role("switch", name="Parameters - Show diff only").click()
    expect(rows).to_have_text(["forget_bias", "seed"])
    columns = _column_run_names(page)
    assert sorted(columns) == sorted(CHILD_NAMES.values())
    fb_cells = params_table.locator("tr", has=page.locator("th", has_text="forget_bias")).locator("td")
    expect(fb_cells).to_have_text([by_name[n].data.params["forget_bias"] for n in columns])

    # The metrics grid: the best (not last-step) loss of each run, in its column.
    shown = _metric_row(page, "best_val_loss_over_baseline")
    assert len(shown) == len(columns)
    for text, name in zip(shown, columns):
        value = by_name[name].data.metrics["best_val_loss_over_baseline"]
        assert abs(float(text) - value) <= 0.0005 + 1e-9, (name, text, value)
    page.get_by_text("Run details", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "03_compare_params_diff_only.png")
    # One picture of the whole page for the README: plot, run names and differing params.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1500})
    page.get_by_text("Comparing 4 Runs from 1 Experiment").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "04_compare_overview.png")


def _close_assistant(page) -> None:
    """The assistant side panel takes a third of the width (and is no part of this)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    with contextlib.suppress(PlaywrightTimeout):  # not shown (a later MLflow, or closed already)
        close.click(timeout=5_000)


def _choose(page, select, options: tuple[str, ...]) -> None:
    """Make `options` the selection of an MLflow (antd) multi-select, as typed by hand."""
    remove = select.locator(".du-bois-light-select-selection-item-remove")
    while remove.count():
        remove.first.click()
    for option in options:
        select.click()
        select.locator("input[role='combobox']").fill(option)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(select.locator(".du-bois-light-select-selection-item-content")).to_have_text(list(options))


def _column_run_names(page) -> list[str]:
    """The compare page's run columns, left to right, by their names in "Run details"."""
    row = page.locator("tr", has=page.locator("th", has_text=re.compile("^Run Name:$")))
    return [text.strip() for text in row.locator("td").all_inner_texts()]
