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

# The last verdict of each exercise's checker in this kernel. `mnist-course grade` reads it
# (never the text a cell printed, which the learner's code could print too).
verdicts: dict[str, Feedback] = {}


def checker(name: str) -> Callable[[Callable[..., str]], Callable[..., Feedback]]:
    """Decorator: a checking function (returns a message or raises :class:`NotYet`) -> a checker.

    The checker takes the same arguments plus ``hint=``; it returns a
    :class:`Feedback`, records it in :data:`verdicts`, and never raises.
    """

    def wrap(check: Callable[..., str]) -> Callable[..., Feedback]:
        @functools.wraps(check)
        def run(*args: Any, hint: int | None = None, **kwargs: Any) -> Feedback:
            verdicts.pop(name, None)  # a check that never returns leaves no verdict behind
            feedback = _run_check(*args, hint=hint, **kwargs)
            verdicts[name] = feedback
            return feedback

        def _run_check(*args: Any, hint: int | None = None, **kwargs: Any) -> Feedback:
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
    for path in forbidden:  # the library function passed as the answer itself
        owner, attr = _resolve(path)
        if getattr(owner, attr) is fn:
            raise NotYet(f"write it yourself, without `{path}`.")
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
