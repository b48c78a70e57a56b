"""Exercises and quiz of chapter 5 (Training the lecture's network).

- ``train_one_epoch``: the body of the training loop. ``fn(model, loader,
  optimizer)`` trains for one pass over ``loader`` and returns the mean
  training loss. Checked on a tiny synthetic problem against the course's
  loop: the loss must fall, the weights must move exactly as one
  ``zero_grad`` / ``backward`` / ``step`` per batch moves them, in train mode;
- ``backprop``: ``fn(x, y, W1, b1, W2, b2)`` returns the gradients of the mean
  cross-entropy of ``relu(x W1^T + b1) W2^T + b2`` written out by hand (a dict:
  ``logits``, ``W2``, ``b2``, ``h``, ``z1``, ``W1``, ``b1``). Checked against
  autograd on fresh random inputs; autograd is refused inside the function, and
  the first wrong gradient (in backward order) is named;
- ``accuracy``: ``fn(model, loader)`` returns the share of correct
  predictions, a number in [0, 1]. Checked with a fake model whose accuracy
  is known, in eval mode and without gradients, on a loader whose last batch
  is smaller than the others.

:func:`cmp` prints how a hand-written gradient compares with autograd's
(Karpathy's makemore part 4).

``mnist_course.training``'s loops (and metric libraries) are unavailable
while the learner's function runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mnist_course import i18n, quiz
from mnist_course.exercises import NotYet, a_type, as_float, call, checker, draw

_ = i18n.translator(__name__)

EXERCISES: tuple[str, ...] = ("train_one_epoch", "backprop", "accuracy")

TRAINING_LOOPS = [
    "mnist_course.training.train_epoch",
    "mnist_course.training.fit",
    "mnist_course.training.evaluate",
    "mnist_course.training.predict",
]
_METRICS = [
    "torchmetrics.functional.accuracy",
    "torchmetrics.Accuracy",
    "torchmetrics.classification.MulticlassAccuracy",
    "sklearn.metrics.accuracy_score",
]
# Metric libraries are forbidden where they are installed (they are not required).
ACCURACY_FORBIDDEN = TRAINING_LOOPS + [
    path for path in _METRICS if importlib.util.find_spec(path.split(".")[0]) is not None
]


# ---------------------------------------------------------------------------------------------
# Exercise 1: the body of the training loop
# ---------------------------------------------------------------------------------------------


class ModeRecorder(nn.Module):
    """A small classifier that records the mode it runs in and every ``train()``/``eval()``."""

    def __init__(self, features: int = 8, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = nn.Linear(features, 16)
        self.out = nn.Linear(16, classes)
        self.modes_seen: list[bool] = []  # self.training at each forward
        self.mode_calls: list[bool] = []  # the argument of each train(mode) call
        self.events: list[str] = []  # "train", "eval", "forward" in the order they happened

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes_seen.append(self.training)
        self.events.append("forward")
        return self.out(torch.relu(self.hidden(x)))

    def train(self, mode: bool = True) -> ModeRecorder:
        if hasattr(self, "mode_calls"):
            self.mode_calls.append(bool(mode))
            self.events.append("train" if mode else "eval")
        return super().train(mode)


class CountingSGD(torch.optim.SGD):
    """Plain SGD that counts its ``step()`` and ``zero_grad()`` calls."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr=lr)
        self.steps = 0
        self.zero_grads = 0

    def step(self, closure: Any = None) -> Any:
        self.steps += 1
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.zero_grads += 1
        super().zero_grad(set_to_none)


def toy_batches(
    n_batches: int = 6, size: int = 16, features: int = 8, seed: int = 1
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed mini-batches of a learnable 3-class problem (the class is the largest of 3 sums)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * size, features, generator=g)
    y = torch.stack([x[:, 0:2].sum(1), x[:, 2:4].sum(1), x[:, 4:6].sum(1)], 1).argmax(1)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(y), size)]


def _mean_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    with torch.no_grad():
        return float(torch.stack([F.cross_entropy(model(x), y) for x, y in batches]).mean())


def _reference_epoch(
    model: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    zero_grad: bool = True,
) -> list[float]:
    """The course's loop body (``zero_grad=False``: the classic mistake); the batches' losses."""
    model.train()
    losses = []
    for inputs, targets in batches:
        loss = F.cross_entropy(model(inputs), targets)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


LR = 0.2


def _setup(eval_first: bool = False, seed: int = 0) -> tuple[ModeRecorder, list, CountingSGD]:
    """A fresh model, its batches and optimiser (``seed`` 0: the notebook's first check)."""
    model = ModeRecorder(seed=seed)
    if eval_first:
        model.eval()
    model.mode_calls.clear()
    model.events.clear()
    return model, toy_batches(seed=1 + seed), CountingSGD(model.parameters(), LR)


def _eval_inside_the_loop(events: list[str]) -> bool:
    """A forward ran in eval mode that the learner's own eval() call set (eval() after the
    last forward, to leave the model ready for measuring, is fine)."""
    evaluating = False
    for event in events:
        if event in ("train", "eval"):
            evaluating = event == "eval"
        elif evaluating:
            return True
    return False


def _params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@checker(
    "train_one_epoch",
    expects=i18n.N_(
        "a function train_one_epoch(model, loader, optimizer) that returns the mean "
        "training loss, one number"
    ),
)
def check_train_one_epoch(train_one_epoch: Callable[..., Any]) -> str:
    """``train_one_epoch(model, loader, optimizer)`` -> the mean training loss of the epoch."""
    seed = draw("train_one_epoch")
    model, batches, optimizer = _setup(eval_first=True, seed=seed)  # as an evaluation left it
    before, start = _params(model), _mean_loss(model, batches)
    model.modes_seen.clear()
    model.events.clear()
    result = call(train_one_epoch, model, batches, optimizer, forbidden=TRAINING_LOOPS)
    after = _params(model)
    ref_model, _batches, ref_optimizer = _setup(seed=seed)
    batch_losses = _reference_epoch(ref_model, batches, ref_optimizer)
    expected_loss = sum(batch_losses) / len(batch_losses)
    no_zero_model, _batches, no_zero_optimizer = _setup(seed=seed)
    _reference_epoch(no_zero_model, batches, no_zero_optimizer, zero_grad=False)
    order = _(
        "for each batch: the forward pass and the loss, then clear the old gradients, "
        "compute the new ones and take the step, in that order."
    )
    if _eval_inside_the_loop(model.events):
        raise NotYet(
            _(
                "you called model.eval() in the training loop: eval mode is for measuring "
                "(dropout off, batch norm frozen), not for learning."
            ),
            _(
                "switch to train mode once at the start of the epoch; eval mode belongs to the "
                "measurement."
            ),
        )
    if not model.modes_seen:
        raise NotYet(_("your function never called the model."), order)
    if not all(model.modes_seen):
        raise NotYet(
            _(
                "the model ran in eval mode: an evaluation before left it there. Switch it back "
                "with model.train() at the start of the epoch."
            ),
            _("switch the model to train mode before the first batch."),
        )
    if optimizer.steps == 0:
        raise NotYet(
            _(
                "the weights did not move: the optimiser never stepped. Call optimizer.step() "
                "after loss.backward()."
            ),
            order,
        )
    if optimizer.steps != len(batches):
        raise NotYet(
            _(
                "the optimiser stepped {steps} times for {batches} batches: "
                "one step per batch, inside the loop."
            ).format(steps=optimizer.steps, batches=len(batches)),
            order,
        )
    if torch.equal(before, after):
        raise NotYet(
            _(
                "step() ran but the weights did not move: .grad was None when it ran, and step() "
                "skips a parameter without a gradient (zero_grad() sets .grad to None, by "
                "default). Call loss.backward() before step(), and zero_grad() before "
                "backward(), not between."
            ),
            order,
        )
    if torch.allclose(after, _params(no_zero_model), atol=1e-6, rtol=1e-5):
        raise NotYet(
            _(
                "the weights moved as in a loop without zero_grad(): backward() adds to .grad, "
                "so .grad held the running sum of this batch's gradient and every earlier "
                "batch's, and each step used that sum."
            ),
            _("call optimizer.zero_grad() once per batch, before loss.backward()."),
        )
    if not torch.allclose(after, _params(ref_model), atol=1e-5, rtol=1e-4):
        if _mean_loss(model, batches) < start:
            symptom = _(
                "the loss fell, but the weights differ from one SGD step per batch on the "
                "cross-entropy (mean over the batch)."
            )
        else:
            symptom = _(
                "the loss did not fall, but the weights differ from one SGD step per batch on "
                "the cross-entropy (mean over the batch)."
            )
        raise NotYet(
            symptom,
            _(
                "use criterion = nn.CrossEntropyLoss() (or F.cross_entropy) on the model's "
                "outputs and the targets; for each batch: the forward pass and the loss, then "
                "clear the old gradients, compute the new ones and take the step, in that order."
            ),
        )
    if _mean_loss(model, batches) >= start:
        raise NotYet(_("the loss did not fall during the epoch."), order)
    if isinstance(result, (tuple, list)):
        raise NotYet(
            _(
                "your function returned {type}; return one number, the "
                "mean training loss of the epoch."
            ).format(type=a_type(result)),
            _("return running_loss / number_of_batches."),
        )
    value = as_float(result, "your function")
    if not np.isfinite(value):
        raise NotYet(
            _("your function returned {value}; return the mean training loss.").format(value=value)
        )
    if abs(value - expected_loss) > 1e-5 * max(1.0, expected_loss):
        wrong = {
            _(
                "the training is right, but you returned the sum of the batches' losses; "
                "divide it by the number of batches."
            ): sum(batch_losses),
            _(
                "the training is right, but you returned the last batch's loss; "
                "return the mean over all the batches."
            ): batch_losses[-1],
        }
        for message, number in wrong.items():
            if abs(value - number) < 1e-4:
                raise NotYet(
                    message,
                    _(
                        "add up each batch's loss (as a number, .item()) and divide by the "
                        "number of batches."
                    ),
                )
        if value > expected_loss:
            symptom = _(
                "the training is right, but the number you returned is too high for the mean "
                "of the batches' losses."
            )
        else:
            symptom = _(
                "the training is right, but the number you returned is too low for the mean "
                "of the batches' losses."
            )
        raise NotYet(
            symptom,
            _(
                "add loss.item() of each batch to a running sum; return the sum divided by the "
                "number of batches."
            ),
        )
    return _(
        "one zero_grad / backward / step per batch, in train mode: the weights moved as "
        "the course's loop moves them, and the loss fell from {start:.3f} to {end:.3f}."
    ).format(start=start, end=_mean_loss(model, batches))


# ---------------------------------------------------------------------------------------------
# Backprop by hand: cmp, and the exercise
# ---------------------------------------------------------------------------------------------


def cmp(name: str, dt: Any, t: torch.Tensor) -> float:
    """Print how the hand-written gradient ``dt`` compares with autograd's ``t.grad``:
    exact, approximate (``torch.allclose``), the largest difference and the shape.

    Returns that largest difference (nan when the two cannot be compared)."""
    grad = getattr(t, "grad", None)
    if grad is None:
        print(
            _(
                "{name:7} | no autograd gradient: t.grad is None (retain_grad() before backward)"
            ).format(name=name)
        )
        return float("nan")
    if dt is None:
        print(_("{name:7} | no hand-written gradient yet").format(name=name))
        return float("nan")
    try:
        mine = torch.as_tensor(dt).detach().to(grad.dtype)
    except Exception:
        print(_("{name:7} | {type}, not a tensor of numbers").format(name=name, type=a_type(dt)))
        return float("nan")
    if mine.shape != grad.shape:
        got, want = tuple(mine.shape), tuple(grad.shape)
        print(
            _("{name:7} | shape {got}, but the gradient has shape {want}").format(
                name=name, got=got, want=want
            )
        )
        return float("nan")
    exact = bool(torch.equal(mine, grad))
    approximate = bool(torch.allclose(mine, grad))
    maxdiff = (mine - grad).abs().max().item() if grad.numel() else 0.0
    print(
        f"{name:7} | exact: {exact!s:5} | approximate: {approximate!s:5} | "
        f"maxdiff: {maxdiff:.1e} | shape {tuple(grad.shape)}"
    )
    return maxdiff


# The gradients the function returns, in backward order: the dict key and how a message names it.
BACKPROP_KEYS = ("logits", "W2", "b2", "h", "z1", "W1", "b1")
BACKPROP_FORBIDDEN = [
    "torch.autograd.grad",
    "torch.autograd.backward",
    "torch.Tensor.backward",
    "mnist_course.chapter05.autograd_backprop",
]


def backprop_case(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Fresh float64 inputs ``x (N, D), y (N,), W1 (H, D), b1 (H,), W2 (C, H), b2 (C,)``
    (weights as ``nn.Linear`` stores them); sizes differ from seed to seed, and D, H and C
    always differ, so a transposed weight gradient has the wrong shape."""
    g = torch.Generator().manual_seed(100 + seed)
    n, d, h, c = 8 + seed % 5, 6 + seed % 3, 12 + seed % 4, 5 + seed % 2
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    y[:c] = torch.randperm(c, generator=g)  # every class present
    w1 = torch.randn(h, d, generator=g, dtype=torch.float64) / d**0.5
    b1 = 0.1 * torch.randn(h, generator=g, dtype=torch.float64)
    w2 = torch.randn(c, h, generator=g, dtype=torch.float64) / h**0.5
    b2 = 0.1 * torch.randn(c, generator=g, dtype=torch.float64)
    return x, y, w1, b1, w2, b2


def autograd_backprop(
    x: torch.Tensor,
    y: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Autograd's gradients of the mean cross-entropy (and ``z1``, ``h``, ``logits``)."""
    params = [t.detach().clone().requires_grad_() for t in (w1, b1, w2, b2)]
    with torch.enable_grad():
        z1 = x @ params[0].T + params[1]
        h = torch.relu(z1)
        logits = h @ params[2].T + params[3]
        for t in (z1, h, logits):
            t.retain_grad()
        F.cross_entropy(logits, y).backward()
    found = {"logits": logits, "h": h, "z1": z1}
    found.update(zip(("W1", "b1", "W2", "b2"), params, strict=True))
    return {k: t.grad.detach() for k, t in found.items() if t.grad is not None}


def _backprop_hints() -> dict[str, str]:
    """A guiding hint per gradient: what to think of, not the line to write."""
    return {
        "logits": _(
            "start from the softmax of the logits, subtract 1 at each row's true class, "
            "and remember that the loss is a mean over the N rows."
        ),
        "W2": _(
            "a weight's gradient is (the gradient of the layer's output) transposed, times "
            "the layer's input; which tensor goes into layer 2? The result has W2's shape."
        ),
        "b2": _("the bias is added to every row, so its gradient collects one term per row."),
        "h": _("carry dlogits back through layer 2: a product with W2 whose result has h's shape."),
        "z1": _(
            "ReLU lets a value through only where its input was positive, and the gradient "
            "only there too."
        ),
        "W1": _("as for W2, with layer 1's output gradient and layer 1's input."),
        "b1": _("as for b2, with layer 1's output gradient."),
    }


def _backprop_mistake(key: str, got: torch.Tensor, case: tuple, ref: dict) -> str | None:
    """What a classic wrong version of gradient ``key`` was, if ``got`` is one."""
    x, y, _w1, _b1, w2, _b2 = case
    n = len(y)
    z1 = x @ case[2].T + case[3]
    h = torch.relu(z1)
    right = ref[key]
    variants: list[tuple[torch.Tensor, str]] = []
    if key == "logits":
        p = torch.softmax(h @ w2.T + case[5], dim=1)
        variants.append((p / n, _("the one-hot target was not subtracted (softmax - onehot)")))
    if key == "W2":
        variants.append((ref["logits"].T @ z1, _("it used z1, before the ReLU; use h, after it")))
    if key in ("b1", "b2"):
        variants.append((right / n, _("it is the mean over the batch; sum it instead")))
    if key == "z1":
        variants.append((ref["h"], _("the ReLU mask is missing: no gradient flows where z1 <= 0")))
    if key == "W1":
        no_mask = ref["h"].T @ x
        variants.append((no_mask, _("it used dh, without the ReLU mask; use dz1")))
    if key == "b1":
        variants.append((ref["h"].sum(0), _("it summed dh, without the ReLU mask; sum dz1")))
    variants += [
        (right * n, _("it is N times too large: the 1/N of the mean is missing")),
        (right / n, _("it is N times too small: the 1/N was applied twice")),
        (-right, _("it has the wrong sign")),
    ]
    for value, what in variants:
        if value.shape == got.shape and torch.allclose(got, value, rtol=1e-5, atol=1e-9):
            return what
    return None


def _as_gradient(value: Any, key: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor) and value.requires_grad:
        raise NotYet(
            _("your d{key} is a tensor that requires grad: it was computed with autograd.").format(
                key=key
            ),
            _("compute every gradient from the forward values with plain tensor operations."),
        )
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().to(torch.float64)
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except Exception:
        raise NotYet(
            _("your d{key} is {type}, not a tensor of numbers.").format(
                key=key, type=a_type(value)
            ),
            _("return a dict of tensors, e.g. {'logits': dlogits, 'W2': dW2, ...}."),
        ) from None


@checker(
    "backprop",
    expects=i18n.N_(
        "a function backprop(x, y, W1, b1, W2, b2) that returns a dict of gradients: "
        "logits, W2, b2, h, z1, W1, b1"
    ),
)
def check_backprop(backprop: Callable[..., Any]) -> str:
    """``backprop(x, y, W1, b1, W2, b2)`` -> the hand-written gradients, compared with autograd."""
    case = backprop_case(draw("backprop"))
    copies = tuple(t.clone() for t in case)
    result = call(backprop, *copies, forbidden=BACKPROP_FORBIDDEN, no_autograd=True)
    hints = _backprop_hints()
    if not isinstance(result, dict):
        raise NotYet(
            _(
                "your function returned {type}; return a dict with one gradient per name: {names}."
            ).format(type=a_type(result), names=", ".join(BACKPROP_KEYS)),
            _(
                "end with return {'logits': dlogits, 'W2': dW2, 'b2': db2, 'h': dh, 'z1': dz1, "
                "'W1': dW1, 'b1': db1}."
            ),
        )
    named = {}
    for key in BACKPROP_KEYS:
        for name in (key, "d" + key):
            if name in result:
                named[key] = result[name]
    missing = [k for k in BACKPROP_KEYS if k not in named]
    if missing:
        raise NotYet(
            _("the dict has no gradient for {missing}; it needs one for each of {names}.").format(
                missing=", ".join(missing), names=", ".join(BACKPROP_KEYS)
            ),
            _("one entry per tensor of the forward pass, keyed by its name, e.g. 'W1': dW1."),
        )
    ref = autograd_backprop(*case)
    right: list[str] = []
    for key in BACKPROP_KEYS:
        got = _as_gradient(named[key], key)
        want = ref[key]
        fields = {"key": key, "right": ", ".join("d" + k for k in right)}
        if got.shape != want.shape:
            if got.dim() == 2 and got.shape == want.T.shape:
                symptom = _(
                    "d{key} has shape {got}, but {key} has shape {want}: it is the transpose. "
                    "A gradient always has the shape of its tensor."
                )
            else:
                symptom = _(
                    "d{key} has shape {got}, but {key} has shape {want}. "
                    "A gradient always has the shape of its tensor."
                )
            raise NotYet(
                symptom.format(got=tuple(got.shape), want=tuple(want.shape), **fields), hints[key]
            )
        if not torch.isfinite(got).all():
            if right:
                symptom = _("d{key} holds nan or inf, while {right} match it.")
            else:
                symptom = _("d{key} holds nan or inf.")
            raise NotYet(symptom.format(**fields), hints[key])
        if not torch.allclose(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item()):
            what = _backprop_mistake(key, got, case, ref)
            maxdiff = (got - want).abs().max().item()
            if right and what:
                symptom = _(
                    "d{key} differs from autograd (maxdiff {maxdiff:.1e}), while {right} match "
                    "it: {what}."
                )
            elif right:
                symptom = _(
                    "d{key} differs from autograd (maxdiff {maxdiff:.1e}), while {right} match it."
                )
            elif what:
                symptom = _("d{key} differs from autograd (maxdiff {maxdiff:.1e}): {what}.")
            else:
                symptom = _("d{key} differs from autograd (maxdiff {maxdiff:.1e}).")
            raise NotYet(symptom.format(maxdiff=maxdiff, what=what, **fields), hints[key])
        right.append(key)
    n, d = case[0].shape
    return _(
        "all seven gradients match autograd on a fresh batch (N = {n}, D = {d}, "
        "H = {h}, C = {c}), written out by hand."
    ).format(n=n, d=d, h=case[2].shape[0], c=case[4].shape[0])


# ---------------------------------------------------------------------------------------------
# Exercise 3: the accuracy of a model on a loader
# ---------------------------------------------------------------------------------------------

BATCH = 32
# The first check's correct predictions per batch in eval mode (batches of 32, 32 and 10
# images) and in train mode; later checks draw their own (see accuracy_case).
EVAL_CORRECT = (24, 20, 6)
TRAIN_CORRECT = (13, 11, 6)


class KnownAnswers(nn.Module):
    """A fake classifier whose accuracy is known: right on chosen images, wrong on the rest.

    Each input row carries its image's index. In train mode it answers worse,
    as a network with dropout does; it records the mode and whether gradients
    were on at each forward.
    """

    def __init__(
        self,
        labels: torch.Tensor,
        eval_correct: tuple[int, ...] = EVAL_CORRECT,
        train_correct: tuple[int, ...] = TRAIN_CORRECT,
    ) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # so outputs need grad unless no_grad
        self.eval_logits = self._logits(labels, eval_correct, offset=0)
        self.train_logits = self._logits(labels, train_correct, offset=3)
        self.modes_seen: list[bool] = []
        self.grad_seen: list[bool] = []

    @staticmethod
    def _logits(labels: torch.Tensor, correct: tuple[int, ...], offset: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(7 + offset)
        logits = torch.randn(len(labels), 10, generator=g)
        predicted = (labels + 1 + torch.arange(len(labels)) % 9) % 10  # never the label
        for b, k in enumerate(correct):
            start = b * BATCH
            right = slice(start + offset, start + offset + k)
            predicted[right] = labels[right]
        logits[torch.arange(len(labels)), predicted] += 10.0
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes_seen.append(self.training)
        self.grad_seen.append(torch.is_grad_enabled())
        index = x[:, 0].long()
        table = self.train_logits if self.training else self.eval_logits
        return table[index] * self.scale


def accuracy_case(seed: int = 0) -> tuple[KnownAnswers, DataLoader, tuple[int, ...]]:
    """The fake model (in train mode, as after training), its loader, and the correct
    predictions per batch in eval mode. Seed 0 is the notebook's first check (74 images,
    50 right); other seeds draw another size for the last batch and other counts."""
    g = torch.Generator().manual_seed(3 + seed)
    eval_correct, train_correct, last = EVAL_CORRECT, TRAIN_CORRECT, 10
    if seed:
        last = int(torch.randint(5, 20, (1,), generator=g))
        eval_correct = tuple(
            int(torch.randint(size // 2, size - 1, (1,), generator=g)) for size in (32, 32, last)
        )
        train_correct = tuple(max(0, k - 3 - i) for i, k in enumerate(eval_correct))
    n = 2 * BATCH + last  # two full batches and a smaller last one
    labels = torch.randint(0, 10, (n,), generator=g)
    inputs = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n)], 1)
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=BATCH)
    model = KnownAnswers(labels, eval_correct, train_correct).train()
    return model, loader, eval_correct


@checker(
    "accuracy",
    expects=i18n.N_("a function accuracy(model, loader) that returns one number in [0, 1]"),
)
def check_accuracy(accuracy: Callable[..., Any]) -> str:
    """``accuracy(model, loader)`` -> correct predictions / images, a number in [0, 1]."""
    model, loader, correct = accuracy_case(draw("accuracy"))
    n = len(loader.dataset)
    expected = sum(correct) / n
    result = call(accuracy, model, loader, forbidden=ACCURACY_FORBIDDEN)
    if isinstance(result, (tuple, list)):
        raise NotYet(
            _("your function returned {type}; return one number, the accuracy.").format(
                type=a_type(result)
            ),
            _("return correct / total."),
        )
    value = as_float(result, "your function")
    sizes = [len(y) for _, y in loader]
    steps = _(
        "switch to eval mode and turn gradients off; for each batch, the predicted class "
        "is the largest output; count the correct ones and the images, then divide once."
    )
    if not model.modes_seen:
        raise NotYet(
            _(
                "your function never called the model: the accuracy is measured by running the "
                "model on every batch of the loader."
            ),
            steps,
        )
    if len(model.modes_seen) < len(loader):
        raise NotYet(
            _(
                "your function ran the model on {ran} of the loader's {batches} batches: "
                "measure on all of them."
            ).format(ran=len(model.modes_seen), batches=len(loader)),
            steps,
        )
    if any(model.modes_seen):
        raise NotYet(
            _(
                "the model ran in train mode: call model.eval() before measuring (dropout and "
                "batch norm act differently when training, and this model does too)."
            ),
            steps,
        )
    if not np.isfinite(value):
        raise NotYet(
            _("your function returned {value}; return correct / total.").format(value=value),
            steps,
        )
    if abs(value - expected) > 1e-6:
        wrong = {
            _("you returned a percentage; return a fraction in [0, 1]."): 100 * expected,
            _(
                "you returned the number of correct predictions; divide it by the number of images."
            ): sum(correct),
            _(
                "you returned the mean of the batches' accuracies, but the last batch is smaller "
                "({last} images, not {batch}): count the correct ones and divide by the total "
                "once."
            ).format(last=sizes[-1], batch=BATCH): float(
                np.mean([k / s for k, s in zip(correct, sizes, strict=True)])
            ),
            _(
                "you returned correct / (number of batches x batch size), but the last batch is "
                "smaller: divide by the number of images you counted."
            ): sum(correct) / (len(sizes) * BATCH),
            _("you returned the share of WRONG predictions."): 1 - expected,
        }
        for message, number in wrong.items():
            if abs(value - number) < 1e-6:
                raise NotYet(message, steps)
        if value > expected:
            symptom = _(
                "on a test model whose accuracy is known, your number is too high (and none of "
                "the usual mistakes gives it)."
            )
        else:
            symptom = _(
                "on a test model whose accuracy is known, your number is too low (and none of "
                "the usual mistakes gives it)."
            )
        raise NotYet(symptom, steps)
    if any(model.grad_seen):
        raise NotYet(
            _(
                "the number is right, but gradients were recorded during the measurement: wrap "
                "the loop in `with torch.no_grad():` (it saves memory and time)."
            ),
            steps,
        )
    return _("{right} of {n} right = {accuracy:.4f}, in eval mode, without gradients.").format(
        right=sum(correct), n=n, accuracy=expected
    )


# ---------------------------------------------------------------------------------------------
# Quiz
# ---------------------------------------------------------------------------------------------

QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        0.85,
        i18n.N_(
            "OneCycleLR cycles the momentum against the rate (cycle_momentum=True): 0.95 at the "
            "start, base_momentum = 0.85 at the peak rate, 0.95 again at the end."
        ),
        tolerance=0.001,
    ),
    2: quiz.Question(
        88,
        i18n.N_(
            "55,000 = 429 x 128 + 88: the last batch holds 88 images, so view(-1, 784) makes "
            "it 88 x 784. The -1 is whatever number makes the element count work."
        ),
        tolerance=0.5,
    ),
    3: quiz.Question(
        "b",
        i18n.N_(
            "the training loss is the mean over the epoch's batches, most of them seen while the "
            "network was still poor; the validation loss is measured once, after the epoch."
        ),
    ),
    4: quiz.Question(
        "b",
        i18n.N_(
            "backward() adds to .grad, it never overwrites it, and step() reads .grad without "
            "clearing it; so without zero_grad(), .grad after batch k is g1 + ... + gk and each "
            "step uses that running sum in place of the batch's gradient. For plain SGD that is "
            "momentum 1 (PyTorch's buffer is buf = m * buf + g): no old gradient is ever "
            "forgotten. No error is raised."
        ),
    ),
    5: quiz.Question(
        "c",
        i18n.N_(
            "in the measured 100 epochs the training loss falls to almost 0 and the validation "
            "accuracy stays on its plateau, while the validation loss climbs from its minimum: "
            "over-fitting that shows in the loss only. One explanation, not measured here: the "
            "network grows over-confident on the images it gets wrong."
        ),
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the chapter's quiz (``answers = {1: 0.85, 2: ..., ...}``)."""
    return quiz.check("chapter 5", QUIZ, answers, module=__name__)
