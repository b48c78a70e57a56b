"""The benchmarks' stored results ship with the package (chapter 5 reads them anywhere)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mnist_course import measured

ROOT = Path(__file__).resolve().parents[1]


def test_every_stored_result_is_read_from_the_package():
    stored = sorted(p.name for p in (ROOT / "mnist_course" / "results").glob("*.csv"))
    assert stored == sorted(measured.FILES)
    long_run = measured.rows("lecture_100_epochs.csv")
    assert [int(r["epoch"]) for r in long_run] == list(range(1, 101))
    cycle = measured.rows("one_cycle_momentum.csv")
    assert {r["variant"] for r in cycle} == {"cycled", "constant"}
    for name, script in measured.FILES.items():  # each names the script that writes it
        assert name in (ROOT / script).read_text(encoding="utf-8")


def test_an_unknown_name_says_which_results_exist():
    with pytest.raises(
        ValueError, match="lecture_100_epochs.csv, memory_format.csv, one_cycle_momentum.csv"
    ):
        measured.rows("lecture.csv")


def test_a_built_wheel_carries_the_results(tmp_path):
    """A non-editable install (the hub's, a learner's pip install) has the CSV files too.

    Built from a copy of the repository's own files, as a fresh clone has them (a checkout's
    leftover build/ or *.egg-info could otherwise supply the files)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    source = tmp_path / "source"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path / "wheel"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheel").glob("mnist_course-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in measured.FILES:
        assert f"mnist_course/results/{name}" in names


def test_write_rows_stores_whole_files_that_rows_reads_back(tmp_path):
    path = tmp_path / "results" / "runs.csv"
    measured.write_rows([{"seed": 0, "acc": "0.98"}, {"seed": 1, "acc": "0.97"}], path)
    assert path.read_text() == "seed,acc\n0,0.98\n1,0.97\n"
    measured.write_rows([{"acc": "0.5", "seed": 2}], path, ["seed", "acc"])  # replaced whole
    assert path.read_text() == "seed,acc\n2,0.5\n"
    assert [p.name for p in path.parent.iterdir()] == ["runs.csv"]  # no partial file left
