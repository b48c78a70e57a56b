"""The exercise checkers accept a right answer and name each typical mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_course import exercises, losses


def stub(*args):
    raise NotImplementedError


def test_feedback_reads_as_its_message():
    good = exercises.Feedback("x", True, "fine")
    bad = exercises.Feedback("x", False, "fix it")
    assert bool(good) and not bool(bad)
    assert repr(good) == "Correct (x): fine" and str(bad) == "Not yet (x): fix it"


def naive_softmax(z):
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def column_softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def no_keepdims_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize(
    "fn, ok, hint",
    [
        (losses.softmax, True, "no overflow"),
        (naive_softmax, False, "subtract each row's maximum"),
        (column_softmax, False, "axis=0"),
        (lambda z: np.exp(z - z.max(axis=-1, keepdims=True)), False, "sums to 1"),
        (no_keepdims_softmax, False, "its own sum"),
        (lambda z: losses.softmax(z)[..., ::-1], False, "differ"),
        (lambda z: z[..., :1], False, "keepdims"),
        (stub, False, "not written yet"),
        (lambda z: None, False, "return"),
        (lambda z: 1 / 0, False, "ZeroDivisionError"),
    ],
)
def test_check_softmax(fn, ok, hint):
    feedback = exercises.check_softmax(fn)
    assert feedback.ok is ok and hint in feedback.message


def naive_log_softmax(z):
    return np.log(losses.softmax(z))


@pytest.mark.parametrize(
    "fn, ok, hint",
    [
        (losses.log_softmax, True, "no overflow"),
        (naive_log_softmax, False, "-inf"),
        (lambda z: np.log(naive_softmax(z)), False, "overflows"),
        (lambda z: losses.log_softmax(z, axis=0), False, "axis=0"),
        (stub, False, "not written yet"),
    ],
)
def test_check_log_softmax(fn, ok, hint):
    feedback = exercises.check_log_softmax(fn)
    assert feedback.ok is ok and hint in feedback.message


def ce(log_softmax=losses.log_softmax, sign=-1.0, reduce=np.mean, pick="row"):
    def fn(logits, labels):
        lp = log_softmax(logits)
        picked = lp[np.arange(len(labels)), labels] if pick == "row" else lp[:, labels]
        return sign * reduce(picked)

    return fn


@pytest.mark.parametrize(
    "fn, ok, hint",
    [
        (ce(), True, "stable"),
        (lambda z, y: losses.cross_entropy(z, y), True, "stable"),
        (ce(sign=1.0), False, "minus sign"),
        (ce(reduce=np.sum), False, "summed"),
        (ce(log_softmax=lambda z: losses.log_softmax(z, axis=0)), False, "axis=0"),
        (ce(pick="block"), False, "np.arange(N)"),
        (ce(log_softmax=lambda z: np.log(naive_softmax(z))), False, "nan/inf"),
        (lambda z, y: losses.cross_entropy(z, y, reduction="none"), False, "one number"),
        (lambda z, y: 0.5, False, "expected"),
        (stub, False, "not written yet"),
    ],
)
def test_check_cross_entropy(fn, ok, hint):
    feedback = exercises.check_cross_entropy(fn)
    assert feedback.ok is ok and hint in feedback.message


def nll(sign=-1.0, reduce=torch.mean):
    return lambda lp, y: sign * reduce(lp[torch.arange(len(y)), y])


@pytest.mark.parametrize(
    "fn, ok, hint",
    [
        (nll(), True, "matches"),
        (torch.nn.functional.nll_loss, True, "matches"),
        (nll(sign=1.0), False, "minus sign"),
        (nll(reduce=torch.sum), False, "summed"),
        (lambda lp, y: -lp[:, y].mean(), False, "np.arange(N)"),
        (stub, False, "not written yet"),
    ],
)
def test_check_nll_loss(fn, ok, hint):
    feedback = exercises.check_nll_loss(fn)
    assert feedback.ok is ok and hint in feedback.message


F = torch.nn.functional


@pytest.mark.parametrize(
    "fn, ok, hint",
    [
        (lambda z, y: F.nll_loss(torch.log_softmax(z, dim=1), y), True, "matches"),
        (F.cross_entropy, True, "matches"),
        (lambda z, y: F.nll_loss(torch.softmax(z, dim=1), y), False, "LOG-probabilities"),
        (lambda z, y: F.cross_entropy(torch.softmax(z, dim=1), y), False, "double softmax"),
        (lambda z, y: F.cross_entropy(z, y, reduction="sum"), False, "summed"),
        (stub, False, "not written yet"),
    ],
)
def test_check_cross_entropy_torch(fn, ok, hint):
    feedback = exercises.check_cross_entropy_torch(fn)
    assert feedback.ok is ok and hint in feedback.message
