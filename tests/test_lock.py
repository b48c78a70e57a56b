"""The lock: one resolution for every platform, with hashes, and every import declared.

`make lock` (uv pip compile --universal --generate-hashes) writes requirements.lock (each
package's version, its environment markers and PyPI's sha256 of every file) and constraints.txt
(the same versions, one `name==version` a line, for `pip install -c`). `make hub-install`
builds the hub's environment from the lock (`--require-hashes`) and the course's own
requirements, so the last tests import every module of the package there.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from common import normalize, pins
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HUB_ASKED = os.environ.get("MNIST_COURSE_TEST_HUB", "").strip() not in ("", "0")
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Locked:
    """One package of the lock."""

    name: str  # normalized (PEP 503)
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]


def read_lock(text: str) -> list[Locked]:
    """The packages of a lock as uv writes it: `name==version ; marker \\`, then its hashes."""
    joined = re.sub(r"\\\n\s*", " ", text)  # one line per package
    found = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, *hashes = line.split(" --hash=")
        requirement = Requirement(spec)
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"requirements.lock: {spec!r} is not an exact pin"
        found.append(
            Locked(normalize(requirement.name), pin.version, requirement.marker,
                   tuple(h.strip() for h in hashes))
        )  # fmt: skip
    return found


def platform(sys_platform: str, machine: str, python: str) -> dict[str, str]:
    """The marker variables of CPython `python` on one platform."""
    os_name = "nt" if sys_platform == "win32" else "posix"
    system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[sys_platform]
    return {"sys_platform": sys_platform, "platform_machine": machine, "platform_system": system,
            "os_name": os_name, "python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "extra": ""}  # fmt: skip


PYTHONS = ("3.11", "3.12", "3.13")
PLATFORMS = {
    "Linux x86-64": ("linux", "x86_64"),
    "Linux arm64": ("linux", "aarch64"),
    "macOS (Apple silicon)": ("darwin", "arm64"),
    "Windows": ("win32", "AMD64"),
}


def installed_on(entry: Locked, where: str, python: str = "3.11") -> bool:
    return entry.marker is None or entry.marker.evaluate(platform(*PLATFORMS[where], python))


@pytest.fixture(scope="module")
def lock() -> dict[str, Locked]:
    entries = read_lock(LOCK.read_text())
    names = [entry.name for entry in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"requirements.lock: two versions of {twice} (constraints.txt has one)"
    return {entry.name: entry for entry in entries}


def test_constraints_txt_has_the_versions_of_the_lock(lock):
    assert pins() == {name: entry.version for name, entry in lock.items()}


def test_every_package_of_the_lock_has_its_sha256(lock):
    for entry in lock.values():
        assert entry.hashes, f"{entry.name}: no hash (run `make lock`)"
        for digest in entry.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{entry.name}: {digest}"


def test_read_lock_reads_markers_and_hashes():
    text = (
        "# a comment\n"
        "appnope==1.0.0 ; sys_platform == 'darwin' \\\n"
        f"    --hash=sha256:{'a' * 64} \\\n"
        f"    --hash=sha256:{'b' * 64}\n"
        "    # via ipykernel\n"
        f"torch==2.14.1 \\\n    --hash=sha256:{'c' * 64}\n"
    )
    appnope, torch = read_lock(text)
    assert (appnope.name, appnope.version, str(appnope.marker)) == (
        "appnope",
        "1.0.0",
        'sys_platform == "darwin"',
    )
    assert appnope.hashes == (f"sha256:{'a' * 64}", f"sha256:{'b' * 64}")
    assert (torch.name, torch.marker, len(torch.hashes)) == ("torch", None, 1)


def test_the_lock_holds_what_only_one_platform_needs(lock):
    """What a `pip freeze` on Linux missed, each with the marker that limits it."""
    only = {
        "appnope": {"macOS (Apple silicon)"},  # ipykernel on macOS
        "colorama": {"Windows"},  # pytest, tqdm on Windows
        "pywinpty": {"Windows"},  # the terminals of jupyter-server on Windows
        "nvidia-cublas": {"Linux x86-64", "Linux arm64"},  # torch's CUDA libraries
        "cuda-toolkit": {"Linux x86-64", "Linux arm64"},
        "triton": {"Linux x86-64", "Linux arm64"},
    }
    for name, platforms in only.items():
        assert name in lock, f"requirements.lock lacks {name}"
        for python in PYTHONS:
            where = {p for p in PLATFORMS if installed_on(lock[name], p, python)}
            assert where == platforms, (name, python, lock[name].marker)
    cuda = [entry for name, entry in lock.items() if name.startswith(("nvidia-", "cuda-"))]
    assert len(cuda) >= 15
    assert not any(
        installed_on(entry, p) for entry in cuda for p in ("macOS (Apple silicon)", "Windows")
    )
    for name in ("torch", "torchvision", "numpy", "jupyterlab", "jupyterhub"):
        assert lock[name].marker is None  # every platform


def direct_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += [line for line in extra if not line.startswith("mnist-course")]
    return [Requirement(line) for line in lines]


def test_every_declared_requirement_is_locked_on_every_platform(lock):
    for requirement in direct_requirements():
        entry = lock.get(normalize(requirement.name))
        assert entry is not None, f"{requirement}: not in requirements.lock (run `make lock`)"
        assert entry.version in requirement.specifier, f"{requirement}: locked {entry.version}"
        for where in PLATFORMS:
            for python in PYTHONS:
                wanted = requirement.marker is None or requirement.marker.evaluate(
                    platform(*PLATFORMS[where], python)
                )
                assert not wanted or installed_on(entry, where, python), (str(requirement), where)


def test_every_lower_bound_is_the_tested_version():
    tested = pins()
    for req in direct_requirements():
        floors = [s.version for s in req.specifier if s.operator == ">="]
        assert floors == [tested[normalize(req.name)]], (
            f"{req}: tested {tested[normalize(req.name)]}"
        )
        assert tested[normalize(req.name)] in req.specifier


def test_the_resolver_is_pinned_in_the_dev_extra(lock):
    """A new minor of uv may write the lock differently."""
    dev = map(Requirement, PYPROJECT["project"]["optional-dependencies"]["dev"])
    (uv,) = [requirement for requirement in dev if requirement.name == "uv"]
    assert lock["uv"].version in uv.specifier
    assert any(spec.operator == "<" for spec in uv.specifier), uv


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lock_resolves_once_for_every_platform_with_hashes(tmp_path):
    """What `make lock` runs (make -n: resolving needs PyPI, which CI may not reach)."""
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "lock", f"VENV={venv}", "-o", f"{venv}/.installed-dev"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    (compile_,) = [line for line in lines if " pip compile " in line]
    assert compile_.startswith(f"{venv}/bin/uv pip compile pyproject.toml --extra dev --extra hub ")
    for option in ("--universal", "--generate-hashes", "-c constraints.txt",
                   "--output-file requirements.lock.new", "--python-version 3.11"):  # fmt: skip
        assert option in compile_, option
    assert lines[-2:] == ["mv requirements.lock.new requirements.lock",
                          "mv constraints.txt.new constraints.txt"]  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_hub_install_takes_every_package_from_the_lock_with_its_hash(tmp_path):
    """What `make hub-install` runs (make -n): the course as a wheel with its own hash (built
    from a copy of the package, outside the checkout), the rest from requirements.lock,
    hash-checked; the old wheel out first (pip keeps a wheel of the same version)."""
    hub = tmp_path / "hub"
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "hub-install", f"HUB_DIR={hub}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    pip = f"{hub}/venv/bin/python -m pip"
    steps = [line.removeprefix("umask 022; ") for line in done.stdout.splitlines()]
    wheel = steps.index(
        f"{pip} wheel --quiet --no-deps --wheel-dir {hub}/wheels {hub}/wheels/source"
    )
    uninstall = steps.index(f"    || {pip} uninstall --quiet --yes mnist-course")
    install = steps.index(
        f"{pip} install --quiet --require-hashes -c requirements.lock -r {hub}/wheels/requirements.txt"
    )
    copy = steps.index(f"cp -R pyproject.toml README.md mnist_course {hub}/wheels/source/")
    assert copy < wheel < uninstall < install
    assert f"mnist-course[hub] @ file://{hub}/wheels/$wheel --hash=sha256:" in done.stdout


def imported_modules(files: list[Path]) -> set[str]:
    """The top-level modules that `files` import (at any depth, in any branch)."""
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


PACKAGE_FILES = sorted((ROOT / "mnist_course").glob("*.py"))
BENCHMARK_FILES = sorted((ROOT / "benchmarks").glob("*.py"))


def test_every_module_the_package_imports_is_declared():
    from importlib.metadata import packages_distributions

    project = PYPROJECT["project"]
    declared = {
        normalize(Requirement(r).name)
        for r in project["dependencies"] + project["optional-dependencies"]["lab"]
    } - {"mnist-course"}
    providers = packages_distributions()
    for module in sorted(imported_modules(PACKAGE_FILES) - {"mnist_course"}):
        dists = {normalize(d) for d in providers.get(module, [])}
        assert dists, f"{module}: imported by mnist_course but not installed"
        assert dists & declared, f"{module} (from {dists}) is imported but not declared"


# --- The hub's environment: the lock and the course's own requirements, nothing else -----------

# Run by the hub's python: import every module of the installed package (not this checkout),
# and look up every module the package and the benchmarks import anywhere.
IMPORT_ALL = """
import importlib, importlib.metadata, importlib.util, json, pkgutil, sys
import mnist_course
modules, failed = [], {}
for info in pkgutil.walk_packages(mnist_course.__path__, "mnist_course."):
    modules.append(info.name)
    if info.name == "mnist_course.__main__":  # runs the command line when imported
        continue
    try:
        importlib.import_module(info.name)
    except Exception as error:
        failed[info.name] = f"{type(error).__name__}: {error}"
missing = [name for name in json.loads(sys.argv[1]) if importlib.util.find_spec(name) is None]
versions = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
print(json.dumps({"file": mnist_course.__file__, "modules": modules, "failed": failed,
                  "missing": missing, "versions": versions}))
"""

hub_asked = pytest.mark.skipif(
    not (HUB_ASKED or AS_ROOT),
    reason="imports the package in the hub's environment, which `make hub-install` builds "
    "(minutes, about 6 GB): runs as root or with MNIST_COURSE_TEST_HUB=1 (as .ci/run does)",
)
hub_tools = pytest.mark.skipif(
    not Path("/usr/bin/python3").exists() or shutil.which("npm") is None,
    reason="the hub's environment needs /usr/bin/python3 and npm (Debian's python3, npm)",
)


@pytest.fixture(scope="module")
def hub_report(hub_dir, tmp_path_factory) -> dict:
    """What the hub's python finds when it imports the course (IMPORT_ALL)."""
    python = hub_dir / "venv" / "bin" / "python"
    wanted = imported_modules(PACKAGE_FILES + BENCHMARK_FILES)
    home = tmp_path_factory.mktemp("hub-home")
    done = subprocess.run(
        [python, "-I", "-c", IMPORT_ALL, json.dumps(sorted(wanted))],
        cwd=home, capture_output=True, text=True, timeout=600,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "MNIST_COURSE_DEVICE": "cpu"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    checked = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    return {**json.loads(done.stdout.splitlines()[-1]), "venv": python.parents[1],
            "pip check": (checked.returncode, checked.stdout + checked.stderr)}  # fmt: skip


@hub_asked
@hub_tools
def test_the_hub_environment_imports_every_module_of_the_course(hub_report):
    """The installed package (not this checkout): each module imports, and every module that
    the package and the scripts in benchmarks/ import anywhere is there."""
    assert Path(hub_report["file"]).is_relative_to(hub_report["venv"])
    assert sorted(hub_report["modules"]) == sorted(
        f"mnist_course.{path.stem}" for path in PACKAGE_FILES if path.stem != "__init__"
    )
    assert hub_report["failed"] == {}
    assert hub_report["missing"] == []


@hub_asked
@hub_tools
def test_the_hub_environment_is_the_lock(hub_report, lock):
    """Every package there is at the version of the lock, and pip finds each one's
    requirements satisfied (`pip check`)."""
    installed = {normalize(name): v for name, v in hub_report["versions"].items()}
    assert installed.pop("mnist-course") == PYPROJECT["project"]["version"]
    installed.pop("pip")  # the hub's own tool, upgraded by `make hub-install`
    assert sorted(set(installed) - set(lock)) == []
    differ = {
        name: (v, lock[name].version) for name, v in installed.items() if v != lock[name].version
    }
    assert differ == {}
    assert hub_report["pip check"] == (0, "No broken requirements found.\n")
