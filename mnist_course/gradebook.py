"""What ``mnist-course grade`` reports: the tables, the class summary, and the files it writes.

- :func:`report`: one table per chapter (a row per notebook, a column per
  exercise, the quiz), the errors' footnotes, the cells that failed, then a
  class summary (per exercise, how many learners have it correct; who timed
  out or could not be run) and a closing count;
- :func:`write_csv`: the gradebook, one row per learner, with the column names
  of nbgrader's grade export where they apply (``student_id``, ``raw_score``,
  ``max_score``), and a column per exercise (``01.softmax``: 1 correct, 0 not,
  empty when the learner handed in no such notebook);
- :func:`write_json`: every detail, every message;
- :func:`write_feedback`: one Markdown file per learner, each exercise's verdict
  and the checker's message (the hints the learner would have seen), each notebook's
  part in the notebook's language (``Graded.language``: a Chinese chapter's in Chinese).

The statuses ("correct", "not yet", "error"), the quiz's ``k/n`` and the failed cells are
English data in the tables, the CSV and the JSON; only the learner's feedback translates
them, with a translator for the notebook's language (the catalog ``locale/<language>/
LC_MESSAGES/gradebook.po``, ``make messages``).

Every file is written whole or not at all (a temporary name, then a rename).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_course import i18n
from mnist_course.grade import CORRECT, ERROR, NOT_YET, Graded
from mnist_course.sandbox import Limits

N_ = i18n.N_
# The statuses as the learner reads them (the data keeps the English keys).
STATUS_WORDS = {
    # Translators: an exercise's status, after its name in the learner's feedback.
    CORRECT: N_("correct"),
    # Translators: an exercise's status: the checker found something still to fix.
    NOT_YET: N_("not yet"),
    # Translators: an exercise's status: it could not be checked (the message says why).
    ERROR: N_("error"),
}
# A failed cell as grade._failed_cells writes it: "cell 7 (`x = 1 / 0`): ZeroDivisionError: ..."
FAILED_CELL = re.compile(r"cell (?P<number>\d+) \(`(?P<code>.*)`\): (?P<error>.*)", re.DOTALL)
QUIZ_SCORE = re.compile(r"(?P<right>\d+)/(?P<total>\d+)")


def column(graded: Graded, name: str) -> str:
    """``01.softmax``: the chapter (or the notebook's name) and the exercise."""
    return f"{graded.chapter or Path(graded.notebook).stem}.{name}"


def columns(results: list[Graded]) -> list[str]:
    """Every exercise column, chapter by chapter, in each chapter's order."""
    found: list[str] = []
    for graded in sorted(results, key=lambda g: g.chapter or "~"):
        found += [c for c in (column(graded, n) for n in graded.exercises) if c not in found]
    return found


def learners(results: list[Graded]) -> dict[str, dict[str, str]]:
    """learner -> {column: status}, learners in the order first seen."""
    table: dict[str, dict[str, str]] = {}
    for graded in results:
        row = table.setdefault(graded.learner, {})
        for name, result in graded.exercises.items():
            row[column(graded, name)] = result.status
    return table


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def tables(results: list[Graded]) -> str:
    """One table per chapter: a row per notebook, a column per exercise (+ quiz); errors below."""
    blocks = []
    notes: list[str] = []
    groups: dict[str, list[Graded]] = {}
    for graded in results:
        key = f"chapter {graded.chapter}" if graded.chapter else "other notebooks"
        groups.setdefault(key, []).append(graded)
    for title, group in groups.items():
        names: list[str] = []
        for graded in group:
            names += [n for n in graded.exercises if n not in names]
        has_quiz = any(g.quiz is not None for g in group)
        header = ["notebook", *names] + (["quiz"] if has_quiz else [])
        rows = []
        for graded in group:
            row = [graded.notebook]
            for name in names:
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
            if not names:
                row.append(f"error: {graded.problem}" if graded.problem else "(no exercises)")
            rows.append(row)
        if not names:
            header.append("")
        blocks.append("\n".join([title, *_aligned([header, *rows])]))
    return "\n\n".join([*blocks, *(["\n".join(notes)] if notes else [])])


def failed_cells(results: list[Graded]) -> str:
    """The learners' cells that raised, notebook by notebook ("" when none did)."""
    lines = [f"  {g.notebook}, {cell}" for g in results for cell in g.failed_cells]
    return "\n".join(["Cells that failed", *lines]) if lines else ""


def summary(results: list[Graded]) -> str:
    """Per exercise, how many learners have it correct; who timed out or could not be run."""
    table = learners(results)
    names = columns(results)
    lines = [f"Class summary ({len(table)} learners)"]
    rows = [[name, f"{sum(row.get(name) == CORRECT for row in table.values())} of "
             f"{sum(name in row for row in table.values())} correct"]
            for name in names]  # fmt: skip
    lines += ["  " + line for line in _aligned(rows)] if rows else []
    timed_out = [g.notebook for g in results if g.timed_out]
    broken = [f"{g.notebook} ({g.problem or g.stopped})" for g in results
              if g.problem or (g.stopped and not g.timed_out)]  # fmt: skip
    lines.append(f"  timed out: {', '.join(timed_out) or 'none'}")
    lines.append(f"  could not be run to the end: {', '.join(broken) or 'none'}")
    return "\n".join(lines)


def report(results: list[Graded]) -> str:
    """The whole report printed by ``mnist-course grade``; its last line counts what is correct."""
    total = sum(len(g.exercises) for g in results)
    right = sum(r.status == CORRECT for g in results for r in g.exercises.values())
    count = f"{right} of {total} exercises correct in {len(results)} notebooks"
    parts = [tables(results), failed_cells(results), summary(results), count]
    return "\n\n".join(part for part in parts if part)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def gradebook_csv(results: list[Graded]) -> str:
    """The gradebook as CSV text: student_id, a column per exercise, raw_score, max_score."""
    names = columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student_id", *names, "raw_score", "max_score"])
    for learner, row in learners(results).items():
        marks = ["" if n not in row else int(row[n] == CORRECT) for n in names]
        writer.writerow([learner, *marks, sum(m == 1 for m in marks), len(names)])
    return buffer.getvalue()


def write_csv(path: Path, results: list[Graded]) -> None:
    _write(path, gradebook_csv(results))


def to_json(results: list[Graded], limits: Limits) -> dict[str, Any]:
    """Every detail as a JSON-ready dict."""
    return {
        "timeout_s": limits.timeout,
        "memory_gb": limits.memory_gb,
        "user": limits.user,
        "all_correct": all(g.all_correct for g in results),
        "notebooks": [
            {
                "notebook": g.notebook,
                "learner": g.learner,
                "chapter": g.chapter,
                "exercises": {
                    n: {"status": r.status, "message": r.message} for n, r in g.exercises.items()
                },
                "quiz": g.quiz,
                "seconds": g.seconds,
                "problem": g.problem,
                "failed_cells": g.failed_cells,
                "timed_out": g.timed_out,
                "stopped": g.stopped,
            }
            for g in results
        ],
    }


def write_json(path: Path, results: list[Graded], limits: Limits) -> None:
    _write(path, json.dumps(to_json(results, limits), indent=2, ensure_ascii=False) + "\n")


def feedback_language(results: list[Graded]) -> str:
    """The language of a learner's feedback heading: their notebooks' when all agree, else "en"."""
    languages = {graded.language for graded in results}
    return languages.pop() if len(languages) == 1 else "en"


def _quiz(quiz: str, _: Callable[[str], str]) -> str:
    """The quiz's line: its score ``k/n``, or why there is none ("error", "not run")."""
    score = QUIZ_SCORE.fullmatch(quiz)
    if score is not None:
        # Translators: Markdown (keep the **): the learner got {right} of {total} questions right.
        return _("**quiz**: {right}/{total}").format(**score.groupdict())
    if quiz == ERROR:
        # Translators: the quiz cell ran but gave no score (it raised, or was changed).
        return _("**quiz**: error")
    if quiz == "not run":
        # Translators: the notebook stopped (time out, dead kernel) before the quiz cell finished.
        return _("**quiz**: not run")
    return _("**quiz**: {score}").format(score=quiz)


def _failed_cell(cell: str, _: Callable[[str], str]) -> str:
    """One failed cell's line (as the grader wrote it when it is not the grader's form)."""
    found = FAILED_CELL.fullmatch(cell)
    if found is None:
        return cell
    return _("cell {number} (`{code}`): {error}").format(**found.groupdict())


def notebook_feedback(graded: Graded) -> list[str]:
    """One notebook's part of the feedback, in its language: exercises, quiz, failed cells."""
    _ = i18n.translator(__name__, graded.language)
    lines = [f"## {Path(graded.notebook).name}", ""]
    if graded.problem:
        lines += [_("This notebook could not be graded: {problem}").format(problem=graded.problem)]
        lines.append("")
    for name, result in graded.exercises.items():
        word = STATUS_WORDS.get(result.status)
        status = _(word) if word is not None else result.status
        # Translators: Markdown (keep the **); {message} is the checker's, already translated.
        line = _("**{exercise}**: {status}. {message}")
        lines.append(
            f"- {line.format(exercise=name, status=status, message=result.message)}".rstrip()
        )
    if graded.quiz is not None:
        lines.append(f"- {_quiz(graded.quiz, _)}")
    if graded.failed_cells:
        lines += ["", _("Cells that raised an error:")]
        lines += [f"- {_failed_cell(cell, _)}" for cell in graded.failed_cells]
    lines.append("")
    return lines


def feedback(learner: str, results: list[Graded]) -> str:
    """One learner's feedback in Markdown: each notebook's exercises, quiz and failed cells.

    Each notebook's part is in that notebook's language (``Graded.language``); the heading is
    in the language of all the learner's notebooks when they agree, in English when a learner
    has notebooks in more than one language (:func:`feedback_language`).
    """
    _ = i18n.translator(__name__, feedback_language(results))
    heading = _("Feedback for {learner}").format(learner=learner)
    lines = [f"# {heading}", ""]
    for graded in results:
        lines += notebook_feedback(graded)
    return "\n".join(lines)


def write_feedback(folder: Path, results: list[Graded]) -> list[Path]:
    """``folder/<learner>.md`` for each learner; returns the files written."""
    by_learner: dict[str, list[Graded]] = {}
    for graded in results:
        by_learner.setdefault(graded.learner, []).append(graded)
    written = []
    for learner, own in by_learner.items():
        path = Path(folder) / f"{learner}.md"
        _write(path, feedback(learner, own))
        written.append(path)
    return written
