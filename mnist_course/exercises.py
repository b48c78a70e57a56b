"""The machinery behind every chapter's exercises (introduced in chapter 1).

Each chapter's checkers and quiz live in ``mnist_course.chapterNN``; they are
built from the pieces here:

- :class:`Feedback`: the verdict, shown in Jupyter as one line,
  "Correct (name): ..." or "Not yet (name): ...";
- :func:`checker`: turns a checking function into a checker that never raises,
  whatever the learner's code returns or does, and whose hint grows: the first
  "Not yet" names the symptom, a second failing call (or ``hint=2``) adds a
  stronger hint. The solution is never shown;
- :func:`call`: runs the learner's function with the library functions the
  exercise asks them to write made unavailable (:func:`forbid`); calling one
  ends in "Not yet: write it yourself, without ...";
- :func:`as_array`, :func:`as_float`, :func:`close`: read an answer of any
  type without crashing.

A checking function returns the success message, or raises :class:`NotYet`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Feedback:
    """The checker's verdict: ``ok`` and one message. Shown as its message in Jupyter."""

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return f"{'Correct' if self.ok else 'Not yet'} ({self.exercise}): {self.message}"

    __repr__ = __str__


class NotYet(Exception):
    """Ends a checking function with "Not yet": the symptom, and a stronger hint for later."""

    def __init__(self, symptom: str, hint: str = "") -> None:
        super().__init__(symptom)
        self.symptom = symptom
        self.hint = hint


class ForbiddenCall(Exception):
    """The learner's code called a function that the exercise asks them to write."""


# How often each exercise has failed in this kernel: the second failure shows the hint.
_failures: dict[str, int] = {}


def checker(name: str) -> Callable[[Callable[..., str]], Callable[..., Feedback]]:
    """Decorator: a checking function (returns a message or raises :class:`NotYet`) -> a checker.

    The checker takes the same arguments plus ``hint=``; it returns a
    :class:`Feedback` and never raises.
    """

    def wrap(check: Callable[..., str]) -> Callable[..., Feedback]:
        @functools.wraps(check)
        def run(*args: Any, hint: int | None = None, **kwargs: Any) -> Feedback:
            try:
                message = check(*args, **kwargs)
            except NotYet as not_yet:
                _failures[name] = _failures.get(name, 0) + 1
                level = hint if isinstance(hint, int) else _failures[name]
                text = not_yet.symptom
                if not_yet.hint and level >= 2:
                    text += f" Hint: {not_yet.hint}"
                elif not_yet.hint:
                    text += " (Run the check again, or pass hint=2, for a hint.)"
                return Feedback(name, False, text)
            except Exception as err:  # an answer the checker could not read: still no crash
                return Feedback(
                    name, False, f"the checker could not read your answer ({type(err).__name__})."
                )
            _failures.pop(name, None)
            return Feedback(name, True, str(message))

        run.exercise = name  # type: ignore[attr-defined]
        return run

    return wrap


def _resolve(path: str) -> tuple[Any, str]:
    """``"torch.nn.functional.softmax"`` -> (the module or class that holds it, ``"softmax"``)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:-1]:
            owner = getattr(owner, part)
        return owner, parts[-1]
    raise ValueError(f"cannot find {path}")


@contextlib.contextmanager
def forbid(paths: Iterable[str], scope: dict[str, Any] | None = None) -> Iterator[list[str]]:
    """Make the functions at ``paths`` raise :class:`ForbiddenCall` for a while.

    Each is replaced where it is defined (``torch.softmax``, ``torch.Tensor.softmax``, ...)
    and under any name that ``scope`` (the learner's globals) binds it to, so
    ``from torch.nn.functional import softmax as sm`` is caught too. Yields the
    list of forbidden names that were called (even if the learner's code
    caught the exception). Everything is restored on exit.
    """
    called: list[str] = []
    restore: list[Callable[[], None]] = []

    def blocker(label: str) -> Callable[..., Any]:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            called.append(label)
            raise ForbiddenCall(label)

        return blocked

    try:
        originals: dict[int, str] = {}
        for path in paths:
            owner, attr = _resolve(path)
            original = getattr(owner, attr)
            originals[id(original)] = path
            had_own = attr in vars(owner)
            setattr(owner, attr, blocker(path))
            restore.append(
                functools.partial(setattr, owner, attr, original)
                if had_own
                else functools.partial(delattr, owner, attr)
            )
        for key, value in list((scope or {}).items()):
            if id(value) in originals:
                scope[key] = blocker(originals[id(value)])  # type: ignore[index]
                restore.append(functools.partial(scope.__setitem__, key, value))  # type: ignore[union-attr]
        yield called
    finally:
        for undo in reversed(restore):
            undo()


def call(fn: Any, *args: Any, forbidden: Iterable[str] = ()) -> Any:
    """Run the learner's ``fn(*args)`` with ``forbidden`` unavailable; raise :class:`NotYet` if it fails."""
    if not callable(fn):
        raise NotYet(f"expected a function, got {type(fn).__name__}: pass the function itself.")
    forbidden = list(forbidden)
    try:
        with (
            forbid(forbidden, getattr(fn, "__globals__", None)) as called,
            np.errstate(all="ignore"),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            result = fn(*args)
    except ForbiddenCall as err:
        raise NotYet(f"write it yourself, without `{err}`.") from None
    except NotImplementedError:
        raise NotYet("the function is not written yet (it raises NotImplementedError).") from None
    except Exception as err:  # the learner's code may raise anything
        raise NotYet(f"your function raised {type(err).__name__}: {err}") from None
    if called:
        raise NotYet(f"write it yourself, without `{called[0]}`.")
    if result is None:
        raise NotYet("your function returned None: did you forget `return`?")
    return result


def as_array(value: Any, what: str = "your function") -> np.ndarray:
    """The answer as a float64 array, or :class:`NotYet` saying why it cannot be one."""
    if isinstance(value, tuple):
        raise NotYet(f"{what} returned a tuple of {len(value)} items; return a single array.")
    try:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().double().numpy()
        array = np.asarray(value, dtype=np.float64)
    except Exception:
        raise NotYet(
            f"{what} returned a {type(value).__name__}, which is not an array of numbers."
        ) from None
    return array


def as_float(value: Any, what: str = "your function") -> float:
    """The answer as one number, or :class:`NotYet` saying why it is not one."""
    array = as_array(value, what)
    if array.size != 1:
        raise NotYet(f"{what} returned shape {array.shape}; return one number.")
    return float(array.reshape(()))


def close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    """Same shape and equal within ``tol`` (relative and absolute); NaN is never close."""
    return a.shape == b.shape and bool(np.allclose(a, b, atol=tol, rtol=tol, equal_nan=False))


# ---------------------------------------------------------------------------------------------
# Chapters 1 and 2: the original checkers, to be moved to chapter01.py / chapter02.py.
# ---------------------------------------------------------------------------------------------

import torch.nn.functional as F  # noqa: E402

from mnist_course import losses  # noqa: E402


def _call(fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """Run the learner's function; return (result, None) or (None, a description of the error)."""
    try:
        result = fn(*args)
    except NotImplementedError:
        return None, "the function is not written yet (it raises NotImplementedError)."
    except Exception as err:  # the learner's code may raise anything
        return None, f"your function raised {type(err).__name__}: {err}"
    if result is None:
        return None, "your function returned None: did you forget `return`?"
    return result, None


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=tol, rtol=tol, equal_nan=False))


# Cases shared by the checkers: ordinary logits, and logits that overflow exp().
_RNG = np.random.default_rng(0)
SMALL = _RNG.normal(size=(4, 5))
LARGE = np.array([[1000.0, 0.0, -1000.0], [-500.0, 500.0, 0.0]])
LABELS = np.array([1, 0, 4, 2])


def _check_distribution(
    name: str, fn: Callable[[np.ndarray], Any], reference: Callable[..., np.ndarray]
) -> Feedback:
    """Shared by the softmax and log-softmax checkers: same cases, same typical mistakes."""
    for case in (SMALL, SMALL[0]):
        result, error = _call(fn, case.copy())
        if error:
            return Feedback(name, False, error)
        got = _as_array(result)
        if got.shape != case.shape:
            return Feedback(
                name,
                False,
                f"for logits of shape {case.shape} you returned shape {got.shape}; "
                f"keep one value per logit (use keepdims=True when you take max or sum).",
            )
        if _close(got, reference(case)):
            continue
        if case.ndim == 2 and _close(got, reference(case, axis=0)):
            return Feedback(
                name,
                False,
                "you normalised down the columns (axis=0); each row is one sample, so use axis=-1.",
            )
        if name == "softmax" and case.ndim == 2 and np.isclose(got.sum(), 1.0):
            return Feedback(
                name,
                False,
                "you divided by the sum of the whole batch; divide each row by its own sum, "
                "e.sum(axis=-1, keepdims=True).",
            )
        if name == "softmax" and not np.allclose(got.sum(axis=-1), 1.0):
            return Feedback(
                name, False, "divide exp(z) by its sum along the row, so each row sums to 1."
            )
        return Feedback(name, False, "the values differ from the reference on ordinary logits.")
    with np.errstate(all="ignore"):
        result, error = _call(fn, LARGE.copy())
    if error:
        return Feedback(name, False, f"on large logits like [1000, 0, -1000], {error}")
    got = _as_array(result)
    if not np.all(np.isfinite(got)):
        return Feedback(
            name,
            False,
            "exp() overflows for large logits like [1000, 0, -1000] (nan or inf): subtract "
            "each row's maximum first, z - z.max(axis=-1, keepdims=True).",
        )
    if not _close(got, reference(LARGE)):
        return Feedback(name, False, "correct on small logits, but wrong on [1000, 0, -1000].")
    return Feedback(name, True, "right on ordinary and on huge logits (no overflow).")


def check_softmax(fn: Callable[[np.ndarray], Any]) -> Feedback:
    """Chapter 1 exercise: ``fn(z)`` should be a stable softmax along the last axis."""
    return _check_distribution("softmax", fn, losses.softmax)


def check_log_softmax(fn: Callable[[np.ndarray], Any]) -> Feedback:
    """Chapter 1 exercise: ``fn(z)`` should be a stable log-softmax along the last axis."""
    with np.errstate(all="ignore"):
        result, error = _call(fn, LARGE.copy())
    if not error:
        got = _as_array(result)
        if got.shape == LARGE.shape and np.isneginf(got).any() and not np.isnan(got).any():
            return Feedback(
                "log_softmax",
                False,
                "log(softmax(z)) gives -inf where a probability underflows to 0; compute "
                "z - max - log(sum(exp(z - max))) directly instead.",
            )
    return _check_distribution("log_softmax", fn, losses.log_softmax)


def _loss_feedback(name: str, got: Any, expected: float, variants: dict[str, float]) -> Feedback:
    """Compare a scalar loss with the reference, then with each typical mistake's value."""
    value = _as_array(got)
    if value.shape != ():
        return Feedback(
            name, False, f"return one number (the mean over the batch), not shape {value.shape}."
        )
    if np.isfinite(value) and abs(float(value) - expected) < 1e-5:
        return Feedback(name, True, f"{float(value):.6f} matches the reference.")
    for hint, wrong in variants.items():
        if np.isfinite(value) and abs(float(value) - wrong) < 1e-5:
            return Feedback(name, False, hint)
    return Feedback(name, False, f"got {float(value):.6f}, expected {expected:.6f}.")


def _mistakes(logits: np.ndarray, labels: np.ndarray, log_probs: np.ndarray) -> dict[str, float]:
    """Values that the typical wrong answers give on this case, each with its hint."""
    n = len(labels)
    picked = log_probs[np.arange(n), labels]
    return {
        "your loss is negative: cross-entropy is -log p, so put a minus sign in front.": float(
            picked.mean()
        ),
        "you summed over the batch; PyTorch's default (reduction='mean') divides by N.": float(
            -picked.sum()
        ),
        "log-softmax was taken down the columns (axis=0); each row is one sample, use axis=-1.": float(
            -losses.log_softmax(logits, axis=0)[np.arange(n), labels].mean()
        ),
        "log_probs[:, labels] picks a whole N x N block; pick one entry per row: "
        "log_probs[np.arange(N), labels].": float(-log_probs[:, labels].mean()),
    }


def check_cross_entropy(fn: Callable[[np.ndarray, np.ndarray], Any]) -> Feedback:
    """Chapter 1 exercise: ``fn(logits (N, C), labels (N,))`` -> mean cross-entropy (a number)."""
    name = "cross_entropy"
    for logits, labels in ((SMALL, LABELS), (LARGE, np.array([1, 2]))):
        with np.errstate(all="ignore"):
            result, error = _call(fn, logits.copy(), labels.copy())
        if error:
            return Feedback(name, False, error)
        value = _as_array(result)
        if logits is LARGE and value.shape == () and not np.isfinite(value):
            return Feedback(
                name,
                False,
                "the loss is nan/inf for logits like [1000, 0, -1000]: use a stable log-softmax "
                "(subtract the row max) instead of log(softmax(z)).",
            )
        log_probs = losses.log_softmax(logits)
        expected = float(losses.cross_entropy(logits, labels))
        feedback = _loss_feedback(name, value, expected, _mistakes(logits, labels, log_probs))
        if not feedback.ok:
            return feedback
    return Feedback(name, True, "right, and stable for huge logits.")


# Chapter 2 cases, as PyTorch tensors.
Z = torch.tensor(SMALL, dtype=torch.float32)
Y = torch.tensor(LABELS)


def check_nll_loss(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> Feedback:
    """Chapter 2 exercise: ``fn(log_probs (N, C), target (N,))`` -> ``F.nll_loss`` (mean)."""
    log_probs = torch.log_softmax(Z, dim=1)
    result, error = _call(fn, log_probs.clone(), Y.clone())
    if error:
        return Feedback("nll_loss", False, error)
    lp = log_probs.double().numpy()
    expected = float(F.nll_loss(log_probs, Y))
    return _loss_feedback("nll_loss", result, expected, _mistakes(SMALL, LABELS, lp))


def check_cross_entropy_torch(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> Feedback:
    """Chapter 2 exercise: ``fn(logits, target)`` built from log-softmax and NLL == ``F.cross_entropy``."""
    name = "cross_entropy (PyTorch)"
    result, error = _call(fn, Z.clone(), Y.clone())
    if error:
        return Feedback(name, False, error)
    expected = float(F.cross_entropy(Z, Y))
    softmax = torch.softmax(Z, dim=1)
    variants = _mistakes(SMALL, LABELS, torch.log_softmax(Z, dim=1).double().numpy())
    variants.update(
        {
            "nll_loss expects LOG-probabilities: use torch.log_softmax, not torch.softmax.": float(
                F.nll_loss(softmax, Y)
            ),
            "cross_entropy already applies log-softmax; feeding it softmax(z) applies softmax "
            "twice (double softmax).": float(F.cross_entropy(softmax, Y)),
        }
    )
    return _loss_feedback(name, result, expected, variants)
