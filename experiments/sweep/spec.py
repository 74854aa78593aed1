"""Sweep specs: a YAML file names a study, its configurations, seeds and learning rates.

    study: forget_bias                 # name (tags every run)
    description: ...
    claims: [a, h]                     # claims of the checklist this study informs
    base: {cell: lstm, steps: 2000}    # parameters shared by every trial (RunConfig names)
    tasks: {copy: {seq_len: 100}, adding: {seq_len: 200}}   # per-task parameters
    configs: [{cell: gru, units: 110}, {cell: lstm, units: 96}]  # explicit configurations ...
    grid: {forget_bias: ["0", "1", chrono]}                   # ... crossed with a grid
    learning_rates: [0.003, 0.01]      # searched per configuration on the tuning seeds
    tuning_seeds: [100, 101]           # choose the learning rate (validation split)
    seeds: [0, 1, 2]                   # confirm at the chosen rate (test split, no early stop)
    pilot_seeds: [900]                 # spent on pilots: never tuned or judged on
    reference: {forget_bias: "1"}      # the configuration the others are tested against
    profiles:                          # overrides by name; `quick` and `full` at least
      quick: {base: {steps: 400}, seeds: [0, 1, 2]}
      full: {base: {steps: 20000}, seeds: [0, 1, 2, 3, 4]}

Configurations = tasks × configs × grid. The tuning phase is configurations × learning_rates ×
tuning_seeds; the confirmatory phase is configurations × their chosen rate × seeds, made once
the tuning runs are in (`Sweep.confirm_trials`; experiments/sweep/protocol.py says why). With one
learning rate the confirmatory trials are known at once. Every trial is checked with the training
entry point's own validation before anything runs. Pure Python: no Ray, no Keras.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiments.sweep.protocol import CONFIRM, CONFIRM_OVERRIDES, TUNE, Protocol, ProtocolError, check
from experiments.training.config import ConfigError, RunConfig, from_strings

TOP_KEYS = {
    "study",
    "description",
    "claims",
    "base",
    "tasks",
    "configs",
    "grid",
    "learning_rates",
    "seeds",
    "tuning_seeds",
    "pilot_seeds",
    "reference",
    "profiles",
}
PROFILE_KEYS = {
    "base",
    "tasks",
    "configs",
    "grid",
    "learning_rates",
    "seeds",
    "tuning_seeds",
    "pilot_seeds",
    "description",
}
CLAIM_IDS = tuple("abcdefghi")


class SpecError(ValueError):
    """A sweep spec that cannot run; the message names the file, the key and what is valid."""


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep."""

    params: dict[str, str]  # RunConfig names → CLI strings
    config_label: str  # what distinguishes its configuration (no seed, no learning rate)
    config_key: str  # hash of the label's parameters
    trial_key: str  # hash of every parameter: identifies the trial across reruns
    is_reference: bool
    # The parameters that tell it from the other trials of its task in the sweep (and `task` when
    # there are several): its run name leads with them (tracking.run_name).
    varying: tuple[str, ...] = ()
    # The parameters its run logs as MLflow params: every one that varies anywhere in the sweep,
    # plus IDENTITY, so all children share one set of columns in the UI's compare view. The rest
    # are constants of the sweep: they live in the run's config.json artifact.
    logged: tuple[str, ...] = ()
    phase: str = CONFIRM  # protocol.TUNE or protocol.CONFIRM


@dataclass(frozen=True)
class Point:
    """One configuration of one task: every parameter but the learning rate and the seed."""

    params: dict[str, str]
    config_label: str
    config_key: str
    is_reference: bool


@dataclass(frozen=True)
class Sweep:
    study: str
    profile: str
    path: str
    spec_hash: str
    claims: tuple[str, ...]
    reference: dict[str, str]
    trials: tuple[Trial, ...]  # what runs first: the tuning phase, or, nothing to tune, the confirmation
    protocol: Protocol | None = None
    points: tuple[Point, ...] = ()
    varying: tuple[tuple[str, tuple[str, ...]], ...] = ()  # task → its varying parameters
    logged: tuple[str, ...] = ()

    @property
    def n_trials(self) -> int:
        """Both phases' trials: tuning (if any) + every configuration on the confirmatory seeds."""
        confirm = len(self.points) * len(self.protocol.confirm_seeds) if self.protocol else 0
        return confirm + sum(t.phase == TUNE for t in self.trials)

    def confirm_trials(self, learning_rates: dict[str, str]) -> tuple[Trial, ...]:
        """The confirmatory trials of the configurations in `learning_rates` (config_key → rate)."""
        varying = dict(self.varying)
        return tuple(
            _trial(point, learning_rates[point.config_key], seed, CONFIRM, varying, self.logged)
            for point in self.points
            if point.config_key in learning_rates
            for seed in self.protocol.confirm_seeds
        )


def _hash(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_keys(mapping: dict, valid: set[str], where: str) -> None:
    unknown = set(mapping) - valid
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}. Valid keys: {', '.join(sorted(valid))}."
        )


def _strings(mapping: dict, where: str) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise SpecError(f"{where}: expected a mapping of parameter: value, got {type(mapping).__name__}.")
    known = set(RunConfig.__dataclass_fields__)
    for key in mapping:
        if key not in known:
            raise SpecError(f"{where}: unknown parameter {key!r}. Valid choices: {', '.join(sorted(known))}.")
    return {k: _text(v) for k, v in mapping.items()}


def _text(value) -> str:
    """A YAML scalar as the CLI would write it (true/false in lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _list(value, where: str, *, kind=None) -> list:
    name = kind.__name__ if isinstance(kind, type) else "numbers"
    valid = f"Valid choices: a non-empty list of {'integers' if kind is int else name if kind else 'values'}."
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}: expected a non-empty list, got {value!r}. {valid}")
    bad = [v for v in value if kind is not None and (not isinstance(v, kind) or isinstance(v, bool))]
    if bad:
        raise SpecError(
            f"{where}: expected a list of {name}, got {bad[0]!r} ({type(bad[0]).__name__}). {valid}"
        )
    return value


def _merged(spec: dict, profile: dict) -> dict:
    out = dict(spec)
    for key, value in profile.items():
        if key == "base":
            out["base"] = {**spec.get("base", {}), **value}
        elif key == "tasks":
            tasks = dict(spec.get("tasks", {}))
            for task, overrides in value.items():
                tasks[task] = {**tasks.get(task, {}), **(overrides or {})}
            out["tasks"] = tasks
        else:
            out[key] = value
    return out


def load(path: str | Path, profile: str) -> Sweep:
    """Read, check and expand a spec for one profile; raise SpecError naming what is wrong."""
    where = str(path)
    spec = _read(Path(path))
    merged = _with_profile(spec, profile, where)
    claims = tuple(merged.get("claims") or ())
    for claim in claims:
        if claim not in CLAIM_IDS:
            raise SpecError(
                f"{where}: claims: unknown claim {claim!r}. Valid choices: {', '.join(CLAIM_IDS)}."
            )
    points, lrs, reference = _expand(merged, where)
    protocol = _protocol(merged, lrs, where)
    design = [_trial(p, lr, seed, TUNE) for p in points for lr in lrs for seed in protocol.confirm_seeds]
    varying, logged = _varying(design)
    if protocol.tunes:
        trials = [
            _trial(p, lr, s, TUNE, varying, logged)
            for p in points
            for lr in lrs
            for s in protocol.tuning_seeds
        ]
    else:
        trials = [
            _trial(p, lrs[0], s, CONFIRM, varying, logged) for p in points for s in protocol.confirm_seeds
        ]
    for t in trials:
        _validate(t, where)
    keys = [t.trial_key for t in trials]
    if len(set(keys)) != len(keys):
        raise SpecError(
            f"{where}: the grid produces the same trial twice; check configs and grid for overlaps."
        )
    return Sweep(
        study=spec["study"],
        profile=profile,
        path=where,
        spec_hash=_hash({"spec": spec, "profile": profile}),
        claims=claims,
        reference=reference,
        trials=tuple(trials),
        protocol=protocol,
        points=tuple(points),
        varying=tuple(varying.items()),
        logged=logged,
    )


def _protocol(merged: dict, lrs: list[str], where: str) -> Protocol:
    def seeds(key: str, required: bool) -> tuple[str, ...]:
        if key not in merged and not required:
            return ()
        return tuple(str(v) for v in _list(merged.get(key), f"{where}: {key}", kind=int))

    try:
        return check(
            Protocol(
                confirm_seeds=seeds("seeds", True),
                tuning_seeds=seeds("tuning_seeds", False),
                pilot_seeds=seeds("pilot_seeds", False),
                learning_rates=tuple(lrs),
            )
        )
    except ProtocolError as error:
        raise SpecError(f"{where}: {error}") from None


def _trial(
    point: Point, lr: str, seed: str, phase: str, varying: dict | None = None, logged: tuple = ()
) -> Trial:
    params = {**point.params, "learning_rate": lr, "seed": seed}
    if phase == CONFIRM:
        params.update(CONFIRM_OVERRIDES)
    task_varying = (varying or {}).get(params["task"], ())
    return Trial(
        params,
        point.config_label,
        point.config_key,
        _hash(params),
        point.is_reference,
        task_varying,
        logged,
        phase,
    )


def _validate(trial: Trial, where: str) -> None:
    try:
        from_strings(trial.params)
    except ConfigError as error:
        lr, seed = trial.params["learning_rate"], trial.params["seed"]
        raise SpecError(f"{where}: trial {trial.config_label} lr={lr} seed={seed}: {error}") from None


def _read(path: Path) -> dict:
    """The spec file as YAML, its top-level keys and study checked."""
    where = str(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{where}: no such sweep spec.") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{where}: not valid YAML: {error}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: expected a mapping at the top level.")
    _check_keys(spec, TOP_KEYS, where)
    if not isinstance(spec.get("study"), str) or not spec["study"]:
        raise SpecError(f"{where}: `study` must be a non-empty string.")
    return spec


def _with_profile(spec: dict, profile: str, where: str) -> dict:
    """The spec with `profile`'s overrides applied, every profile checked."""
    profiles = spec.get("profiles") or {}
    if not isinstance(profiles, dict) or profile not in profiles:
        raise SpecError(f"{where}: no profile {profile!r}. Valid choices: {', '.join(profiles) or '(none)'}.")
    for name, body in profiles.items():
        if not isinstance(body, dict):
            raise SpecError(f"{where}: profiles.{name}: expected a mapping.")
        _check_keys(body, PROFILE_KEYS, f"{where}: profiles.{name}")
    return _merged(spec, profiles[profile])


def _expand(merged: dict, where: str) -> tuple[list[Point], list[str], dict[str, str]]:
    """(every configuration: tasks × configs × grid; the learning rates; the reference).

    A task's entry may carry its own `configs` or `grid` (replacing the study's for that task), so
    a costly task runs a subset of the configurations."""
    base = _strings(merged.get("base") or {}, f"{where}: base")
    tasks = merged.get("tasks") or {base.get("task", "copy"): {}}
    if not isinstance(tasks, dict) or not tasks:
        raise SpecError(f"{where}: tasks: expected a non-empty mapping of task: parameters.")
    designs = {task: _design(merged, body or {}, f"{where}: tasks.{task}") for task, body in tasks.items()}
    lrs = [
        repr(float(v))
        for v in _list(
            merged.get("learning_rates", [base.get("learning_rate", 0.005)]),
            f"{where}: learning_rates",
            kind=(int, float),
        )
    ]
    reference = _strings(merged.get("reference") or {}, f"{where}: reference")
    keys = [k for _, configs, axes in designs.values() for k in (*(k for c in configs for k in c), *axes)]
    varying = ["task", *dict.fromkeys(keys)]
    points = []
    for task, (task_params, configs, grid_axes) in designs.items():
        for config, values in itertools.product(configs, itertools.product(*grid_axes.values())):
            point = {**base, "task": task, **task_params, **config, **dict(zip(grid_axes, values))}
            label_params = {k: point[k] for k in varying if k in point}
            label = " ".join(f"{k}={v}" for k, v in label_params.items())
            is_reference = all(point.get(k, _default(k)) == v for k, v in reference.items())
            points.append(Point(point, label, _hash(label_params), is_reference))
    return points, lrs, reference


def _design(merged: dict, body: dict, where: str) -> tuple[dict[str, str], list[dict[str, str]], dict]:
    """(a task's parameters, its configurations, its grid axes): its own `configs`/`grid` if given."""
    if not isinstance(body, dict):
        raise SpecError(f"{where}: expected a mapping of parameter: value, got {type(body).__name__}.")
    body = dict(body)
    configs = body.pop("configs", merged.get("configs", [{}]))
    grid = body.pop("grid", merged.get("grid") or {})
    configs = [
        _strings(c, f"{where}: configs[{i}]") for i, c in enumerate(_list(configs, f"{where}: configs"))
    ]
    return _strings(body, where), configs, _grid_axes(grid, where)


def _grid_axes(grid, where: str) -> dict[str, list[str]]:
    if not isinstance(grid, dict):
        raise SpecError(f"{where}: grid: expected a mapping of parameter: [values].")
    axes: dict[str, list[str]] = {}
    for key, values in grid.items():
        _strings({key: None}, f"{where}: grid")  # a known parameter name
        axes[key] = [_text(v) for v in _list(values, f"{where}: grid.{key}")]
    return axes


# Logged as params by every sweep child even when a sweep holds them constant: the axes the
# report groups by (task, learning rate, seed) and a reader filters on first.
IDENTITY = ("task", "learning_rate", "seed")


def _varying(trials: list[Trial]) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """(task → the parameters that tell its trials apart, compared within the task so that a task's
    own parameters (corpus, seq_len) do not count as differences between tasks, the task itself
    does; the union of those and IDENTITY, logged by every trial). `trials`: the full design."""
    by_task: dict[str, list[Trial]] = {}
    for trial in trials:
        by_task.setdefault(trial.params["task"], []).append(trial)
    varying = {}
    for task, group in by_task.items():
        keys = dict.fromkeys(k for t in group for k in t.params)
        differ = [k for k in keys if len({t.params.get(k, _default(k)) for t in group}) > 1]
        varying[task] = tuple(["task"] * (len(by_task) > 1) + differ)
    logged = tuple(dict.fromkeys([*IDENTITY, *(k for keys in varying.values() for k in keys)]))
    return varying, logged


def _default(name: str) -> str:
    return _text(RunConfig.__dataclass_fields__[name].default)
