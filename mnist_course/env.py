"""The environment check of chapter 0: versions, device and data, in plain words.

The supported version ranges are read from the installed package's metadata,
so ``pyproject.toml`` stays the one place where they are written.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mnist_course import data, runtime

DISTRIBUTION = "mnist-course"
CHECKED_PACKAGES = ("torch", "torchvision", "numpy", "matplotlib", "tqdm")


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was found, and whether it is fine."""

    name: str
    found: str
    ok: bool
    advice: str = ""


def supported_ranges() -> dict[str, SpecifierSet]:
    """The version range of Python and of each runtime dependency, from the package metadata."""
    meta = metadata.metadata(DISTRIBUTION)
    ranges = {"python": SpecifierSet(meta.get("Requires-Python") or "")}
    for line in metadata.requires(DISTRIBUTION) or []:
        req = Requirement(line)
        if req.marker is None:  # skip the extras (dev tools)
            ranges[req.name.lower()] = req.specifier
    return ranges


def check_version(name: str, found: str | None, wanted: SpecifierSet) -> Check:
    """Compare one installed version with its supported range."""
    if found is None:
        return Check(name, "not installed", False, f"install it: pip install '{name}{wanted}'")
    # Pre-releases count (NGC containers ship torch 2.5.0a0+...); `in` alone would refuse them.
    ok = wanted.contains(Version(found.split("+")[0]), prereleases=True)
    advice = (
        ""
        if ok
        else f"supported: {name}{wanted}; install the tested versions, in the course's folder: "
        "pip install -c constraints.txt -e '.[lab]'"
    )
    return Check(name, found, ok, advice)


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_environment(root: str | None = None) -> list[Check]:
    """Check Python, the packages, the device and the data; one :class:`Check` each."""
    ranges = supported_ranges()
    checks = [check_version("python", platform.python_version(), ranges["python"])]
    checks += [check_version(n, _installed(n), ranges[n]) for n in CHECKED_PACKAGES]
    try:
        checks.append(Check("device", str(runtime.get_device()), True))
    except (ValueError, RuntimeError) as err:
        checks.append(Check("device", "unusable", False, str(err)))
    try:
        data.ensure_mnist(root, download=False)
        checks.append(Check("MNIST data", f"found (data root from {data.root_source(root)})", True))
    except data.MNISTNotFoundError:
        advice = (
            "not downloaded yet: section 2 of chapter 0 (00_setup.ipynb) downloads it "
            f"(internet needed), or set ${data.ENV_VAR} to a folder holding MNIST/raw/"
        )
        checks.append(Check("MNIST data", "missing", False, advice))
    except data.MNISTCorruptError as err:
        checks.append(Check("MNIST data", "corrupt", False, str(err)))
    except NotADirectoryError:
        advice = f"the data root is a file: set ${data.ENV_VAR} to the folder holding MNIST/raw/"
        checks.append(Check("MNIST data", "not a folder", False, advice))
    except OSError as err:  # unreadable folder, broken mount: a problem to fix, not a traceback
        advice = f"cannot read the data root ({err.strerror}): check ${data.ENV_VAR} and its rights"
        checks.append(Check("MNIST data", "unreadable", False, advice))
    return checks


def format_report(checks: list[Check]) -> str:
    """The checks as a table a learner can read, with what to fix under each problem."""
    lines = []
    for c in checks:
        lines.append(f"{'ok ' if c.ok else 'FIX'}  {c.name:<12} {c.found}")
        if c.advice:
            lines.append(f"     {'':<12} -> {c.advice}")
    return "\n".join(lines)
