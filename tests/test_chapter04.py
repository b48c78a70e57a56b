"""Chapter 4's checkers and quiz: right answers pass, each typical mistake gets its own message."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import chapter04, exercises


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs), whatever ran before."""
    monkeypatch.setattr(exercises, "_draws", {})


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_softmax_regression.ipynb"


@pytest.fixture(autouse=True)
def fresh_hints():
    """Each test starts with no earlier failures, so the first "Not yet" carries no hint."""
    exercises._failures.clear()
    yield
    exercises._failures.clear()


def not_yet(feedback: exercises.Feedback, *words: str) -> None:
    assert not feedback.ok, feedback
    for word in words:
        assert word in feedback.message, feedback.message


# ----------------------------------------------------------------------------- sgd_step


def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def sgd_step_data(params, lr):
    for p in params:
        p.data -= lr * p.grad


def sgd_step_and_clear(params, lr):
    with torch.no_grad():
        for p in params:
            p.sub_(lr * p.grad)
            p.grad = None


def sgd_step_add(params, lr):
    """add_ with alpha, in a while loop over indices."""
    i = 0
    with torch.no_grad():
        while i < len(params):
            params[i].add_(params[i].grad, alpha=-lr)
            i += 1
    return params


def sgd_step_copy_float64(params, lr):
    """Computed in float64, copied back into the float32 tensors."""
    for p in params:
        with torch.no_grad():
            p.copy_(p.double() - lr * p.grad.double())


def sgd_step_numpy_view(params, lr):
    """Through a NumPy view of each tensor's memory."""
    for p in params:
        arr = p.detach().numpy()
        arr -= lr * p.grad.numpy()


def sgd_step_returns_inside_the_loop(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            return params


@pytest.mark.parametrize(
    "fn",
    [
        sgd_step,
        sgd_step_data,
        sgd_step_and_clear,
        sgd_step_add,
        sgd_step_copy_float64,
        sgd_step_numpy_view,
    ],
)
def test_sgd_step_right_answers_pass(fn):
    feedback = chapter04.check_sgd_step(fn)
    assert feedback.ok, feedback
    assert "without torch.optim" in feedback.message


def uphill(params, lr):
    with torch.no_grad():
        for p in params:
            p += lr * p.grad


def no_lr(params, lr):
    with torch.no_grad():
        for p in params:
            p -= p.grad


def rebind(params, lr):
    with torch.no_grad():
        for p in params:
            p = p - lr * p.grad  # noqa: PLW2901 (the mistake under test)


def no_no_grad(params, lr):
    for p in params:
        p -= lr * p.grad


def weight_only(params, lr):
    with torch.no_grad():
        params[0] -= lr * params[0].grad


def half_lr(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr / 2 * p.grad


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (uphill, ["uphill"]),
        (no_lr, ["learning rate is missing"]),
        (rebind, ["did not change", "rebinds"]),
        (no_no_grad, ["refused", "in place"]),
        (weight_only, ["bias did not change"]),
        (sgd_step_returns_inside_the_loop, ["bias did not change", "`return` inside"]),
        (half_lr, ["not old weight - lr * gradient"]),
    ],
)
def test_sgd_step_mistakes_get_their_message(fn, words):
    not_yet(chapter04.check_sgd_step(fn), *words)


def test_sgd_step_no_grad_hint_names_no_grad():
    feedback = chapter04.check_sgd_step(no_no_grad, hint=2)
    not_yet(feedback, "torch.no_grad()")


def with_optimizer(params, lr):
    torch.optim.SGD(params, lr=lr).step()


def with_optimizer_module_path(params, lr):
    from torch.optim.sgd import SGD  # reaches the class another way

    SGD(params, lr=lr).step()


def with_functional_sgd(params, lr):
    from torch.optim.sgd import sgd

    grads = [p.grad for p in params]
    with torch.no_grad():
        sgd(
            params,
            grads,
            [None] * len(params),
            lr=lr,
            weight_decay=0.0,
            momentum=0.0,
            dampening=0.0,
            nesterov=False,
            maximize=False,
        )


def caught_optimizer(params, lr):
    try:
        torch.optim.SGD(params, lr=lr).step()
    except Exception:
        sgd_step(params, lr)


def with_asgd_averaging_off(params, lr):
    torch.optim.ASGD(params, lr=lr, lambd=0.0, alpha=0.0, t0=1e12).step()


def with_internal_step(params, lr):
    from torch.optim.sgd import _single_tensor_sgd

    grads = [p.grad for p in params]
    with torch.no_grad():
        _single_tensor_sgd(
            params,
            grads,
            [None] * len(params),
            grad_scale=None,
            found_inf=None,
            weight_decay=0.0,
            momentum=0.0,
            lr=lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
            has_sparse_grad=False,
        )


class Stepper:
    def __init__(self, make):
        self.make = make

    def __call__(self, params, lr):
        self.make(params, lr=lr).step()


@pytest.mark.parametrize(
    "fn",
    [
        with_optimizer,
        with_optimizer_module_path,
        with_functional_sgd,
        caught_optimizer,
        with_asgd_averaging_off,
        with_internal_step,
        Stepper(torch.optim.SGD),
        lambda params, lr, _o=torch.optim.Adagrad: _o(params, lr=lr).step(),
    ],
)
def test_sgd_step_library_is_refused(fn):
    not_yet(chapter04.check_sgd_step(fn), "write it yourself, without", "torch.optim")


def test_sgd_step_restores_the_library_afterwards():
    chapter04.check_sgd_step(with_optimizer)
    p = torch.ones(2, requires_grad=True)
    p.grad = torch.ones(2)
    torch.optim.SGD([p], lr=0.5).step()
    assert torch.equal(p.detach(), torch.full((2,), 0.5))


def raises(*args):
    raise ValueError("boom")


def not_written(*args):
    raise NotImplementedError()


def nan_step(params, lr):
    with torch.no_grad():
        for p in params:
            p.fill_(float("nan"))


@pytest.mark.parametrize(
    "fn",
    [
        raises,
        not_written,
        nan_step,
        lambda params, lr: (1, 2),
        lambda params, lr: "done",
        lambda params, lr: [p * 0 for p in params],
        lambda params: None,  # wrong signature
        None,
        "sgd_step",
        42,
    ],
)
def test_sgd_step_odd_answers_never_raise(fn):
    feedback = chapter04.check_sgd_step(fn)
    assert isinstance(feedback, exercises.Feedback) and not feedback.ok


def test_sgd_step_not_written_says_so():
    not_yet(chapter04.check_sgd_step(not_written), "not written yet")


def test_sgd_step_hint_grows():
    first = chapter04.check_sgd_step(uphill)
    second = chapter04.check_sgd_step(uphill)
    assert "Hint:" not in first.message and "hint=2" in first.message
    assert "Hint:" in second.message and "subtract" in second.message
    assert "p -= lr * p.grad" not in second.message  # not the solution


# ----------------------------------------------------------------------------- no_zero_grad


def test_the_experiments_show_what_the_answer_says():
    """The checker's confirmation is measured, not written in: check the measurements."""
    assert chapter04.grad_factor_after(3) == pytest.approx(3.0)
    assert chapter04.grad_factor_after(2) == pytest.approx(2.0)
    good = chapter04.noisy_training_loss(zero_grad=True)
    bad = chapter04.noisy_training_loss(zero_grad=False)
    assert math.isfinite(good) and bad > 5 * good


@pytest.mark.parametrize("answer", [(3, "b"), (3.0, "(b)"), (np.float32(3), " B "), [3, "b"]])
def test_no_zero_grad_right_answer_passes(answer):
    feedback = chapter04.check_no_zero_grad(lambda: answer)
    assert feedback.ok, feedback
    assert "3.0 x one call's gradient" in feedback.message


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((1, "b"), ["does not overwrite"]),
        ((0, "b"), ["nothing resets"]),
        ((8, "b"), ["does not double"]),
        ((2, "b"), ["not what running it gives"]),
        ((float("nan"), "b"), ["not what running it gives"]),
        ((3, "a"), ["accumulates"]),
        ((3, "c"), ["never clears"]),
        ((3, "d"), ["new graph"]),
        ((3, "e"), ["one of the letters"]),
        ((3, 2), ["one of the letters"]),
        (("three", "b"), ["one number"]),
        (([3, 3], "b"), ["one number"]),
    ],
)
def test_no_zero_grad_mistakes_get_their_message(answer, words):
    not_yet(chapter04.check_no_zero_grad(lambda: answer), *words)


@pytest.mark.parametrize(
    "fn", [lambda: 3, lambda: "b", lambda: (3, "b", 1), lambda: None, raises, not_written, None]
)
def test_no_zero_grad_odd_answers_never_raise(fn):
    feedback = chapter04.check_no_zero_grad(fn)
    assert isinstance(feedback, exercises.Feedback) and not feedback.ok


def test_no_zero_grad_hint_grows():
    first = chapter04.check_no_zero_grad(lambda: (1, "b"))
    second = chapter04.check_no_zero_grad(lambda: (1, "b"))
    assert "Hint:" not in first.message
    assert "Hint:" in second.message and "ADDS" in second.message


# No library call to refuse here: the exercise asks for a prediction, not for code.


# ----------------------------------------------------------------------------- momentum_step


def momentum_step(p, v, g, lr, m):
    v = m * v + g
    return p - lr * v, v


def momentum_step_torch_tensors(p, v, g, lr, m):
    v = m * torch.as_tensor(v) + torch.as_tensor(g)
    return torch.as_tensor(p) - lr * v, v


def momentum_step_float32(p, v, g, lr, m):
    """In float32, PyTorch's default dtype (issue 16: failed at a 1e-9 tolerance)."""
    p, v, g = (torch.tensor(x, dtype=torch.float32) for x in (p, v, g))
    v = m * v + g
    return p - lr * v, v


def momentum_step_loop(p, v, g, lr, m):
    new_p, new_v = [], []
    for pi, vi, gi in zip(p, v, g, strict=True):
        vi = m * vi + gi
        new_v.append(vi)
        new_p.append(pi - lr * vi)
    return new_p, new_v


def momentum_step_in_place(p, v, g, lr, m):
    v *= m
    v += g
    p -= lr * v
    return [p, v]


@pytest.mark.parametrize(
    "fn",
    [
        momentum_step,
        momentum_step_torch_tensors,
        momentum_step_float32,
        momentum_step_loop,
        momentum_step_in_place,
    ],
)
def test_momentum_right_answers_pass(fn):
    for _ in range(3):  # the first check's settings, then fresh ones
        feedback = chapter04.check_momentum_step(fn)
        assert feedback.ok, feedback


def sutskever(p, v, g, lr, m):
    v = m * v + lr * g
    return p - v, v


def sutskever_minus(p, v, g, lr, m):
    v = m * v - lr * g
    return p + v, v


def uphill_momentum(p, v, g, lr, m):
    v = m * v + g
    return p + lr * v, v


def plain_gd(p, v, g, lr, m):
    return p - lr * g, m * v + g


def old_velocity(p, v, g, lr, m):
    p = p - lr * v
    return p, m * v + g


def no_m(p, v, g, lr, m):
    v = v + g
    return p - lr * v, v


def wrong_velocity(p, v, g, lr, m):
    new_v = m * v + g
    return p - lr * new_v, 2 * new_v


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (sutskever, ["Sutskever", "lr"]),
        (sutskever_minus, ["Sutskever"]),
        (uphill_momentum, ["uphill"]),
        (plain_gd, ["plain gradient descent"]),
        (old_velocity, ["old velocity"]),
        (no_m, ["differs from torch.optim.SGD"]),
        (wrong_velocity, ["p is right but the v you return"]),
    ],
)
def test_momentum_mistakes_get_their_message(fn, words):
    not_yet(chapter04.check_momentum_step(fn), *words)


def momentum_with_optimizer(p, v, g, lr, m):
    t = torch.tensor(p, requires_grad=True)
    t.grad = torch.tensor(g)
    torch.optim.SGD([t], lr=lr, momentum=m).step()
    return t.detach().numpy(), v


def momentum_with_asgd(p, v, g, lr, m):
    t = torch.tensor(p, requires_grad=True)
    t.grad = torch.tensor(g)
    torch.optim.ASGD([t], lr=lr, lambd=0.0, alpha=0.0).step()
    return t.detach().numpy(), v


def test_momentum_library_is_refused():
    not_yet(
        chapter04.check_momentum_step(momentum_with_optimizer),
        "write it yourself, without",
        "torch.optim.SGD",
    )
    not_yet(chapter04.check_momentum_step(momentum_with_asgd), "write it yourself, without")


def test_momentum_settings_are_fresh_for_each_check():
    seen = []

    def remember(p, v, g, lr, m):
        seen.append((lr, m))
        return momentum_step(p, v, g, lr, m)

    chapter04.check_momentum_step(remember)
    chapter04.check_momentum_step(remember)
    assert seen[0] != seen[-1]


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (lambda p, v, g, lr, m: p - lr * g, ["return two things"]),
        (lambda p, v, g, lr, m: None, ["returned None"]),
        (lambda p, v, g, lr, m: (p, v, g), ["return two things"]),
        (lambda p, v, g, lr, m: (p[:1], v), ["shape"]),
        (lambda p, v, g, lr, m: ("p", "v"), ["not an array of numbers"]),
        (lambda p, v, g, lr, m: ((p, v), v), ["tuple"]),
        (lambda p, v, g, lr, m: (p * np.nan, v * np.nan), []),
        (raises, ["ValueError"]),
        (not_written, ["not written yet"]),
        (lambda p, v: (p, v), ["TypeError"]),
        (None, ["expected a function"]),
    ],
)
def test_momentum_odd_answers_never_raise(fn, words):
    not_yet(chapter04.check_momentum_step(fn), *words)


def test_momentum_hint_grows():
    first = chapter04.check_momentum_step(sutskever)
    second = chapter04.check_momentum_step(sutskever)
    assert "Hint:" not in first.message
    assert "Hint:" in second.message and "lr out of the velocity" in second.message
    assert "v = m * v + g" not in second.message  # a hint, not the solution


# ----------------------------------------------------------------------------- quiz


def test_quiz_right_answers_all_pass():
    result = chapter04.check_quiz({1: 2.303, 2: "b", 3: "c", 4: 0.02, 5: "a"})
    assert result.ok and result.total == 5, result


def test_quiz_wrong_and_missing_answers_never_raise():
    result = chapter04.check_quiz({1: 0, 2: "a", 3: None, 4: "x", "5": "(A)"})
    assert result.right == 1 and result.total == 5
    assert chapter04.check_quiz(None).right == 0
    assert chapter04.check_quiz("b").right == 0


def test_quiz_keys_are_true():
    """Each key is what PyTorch computes, not only what the explanation says."""
    # 1: the loss of an all-zero 10-class model is ln 10.
    loss = F.cross_entropy(torch.zeros(4, 10), torch.tensor([0, 3, 7, 9]))
    assert abs(loss.item() - chapter04.QUIZ[1].answer) < 1e-6
    # 2: dL/dW has W's shape (784, 10) for a batch of 128.
    W = torch.zeros(784, 10, requires_grad=True)
    F.cross_entropy(torch.randn(128, 784) @ W, torch.randint(0, 10, (128,))).backward()
    assert tuple(W.grad.shape) == (784, 10) and chapter04.QUIZ[2].answer == "b"
    # 3: backward() adds to .grad.
    assert chapter04.grad_factor_after(2) == pytest.approx(2.0) and chapter04.QUIZ[3].answer == "c"
    # 4: the lecture's SGD(lr=0.01, momentum=0.5) steps 0.02 x g in a steady direction.
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=0.01, momentum=0.5)
    for _ in range(60):
        before = p.item()
        optimizer.zero_grad()
        p.sum().backward()
        optimizer.step()
    assert before - p.item() == pytest.approx(chapter04.QUIZ[4].answer, abs=1e-12)
    # 5: nn.Linear(784, 10).weight is (10, 784).
    assert tuple(nn.Linear(784, 10).weight.shape) == (10, 784) and chapter04.QUIZ[5].answer == "a"


# ----------------------------------------------------------------------------- the notebook


def notebook_cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def test_exercises_match_the_notebook_in_order():
    checkers = [c for c in notebook_cells() if "checker" in c["metadata"].get("tags", [])]
    names = [c["metadata"]["exercise"] for c in checkers]
    assert tuple(names) == chapter04.EXERCISES
    for cell, name in zip(checkers, names, strict=True):
        fn = getattr(chapter04, "".join(cell["source"]).split("(")[0].split(".")[-1].strip())
        assert fn.exercise == name


def test_the_notebook_keeps_its_conventions():
    cells = notebook_cells()
    assert "[Glossary 术语表](glossary.md)" in "".join(cells[0]["source"])
    assert sum(c["metadata"]["slideshow"]["slide_type"] == "notes" for c in cells) >= 3
    quiz = [c for c in cells if "quiz" in c["metadata"].get("tags", [])]
    assert len(quiz) == 1 and "chapter04.check_quiz(answers)" in "".join(quiz[0]["source"])
    assert "05_mnist_mlp.ipynb" in "".join(cells[-1]["source"])
    for cell in cells:
        if cell["cell_type"] == "code":
            assert len("".join(cell["source"]).splitlines()) < 15


def test_the_checkers_own_experiments_are_refused():
    def borrowed():
        return chapter04.grad_factor_after(3), "b"

    feedback = chapter04.check_no_zero_grad(borrowed)
    assert not feedback.ok and "course's own answer" in feedback.message, feedback.message


def test_sys_exit_and_a_function_that_never_returns_are_reported(monkeypatch):
    import sys

    monkeypatch.setattr(exercises, "TIME_LIMIT", 0.2)

    def forever(params, lr):
        while True:
            pass

    not_yet(chapter04.check_sgd_step(lambda params, lr: sys.exit(1)), "sys.exit()")
    not_yet(chapter04.check_sgd_step(forever), "was stopped")


# ----------------------------------------------------------------------------- what the text teaches


def distance_after(lr: float, momentum: float, nesterov: bool, curvature: float = 20.0) -> float:
    """|p| after 400 steps of torch.optim.SGD on f(p) = curvature * p**2 / 2, from p = 1."""
    p = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=lr, momentum=momentum, nesterov=nesterov)
    for _ in range(400):
        optimizer.zero_grad()
        (0.5 * curvature * p**2).sum().backward()
        optimizer.step()
    return abs(p.item())


@pytest.mark.parametrize("m", [0.5, 0.9])
def test_the_stability_limits_taught_for_momentum_and_nesterov(m):
    """lr * h < 2(1 + m) for momentum, < 2(1 + m) / (1 + 2m) for PyTorch's Nesterov."""
    h = 20.0
    for nesterov, limit in ((False, 2 * (1 + m) / h), (True, 2 * (1 + m) / ((1 + 2 * m) * h))):
        assert distance_after(0.97 * limit, m, nesterov) < 1e-2
        assert distance_after(1.03 * limit, m, nesterov) > 1e2


def test_pytorch_nesterov_visits_sutskever_s_look_ahead_points():
    """PyTorch's p - lr(g + m b) is Sutskever et al.'s gradient at the look-ahead point, rewritten.

    In the chapter's form (v <- m v + lr g, p <- p - v) the look-ahead point is p - m v; the
    paper's v carries the minus sign, so it writes theta + mu v. Both are checked.
    """
    h, lr, m = np.array([1.0, 20.0]), 0.03, 0.5
    p = torch.tensor([-9.0, 1.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=lr, momentum=m, nesterov=True)
    q, v = np.array([-9.0, 1.0]), np.zeros(2)  # the chapter's form
    theta, w = np.array([-9.0, 1.0]), np.zeros(2)  # the paper's form
    for _ in range(30):
        optimizer.zero_grad()
        (0.5 * torch.from_numpy(h) * p**2).sum().backward()
        optimizer.step()
        v = m * v + lr * h * (q - m * v)  # the gradient at the look-ahead point p - m v
        q = q - v
        w = m * w - lr * h * (theta + m * w)
        theta = theta + w
        params = p.detach().numpy()
        assert np.allclose(params, q - m * v, rtol=0, atol=1e-12)
        assert np.allclose(params, theta + m * w, rtol=0, atol=1e-12)
    assert np.abs(params - (q + m * v)).max() > 0.05  # the other sign is not the look-ahead


def test_softmax_regression_has_no_unique_minimum():
    """A shift shared by every class leaves the loss unchanged; on separated data, scaling lowers it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 784, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (50,), generator=g)
    w = torch.randn(784, 10, generator=g, dtype=torch.float64) * 0.01
    u = torch.randn(784, 1, generator=g, dtype=torch.float64)
    assert F.cross_entropy(x @ (w + u) + 0.5, y).item() == pytest.approx(
        F.cross_entropy(x @ w, y).item(), abs=1e-9
    )
    right = (x @ w).argmax(1) == y
    losses = [F.cross_entropy(x[right] @ (k * w), y[right]).item() for k in (1, 2, 4, 8)]
    assert all(a > b > 0 for a, b in zip(losses, losses[1:], strict=False))


# ----------------------------------------------------------------------------- Chinese feedback


def test_feedback_in_chinese(chinese):
    """The chapter's catalog speaks: a symptom, its hint, a success line and a quiz explanation."""
    wrong = chapter04.check_momentum_step(plain_gd, hint=2)
    assert not wrong.ok
    assert wrong.message.startswith("你的这一步只是普通的梯度下降：速度根本没有用上。")
    assert "先更新速度，再用它走这一步。" in wrong.message
    assert "plain gradient descent" not in wrong.message and "velocity" not in wrong.message
    right = chapter04.check_momentum_step(momentum_step)
    assert right.ok
    assert right.message.startswith("4 步都与 torch.optim.SGD(lr=")
    assert right.message.endswith(") 一致，p 和速度都是。")
    marked = chapter04.check_quiz({3: "c"})
    assert "用 zero_grad() 把它清零" in marked.lines[2], marked.lines[2]
