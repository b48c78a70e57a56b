"""The quiz checker marks letters and numbers, explains answered questions, never raises."""

from __future__ import annotations

import math

import pytest

from mnist_course import quiz

KEY = {
    1: quiz.Question("b", "Because b."),
    2: quiz.Question(2.303, "ln 10 = 2.303.", tolerance=0.01),
}


def test_all_right():
    result = quiz.check("chapter 9", KEY, {1: "b", 2: 2.3})
    assert result.ok and result.right == 2
    assert str(result).splitlines() == [
        "Quiz (chapter 9): 2 of 2 right",
        "1. right. Because b.",
        "2. right. ln 10 = 2.303.",
    ]


def test_wrong_answers_get_the_answer_and_the_explanation():
    result = quiz.check("chapter 9", KEY, {1: "a", 2: 3})
    assert not result.ok and result.right == 0
    assert "1. not quite: the answer is (b). Because b." in str(result)
    assert "2. not quite: the answer is 2.303. ln 10 = 2.303." in str(result)


def test_unanswered_questions_explain_nothing():
    result = quiz.check("chapter 9", KEY, {})
    assert result.lines == ("1. not answered yet.", "2. not answered yet.")
    assert "Because" not in str(result)


@pytest.mark.parametrize("letter", ["B", " (b) ", "b"])
def test_letters_are_read_leniently(letter):
    assert quiz.check("c", KEY, {1: letter, 2: "2.30"}).ok


@pytest.mark.parametrize(
    "answers",
    [None, [1, 2], "b", {1: 2, 2: "x"}, {1: ["b"], 2: math.nan}, {1: object(), 2: True}],
)
def test_odd_answers_never_raise(answers):
    result = quiz.check("c", KEY, answers)
    assert result.right == 0 and len(result.lines) == 2


def test_string_keys_are_accepted():
    assert quiz.check("c", KEY, {"1": "b", "2": 2.303}).ok
