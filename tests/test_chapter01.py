"""Chapter 1's checkers: right answers pass, each typical mistake is named, library calls are
refused, odd answers never raise, hints grow; the quiz key is true."""

from __future__ import annotations

import functools
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import chapter01, exercises, losses


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs), whatever ran before."""
    monkeypatch.setattr(exercises, "_draws", {})


ROOT = Path(__file__).resolve().parents[1]
CHECKERS = {
    "softmax": chapter01.check_softmax,
    "log_softmax": chapter01.check_log_softmax,
    "cross_entropy": chapter01.check_cross_entropy,
}


def stub(*args):
    raise NotImplementedError()


def boom(*args):
    raise KeyError("oops")


# ---- the learner's possible answers ----------------------------------------------------------


def my_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def my_log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def naive_softmax(z):
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def column_softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def batch_sum_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def ce(log_softmax=my_log_softmax, sign=-1.0, reduce=np.mean, pick="row"):
    def fn(logits, labels):
        lp = log_softmax(logits)
        picked = lp[np.arange(len(labels)), labels] if pick == "row" else lp[:, labels]
        return sign * reduce(picked)

    return fn


def batch_max_softmax(z):
    e = np.exp(z - z.max())  # the common 1-D snippet, applied to a batch
    return e / e.sum(axis=-1, keepdims=True)


def naive_log_softmax(z):
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def batch_max_log_softmax(z):
    s = z - z.max()
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def loop_softmax(z):
    rows = np.atleast_2d(z)
    out = []
    for row in rows:
        m = max(row)
        e = [math.exp(v - m) for v in row]
        out.append([v / sum(e) for v in e])
    return np.array(out).reshape(z.shape)


def float32_softmax(z):
    z = z.astype(np.float32)
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.einsum("...c->...", e)[..., None]


def torch_softmax_by_hand(z):
    t = torch.as_tensor(z)
    e = (t - t.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


def list_softmax(z):
    return my_softmax(z).tolist()


def loop_log_softmax(z):
    rows = np.atleast_2d(z)
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        m = row.max()
        out[i] = row - m - math.log(sum(math.exp(v - m) for v in row))
    return out.reshape(z.shape)


def float32_log_softmax(z):
    z = np.float32(z)
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def torch_log_softmax_by_hand(z):
    t = torch.tensor(z, dtype=torch.float64)
    m = t.max(dim=-1, keepdim=True).values
    return t - m - (t - m).exp().sum(dim=-1, keepdim=True).log()


def loop_ce(logits, labels):
    total = 0.0
    for row, y in zip(logits, labels, strict=True):
        m = max(row)
        total += -(row[y] - m - math.log(sum(math.exp(v - m) for v in row)))
    return total / len(labels)


def einsum_ce(logits, labels):
    lp = my_log_softmax(logits)
    onehot = np.eye(logits.shape[1])[labels]
    return -np.einsum("nc,nc->", lp, onehot) / len(labels)


def float32_ce(logits, labels):
    lp = float32_log_softmax(logits)
    return np.float32(-lp[np.arange(len(labels)), labels].mean())


def torch_ce_by_hand(logits, labels):
    lp = torch_log_softmax_by_hand(logits)
    return -lp.gather(1, torch.from_numpy(labels)[:, None]).mean()


def rows_only_softmax(z):
    """Right for a batch, but loops over the entries of a single row (shape (C,))."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    for i, row in enumerate(z):
        e = np.exp(row - row.max())
        out[i] = e / e.sum()
    return out


# ---- right answers and typical mistakes -------------------------------------------------------


@pytest.mark.parametrize(
    "fn, ok, words",
    [
        (my_softmax, True, "no overflow"),
        (lambda z: torch.tensor(my_softmax(z)), True, "no overflow"),  # a tensor is fine
        (naive_softmax, False, "exp() overflows"),
        (column_softmax, False, "axis=0"),
        (lambda z: np.exp(z - z.max(axis=-1, keepdims=True)), False, "do not sum to 1"),
        (batch_sum_softmax, False, "whole batch sums to 1"),
        (lambda z: my_softmax(z)[..., ::-1], False, "values differ"),
        (lambda z: z[..., :1], False, "shape"),
        (lambda z: np.where(np.abs(z) > 100, 0.5, my_softmax(z)), False, "wrong on huge"),
        (batch_max_softmax, False, "maximum of the whole batch"),
        (loop_softmax, True, "no overflow"),
        (float32_softmax, True, "no overflow"),
        (torch_softmax_by_hand, True, "no overflow"),
        (list_softmax, True, "no overflow"),
        (rows_only_softmax, False, "for one sample (z of shape"),
    ],
)
def test_softmax(fn, ok, words):
    feedback = chapter01.check_softmax(fn)
    assert feedback.ok is ok and words in feedback.message, feedback.message


@pytest.mark.parametrize(
    "fn, ok, words",
    [
        (my_log_softmax, True, "no overflow"),
        (lambda z: np.log(my_softmax(z)), False, "-inf"),
        (lambda z: np.log(naive_softmax(z)), False, "an exp() overflowed"),
        (lambda z: my_log_softmax(z.T).T if z.ndim == 2 else my_log_softmax(z), False, "axis=0"),
        (lambda z: my_log_softmax(z) + 1, False, "values differ"),
        (lambda z: np.full_like(z, np.nan), False, "nan or inf on ordinary"),
        (naive_log_softmax, False, "exp() overflows"),
        (batch_max_log_softmax, False, "maximum of the whole batch"),
        (loop_log_softmax, True, "no overflow"),
        (float32_log_softmax, True, "no overflow"),
        (torch_log_softmax_by_hand, True, "no overflow"),
    ],
)
def test_log_softmax(fn, ok, words):
    feedback = chapter01.check_log_softmax(fn)
    assert feedback.ok is ok and words in feedback.message, feedback.message


@pytest.mark.parametrize(
    "fn, ok, words",
    [
        (ce(), True, "stable"),
        (ce(log_softmax=losses.log_softmax), True, "stable"),  # the course's reference is allowed
        (ce(sign=1.0), False, "negative"),
        (ce(reduce=np.sum), False, "summed"),
        (ce(log_softmax=lambda z: my_log_softmax(z.T).T), False, "axis=0"),
        (ce(pick="block"), False, "N x N block"),
        (ce(log_softmax=lambda z: my_softmax(z)), False, "not minus their logs"),
        (ce(log_softmax=lambda z: np.log(naive_softmax(z))), False, "nan or inf"),
        (lambda z, y: -my_log_softmax(z)[np.arange(len(y)), y], False, "one number"),
        (lambda z, y: 0.5, False, "too"),
        (ce(log_softmax=batch_max_log_softmax), False, "nan or inf"),
        # log of a stable softmax: a huge batch's label always sits on an underflowing entry
        (ce(log_softmax=lambda z: np.log(my_softmax(z))), False, "nan or inf"),
        (loop_ce, True, "stable"),
        (einsum_ce, True, "stable"),
        (float32_ce, True, "stable"),
        (torch_ce_by_hand, True, "stable"),
        (lambda z, y: np.array([ce()(z, y)]), True, "stable"),  # shape (1,) is one number
    ],
)
def test_cross_entropy(fn, ok, words):
    feedback = chapter01.check_cross_entropy(fn)
    assert feedback.ok is ok and words in feedback.message, feedback.message


# ---- the library version is refused -----------------------------------------------------------

T = torch.from_numpy


@pytest.mark.parametrize(
    "name, fn",
    [
        ("softmax", losses.softmax),
        ("softmax", lambda z: np.exp(losses.log_softmax(z))),
        ("softmax", lambda z: torch.softmax(T(z), dim=-1)),
        ("softmax", lambda z: T(z).softmax(-1)),
        ("softmax", lambda z: F.softmax(T(z), dim=-1)),
        ("softmax", lambda z: torch.nn.Softmax(dim=-1)(T(z))),
        ("log_softmax", losses.log_softmax),
        ("log_softmax", lambda z: np.log(losses.softmax(z))),
        ("log_softmax", lambda z: torch.log_softmax(T(z), dim=-1)),
        ("log_softmax", lambda z: T(z).log_softmax(-1)),
        ("log_softmax", lambda z: F.log_softmax(T(z), dim=-1)),
        ("log_softmax", lambda z: T(z) - torch.logsumexp(T(z), dim=-1, keepdim=True)),
        ("cross_entropy", lambda z, y: losses.cross_entropy(z, y)),
        ("cross_entropy", lambda z, y: F.cross_entropy(T(z), T(y))),
        ("cross_entropy", lambda z, y: torch.nn.CrossEntropyLoss()(T(z), T(y))),
        ("cross_entropy", lambda z, y: F.nll_loss(F.log_softmax(T(z), dim=1), T(y))),
    ],
)
def test_calling_the_library_is_refused(name, fn):
    feedback = CHECKERS[name](fn)
    assert not feedback.ok
    assert "write it yourself, without `" in feedback.message


def softmax_with_default(z, _f=losses.softmax):
    return _f(z)


def log_softmax_in_closure():
    f = losses.log_softmax

    def answer(z):
        return f(z)

    return answer


class CallableSoftmax:
    def __call__(self, z):
        return scipy_or_torch_softmax(z)


def scipy_or_torch_softmax(z):
    return torch.special.softmax(torch.from_numpy(z), dim=-1).numpy()


HELPERS = {"sm": losses.softmax}


@pytest.mark.parametrize(
    "name, fn",
    [
        ("softmax", softmax_with_default),
        ("softmax", functools.partial(losses.softmax, axis=-1)),
        ("softmax", lambda z: HELPERS["sm"](z)),
        ("softmax", CallableSoftmax()),
        ("softmax", scipy_or_torch_softmax),
        ("softmax", lambda z: torch.special.log_softmax(T(z), -1).exp()),
        ("log_softmax", log_softmax_in_closure()),
        ("log_softmax", lambda z: z - np.logaddexp.reduce(z, axis=-1, keepdims=True)),
        ("log_softmax", lambda z: T(z) - torch.special.logsumexp(T(z), -1, keepdim=True)),
        ("log_softmax", lambda z: torch.special.log_softmax(T(z), -1)),
        ("log_softmax", functools.partial(F.log_softmax, dim=-1)),
        ("cross_entropy", lambda z, y: torch.nn.NLLLoss()(T(my_log_softmax(z)), T(y))),
        ("cross_entropy", functools.partial(losses.cross_entropy)),
    ],
)
def test_a_library_function_reached_any_other_way_is_refused(name, fn):
    feedback = CHECKERS[name](fn)
    assert not feedback.ok and "write it yourself, without" in feedback.message, feedback.message


def test_a_helper_in_another_module_is_refused():
    helper = types.ModuleType("learner_helpers")
    exec("from mnist_course.losses import softmax\ndef sm(z):\n    return softmax(z)", vars(helper))
    feedback = chapter01.check_softmax(lambda z: helper.sm(z))
    assert "write it yourself, without `mnist_course.losses.softmax`" in feedback.message


def test_the_course_helpers_are_not_answers():
    assert not hasattr(chapter01, "loss_mistakes")
    feedback = chapter01.check_cross_entropy(lambda z, y: chapter01._compare_loss(0, 0, []))
    assert "course's own answer" in feedback.message


def test_each_check_draws_fresh_logits():
    seen = []

    def remember(z):
        seen.append(z.copy())
        return my_softmax(z)

    chapter01.check_softmax(remember)
    first = len(seen)
    chapter01.check_softmax(remember)
    assert not np.array_equal(seen[0], seen[first])


def test_replaying_a_number_does_not_pass_and_no_expected_value_is_shown():
    heard = []

    def replay(logits, labels):
        heard.append(float(ce()(logits, labels)))
        return 0.5

    feedback = chapter01.check_cross_entropy(replay)
    assert not feedback.ok
    assert (
        f"{heard[0]:.6f}"[:5] not in feedback.message and f"{heard[0]:.4g}" not in feedback.message
    )
    memory = iter(heard * 3)
    assert not chapter01.check_cross_entropy(lambda z, y: next(memory)).ok


def test_sys_exit_and_hostile_returns_never_raise():
    class Weird:
        def __array__(self, *a, **k):
            raise RuntimeError("no")

    assert not chapter01.check_softmax(lambda z: sys.exit()).ok
    assert not chapter01.check_softmax(lambda z: Weird()).ok
    assert not chapter01.check_cross_entropy(lambda z, y: Weird()).ok


def test_everything_is_restored_after_a_check():
    chapter01.check_softmax(losses.softmax)
    chapter01.check_cross_entropy(lambda z, y: losses.cross_entropy(z, y))
    np.testing.assert_allclose(losses.softmax(np.zeros(2)), [0.5, 0.5])
    assert float(losses.cross_entropy(np.zeros((1, 2)), np.array([0]))) == pytest.approx(
        math.log(2)
    )


# ---- odd answers never raise -----------------------------------------------------------------

ODD = [
    (lambda *a: (np.zeros(3), 1), "tuple of 2 items"),
    (lambda *a: [[1.0, 2.0], [3.0]], "not an array of numbers"),
    (lambda *a: "softmax", "not an array of numbers"),
    (lambda *a: None, "returned None"),
    (lambda *a: np.zeros((7, 7)), "shape"),
    (boom, "raised KeyError: 'oops'"),
    (stub, "not written yet"),
    (42, "expected a function"),
    (lambda: 1, "raised TypeError"),
]


@pytest.mark.parametrize("name", list(CHECKERS))
@pytest.mark.parametrize("answer, words", ODD)
def test_odd_answers_never_raise(name, answer, words):
    feedback = CHECKERS[name](answer)
    assert not feedback.ok and words in feedback.message, feedback.message


@pytest.mark.parametrize("name", list(CHECKERS))
def test_nan_never_raises(name):
    feedback = CHECKERS[name](lambda *a: np.nan if len(a) == 2 else np.full_like(a[0], np.nan))
    assert not feedback.ok and "nan" in feedback.message


@pytest.mark.parametrize(
    "name, wrong",
    [
        ("softmax", naive_softmax),
        ("log_softmax", lambda z: np.log(my_softmax(z))),
        ("cross_entropy", ce(reduce=np.sum)),
    ],
)
def test_the_hint_grows_on_the_second_failure(name, wrong):
    exercises._failures.clear()
    first = CHECKERS[name](wrong)
    second = CHECKERS[name](wrong)
    assert "Hint:" not in first.message and "hint=2" in first.message
    assert "Hint:" in second.message and len(second.message) > len(first.message)
    assert "Hint:" in CHECKERS[name](wrong, hint=2).message


# ---- the exercise list, the notebook and the quiz --------------------------------------------


def test_exercises_in_notebook_order():
    assert chapter01.EXERCISES == tuple(CHECKERS)
    assert all(CHECKERS[n].exercise == n for n in chapter01.EXERCISES)
    nb = json.loads((ROOT / "notebooks/01_cross_entropy_numpy.ipynb").read_text("utf-8"))
    checkers = [c for c in nb["cells"] if "checker" in c["metadata"].get("tags", [])]
    assert tuple(c["metadata"]["exercise"] for c in checkers) == chapter01.EXERCISES
    for cell, name in zip(checkers, chapter01.EXERCISES, strict=True):
        assert f"chapter01.check_{name}(" in "".join(cell["source"])


def test_the_quiz_key_is_right_and_true():
    result = chapter01.check_quiz({1: "b", 2: 2.303, 3: "c", 4: "b", 5: 1.04})
    assert result.ok and result.total == 5
    assert not chapter01.check_quiz({1: "a", 2: 0.0, 3: "a", 4: "a", 5: 0.0}).right
    assert "not answered yet" in str(chapter01.check_quiz({}))
    # 1: softmax is shift-invariant
    np.testing.assert_allclose(losses.softmax([2, 1, 0]), losses.softmax([102, 101, 100]))
    # 2: uniform prediction over 10 classes
    assert float(losses.cross_entropy(np.zeros((1, 10)), np.array([3]))) == pytest.approx(
        chapter01.QUIZ[2].answer
    )
    # 3: the batch gradient is (softmax - onehot) / N
    z, y = np.random.default_rng(1).normal(size=(5, 4)), np.array([0, 3, 3, 1, 2])
    expected = (losses.softmax(z) - losses.one_hot(y, 4)) / 5
    np.testing.assert_allclose(losses.cross_entropy_grad(z, y), expected, atol=1e-12)
    # 4: float32's exp overflows above ln(FLT_MAX) = 88.72, float64's above 709.78
    assert round(float(np.log(np.finfo(np.float32).max)), 2) == 88.72
    assert round(float(np.log(np.finfo(np.float64).max)), 2) == 709.78
    assert torch.isinf(torch.exp(torch.tensor(88.8))) and torch.isfinite(
        torch.exp(torch.tensor(88.7))
    )
    # 5: the mean cross-entropy is -log(likelihood) / N
    p_true = np.array([1 / 2, 1 / 4, 1 / 8, 1.0])
    assert -np.log(p_true.prod()) / 4 == pytest.approx(chapter01.QUIZ[5].answer, abs=1e-12)
    assert -np.log(p_true).mean() == pytest.approx(chapter01.QUIZ[5].answer, abs=1e-12)
    assert round(chapter01.QUIZ[5].answer, 3) == 1.040  # the explanation's number
    logits = np.log(np.array([[1 / 2, 1 / 2], [1 / 4, 3 / 4], [1 / 8, 7 / 8], [1.0, 0.0]]) + 1e-300)
    assert float(losses.cross_entropy(logits, np.zeros(4, dtype=int))) == pytest.approx(
        chapter01.QUIZ[5].answer, abs=1e-9
    )
    # a wrong reading: the likelihood itself, or the sum instead of the mean
    for wrong in (1 / 64, math.log(64)):
        assert not chapter01.check_quiz({5: wrong}).right


def test_the_mse_section_holds():
    """Section 5: the squared error's gradient through the softmax vanishes on a confident
    mistake while cross-entropy's stays near 1 (checked against finite differences)."""

    def mse(z, y):
        return ((losses.softmax(z) - y) ** 2).sum()

    y = np.array([1.0, 0.0, 0.0])
    for w in (0.0, 5.0, 10.0):
        z = np.array([0.0, w, 0.0])
        p = losses.softmax(z)
        formula = 2 * p * ((p - y) - (p * (p - y)).sum())
        numeric = np.array([(mse(z + h, y) - mse(z - h, y)) / 2e-5 for h in np.eye(3) * 1e-5])
        np.testing.assert_allclose(formula, numeric, atol=1e-8)
        zt = torch.tensor(z, requires_grad=True)
        # PyTorch's MSELoss averages over the C entries: the same gradient over C
        F.mse_loss(torch.softmax(zt, 0), torch.tensor(y)).backward()
        np.testing.assert_allclose(zt.grad.numpy(), formula / 3, atol=1e-12)
    assert np.abs(formula).max() < 1e-3 < 0.99 < np.abs(p - y).max()
