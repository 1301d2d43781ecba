"""environment.yml and pyproject.toml describe the same environment."""

from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import REPO

CONDA_NAMES = {"torch": "pytorch"}


def requirement(spec: str) -> tuple[str, str]:
    name, version = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec).groups()
    return name.lower().replace("_", "-"), version.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(map(requirement, project["dependencies"] + project["optional-dependencies"]["dev"]))
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    declared = dict(map(requirement, [d for d in conda if not d.startswith(("python", "pip"))]))
    declared.update(requirement(p) for p in pip if not p.startswith("-e"))
    expected = {CONDA_NAMES.get(name, name): version for name, version in wanted.items()}
    assert declared == expected
    assert "-e ." in pip, "the environment must install lirlab itself"
