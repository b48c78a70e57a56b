"""The project's set-up files agree with each other, and `make` stops early and clearly."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from common import normalize, pins
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIRES_PYTHON = SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_environment_yml_installs_the_lab_set_with_a_supported_python():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert spec["name"] == "mnist-course"
    deps = spec["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert python.split("=", 1)[1] + ".0" in REQUIRES_PYTHON
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip_section == ["-c constraints.txt", "-e .[lab]"]


def test_the_tools_that_gate_the_tests_are_pinned():
    tested = pins()
    for tool in ("ruff", "playwright", "pytest", "nbval", "torch", "torchvision", "numpy"):
        assert tool in tested
    assert "mnist-course" not in tested  # the project itself is never pinned


def test_extras_lab_for_learners_and_dev_on_top():
    extras = PYPROJECT["project"]["optional-dependencies"]
    lab = {normalize(Requirement(r).name) for r in extras["lab"]}
    assert {"jupyterlab", "ipykernel", "jupyterlab-rise", "ipywidgets", "ipycanvas"} <= lab
    assert {"nbformat", "nbclient", "nbconvert"} <= lab  # the teacher's tools
    dev = {normalize(Requirement(r).name) for r in extras["dev"]}
    assert "mnist-course" in dev and "mnist-course[lab]" in extras["dev"]
    assert {"nbval", "pytest", "ruff", "playwright", "pre-commit", "pyyaml"} <= dev
    assert not dev & lab - {"mnist-course"}  # each tool in one place
    assert not {"pytest", "ruff", "playwright", "pre-commit", "nbval"} & lab


def test_build_backend_reads_the_spdx_license():
    assert PYPROJECT["project"]["license"] == "MIT"
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    assert setuptools.name == "setuptools" and "76.9" not in setuptools.specifier
    assert "77.0" in setuptools.specifier  # the first setuptools that reads `license = "MIT"`


def test_makefile_python_versions_match_requires_python():
    makefile = (ROOT / "Makefile").read_text()
    supported = re.search(r"^SUPPORTED_PYTHONS := (.+)$", makefile, re.M).group(1).split()
    assert all(f"{v}.0" in REQUIRES_PYTHON for v in supported)
    minor = [int(v.split(".")[1]) for v in supported]
    for outside in (f"3.{min(minor) - 1}.9", f"3.{max(minor) + 1}.0"):
        assert outside not in REQUIRES_PYTHON
    assert "-c $(CONSTRAINTS)" in makefile and "CONSTRAINTS := constraints.txt" in makefile


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert ci.strip().splitlines()[-1] == "make test"


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_lab_stops_on_an_unsupported_python(tmp_path):
    fake = tmp_path / "python3.9"  # a stand-in for macOS's Python 3.9
    fake.write_text("#!/bin/sh\necho 3.9\n")
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "-s", "lab", f"PYTHON={fake}", f"VENV={venv}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is Python 3.9, but the course needs Python 3.11 to 3.13" in result.stderr
    assert "make lab PYTHON=python3.11" in result.stderr
    assert not venv.exists()  # nothing half-made is left for the next run to reuse


@needs_make
def test_a_half_made_venv_is_rebuilt_and_a_good_one_kept(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)  # what an interrupted `python -m venv` can leave
    marker = venv / ".venv-complete"
    command = [
        "make",
        "-s",
        str(marker),
        f"VENV={venv}",
        f"PYTHON={sys.executable}",
        "UPGRADE_PIP=0",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "half-made" in result.stdout and marker.is_file()
    assert subprocess.run([venv / "bin" / "python", "-c", "import pip"]).returncode == 0
    marker.unlink()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "keeping it" in result.stdout


SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("chromium is missing")

@pytest.mark.xfail(strict=True, reason="known")
def test_known_failure():
    assert False
"""


def copy_our_conftest(folder: Path) -> None:
    """The project's conftest.py and the plugin it loads (tests/stale_numbers.py)."""
    shutil.copy(ROOT / "conftest.py", folder / "conftest.py")
    (folder / "tests").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "stale_numbers.py", folder / "tests" / "stale_numbers.py")


def run_pytest_with_our_conftest(folder: Path, ci: str) -> subprocess.CompletedProcess[str]:
    """pytest on ``folder`` (a copy of the project's conftest.py inside), with CI set to ``ci``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--rootdir", str(folder), str(folder)],
        capture_output=True, text=True, env={**os.environ, "CI": ci}, cwd=folder,
    )  # fmt: skip


@pytest.mark.parametrize(
    "ci, outcome", [("true", "1 failed, 1 xfailed"), ("", "1 skipped, 1 xfailed")]
)
def test_in_ci_a_skip_is_a_failure(tmp_path, ci, outcome):
    copy_our_conftest(tmp_path)
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    result = run_pytest_with_our_conftest(tmp_path, ci)
    assert outcome in result.stdout, result.stdout
    if ci:
        assert "CI is set" in result.stdout


LEAVING_FILES = """
from pathlib import Path

def test_writes_into_build():
    Path("build").mkdir(exist_ok=True)
    Path("build/launcher manifest.xml").write_text("allowed")

def test_leaves_a_file():
    Path("left over.txt").write_text("not allowed")
"""


def test_in_ci_files_left_in_the_tree_fail_the_run(tmp_path):
    """Names with spaces too: `git status` quotes them unless asked for -z (a CI failure)."""
    copy_our_conftest(tmp_path)
    (tmp_path / "test_leaving.py").write_text(LEAVING_FILES)
    (tmp_path / ".gitignore").write_text("build/\n__pycache__/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=tmp_path, check=True)
    result = run_pytest_with_our_conftest(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "left files in the working tree: ['left over.txt']" in result.stdout, result.stdout


def test_pre_commit_runs_the_ruff_that_make_test_runs():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    wanted = f"ruff=={pins()['ruff']}"
    assert hooks and all(h["additional_dependencies"] == [wanted] for h in hooks), wanted


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("torch", ["cpu", ""])
def test_torch_cpu_installs_the_pinned_torch_from_the_cpu_index_first(tmp_path, torch):
    """What `make lab TORCH=cpu` runs (make -n: the index itself cannot be reached from CI)."""
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-n", "-B", f"{venv}/.installed", f"VENV={venv}", f"TORCH={torch}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    installs = [line for line in done.stdout.splitlines() if " pip install --quiet " in line]
    tested = pins()
    cpu = (
        f"{venv}/bin/python -m pip install --quiet --index-url https://download.pytorch.org/whl/cpu "
        f'"torch=={tested["torch"]}" "torchvision=={tested["torchvision"]}"'
    )
    course = f'{venv}/bin/python -m pip install --quiet -c constraints.txt -e ".[lab]"'
    assert installs == ([cpu, course] if torch else [course])


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_an_unknown_torch_choice_stops_make_with_the_choices():
    done = subprocess.run(
        ["make", "-n", "lab", "TORCH=cuda"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode != 0 and "the only choice is TORCH=cpu" in done.stderr


SECRET_NAMES = {"password", "token", "tokens", "service_token"}


def secrets_in_asserts(source: str) -> list[str]:
    """`line N: name` for each secret-named variable or attribute inside an assert (its test
    or its message): on a failure pytest prints the arguments of each call there."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert):
            for part in ast.walk(node):
                named = getattr(part, "id", None) or getattr(part, "attr", None)
                if named in SECRET_NAMES:
                    found.append(f"line {node.lineno}: {named}")
    return found


def test_the_hub_test_keeps_tokens_and_passwords_out_of_failure_output():
    """tests/test_hub.py reads a status first and asserts on that, never on a call given a
    token or a password."""
    assert secrets_in_asserts((ROOT / "tests" / "test_hub.py").read_text(encoding="utf-8")) == []


def test_a_password_in_an_assert_is_found():
    source = (
        "def test():\n"
        "    ok = log_in(base, name, password)\n"
        "    assert ok == 302\n"
        "    assert log_in(base, name, password) == 302\n"
        "    assert hub.call('GET', path, token=hub.tokens[a])[0] == 403, 'a token'\n"
    )
    assert secrets_in_asserts(source) == ["line 4: password", "line 5: tokens"]
