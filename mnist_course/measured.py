"""Results the benchmarks measured, stored with the package (chapter 5 plots them).

The CSV files live in ``mnist_course/results/`` and install with the package, so a
chapter that reads them runs wherever it is copied: a learner's folder, a hub
student's home, the grader's temporary folder. Each is written by a script in
``benchmarks/`` (named in the file's row of :data:`FILES`).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

FILES = {
    "lecture_100_epochs.csv": "benchmarks/long_run.py",
    "one_cycle_momentum.csv": "benchmarks/one_cycle_momentum.py",
    "chapter06_ladder.csv": "benchmarks/chapter06_seeds.py",
    "chapter06_architecture.csv": "benchmarks/chapter06_seeds.py",
    "chapter06_batchnorm.csv": "benchmarks/chapter06_seeds.py",
    "memory_format.csv": "benchmarks/memory_format.py",
    "processes.csv": "benchmarks/time_to_accuracy.py",  # --mode processes --repeats 3 --write
    "time_to_accuracy.csv": "benchmarks/time_to_accuracy.py",  # in-process and end-to-end
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


# benchmarks/time_to_accuracy.py's pipelines, by mode: (the notes', the course's MLP)
PIPELINES = {
    "in-process": ("notes MLP", "course MLP"),
    "end-to-end": ("notes script", "mnist-course train"),
}


def speed_ups(runs: list[dict], slow: str, fast: str) -> list[float] | None:
    """Repeat by repeat, how many times sooner ``fast`` reached its target than ``slow``
    (rows of time_to_accuracy.csv); None when a run did not reach its target."""

    def of(name: str) -> dict[int, dict]:
        return {int(r["repeat"]): r for r in runs if r["pipeline"] == name}

    slow_runs, fast_runs = of(slow), of(fast)
    repeats = sorted(slow_runs.keys() & fast_runs.keys())
    if any(str(run[r]["reached"]) != "True" for r in repeats for run in (slow_runs, fast_runs)):
        return None
    return [float(slow_runs[r]["seconds"]) / float(fast_runs[r]["seconds"]) for r in repeats]


@dataclass(frozen=True)
class TimeToAccuracy:
    """The stored time to 98% of the notes' MLP and the course's (medians over the repeats)."""

    notes_seconds: float
    notes_epochs: int
    ours_seconds: float
    ours_epochs: int
    speed_ups: tuple[float, ...]  # repeat by repeat

    @property
    def speed_up(self) -> float:
        return statistics.median(self.speed_ups)


def time_to_accuracy(mode: str) -> TimeToAccuracy:
    """What ``time_to_accuracy.csv`` holds for ``mode`` ("in-process" or "end-to-end")."""
    runs = [r for r in rows("time_to_accuracy.csv") if r["mode"] == mode]
    notes, ours = PIPELINES[mode]

    def median_of(name: str, column: str) -> float:
        return statistics.median(float(r[column]) for r in runs if r["pipeline"] == name)

    ratios = speed_ups(runs, notes, ours)
    if not ratios:
        raise ValueError(f"time_to_accuracy.csv has no {mode} runs that all reached 98%")
    return TimeToAccuracy(
        median_of(notes, "seconds"), int(median_of(notes, "epochs")),
        median_of(ours, "seconds"), int(median_of(ours, "epochs")), tuple(ratios),
    )  # fmt: skip
