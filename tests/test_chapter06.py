"""Chapter 6's checkers and quiz: right answers pass, each typical mistake gets its message."""

from __future__ import annotations

import collections
import functools
import json
import math
import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import chapter06, data, exercises

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_going_further.ipynb"
ODD_RETURNS = [None, (24, 1), [24], "24", float("nan"), torch.zeros(2), {"size": 24}]


@pytest.fixture(autouse=True)
def fresh_draws(monkeypatch):
    """Each test starts from the first draw (the notebook's inputs)."""
    monkeypatch.setattr(exercises, "_draws", {})


@pytest.fixture(autouse=True)
def fresh_hints():
    exercises._failures.clear()
    yield
    exercises._failures.clear()


# ----------------------------------------------------------------------------- conv_arithmetic


def size(n, k, s=1, p=0):
    return (n + 2 * p - k) // s + 1


def params(i, o, k):
    return o * (i * k * k + 1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_reference_formulas_match_pytorch(seed):
    sizes, parameters = chapter06.conv_cases(seed)
    for n, k, s, p in sizes:
        out = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n))
        assert out.shape[-1] == chapter06._output_size(n, k, s, p)
        if p <= k // 2:  # max-pooling allows padding up to half the kernel
            pooled = nn.MaxPool2d(k, stride=s, padding=p)(torch.zeros(1, 1, n, n))
            assert pooled.shape[-1] == chapter06._output_size(n, k, s, p)
    for i, o, k in parameters:
        layer = nn.Conv2d(i, o, k)
        assert sum(t.numel() for t in layer.parameters()) == chapter06._conv_parameters(i, o, k)


def size_by_counting(n, k, s=1, p=0):
    """Count the window's positions one by one."""
    count, left = 0, 0
    while left + k <= n + 2 * p:
        count += 1
        left += s
    return count


def size_numpy(n, k, s=1, p=0):
    return np.int64(np.floor((n + 2 * p - k) / s)) + 1


def params_by_loops(i, o, k):
    total = 0
    for _ in range(o):
        total += 1  # the filter's bias
        for _ in range(i):
            total += k * k
    return total


def params_einsum(i, o, k):
    return torch.einsum("oihw->", torch.ones(o, i, k, k)).item() + o


@pytest.mark.parametrize(
    "size_fn, param_fn",
    [
        (size_by_counting, params_by_loops),
        (size_numpy, params_einsum),
        (size, lambda *a: [params(*a)]),
    ],
    ids=["counting loops", "numpy and einsum", "a one-element list"],
)
def test_right_conv_arithmetic_in_other_styles_passes_on_fresh_cases(size_fn, param_fn):
    for _ in range(3):  # the notebook's settings, then fresh ones
        feedback = chapter06.check_conv_arithmetic(size_fn, param_fn)
        assert feedback.ok, feedback.message


def test_hard_coded_answers_fail_on_the_second_check():
    first = dict.fromkeys(chapter06.SIZE_CASES)
    for case in first:
        first[case] = size(*case)
    assert chapter06.check_conv_arithmetic(lambda *c: first[c], params).ok
    feedback = chapter06.check_conv_arithmetic(lambda *c: first.get(c, 0), params)
    assert not feedback.ok and "expected" not in feedback.message


def avg_pool_size(n, k, s=1, p=0):
    return torch.nn.functional.avg_pool2d(torch.zeros(1, 1, n, n), k, s, p).shape[-1]


def unfold_size(n, k, s=1, p=0):
    cols = torch.nn.functional.unfold(torch.zeros(1, 1, n, n), k, stride=s, padding=p).shape[-1]
    return int(round(cols**0.5))


def convolution_size(n, k, s=1, p=0):
    x, w = torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k)
    return torch.convolution(x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1).shape[-1]


def aten_size(n, k, s=1, p=0):
    x, w = torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k)
    return torch.ops.aten.convolution(x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1).shape[
        -1
    ]


@pytest.mark.parametrize(
    "size_fn",
    [
        avg_pool_size,
        unfold_size,
        convolution_size,
        aten_size,
        functools.partial(chapter06._output_size),
        lambda n, k, s=1, p=0, _f=torch.nn.functional.conv2d: _f(
            torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p
        ).shape[-1],
    ],
    ids=["avg_pool2d", "unfold", "torch.convolution", "torch.ops.aten", "course answer", "default"],
)
def test_every_route_to_a_library_size_is_refused(size_fn):
    feedback = chapter06.check_conv_arithmetic(size_fn, params)
    assert not feedback.ok and "write it yourself, without" in feedback.message, feedback.message


def test_the_course_answers_are_not_exported():
    assert not hasattr(chapter06, "output_size") and not hasattr(chapter06, "conv_parameters")
    feedback = chapter06.check_conv_arithmetic(size, chapter06._conv_parameters)
    assert "course's own answer" in feedback.message


@pytest.mark.parametrize(
    "size_fn",
    [
        size,
        lambda n, k, s=1, p=0: math.floor((n + 2 * p - k) / s) + 1,
        lambda n, k, s=1, p=0: torch.tensor((n + 2 * p - k) // s + 1),
        lambda n, k, s=1, p=0: float((n + 2 * p - k) // s + 1),
    ],
)
def test_right_conv_arithmetic_passes(size_fn):
    feedback = chapter06.check_conv_arithmetic(size_fn, params)
    assert feedback.ok, feedback.message


SIZE_MISTAKES = {
    "add 1": lambda n, k, s=1, p=0: (n + 2 * p - k) // s,
    "BOTH sides": lambda n, k, s=1, p=0: (n + p - k) // s + 1,
    "stride is missing": lambda n, k, s=1, p=0: n + 2 * p - k + 1,
    "round DOWN": lambda n, k, s=1, p=0: math.ceil((n + 2 * p - k) / s) + 1,
    "not a whole number": lambda n, k, s=1, p=0: (n + 2 * p - k) / s + 1,
    "too small": lambda n, k, s=1, p=0: n - k,
}


@pytest.mark.parametrize("message, size_fn", SIZE_MISTAKES.items(), ids=list(SIZE_MISTAKES))
def test_each_size_mistake_gets_its_message(message, size_fn):
    feedback = chapter06.check_conv_arithmetic(size_fn, params)
    assert not feedback.ok and message in feedback.message, feedback.message


PARAM_MISTAKES = {
    "one bias": lambda i, o, k: o * i * k * k,
    "ALL input channels": lambda i, o, k: o * (k * k + 1),
    "k * k weights": lambda i, o, k: o * (i * k + 1),
    "not per input channel": lambda i, o, k: o * i * k * k + i,
    "too few": lambda i, o, k: i * o * k,
}


@pytest.mark.parametrize("message, param_fn", PARAM_MISTAKES.items(), ids=list(PARAM_MISTAKES))
def test_each_parameter_mistake_gets_its_message(message, param_fn):
    feedback = chapter06.check_conv_arithmetic(size, param_fn)
    assert not feedback.ok and message in feedback.message, feedback.message


def conv_size_with_torch(n, k, s=1, p=0):
    return nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]


def conv_size_with_functional(n, k, s=1, p=0):
    w = torch.zeros(1, 1, k, k)
    return torch.nn.functional.conv2d(torch.zeros(1, 1, n, n), w, stride=s, padding=p).shape[-1]


def pool_size_with_torch(n, k, s=1, p=0):
    return nn.MaxPool2d(k, s, p)(torch.zeros(1, 1, n, n)).shape[-1]


def params_with_torch(i, o, k):
    return sum(t.numel() for t in nn.Conv2d(i, o, k).parameters())


def params_with_course(i, o, k):
    from mnist_course import models

    return models.count_parameters(torch.nn.Conv2d(i, o, k))


@pytest.mark.parametrize(
    "size_fn, param_fn",
    [
        (conv_size_with_torch, params),
        (conv_size_with_functional, params),
        (pool_size_with_torch, params),
        (size, params_with_torch),
        (size, params_with_course),
    ],
)
def test_calling_the_library_is_refused(size_fn, param_fn):
    feedback = chapter06.check_conv_arithmetic(size_fn, param_fn)
    assert not feedback.ok and "write it yourself, without" in feedback.message


def test_refusing_the_library_restores_it():
    chapter06.check_conv_arithmetic(conv_size_with_torch, params)
    assert nn.Conv2d(1, 2, 3)(torch.zeros(1, 1, 5, 5)).shape == (1, 2, 3, 3)


def raises(*args):
    raise ValueError("oops")


def not_written(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("value", ODD_RETURNS, ids=repr)
def test_odd_returns_never_raise(value):
    for fns in ((lambda *a: value, params), (size, lambda *a: value)):
        feedback = chapter06.check_conv_arithmetic(*fns)
        assert not feedback.ok and feedback.message


@pytest.mark.parametrize("fn", [raises, not_written, None, 42, "size"])
def test_broken_functions_never_raise(fn):
    assert not chapter06.check_conv_arithmetic(fn, params).ok
    assert not chapter06.check_conv_arithmetic(size, fn).ok


def test_raised_and_unwritten_are_named():
    assert "ValueError: oops" in chapter06.check_conv_arithmetic(raises, params).message
    assert "not written yet" in chapter06.check_conv_arithmetic(not_written, params).message


def test_conv_hint_grows():
    first = chapter06.check_conv_arithmetic(SIZE_MISTAKES["add 1"], params)
    second = chapter06.check_conv_arithmetic(SIZE_MISTAKES["add 1"], params)
    assert "Hint:" not in first.message and "Hint:" in second.message
    assert (
        "Hint:" in chapter06.check_conv_arithmetic(size, PARAM_MISTAKES["one bias"], hint=2).message
    )
    assert chapter06.check_conv_arithmetic(size, params).ok


def test_the_hint_never_shows_the_solution():
    for fns in ((SIZE_MISTAKES["add 1"], params), (size, PARAM_MISTAKES["one bias"])):
        message = chapter06.check_conv_arithmetic(*fns, hint=2).message
        assert "(size + 2p - k) // stride + 1" not in message or "places" in message
        assert "return " not in message


# ----------------------------------------------------------------------------- conv_by_hand


def conv_loops(image, weight, bias):
    k = weight.shape[0]
    rows, cols = image.shape[0] - k + 1, image.shape[1] - k + 1
    out = torch.zeros(rows, cols, dtype=image.dtype)
    for i in range(rows):
        for j in range(cols):
            out[i, j] = (weight * image[i : i + k, j : j + k]).sum() + bias
    return out


def conv_shifts(image, weight, bias):  # a sum of k * k shifted images, in float32
    k = weight.shape[0]
    h, w = image.shape[0] - k + 1, image.shape[1] - k + 1
    image, weight = image.float(), weight.float()
    return (
        sum(weight[u, v] * image[u : u + h, v : v + w] for u in range(k) for v in range(k)) + bias
    )


def conv_numpy(image, weight, bias):
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(image), weight.shape)
    return np.einsum("ijuv,uv->ij", windows, np.asarray(weight)) + bias


def conv_nested_lists(image, weight, bias):
    k = len(weight)
    x, w = image.tolist(), weight.tolist()
    return [
        [
            bias + sum(w[u][v] * x[i + u][j + v] for u in range(k) for v in range(k))
            for j in range(len(x[0]) - k + 1)
        ]
        for i in range(len(x) - k + 1)
    ]


@pytest.mark.parametrize("fn", [conv_loops, conv_shifts, conv_numpy, conv_nested_lists])
def test_right_convolutions_pass(fn):
    for _ in range(3):  # the first draw (the notebook's) and fresh ones
        feedback = chapter06.check_conv_by_hand(fn)
        assert feedback.ok, feedback.message


def test_the_cases_hold_a_digit_sized_image_and_asymmetric_filters():
    for seed in (0, 1, 5):
        cases = chapter06.conv_inputs(seed)
        assert cases[0][0].shape == (28, 28) and cases[0][1].shape == (5, 5)
        for _, weight, bias in cases:
            assert not torch.equal(weight, weight.flip(0, 1)) and bias != 0
            assert not torch.equal(weight, weight.T)


CONV_MISTAKES = {
    "flipped the filter": lambda x, w, b: conv_loops(x, w.flip(0, 1), b),
    "short by the bias": lambda x, w, b: conv_loops(x, w, 0.0),
    "rows and columns are swapped": lambda x, w, b: conv_loops(x, w.T, b),
    "it should be": lambda x, w, b: conv_loops(x, w, b)[:-1],  # one row short
    "nn.Conv2d gives": lambda x, w, b: conv_loops(x, w, b) * 1.01,
}


@pytest.mark.parametrize("message, fn", CONV_MISTAKES.items(), ids=list(CONV_MISTAKES))
def test_each_conv_mistake_gets_its_message(message, fn):
    feedback = chapter06.check_conv_by_hand(fn)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_the_library_is_no_shortcut():
    def library(x, w, b):
        return F.conv2d(x[None, None], w[None, None])[0, 0] + b

    def unfolded(x, w, b):
        cols = F.unfold(x[None, None], w.shape)
        return (w.flatten() @ cols)[0].view(x.shape[0] - 4, -1) + b

    for fn in (library, unfolded):
        feedback = chapter06.check_conv_by_hand(fn)
        assert not feedback.ok and "write it yourself" in feedback.message, feedback.message


@pytest.mark.parametrize("fn", [raises, not_written, None, 3, lambda x, w, b: None])
def test_broken_convolutions_never_raise(fn):
    feedback = chapter06.check_conv_by_hand(fn)
    assert not feedback.ok and feedback.message


@pytest.mark.parametrize("value", ODD_RETURNS, ids=repr)
def test_odd_conv_returns_never_raise(value):
    feedback = chapter06.check_conv_by_hand(lambda x, w, b: value)
    assert not feedback.ok and feedback.message


def test_conv_by_hand_hint_grows():
    wrong = CONV_MISTAKES["flipped the filter"]
    first = chapter06.check_conv_by_hand(wrong)
    second = chapter06.check_conv_by_hand(wrong)
    assert "Hint:" not in first.message and "Hint:" in second.message
    assert "return " not in second.message and "range(" not in second.message


# ----------------------------------------------------------------------------- batch_norm_by_hand


def bn_mean_square(x, gamma, beta, eps=1e-5):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    return gamma.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + eps) + beta.view(1, -1, 1, 1)


def bn_var_mean(x, gamma, beta, eps=1e-5):
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps) * gamma[:, None, None] + beta[:, None, None]


def bn_per_channel_loop(x, gamma, beta, eps=1e-5):
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        channel = x[:, c]
        mu, var = channel.mean(), channel.var(unbiased=False)
        out[:, c] = gamma[c] * (channel - mu) / (var + eps) ** 0.5 + beta[c]
    return out


def bn_numpy(x, gamma, beta, eps=1e-5):
    a = np.asarray(x)
    mean, var = a.mean(axis=(0, 2, 3)), a.var(axis=(0, 2, 3))
    shape = (1, -1, 1, 1)
    a_hat = (a - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return np.asarray(gamma).reshape(shape) * a_hat + np.asarray(beta).reshape(shape)


@pytest.mark.parametrize("fn", [bn_mean_square, bn_var_mean, bn_per_channel_loop, bn_numpy])
def test_right_batch_norms_pass(fn):
    for _ in range(3):
        feedback = chapter06.check_batch_norm_by_hand(fn)
        assert feedback.ok, feedback.message


def _unbiased(x, g, b, eps=1e-5):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), keepdim=True)  # unbiased, torch's default
    return g.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + eps) + b.view(1, -1, 1, 1)


def _dims(dims):
    def bn(x, g, b, eps=1e-5):
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        return g.view(1, -1, 1, 1) * (x - mean) / torch.sqrt(var + eps) + b.view(1, -1, 1, 1)

    return bn


def _eps_outside(x, g, b, eps=1e-5):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True).sqrt()
    return g.view(1, -1, 1, 1) * (x - mean) / (std + eps) + b.view(1, -1, 1, 1)


def _no_eps(x, g, b, eps=1e-5):
    return bn_mean_square(x, g, b, 0.0)


BN_MISTAKES = {
    "count minus 1": _unbiased,
    "each IMAGE was normalised": _dims((2, 3)),
    "over everything at once": _dims((0, 1, 2, 3)),
    "eps goes inside the square root": _eps_outside,
    "gamma and beta are missing": lambda x, g, b, eps=1e-5: bn_mean_square(
        x, torch.ones_like(g), torch.zeros_like(b), eps
    ),
    "its variance is 0": _no_eps,
    "keeps the shape of x": lambda x, g, b, eps=1e-5: bn_mean_square(x, g, b, eps)[0],
    "differs from BatchNorm2d": lambda x, g, b, eps=1e-5: bn_mean_square(x, g, b, eps) + 0.01,
}


@pytest.mark.parametrize("message, fn", BN_MISTAKES.items(), ids=list(BN_MISTAKES))
def test_each_batch_norm_mistake_gets_its_message(message, fn):
    feedback = chapter06.check_batch_norm_by_hand(fn)
    assert not feedback.ok and message in feedback.message, feedback.message


def test_the_normalisation_layers_are_no_shortcut():
    def library(x, g, b, eps=1e-5):
        return F.batch_norm(x, None, None, g, b, training=True, eps=eps)

    def layer(x, g, b, eps=1e-5):
        bn = nn.BatchNorm2d(x.shape[1], eps=eps).double()
        return bn(x) * g.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)

    def group_norm(x, g, b, eps=1e-5):  # over a batch seen as one image per channel
        y = F.group_norm(x.transpose(0, 1).reshape(1, x.shape[1], -1), x.shape[1], eps=eps)
        y = y.view(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1)
        return g.view(1, -1, 1, 1) * y + b.view(1, -1, 1, 1)

    for fn in (library, layer, group_norm):
        feedback = chapter06.check_batch_norm_by_hand(fn)
        assert not feedback.ok and "write it yourself" in feedback.message, feedback.message


@pytest.mark.parametrize("fn", [raises, not_written, None, "bn", lambda x, g, b, eps: None])
def test_broken_batch_norms_never_raise(fn):
    feedback = chapter06.check_batch_norm_by_hand(fn)
    assert not feedback.ok and feedback.message


@pytest.mark.parametrize("value", ODD_RETURNS, ids=repr)
def test_odd_batch_norm_returns_never_raise(value):
    feedback = chapter06.check_batch_norm_by_hand(lambda x, g, b, eps: value)
    assert not feedback.ok and feedback.message


def test_the_learner_s_in_place_changes_do_not_reach_the_reference():
    def in_place(x, g, b, eps=1e-5):
        out = bn_mean_square(x, g, b, eps)
        x.zero_()
        g.fill_(3.0)
        return out

    assert chapter06.check_batch_norm_by_hand(in_place).ok


def test_batch_norm_hint_grows():
    wrong = BN_MISTAKES["count minus 1"]
    first = chapter06.check_batch_norm_by_hand(wrong)
    second = chapter06.check_batch_norm_by_hand(wrong)
    assert "Hint:" not in first.message and "Hint:" in second.message
    assert "keepdim" not in second.message and "return " not in second.message


# ----------------------------------------------------------------------------- pick_on_validation


def pick(results):
    return max(results, key=lambda name: results[name]["val"])


@pytest.mark.parametrize(
    "pick_fn",
    [
        pick,
        lambda r: max(r.items(), key=lambda kv: kv[1]["val"])[0],
        lambda r: sorted(r, key=lambda n: r[n].get("val"))[-1],
        lambda r: max((v["val"], n) for n, v in r.items())[1],  # reads values, not "test"
    ],
)
def test_right_pick_passes(pick_fn):
    feedback = chapter06.check_pick_on_validation(pick_fn)
    assert feedback.ok, feedback.message


@pytest.mark.parametrize("seed", range(6))
def test_the_cases_separate_the_mistakes(seed):
    for case in chapter06.pick_cases(seed):
        names = {chapter06._best(case, 0), chapter06._best(case, 1), chapter06._best(case, 0, -1)}
        assert len(names) == 3, case


def test_names_learnt_by_heart_do_not_pass():
    known = {"mlp": 0, "cnn": 1, "cnn, bigger": 0, "one-cycle": 1, "b": 1}

    def by_heart(results):
        return next((name for name in results if known.get(name)), "cnn")

    assert not chapter06.check_pick_on_validation(by_heart).ok


PICK_MISTAKES = {
    "looked at the test accuracy": lambda r: max(r, key=lambda n: r[n]["test"]),
    "looked at the test accuracy ": lambda r: max(r, key=lambda n: r[n]["val"] + r[n].get("test")),
    "LOWEST": lambda r: min(r, key=lambda n: r[n]["val"]),
    "return the NAME": lambda r: max(v["val"] for v in r.values()),
    "return the NAME ": lambda r: max(r.items(), key=lambda kv: kv[1]["val"]),
    "best validation accuracy is another": lambda r: "momentum" if "momentum" in r else pick(r),
}


@pytest.mark.parametrize("message, pick_fn", PICK_MISTAKES.items(), ids=list(PICK_MISTAKES))
def test_each_pick_mistake_gets_its_message(message, pick_fn):
    feedback = chapter06.check_pick_on_validation(pick_fn)
    assert not feedback.ok and message.strip() in feedback.message, feedback.message


def test_best_test_without_peeking_is_caught_by_the_result():
    # reads every entry through values() (not flagged as peeking), then picks by test
    def by_test(r):
        return max(r, key=lambda n: list(r[n].values())[1])

    feedback = chapter06.check_pick_on_validation(by_test)
    assert not feedback.ok and "best test accuracy" in feedback.message


@pytest.mark.parametrize("value", ODD_RETURNS + [3, ("cnn",)], ids=repr)
def test_odd_picks_never_raise(value):
    feedback = chapter06.check_pick_on_validation(lambda r: value)
    assert not feedback.ok and feedback.message


@pytest.mark.parametrize("fn", [raises, not_written, None, "cnn"])
def test_broken_picks_never_raise(fn):
    assert not chapter06.check_pick_on_validation(fn).ok


def test_pick_hint_grows():
    wrong = PICK_MISTAKES["looked at the test accuracy"]
    first = chapter06.check_pick_on_validation(wrong)
    second = chapter06.check_pick_on_validation(wrong)
    assert "Hint:" not in first.message and "Hint:" in second.message


# ----------------------------------------------------------------------------- break_it

RIGHT = {"mlp, lr=1": "b", "mlp, raw pixels": "b", "cnn, raw pixels": "a"}


@pytest.fixture
def measured(monkeypatch):
    """run_trial replaced by the outcomes measured on MNIST, so these tests need no data."""
    results = {
        ("mlp", 1.0, False): (False, math.inf),
        ("mlp", 0.1, True): (True, 2.3),
        ("cnn", 0.1, True): (True, 0.3),
    }
    calls = []

    def fake(images, labels, model, lr, raw, steps=chapter06.STEPS, seed=0):
        assert images is OWN_DATA[0] and labels is OWN_DATA[1]  # never the learner's data
        calls.append((model, lr, raw))
        finite, loss = results[(model, lr, raw)]
        return finite, loss, steps if finite else 7

    monkeypatch.setattr(chapter06, "run_trial", fake)
    monkeypatch.setattr(chapter06, "_training_data", lambda: OWN_DATA)
    return calls


OWN_DATA = (torch.zeros(6400, 1, 28, 28), torch.zeros(6400, dtype=torch.long))


X, Y = torch.zeros(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)


def test_right_predictions_pass(measured):
    feedback = chapter06.check_break_it(RIGHT, X, Y)
    assert feedback.ok, feedback.message
    assert "confirmed by running each case for up to 100 steps" in feedback.message
    assert "mlp, lr=1 stopped at step 7" in feedback.message  # the steps that really ran
    assert len(measured) == len(chapter06.BREAK_CASES)


@pytest.mark.parametrize(
    "images, labels",
    [(X[:1], Y[:1]), (torch.rand(1000, 1, 28, 28), torch.randperm(1000) % 10), ("x", None)],
    ids=["one image", "shuffled labels", "not images"],
)
def test_the_learner_s_data_is_never_used(measured, images, labels):
    assert chapter06.check_break_it(RIGHT, images, labels).ok
    assert chapter06.check_break_it(RIGHT).ok  # the predictions alone are enough


def test_missing_mnist_is_explained(monkeypatch):
    def missing():
        raise data.MNISTNotFoundError("no MNIST here")

    monkeypatch.setattr(chapter06, "_training_data", missing)
    feedback = chapter06.check_break_it(RIGHT)
    assert not feedback.ok and "could not load the MNIST training images" in feedback.message


def test_run_trial_leaves_the_learner_s_random_state_alone():
    """A check draws its own weights: the learner's next random numbers are the same with it."""
    import random

    images, labels = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def next_draws():
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()  # noqa: NPY002

    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    expected = next_draws()
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    first = chapter06.run_trial(images, labels, "mlp", 0.1, False, steps=2, seed=0)
    assert next_draws() == expected
    again = chapter06.run_trial(images, labels, "mlp", 0.1, False, steps=2, seed=0)
    assert first == again  # and the trial itself is still reproducible


def test_run_trial_refuses_too_few_images():
    with pytest.raises(ValueError, match="need 6400 images"):
        chapter06.run_trial(X, Y, "mlp", 0.1, False)


@pytest.mark.parametrize("case", list(RIGHT))
def test_a_wrong_prediction_names_its_case(measured, case):
    wrong = dict(RIGHT, **{case: "a" if RIGHT[case] == "b" else "b"})
    first = chapter06.check_break_it(wrong, X, Y)
    assert not first.ok and case in first.message and "Hint:" not in first.message
    second = chapter06.check_break_it(wrong, X, Y)
    assert "Hint:" in second.message and chapter06.BREAK_HINTS[case] in second.message


@pytest.mark.parametrize(
    "predictions",
    [
        collections.OrderedDict(reversed(list(RIGHT.items()))),
        types.MappingProxyType(RIGHT),
        {**{k: v.upper() for k, v in RIGHT.items()}, "extra": "ignored"},
    ],
    ids=["OrderedDict", "mappingproxy", "upper case with an extra key"],
)
def test_right_predictions_in_other_containers_pass(measured, predictions):
    assert chapter06.check_break_it(predictions).ok


def test_letters_are_read_loosely(measured):
    loose = {k: f" ({v.upper()}) " for k, v in RIGHT.items()}
    assert chapter06.check_break_it(loose, X, Y).ok


@pytest.mark.parametrize(
    "predictions",
    [
        None,
        "b",
        ["a", "b", "a"],
        {},
        dict(RIGHT, **{"cnn, raw pixels": "z"}),
        dict(RIGHT, **{"mlp, lr=1": 1}),
        {k: None for k in RIGHT},
    ],
    ids=repr,
)
def test_odd_predictions_never_raise(measured, predictions):
    feedback = chapter06.check_break_it(predictions, X, Y)
    assert not feedback.ok and feedback.message
    assert measured == []  # nothing is run before the predictions can be read


def test_an_unclear_run_is_not_held_against_the_learner(monkeypatch):
    monkeypatch.setattr(chapter06, "run_trial", lambda *a, **k: (True, 1.5, 100))
    monkeypatch.setattr(chapter06, "_training_data", lambda: OWN_DATA)
    assert chapter06.check_break_it(RIGHT, X, Y).ok


def test_outcome_thresholds():
    assert chapter06.outcome(False, math.inf) == "b"
    assert chapter06.outcome(True, 2.30) == "b"
    assert chapter06.outcome(True, 0.4) == "a"
    assert chapter06.outcome(True, 1.5) is None


def test_odd_arguments_never_raise(measured):
    assert not chapter06.check_break_it().ok
    assert "one letter per case" in chapter06.check_break_it(None).message


@pytest.mark.skipif(not os.environ.get(data.ENV_VAR), reason=f"set {data.ENV_VAR} to a real copy")
def test_break_it_on_mnist():
    images, labels = chapter06._training_data()
    split_images, split_labels = data.load_split("train")
    assert torch.equal(images, split_images[: len(images)]) and len(images) == 6400
    assert torch.equal(labels, split_labels[: len(labels)])
    for case, (model, lr, raw) in chapter06.BREAK_CASES.items():
        result = chapter06.run_trial(images, labels, model, lr, raw)
        assert chapter06.outcome(*result) == RIGHT[case], (case, result)
    assert chapter06.check_break_it(RIGHT, images[:64], labels[:64]).ok


# ----------------------------------------------------------------------------- quiz, notebook


def test_quiz_key_is_computed_right():
    assert chapter06.QUIZ[1].answer == chapter06._output_size(32, 3, 2, 1)
    assert chapter06.QUIZ[2].answer == sum(t.numel() for t in nn.Conv2d(3, 8, 3).parameters())
    bn = nn.BatchNorm2d(1)
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(4.0)
    batch = torch.full((2, 1, 2, 2), 7.0)
    bn.eval()
    assert torch.allclose(bn(batch), torch.ones(1), atol=1e-3)  # eval: (7 - 5) / sqrt(4)
    bn.train()
    assert torch.allclose(bn(batch), torch.zeros(1), atol=1e-3)  # training: the batch's own


def test_quiz_marks_and_explains():
    right = {k: q.answer for k, q in chapter06.QUIZ.items()}
    result = chapter06.check_quiz(right)
    assert result.ok and result.right == len(chapter06.QUIZ) >= 3
    assert "not answered yet" in str(chapter06.check_quiz({}))
    assert not chapter06.check_quiz(None).ok


def test_notebook_uses_every_exercise_once_in_order():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    names = [
        c["metadata"]["exercise"] for c in nb["cells"] if "checker" in c["metadata"].get("tags", [])
    ]
    assert tuple(names) == chapter06.EXERCISES
    answers = [c for c in nb["cells"] if "answer" in c["metadata"].get("tags", [])]
    assert len(answers) == len(names)
    assert all("### BEGIN SOLUTION" in "".join(c["source"]) for c in answers)
    quiz_cells = [c for c in nb["cells"] if "quiz" in c["metadata"].get("tags", [])]
    assert len(quiz_cells) == 1 and "chapter06.check_quiz(answers)" in "".join(
        quiz_cells[0]["source"]
    )
    notes = [c for c in nb["cells"] if c["metadata"]["slideshow"]["slide_type"] == "notes"]
    assert len(notes) >= 3
    assert "glossary.md" in "".join(nb["cells"][0]["source"])


# ----------------------------------------------------------------------------- Chinese feedback


def test_feedback_in_chinese(chinese):
    """The chapter's catalog speaks: symptoms (a typical mistake's own message among them),
    hints, a refused operator's label, a success line, the choices and a quiz explanation."""
    wrong = chapter06.check_conv_by_hand(CONV_MISTAKES["flipped the filter"], hint=2)
    assert not wrong.ok
    assert wrong.message.startswith("对 28 x 28 的图像和 5 x 5 的滤波器，你把滤波器翻转了")
    assert "把每个权重与它下面的像素相乘" in wrong.message and "flipped" not in wrong.message
    right = chapter06.check_conv_by_hand(conv_loops)
    assert right.ok and right.message.startswith("你的 conv2d 在 4 组图像和滤波器上都与")
    size_mistake = chapter06.check_conv_arithmetic(SIZE_MISTAKES["BOTH sides"], params)
    assert "填充是在图像的两侧各加 p 个像素" in size_mistake.message, size_mistake.message
    refused = chapter06.check_conv_arithmetic(aten_size, params)
    assert "PyTorch 的卷积层或池化层（请自己写出计算）" in refused.message, refused.message
    letters = chapter06.check_break_it({"mlp, lr=1": "x"}, hint=2)
    assert "(a) 它学得与通常的设置差不多好；(b) 它失败了" in letters.message, letters.message
    marked = chapter06.check_quiz({4: "c"})
    assert "批归一化使用训练期间累积的滑动平均" in marked.lines[3], marked.lines[3]
