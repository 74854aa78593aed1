"""The project's own files agree with each other."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_yaml_pins_equal_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d for d in conda["dependencies"] if isinstance(d, dict))["pip"]
    assert sorted(pip) == sorted(project)


def test_mlproject_main_parameters_match_the_cli():
    spec = yaml.safe_load((ROOT / "MLproject").read_text())
    main = spec["entry_points"]["main"]
    assert spec["conda_env"] == "conda.yaml"
    for name in main["parameters"]:
        assert f"--{name} {{{name}}}" in main["command"]
    assert re.search(r"python -m experiments\.\w+", main["command"])
