"""The exercise framework: checkers never raise, hints grow, library calls are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import exercises as ex

SOFTMAXES = ["torch.softmax", "torch.Tensor.softmax", "torch.nn.functional.softmax"]


@ex.checker("demo")
def check_softmax(fn):
    z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = torch.softmax(z, dim=1).double().numpy()
    got = ex.as_array(ex.call(fn, z.clone(), forbidden=SOFTMAXES))
    if got.shape != expected.shape:
        raise ex.NotYet(
            f"shape {got.shape}, expected {expected.shape}.", "keep one row per sample."
        )
    if not ex.close(got, expected):
        raise ex.NotYet("the values differ.", "divide exp(z) by its row sum.")
    return "right."


def mine(z):
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def test_a_right_answer_is_correct():
    feedback = check_softmax(mine)
    assert feedback.ok and bool(feedback)
    assert str(feedback) == "Correct (demo): right." == repr(feedback)


def test_feedback_reads_as_its_message():
    assert str(ex.Feedback("x", False, "fix it")) == "Not yet (x): fix it"


@pytest.mark.parametrize(
    "fn",
    [
        lambda z: torch.softmax(z, dim=1),
        lambda z: z.softmax(dim=1),
        lambda z: F.softmax(z, dim=1),
        lambda z: torch.nn.Softmax(dim=1)(z),  # the module calls F.softmax inside
    ],
)
def test_calling_the_library_is_refused(fn):
    feedback = check_softmax(fn)
    assert not feedback.ok
    assert "write it yourself, without `" in feedback.message


def test_an_imported_alias_is_refused_too():
    scope = {"softmax": F.softmax}
    exec("def answer(z):\n    return softmax(z, dim=1)", scope)
    feedback = check_softmax(scope["answer"])
    assert "without `torch.nn.functional.softmax`" in feedback.message
    assert scope["softmax"] is F.softmax  # restored


def test_a_swallowed_refusal_is_still_noticed():
    def sneaky(z):
        try:
            return torch.softmax(z, dim=1)
        except Exception:
            return mine(z)

    assert "write it yourself" in check_softmax(sneaky).message


def test_everything_is_restored_after_a_check():
    check_softmax(lambda z: z.softmax(dim=1))
    z = torch.tensor([0.0, 0.0])
    assert torch.allclose(z.softmax(0), torch.tensor([0.5, 0.5]))
    assert torch.allclose(F.softmax(z, 0), torch.softmax(z, 0))
    assert "softmax" not in vars(torch.Tensor)


def boom(z):
    raise KeyError("oops")


def not_written(z):
    raise NotImplementedError()


@pytest.mark.parametrize(
    "answer, words",
    [
        (lambda z: (mine(z), 1), "tuple of 2 items"),
        (lambda z: [[1, 2], [3]], "not an array of numbers"),
        (lambda z: "softmax", "not an array of numbers"),
        (lambda z: None, "returned None"),
        (lambda z: torch.full((2, 3), math.nan), "the values differ"),
        (lambda z: mine(z)[0], "shape (3,)"),
        (boom, "raised KeyError"),
        (not_written, "not written yet"),
        (42, "expected a function"),
        (lambda: 1, "raised TypeError"),
    ],
)
def test_odd_answers_never_raise(answer, words):
    feedback = check_softmax(answer)
    assert not feedback.ok
    assert words in feedback.message


def test_the_hint_grows_on_the_second_failure():
    ex._failures.clear()
    first = check_softmax(lambda z: z * 0)
    second = check_softmax(lambda z: z * 0)
    assert "Hint" not in first.message and "hint=2" in first.message
    assert "Hint: divide exp(z) by its row sum." in second.message
    assert "Hint" in check_softmax(lambda z: z * 0, hint=2).message
    check_softmax(mine)  # a success starts the count again
    assert "Hint" not in check_softmax(lambda z: z * 0).message


def test_a_checker_bug_is_reported_not_raised():
    @ex.checker("buggy")
    def check(fn):
        return 1 / 0

    feedback = check(mine)
    assert not feedback.ok and "could not read your answer (ZeroDivisionError)" in feedback.message


def test_as_float_and_close():
    assert ex.as_float(np.array([2.5])) == 2.5
    assert ex.as_float(torch.tensor(1.0)) == 1.0
    with pytest.raises(ex.NotYet, match="one number"):
        ex.as_float([1.0, 2.0])
    assert not ex.close(np.zeros(2), np.zeros(3))
    assert not ex.close(np.array([math.nan]), np.array([math.nan]))


def test_an_unknown_forbidden_path_is_an_error_of_the_checker():
    with pytest.raises(ValueError, match="cannot find"), ex.forbid(["no_such_module.f"]):
        pass


def test_the_library_function_itself_is_refused_as_an_answer():
    feedback = check_softmax(F.softmax)
    assert "write it yourself, without `torch.nn.functional.softmax`" in feedback.message
