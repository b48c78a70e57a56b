"""The project's set-up files agree with each other."""

from __future__ import annotations

from pathlib import Path

import tomllib
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_this_package_with_a_supported_python():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert spec["name"] == "mnist-course"
    deps = spec["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    supported = SpecifierSet(pyproject["project"]["requires-python"])
    assert python.split("=", 1)[1] + ".0" in supported
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip_section == ["-e .[dev]"]


def test_pyproject_admits_the_torch_pair_installable_here():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {
        d.split(">")[0].split("<")[0].split("=")[0]: d for d in pyproject["project"]["dependencies"]
    }
    for name, version in [("torch", "2.14.1"), ("torchvision", "0.29.1")]:
        assert version in SpecifierSet(deps[name][len(name) :])
    dev = " ".join(pyproject["project"]["optional-dependencies"]["dev"])
    for tool in ("jupyterlab", "nbval", "pytest", "ruff"):
        assert tool in dev


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert ci.strip().splitlines()[-1] == "make test"
