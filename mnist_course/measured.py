"""Results the benchmarks measured, stored with the package (chapter 5 plots them).

The CSV files live in ``mnist_course/results/`` and install with the package, so a
chapter that reads them runs wherever it is copied: a learner's folder, a hub
student's home, the grader's temporary folder. Each is written by a script in
``benchmarks/`` (named in the file's row of :data:`FILES`).
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

FILES = {
    "lecture_100_epochs.csv": "benchmarks/long_run.py",
    "one_cycle_momentum.csv": "benchmarks/one_cycle_momentum.py",
    "chapter06_ladder.csv": "benchmarks/chapter06_seeds.py",
    "chapter06_architecture.csv": "benchmarks/chapter06_seeds.py",
    "chapter06_batchnorm.csv": "benchmarks/chapter06_seeds.py",
    "processes.csv": "benchmarks/time_to_accuracy.py",  # --mode processes --repeats 3 --write
    "wait_policy.csv": "benchmarks/wait_policy.py",
}


def write_rows(rows: list[dict], path: Path, fields: list[str] | None = None) -> None:
    """Store ``rows`` as CSV at ``path`` (the benchmarks' writer), whole or not at all.

    The columns are ``fields`` (default: the first row's keys). The file is written beside
    ``path`` and renamed over it, so a run killed midway leaves the last complete file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields or list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def rows(name: str) -> list[dict[str, str]]:
    """The rows of the stored result ``name`` (e.g. ``"lecture_100_epochs.csv"``), as strings."""
    if name not in FILES:
        known = ", ".join(sorted(FILES))
        raise ValueError(f"no stored result named {name!r}; the stored results are: {known}")
    text = resources.files("mnist_course").joinpath("results", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))
