"""The end-of-chapter quizzes: answer keys are in ``mnist_course.chapterNN.QUIZ`` (chapter 1 on).

The questions are in the chapter's markdown; the learner writes ``answers = {1: "b", 2: 2.3}``
and :func:`check` marks each answer and, once an answer is given, explains the
right one. It never raises, whatever ``answers`` holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_course import i18n

_ = i18n.translator(__name__)


@dataclass(frozen=True)
class Question:
    """The key of one question: a choice letter (``"b"``) or a number, and why it is right.

    A number is right within ``tolerance`` (absolute). The explanation is marked with ``N_`` in
    the chapter's module and translated, with that module's catalog, when it is shown.
    """

    answer: str | float
    explanation: str
    tolerance: float = 0.0


@dataclass(frozen=True)
class QuizResult:
    """One line per question; shown in Jupyter as the lines, after a score line."""

    chapter: str
    right: int
    total: int
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.right == self.total

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        chapter = self.chapter
        number = chapter.removeprefix("chapter").strip()
        if number.isdigit():  # "chapter 1": its name in the language now
            chapter = _("chapter {number}").format(number=number)
        head = _("Quiz ({chapter}): {right} of {total} right").format(
            chapter=chapter, right=self.right, total=self.total
        )
        return "\n".join((head, *self.lines))

    __repr__ = __str__


FORM = '{1: "<letter>", 2: <number>, ...}'


def _read_number(given: Any) -> float | None:
    if isinstance(given, bool):
        return None
    try:
        if isinstance(given, np.ndarray) and given.size == 1:
            given = given.reshape(()).item()
        value = float(given)
    except Exception:  # arrays of several numbers, odd objects: unreadable, never an error
        return None
    return value if math.isfinite(value) else None


def _is_right(question: Question, given: Any) -> bool | None:
    """True or False, or None when the answer cannot be read."""
    if isinstance(question.answer, str):
        if not isinstance(given, str):
            return None
        letter = given.strip().strip("()").strip().lower()
        return letter == question.answer.lower()
    value = _read_number(given)
    if value is None:
        return None
    return abs(value - float(question.answer)) <= question.tolerance


def _shown(given: Any) -> str:
    """A short, safe description of an answer (its repr may raise, or be huge)."""
    if isinstance(given, (str, int, float)):
        text = repr(given)
        return text if len(text) <= 40 else text[:37] + "..."
    from mnist_course.exercises import a_type

    return a_type(given)


def _given(answers: Mapping[Any, Any], number: int) -> Any:
    """The answer to question ``number`` (key 1 or "1"), or None; never raises."""
    for key in (number, str(number)):
        try:
            if key in answers:
                return answers[key]
        except Exception:
            continue
    return None


def _blank(given: Any) -> bool:
    return given is None or (isinstance(given, str) and not given.strip())


def check(
    chapter: str, key: Mapping[int, Question], answers: Any, module: str | None = None
) -> QuizResult:
    """Mark ``answers`` (question number -> answer) against ``key``; explain every answered one.

    Never raises, whatever ``answers`` holds; an answer it cannot read gets a line
    that says what form it expects. ``module``: the module that defines ``key`` (its
    catalog translates the explanations); by default ``mnist_course.chapterNN`` for
    "chapter N".
    """
    explain = i18n.translator(module or _module(chapter))
    lines = []
    if answers is not None and not isinstance(answers, Mapping):
        lines.append(
            _("answers is {given}; write a dict like {form}.").format(
                given=_shown(answers), form=FORM
            )
        )
        answers = {}
    answers = answers or {}
    right = 0
    for number, question in sorted(key.items()):
        given = _given(answers, number)
        if _blank(given):
            lines.append(_("{number}. not answered yet.").format(number=number))
            continue
        verdict = _is_right(question, given)
        if verdict is None:
            if isinstance(question.answer, str):
                line = _("{number}. could not read {given}: answer with a letter like 'b'.")
            else:
                line = _("{number}. could not read {given}: answer with a number.")
            lines.append(line.format(number=number, given=_shown(given)))
            continue
        right += verdict
        answer = question.answer
        shown = f"({answer})" if isinstance(answer, str) else f"{answer:g}"
        explanation = explain(question.explanation)
        if verdict:
            line = _("{number}. right. {explanation}")
        else:
            line = _("{number}. not quite: the answer is {answer}. {explanation}")
        lines.append(line.format(number=number, answer=shown, explanation=explanation))
    return QuizResult(chapter, right, len(key), tuple(lines))


def _module(chapter: str) -> str:
    """The module whose ``QUIZ`` is chapter ``chapter``'s key: "chapter 4" -> chapter04."""
    number = chapter.removeprefix("chapter").strip()
    return f"mnist_course.chapter{int(number):02d}" if number.isdigit() else __name__
