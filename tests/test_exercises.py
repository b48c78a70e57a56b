"""The exercise framework: checkers never raise, hints grow, library calls are refused."""

from __future__ import annotations

import functools
import math
import types

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


# ---- crashes and silences ----------------------------------------------------------------------


def exits(z):
    raise SystemExit(3)


def exits_in_the_checker(fn):
    raise SystemExit(0)


def test_sys_exit_in_the_learners_function_is_reported_not_raised():
    feedback = check_softmax(exits)
    assert not feedback.ok and "sys.exit()" in feedback.message


def test_sys_exit_anywhere_in_a_check_is_reported_not_raised():
    check = ex.checker("exiting", expects="a function f(z)")(exits_in_the_checker)
    feedback = check(mine)
    assert not feedback.ok and "it expects a function f(z)" in feedback.message


def test_keyboard_interrupt_goes_through():
    def interrupted(z):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check_softmax(interrupted)


def test_a_function_that_never_returns_is_stopped(monkeypatch):
    monkeypatch.setattr(ex, "TIME_LIMIT", 0.3)

    def forever(z):
        while True:
            try:
                z = z + 0
            except Exception:  # a learner's catch-all does not keep it running
                pass

    feedback = check_softmax(forever)
    assert not feedback.ok and "was stopped" in feedback.message
    monkeypatch.undo()
    assert check_softmax(mine).ok  # and the next check runs normally


def test_a_checker_that_cannot_read_an_answer_says_what_it_expects():
    @ex.checker("buggy2", expects="a function softmax(z) that returns an array")
    def check(fn):
        return 1 / 0

    assert "it expects a function softmax(z) that returns an array" in check(mine).message


def test_non_finite_values_are_never_close():
    for bad in (math.nan, math.inf, -math.inf):
        assert not ex.close(np.array([1.0, bad]), np.array([1.0, 2.0]))
        assert not ex.close(np.array([1.0, bad]), np.array([1.0, bad]))
    assert ex.close([1.0, 2.0], np.array([1.0, 2.0]))


def test_draw_gives_a_fresh_reproducible_seed(monkeypatch):
    monkeypatch.setattr(ex, "SEED", 100)
    monkeypatch.setattr(ex, "_draws", {})
    assert [ex.draw("a"), ex.draw("a"), ex.draw("b")] == [100, 101, 100]


# ---- a forbidden function, however it is reached ---------------------------------------------


class Holder:
    def __init__(self, f):
        self.f = f

    def __call__(self, z):
        return self.f(z, dim=1)


def make_closure():
    f = F.softmax

    def answer(z):
        return f(z, dim=1)

    return answer


def default_arg(z, _f=F.softmax):
    return _f(z, dim=1)


TABLE = {"softmax": torch.softmax}


def from_a_dict(z):
    return TABLE["softmax"](z, dim=1)


def special(z):
    return torch.special.softmax(z, dim=1)


def by_getattr(z):
    return getattr(torch, "soft" + "max")(z, dim=1)


@pytest.mark.parametrize(
    "answer",
    [
        Holder(F.softmax),
        make_closure(),
        default_arg,
        from_a_dict,
        functools.partial(F.softmax, dim=1),
        by_getattr,
    ],
    ids=["callable object", "closure", "default", "dict", "partial", "getattr"],
)
def test_a_reference_kept_anywhere_is_refused(answer):
    feedback = check_softmax(answer)
    assert not feedback.ok and "write it yourself, without" in feedback.message


OPS = {"aten::_softmax": "PyTorch's softmax operator"}


@ex.checker("demo_ops")
def check_with_ops(fn):
    z = torch.tensor([[1.0, 2.0, 3.0]])
    ex.call(fn, z, ops=OPS)
    return "right."


def test_the_operator_itself_is_refused_whatever_function_reaches_it():
    for answer in (special, lambda z: torch.nn.Softmax(1)(z), lambda z: z.softmax(1)):
        feedback = check_with_ops(answer)
        assert "without PyTorch's softmax operator" in feedback.message
    assert check_with_ops(mine).ok


def test_a_helper_in_another_module_is_looked_into():
    helper = types.ModuleType("helper_module")
    exec(
        "from torch.nn.functional import softmax\ndef sm(z):\n    return softmax(z, dim=1)",
        vars(helper),
    )
    scope = {"helper_sm": helper.sm}
    exec("def answer(z):\n    return helper_sm(z)", scope)
    assert "without `torch.nn.functional.softmax`" in check_softmax(scope["answer"]).message


@ex.checker("demo_grad")
def check_no_autograd(fn):
    z = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    ex.call(fn, z, no_autograd=True)
    return "right."


def loss_of(t):
    return torch.log(torch.exp(t).sum()) - t[0, 0]


@pytest.mark.parametrize(
    "answer",
    [
        lambda z: torch.func.grad(loss_of)(z),
        lambda z: torch.func.jacfwd(loss_of)(z),
        lambda z: torch.autograd.grad(loss_of(z.clone().requires_grad_()), z)[0],
        lambda z: torch.autograd.functional.jacobian(loss_of, z),
    ],
    ids=["func.grad", "func.jacfwd", "autograd.grad", "functional.jacobian"],
)
def test_autograd_is_refused_when_the_gradient_is_the_exercise(answer):
    feedback = check_no_autograd(answer)
    assert not feedback.ok and "autograd" in feedback.message, feedback.message


def test_a_hand_written_gradient_is_not_mistaken_for_autograd():
    assert check_no_autograd(lambda z: torch.softmax(z, 1) - torch.eye(3)[:1]).ok


class Trap:
    """A global whose every attribute access raises."""

    def __getattr__(self, name):
        raise RuntimeError("no attributes here")

    def __call__(self, z):
        return mine(z)


TRAP = Trap()


def uses_the_trap(z):
    return TRAP(z)


def test_odd_objects_held_by_the_answer_never_raise():
    assert check_softmax(uses_the_trap).ok
    assert check_softmax(Trap()).ok


class Endless:
    """A returned object whose conversion to an array never ends."""

    def __array__(self, *args, **kwargs):
        while True:
            pass


def test_a_check_that_never_ends_is_stopped_too(monkeypatch):
    monkeypatch.setattr(ex, "CHECK_TIME_LIMIT", 0.3)
    feedback = check_softmax(lambda z: Endless())
    assert not feedback.ok and "the check ran for more than 0.3 s" in feedback.message
    assert "it expects" in feedback.message
    monkeypatch.undo()
    assert check_softmax(mine).ok  # and the next check runs normally


def test_time_limits_nest(monkeypatch):
    import signal

    monkeypatch.setattr(ex, "TIME_LIMIT", 0.2)
    with ex.time_limit(30):
        with pytest.raises(ex.NotYet, match="more than 0.2 s"):
            ex.call(lambda: exec("while True: pass"))
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 0 < left <= 30  # the enclosing limit is back
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_type_reads_as_english():
    assert ex.a_type(1) == "an int"
    assert ex.a_type([]) == "a list"
    assert ex.a_type(np.uint8(3)) == "a uint8"
    assert ex.a_type(np.add) == "a ufunc"


# In a fresh process: whether the checkers load PyTorch, and still refuse it once loaded.
WITHOUT_TORCH = """
import sys
from mnist_course import chapter01, exercises, plots, quiz
assert "torch" not in sys.modules, "chapter 1's modules loaded PyTorch"
import numpy as np

def softmax(z):  # imports torch only when called, and calls a forbidden torch function
    import torch
    return torch.softmax(torch.as_tensor(z), dim=-1).numpy()

def mine(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

z = np.zeros((2, 3))
assert np.allclose(exercises.call(mine, z), 1 / 3)
assert "torch" not in sys.modules, "a check without torch paths loaded PyTorch"
try:
    exercises.call(softmax, z, forbidden=["torch.softmax"])
except exercises.NotYet as refused:
    print(refused.symptom)
else:
    raise AssertionError("torch.softmax was not refused")
"""


def test_chapter_1_runs_without_pytorch_and_a_forbidden_torch_path_still_loads_the_guards():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "without `torch.softmax`" in done.stdout
