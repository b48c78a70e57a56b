"""Training and evaluation loops, the course's optimiser recipe, and checkpoints (chapters 5-6).

Chapter 5 writes its ``train()``/``test()`` loops out in the notebook; these are
the same loops, packaged with a history, a progress bar and checks, for
chapter 6, the command line and the benchmarks. ``fit`` measures a held-out
loader after every epoch, the validation split in the chapters (chapter 3:
choose on validation, measure the test set once); its history calls those
numbers ``val_loss`` and ``val_acc``.

The same loops run on several processes (chapter 7, :mod:`mnist_course.distributed`):
give them a ``DistributedDataParallel`` model and sharded loaders; training
numbers are then summed over the processes, and only rank 0 evaluates.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mnist_course import distributed

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite: the learning rate is too high (or the data is broken)."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded into the given model."""


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of :func:`fit` measured."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float  # on the held-out loader given to fit (the validation split)
    val_acc: float
    seconds: float
    lr: float


# OneCycleLR's momentum bounds (PyTorch's defaults, written out) and the constant alternative.
BASE_MOMENTUM = 0.85  # at the peak learning rate
MAX_MOMENTUM = 0.95  # at the start and at the end
CONSTANT_MOMENTUM = 0.9  # with cycle_momentum=False


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def train_epoch(
    model: nn.Module,
    loader: Batches,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str = "cpu",
    epoch: int = 1,
    progress: bool = False,
) -> tuple[float, float]:
    """One pass over ``loader``; returns the mean training loss and accuracy.

    Raises :class:`TrainingDivergedError`, naming the epoch and learning rate,
    as soon as the loss is not finite. On several processes the mean is over
    all their shards, and only rank 0 shows the progress bar.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    show = progress and distributed.rank() == 0
    bar = tqdm(loader, f"epoch {epoch}", disable=not show, unit="batch", mininterval=0.5)
    for inputs, targets in bar:
        inputs, targets = inputs.to(device), targets.to(device)
        outputs = model(inputs)
        loss = F.cross_entropy(outputs, targets)
        value = loss.item()  # one device-to-host sync per batch
        if not math.isfinite(value):
            bar.close()
            raise TrainingDivergedError(
                f"The loss became {value} in epoch {epoch} at learning rate "
                f"{_lr(optimizer):.4g}: training diverged. Lower the learning rate (e.g. by 10x)."
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += value * len(targets)
        correct += (outputs.argmax(dim=1) == targets).sum().item()
        seen += len(targets)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", refresh=False)
    total_loss, correct, seen = distributed.sum_over_processes([total_loss, correct, seen])
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def predict(
    model: nn.Module, loader: Batches, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits and labels of ``loader``, in order, on the CPU (chapter 5's error analysis)."""
    model.eval()
    logits, labels = [], []
    for inputs, targets in loader:
        logits.append(model(inputs.to(device)).cpu())
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


def evaluate(
    model: nn.Module, loader: Batches, device: torch.device | str = "cpu"
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``loader``, in eval mode without gradients."""
    logits, labels = predict(model, loader, device)
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(dim=1) == labels).sum().item() / len(labels)


def fit(
    model: nn.Module,
    train_loader: Batches,
    val_loader: Batches,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    callback: Callable[[EpochStats], bool | None] | None = None,
) -> list[EpochStats]:
    """Train for ``epochs`` epochs, evaluating on ``val_loader`` after each; returns the history.

    ``callback(stats)`` is called after each epoch; returning ``True`` stops
    training early (the benchmark stops at a target accuracy this way).
    On several processes only rank 0 evaluates and calls ``callback``; the
    other processes receive its numbers and its decision to stop.
    """
    model.to(device)
    # (rank 0 evaluates alone, so it uses the plain model: no collective call inside)
    plain = model.module if isinstance(model, DistributedDataParallel) else model
    main = distributed.rank() == 0
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        lr = _lr(optimizer)
        train_loss, train_acc = train_epoch(
            model, train_loader, optimizer, scheduler, device, epoch, progress
        )
        val_loss, val_acc, stop = math.nan, math.nan, False
        if main:
            val_loss, val_acc = evaluate(plain, val_loader, device)
        seconds = time.perf_counter() - start
        stats = EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, seconds, lr)
        if main and callback is not None:
            stop = bool(callback(stats))
        val_loss, val_acc, stop = distributed.share_from_rank_0([val_loss, val_acc, stop])
        stats = EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, seconds, lr)
        history.append(stats)
        if stop:
            break
    return history


def one_cycle_sgd(
    model: nn.Module,
    max_lr: float,
    epochs: int,
    steps_per_epoch: int,
    weight_decay: float = 0.0,
    cycle_momentum: bool = True,
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.OneCycleLR]:
    """The course's recipe (chapter 5): Nesterov SGD with a one-cycle learning rate and momentum.

    ``OneCycleLR`` with PyTorch's defaults (fastai's two-phase, cosine variant of
    Smith & Topin's one-cycle schedule; ``three_phase=True`` would give the paper's
    shape): the rate warms up from ``max_lr / 25`` to ``max_lr`` over the
    first 30% of the steps, then anneals to ``max_lr / 25 / 1e4``; the momentum
    moves the other way, from 0.95 down to 0.85 at the peak rate and back to
    0.95 (``cycle_momentum=True``; the scheduler sets it, whatever SGD was
    given). ``cycle_momentum=False`` keeps momentum 0.9 throughout instead:
    chapter 5 measured both and found the same validation accuracy. Step the
    scheduler after every batch.
    """
    if not max_lr > 0:
        raise ValueError(f"the learning rate must be positive, got {max_lr}")
    momentum = MAX_MOMENTUM if cycle_momentum else CONSTANT_MOMENTUM
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=max_lr,
        momentum=momentum,
        nesterov=True,
        weight_decay=weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        cycle_momentum=cycle_momentum,
        base_momentum=BASE_MOMENTUM,
        max_momentum=MAX_MOMENTUM,
    )
    return optimizer, scheduler


def confusion_matrix(
    predicted: torch.Tensor, labels: torch.Tensor, classes: int = 10
) -> torch.Tensor:
    """``m[i, j]`` = how many images of true class ``i`` were predicted as ``j`` (chapter 5)."""
    index = labels.long() * classes + predicted.long()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str], **meta: object) -> Path:
    """Save the weights (and small metadata) atomically: a temp file, then a rename.

    An interrupted save never leaves a half-written file at ``path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {path.parent} does not exist")
    payload = {"architecture": type(model).__name__, "state_dict": model.state_dict(), **meta}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, object]:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (``weights_only=True``).

    Returns the metadata. Raises :class:`CheckpointError` when the file is not
    a checkpoint or was saved from another architecture.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a checkpoint saved by save_checkpoint()")
    saved = payload.get("architecture", "unknown")
    if saved != type(model).__name__:
        raise CheckpointError(
            f"{path} holds weights for {saved}, but the model is {type(model).__name__}: "
            f"build the matching model (e.g. --model {str(saved).lower()}) before loading."
        )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit this {saved}: {err}") from err
    return {k: v for k, v in payload.items() if k != "state_dict"}
