"""The quiz checker marks letters and numbers, explains answered questions, never raises."""

from __future__ import annotations

import importlib
import math

import numpy as np
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
    assert result.right == 0 and 2 <= len(result.lines) <= 3


class Hostile:
    """An answer whose comparison, repr, str, float and hash all raise."""

    def __eq__(self, other):
        raise RuntimeError("eq")

    def __repr__(self):
        raise RuntimeError("repr")

    __str__ = __repr__

    def __float__(self):
        raise RuntimeError("float")

    def __hash__(self):
        raise RuntimeError("hash")


class HostileMapping(dict):
    def __contains__(self, key):
        raise RuntimeError("contains")


@pytest.mark.parametrize(
    "answers",
    [
        {1: np.array(["b", "c"]), 2: np.array([2.3, 2.4])},
        {1: np.array("b"), 2: np.array([2.3])},
        {1: Hostile(), 2: Hostile()},
        Hostile(),
        HostileMapping({1: "b"}),
        np.array([1, 2, 3]),
        {1: [], 2: {}},
    ],
    ids=[
        "arrays",
        "0-d arrays",
        "hostile answers",
        "hostile answers dict",
        "odd mapping",
        "array",
        "empty containers",
    ],
)
def test_hostile_answers_never_raise(answers):
    result = quiz.check("c", KEY, answers)
    assert result.right <= 2 and str(result)


def test_a_number_in_a_one_element_array_is_read():
    assert quiz.check("c", KEY, {1: "b", 2: np.array([2.3])}).right == 2


@pytest.mark.parametrize("answers", [["b", 2.3], ("b", 2.3), "b", 42])
def test_answers_that_are_not_a_dict_say_what_form_is_expected(answers):
    result = quiz.check("c", KEY, answers)
    assert result.right == 0
    assert '{1: "<letter>", 2: <number>' in result.lines[0] and "dict" in result.lines[0]


def test_an_unreadable_answer_says_what_it_expects_and_uses_the_right_article():
    result = quiz.check("c", KEY, {1: np.int64(1), 2: "x"})
    assert "could not read an int64: answer with a letter like 'b'" in result.lines[0]
    assert "answer with a number" in result.lines[1]


def test_string_keys_are_accepted():
    assert quiz.check("c", KEY, {"1": "b", "2": 2.303}).ok


@pytest.mark.parametrize("chapter", range(1, 8))
@pytest.mark.parametrize(
    "answers",
    [None, [], ["b"], "b", np.array([1, 2]), Hostile(), {1: Hostile(), 2: np.ones(3), "3": [1]}],
    ids=["None", "empty list", "list", "str", "array", "hostile", "hostile answers"],
)
def test_no_chapter_quiz_raises(chapter, answers):
    module = importlib.import_module(f"mnist_course.chapter0{chapter}")
    result = module.check_quiz(answers)
    assert result.right == 0 and str(result)
