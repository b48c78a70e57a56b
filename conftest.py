"""Project-wide pytest set-up: nbval's sanitize file from any directory; no silent skips in CI."""

import os
from pathlib import Path

import pytest

# The slowest files first (their seconds in a CI run's JUnit report, most first): with `make
# test`'s two processes, a long file started last would keep one process busy while the other
# waits. Each file's tests keep their order (nbval runs a chapter's cells in order).
SLOW_FIRST = (
    "notebooks/06_going_further.ipynb",
    "tests/test_journey.py",
    "tests/test_grade.py",
    "tests/test_browser.py",
    "tests/test_slides.py",
    "tests/test_book.py",
    "tests/test_bundle.py",
    "tests/test_distributed.py",
    "notebooks/07_many_processes.ipynb",
    "notebooks/05_mnist_mlp.ipynb",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FIRST)))


# Output-ignored notebook cells: their numbers, re-run, must still match the stored ones.
pytest_plugins = ["tests.stale_numbers"]

# The translated chapters' code cells and outputs are the English chapters' (mnist_course.
# translation; tests/test_translation.py checks it), so nbval runs the English ones only.
collect_ignore_glob = ["notebooks/zh/*"]


def pytest_configure(config):
    option = getattr(config.option, "nbval_sanitize_with", None)
    if option and not Path(option).is_absolute():
        config.option.nbval_sanitize_with = str(config.rootpath / option)


def in_ci() -> bool:
    """Whether this run is CI's (`CI` set, as CI services and `.ci/run`'s caller do)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _fail_the_skip(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{reason}\n(CI is set: a test that cannot run fails instead of skipping. "
        f"Install what it needs; .ci/run installs Chromium, npm and the fonts.)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failed one (an expected failure, xfail, stays as it is)."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_the_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole test file skipped at import (e.g. `pytest.importorskip`)."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        _fail_the_skip(report)


# Files the tests may leave (build outputs, caches); anything else new in the tree is a bug.
CACHE_DIRS = ("__pycache__", ".ruff_cache", ".pytest_cache")
ALLOWED_LEFTOVERS = ("build/", ".venv/", ".pytest_cache/", ".ruff_cache/", "mnist_course.egg-info/")


def _tree_state(root: Path) -> set[str] | None:
    """Untracked, ignored and modified paths (`git status`), or None outside a git checkout."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "-z", "--ignored", "--untracked-files=all"],
            cwd=root, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    paths = _porcelain_paths(done.stdout)
    return {p for p in paths if not p.startswith(ALLOWED_LEFTOVERS) and not _is_cache(p)}


def _porcelain_paths(output: str) -> set[str]:
    """The paths in `git status --porcelain -z` output, unquoted (names may hold spaces).

    Each entry is "XY path"; a rename or copy (X is R or C) is followed by its old path.
    """
    fields = iter(output.split("\0"))
    paths = set()
    for entry in fields:
        if len(entry) < 4:
            continue
        paths.add(entry[3:])
        if entry[0] in "RC":
            next(fields, None)
    return paths


def _is_cache(path: str) -> bool:
    """Tool caches at any depth (ruff keeps one beside notebooks/ruff.toml, for example)."""
    return any(part in CACHE_DIRS for part in path.split("/"))


def _is_xdist_worker(config) -> bool:
    """Whether this is one of pytest-xdist's worker processes (`make test` starts two)."""
    return hasattr(config, "workerinput")


def pytest_sessionstart(session):
    # Checked once, by the process that starts and ends the whole run: a worker would see the
    # other's files come and go. (Locally, other work in the tree would make it noisy.)
    if in_ci() and not _is_xdist_worker(session.config):
        session.config.stash[_TREE] = _tree_state(session.config.rootpath)


def pytest_sessionfinish(session, exitstatus):
    """In CI, the run must leave the working tree as it found it (checkpoints go to build/)."""
    before = session.config.stash.get(_TREE, None)
    if before is None:
        return
    after = _tree_state(session.config.rootpath) or set()
    if after - before:
        print(f"\nERROR: the tests left files in the working tree: {sorted(after - before)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TREE = pytest.StashKey[set]()
