"""Grade learner notebooks: ``mnist-course grade NOTEBOOK_OR_FOLDER...``.

Each notebook runs top to bottom in a fresh kernel (:mod:`mnist_course.sandbox`:
a worker process with a temporary home and working folder, memory and CPU
limits, and as root another OS account), with errors allowed: a cell that
raises does not stop the cells after it, so every exercise gets a verdict. The
notebook file itself is only read.

How exercises are found (the conventions of :mod:`mnist_course.exercises`):

- the exercises a chapter must have come from the package: the file name's
  prefix ``NN_`` names the module ``mnist_course.chapterNN`` and its
  ``EXERCISES`` tuple, so a deleted checker cell shows as an error, not as a
  silently missing column;
- a checker cell carries the tag ``checker`` and the metadata
  ``"exercise": "<name>"``, and holds one call, ``chapterNN.check_<name>(answer,
  ...)`` (a toy notebook's may drop the module), on plain names: a checker cell
  changed to anything else is an error;
- **the verdict is the checker's own result**, never text: the grader runs a
  cell of its own just before each checker cell (forgetting any earlier
  verdict) and just after it, which reads the :class:`~mnist_course.exercises.Feedback`
  the checker recorded in ``exercises.verdicts`` and prints it behind a random
  token made for this run. What the learner's code prints or displays, even
  "Correct (name): ...", changes nothing. (The learner's code runs in the same
  kernel, so a learner who sets out to patch the package can still forge a
  verdict: the grader gives feedback, it is not an exam.)
- an answer cell (tag ``answer``) that raised ``NotImplementedError`` (the
  learner copy's stub) makes its exercise "not yet" even when the checker
  cell could not run;
- the quiz cell (tag ``quiz``) is read the same way (the ``QuizResult`` it
  returned); it is reported as ``k/n`` but does not count for the exit code.
- every other cell that raised is listed in the report (the stubs' own
  ``NotImplementedError`` in answer cells aside).

The learner reads the grades in the notebook's language (:func:`notebook_language`: a
Chinese chapter's metadata says ``translation.language == "zh"``): the grader's own
messages about a Chinese notebook (``Result.message``: "not written yet", "timed out", ...)
are made in Chinese, as the checkers' messages inside its kernel already are, with a
translator for that language (never :func:`mnist_course.i18n.set_language`: one run grades
both languages, in threads). The statuses, the quiz's ``k/n``, the failed cells and the
words of the teacher's report stay English data; :mod:`mnist_course.gradebook` translates
them where it writes the learner's feedback.

The exit code is 0 only when every exercise of every notebook is correct
(1 otherwise, and when no notebook has an exercise; 2 for a bad path or a
set-up problem).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mnist_course import i18n, sandbox

CORRECT, NOT_YET, ERROR = "correct", "not yet", "error"
ANSWER_TAG, CHECKER_TAG, QUIZ_TAG = "answer", "checker", "quiz"
SKIP_DIRS = sandbox.SKIP_DIRS  # checkpoints and caches: never graded, never copied


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
    learner: str = ""  # the learner's folder name (the gradebook's student_id)
    exercises: dict[str, Result] = field(default_factory=dict)
    quiz: str | None = None  # "k/n", "error", or None when the notebook has no quiz cell
    seconds: float = 0.0
    problem: str | None = None  # why the notebook could not be graded at all
    failed_cells: list[str] = field(default_factory=list)  # "cell 7: NameError: ..."
    timed_out: bool = False
    stopped: str | None = None  # why execution ended early otherwise (the kernel died, ...)
    language: str = "en"  # the notebook's language (notebook_language), the feedback's too

    @property
    def all_correct(self) -> bool:
        return self.problem is None and all(r.status == CORRECT for r in self.exercises.values())


def chapter_of(path: Path) -> str | None:
    """``05_mnist_mlp.ipynb`` -> ``"05"``; None when the name has no ``NN_`` prefix."""
    match = re.match(r"(\d\d)_", path.name)
    return match[1] if match else None


def notebook_language(nb: Any) -> str:
    """The language a notebook speaks to the learner in: its ``translation.language`` metadata
    (set by ``mnist-course translate sync``) when the course has that language, else "en"."""
    metadata = nb.get("metadata", {}) if isinstance(nb, dict) else {}
    translation = metadata.get("translation") if isinstance(metadata, dict) else None
    language = translation.get("language") if isinstance(translation, dict) else None
    return language if isinstance(language, str) and language in i18n.LANGUAGES else "en"


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


def learner_of(path: Path, label: str) -> str:
    """The learner a notebook belongs to: its folder under the class folder (``ann`` for
    ``ann/01_x.ipynb``), else the name of the folder it is in."""
    parts = Path(label).parts
    if len(parts) > 1 and label != path.as_posix():  # found under a folder that was named
        return parts[0]
    return path.absolute().parent.name


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


def _is_checker_call(source: str, name: str, module: str | None) -> bool:
    """Whether ``source`` is only ``[module.]check_<name>(a, b, ...)`` (comments allowed)."""
    lines = [line.split("#")[0].strip() for line in source.splitlines()]
    call = " ".join(line for line in lines if line)
    prefix = re.escape(f"{module}.") if module else r"(?:[A-Za-z_]\w*\.)?"
    names = r"(?:[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*,?)?"
    return re.fullmatch(rf"{prefix}check_{re.escape(name)}\(\s*{names}\s*\)", call) is not None


def _grade_exercise(name: str, checker: Any | None, answers: list[Any], ran: set[int],
                    cells: list[Any], verdict: Result | None, run: sandbox.Executed,
                    timeout: float, module: str | None = None, shown: Any | None = None,
                    language: str = "en") -> Result:  # fmt: skip
    """The verdict on ``name``; ``answers`` and ``shown`` (the checker cell) as they ran.

    The grader's own messages are in ``language`` (the notebook's); a verdict is the checker's.
    """
    _ = i18n.translator(__name__, language)
    if checker is None:
        return Result(ERROR, _("no checker cell for this exercise (was it deleted?)"))
    if not _is_checker_call(checker.source, name, module):
        call = f"{module + '.' if module else ''}check_{name}(...)"
        return Result(
            ERROR,
            _(
                "the checker cell was changed: it should hold only the call {call} on your "
                "answer; copy it back from the chapter"
            ).format(call=call),
        )
    index = cells.index(checker)
    if index not in ran:
        if run.timed_out:
            return Result(ERROR, _("timed out after {timeout:g} s").format(timeout=timeout))
        if run.stopped in (None, "the kernel died"):  # a crash, or a limit (SIGXCPU: CPU time)
            return Result(
                ERROR,
                _(
                    "the checker cell did not run (the kernel died: it crashed, or used up "
                    "its CPU time)"
                ),
            )
        return Result(ERROR, _("the checker cell did not run ({why})").format(why=run.stopped))
    if verdict is not None:
        return verdict
    for answer in answers:
        error = _error(answer)
        if error is not None and error.startswith("NotImplementedError"):
            return Result(
                NOT_YET, _("not written yet (the answer cell raises NotImplementedError)")
            )
        if error is not None:
            return Result(ERROR, _("in the answer cell: {error}").format(error=error))
    error = _error(shown or checker)
    if error is not None:
        return Result(ERROR, error)
    text = next((_first_line(t) for t in _texts(shown or checker) if _first_line(t)), "")
    return Result(
        ERROR, _("no verdict from the checker cell (it showed {text!r})").format(text=text)
    )


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


# ---------------------------------------------------------------------------------------------
# The grader's own cells, run in the learner's kernel around each checker cell and the quiz
# ---------------------------------------------------------------------------------------------


def report_verdict(token: str, name: str) -> None:
    """(In the kernel) print the checker's recorded verdict on ``name`` behind ``token``."""
    from mnist_course import exercises

    verdict = exercises.verdicts.get(name)
    body = [verdict.ok, verdict.message] if type(verdict) is exercises.Feedback else None
    sys.stdout.write(f"{token} {json.dumps(body)}\n")


def report_quiz(token: str) -> None:
    """(In the kernel) print every QuizResult the cells returned, by execution count."""
    from IPython import get_ipython

    from mnist_course import quiz

    shell = get_ipython()
    outputs = shell.user_ns.get("Out", {}) if shell is not None else {}
    body = {
        str(count): [result.right, result.total]
        for count, result in dict(outputs).items()
        if type(result) is quiz.QuizResult
    }
    sys.stdout.write(f"{token} {json.dumps(body)}\n")


def _grader_cell(source: str) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["grader"] = True
    return cell


def _instrument(cells: list[Any], checkers: dict[str, Any], quiz_cell: Any | None,
                token: str) -> tuple[Any, list[tuple[str, int | str]]]:  # fmt: skip
    """The notebook to run: the learner's cells with the grader's cells around checkers and quiz.

    Returns it and, for each of its cells, ``("cell", i)`` (the learner's cell i),
    ``("verdict", name)`` or ``("quiz", i)`` (a grader cell that reports).
    """
    exercise_of = {id(cell): name for name, cell in checkers.items()}
    grade_module = '__import__("mnist_course.grade").grade'
    run = nbformat.v4.new_notebook()
    origin: list[tuple[str, int | str]] = []
    for index, cell in enumerate(cells):
        name = exercise_of.get(id(cell))
        if name is not None:
            forget = f'__import__("mnist_course.exercises").exercises.verdicts.pop({name!r}, None)'
            run.cells.append(_grader_cell(forget))
            origin.append(("forget", name))
        run.cells.append(nbformat.from_dict(json.loads(json.dumps(cell))))
        origin.append(("cell", index))
        if name is not None:
            run.cells.append(_grader_cell(f"{grade_module}.report_verdict({token!r}, {name!r})"))
            origin.append(("verdict", name))
        if cell is quiz_cell:
            run.cells.append(_grader_cell(f"{grade_module}.report_quiz({token!r})"))
            origin.append(("quiz", index))
    return run, origin


def _reported(cell: Any, token: str) -> Any:
    """The JSON a grader cell printed behind ``token`` (None when it printed none)."""
    found = None
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            for line in output.get("text", "").splitlines():
                if line.startswith(f"{token} "):
                    try:
                        found = json.loads(line[len(token) + 1 :])
                    except ValueError:
                        found = None
    return found


def _failed_cells(cells: list[Any], ran_cells: list[Any]) -> list[str]:
    """For each learner cell that raised, ``cell 7 (`x = 1 / 0`): ZeroDivisionError: ...``
    (the stubs' own NotImplementedError in answer cells aside)."""
    failed = []
    for index, cell in enumerate(ran_cells):
        if cell is None:
            continue
        error = _error(cell)
        if error is None:
            continue
        if ANSWER_TAG in _tags(cells[index]) and error.startswith("NotImplementedError"):
            continue
        code = _first_line(cells[index].source)
        code = code if len(code) <= 40 else code[:37] + "..."
        failed.append(f"cell {index + 1} (`{code}`): {error}")
    return failed


def grade_notebook(path: Path, label: str | None = None, timeout: float = 300,
                   limits: sandbox.Limits | None = None) -> Graded:  # fmt: skip
    """Run one notebook (a copy, in a temporary folder) and grade each of its exercises.

    ``limits`` (memory, account) default to :class:`mnist_course.sandbox.Limits`
    with ``timeout``. Raises :class:`mnist_course.sandbox.SandboxError` for a
    set-up problem (e.g. as root with no account named).
    """
    label = label or path.as_posix()
    limits = limits or sandbox.Limits(timeout=timeout)
    timeout = limits.timeout
    chapter = chapter_of(path)
    names = list(expected_exercises(chapter))
    module = _chapter_module(chapter)
    graded = Graded(label, chapter, learner_of(path, label))
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except Exception as err:  # not JSON, not a notebook: still a row in the table
        graded.problem = _first_line(f"unreadable notebook: {type(err).__name__}: {err}")
        for name in names:
            graded.exercises[name] = Result(ERROR, graded.problem)
        return graded
    graded.language = notebook_language(nb)
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
    token = secrets.token_hex(16)
    instrumented, origin = _instrument(cells, checkers, quiz_cell, token)
    instrumented.metadata = nb.metadata
    start = time.monotonic()
    run = sandbox.run_notebook(instrumented, path.parent, limits)
    graded.seconds = round(time.monotonic() - start, 1)
    graded.timed_out, graded.stopped = run.timed_out, run.stopped
    executed = nbformat.from_dict(run.notebook).cells
    ran: set[int] = set()
    ran_cells: list[Any] = [None] * len(cells)
    verdicts: dict[str, Result] = {}
    quiz_scores: dict[str, list[int]] = {}
    for position, (kind, key) in enumerate(origin):
        cell = executed[position] if position < len(executed) else {}
        if kind == "cell":
            ran_cells[int(key)] = cell
            if position in run.finished:
                ran.add(int(key))
        elif kind == "verdict" and position in run.finished:
            body = _reported(cell, token)
            if isinstance(body, list) and len(body) == 2:
                verdicts[str(key)] = Result(CORRECT if body[0] else NOT_YET, str(body[1]))
        elif kind == "quiz" and position in run.finished:
            body = _reported(cell, token)
            quiz_scores = body if isinstance(body, dict) else {}
    for name in names:
        checker = checkers.get(name)
        answers = [ran_cells[cells.index(a)] or a for a in _answers_for(name, cells, checker)]
        shown = ran_cells[cells.index(checker)] if checker is not None else None
        graded.exercises[name] = _grade_exercise(
            name,
            checker,
            answers,
            ran,
            cells,
            verdicts.get(name),
            run,
            timeout,
            module,
            shown,
            graded.language,
        )
    if quiz_cell is not None:
        index = cells.index(quiz_cell)
        count = (ran_cells[index] or {}).get("execution_count")
        score = quiz_scores.get(str(count)) if index in ran else None
        graded.quiz = f"{score[0]}/{score[1]}" if score else (ERROR if index in ran else "not run")
    graded.failed_cells = _failed_cells(cells, ran_cells)
    return graded


def grade_all(notebooks: list[tuple[Path, str]], limits: sandbox.Limits,
              jobs: int = 1) -> list[Graded]:  # fmt: skip
    """Grade each (path, label), ``jobs`` at a time; results in the order given."""

    def one(item: tuple[Path, str]) -> Graded:
        path, label = item
        print(f"grading {label} ...", file=sys.stderr, flush=True)
        return grade_notebook(path, label, limits=limits)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, notebooks))


def main(paths: list[Path], json_out: Path | None = None, timeout: float = 300,
         csv_out: Path | None = None, feedback_dir: Path | None = None, jobs: int = 1,
         memory_gb: float = 4.0, user: str | None = None,
         trusted: bool = False) -> int:  # fmt: skip
    """Grade the notebooks at ``paths`` (files or folders); print the report; 0 iff all correct.

    ``trusted`` (tests of the course's own notebooks) lets root grade as itself."""
    from mnist_course import gradebook

    def fail(message: str) -> int:
        print(f"mnist-course grade: error: {message}", file=sys.stderr)
        return 2

    try:
        notebooks = find_notebooks([Path(p) for p in paths])
    except ValueError as err:
        return fail(str(err))
    if not timeout > 0:
        return fail(f"timeout must be positive, got {timeout}")
    if not memory_gb > 0:
        return fail(f"memory must be positive, got {memory_gb} GB")
    if jobs < 1:
        return fail(f"jobs must be 1 or more, got {jobs}")
    for path, what in ((json_out, "--json"), (csv_out, "--csv")):
        if path is not None and Path(path).is_dir():
            return fail(f"{what} {path} is a folder; name a file, e.g. {Path(path) / 'grades'}")
    if feedback_dir is not None and Path(feedback_dir).exists() and not Path(feedback_dir).is_dir():
        return fail(f"--feedback {feedback_dir} is a file; name a folder (one file per learner)")
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    limits = sandbox.Limits(timeout, memory_gb, user, trusted, threads)
    try:
        sandbox.check_account(sandbox.account(user, trusted))
    except sandbox.SandboxError as err:
        return fail(str(err))
    results = grade_all(notebooks, limits, jobs)
    print(gradebook.report(results))
    if not any(g.exercises or g.problem for g in results):
        print("mnist-course grade: no exercises found in these notebooks", file=sys.stderr)
    if json_out is not None:
        gradebook.write_json(Path(json_out), results, limits)
    if csv_out is not None:
        gradebook.write_csv(Path(csv_out), results)
    if feedback_dir is not None:
        gradebook.write_feedback(Path(feedback_dir), results)
    graded = [g for g in results if g.exercises or g.problem]
    return 0 if graded and all(g.all_correct for g in graded) else 1
