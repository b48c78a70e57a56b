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

from mnist_course import exercises, i18n, losses, quiz
from mnist_course.exercises import NotYet

_ = i18n.translator(__name__)
N_ = i18n.N_

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


# The PyTorch operators behind every route to a ready-made softmax or log-sum-exp
# (torch.special.softmax, nn.Softmax, Tensor.log_softmax, ...), refused however reached.
SOFTMAX_OPS: dict[str, str] = {
    "aten::_softmax": N_("PyTorch's softmax (torch.softmax, torch.special.softmax, ...)"),
    "aten::_log_softmax": N_("PyTorch's log_softmax (torch.log_softmax, torch.special, ...)"),
}
LOGSUMEXP_OPS: dict[str, str] = {
    "aten::logsumexp": N_("PyTorch's logsumexp (torch.logsumexp, torch.special.logsumexp)"),
}
LOSS_OPS: dict[str, str] = {
    "aten::nll_loss_forward": N_("PyTorch's nll_loss / cross_entropy"),
    "aten::nll_loss2d_forward": N_("PyTorch's nll_loss / cross_entropy"),
}


def ops(table: dict[str, str]) -> dict[str, str]:
    """One of the tables above (labels marked in this module), its labels in the language now."""
    return exercises.translated_labels(table, __name__)


# np.logaddexp.reduce is a log-sum-exp too.
NUMPY_LOGSUMEXPS: list[str] = ["numpy.logaddexp"]


def _cases(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh test logits for one check: (ordinary batch, its labels, huge logits, their labels).

    The huge batch has a row from +1000 to -1000 (a naive exp() overflows, the smallest
    probability underflows to 0), a row whose
    maximum is about 900 below the others (a shift by the whole batch's maximum
    underflows there), and a row of moderate logits.
    """
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(4, 7)), int(rng.integers(4, 7))
    small = rng.normal(size=(n, c)) * 2
    labels = rng.integers(0, c, size=n)
    large = rng.normal(size=(3, c)) * 300
    large[0] += 1000 - large[0].max()
    large[0, large[0].argmin()] = -1000 - 100 * rng.random()  # exp(-2000) underflows
    large[1] += -(900 + 100 * rng.random()) - large[1].max()
    large[2] /= 100
    large_labels = rng.integers(0, c, size=3)
    large_labels[0] = large[0].argmin()  # its probability underflows: log(softmax) gives inf
    return small, labels, large, large_labels


def _far_rows(seed: int, c: int) -> np.ndarray:
    """Rows whose maxima are about 800 apart, each small enough for a naive exp()."""
    rng = np.random.default_rng(seed + 10_000)
    rows = rng.normal(size=(3, c))
    rows[0] += 600
    rows[1] -= 200
    return rows


def _naive(name: str, z: np.ndarray, shift: float | np.ndarray = 0.0) -> np.ndarray:
    """The unstable forms, for telling the mistakes apart: no shift, or one shift for all rows."""
    with np.errstate(all="ignore"):
        e = np.exp(z - shift)
        total = e.sum(axis=-1, keepdims=True)
        return e / total if name == "softmax" else (z - shift) - np.log(total)


def _matches(got: np.ndarray, case: np.ndarray, reference: Callable[..., np.ndarray]) -> bool:
    """Right in float64 (to 1e-6), or right for the case rounded to float32 (to 1e-4)."""
    if exercises.close(got, reference(case)):
        return True
    rounded = case.astype(np.float32).astype(np.float64)
    return exercises.close(got, reference(rounded), tol=1e-4)


def _same(got: np.ndarray, wrong: np.ndarray) -> bool:
    """``got`` equals a wrong answer, infinities and NaN at the same places included."""
    if got.shape != wrong.shape or not np.array_equal(np.isnan(got), np.isnan(wrong)):
        return False
    finite = np.isfinite(wrong)
    if not np.array_equal(got[~finite & ~np.isnan(wrong)], wrong[~finite & ~np.isnan(wrong)]):
        return False
    return bool(np.allclose(got[finite], wrong[finite], rtol=1e-4, atol=1e-6))


def _ordinary(name: str, fn: Any, case: np.ndarray, reference: Callable, forbidden: dict) -> None:
    got = exercises.as_array(exercises.call(fn, case.copy(), **forbidden))
    if got.shape != case.shape:
        raise NotYet(
            _("for logits of shape {shape} you returned shape {got}.").format(
                shape=case.shape, got=got.shape
            ),
            _("keep one value per logit: use keepdims=True when you take the max or the sum."),
        )
    if _matches(got, case, reference):
        return
    if not np.isfinite(got).all():
        raise NotYet(
            _("your function returns nan or inf on ordinary logits."),
            _("check each step on z = [1.0, 2.0, 3.0] by hand."),
        )
    if case.ndim == 2 and exercises.close(got, reference(case, axis=0)):
        raise NotYet(
            _("you normalised down the columns (axis=0)."),
            _("each row is one sample: work along axis=-1 (with keepdims=True)."),
        )
    if name == "softmax":
        if case.ndim == 2 and np.isclose(got.sum(), 1.0):
            raise NotYet(
                _("the whole batch sums to 1, not each row."),
                _("each row is one sample: divide by that row's own sum."),
            )
        if not np.allclose(got.sum(axis=-1), 1.0):
            raise NotYet(
                _("your rows do not sum to 1, so they are not probabilities."),
                _("the denominator is the sum of exp() over the row."),
            )
    raise NotYet(
        _("the values differ from the {name} of ordinary logits.").format(name=name),
        _(
            "write the formula of the section above one step at a time and compare "
            "with a small case you work out by hand."
        ),
    )


def _rows(name: str, fn: Any, reference: Callable[..., np.ndarray], forbidden: dict) -> str:
    """Shared by softmax and log_softmax: the same cases and the same typical mistakes."""
    seed = exercises.draw(name)
    small, _labels, large, _large_labels = _cases(seed)
    for case in (small, small[0]):
        try:
            _ordinary(name, fn, case, reference, forbidden)
        except NotYet as not_yet:  # right on a batch, wrong on one sample: say which
            if case.ndim != 1:
                raise
            symptom = _("for one sample (z of shape {shape}, a single row): {symptom}").format(
                shape=case.shape, symptom=not_yet.symptom
            )
            raise NotYet(
                symptom,
                _(
                    "a z of shape (C,) is itself the one row: its max and its sum run over all of "
                    "z. Working along axis=-1 (with keepdims=True) handles both shapes without a "
                    "loop."
                ),
            ) from None
    overflow = (
        _("nan or inf for huge logits like [1000, 0, -1000]: exp() overflows."),
        _(
            "subtract each row's own maximum before exp(): every logit of a row moves by the "
            "same amount, and the result does not change."
        ),
    )
    for case in (large[0], large):  # one huge sample, then rows far apart
        got = exercises.as_array(exercises.call(fn, case.copy(), **forbidden))
        if got.shape != case.shape:
            raise NotYet(
                _("for logits of shape {shape} you returned shape {got}.").format(
                    shape=case.shape, got=got.shape
                )
            )
        if _matches(got, case, reference):
            continue
        if _same(got, _naive(name, case)):
            raise NotYet(*overflow)
        shifted_once = _naive(name, case, case.max())
        if case.ndim == 2 and _same(got, shifted_once):
            raise NotYet(
                _(
                    "you subtracted the maximum of the whole batch: a row whose logits lie far "
                    "below the others' then underflows to exp() = 0 (nan or inf)."
                ),
                _(
                    "subtract each row's own maximum: take the max along the last axis, "
                    "with keepdims=True."
                ),
            )
        with np.errstate(divide="ignore"):
            log_of_softmax = np.log(losses.softmax(case))
        if name == "log_softmax" and _same(got, log_of_softmax):
            raise NotYet(
                _(
                    "-inf for huge logits like [1000, 0, -1000]: a probability underflowed to 0 "
                    "before you took its log."
                ),
                _(
                    "do not take the log of a softmax: write log(exp(a) / s) as a - log(s), "
                    "so no probability is ever computed."
                ),
            )
        if not np.isfinite(got).all():
            raise NotYet(
                _(
                    "nan or inf for huge logits like [1000, 0, -1000]: an exp() overflowed, or a "
                    "value underflowed to 0 before a division or a log."
                ),
                overflow[1],
            )
        raise NotYet(
            _("right on small logits, but wrong on huge ones like [1000, 0, -1000]."),
            _("after the max shift the largest logit of each row is 0: check that row by hand."),
        )
    rows = _far_rows(seed, small.shape[1])
    got = exercises.as_array(exercises.call(fn, rows.copy(), **forbidden))
    if not _matches(got, rows, reference):
        if got.shape == rows.shape and _same(got, _naive(name, rows, rows.max())):
            raise NotYet(
                _(
                    "you subtracted the maximum of the whole batch: a row whose logits lie far "
                    "below the others' then underflows to exp() = 0 (nan or inf)."
                ),
                _(
                    "subtract each row's own maximum: take the max along the last axis, "
                    "with keepdims=True."
                ),
            )
        raise NotYet(
            _(
                "nan, inf or wrong values for rows whose logits lie far apart (their maxima "
                "about 800 apart)."
            ),
            _("subtract each row's own maximum: every logit of a row moves by the same amount."),
        )
    return _("right on ordinary and on huge logits (no overflow).")


@exercises.checker("softmax", expects=N_("a function softmax(z) that returns an array like z"))
def check_softmax(fn: Callable[[np.ndarray], Any]) -> str:
    """``fn(z)`` should be a stable softmax along the last axis, without a library softmax."""
    guard = {"forbidden": SOFTMAXES, "ops": ops(SOFTMAX_OPS | LOGSUMEXP_OPS)}
    return _rows("softmax", fn, losses.softmax, guard)


@exercises.checker(
    "log_softmax", expects=N_("a function log_softmax(z) that returns an array like z")
)
def check_log_softmax(fn: Callable[[np.ndarray], Any]) -> str:
    """``fn(z)`` should be a stable log-softmax along the last axis (log-sum-exp form)."""
    guard = {
        "forbidden": SOFTMAXES + LOGSUMEXPS + NUMPY_LOGSUMEXPS,
        "ops": ops(SOFTMAX_OPS | LOGSUMEXP_OPS),
    }
    return _rows("log_softmax", fn, losses.log_softmax, guard)


def _loss_mistakes(
    logits: np.ndarray, labels: np.ndarray, log_probs: np.ndarray
) -> list[tuple[float, str, str]]:
    """(value, symptom, hint) of the typical wrong batch losses on this case (chapters 1 and 2)."""
    n = len(labels)
    rows = np.arange(n)
    picked = log_probs[rows, labels]
    return [
        (
            float(picked.mean()),
            _("your loss is negative."),
            _("cross-entropy is -log p: mind the sign."),
        ),
        (
            float(-picked.sum()),
            _("your loss is N times too large: you summed over the batch."),
            _("PyTorch's default (reduction='mean') divides by N."),
        ),
        (
            float(-losses.log_softmax(logits, axis=0)[rows, labels].mean()),
            _("the log-softmax was taken down the columns (axis=0)."),
            _("each row is one sample: normalise along axis=-1."),
        ),
        (
            float(-log_probs[:, labels].mean()),
            _("you averaged a whole N x N block of log-probabilities."),
            _(
                "log_probs[:, labels] picks N columns for every row; pick one entry per row, "
                "with a row index beside the labels."
            ),
        ),
        (
            float(-np.exp(picked).mean()),
            _("you averaged minus the probabilities, not minus their logs."),
            _("the loss is -log p of the true class."),
        ),
    ]


def _compare_loss(value: float, expected: float, mistakes: list[tuple[float, str, str]]) -> None:
    """Raise :class:`NotYet` unless ``value`` is ``expected``; name the mistake it matches.

    The message never shows the expected number (it says too high or too low).
    """
    tol = 1e-5 * max(1.0, abs(expected))
    if math.isfinite(value) and abs(value - expected) < tol:
        return
    for wrong, symptom, hint in mistakes:
        if math.isfinite(value) and abs(value - wrong) < tol:
            raise NotYet(symptom, hint)
    if not math.isfinite(value):
        raise NotYet(_("your loss is {value} on ordinary logits.").format(value=value), _(CE_HINT))
    if value > expected:
        symptom = _(
            "your loss is too high for a test batch (and none of the usual mistakes gives this "
            "value)."
        )
    else:
        symptom = _(
            "your loss is too low for a test batch (and none of the usual mistakes gives this "
            "value)."
        )
    raise NotYet(symptom, _(CE_HINT))


CE_HINT = N_(
    "the loss of row n is minus the log-probability of its true class y_n; the batch's "
    "loss is their mean."
)


@exercises.checker(
    "cross_entropy", expects=N_("a function cross_entropy(logits, labels) that returns one number")
)
def check_cross_entropy(fn: Callable[[np.ndarray, np.ndarray], Any]) -> str:
    """``fn(logits (N, C), labels (N,))`` -> the mean cross-entropy, one number."""
    seed = exercises.draw("cross_entropy")
    small, labels, large, large_labels = _cases(seed)
    far = _far_rows(seed, small.shape[1])
    for logits, target in ((small, labels), (large, large_labels), (far, large_labels)):
        result = exercises.call(
            fn, logits.copy(), target.copy(), forbidden=LOSSES, ops=ops(LOSS_OPS)
        )
        value = exercises.as_array(result)
        if value.size != 1:
            raise NotYet(
                _("you returned shape {shape}; return one number.").format(shape=value.shape),
                _("average the N per-sample losses."),
            )
        value = float(value.reshape(()))
        if logits is not small and not math.isfinite(value):
            raise NotYet(
                _(
                    "the loss is nan or inf for huge logits like [1000, 0, -1000], or for rows "
                    "whose logits lie far apart."
                ),
                _(
                    "use a stable log-softmax (losses.log_softmax, or your own with each row's "
                    "own maximum subtracted) instead of log(softmax(z))."
                ),
            )
        expected = float(losses.cross_entropy(logits, target))
        log_probs = losses.log_softmax(logits)
        _compare_loss(value, expected, _loss_mistakes(logits, target, log_probs))
    return _("right, and stable for huge logits.")


QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        "b",
        N_(
            "softmax is shift-invariant: subtracting the same c from every logit multiplies "
            "numerator and denominator by e^-c, so softmax([2, 1, 0]) = softmax([102, 101, 100])."
        ),
    ),
    2: quiz.Question(
        math.log(10),
        N_("each class gets 1/10, so the loss is -log(1/10) = ln 10 = 2.303."),
        tolerance=0.01,
    ),
    3: quiz.Question(
        "c",
        N_(
            "for the mean over N samples, dL/dz_n = (softmax(z_n) - onehot(y_n)) / N: prediction "
            "minus target, divided by N."
        ),
    ),
    4: quiz.Question(
        "b",
        N_(
            "float32's largest number is about 3.4e38 = e^88.72, so exp overflows above 88.72; "
            "float64's limit (709.78) does not protect PyTorch, which computes in float32."
        ),
    ),
    5: quiz.Question(
        1.5 * math.log(2),
        N_(
            "the likelihood of the four labels is 1/2 * 1/4 * 1/8 * 1 = 1/64, and the mean "
            "cross-entropy is -log(likelihood) / N = ln(64) / 4 = (ln 2 + ln 4 + ln 8 + 0) / 4 "
            "= 1.5 ln 2 = 1.040."
        ),
        tolerance=0.01,
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the end-of-chapter quiz (the questions are in the notebook)."""
    return quiz.check("chapter 1", QUIZ, answers, module=__name__)
