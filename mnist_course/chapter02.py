"""Exercises and quiz of chapter 2 (Cross-entropy in PyTorch).

Four exercises, in notebook order: ``nll_loss`` by hand, ``cross_entropy``
from its two halves, ``ce_grad`` (the gradient of the batch loss written out,
checked against finite differences and autograd: the "backprop ninja"
drill) and ``double_softmax`` (a "break it" exercise: predict what a softmax
before ``CrossEntropyLoss`` does; the checker runs it to confirm).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnist_course import chapter01, exercises, i18n, losses, quiz
from mnist_course.chapter01 import LOSS_OPS
from mnist_course.chapter01 import _compare_loss as compare_loss
from mnist_course.chapter01 import _loss_mistakes as loss_mistakes
from mnist_course.exercises import NotYet

_ = i18n.translator(__name__)
N_ = i18n.N_

EXERCISES: tuple[str, ...] = ("nll_loss", "cross_entropy", "ce_grad", "double_softmax")

NLL_FORBIDDEN: list[str] = [
    "torch.nn.functional.nll_loss",
    "torch.nn.functional.cross_entropy",
    "mnist_course.losses.cross_entropy",
]
CE_FORBIDDEN: list[str] = [
    "torch.nn.functional.cross_entropy",
    "torch.nn.CrossEntropyLoss.forward",
    "torch._C._nn.cross_entropy_loss",
    "mnist_course.losses.cross_entropy",
]
# Anything that would compute the gradient for the learner.
GRAD_FORBIDDEN: list[str] = [
    "torch.Tensor.backward",
    "torch.autograd.backward",
    "torch.autograd.grad",
    "torch.func.grad",
    "torch.func.vjp",
    "torch.func.jacfwd",
    "torch.func.jacrev",
    "torch.autograd.functional.jacobian",
    "mnist_course.losses.cross_entropy_grad",
]
# A prediction is made before running the loss.
PREDICT_FORBIDDEN: list[str] = [
    "torch.nn.functional.cross_entropy",
    "torch.nn.functional.nll_loss",
    "mnist_course.losses.cross_entropy",
]


def _batch(seed: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh float32 logits (N, C) and labels for one check (``scale``: how far apart)."""
    g = torch.Generator().manual_seed(seed)
    n, c = int(torch.randint(4, 8, (1,), generator=g)), int(torch.randint(4, 8, (1,), generator=g))
    return torch.randn(n, c, generator=g) * scale, torch.randint(0, c, (n,), generator=g)


def _huge_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 logits far apart, each label on a row's smallest logit: its softmax
    probability underflows to 0 in float32, so log(softmax(z)) gives inf."""
    z, _labels = _batch(seed + 50_000, scale=30.0)
    labels = z.argmin(dim=1)
    rows = torch.arange(len(z))
    z[rows, labels] = z.max(dim=1).values - 150 - 50 * torch.rand(len(z))
    return z, labels


@exercises.checker(
    "nll_loss", expects=N_("a function nll_loss(log_probs, target) that returns one number")
)
def check_nll_loss(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> str:
    """``fn(log_probs (N, C), target (N,))`` -> ``F.nll_loss`` (the mean), written by hand."""
    Z, Y = _batch(exercises.draw("nll_loss"))
    log_probs = torch.log_softmax(Z, dim=1)
    value = exercises.as_array(
        exercises.call(
            fn, log_probs.clone(), Y.clone(), forbidden=NLL_FORBIDDEN, ops=chapter01.ops(LOSS_OPS)
        )
    )
    if value.size != 1:
        raise NotYet(
            _("you returned shape {shape}; return one number (a 0-dim tensor).").format(
                shape=value.shape
            ),
            _("average the picked values over the batch."),
        )
    value = float(value.reshape(()))
    if math.isnan(value):
        raise NotYet(
            _("your loss is nan."),
            _(
                "log_probs are already logarithms (negative numbers): pick each row's entry "
                "at its target directly, with no log and no softmax."
            ),
        )
    expected = F.nll_loss(log_probs, Y).item()
    logits, labels = Z.double().numpy(), Y.numpy()
    compare_loss(value, expected, loss_mistakes(logits, labels, log_probs.double().numpy()))
    return _("matches F.nll_loss (to 1e-5).")


@exercises.checker(
    "cross_entropy", expects=N_("a function cross_entropy(logits, target) that returns one number")
)
def check_cross_entropy(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> str:
    """``fn(logits, target)`` built from log-softmax and NLL == ``F.cross_entropy``.

    Checked on ordinary float32 logits, then on logits far apart, where
    ``log(softmax(z))`` underflows to -inf and only a log-softmax stays finite.
    """
    seed = exercises.draw("cross_entropy")
    Z, Y = _batch(seed)
    _check_ce_case(fn, Z, Y, far_apart=False)
    huge, labels = _huge_batch(seed)
    _check_ce_case(fn, huge, labels, far_apart=True)
    return _("matches F.cross_entropy (to 1e-5): CrossEntropyLoss = LogSoftmax + NLLLoss.")


def _check_ce_case(
    fn: Callable[..., Any], Z: torch.Tensor, Y: torch.Tensor, far_apart: bool
) -> None:
    value = exercises.as_array(exercises.call(fn, Z.clone(), Y.clone(), forbidden=CE_FORBIDDEN))
    if value.size != 1:
        raise NotYet(
            _("you returned shape {shape}; return one number (a 0-dim tensor).").format(
                shape=value.shape
            ),
            _("nll_loss with its default reduction='mean' gives one number."),
        )
    value = float(value.reshape(()))
    if not math.isfinite(value) and not far_apart:
        raise NotYet(
            _("your loss is {value} on ordinary logits.").format(value=value),
            _(
                "print what each step of your function returns on a small batch: "
                "log-probabilities are finite and at most 0, and the loss is one finite number."
            ),
        )
    if not math.isfinite(value):
        raise NotYet(
            _(
                "your loss is {value} for logits far apart (a true class 150 or more below its "
                "row's largest logit): in float32 a probability that small underflows to 0, and "
                "log(0) = -inf; an exp() of a logit above 88.7 overflows to inf."
            ).format(value=value),
            _(
                "take log_softmax of the logits (it never computes the probability itself and "
                "shifts each row by its maximum), not the log of a softmax."
            ),
        )
    probs = torch.softmax(Z, dim=1)
    specific = [
        (
            F.nll_loss(probs, Y).item(),
            _("you fed probabilities to nll_loss."),
            _("nll_loss expects LOG-probabilities, not probabilities."),
        ),
        (
            F.nll_loss(torch.log_softmax(probs, dim=1), Y).item(),
            _("you applied softmax twice (double softmax)."),
            _("the logits go straight into log_softmax: no softmax before it."),
        ),
    ]
    log_probs = torch.log_softmax(Z, dim=1).double().numpy()
    expected = F.cross_entropy(Z, Y).item()
    logits = Z.double().numpy()
    compare_loss(value, expected, specific + loss_mistakes(logits, Y.numpy(), log_probs))


# ---- ce_grad: the gradient of the mean cross-entropy, written by hand ----------------------


def grad_cases(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two fresh float64 batches: one with a class twice, one small (N = C = 3)."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(4, 7))
    labels = rng.integers(0, c, size=4)
    labels[3] = labels[0]  # a class twice
    return [
        (rng.normal(size=(4, c)), labels),
        (rng.random(size=(3, 3)), rng.permutation(3)),
    ]


def autograd_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """dL/dlogits of ``F.cross_entropy`` (mean), by autograd in float64."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    F.cross_entropy(z, torch.tensor(labels)).backward()
    assert z.grad is not None
    return z.grad.numpy()


def finite_difference_grad(logits: np.ndarray, labels: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """dL/dlogits by central differences of the NumPy reference loss (float64)."""
    grad = np.zeros_like(logits)
    for k in np.ndindex(logits.shape):
        step = np.zeros_like(logits)
        step[k] = h
        up = float(losses.cross_entropy(logits + step, labels))
        down = float(losses.cross_entropy(logits - step, labels))
        grad[k] = (up - down) / (2 * h)
    return grad


def _grad_mistakes(logits: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, str, str]]:
    """(value, symptom, hint) of the classic wrong gradients on this case."""
    n, c = logits.shape
    p = losses.softmax(logits)
    onehot = losses.one_hot(labels, c)
    right = (p - onehot) / n
    sign_hint = _(
        "dL/dz = softmax(z) - onehot(y): the true class's entry is negative, so a step "
        "against the gradient raises the true logit."
    )
    return [
        (
            right * n,
            _("your gradient is N times too large: the 1/N of the mean is missing."),
            _("the loss is the mean over N samples: what does the mean do to each term?"),
        ),
        (-right, _("your gradient has the wrong sign (onehot - softmax)."), sign_hint),
        (-right * n, _("wrong sign, and the 1/N of the mean is missing."), sign_hint),
        (
            p / n,
            _("every entry of your gradient is positive: the one-hot target was not subtracted."),
            _("subtract 1 at each row's true class before dividing by N."),
        ),
        (
            p,
            _("every entry is positive and N times too large: no one-hot, no 1/N."),
            _("subtract the one-hot target, and mind the mean over N."),
        ),
        (
            (losses.softmax(logits, axis=0) - onehot) / n,
            _("the softmax was taken down the columns (dim=0)."),
            _("each row is one sample: softmax along dim=1."),
        ),
    ]


def _bound(maxdiff: float, bounds: tuple[float, ...]) -> str:
    for bound in bounds:
        if maxdiff < bound:
            return f"maxdiff < {bound:.0e}"
    return f"maxdiff {maxdiff:.0e}"


@exercises.checker(
    "ce_grad",
    expects=N_("a function ce_grad(logits, labels) that returns an (N, C) array or tensor"),
)
def check_ce_grad(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> str:
    """``fn(logits (N, C) float64, labels (N,))`` -> dL/dlogits of the mean cross-entropy.

    Compared with finite differences of the NumPy loss and with autograd; the
    learner's code may not call autograd.
    """
    worst_auto = worst_fd = 0.0
    for logits, labels in grad_cases(exercises.draw("ce_grad")):
        args = (torch.tensor(logits), torch.tensor(labels))
        got = exercises.as_array(
            exercises.call(fn, *args, forbidden=GRAD_FORBIDDEN, no_autograd=True)
        )
        if got.shape != logits.shape:
            raise NotYet(
                _("for logits of shape {shape} you returned shape {got}.").format(
                    shape=logits.shape, got=got.shape
                ),
                _("the gradient has one entry per logit: the same shape (N, C) as the logits."),
            )
        auto = autograd_grad(logits, labels)
        numeric = finite_difference_grad(logits, labels)
        if not exercises.close(auto, numeric, tol=1e-8):  # the checker's own sanity check
            raise RuntimeError("autograd and finite differences disagree")
        if not (exercises.close(got, auto) and exercises.close(got, numeric)):
            for wrong, symptom, hint in _grad_mistakes(logits, labels):
                if exercises.close(got, wrong):
                    raise NotYet(symptom, hint)
            raise NotYet(
                _("your gradient differs from autograd and from finite differences."),
                _(
                    "differentiate the loss of one row with respect to each of its logits, "
                    "then remember the mean over N rows."
                ),
            )
        worst_auto = max(worst_auto, float(np.abs(got - auto).max()))
        worst_fd = max(worst_fd, float(np.abs(got - numeric).max()))
    return _(
        "matches autograd ({autograd}) and finite differences ({finite}) on two batches."
    ).format(
        autograd=_bound(worst_auto, (1e-12, 1e-8, 1e-6)), finite=_bound(worst_fd, (1e-8, 1e-6))
    )


# ---- double_softmax: break it ----------------------------------------------------------------

DOUBLE_SOFTMAX_CLASSES = 10


def run_double_softmax() -> tuple[float, float]:
    """Run it: (the loss of a perfect, confident network with a softmax before the loss,
    how many times smaller the gradient of a confidently wrong one gets with it)."""
    target = torch.tensor([0])
    right = torch.zeros(1, DOUBLE_SOFTMAX_CLASSES)
    right[0, 0] = 50.0  # sure and right
    lowest = F.cross_entropy(torch.softmax(right, dim=1), target).item()
    wrong = torch.zeros(1, DOUBLE_SOFTMAX_CLASSES)
    wrong[0, 3] = 10.0  # sure and wrong
    norms = []
    for extra_softmax in (False, True):
        z = wrong.clone().requires_grad_()
        F.cross_entropy(torch.softmax(z, dim=1) if extra_softmax else z, target).backward()
        assert z.grad is not None
        norms.append(z.grad.norm().item())
    return lowest, norms[0] / norms[1]


@exercises.checker(
    "double_softmax",
    expects=N_("a function that returns {'lowest_loss': a number, 'gradient': 'a', 'b' or 'c'}"),
)
def check_double_softmax(fn: Callable[[], Any]) -> str:
    """``fn()`` -> ``{"lowest_loss": number, "gradient": "a" | "b" | "c"}``; confirmed by running it."""
    got = exercises.call(fn, forbidden=PREDICT_FORBIDDEN)
    if not isinstance(got, Mapping) or not {"lowest_loss", "gradient"} <= set(got):
        shown = type(got).__name__
        if isinstance(got, Mapping):
            shown += " " + str(sorted(map(str, got)))
        raise NotYet(
            _("return a dict with the keys 'lowest_loss' and 'gradient', not {shown}.").format(
                shown=shown
            ),
            _("for example {'lowest_loss': 0.5, 'gradient': 'a'}."),
        )
    lowest, ratio = run_double_softmax()
    predicted = exercises.as_float(got["lowest_loss"], "'lowest_loss'")
    if not math.isfinite(predicted) or abs(predicted - lowest) > 0.01:
        symptom = (
            _(
                "you predict that the loss can still get near 0; running it, a perfect and "
                "confident network stays well above that."
            )
            if math.isfinite(predicted) and predicted < 0.5
            else _("running it gives a different lowest loss.")
        )
        raise NotYet(
            symptom,
            _(
                "after the extra softmax the loss receives numbers in [0, 1] as its logits; the "
                "best it can be given is p = [1, 0, ..., 0]. What is the cross-entropy of those "
                "logits?"
            ),
        )
    letter = got["gradient"]
    if not isinstance(letter, str) or letter.strip().strip("()").lower() not in ("a", "b", "c"):
        raise NotYet(_("answer 'gradient' with a letter: 'a', 'b' or 'c'."))
    if letter.strip().strip("()").lower() != "c":
        raise NotYet(
            _("running it does not confirm your answer about the gradient."),
            _(
                "the gradient reaching the logits passes through the extra softmax's Jacobian "
                "diag(p) - p p^T. Work out its entries for a confident p, one entry close to 1 "
                "and the others close to 0."
            ),
        )
    times = _("over 1000") if ratio > 1000 else f"{ratio:.0f}"
    return _(
        "confirmed by running it: a perfect, confident 10-class network still has loss "
        "{lowest:.3f}, never below ln(1 + 9/e); a confidently wrong one gets a gradient "
        "{times} times smaller than without the extra softmax, so it barely learns."
    ).format(lowest=lowest, times=times)


QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        "b",
        N_(
            "class-index targets are integers of dtype torch.long (int64), one per sample, shape (N,)."
        ),
    ),
    2: quiz.Question(
        "b",
        N_(
            "CrossEntropyLoss(z, y) = NLLLoss(LogSoftmax(z), y): NLLLoss does no softmax itself, "
            "it expects log-probabilities."
        ),
    ),
    3: quiz.Question(
        2.5,
        N_(
            "with reduction='mean' the weighted losses are divided by the sum of w[y_n] over the "
            "kept samples: w[2] + w[0] + w[0] = 0.5 + 1 + 1 = 2.5 (not the sum of all weights, 3.5, "
            "and not N = 3)."
        ),
        tolerance=1e-6,
    ),
    4: quiz.Question(
        "b",
        N_(
            "an ignored sample counts for nothing, not even in the mean's denominator: with one of "
            "three targets equal to ignore_index, the mean divides by 2 (without weights)."
        ),
    ),
    5: quiz.Question(
        "b",
        N_(
            "a.permute(1, 0) swaps the two axes: the transpose [[0, 3], [1, 4], [2, 5]]. "
            "a.view(3, 2) keeps the memory order 0, 1, ..., 5 and cuts it into rows of 2: "
            "[[0, 1], [2, 3], [4, 5]]. Same shape, different tables."
        ),
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the end-of-chapter quiz (the questions are in the notebook)."""
    return quiz.check("chapter 2", QUIZ, answers, module=__name__)
