"""Exercises and quiz of chapter 6 (Going further: a CNN, and what each choice is worth).

- ``conv_arithmetic``: the output size of a convolution or pooling window, and
  the parameter count of a ``Conv2d`` layer, from their settings (without
  building the layer);
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

import torch
import torch.nn.functional as F

from mnist_course import data, models, quiz, runtime
from mnist_course.exercises import NotYet, as_float, call, checker

EXERCISES: tuple[str, ...] = ("conv_arithmetic", "pick_on_validation", "break_it")

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
    "mnist_course.models.count_parameters",
]

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


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a convolution's or pooling's output: floor((size + 2p - k) / s) + 1 (chapter 6)."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_parameters(in_channels: int, out_channels: int, kernel: int) -> int:
    """Weights and biases of ``Conv2d(in, out, kernel)``: out * (in * k * k + 1) (chapter 6)."""
    return out_channels * (in_channels * kernel * kernel + 1)


def _read_int(value: Any, what: str) -> float:
    number = as_float(value, what)
    if not math.isfinite(number):
        raise NotYet(f"{what} returned {number}; return a whole number.")
    return number


_SIZE_MISTAKES: dict[str, Callable[[int, int, int, int], float]] = {
    "one position short: a 5-wide filter fits in 28 pixels at 24 places (0 to 23), "
    "so add 1.": lambda n, k, s, p: (n + 2 * p - k) // s,
    "padding adds p pixels on BOTH sides of the image: use 2 * padding.": lambda n, k, s, p: (
        (n + p - k) // s + 1
    ),
    "the stride is missing: the window jumps `stride` pixels at a time, so divide "
    "(size + 2p - k) by the stride.": lambda n, k, s, p: n + 2 * p - k + 1,
    "PyTorch drops a window that would stick out past the edge: round DOWN (use //), "
    "not up.": lambda n, k, s, p: -((-(n + 2 * p - k)) // s) + 1,
}

_PARAM_MISTAKES: dict[str, Callable[[int, int, int], float]] = {
    "each output channel also has one bias: add out_channels.": lambda i, o, k: o * i * k * k,
    "each filter looks at ALL input channels: it has in_channels * k * k weights.": (
        lambda i, o, k: o * (k * k + 1)
    ),
    "a k x k filter has k * k weights per input channel, not k.": lambda i, o, k: o * (i * k + 1),
    "one bias per output channel, not per input channel.": lambda i, o, k: o * i * k * k + i,
}


def _first_mistake(
    got: list[float], cases: list[tuple[int, ...]], mistakes: dict[str, Callable[..., float]]
) -> str | None:
    """The message of the typical mistake that gives exactly ``got`` on every case, if any."""
    for message, mistake in mistakes.items():
        if all(g == mistake(*case) for g, case in zip(got, cases, strict=True)):
            return message
    return None


_SIZE_HINT = (
    "count where the window's left edge can go: from 0 to size + 2p - k, every stride pixels."
)
_PARAM_HINT = "one filter = in_channels x k x k weights + 1 bias; there are out_channels filters."


def _check_sizes(fn: Callable[..., Any]) -> None:
    got = [
        _read_int(call(fn, *case, forbidden=CONV_LIBRARY), "conv_output_size")
        for case in SIZE_CASES
    ]
    expected = [output_size(*case) for case in SIZE_CASES]
    if got == expected:
        return
    i = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    n, k, s, p = SIZE_CASES[i]
    case = f"conv_output_size({n}, kernel={k}, stride={s}, padding={p}) gave {got[i]:g}"
    if any(g != int(g) for g in got):
        raise NotYet(
            f"{case}, not a whole number: a window either fits or it does not.",
            "use floor division //.",
        )
    message = _first_mistake(got, SIZE_CASES, _SIZE_MISTAKES)
    raise NotYet(
        f"{case}: {message}" if message else f"{case}, expected {expected[i]}.", _SIZE_HINT
    )


def _check_parameters(fn: Callable[..., Any]) -> None:
    got = [
        _read_int(call(fn, *case, forbidden=CONV_LIBRARY), "conv_parameters")
        for case in PARAM_CASES
    ]
    expected = [conv_parameters(*case) for case in PARAM_CASES]
    if got == expected:
        return
    i = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    c_in, c_out, k = PARAM_CASES[i]
    case = f"conv_parameters({c_in}, {c_out}, kernel={k}) gave {got[i]:g}"
    message = _first_mistake(got, PARAM_CASES, _PARAM_MISTAKES)
    raise NotYet(
        f"{case}: {message}" if message else f"{case}, expected {expected[i]:,}.", _PARAM_HINT
    )


@checker("conv_arithmetic")
def check_conv_arithmetic(conv_output_size: Any, conv_parameters: Any) -> str:
    """``conv_output_size(size, kernel, stride, padding)`` and ``conv_parameters(in, out, kernel)``."""
    _check_sizes(conv_output_size)
    _check_parameters(conv_parameters)
    return (
        "sizes and parameter counts match nn.Conv2d for "
        f"{len(SIZE_CASES)} + {len(PARAM_CASES)} settings."
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


def _best(case: Mapping[str, tuple[float, float]], column: int, sign: int = 1) -> str:
    return max(case, key=lambda name: sign * case[name][column])


@checker("pick_on_validation")
def check_pick_on_validation(pick_model: Any) -> str:
    """``pick_model({name: {"val": acc, "test": acc}})`` -> the name with the best validation."""
    for case in PICK_CASES:
        peeked: list[str] = []
        results = {
            name: _Watched({"val": val, "test": test}, peeked) for name, (val, test) in case.items()
        }
        got = call(pick_model, results)
        if peeked:
            raise NotYet(
                "your function looked at the test accuracy. Choose with validation only: "
                "the test set is read once, at the very end, for the model already chosen.",
                "results[name]['val'] is all you need: the name whose validation accuracy "
                "is the highest.",
            )
        if not isinstance(got, str) or got not in case:
            shown = repr(got) if isinstance(got, (int, float, str)) else type(got).__name__
            raise NotYet(
                f"return the NAME of the model (one of {sorted(case)}), not {shown}.",
                "max(results, key=...) goes over the names and returns a name.",
            )
        if got == _best(case, 0):
            continue
        if got == _best(case, 1):
            raise NotYet(
                "you chose the model with the best test accuracy; choose with validation.",
                "results[name]['val'] is all you need.",
            )
        if got == _best(case, 0, sign=-1):
            raise NotYet(
                "you chose the LOWEST validation accuracy: take the highest.",
                "max(results, key=lambda name: results[name]['val']).",
            )
        raise NotYet(
            f"for {dict(case)} you chose {got!r}; the best validation accuracy is another.",
            "results[name]['val'] is all you need: the name with the highest one.",
        )
    return "chosen on validation, without looking at the test accuracy."


# ----------------------------------------------------------------------------- break_it

CHOICES = {
    "a": "it learns about as well as the usual setting",
    "b": "it fails: the loss becomes nan, or stays near ln 10 = 2.30 (chance)",
}

# case -> (model, learning rate, raw pixels?). The usual setting: pixels
# normalised, SGD(lr=0.1, momentum=0.9, nesterov=True), batches of 64.
BREAK_CASES: dict[str, tuple[str, float, bool]] = {
    "mlp, lr=1": ("mlp", 1.0, False),
    "mlp, raw pixels": ("mlp", 0.1, True),
    "cnn, raw pixels": ("cnn", 0.1, True),
}
BREAK_HINTS = {
    "mlp, lr=1": "with momentum 0.9 a steady step is lr / (1 - 0.9): ten times the "
    "learning rate. What does a step 10 times larger than what worked do?",
    "mlp, raw pixels": "raw pixels are up to 255 instead of about 2.8: the first layer's "
    "outputs, and its gradients, are about 80 times larger.",
    "cnn, raw pixels": "look at the layer right after the first convolution: batch norm "
    "subtracts each channel's mean and divides by its std, whatever the input's scale.",
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
) -> tuple[bool, float]:
    """Train briefly; return (finite all along?, mean loss of the last 20 steps) (chapter 6).

    ``images`` are normalised; ``raw`` undoes that, back to pixel values 0-255.
    """
    runtime.set_seed(seed)
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
            return False, math.inf
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last = losses[-20:]
    return True, sum(last) / len(last)


def outcome(finite: bool, last_loss: float) -> str | None:
    """The choice a trial's result stands for, or None when it is in between."""
    if not finite or last_loss > 2.0:
        return "b"
    if last_loss < 1.0:
        return "a"
    return None


def _read_predictions(predictions: Any) -> dict[str, str]:
    if not isinstance(predictions, Mapping):
        raise NotYet(
            f"predictions is a {type(predictions).__name__}; make it a dict, "
            f"{{'mlp, lr=1': 'a', ...}}, one letter per case.",
            f"the keys are {list(BREAK_CASES)}.",
        )
    read = {}
    for case in BREAK_CASES:
        given = predictions.get(case)
        letter = given.strip().strip("()").lower() if isinstance(given, str) else None
        if letter not in CHOICES:
            raise NotYet(
                f"predict case {case!r} with one letter, 'a' or 'b' (got {given!r}).",
                "; ".join(f"({k}) {v}" for k, v in CHOICES.items()),
            )
        read[case] = letter
    return read


@checker("break_it")
def check_break_it(predictions: Any, images: torch.Tensor, labels: torch.Tensor) -> str:
    """``predictions = {case: "a" or "b"}``; each case is run for a few steps and compared."""
    read = _read_predictions(predictions)
    happened = {}
    for case, (model, lr, raw) in BREAK_CASES.items():
        happened[case] = outcome(*run_trial(images, labels, model, lr, raw))
    wrong = [case for case in BREAK_CASES if happened[case] and read[case] != happened[case]]
    if wrong:
        raise NotYet(
            f"ran each case for {STEPS} steps: {len(wrong)} of {len(BREAK_CASES)} "
            f"predictions differ from what happened ({', '.join(wrong)}).",
            " ".join(BREAK_HINTS[case] for case in wrong),
        )
    said = "; ".join(f"{case}: {CHOICES[happened[case] or read[case]]}" for case in BREAK_CASES)
    return f"confirmed by running each case for {STEPS} steps. {said}."


# ----------------------------------------------------------------------------- quiz

QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        16,
        "(32 + 2 x 1 - 3) // 2 + 1 = 31 // 2 + 1 = 15 + 1 = 16: padding 1 on each side, "
        "a window every 2 pixels.",
    ),
    2: quiz.Question(
        224,
        "8 filters, each 3 x 3 x 3 = 27 weights plus 1 bias: 8 x 28 = 224.",
    ),
    3: quiz.Question(
        "b",
        "the best of many test scores is the luckiest one: on new data the chosen model "
        "is expected to do a little worse. Choose on validation, report test once.",
    ),
    4: quiz.Question(
        "c",
        "in model.eval() batch norm uses the running mean and variance it averaged during "
        "training, so a prediction does not depend on the other images in the batch.",
    ),
    5: quiz.Question(
        "b",
        "after one epoch, momentum 0.5 -> 0.9 changed the validation accuracy by less than "
        "a point, within the noise; the learning rate 0.01 -> 0.1 gained many points, and "
        "the one-cycle rate gained over every constant rate.",
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the chapter's quiz (questions in the notebook's last markdown cell)."""
    return quiz.check("chapter 6", QUIZ, answers)
