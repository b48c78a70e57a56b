"""Exercises and quiz of chapter 1 (Cross-entropy in NumPy).

Three exercises, in notebook order: a stable ``softmax``, a stable
``log_softmax`` and the batch ``cross_entropy`` with class indices. Each
checker runs the learner's function with the library versions made
unavailable (the course's own ``mnist_course.losses`` included), tells each
typical mistake apart, and never raises.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from mnist_course import exercises, losses, quiz
from mnist_course.exercises import NotYet

EXERCISES: tuple[str, ...] = ("softmax", "log_softmax", "cross_entropy")


def optional(paths: Iterable[str]) -> list[str]:
    """Keep the dotted paths whose top-level package is installed (SciPy is optional)."""
    return [p for p in paths if importlib.util.find_spec(p.split(".")[0]) is not None]


# Every ready-made softmax a learner could reach from NumPy code.
SOFTMAXES: list[str] = [
    "mnist_course.losses.softmax",
    "mnist_course.losses.log_softmax",
    "torch.softmax",
    "torch.log_softmax",
    "torch.Tensor.softmax",
    "torch.Tensor.log_softmax",
    "torch.nn.functional.softmax",
    "torch.nn.functional.log_softmax",
    *optional(["scipy.special.softmax", "scipy.special.log_softmax"]),
]
LOGSUMEXPS: list[str] = [
    "torch.logsumexp",
    "torch.Tensor.logsumexp",
    *optional(["scipy.special.logsumexp"]),
]
# The loss itself; chapter 1's reference log-softmax stays allowed (the exercise builds on it).
LOSSES: list[str] = [
    "mnist_course.losses.cross_entropy",
    "torch.nn.functional.cross_entropy",
    "torch.nn.functional.nll_loss",
]


# The cases: ordinary logits (a batch and one sample), and logits whose exp() overflows.
_RNG = np.random.default_rng(0)
SMALL = _RNG.normal(size=(4, 5))
LARGE = np.array([[1000.0, 0.0, -1000.0], [-500.0, 500.0, 0.0]])
LABELS = np.array([1, 0, 4, 2])
LARGE_LABELS = np.array([1, 2])


def _rows(name: str, fn: Any, reference: Callable[..., np.ndarray], forbidden: list[str]) -> str:
    """Shared by softmax and log_softmax: the same cases and the same typical mistakes."""
    for case in (SMALL, SMALL[0]):
        got = exercises.as_array(exercises.call(fn, case.copy(), forbidden=forbidden))
        if got.shape != case.shape:
            raise NotYet(
                f"for logits of shape {case.shape} you returned shape {got.shape}.",
                "keep one value per logit: use keepdims=True when you take the max or the sum.",
            )
        if exercises.close(got, reference(case)):
            continue
        if np.isnan(got).any():
            raise NotYet(
                "your function returns nan on ordinary logits.",
                "check each step on z = [1.0, 2.0, 3.0] by hand.",
            )
        if case.ndim == 2 and exercises.close(got, reference(case, axis=0)):
            raise NotYet(
                "you normalised down the columns (axis=0).",
                "each row is one sample: use axis=-1 (with keepdims=True).",
            )
        if name == "softmax":
            if case.ndim == 2 and np.isclose(got.sum(), 1.0):
                raise NotYet(
                    "the whole batch sums to 1, not each row.",
                    "divide each row by its own sum: e.sum(axis=-1, keepdims=True).",
                )
            if not np.allclose(got.sum(axis=-1), 1.0):
                raise NotYet(
                    "your rows do not sum to 1, so they are not probabilities.",
                    "divide exp(z) by its sum along the row.",
                )
        raise NotYet(
            f"the values differ from the {name} of ordinary logits.",
            "write the formula of the section above one step at a time and compare "
            "with a small case you work out by hand.",
        )
    got = exercises.as_array(exercises.call(fn, LARGE.copy(), forbidden=forbidden))
    if got.shape != LARGE.shape:
        raise NotYet(f"for logits of shape {LARGE.shape} you returned shape {got.shape}.")
    if np.isnan(got).any() or np.isposinf(got).any():
        raise NotYet(
            "nan or inf for large logits like [1000, 0, -1000]: exp() overflows.",
            "subtract each row's maximum first, z - z.max(axis=-1, keepdims=True); "
            "the result does not change.",
        )
    if name == "log_softmax" and np.isneginf(got).any():
        raise NotYet(
            "-inf for large logits like [1000, 0, -1000]: a probability underflowed to 0 "
            "before you took its log.",
            "do not take log(softmax(z)); compute (z - max) - log(sum(exp(z - max))) directly.",
        )
    if not exercises.close(got, reference(LARGE)):
        raise NotYet(
            "right on small logits, but wrong on [1000, 0, -1000].",
            "after the max shift the largest logit of each row is 0: check that row by hand.",
        )
    return "right on ordinary and on huge logits (no overflow)."


@exercises.checker("softmax")
def check_softmax(fn: Callable[[np.ndarray], Any]) -> str:
    """``fn(z)`` should be a stable softmax along the last axis, without a library softmax."""
    return _rows("softmax", fn, losses.softmax, SOFTMAXES)


@exercises.checker("log_softmax")
def check_log_softmax(fn: Callable[[np.ndarray], Any]) -> str:
    """``fn(z)`` should be a stable log-softmax along the last axis (log-sum-exp form)."""
    return _rows("log_softmax", fn, losses.log_softmax, SOFTMAXES + LOGSUMEXPS)


def loss_mistakes(
    logits: np.ndarray, labels: np.ndarray, log_probs: np.ndarray
) -> list[tuple[float, str, str]]:
    """(value, symptom, hint) of the typical wrong batch losses on this case (chapters 1 and 2)."""
    n = len(labels)
    rows = np.arange(n)
    picked = log_probs[rows, labels]
    return [
        (
            float(picked.mean()),
            "your loss is negative.",
            "cross-entropy is -log p: put a minus sign in front.",
        ),
        (
            float(-picked.sum()),
            "your loss is N times too large: you summed over the batch.",
            "PyTorch's default (reduction='mean') divides by N: take the mean.",
        ),
        (
            float(-losses.log_softmax(logits, axis=0)[rows, labels].mean()),
            "the log-softmax was taken down the columns (axis=0).",
            "each row is one sample: normalise along axis=-1.",
        ),
        (
            float(-log_probs[:, labels].mean()),
            "you averaged a whole N x N block of log-probabilities.",
            "log_probs[:, labels] picks N columns for every row; pick one entry per row: "
            "log_probs[np.arange(N), labels].",
        ),
        (
            float(-np.exp(picked).mean()),
            "you averaged minus the probabilities, not minus their logs.",
            "the loss is -log p of the true class.",
        ),
    ]


def compare_loss(value: float, expected: float, mistakes: list[tuple[float, str, str]]) -> None:
    """Raise :class:`NotYet` unless ``value`` is ``expected``; name the mistake it matches."""
    if math.isfinite(value) and abs(value - expected) < 1e-5:
        return
    for wrong, symptom, hint in mistakes:
        if math.isfinite(value) and abs(value - wrong) < 1e-5:
            raise NotYet(symptom, hint)
    raise NotYet(
        f"got {value:.6f}; the mean cross-entropy of this batch is {expected:.6f}.",
        "pick -log_softmax(z)[n, y_n] for each row n, then average over the batch.",
    )


@exercises.checker("cross_entropy")
def check_cross_entropy(fn: Callable[[np.ndarray, np.ndarray], Any]) -> str:
    """``fn(logits (N, C), labels (N,))`` -> the mean cross-entropy, one number."""
    for logits, labels in ((SMALL, LABELS), (LARGE, LARGE_LABELS)):
        result = exercises.call(fn, logits.copy(), labels.copy(), forbidden=LOSSES)
        value = exercises.as_array(result)
        if value.size != 1:
            raise NotYet(
                f"you returned shape {value.shape}; return one number.",
                "average the N per-sample losses with .mean().",
            )
        value = float(value.reshape(()))
        if logits is LARGE and not math.isfinite(value):
            raise NotYet(
                "the loss is nan or inf for logits like [1000, 0, -1000].",
                "use a stable log-softmax (losses.log_softmax, or subtract the row max) "
                "instead of log(softmax(z)).",
            )
        expected = float(losses.cross_entropy(logits, labels))
        log_probs = losses.log_softmax(logits)
        compare_loss(value, expected, loss_mistakes(logits, labels, log_probs))
    return "right, and stable for huge logits."


QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        "b",
        "softmax is shift-invariant: subtracting the same c from every logit multiplies "
        "numerator and denominator by e^-c, so softmax([2, 1, 0]) = softmax([102, 101, 100]).",
    ),
    2: quiz.Question(
        math.log(10),
        "each class gets 1/10, so the loss is -log(1/10) = ln 10 = 2.303.",
        tolerance=0.01,
    ),
    3: quiz.Question(
        "c",
        "for the mean over N samples, dL/dz_n = (softmax(z_n) - onehot(y_n)) / N: prediction "
        "minus target, divided by N.",
    ),
    4: quiz.Question(
        "b",
        "float32's largest number is about 3.4e38 = e^88.72, so exp overflows above 88.72; "
        "float64's limit (709.78) does not protect PyTorch, which computes in float32.",
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the end-of-chapter quiz (the questions are in the notebook)."""
    return quiz.check("chapter 1", QUIZ, answers)
