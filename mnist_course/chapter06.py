"""Exercises and quiz of chapter 6 (Going further: a CNN, and what each choice is worth).

- ``conv_arithmetic``: the output size of a convolution or pooling window, and
  the parameter count of a ``Conv2d`` layer, from their settings (without
  building the layer);
- ``conv_by_hand``: what one filter of ``nn.Conv2d`` computes on one image, written
  out (a sum of weights times pixels at every position, no flipping);
- ``batch_norm_by_hand``: what ``nn.BatchNorm2d`` computes in training mode, written
  out (each channel's batch mean and variance, eps, then gamma and beta);
- ``pick_on_validation``: choose a model from validation results only, even
  when the test accuracies sit right beside them;
- ``break_it``: predict what happens to training with a learning rate of 1, or
  without normalising the pixels; the checker runs each case briefly and
  compares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnist_course import data, i18n, models, quiz
from mnist_course.exercises import (
    NotYet,
    a_type,
    as_array,
    as_float,
    call,
    checker,
    close,
    draw,
    translated_labels,
)

_ = i18n.translator(__name__)

EXERCISES: tuple[str, ...] = (
    "conv_arithmetic",
    "conv_by_hand",
    "batch_norm_by_hand",
    "pick_on_validation",
    "break_it",
)

# ----------------------------------------------------------------------------- conv_arithmetic

CONV_LIBRARY = [
    "torch.nn.Conv2d",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.LazyConv2d",
    "torch.nn.functional.conv2d",
    "torch.conv2d",
    "torch.nn.MaxPool2d",
    "torch.nn.functional.max_pool2d",
    "torch.max_pool2d",
    "torch.nn.functional.avg_pool2d",
    "torch.nn.AvgPool2d",
    "torch.nn.functional.unfold",
    "torch.nn.Unfold",
    "torch.convolution",
    "mnist_course.models.count_parameters",
]
# The operators behind every convolution, pooling and unfold, however they are reached.
CONV_OPS: dict[str, str] = {
    name: i18n.N_("a convolution or pooling layer of PyTorch (write the arithmetic yourself)")
    for name in (
        "aten::convolution",
        "aten::_convolution",
        "aten::conv2d",
        "aten::mkldnn_convolution",
        "aten::_slow_conv2d_forward",
        "aten::max_pool2d",
        "aten::max_pool2d_with_indices",
        "aten::avg_pool2d",
        "aten::im2col",
        "aten::col2im",
    )
}

# (size, kernel, stride, padding): the CNN's own layers first, then others where
# each typical mistake gives a different number.
SIZE_CASES: list[tuple[int, int, int, int]] = [
    (28, 5, 1, 0),  # conv1: 24
    (24, 2, 2, 0),  # pool1: 12
    (8, 2, 2, 0),  # pool2: 4
    (28, 3, 1, 1),  # "same" padding: 28
    (32, 3, 2, 1),  # 16
    (29, 4, 3, 2),  # (29 + 4 - 4) // 3 + 1 = 10, a partial window dropped
    (7, 7, 1, 0),  # the filter as large as the image: 1
]
# (in_channels, out_channels, kernel)
PARAM_CASES: list[tuple[int, int, int]] = [(1, 16, 5), (16, 32, 5), (3, 8, 3), (4, 6, 1)]


def conv_cases(seed: int) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int]]]:
    """The settings one check uses: the lists above for the first, fresh ones after it.

    Fresh size cases keep the CNN's own three layers and add four random settings
    (some with stride and padding); fresh parameter cases are four random layers.
    """
    if seed == 0:
        return SIZE_CASES, PARAM_CASES
    g = torch.Generator().manual_seed(seed)

    def pick(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=g))

    sizes = list(SIZE_CASES[:3])  # the CNN's own layers
    for stride in (1, 2, 2, 3):
        kernel = pick(2, 7)
        padding = pick(0, kernel // 2)
        sizes.append((pick(kernel + 1, 40), kernel, stride, padding))
    params = [(pick(2, 16), pick(2, 64), pick(1, 7)) for _ in range(4)]
    return sizes, params


def _output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a convolution's or pooling's output: floor((size + 2p - k) / s) + 1 (chapter 6)."""
    return (size + 2 * padding - kernel) // stride + 1


def _conv_parameters(in_channels: int, out_channels: int, kernel: int) -> int:
    """Weights and biases of ``Conv2d(in, out, kernel)``: out * (in * k * k + 1) (chapter 6)."""
    return out_channels * (in_channels * kernel * kernel + 1)


def _read_int(value: Any, what: str) -> float:
    number = as_float(value, what)
    if not math.isfinite(number):
        raise NotYet(
            _("{what} returned {number}; return a whole number.").format(what=what, number=number)
        )
    return number


_SIZE_MISTAKES: dict[str, Callable[[int, int, int, int], float]] = {
    i18n.N_(
        "one position short: a 5-wide filter fits in 28 pixels at 24 places (0 to 23), so add 1."
    ): lambda n, k, s, p: (n + 2 * p - k) // s,
    i18n.N_("padding adds p pixels on BOTH sides of the image: use 2 * padding."): (
        lambda n, k, s, p: (n + p - k) // s + 1
    ),
    i18n.N_(
        "the stride is missing: the window jumps `stride` pixels at a time, so divide "
        "(size + 2p - k) by the stride."
    ): lambda n, k, s, p: n + 2 * p - k + 1,
    i18n.N_(
        "PyTorch drops a window that would stick out past the edge: round DOWN (use //), not up."
    ): lambda n, k, s, p: -((-(n + 2 * p - k)) // s) + 1,
}

_PARAM_MISTAKES: dict[str, Callable[[int, int, int], float]] = {
    i18n.N_("each output channel also has one bias: add out_channels."): (
        lambda i, o, k: o * i * k * k
    ),
    i18n.N_("each filter looks at ALL input channels: it has in_channels * k * k weights."): (
        lambda i, o, k: o * (k * k + 1)
    ),
    i18n.N_("a k x k filter has k * k weights per input channel, not k."): (
        lambda i, o, k: o * (i * k + 1)
    ),
    i18n.N_("one bias per output channel, not per input channel."): (
        lambda i, o, k: o * i * k * k + i
    ),
}


def _first_mistake(
    got: list[float], cases: list[tuple[int, ...]], mistakes: dict[str, Callable[..., float]]
) -> str | None:
    """The message (untranslated) of the typical mistake that gives exactly ``got`` on every
    case, if any."""
    for message, mistake in mistakes.items():
        if all(g == mistake(*case) for g, case in zip(got, cases, strict=True)):
            return message
    return None


_SIZE_HINT = i18n.N_(
    "count where the window's left edge can go: from 0 to size + 2p - k, every stride pixels."
)
_PARAM_HINT = i18n.N_(
    "count the weights of one filter (it looks at every input channel) and its bias, "
    "then count the filters."
)


def _check_sizes(fn: Callable[..., Any], cases: list[tuple[int, int, int, int]]) -> None:
    ops = translated_labels(CONV_OPS, __name__)
    got = [
        _read_int(call(fn, *case, forbidden=CONV_LIBRARY, ops=ops), "conv_output_size")
        for case in cases
    ]
    expected = [_output_size(*case) for case in cases]
    if got == expected:
        return
    i = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    n, k, s, p = cases[i]
    fields = {"n": n, "k": k, "s": s, "p": p, "got": got[i]}
    if any(g != int(g) for g in got):
        raise NotYet(
            _(
                "conv_output_size({n}, kernel={k}, stride={s}, padding={p}) gave {got:g}, "
                "not a whole number: a window either fits or it does not."
            ).format(**fields),
            _("use floor division //."),
        )
    message = _first_mistake(got, cases, _SIZE_MISTAKES)
    if message:
        symptom = _(
            "conv_output_size({n}, kernel={k}, stride={s}, padding={p}) gave {got:g}: {mistake}"
        ).format(mistake=_(message), **fields)
    elif got[i] > expected[i]:
        symptom = _(
            "conv_output_size({n}, kernel={k}, stride={s}, padding={p}) gave {got:g}, too large."
        ).format(**fields)
    else:
        symptom = _(
            "conv_output_size({n}, kernel={k}, stride={s}, padding={p}) gave {got:g}, too small."
        ).format(**fields)
    raise NotYet(symptom, _(_SIZE_HINT))


def _check_parameters(fn: Callable[..., Any], cases: list[tuple[int, int, int]]) -> None:
    ops = translated_labels(CONV_OPS, __name__)
    got = [
        _read_int(call(fn, *case, forbidden=CONV_LIBRARY, ops=ops), "conv_parameters")
        for case in cases
    ]
    expected = [_conv_parameters(*case) for case in cases]
    if got == expected:
        return
    i = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    c_in, c_out, k = cases[i]
    fields = {"c_in": c_in, "c_out": c_out, "k": k, "got": got[i]}
    message = _first_mistake(got, cases, _PARAM_MISTAKES)
    if message:
        symptom = _("conv_parameters({c_in}, {c_out}, kernel={k}) gave {got:g}: {mistake}").format(
            mistake=_(message), **fields
        )
    elif got[i] > expected[i]:
        symptom = _("conv_parameters({c_in}, {c_out}, kernel={k}) gave {got:g}, too many.").format(
            **fields
        )
    else:
        symptom = _("conv_parameters({c_in}, {c_out}, kernel={k}) gave {got:g}, too few.").format(
            **fields
        )
    raise NotYet(symptom, _(_PARAM_HINT))


@checker(
    "conv_arithmetic",
    expects=i18n.N_(
        "both functions: check_conv_arithmetic(conv_output_size, conv_parameters), "
        "each returning a whole number"
    ),
)
def check_conv_arithmetic(conv_output_size: Any, conv_parameters: Any) -> str:
    """``conv_output_size(size, kernel, stride, padding)`` and ``conv_parameters(in, out, kernel)``."""
    sizes, params = conv_cases(draw("conv_arithmetic"))
    _check_sizes(conv_output_size, sizes)
    _check_parameters(conv_parameters, params)
    return _("sizes and parameter counts match nn.Conv2d for {sizes} + {params} settings.").format(
        sizes=len(sizes), params=len(params)
    )


# ----------------------------------------------------------------------------- conv_by_hand

# (height, width, kernel): the first is the CNN's first layer on one digit.
CONV_CASES: list[tuple[int, int, int]] = [(28, 28, 5), (6, 9, 3), (5, 4, 2), (3, 3, 3)]
TOL = 1e-5  # an answer computed in float32 passes too


def conv_inputs(seed: int) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(image, filter, bias) for each case of :data:`CONV_CASES`, drawn from ``seed``.

    The filters are not symmetric, so a flipped filter gives other numbers."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for h, w, k in CONV_CASES:
        image = torch.randn(h, w, generator=g, dtype=torch.float64)
        weight = torch.randn(k, k, generator=g, dtype=torch.float64)
        bias = float(torch.randn((), generator=g, dtype=torch.float64))
        cases.append((image, weight, round(bias, 3) or 0.5))
    return cases


def _reference_conv(image: torch.Tensor, weight: torch.Tensor, bias: float) -> np.ndarray:
    out = F.conv2d(image[None, None], weight[None, None], torch.tensor([bias], dtype=image.dtype))
    return out[0, 0].numpy()


_CONV_HINT = i18n.N_(
    "for each output position (i, j), lay the k x k filter on the image with its top-left "
    "corner at (i, j), multiply each weight by the pixel under it, add the products up, "
    "then add the bias once."
)


@checker(
    "conv_by_hand",
    expects=i18n.N_(
        "a function conv2d(image, weight, bias) that returns the output as a 2-d tensor or array"
    ),
)
def check_conv_by_hand(conv2d: Any) -> str:
    """``conv2d(image (H, W), weight (k, k), bias)`` -> what ``F.conv2d`` computes, (H-k+1, W-k+1)."""
    ops = translated_labels(CONV_OPS, __name__)
    for image, weight, bias in conv_inputs(draw("conv_by_hand")):
        got = as_array(
            call(conv2d, image.clone(), weight.clone(), bias, forbidden=CONV_LIBRARY, ops=ops),
            "conv2d",
        )
        expected = _reference_conv(image, weight, bias)
        h, w = image.shape
        k = weight.shape[0]
        case = {"h": h, "w": w, "k": k}
        if got.shape != expected.shape:
            raise NotYet(
                _(
                    "for a {h} x {w} image and a {k} x {k} filter your output has shape {got}; it "
                    "should be {expected}: the filter fits at {rows} rows and {columns} columns "
                    "(no padding)."
                ).format(
                    got=got.shape,
                    expected=expected.shape,
                    rows=h - k + 1,
                    columns=w - k + 1,
                    **case,
                ),
                _(
                    "the top-left corner of the filter can go from row 0 to row H - k, "
                    "and from column 0 to column W - k."
                ),
            )
        if close(got, expected, TOL):
            continue
        if close(got + bias, expected, TOL):
            raise NotYet(
                _(
                    "for a {h} x {w} image and a {k} x {k} filter every value is short by the "
                    "bias: add it once per output."
                ).format(**case)
            )
        flipped = _reference_conv(image, weight.flip(0, 1), bias)
        if close(got, flipped, TOL):
            raise NotYet(
                _(
                    "for a {h} x {w} image and a {k} x {k} filter you flipped the filter (the "
                    "textbook convolution). nn.Conv2d does not flip it: it lays the filter on the "
                    "image as it is (a cross-correlation)."
                ).format(**case),
                _(_CONV_HINT),
            )
        swapped = (expected.T, _reference_conv(image, weight.T, bias))  # output, filter
        if any(close(got, other, TOL) for other in swapped):
            raise NotYet(
                _(
                    "for a {h} x {w} image and a {k} x {k} filter rows and columns are swapped."
                ).format(**case),
                _(_CONV_HINT),
            )
        i, j = np.argwhere(~np.isclose(got, expected, atol=TOL, rtol=TOL))[0]
        raise NotYet(
            _(
                "for a {h} x {w} image and a {k} x {k} filter the output at row {i}, column {j} "
                "is {got:.4f}; nn.Conv2d gives {expected:.4f}."
            ).format(i=i, j=j, got=got[i, j], expected=expected[i, j], **case),
            _(_CONV_HINT),
        )
    return _(
        "your conv2d matches nn.Conv2d on {cases} images and filters, "
        "a 28 x 28 digit-sized one with a 5 x 5 filter among them."
    ).format(cases=len(CONV_CASES))


# ----------------------------------------------------------------------------- batch_norm_by_hand

BN_LIBRARY = [
    "torch.nn.functional.batch_norm",
    "torch.batch_norm",
    "torch.nn.BatchNorm2d",
    "torch.nn.BatchNorm1d",
    "torch.nn.LazyBatchNorm2d",
    "torch.nn.functional.instance_norm",
    "torch.nn.functional.layer_norm",
    "torch.nn.functional.group_norm",
    "torch.nn.functional.normalize",
]
BN_OPS: dict[str, str] = {
    name: i18n.N_("a normalisation layer of PyTorch (write the mean and variance yourself)")
    for name in (
        "aten::batch_norm",
        "aten::_batch_norm_impl_index",
        "aten::native_batch_norm",
        "aten::_native_batch_norm_legit",
        "aten::_native_batch_norm_legit_no_training",
        "aten::_native_batch_norm_legit_functional",
        "aten::instance_norm",
        "aten::layer_norm",
        "aten::native_layer_norm",
        "aten::group_norm",
        "aten::native_group_norm",
    )
}


def bn_inputs(seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    """(x, gamma, beta, eps) cases drawn from ``seed``: channels of different means and
    scales, one batch whose last channel is constant (its variance is 0), and one large eps."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, c, h, w, eps in ((8, 3, 4, 4, 1e-5), (4, 2, 3, 5, 1e-5), (2, 4, 3, 3, 0.5)):
        scale = 0.5 + 3 * torch.rand(1, c, 1, 1, generator=g, dtype=torch.float64)
        shift = 4 * torch.randn(1, c, 1, 1, generator=g, dtype=torch.float64)
        x = shift + scale * torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
        gamma = 0.5 + torch.rand(c, generator=g, dtype=torch.float64)
        beta = torch.randn(c, generator=g, dtype=torch.float64)
        cases.append((x, gamma, beta, eps))
    x = cases[1][0]
    x[:, -1] = 2.5  # a channel that is the same everywhere: only eps keeps it finite
    return cases


def _reference_bn(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> Any:
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps).numpy()


def _bn_with(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, dims: tuple, **how: Any):
    """Batch norm as a typical mistake computes it (``how``: unbiased, eps_outside, no_affine)."""
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, correction=1 if how.get("unbiased") else 0)
    eps = how["eps"]
    if how.get("eps_outside"):
        y = (x - mean) / (var.sqrt() + eps)
    else:
        y = (x - mean) / (var + eps).sqrt()
    if how.get("no_affine"):
        return y.numpy()
    shape = (1, -1, 1, 1)
    return (gamma.view(shape) * y + beta.view(shape)).numpy()


_BN_HINT = i18n.N_(
    "each channel gets one mean: the average over the batch and every position (dims 0, 2 "
    "and 3), and one variance: the average squared distance from that mean. Keep them in a "
    "shape that broadcasts over x, then apply the chapter's formula, eps inside the root."
)
_CHANNEL_DIMS = (0, 2, 3)
_BN_MISTAKES: list[tuple[str, dict[str, Any]]] = [
    (
        i18n.N_(
            "the variance is divided by the count minus 1 (torch.var's default, the unbiased "
            "estimate); batch norm normalises with the batch's own variance, divided by the count "
            "(correction=0, or unbiased=False)."
        ),
        {"dims": _CHANNEL_DIMS, "unbiased": True},
    ),
    (
        i18n.N_(
            "each IMAGE was normalised on its own (a mean per image and channel): batch norm "
            "takes each channel's mean over the whole batch and every position, dims (0, 2, 3)."
        ),
        {"dims": (2, 3)},
    ),
    (
        i18n.N_(
            "the mean and variance were taken over everything at once: each channel has its own."
        ),
        {"dims": (0, 1, 2, 3)},
    ),
    (
        i18n.N_("eps goes inside the square root: sqrt(var + eps), not sqrt(var) + eps."),
        {"dims": _CHANNEL_DIMS, "eps_outside": True},
    ),
    (
        i18n.N_(
            "the normalisation is right, but gamma and beta are missing: multiply each channel by "
            "its gamma and add its beta."
        ),
        {"dims": _CHANNEL_DIMS, "no_affine": True},
    ),
]


@checker(
    "batch_norm_by_hand",
    expects=i18n.N_(
        "a function batch_norm(x, gamma, beta, eps) that returns a tensor shaped like x"
    ),
)
def check_batch_norm_by_hand(batch_norm: Any) -> str:
    """``batch_norm(x (N, C, H, W), gamma (C,), beta (C,), eps)`` -> BatchNorm2d in training mode."""
    ops = translated_labels(BN_OPS, __name__)
    for x, gamma, beta, eps in bn_inputs(draw("batch_norm_by_hand")):
        result = call(
            batch_norm,
            x.clone(),
            gamma.clone(),
            beta.clone(),
            eps,
            forbidden=BN_LIBRARY,
            ops=ops,
        )
        got = as_array(result, "batch_norm")
        expected = _reference_bn(x, gamma, beta, eps)
        case = {"shape": tuple(x.shape), "eps": eps}
        if got.shape != expected.shape:
            raise NotYet(
                _(
                    "for x of shape {shape} (eps={eps:g}) your output has shape {got}; batch norm "
                    "keeps the shape of x."
                ).format(got=got.shape, **case),
                _("compute the mean and variance with keepdim=True, so they broadcast over x."),
            )
        if close(got, expected, TOL):
            continue
        if not np.isfinite(got).all():
            raise NotYet(
                _(
                    "for x of shape {shape} (eps={eps:g}) your output holds nan or inf: one "
                    "channel of this batch is constant, so its variance is 0. That is what eps is "
                    "for: divide by sqrt(var + eps)."
                ).format(**case),
                _(_BN_HINT),
            )
        for message, how in _BN_MISTAKES:
            with np.errstate(all="ignore"):
                wrong = _bn_with(x, gamma, beta, eps=eps, **how)
            if close(got, wrong, TOL):
                raise NotYet(
                    _("for x of shape {shape} (eps={eps:g}) {mistake}").format(
                        mistake=_(message), **case
                    ),
                    _(_BN_HINT),
                )
        raise NotYet(
            _(
                "for x of shape {shape} (eps={eps:g}) your output differs from BatchNorm2d's in "
                "training mode (largest difference {difference:.3g})."
            ).format(difference=np.abs(got - expected).max(), **case),
            _(_BN_HINT),
        )
    return _(
        "your batch_norm matches nn.BatchNorm2d in training mode: each channel normalised "
        "with the batch's own mean and variance, then scaled by gamma and shifted by beta."
    )


# ----------------------------------------------------------------------------- pick_on_validation


class _Watched(dict):
    """One model's results; remembers whether the code asked for its ``"test"`` entry."""

    def __init__(self, values: Mapping[str, float], peeked: list[str]) -> None:
        super().__init__(values)
        self._peeked = peeked

    def __getitem__(self, key: Any) -> Any:
        if key == "test":
            self._peeked.append(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        if key == "test":
            self._peeked.append(key)
        return super().get(key, default)


# Each case: name -> (validation accuracy, test accuracy). In every case the best
# on test, the worst on validation and the best on validation are three different models.
PICK_CASES: list[dict[str, tuple[float, float]]] = [
    {"mlp": (0.9846, 0.9829), "cnn": (0.9916, 0.9915), "cnn, bigger": (0.9912, 0.9931)},
    {
        "sgd": (0.81, 0.80),
        "momentum": (0.97, 0.96),
        "one-cycle": (0.976, 0.969),
        "adam": (0.966, 0.972),
    },
    {"a": (0.60, 0.71), "b": (0.75, 0.70), "c": (0.52, 0.58)},
]


_NAMES = ["mlp", "cnn", "wide", "deep", "adam", "sgd", "one-cycle", "dropout", "bn", "small"]


def pick_cases(seed: int) -> list[dict[str, tuple[float, float]]]:
    """The fixed cases plus one drawn for this check: four models where the best on test,
    the best and the worst on validation are three different models."""
    g = torch.Generator().manual_seed(seed)
    names = [_NAMES[int(i)] for i in torch.randperm(len(_NAMES), generator=g)[:4]]
    vals = sorted((0.9 + 0.09 * torch.rand(4, generator=g)).tolist())  # worst .. best
    tests = [v - 0.01 for v in vals]
    tests[1] = vals[3] + 0.005  # the second worst on validation is the best on test
    order = torch.randperm(4, generator=g).tolist()
    drawn = {names[i]: (round(vals[k], 4), round(tests[k], 4)) for i, k in enumerate(order)}
    return [*PICK_CASES, drawn]


def _best(case: Mapping[str, tuple[float, float]], column: int, sign: int = 1) -> str:
    return max(case, key=lambda name: sign * case[name][column])


@checker(
    "pick_on_validation",
    expects=i18n.N_("a function pick_model(results) that returns a model's name (a string)"),
)
def check_pick_on_validation(pick_model: Any) -> str:
    """``pick_model({name: {"val": acc, "test": acc}})`` -> the name with the best validation."""
    for case in pick_cases(draw("pick_on_validation")):
        peeked: list[str] = []
        results = {
            name: _Watched({"val": val, "test": test}, peeked) for name, (val, test) in case.items()
        }
        got = call(pick_model, results)
        if peeked:
            raise NotYet(
                _(
                    "your function looked at the test accuracy. Choose with validation only: "
                    "the test set is read once, at the very end, for the model already chosen."
                ),
                _(
                    "results[name]['val'] is all you need: the name whose validation accuracy "
                    "is the highest."
                ),
            )
        if not isinstance(got, str) or got not in case:
            shown = repr(got) if isinstance(got, (int, float, str)) else type(got).__name__
            raise NotYet(
                _("return the NAME of the model (one of {names}), not {shown}.").format(
                    names=sorted(case), shown=shown
                ),
                _("max(results, key=...) goes over the names and returns a name."),
            )
        if got == _best(case, 0):
            continue
        if got == _best(case, 1):
            raise NotYet(
                _("you chose the model with the best test accuracy; choose with validation."),
                _("results[name]['val'] is all you need."),
            )
        if got == _best(case, 0, sign=-1):
            raise NotYet(
                _("you chose the LOWEST validation accuracy: take the highest."),
                _("among the names, take the one whose 'val' entry is the largest."),
            )
        raise NotYet(
            _("for {case} you chose {got!r}; the best validation accuracy is another.").format(
                case=dict(case), got=got
            ),
            _("results[name]['val'] is all you need: the name with the highest one."),
        )
    return _("chosen on validation, without looking at the test accuracy.")


# ----------------------------------------------------------------------------- break_it

CHOICES = {
    "a": i18n.N_("it learns about as well as the usual setting"),
    "b": i18n.N_("it fails: the loss becomes nan, or stays near ln 10 = 2.30 (chance)"),
}

# case -> (model, learning rate, raw pixels?). The usual setting: pixels
# normalised, SGD(lr=0.1, momentum=0.9, nesterov=True), batches of 64.
BREAK_CASES: dict[str, tuple[str, float, bool]] = {
    "mlp, lr=1": ("mlp", 1.0, False),
    "mlp, raw pixels": ("mlp", 0.1, True),
    "cnn, raw pixels": ("cnn", 0.1, True),
}
BREAK_HINTS = {
    "mlp, lr=1": i18n.N_(
        "with momentum 0.9 a steady step is lr / (1 - 0.9): ten times the "
        "learning rate. What does a step 10 times larger than what worked do?"
    ),
    "mlp, raw pixels": i18n.N_(
        "raw pixels are up to 255 instead of about 2.8: the first layer's "
        "outputs, and its gradients, are about 79 times larger."
    ),
    "cnn, raw pixels": i18n.N_(
        "look at the layer right after the first convolution: batch norm "
        "subtracts each channel's mean and divides by its std, whatever the input's scale."
    ),
}
STEPS, BATCH = 100, 64


def run_trial(
    images: torch.Tensor,
    labels: torch.Tensor,
    model: str,
    lr: float,
    raw: bool,
    steps: int = STEPS,
    seed: int = 0,
) -> tuple[bool, float, int]:
    """Train briefly; return (finite all along?, mean loss of the last 20 steps, steps run).

    A run stops at the step whose loss is not finite (chapter 6).

    ``images`` are normalised; ``raw`` undoes that, back to pixel values 0-255. Needs at
    least ``steps * BATCH`` images (:func:`check_break_it` passes the training split).
    """
    if len(images) < steps * BATCH:
        raise ValueError(f"{steps} steps of {BATCH} need {steps * BATCH} images, not {len(images)}")
    # The learner's random state is left as it was: the weights are drawn inside a fork of
    # torch's generator (the only one used here; the data order has its own generator).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = models.build_model(model)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True)
    x, y = images[: steps * BATCH], labels[: steps * BATCH]
    if raw:
        x = (x * data.MNIST_STD + data.MNIST_MEAN) * 255
    losses = []
    for inputs, targets in data.TensorLoader(x, y, batch_size=BATCH, shuffle=True, seed=seed):
        loss = F.cross_entropy(net(inputs), targets)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            return False, math.inf, len(losses)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = losses[-20:]
    return True, sum(last) / len(last), len(losses)


def outcome(finite: bool, last_loss: float, steps_run: int = 0) -> str | None:
    """The choice a trial's result stands for, or None when it is in between."""
    if not finite or last_loss > 2.0:
        return "b"
    if last_loss < 1.0:
        return "a"
    return None


_TRAINING: list[tuple[torch.Tensor, torch.Tensor]] = []  # the training split, once loaded


def _training_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The first STEPS x BATCH images of the training split (loaded once per kernel).

    The checker uses its own data, never the learner's: the cases are run on what
    the chapter trains on.
    """
    if not _TRAINING:  # read only the images needed (the training split starts at image 0)
        n = STEPS * BATCH
        folder = data.raw_folder(data.ensure_mnist(download=False))
        images_file, labels_file = data.MNIST_FILES[0:2]
        pixels = np.fromfile(
            folder / images_file.name, np.uint8, count=n * 28 * 28, offset=images_file.header_size
        )
        labels = np.fromfile(
            folder / labels_file.name, np.uint8, count=n, offset=labels_file.header_size
        )
        images = data.normalize(torch.from_numpy(pixels).view(n, 28, 28))
        _TRAINING.append((images, torch.from_numpy(labels).long()))
    return _TRAINING[0]


def _listed(items: list[str]) -> str:
    """The items, one after another, with the language's separator ("; " in English)."""
    # Translators: the separator between the items of a list ("; " in English).
    return _("; ").join(items)


def _read_predictions(predictions: Any) -> dict[str, str]:
    if not isinstance(predictions, Mapping):
        raise NotYet(
            _(
                "predictions is {type}; make it a dict, {{'mlp, lr=1': 'a', ...}}, one letter "
                "per case."
            ).format(type=a_type(predictions)),
            _("the keys are {keys}.").format(keys=list(BREAK_CASES)),
        )
    read = {}
    for case in BREAK_CASES:
        given = predictions.get(case)
        letter = given.strip().strip("()").lower() if isinstance(given, str) else None
        if letter not in CHOICES:
            raise NotYet(
                _("predict case {case!r} with one letter, 'a' or 'b' (got {given!r}).").format(
                    case=case, given=given
                ),
                _listed([f"({k}) {_(v)}" for k, v in CHOICES.items()]),
            )
        read[case] = letter
    return read


@checker(
    "break_it",
    expects=i18n.N_("a dict of predictions, {'mlp, lr=1': 'a' or 'b', ...}, one letter per case"),
)
def check_break_it(predictions: Any, *ignored: Any) -> str:
    """``predictions = {case: "a" or "b"}``; each case is run for STEPS steps and compared.

    The cases run on the training split, loaded by the checker; anything passed
    after the predictions (the notebook passes its training tensors) is not used.
    """
    read = _read_predictions(predictions)
    try:
        images, labels = _training_data()
    except (OSError, ValueError) as err:  # no MNIST here: say what is missing
        raise NotYet(
            _(
                "the checker could not load the MNIST training images to run the cases "
                "({error}); run the chapter's first cells (data.load_split('train')) "
                "and check again."
            ).format(error=type(err).__name__)
        ) from None
    happened, stopped = {}, []
    for case, (model, lr, raw) in BREAK_CASES.items():
        finite, last_loss, steps_run = run_trial(images, labels, model, lr, raw)
        happened[case] = outcome(finite, last_loss)
        if steps_run < STEPS:
            stopped.append(
                _("{case} stopped at step {step}, its loss nan or inf").format(
                    case=case, step=steps_run
                )
            )
    fields = {"steps": STEPS, "stopped": _listed(stopped)}
    wrong = [case for case in BREAK_CASES if happened[case] and read[case] != happened[case]]
    if wrong:
        if stopped:
            symptom = _(
                "Running each case for up to {steps} steps ({stopped}): {wrong} of {total} "
                "predictions differ from what happened ({cases})."
            )
        else:
            symptom = _(
                "Running each case for up to {steps} steps: {wrong} of {total} predictions "
                "differ from what happened ({cases})."
            )
        raise NotYet(
            symptom.format(
                wrong=len(wrong), total=len(BREAK_CASES), cases=", ".join(wrong), **fields
            ),
            " ".join(_(BREAK_HINTS[case]) for case in wrong),
        )
    said = _listed(
        [
            _("{case}: {outcome}").format(
                case=case, outcome=_(CHOICES[happened[case] or read[case]])
            )
            for case in BREAK_CASES
        ]
    )
    if stopped:
        message = _("confirmed by running each case for up to {steps} steps ({stopped}). {said}.")
    else:
        message = _("confirmed by running each case for up to {steps} steps. {said}.")
    return message.format(said=said, **fields)


# ----------------------------------------------------------------------------- quiz

QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        16,
        i18n.N_(
            "(32 + 2 x 1 - 3) // 2 + 1 = 31 // 2 + 1 = 15 + 1 = 16: padding 1 on each side, "
            "a window every 2 pixels."
        ),
    ),
    2: quiz.Question(
        224,
        i18n.N_("8 filters, each 3 x 3 x 3 = 27 weights plus 1 bias: 8 x 28 = 224."),
    ),
    3: quiz.Question(
        "b",
        i18n.N_(
            "the best of many test scores is the luckiest one: on new data the chosen model "
            "is expected to do a little worse. Choose on validation, report test once."
        ),
    ),
    4: quiz.Question(
        "c",
        i18n.N_(
            "in model.eval() batch norm uses the running mean and variance it averaged during "
            "training, so a prediction does not depend on the other images in the batch."
        ),
    ),
    5: quiz.Question(
        "b",
        i18n.N_(
            "after one epoch, momentum 0.5 -> 0.9 never raised the validation accuracy in the "
            "five stored seeds (it changed it by less than a point, down or not at all); the "
            "learning rate 0.01 -> 0.1 gained many points and the one-cycle rate gained over "
            "every constant rate, in every seed."
        ),
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the chapter's quiz (questions in the notebook's last markdown cell)."""
    return quiz.check("chapter 6", QUIZ, answers, module=__name__)
