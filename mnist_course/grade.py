"""Grade learner notebooks: ``mnist-course grade NOTEBOOK_OR_FOLDER...`` (issue 9).

Each notebook runs top to bottom in a fresh kernel, in a temporary copy of its
folder (so files it writes never land beside the learner's), with errors
allowed: a cell that raises does not stop the cells after it, so every
exercise gets a verdict. The notebook file itself is only read.

How exercises are found (the conventions of :mod:`mnist_course.exercises`):

- the exercises a chapter must have come from the package: the file name's
  prefix ``NN_`` names the module ``mnist_course.chapterNN`` and its
  ``EXERCISES`` tuple, so a deleted checker cell shows as an error, not as a
  silently missing column;
- a checker cell carries the tag ``checker`` and the metadata
  ``"exercise": "<name>"``; its output starts "Correct (<name>)" or
  "Not yet (<name>)" (:class:`mnist_course.exercises.Feedback`);
- a checker cell holds one call, ``chapterNN.check_<name>(answer, ...)``
  (a toy notebook's may drop the module), on plain names: a checker cell
  changed to anything else is an error, whatever it printed, so printing
  "Correct (softmax)" by hand does not pass. (The learner's code runs in the
  same kernel, so a learner who sets out to patch the package can still fool
  the grader: it gives feedback, it is not an exam.)
- an answer cell (tag ``answer``) that raised ``NotImplementedError`` (the
  learner copy's stub) makes its exercise "not yet" even when the checker
  cell could not run;
- the quiz cell (tag ``quiz``) prints "Quiz (chapter N): k of n right"; it is
  reported as ``k/n`` but does not count for the exit code (a quiz is
  practice with instant explanations, not an exercise to hand in).

The exit code is 0 only when every exercise of every notebook is correct
(1 otherwise, and when no notebook has an exercise; 2 when a path is not a notebook or a folder holding some).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

CORRECT, NOT_YET, ERROR = "correct", "not yet", "error"
ANSWER_TAG, CHECKER_TAG, QUIZ_TAG = "answer", "checker", "quiz"
SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git"}
_QUIZ = re.compile(r"^Quiz \(([^)]*)\): (\d+) of (\d+) right", re.MULTILINE)


@dataclass
class Result:
    """The verdict on one exercise: ``status`` (correct / not yet / error) and a one-line message."""

    status: str
    message: str = ""


@dataclass
class Graded:
    """One notebook's grades: exercise name -> :class:`Result` (in chapter order) and the quiz."""

    notebook: str
    chapter: str | None
    exercises: dict[str, Result] = field(default_factory=dict)
    quiz: str | None = None  # "k/n", "error", or None when the notebook has no quiz cell
    seconds: float = 0.0
    problem: str | None = None  # why the notebook could not be graded at all

    @property
    def all_correct(self) -> bool:
        return self.problem is None and all(r.status == CORRECT for r in self.exercises.values())


def chapter_of(path: Path) -> str | None:
    """``05_mnist_mlp.ipynb`` -> ``"05"``; None when the name has no ``NN_`` prefix."""
    match = re.match(r"(\d\d)_", path.name)
    return match[1] if match else None


def expected_exercises(chapter: str | None) -> tuple[str, ...]:
    """The exercise names ``mnist_course.chapterNN.EXERCISES``; empty when there is no such module."""
    if chapter is None:
        return ()
    name = f"mnist_course.chapter{chapter}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:  # the module exists but is broken: say so
            raise
        return ()
    return tuple(getattr(module, "EXERCISES", ()))


def _chapter_module(chapter: str | None) -> str | None:
    """``"chapter01"`` when ``mnist_course.chapter01`` exists (its checkers are called through it)."""
    if chapter is None or importlib.util.find_spec(f"mnist_course.chapter{chapter}") is None:
        return None
    return f"chapter{chapter}"


def find_notebooks(paths: list[Path]) -> list[tuple[Path, str]]:
    """(notebook, label) for each notebook named or found under a folder (checkpoints skipped).

    A folder is walked; its notebooks are labelled relative to it (``alice/01_x.ipynb``).
    Raises ValueError for a path that is neither a notebook nor a folder holding one.
    """
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*.ipynb")
                if p.is_file() and not SKIP_DIRS & set(p.relative_to(path).parts)
            )
            if not inside:
                raise ValueError(f"{path} holds no notebook (.ipynb)")
            found += [(p, p.relative_to(path).as_posix()) for p in inside]
        elif path.suffix == ".ipynb" and path.is_file():
            found.append((path, path.as_posix()))
        else:
            raise ValueError(f"{path} is not a notebook (.ipynb) or a folder")
    seen: set[Path] = set()
    unique = []
    for path, label in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((path, label))
    return unique


def _tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _error(cell: Any) -> str | None:
    """``"NameError: name 'f' is not defined"`` when the cell raised, else None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return _first_line(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
    return None


def _texts(cell: Any) -> list[str]:
    """What the cell showed as text: printed lines and plain-text results, in order."""
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            texts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            texts.append(output.get("data", {}).get("text/plain", ""))
    return texts


def _verdict(name: str, cell: Any) -> Result | None:
    """The checker cell's "Correct (name): ..." / "Not yet (name): ..." line as a Result."""
    for text in _texts(cell):
        for line in text.splitlines():
            for word, status in (("Correct", CORRECT), ("Not yet", NOT_YET)):
                if line.startswith(f"{word} ({name}):"):
                    return Result(status, line[len(f"{word} ({name}):") :].strip())
                if line.startswith(f"{word} ("):
                    return Result(ERROR, f"the checker cell reports another exercise: {line}")
    return None


def _is_checker_call(source: str, name: str, module: str | None) -> bool:
    """Whether ``source`` is only ``[module.]check_<name>(a, b, ...)`` (comments allowed)."""
    lines = [line.split("#")[0].strip() for line in source.splitlines()]
    call = " ".join(line for line in lines if line)
    prefix = re.escape(f"{module}.") if module else r"(?:[A-Za-z_]\w*\.)?"
    names = r"(?:[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*,?)?"
    return re.fullmatch(rf"{prefix}check_{re.escape(name)}\(\s*{names}\s*\)", call) is not None


def _grade_exercise(name: str, checker: Any | None, answers: list[Any], ran: set[int],
                    cells: list[Any], timeout: float, timed_out: bool,
                    module: str | None = None) -> Result:  # fmt: skip
    if checker is None:
        return Result(ERROR, "no checker cell for this exercise (was it deleted?)")
    if not _is_checker_call(checker.source, name, module):
        call = f"{module + '.' if module else ''}check_{name}(...)"
        return Result(
            ERROR,
            f"the checker cell was changed: it should hold only the call {call} on your "
            "answer; copy it back from the chapter",
        )
    index = cells.index(checker)
    if index not in ran:
        if timed_out:
            return Result(ERROR, f"timed out after {timeout:g} s")
        return Result(ERROR, "the checker cell did not run (the kernel died)")
    verdict = _verdict(name, checker)
    if verdict is not None:
        return verdict
    for answer in answers:
        error = _error(answer)
        if error is not None and error.startswith("NotImplementedError"):
            return Result(NOT_YET, "not written yet (the answer cell raises NotImplementedError)")
        if error is not None:
            return Result(ERROR, f"in the answer cell: {error}")
    error = _error(checker)
    if error is not None:
        return Result(ERROR, error)
    shown = next((_first_line(t) for t in _texts(checker) if _first_line(t)), "")
    return Result(ERROR, f"no verdict from the checker cell (it showed {shown!r})")


def _answers_for(name: str, cells: list[Any], checker: Any | None) -> list[Any]:
    """The answer cells of exercise ``name``: by their ``exercise`` metadata, else those just above."""
    tagged = [c for c in cells if ANSWER_TAG in _tags(c)]
    named = [c for c in tagged if c.metadata.get("exercise") == name]
    if named or checker is None:
        return named
    above = []
    for cell in reversed(cells[: cells.index(checker)]):
        if CHECKER_TAG in _tags(cell):
            break
        if ANSWER_TAG in _tags(cell):
            above.append(cell)
    return above


def _run(nb: Any, workdir: Path, timeout: float) -> tuple[set[int], bool, str | None]:
    """Execute ``nb`` in place (errors allowed) within ``timeout`` seconds in all.

    Returns the indices of the cells that finished, whether time ran out, and
    why execution stopped early otherwise (a dead kernel), or None.
    """
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    deadline = time.monotonic() + timeout
    finished: set[int] = set()

    def remaining(cell: Any = None) -> int:
        return max(1, math.ceil(deadline - time.monotonic()))

    client = NotebookClient(
        nb,
        kernel_name="python3",
        allow_errors=True,
        timeout=math.ceil(timeout),
        timeout_func=remaining,
        startup_timeout=120,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(workdir)}},
    )
    # nbclient has no "cell finished" hook that sees the index: record it on the way out.
    original = client.async_execute_cell

    async def execute_cell(cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= deadline:
            raise CellTimeoutError("the notebook's time is up")
        result = await original(cell, cell_index, *args, **kwargs)
        finished.add(cell_index)
        return result

    client.async_execute_cell = execute_cell  # type: ignore[method-assign]
    try:
        # The kernel's own log (a warning per start about its TCP transport) is not for teachers.
        client.execute(stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        return finished, True, None
    except Exception as err:  # nbclient may mask a dead kernel with an error of its cleanup
        if isinstance(err, DeadKernelError) or isinstance(err.__context__, DeadKernelError):
            return finished, False, "the kernel died"
        return finished, False, _first_line(f"{type(err).__name__}: {err}") or "an error"
    finally:
        if client.km is not None and client.km.has_kernel:  # never leave a kernel behind
            run_sync(client.km.shutdown_kernel)(now=True)
    return finished, False, None


def _copy_folder(source: Path, target: Path) -> None:
    """Copy the notebook's folder (not its notebooks or checkpoints) to be the kernel's cwd."""
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.ipynb"),
        symlinks=True,
    )


def grade_notebook(path: Path, label: str | None = None, timeout: float = 300) -> Graded:
    """Run one notebook (a copy, in a temporary folder) and grade each of its exercises."""
    label = label or path.as_posix()
    chapter = chapter_of(path)
    names = list(expected_exercises(chapter))
    module = _chapter_module(chapter)
    graded = Graded(label, chapter)
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except Exception as err:  # not JSON, not a notebook: still a row in the table
        graded.problem = _first_line(f"unreadable notebook: {type(err).__name__}: {err}")
        for name in names:
            graded.exercises[name] = Result(ERROR, graded.problem)
        return graded
    cells = list(nb.cells)
    checkers = {}
    for cell in cells:
        if cell.cell_type == "code" and CHECKER_TAG in _tags(cell):
            name = str(cell.metadata.get("exercise", ""))
            if not name:
                name = f"cell {cells.index(cell)} (no exercise name)"
            checkers.setdefault(name, cell)
            if name not in names:
                names.append(name)
    quiz_cell = next((c for c in cells if c.cell_type == "code" and QUIZ_TAG in _tags(c)), None)
    if not names and quiz_cell is None:
        return graded  # nothing to grade (chapter 0): no need to run it
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mnist-course-grade-") as tmp:
        workdir = Path(tmp) / "work"
        _copy_folder(path.parent, workdir)
        ran, timed_out, stopped = _run(nb, workdir, timeout)
    graded.seconds = round(time.monotonic() - start, 1)
    for name in names:
        checker = checkers.get(name)
        answers = _answers_for(name, cells, checker)
        result = _grade_exercise(name, checker, answers, ran, cells, timeout, timed_out, module)
        if stopped and result.message.startswith("the checker cell did not run"):
            result = Result(ERROR, f"the checker cell did not run ({stopped})")
        graded.exercises[name] = result
    if quiz_cell is not None:
        graded.quiz = _quiz(quiz_cell, cells.index(quiz_cell) in ran)
    return graded


def _quiz(cell: Any, ran: bool) -> str:
    for text in _texts(cell):
        match = _QUIZ.search(text)
        if match:
            return f"{match[2]}/{match[3]}"
    return ERROR if ran or _error(cell) else "not run"


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def format_table(results: list[Graded]) -> str:
    """One table per chapter: a row per notebook, a column per exercise (+ quiz); errors below."""
    blocks = []
    notes: list[str] = []
    groups: dict[str, list[Graded]] = {}
    for graded in results:
        key = f"chapter {graded.chapter}" if graded.chapter else "other notebooks"
        groups.setdefault(key, []).append(graded)
    for title, group in groups.items():
        columns: list[str] = []
        for graded in group:
            columns += [n for n in graded.exercises if n not in columns]
        has_quiz = any(g.quiz is not None for g in group)
        header = ["notebook", *columns] + (["quiz"] if has_quiz else [])
        rows = []
        for graded in group:
            row = [graded.notebook]
            for name in columns:
                result = graded.exercises.get(name)
                if result is None:
                    row.append("-")
                elif result.status == ERROR:
                    notes.append(f"[{len(notes) + 1}] {graded.notebook}, {name}: {result.message}")
                    row.append(f"error [{len(notes)}]")
                else:
                    row.append(result.status)
            if has_quiz:
                row.append(graded.quiz or "-")
            if not columns:
                row.append(f"error: {graded.problem}" if graded.problem else "(no exercises)")
            rows.append(row)
        if not columns:
            header.append("")
        blocks.append("\n".join([title, *_aligned([header, *rows])]))
    total = sum(len(g.exercises) for g in results)
    right = sum(r.status == CORRECT for g in results for r in g.exercises.values())
    summary = f"{right} of {total} exercises correct in {len(results)} notebooks"
    return "\n\n".join([*blocks, *(["\n".join(notes)] if notes else []), summary])


def to_json(results: list[Graded], timeout: float) -> dict[str, Any]:
    """The grades as a JSON-ready dict (the same content as :func:`format_table`)."""
    return {
        "timeout_s": timeout,
        "all_correct": all(g.all_correct for g in results),
        "notebooks": [
            {
                "notebook": g.notebook,
                "chapter": g.chapter,
                "exercises": {n: asdict(r) for n, r in g.exercises.items()},
                "quiz": g.quiz,
                "seconds": g.seconds,
                "problem": g.problem,
            }
            for g in results
        ],
    }


def main(paths: list[Path], json_out: Path | None = None, timeout: float = 300) -> int:
    """Grade the notebooks at ``paths`` (files or folders); print the table; 0 iff all correct."""
    try:
        notebooks = find_notebooks([Path(p) for p in paths])
    except ValueError as err:
        print(f"mnist-course grade: error: {err}", file=sys.stderr)
        return 2
    if not timeout > 0:
        print(
            f"mnist-course grade: error: timeout must be positive, got {timeout}", file=sys.stderr
        )
        return 2
    results = []
    for path, label in notebooks:
        print(f"grading {label} ...", file=sys.stderr, flush=True)
        results.append(grade_notebook(path, label, timeout))
    print(format_table(results))
    if not any(g.exercises or g.problem for g in results):
        print("mnist-course grade: no exercises found in these notebooks", file=sys.stderr)
    if json_out is not None:
        json_out.write_text(json.dumps(to_json(results, timeout), indent=2) + "\n", "utf-8")
    graded = [g for g in results if g.exercises or g.problem]
    return 0 if graded and all(g.all_correct for g in graded) else 1
