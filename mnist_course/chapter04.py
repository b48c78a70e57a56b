"""Exercises and quiz of chapter 4 (Softmax regression: from a loss to a trained classifier).

Three exercises, in notebook order (:data:`EXERCISES`):

- ``sgd_step``: one step of gradient descent by hand on PyTorch parameters
  (``p -= lr * p.grad`` in place, inside ``torch.no_grad()``), without ``torch.optim``;
- ``no_zero_grad``: a "break it" prediction: what ``.grad`` holds after three
  ``backward()`` calls without ``zero_grad``, and what that does to training.
  The checker runs both experiments and reports what it measured;
- ``momentum_step``: one step of SGD with momentum in PyTorch's form
  (``v = m v + g``, ``p = p - lr v``), checked against ``torch.optim.SGD``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import exercises, i18n, quiz
from mnist_course.exercises import NotYet

_ = i18n.translator(__name__)

EXERCISES: tuple[str, ...] = ("sgd_step", "no_zero_grad", "momentum_step")

# What an exercise that asks for an update "by hand" may not call.
FORBIDDEN_OPTIM: tuple[str, ...] = (
    "torch.optim.SGD.step",  # on the class, so every way of reaching SGD is caught
    "torch.optim.SGD",
    "torch.optim.Optimizer.__init__",  # every optimiser (ASGD, Adam, ...), however imported
    "torch.optim.sgd.sgd",  # the functional form and its insides
    "torch.optim.sgd._single_tensor_sgd",
    "torch.optim.sgd._multi_tensor_sgd",
    "torch.optim.sgd._fused_sgd",
    "torch.optim._functional.sgd",
    "torch.optim.Adam.step",
    "torch.optim.AdamW.step",
)


def _run(fn: Any, *args: Any, forbidden: tuple[str, ...] = FORBIDDEN_OPTIM) -> Any:
    """Like :func:`exercises.call`, but ``None`` is a fine result (an in-place update returns it)."""
    try:
        return exercises.run_learner(fn, *args, forbidden=forbidden)
    except NotYet as not_yet:
        if "leaf" in not_yet.symptom and "in-place" in not_yet.symptom:
            raise NotYet(
                _(
                    "PyTorch refused to change a parameter in place while it records operations "
                    "for backward (a leaf tensor that requires grad)."
                ),
                _("do the update inside `with torch.no_grad():`, so it is not recorded."),
            ) from None
        raise


# ---------------------------------------------------------------------------------------------
# Exercise 1: one step of gradient descent by hand
# ---------------------------------------------------------------------------------------------


def _params_with_grads(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small softmax-regression weight and bias whose ``.grad`` holds a real gradient."""
    g = torch.Generator().manual_seed(4 + seed)
    weight = torch.randn(3, 5, generator=g).requires_grad_()
    bias = torch.randn(3, generator=g).requires_grad_()
    x = torch.randn(8, 5, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    F.cross_entropy(x @ weight.T + bias, y).backward()
    return weight, bias


_SGD_HINT = i18n.N_(
    "for every parameter, subtract lr times its gradient from the tensor itself, in place "
    "(an augmented assignment changes it in place), inside torch.no_grad()."
)


def _moved(new: torch.Tensor, old: torch.Tensor, step: torch.Tensor) -> bool:
    return bool(torch.isfinite(new).all()) and torch.allclose(new, old + step, atol=1e-6, rtol=1e-5)


@exercises.checker(
    "sgd_step",
    expects=i18n.N_("a function sgd_step(params, lr) that changes each parameter in place"),
)
def check_sgd_step(fn: Callable[[list[torch.Tensor], float], Any]) -> str:
    """Chapter 4 exercise: ``fn(params, lr)`` does ``p -= lr * p.grad`` for each p, in place."""
    seed = exercises.draw("sgd_step")
    g = torch.Generator().manual_seed(seed)
    lr = 0.1 if seed == 0 else round(0.05 + 0.45 * float(torch.rand((), generator=g)), 3)
    weight, bias = _params_with_grads(seed)
    before = [p.detach().clone() for p in (weight, bias)]
    grads = [p.grad.clone() for p in (weight, bias)]
    _run(fn, [weight, bias], lr)
    after = [p.detach() for p in (weight, bias)]
    if _moved(after[0], before[0], -lr * grads[0]) and torch.equal(after[1], before[1]):
        raise NotYet(
            _(
                "the weight moved but the bias did not change: every parameter takes the step. "
                "Did the loop stop after the first one (a `return` inside it)?"
            ),
            _("return (if at all) after the loop, once every parameter has moved."),
        )
    for name, p, old, grad in zip(("weight", "bias"), (weight, bias), before, grads, strict=True):
        new_p = p.detach()
        if _moved(new_p, old, -lr * grad):
            continue
        _sgd_mistake(name, new_p, old, grad, lr)
    return _("both parameters moved by -lr * grad, in place, without torch.optim.")


def _sgd_mistake(
    name: str, new_p: torch.Tensor, old: torch.Tensor, grad: torch.Tensor, lr: float
) -> None:
    """Raise :class:`NotYet` naming what went wrong with parameter ``name`` ("weight"/"bias")."""
    weight = name == "weight"
    if not torch.isfinite(new_p).all():
        raise NotYet(
            _("the weight holds NaN or inf after your step.")
            if weight
            else _("the bias holds NaN or inf after your step."),
            _(_SGD_HINT),
        )
    if torch.equal(new_p, old):
        raise NotYet(
            _(
                "the weight did not change. `p = p - lr * p.grad` makes a new tensor and "
                "only rebinds the name p; the model's parameter stays as it was."
            )
            if weight
            else _(
                "the bias did not change. `p = p - lr * p.grad` makes a new tensor and "
                "only rebinds the name p; the model's parameter stays as it was."
            ),
            _(_SGD_HINT),
        )
    if torch.allclose(new_p, old + lr * grad, atol=1e-6, rtol=1e-5):
        raise NotYet(
            _(
                "the weight moved uphill: you added the gradient. It points to where the loss "
                "grows fastest."
            )
            if weight
            else _(
                "the bias moved uphill: you added the gradient. It points to where the loss "
                "grows fastest."
            ),
            _("step against the gradient: subtract lr * p.grad."),
        )
    if torch.allclose(new_p, old - grad, atol=1e-6, rtol=1e-5):
        raise NotYet(
            _("the weight moved by the whole gradient: the learning rate is missing.")
            if weight
            else _("the bias moved by the whole gradient: the learning rate is missing."),
            _("multiply the gradient by lr before subtracting it."),
        )
    raise NotYet(
        _("the new weight is not old weight - lr * gradient.")
        if weight
        else _("the new bias is not old bias - lr * gradient."),
        _(_SGD_HINT),
    )


# ---------------------------------------------------------------------------------------------
# Exercise 2: break it, no zero_grad
# ---------------------------------------------------------------------------------------------

EFFECTS: dict[str, str] = {
    "a": "nothing changes: backward() overwrites .grad each time",
    "b": "each step uses the sum of all gradients so far: the steps keep growing, "
    "overshoot, and the loss ends up rising",
    "c": "optimizer.step() resets .grad to zero, so only the first step is wrong",
    "d": "PyTorch raises an error at the second backward() call",
}


def grad_factor_after(calls: int = 3) -> float:
    """Run it: ``.grad`` after ``calls`` backward passes (fresh forward each), over one pass's."""
    torch.manual_seed(0)
    model = nn.Linear(5, 3, dtype=torch.float64)
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    F.cross_entropy(model(x), y).backward()
    once = model.weight.grad.clone()
    for _call in range(calls - 1):
        F.cross_entropy(model(x), y).backward()  # a new graph each time, as in a training loop
    return float((model.weight.grad / once).mean())


def noisy_training_loss(zero_grad: bool, steps: int = 200, lr: float = 0.5) -> float:
    """Run it: the loss on a small noisy problem after ``steps`` mini-batch SGD steps.

    2,000 points in 20 dimensions, 10 classes from a random linear rule, 30% of
    the labels replaced at random (so no line separates them); batches of 32.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 20, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(20, 10, generator=g, dtype=torch.float64)).argmax(1)
    noise = torch.rand(2000, generator=g, dtype=torch.float64) < 0.3
    y = torch.where(noise, torch.randint(0, 10, (2000,), generator=g), y)
    torch.manual_seed(0)
    model = nn.Linear(20, 10, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _step in range(steps):
        batch = torch.randint(0, 2000, (32,), generator=g)
        if zero_grad:
            optimizer.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


@exercises.checker(
    "no_zero_grad", expects=i18n.N_("a function that returns (grad_factor, training_effect)")
)
def check_no_zero_grad(fn: Callable[[], Any]) -> str:
    """Chapter 4 "break it": ``fn()`` -> ``(grad_factor, training_effect)``, the learner's
    prediction of ``.grad`` after 3 backward calls without ``zero_grad``, and of its effect on
    training (a letter of :data:`EFFECTS`). The checker runs both and reports what it measured."""
    result = exercises.call(fn)
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise NotYet(
            _("return two things, `return grad_factor, training_effect`, got {type}.").format(
                type=type(result).__name__
            )
        )
    grad_factor, training_effect = result
    try:
        factor = exercises.as_float(grad_factor, "grad_factor")
    except NotYet:
        raise NotYet(
            _("grad_factor should be one number: how many times one call's gradient .grad holds."),
        ) from None
    measured = grad_factor_after(3)
    if not math.isfinite(factor) or abs(factor - measured) > 1e-6:
        if abs(factor - 1) < 1e-9:
            raise NotYet(
                _("grad_factor: backward() does not overwrite .grad."),
                _("it ADDS the new gradient to what .grad holds (gradient accumulation)."),
            )
        if abs(factor) < 1e-9:
            raise NotYet(
                _("grad_factor: nothing resets .grad between the calls here."),
                _("each backward() adds one gradient to .grad."),
            )
        if abs(factor - 8) < 1e-9 or abs(factor - 4) < 1e-9:
            raise NotYet(
                _("grad_factor: it does not double each time."),
                _("each call adds one more gradient: g, then g + g, then g + g + g."),
            )
        raise NotYet(
            _("grad_factor: not what running it gives."),
            _("each backward() adds one gradient to .grad; count the calls."),
        )
    letter = training_effect.strip().strip("()").lower() if isinstance(training_effect, str) else ""
    if letter not in EFFECTS:
        raise NotYet(
            _("training_effect should be one of the letters {letters}, got {given}.").format(
                letters=", ".join(EFFECTS), given=repr(training_effect)
            )
        )
    good = noisy_training_loss(zero_grad=True)
    bad = noisy_training_loss(zero_grad=False)
    if letter == "a":
        raise NotYet(
            _("training_effect: your grad_factor says .grad accumulates; then the step uses it."),
            _("step() subtracts lr * .grad, and .grad is now a sum of many gradients."),
        )
    if letter == "c":
        raise NotYet(
            _("training_effect: step() only reads .grad; it never clears it."),
            _("zero_grad() is the only call in the loop that clears .grad."),
        )
    if letter == "d":
        raise NotYet(
            _(
                "training_effect: each iteration builds a new graph with a new forward pass, "
                "so backward() runs fine (the error only comes when one graph is used twice)."
            ),
            _("no error is raised: think about what the summed gradient does to the steps."),
        )
    return _(
        "I ran it: after 3 backward calls .grad was {measured:.1f} x one call's gradient; "
        "200 steps without zero_grad on a small noisy problem ended at loss {bad:.0f}, "
        "with zero_grad at {good:.1f}."
    ).format(measured=measured, bad=bad, good=good)


# ---------------------------------------------------------------------------------------------
# Exercise 3: one step of SGD with momentum, PyTorch's form
# ---------------------------------------------------------------------------------------------

_CURVATURE = np.array([1.0, 20.0])  # f(p) = 0.5 * sum(curvature * p**2): an elongated bowl


def _torch_momentum_path(
    lr: float, m: float, steps: int, start: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(p, velocity) after each step of ``torch.optim.SGD(momentum=m)`` on the bowl, in float64."""
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=lr, momentum=m)
    curvature = torch.tensor(_CURVATURE)
    path = []
    for _step in range(steps):
        optimizer.zero_grad()
        (0.5 * (curvature * p**2).sum()).backward()
        optimizer.step()
        velocity = optimizer.state[p]["momentum_buffer"]
        path.append((p.detach().numpy().copy(), velocity.numpy().copy()))
    return path


def _learner_step(
    fn: Callable[..., Any], p: np.ndarray, v: np.ndarray, lr: float, m: float, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """The learner's (new p, new v) from ``(p, v)`` on the bowl, read without crashing."""
    result = _run(fn, p.copy(), v.copy(), _CURVATURE * p, lr, m)
    if result is None:
        raise NotYet(_("your function returned None: did you forget `return p, v`?"))
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise NotYet(
            _("return two things, the new p and the new v (`return p, v`), got {type}.").format(
                type=type(result).__name__
            )
        )
    new_p = exercises.as_array(result[0], _("the new p"))
    new_v = exercises.as_array(result[1], _("the new v"))
    if new_p.shape != (2,) or new_v.shape != (2,):
        raise NotYet(
            _(
                "p and v keep the parameter's shape (2,); got {p_shape} and {v_shape} "
                "at step {step}."
            ).format(p_shape=new_p.shape, v_shape=new_v.shape, step=step)
        )
    return new_p, new_v


# float32 (PyTorch's default) answers are right: a relative tolerance that float32 meets.
MOMENTUM_TOL = 1e-5


@exercises.checker(
    "momentum_step",
    expects=i18n.N_("a function momentum_step(p, v, g, lr, m) that returns (p, v)"),
)
def check_momentum_step(fn: Callable[..., Any]) -> str:
    """Chapter 4 exercise: ``fn(p, v, g, lr, m)`` -> ``(p_new, v_new)`` as ``torch.optim.SGD`` does.

    First the learner's own path (their p and v fed back) against ``torch.optim.SGD``; if
    it differs, one step from PyTorch's own state names the mistake. Fresh settings and
    start for each check after the first; float32 answers pass.
    """
    seed = exercises.draw("momentum_step")
    lr, m, steps, start = 0.05, 0.5, 4, np.array([-9.0, 1.0])
    if seed:
        rng = np.random.default_rng(seed)
        lr, m = round(float(rng.uniform(0.01, 0.08)), 3), round(float(rng.uniform(0.3, 0.9)), 2)
        start = np.round(rng.uniform(-9, 9, size=2), 2)
    expected = _torch_momentum_path(lr, m, steps, start)
    p, v = start.copy(), np.zeros(2)
    path = []
    for step in range(1, steps + 1):
        p, v = _learner_step(fn, p, v, lr, m, step)
        path.append((p, v))
    tol = MOMENTUM_TOL
    p_ok = all(exercises.close(a[0], b[0], tol) for a, b in zip(path, expected, strict=True))
    v_ok = all(exercises.close(a[1], b[1], tol) for a, b in zip(path, expected, strict=True))
    if p_ok and v_ok:
        return _(
            "{steps} steps match torch.optim.SGD(lr={lr}, momentum={m}), p and velocity."
        ).format(steps=steps, lr=lr, m=m)
    with np.errstate(all="ignore"):
        ratio = path[0][1] / expected[0][1]
    if p_ok and (np.allclose(ratio, lr) or np.allclose(ratio, -lr)):
        raise NotYet(
            _(
                "p is right, but your v holds lr: that is the form v = m v + lr g, p = p - v "
                "(Sutskever et al.). PyTorch keeps lr out of the velocity."
            ),
            _("keep lr out of the velocity: it multiplies only the step."),
        )
    # One step from PyTorch's own state after step 1 (a velocity that is not zero).
    p1, v1 = expected[0]
    g1 = _CURVATURE * p1
    right_v = m * v1 + g1
    new_p, new_v = _learner_step(fn, p1, v1, lr, m, 2)
    if not (np.isfinite(new_p).all() and np.isfinite(new_v).all()):
        raise NotYet(_("your p or v holds NaN or inf."), _(_MOMENTUM_HINT))
    if exercises.close(new_p, p1 - lr * right_v, tol):
        raise NotYet(
            _("p is right but the v you return is not PyTorch's velocity (the next step uses it)."),
            _("return the velocity you updated, not the old one or the gradient."),
        )
    if exercises.close(new_p, p1 + lr * right_v, tol):
        raise NotYet(
            _("the step went uphill: p moved along the gradient."), _("step against the velocity.")
        )
    if exercises.close(new_p, p1 - lr * g1, tol):
        raise NotYet(
            _("your step is plain gradient descent: the velocity is never used."),
            _("update the velocity first, then step with it."),
        )
    if exercises.close(new_p, p1 - lr * v1, tol):
        raise NotYet(
            _("you stepped with the old velocity, before updating it."),
            _("update the velocity first, then step with the new one."),
        )
    if exercises.close(new_p, p1 - lr * right_v, 1e-3):
        raise NotYet(
            _(
                "your path is close to torch.optim.SGD's but not within float32's precision: "
                "check the dtype and each operation."
            ),
            _(_MOMENTUM_HINT),
        )
    raise NotYet(
        _(
            "the path differs from torch.optim.SGD(momentum=m): checked one step from "
            "PyTorch's own state, your new p is none of the usual mistakes either."
        ),
        _(_MOMENTUM_HINT),
    )


_MOMENTUM_HINT = i18n.N_(
    "in PyTorch's form the velocity is m times the old velocity plus the gradient (no lr "
    "in it), and the step is lr times the velocity."
)


# ---------------------------------------------------------------------------------------------
# Quiz
# ---------------------------------------------------------------------------------------------

QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        math.log(10),
        i18n.N_(
            "With all weights zero every logit is 0, so softmax gives each of the 10 classes "
            "probability 1/10 and the loss is -log(1/10) = ln 10 = 2.303 for every image."
        ),
        tolerance=0.005,
    ),
    2: quiz.Question(
        "b",
        i18n.N_(
            "A gradient has the shape of its parameter: X^T (P - Y) / N is (784 x 128)(128 x 10) "
            "= 784 x 10, like W."
        ),
    ),
    3: quiz.Question(
        "c",
        i18n.N_(
            "backward() adds the new gradient to .grad (accumulates), so the loop clears it with "
            "zero_grad() before each backward()."
        ),
    ),
    4: quiz.Question(
        0.02,
        i18n.N_(
            "In a steady direction the velocity v = m v + g grows to g / (1 - m), so each step "
            "is lr / (1 - m) times g: 0.01 / (1 - 0.5) = 0.02."
        ),
        tolerance=1e-4,
    ),
    5: quiz.Question(
        "a",
        i18n.N_(
            "nn.Linear(784, 10) stores weight as (out, in) = (10, 784) and computes "
            "x @ weight.T + bias."
        ),
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the chapter 4 quiz."""
    return quiz.check("chapter 4", QUIZ, answers, module=__name__)
