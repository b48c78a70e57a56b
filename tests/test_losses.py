"""mnist_course.losses against PyTorch, to 1e-6, on many shapes and values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_course import losses

REDUCTIONS = ["none", "mean", "sum"]


def torch_ce(z, t, grad: bool = False, **kw):
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    w = kw.pop("weight", None)
    wt = None if w is None else torch.tensor(w, dtype=torch.float64)
    tt = torch.tensor(t)
    if tt.is_floating_point():
        tt = tt.double()
    loss = F.cross_entropy(zt, tt, weight=wt, **kw)
    if not grad:
        return loss.detach().numpy()
    loss.sum().backward()
    return zt.grad.numpy()


def random_case(rng: np.random.Generator, n: int, c: int, scale: float):
    z = rng.normal(size=(n, c)) * scale
    y = rng.integers(0, c, size=n)
    return z, y


CASES = [(1, 1, 1.0), (1, 3, 1.0), (5, 10, 3.0), (64, 10, 1.0), (7, 1000, 2.0), (3, 4, 500.0)]


def test_notes_values():
    z = np.array([0.2, 0.1, -0.1])
    assert losses.cross_entropy(z, np.int64(0)) == pytest.approx(0.9729189131256584, abs=1e-12)
    y = np.array([2, 0, 1])
    y_pred1 = np.array([[0.1, 0.2, 0.9], [0.7, 0.1, 0.2], [0.2, 0.5, 0.3]])
    y_pred2 = np.array([[0.8, 0.1, 0.1], [0.2, 0.8, 0.1], [0.3, 0.4, 0.3]])
    assert losses.cross_entropy(y_pred1, y) == pytest.approx(0.7911708354949951, abs=1e-7)
    assert losses.cross_entropy(y_pred2, y) == pytest.approx(1.2461291551589966, abs=1e-7)


@pytest.mark.parametrize("n,c,scale", CASES)
def test_softmax_and_log_softmax_match_torch(n, c, scale):
    z, _ = random_case(np.random.default_rng(n * c), n, c, scale)
    zt = torch.tensor(z)
    np.testing.assert_allclose(losses.softmax(z), torch.softmax(zt, -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(losses.log_softmax(z), torch.log_softmax(zt, -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(losses.softmax(z, axis=0), torch.softmax(zt, 0).numpy(), atol=1e-6)


def test_log_softmax_is_stable_for_extreme_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1e6, -1e6, -1e6], [1e300, -1e300, 0.0]])
    out = losses.log_softmax(z)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], [0.0, -1000.0, -2000.0])
    np.testing.assert_allclose(out[1], np.log([1 / 3] * 3))
    np.testing.assert_allclose(losses.softmax(z).sum(axis=1), 1.0)


def test_one_hot_matches_torch():
    y = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(losses.one_hot(y, 4), F.one_hot(torch.tensor(y), 4).numpy())
    np.testing.assert_array_equal(losses.one_hot(y), F.one_hot(torch.tensor(y)).numpy())
    assert losses.one_hot(np.int64(1), 3).tolist() == [0, 1, 0]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n,c,scale", CASES)
def test_index_targets(n, c, scale, reduction):
    rng = np.random.default_rng(1000 + n * c)
    z, y = random_case(rng, n, c, scale)
    kw = dict(reduction=reduction)
    np.testing.assert_allclose(losses.cross_entropy(z, y, **kw), torch_ce(z, y, **kw), atol=1e-6)
    np.testing.assert_allclose(
        losses.cross_entropy_grad(z, y, **kw), torch_ce(z, y, grad=True, **kw), atol=1e-6
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("n,c,scale", CASES)
def test_weight_ignore_index_and_smoothing(n, c, scale, reduction, smoothing):
    rng = np.random.default_rng(2000 + n * c)
    z, y = random_case(rng, n, c, scale)
    y[rng.random(n) < 0.3] = -100
    if n > 1:
        y[0] = 0  # keep at least one target
    w = rng.random(c) + 0.1
    kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(losses.cross_entropy(z, y, **kw), torch_ce(z, y, **kw), atol=1e-6)
    got = losses.cross_entropy_grad(z, y, **kw)
    np.testing.assert_allclose(got, torch_ce(z, y, grad=True, **kw), atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_custom_ignore_index(reduction):
    z, y = random_case(np.random.default_rng(3), 6, 5, 1.0)
    y[[1, 4]] = 3
    kw = dict(ignore_index=3, reduction=reduction)
    np.testing.assert_allclose(losses.cross_entropy(z, y, **kw), torch_ce(z, y, **kw), atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_batch(reduction):
    z, _ = random_case(np.random.default_rng(4), 4, 3, 1.0)
    y = np.full(4, -100)
    ours = losses.cross_entropy(z, y, reduction=reduction)
    np.testing.assert_allclose(ours, torch_ce(z, y, reduction=reduction), equal_nan=True)
    np.testing.assert_allclose(
        losses.cross_entropy_grad(z, y, reduction=reduction),
        torch_ce(z, y, grad=True, reduction=reduction),
        equal_nan=True,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n,c,scale", CASES)
def test_probability_targets(n, c, scale, reduction, smoothing, weighted):
    rng = np.random.default_rng(5000 + n * c)
    z, _ = random_case(rng, n, c, scale)
    t = rng.random((n, c))
    t /= t.sum(axis=1, keepdims=True)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    if weighted:
        kw["weight"] = rng.random(c) + 0.5
    np.testing.assert_allclose(losses.cross_entropy(z, t, **kw), torch_ce(z, t, **kw), atol=1e-6)
    got = losses.cross_entropy_grad(z, t, **kw)
    np.testing.assert_allclose(got, torch_ce(z, t, grad=True, **kw), atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_single_sample_unbatched(reduction):
    z = np.array([0.2, 0.1, -0.1])
    for target in (np.int64(2), np.array([0.1, 0.2, 0.7])):
        ours = losses.cross_entropy(z, target, reduction=reduction)
        assert np.shape(ours) == ()
        np.testing.assert_allclose(ours, torch_ce(z, target, reduction=reduction), atol=1e-6)
        got = losses.cross_entropy_grad(z, target, reduction=reduction)
        assert got.shape == (3,)
        np.testing.assert_allclose(
            got, torch_ce(z, target, grad=True, reduction=reduction), atol=1e-6
        )


def test_gradient_is_softmax_minus_one_hot():
    z, y = random_case(np.random.default_rng(6), 8, 10, 1.0)
    expected = (losses.softmax(z) - losses.one_hot(y, 10)) / 8
    np.testing.assert_allclose(losses.cross_entropy_grad(z, y), expected, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(logits=np.zeros((2, 3, 4)), target=np.zeros(2, int)), ValueError, "shape"),
        (dict(logits=np.zeros((2, 3)), target=np.zeros(3, int)), ValueError, "does not match"),
        (dict(logits=np.zeros((2, 3)), target=np.array([0, 3])), ValueError, "outside"),
        (dict(logits=np.zeros((2, 3)), target=np.array([0, -1])), ValueError, "outside"),
        (dict(logits=np.zeros((2, 3)), target=np.array([0.0, 1.0])), TypeError, "integers"),
        (dict(logits=np.array([[np.nan, 0, 0]]), target=np.array([0])), ValueError, "NaN"),
        (dict(logits=np.array([[np.inf, 0, 0]]), target=np.array([0])), ValueError, "inf"),
        (dict(logits=np.zeros((1, 3)), target=[0], weight=[1, -1, 1]), ValueError, "negative"),
        (dict(logits=np.zeros((1, 3)), target=[0], weight=[1, 1]), ValueError, "weight"),
        (dict(logits=np.zeros((1, 3)), target=[0], label_smoothing=1.5), ValueError, r"\[0, 1\]"),
        (dict(logits=np.zeros((1, 3)), target=[0], label_smoothing=-0.1), ValueError, r"\[0, 1\]"),
        (dict(logits=np.zeros((1, 3)), target=[0], reduction="avg"), ValueError, "reduction"),
        (dict(logits=np.array([["a", "b"]]), target=[0]), TypeError, "real numbers"),
        (dict(logits=np.zeros((1, 0)), target=[0]), ValueError, "C >= 1"),
    ],
)
def test_bad_input_names_the_problem(kwargs, error, match):
    with pytest.raises(error, match=match):
        losses.cross_entropy(**kwargs)
    with pytest.raises(error, match=match):
        losses.cross_entropy_grad(**kwargs)


def test_one_hot_bad_input():
    with pytest.raises(TypeError, match="integer class indices"):
        losses.one_hot(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.one_hot(np.array([0, 2]), 2)
    with pytest.raises(TypeError, match="num_classes"):
        losses.one_hot(np.array([0, 1]), 2.0)
    with pytest.raises(ValueError, match="NaN"):
        losses.softmax([1.0, np.nan])
