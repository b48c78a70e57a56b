"""Chapter 2's checkers: right answers pass, each typical mistake is named, library calls are
refused, odd answers never raise, hints grow; the quiz key is true."""

from __future__ import annotations

import collections
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import chapter02, exercises, losses


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs), whatever ran before."""
    monkeypatch.setattr(exercises, "_draws", {})


ROOT = Path(__file__).resolve().parents[1]
CHECKERS = {
    "nll_loss": chapter02.check_nll_loss,
    "cross_entropy": chapter02.check_cross_entropy,
    "ce_grad": chapter02.check_ce_grad,
    "double_softmax": chapter02.check_double_softmax,
}
RIGHT_PREDICTION = {"lowest_loss": math.log(1 + 9 / math.e), "gradient": "c"}


def stub(*args):
    raise NotImplementedError()


def boom(*args):
    raise KeyError("oops")


def nll(sign=-1.0, reduce=torch.mean):
    return lambda lp, y: sign * reduce(lp[torch.arange(len(y)), y])


def grad(scale=1.0, one_hot=True, dim=1, numpy=False):
    """A hand-written gradient, right or with one of the classic mistakes."""

    def fn(z, y):
        if numpy:
            z, y = z.numpy(), y.numpy()
            e = np.exp(z - z.max(axis=dim, keepdims=True))
            p = e / e.sum(axis=dim, keepdims=True)
            target = np.eye(z.shape[1])[y] if one_hot else 0.0
        else:
            p = torch.softmax(z, dim=dim)
            target = F.one_hot(y, z.shape[1]) if one_hot else 0.0
        factor = len(y) if scale == "N" else scale
        return factor * (p - target) / len(y)

    return fn


def autograd_answer(z, y):
    z = z.clone().requires_grad_()
    F.cross_entropy(z, y).backward()
    return z.grad


def nll_loop(lp, y):
    total = 0.0
    for n in range(len(y)):
        total -= lp[n, y[n]]
    return total / len(y)


def nll_einsum(lp, y):
    return -torch.einsum("nc,nc->", lp, F.one_hot(y, lp.shape[1]).to(lp.dtype)) / len(y)


def nll_float64_list(lp, y):
    return [-float(lp.double()[torch.arange(len(y)), y].mean())]


def nll_masked(lp, y):
    mask = torch.zeros_like(lp, dtype=torch.bool)
    mask[torch.arange(len(y)), y] = True
    return -lp.masked_select(mask).mean()


def ce_by_hand(z, y):
    """Its own log-softmax, then its own NLL."""
    shifted = z - z.max(dim=1, keepdim=True).values
    lp = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return nll_loop(lp, y)


def ce_float64(z, y):
    return F.nll_loss(F.log_softmax(z.double(), dim=1), y).float()


def ce_logsumexp(z, y):
    m = z.max(dim=1, keepdim=True).values
    lse = m.squeeze(1) + (z - m).exp().sum(1).log()
    return (lse - z[torch.arange(len(y)), y]).mean()


def ce_numpy(z, y):
    z, y = z.numpy(), y.numpy()
    s = z - z.max(axis=1, keepdims=True)
    lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return float(-lp[np.arange(len(y)), y].mean())


def grad_loops(z, y):
    n, c = z.shape
    out = torch.zeros_like(z)
    for i in range(n):
        e = [math.exp(float(v - z[i].max())) for v in z[i]]
        for j in range(c):
            out[i, j] = (e[j] / sum(e) - (1.0 if j == y[i] else 0.0)) / n
    return out


def grad_einsum_list(z, y):
    p = torch.softmax(z, dim=1)
    onehot = torch.eye(z.shape[1], dtype=z.dtype)[y]
    return torch.einsum("nc->nc", p - onehot).div(len(y)).tolist()


def grad_scatter(z, y):
    p = (z - z.logsumexp(dim=1, keepdim=True)).exp()
    return p.scatter_add(1, y[:, None], -torch.ones(len(y), 1, dtype=z.dtype)) / len(y)


# ---- right answers and typical mistakes -------------------------------------------------------


@pytest.mark.parametrize(
    "fn, ok, words",
    [
        (nll(), True, "matches"),
        (lambda lp, y: -lp.gather(1, y[:, None]).mean(), True, "matches"),
        (nll(sign=1.0), False, "negative"),
        (nll(reduce=torch.sum), False, "summed"),
        (lambda lp, y: -lp[:, y].mean(), False, "N x N block"),
        (lambda lp, y: -torch.log(lp)[torch.arange(len(y)), y].mean(), False, "nan"),
        (lambda lp, y: -lp[torch.arange(len(y)), y], False, "one number"),
        (lambda lp, y: torch.tensor(0.5), False, "too"),
        (nll_loop, True, "matches"),
        (nll_einsum, True, "matches"),
        (nll_float64_list, True, "matches"),
        (nll_masked, True, "matches"),
    ],
)
def test_nll_loss(fn, ok, words):
    feedback = chapter02.check_nll_loss(fn)
    assert feedback.ok is ok and words in feedback.message, feedback.message


@pytest.mark.parametrize(
    "fn, ok, words",
    [
        (lambda z, y: F.nll_loss(torch.log_softmax(z, dim=1), y), True, "matches"),
        (lambda z, y: torch.nn.NLLLoss()(torch.nn.LogSoftmax(dim=1)(z), y), True, "matches"),
        (lambda z, y: nll()(torch.log_softmax(z, dim=1), y), True, "matches"),
        (lambda z, y: F.nll_loss(torch.softmax(z, dim=1), y), False, "probabilities to nll"),
        (
            lambda z, y: F.nll_loss(torch.log_softmax(torch.softmax(z, 1), 1), y),
            False,
            "double softmax",
        ),
        (lambda z, y: F.nll_loss(torch.log_softmax(z, dim=0), y), False, "axis=0"),
        (lambda z, y: F.nll_loss(torch.log_softmax(z, 1), y, reduction="sum"), False, "summed"),
        (lambda z, y: F.nll_loss(torch.log_softmax(z, 1), y, reduction="none"), False, "shape"),
        (lambda z, y: F.nll_loss(torch.log(torch.softmax(z, 1)), y), False, "underflows"),
        (ce_by_hand, True, "matches"),
        (ce_float64, True, "matches"),
        (ce_logsumexp, True, "matches"),
        (ce_numpy, True, "matches"),
    ],
)
def test_cross_entropy(fn, ok, words):
    feedback = chapter02.check_cross_entropy(fn)
    assert feedback.ok is ok and words in feedback.message, feedback.message


@pytest.mark.parametrize(
    "fn, ok, words",
    [
        (grad(), True, "matches autograd (maxdiff < 1e-12) and finite differences"),
        (grad(numpy=True), True, "matches autograd"),
        (lambda z, y: grad()(z.float(), y), True, "matches autograd (maxdiff < 1e-0"),
        (grad(scale="N"), False, "1/N"),
        (grad(scale=-1.0), False, "wrong sign"),
        (lambda z, y: -grad()(z, y) * len(y), False, "wrong sign, and the 1/N"),
        (grad(one_hot=False), False, "one-hot target was not subtracted"),
        (lambda z, y: grad(one_hot=False)(z, y) * len(y), False, "no one-hot, no 1/N"),
        (grad(dim=0), False, "dim=0"),
        (lambda z, y: grad()(z, y).T, False, "shape"),
        (lambda z, y: grad()(z, y) + 0.01, False, "differs from autograd"),
        (grad_loops, True, "matches autograd"),
        (grad_einsum_list, True, "matches autograd"),
        (grad_scatter, True, "matches autograd"),
    ],
)
def test_ce_grad(fn, ok, words):
    feedback = chapter02.check_ce_grad(fn)
    assert feedback.ok is ok and words in feedback.message, feedback.message


def test_ce_grad_mistakes_fail_on_both_references():
    """The checker's own references agree, and each classic mistake is far from them."""
    for logits, labels in chapter02.grad_cases(0) + chapter02.grad_cases(7):
        auto = chapter02.autograd_grad(logits, labels)
        np.testing.assert_allclose(
            chapter02.finite_difference_grad(logits, labels), auto, atol=1e-8
        )
        for wrong, _, _ in chapter02._grad_mistakes(logits, labels):
            assert not exercises.close(wrong, auto)


@pytest.mark.parametrize(
    "answer, ok, words",
    [
        (RIGHT_PREDICTION, True, "loss 1.461"),
        ({"lowest_loss": 1.46, "gradient": "(C)"}, True, "over 1000 times smaller"),
        ({"lowest_loss": torch.tensor(1.4612), "gradient": " c"}, True, "loss 1.461"),
        (
            collections.OrderedDict(gradient="C", lowest_loss=np.float32(math.log(1 + 9 / math.e))),
            True,
            "loss 1.461",
        ),
        ({"lowest_loss": [1.461], "gradient": "c", "note": "extra keys are fine"}, True, "1.461"),
        ({"lowest_loss": 0.0, "gradient": "c"}, False, "near 0"),
        ({"lowest_loss": 2.46, "gradient": "c"}, False, "different lowest loss"),
        ({"lowest_loss": math.nan, "gradient": "c"}, False, "different lowest loss"),
        ({"lowest_loss": 1.461, "gradient": "a"}, False, "does not confirm"),
        ({"lowest_loss": 1.461, "gradient": "b"}, False, "does not confirm"),
        ({"lowest_loss": 1.461, "gradient": "z"}, False, "a letter"),
        ({"lowest_loss": 1.461, "gradient": 3}, False, "a letter"),
        ({"lowest_loss": "low", "gradient": "c"}, False, "not an array of numbers"),
        ({"lowest": 1.461}, False, "the keys"),
        ([1.461, "c"], False, "the keys"),
    ],
)
def test_double_softmax(answer, ok, words):
    feedback = chapter02.check_double_softmax(lambda: answer)
    assert feedback.ok is ok and words in feedback.message, feedback.message


def test_double_softmax_is_confirmed_by_running_it():
    lowest, ratio = chapter02.run_double_softmax()
    assert lowest == pytest.approx(math.log(1 + 9 / math.e), abs=1e-5)
    assert lowest == pytest.approx(RIGHT_PREDICTION["lowest_loss"], abs=1e-5)
    assert ratio > 1000


# ---- the library version is refused -----------------------------------------------------------


def run_the_loss():
    z = torch.zeros(1, 10)
    z[0, 0] = 50.0
    return {
        "lowest_loss": F.cross_entropy(torch.softmax(z, 1), torch.tensor([0])).item(),
        "gradient": "c",
    }


@pytest.mark.parametrize(
    "name, fn",
    [
        ("nll_loss", F.nll_loss),
        ("nll_loss", lambda lp, y: F.nll_loss(lp, y)),
        ("nll_loss", lambda lp, y: torch.nn.NLLLoss()(lp, y)),
        ("nll_loss", lambda lp, y: F.cross_entropy(lp, y)),
        ("nll_loss", lambda lp, y: losses.cross_entropy(lp.numpy(), y.numpy())),
        ("cross_entropy", F.cross_entropy),
        ("cross_entropy", lambda z, y: F.cross_entropy(z, y)),
        ("cross_entropy", lambda z, y: torch.nn.CrossEntropyLoss()(z, y)),
        ("cross_entropy", lambda z, y: losses.cross_entropy(z.numpy(), y.numpy())),
        ("ce_grad", autograd_answer),
        ("ce_grad", lambda z, y: torch.autograd.grad(F.cross_entropy(z.requires_grad_(), y), z)[0]),
        ("ce_grad", lambda z, y: torch.func.grad(lambda w: F.cross_entropy(w, y))(z)),
        ("ce_grad", lambda z, y: losses.cross_entropy_grad(z.numpy(), y.numpy())),
        ("nll_loss", functools.partial(F.nll_loss)),
        ("nll_loss", lambda lp, y, _f=F.nll_loss: _f(lp, y)),
        ("cross_entropy", lambda z, y, _f=F.cross_entropy: _f(z, y)),
        ("cross_entropy", lambda z, y: torch._C._nn.cross_entropy_loss(z, y)),
        ("cross_entropy", functools.partial(losses.cross_entropy)),
        ("double_softmax", run_the_loss),
    ],
)
def test_calling_the_library_is_refused(name, fn):
    feedback = CHECKERS[name](fn)
    assert not feedback.ok
    assert "write it yourself, without " in feedback.message, feedback.message


def loss_of(w, y):
    return (w.logsumexp(dim=1) - w[torch.arange(len(y)), y]).mean()


@pytest.mark.parametrize(
    "fn",
    [
        lambda z, y: torch.func.jacfwd(lambda w: loss_of(w, y))(z),
        lambda z, y: torch.func.jacrev(lambda w: loss_of(w, y))(z),
        lambda z, y: torch.autograd.functional.jacobian(lambda w: loss_of(w, y), z),
        lambda z, y: torch.func.vjp(lambda w: loss_of(w, y), z)[1](torch.tensor(1.0).double())[0],
        lambda z, y: chapter02.finite_difference_grad(z.numpy(), y.numpy()),
    ],
    ids=["jacfwd", "jacrev", "functional.jacobian", "vjp", "the course's finite differences"],
)
def test_every_route_to_autograd_is_refused_for_ce_grad(fn):
    feedback = chapter02.check_ce_grad(fn)
    assert not feedback.ok and "write it yourself, without" in feedback.message, feedback.message


def test_the_checks_draw_fresh_inputs():
    seen = []

    def remember(lp, y):
        seen.append(lp.clone())
        return nll()(lp, y)

    chapter02.check_nll_loss(remember)
    chapter02.check_nll_loss(remember)
    assert len(seen) == 2 and (seen[0].shape != seen[1].shape or not torch.equal(*seen))


def test_everything_is_restored_after_a_check():
    chapter02.check_ce_grad(autograd_answer)
    chapter02.check_nll_loss(F.nll_loss)
    z = torch.zeros(2, 3, requires_grad=True)
    F.cross_entropy(z, torch.tensor([0, 1])).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


# ---- odd answers never raise -----------------------------------------------------------------

ODD = [
    (lambda *a: (torch.zeros(3), 1), "tuple of 2 items"),
    (lambda *a: [[1.0, 2.0], [3.0]], "not an array of numbers"),
    (lambda *a: "loss", "not an array of numbers"),
    (lambda *a: None, "returned None"),
    (lambda *a: torch.zeros(7, 7), "shape"),
    (boom, "raised KeyError: 'oops'"),
    (stub, "not written yet"),
    (42, "expected a function"),
    (lambda a, b, c: 1, "raised TypeError"),
]


@pytest.mark.parametrize("name", [n for n in CHECKERS if n != "double_softmax"])
@pytest.mark.parametrize("answer, words", ODD)
def test_odd_answers_never_raise(name, answer, words):
    feedback = CHECKERS[name](answer)
    assert not feedback.ok and words in feedback.message, feedback.message


@pytest.mark.parametrize(
    "answer, words",
    [
        (lambda: (1.461, "c"), "the keys"),
        (lambda: "c", "the keys"),
        (lambda: None, "returned None"),
        (lambda: {"lowest_loss": [1.0, 2.0], "gradient": "c"}, "one number"),
        (boom, "raised KeyError"),
        (stub, "not written yet"),
        ("c", "expected a function"),
        (lambda x: 1, "raised TypeError"),
    ],
)
def test_odd_predictions_never_raise(answer, words):
    feedback = chapter02.check_double_softmax(answer)
    assert not feedback.ok and words in feedback.message, feedback.message


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy", "ce_grad"])
def test_nan_never_raises(name):
    nan = torch.tensor(math.nan) if name != "ce_grad" else None
    feedback = CHECKERS[name](lambda z, y: nan if nan is not None else torch.full_like(z, math.nan))
    assert not feedback.ok


@pytest.mark.parametrize(
    "name, wrong",
    [
        ("nll_loss", nll(reduce=torch.sum)),
        ("cross_entropy", lambda z, y: F.nll_loss(torch.softmax(z, dim=1), y)),
        ("ce_grad", grad(scale="N")),
        ("double_softmax", lambda: {"lowest_loss": 0.0, "gradient": "c"}),
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
    assert chapter02.EXERCISES == tuple(CHECKERS)
    assert all(CHECKERS[n].exercise == n for n in chapter02.EXERCISES)
    nb = json.loads((ROOT / "notebooks/02_cross_entropy_pytorch.ipynb").read_text("utf-8"))
    checkers = [c for c in nb["cells"] if "checker" in c["metadata"].get("tags", [])]
    assert tuple(c["metadata"]["exercise"] for c in checkers) == chapter02.EXERCISES
    for cell, name in zip(checkers, chapter02.EXERCISES, strict=True):
        assert f"chapter02.check_{name}(" in "".join(cell["source"])


def test_the_quiz_key_is_right_and_true():
    result = chapter02.check_quiz({1: "b", 2: "b", 3: 2.5, 4: "b", 5: "b"})
    assert result.ok and result.total == 5
    assert not chapter02.check_quiz({1: "a", 2: "a", 3: 3.5, 4: "a", 5: "a"}).right
    assert not chapter02.check_quiz({5: "c"}).right
    z = torch.tensor([[0.1, 0.2, 0.9], [0.7, 0.1, 0.2], [0.2, 0.5, 0.3]])
    # 1: class indices are torch.long; floats of shape (N,) are refused
    with pytest.raises(RuntimeError):
        F.cross_entropy(z, torch.tensor([2.0, 0.0, 1.0]))
    # 2: CrossEntropyLoss = NLLLoss(LogSoftmax)
    y = torch.tensor([2, 0, 1])
    assert F.cross_entropy(z, y).item() == pytest.approx(
        F.nll_loss(torch.log_softmax(z, 1), y).item(), abs=1e-7
    )
    # 3: weighted mean divides by the sum of w[y_n]
    w, y = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([2, 0, 0])
    per_sample = F.cross_entropy(z, y, weight=w, reduction="none")
    mean = F.cross_entropy(z, y, weight=w).item()
    assert per_sample.sum().item() / chapter02.QUIZ[3].answer == pytest.approx(mean, abs=1e-6)
    assert per_sample.sum().item() / w.sum().item() != pytest.approx(mean, abs=1e-3)
    # 4: an ignored sample leaves the denominator
    y = torch.tensor([2, -100, 1])
    per_sample = F.cross_entropy(z, y, reduction="none")
    assert per_sample.sum().item() / 2 == pytest.approx(F.cross_entropy(z, y).item(), abs=1e-6)
    # 5: permute(1, 0) is the transpose; view(3, 2) keeps the memory order
    a = torch.arange(6).view(2, 3)
    asked = [[0, 3], [1, 4], [2, 5]]
    assert chapter02.QUIZ[5].answer == "b"
    assert a.permute(1, 0).tolist() == asked and a.view(3, 2).tolist() != asked
    assert a.view(3, 2).tolist() == [[0, 1], [2, 3], [4, 5]]


def test_the_hints_guide_without_giving_the_answer():
    """A second-level hint never holds the answer: the double-softmax letter or the code."""
    exercises._failures.clear()
    wrong_letter = chapter02.check_double_softmax(
        lambda: {"lowest_loss": 1.461, "gradient": "a"}, hint=2
    ).message
    assert "Hint:" in wrong_letter and "Jacobian" in wrong_letter
    assert "close to zero" not in wrong_letter and "'c'" not in wrong_letter
    nan_loss = chapter02.check_cross_entropy(lambda z, y: torch.tensor(math.nan), hint=2).message
    assert "Hint:" in nan_loss and "log_softmax" not in nan_loss.split("Hint:")[1]


@pytest.mark.parametrize(
    "name, fn",
    [
        ("ce_grad", lambda z, y: chapter02.autograd_grad(z.numpy(), y.numpy())),
        ("ce_grad", functools.partial(chapter02.finite_difference_grad)),
        (
            "double_softmax",
            lambda: {"lowest_loss": chapter02.run_double_softmax()[0], "gradient": "c"},
        ),
        ("nll_loss", lambda lp, y: chapter02._grad_mistakes(lp.numpy(), y.numpy())[0][0].sum()),
    ],
    ids=["autograd_grad", "finite differences", "run_double_softmax", "a private helper"],
)
def test_the_checkers_own_functions_are_refused(name, fn):
    feedback = CHECKERS[name](fn)
    assert not feedback.ok and "course's own answer" in feedback.message, feedback.message
