"""Exercises and quiz of chapter 7 (Many processes: data parallelism with DDP).

- ``shard``: one process's share of a batch: equal shares, no image twice,
  fewer than ``world_size`` left out (what ``data.TensorLoader`` does with
  ``rank``/``world_size``, written by the learner);
- ``ddp_step``: one data-parallel SGD step by hand on a few model replicas:
  each computes the gradient of its own shard, the gradients are averaged
  (what DDP's all-reduce does), and every replica takes the same step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import i18n, quiz
from mnist_course.exercises import NotYet, a_type, as_array, call, checker, draw

_ = i18n.translator(__name__)

EXERCISES: tuple[str, ...] = ("shard", "ddp_step")

# ----------------------------------------------------------------------------------- shard

SHARD_LIBRARY = [
    "torch.utils.data.DistributedSampler",
    "torch.utils.data.distributed.DistributedSampler",
    "mnist_course.data.TensorLoader",
]
_SHARD_HINT = i18n.N_(
    "every process gets the same number of entries, as many as fits for all of them; "
    "process `rank` takes the block that follows the blocks of processes 0 to rank - 1."
)
# (batch length, world size): divisible, not divisible, a remainder of world_size - 1.
SHARD_CASES: list[tuple[int, int]] = [(8, 2), (12, 3), (10, 4), (7, 2), (23, 8)]


def _reference_shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Process ``rank``'s share of ``batch``: the rank-th of world_size equal slices (chapter 7)."""
    share = len(batch) // world_size
    return batch[rank * share : (rank + 1) * share]


def _case_batch(length: int, seed: int) -> torch.Tensor:
    """A shuffled batch of image numbers (entries unlike their positions)."""
    g = torch.Generator().manual_seed(seed)
    return 1000 + torch.randperm(5 * length, generator=g)[:length]


def _read_share(value: Any, what: str) -> list[int]:
    if isinstance(value, slice):
        raise NotYet(
            _("{what} returned a slice; return the entries, e.g. batch[start:stop].").format(
                what=what
            )
        )
    array = as_array(value, what)
    if array.ndim != 1:
        raise NotYet(
            _("{what} returned shape {shape}; return a 1-D tensor of entries.").format(
                what=what, shape=array.shape
            )
        )
    if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
        raise NotYet(
            _("{what} returned numbers that are not whole: return entries of `batch`.").format(
                what=what
            )
        )
    return [int(v) for v in array]


def _check_one_case(fn: Any, length: int, world: int, seed: int) -> None:
    batch = _case_batch(length, seed)
    entries = [int(v) for v in batch]
    shares = []
    for rank in range(world):
        what = _("shard(batch of {length}, rank={rank}, world_size={world})").format(
            length=length, rank=rank, world=world
        )
        shares.append(
            _read_share(call(fn, batch.clone(), rank, world, forbidden=SHARD_LIBRARY), what)
        )
    foreign = [v for share in shares for v in share if v not in entries]
    if foreign:
        if all(0 <= v < length for share in shares for v in share):
            message = _(
                "for a batch of {length} over {world} processes, a share holds {entry}, which is "
                "not an entry of the batch: you returned positions; index the batch with them."
            )
        else:
            message = _(
                "for a batch of {length} over {world} processes, a share holds {entry}, which is "
                "not an entry of the batch."
            )
        raise NotYet(
            message.format(length=length, world=world, entry=foreign[0]),
            _("index the batch itself: the share holds image numbers, not positions."),
        )
    sizes = [len(share) for share in shares]
    if len(set(sizes)) > 1:
        raise NotYet(
            _(
                "for a batch of {length} over {world} processes the shares have sizes {sizes}. "
                "With unequal shares the average of the processes' mean gradients is not the "
                "batch's mean gradient: make them equal."
            ).format(length=length, world=world, sizes=sizes),
            _(_SHARD_HINT),
        )
    seen: dict[int, int] = {}
    for rank, share in enumerate(shares):
        for value in share:
            if value in seen:
                raise NotYet(
                    _(
                        "for a batch of {length} over {world} processes, entry {value} goes to "
                        "process {first} and to process {rank}: each image must be used once per "
                        "step."
                    ).format(length=length, world=world, value=value, first=seen[value], rank=rank),
                    _(_SHARD_HINT),
                )
            seen[value] = rank
    left_out = length - len(seen)
    if left_out >= world:
        raise NotYet(
            _(
                "for a batch of {length} over {world} processes, {left_out} of {length} entries "
                "are left out; only a remainder smaller than the number of processes ({world}) "
                "may be."
            ).format(length=length, world=world, left_out=left_out),
            _(_SHARD_HINT),
        )


@checker(
    "shard",
    expects=i18n.N_("a function shard(batch, rank, world_size) that returns a 1-D tensor"),
)
def check_shard(shard: Any) -> str:
    """``shard(batch, rank, world_size)`` -> this process's share of the 1-D tensor ``batch``."""
    first = 100 * draw("shard")  # fresh batches for each check (the first: seeds 0, 1, ...)
    for seed, (length, world) in enumerate(SHARD_CASES):
        _check_one_case(shard, length, world, first + seed)
    return _(
        "equal, disjoint shares, fewer than world_size entries left out, "
        "for {cases} batch and process counts."
    ).format(cases=len(SHARD_CASES))


# ----------------------------------------------------------------------------------- ddp_step

DDP_LIBRARY = [
    "torch.nn.parallel.DistributedDataParallel",
    "torch.distributed.all_reduce",
    "torch.optim.SGD",
    "torch.optim.sgd.SGD",
    "torch.optim.Optimizer.__init__",  # every optimiser, however it is imported
    "torch.optim.sgd.sgd",
]
DDP_LR = 0.5


def toy_replicas(world: int, seed: int = 0) -> list[nn.Module]:
    """``world`` copies of one small network (the same weights), as DDP starts them."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    return [copy.deepcopy(net) for _ in range(world)]


def toy_shards(world: int, share: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Equal shares of one batch: (images, labels) per process."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(world * share, 6, generator=g)
    y = torch.randint(0, 3, (world * share,), generator=g)
    return [(x[r * share : (r + 1) * share], y[r * share : (r + 1) * share]) for r in range(world)]


def _reference_ddp_step(
    replicas: Sequence[nn.Module], shards: Sequence[tuple[torch.Tensor, torch.Tensor]], lr: float
) -> list[torch.Tensor]:
    """One data-parallel SGD step: shard gradients, averaged, the same step everywhere (ch. 7)."""
    grads = []
    for model, (images, labels) in zip(replicas, shards, strict=True):
        model.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    averaged = [torch.stack(per_process).mean(dim=0) for per_process in zip(*grads, strict=True)]
    with torch.no_grad():
        for model in replicas:
            for p, g in zip(model.parameters(), averaged, strict=True):
                p -= lr * g
    return averaged


def _one_model_steps(
    world: int, share: int, steps: int, lr: float, seed: int = 0
) -> list[list[torch.Tensor]]:
    """One network trained on the whole batches: its weights after each step."""
    (model,) = toy_replicas(1, seed)
    after = []
    for step in range(steps):
        shards = toy_shards(world, share, seed=1000 * seed + step)
        images, labels = map(torch.cat, zip(*shards, strict=True))
        model.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        after.append([p.detach().clone() for p in model.parameters()])
    return after


def _maxdiff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """The largest difference; infinite when either side holds NaN or inf (never "close")."""
    worst = max((x.detach() - y.detach()).abs().max().item() for x, y in zip(a, b, strict=True))
    return worst if math.isfinite(worst) else math.inf


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _read_grads(value: Any, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    what = "ddp_step"
    if not isinstance(value, (list, tuple)) or len(value) != len(like):
        if isinstance(value, (list, tuple)):
            message = _(
                "{what} returned {type} of {length}; return the averaged gradients as a list, "
                "one tensor per parameter ({count} here)."
            )
        else:
            message = _(
                "{what} returned {type}; return the averaged gradients as a list, "
                "one tensor per parameter ({count} here)."
            )
        raise NotYet(
            message.format(
                what=what,
                type=a_type(value),
                length=len(value) if isinstance(value, (list, tuple)) else 0,
                count=len(like),
            )
        )
    grads = []
    for got, param in zip(value, like, strict=True):
        array = as_array(got, what)
        if array.shape != tuple(param.shape):
            raise NotYet(
                _(
                    "{what} returned a gradient of shape {shape} for a parameter of shape "
                    "{param_shape}: return one averaged gradient per parameter, in order."
                ).format(what=what, shape=array.shape, param_shape=tuple(param.shape))
            )
        grads.append(torch.from_numpy(array).float())
    return grads


@checker(
    "ddp_step",
    expects=i18n.N_(
        "a function ddp_step(replicas, shards, lr) that updates the replicas and returns "
        "the averaged gradients, one tensor per parameter"
    ),
)
def check_ddp_step(ddp_step: Any) -> str:
    """``ddp_step(replicas, shards, lr)``: one step on every replica; returns the averaged grads."""
    world, share, steps = 3, 4, 2
    seed = draw("ddp_step")  # fresh weights and batches for each check
    replicas = toy_replicas(world, seed)
    expected = _one_model_steps(world, share, steps, DDP_LR, seed)
    for step in range(steps):
        shards = toy_shards(world, share, seed=1000 * seed + step)
        before = _weights(replicas[0])
        result = call(ddp_step, replicas, shards, DDP_LR, forbidden=DDP_LIBRARY)
        grads = _read_grads(result, before)
        weights = [_weights(model) for model in replicas]
        if any(not all(torch.isfinite(w).all() for w in ws) for ws in weights):
            raise NotYet(
                _("after step {step} a replica's weights hold NaN or inf.").format(step=step + 1),
                _(
                    "each replica: zero_grad, its shard's mean cross-entropy, backward; then the "
                    "mean of the gradients; then the same step on every replica."
                ),
            )
        unchanged = [r for r, w in enumerate(weights) if _maxdiff(w, before) == 0]
        if len(unchanged) == world:
            raise NotYet(
                _(
                    "the weights did not change: update every replica's parameters in place, "
                    "under torch.no_grad()."
                ),
                _("each parameter moves by minus lr times its averaged gradient."),
            )
        if unchanged:
            raise NotYet(
                _(
                    "after step {step} replica {replica} still holds its old weights: "
                    "every replica takes the same step (DDP keeps them identical)."
                ).format(step=step + 1, replica=unchanged[0]),
                _("loop over all the replicas when you update the parameters."),
            )
        if any(_maxdiff(weights[0], w) > 1e-6 for w in weights[1:]):
            raise NotYet(
                _(
                    "after step {step} the replicas hold different weights: each stepped with "
                    "its own shard's gradient. Average the gradients over the replicas first "
                    "(DDP's all-reduce), then take the same step on every replica."
                ).format(step=step + 1),
                _("collect each replica's p.grad, average them per parameter, then update."),
            )
        own = [(a - b) / DDP_LR for a, b in zip(before, weights[0], strict=True)]
        if not all(torch.isfinite(g).all() for g in grads):
            raise NotYet(_("the gradients you returned hold NaN or inf."))
        if _maxdiff(own, grads) > 1e-5:
            raise NotYet(
                _(
                    "the gradients you returned are not the ones you stepped with: return the "
                    "averaged gradients, one per parameter."
                )
            )
        target = [(a - b) / DDP_LR for a, b in zip(before, expected[step], strict=True)]
        if _maxdiff(weights[0], expected[step]) > 1e-5:
            if _maxdiff([g / world for g in grads], target) < 1e-5:
                raise NotYet(
                    _(
                        "the step is {world} times too large: you summed the {world} gradients. "
                        "Average them (divide by the number of processes)."
                    ).format(world=world),
                    _("each shard's loss is already a mean; the batch's gradient is their mean."),
                )
            if step == 1:  # (step 1 was right)
                raise NotYet(
                    _(
                        "the first step is right, the second is not: the first step's gradients "
                        "were added to the second's. Zero them (model.zero_grad()) before "
                        "backward."
                    ),
                    _("backward() adds to p.grad (chapter 4)."),
                )
            raise NotYet(
                _(
                    "after step {step} the weights differ from one SGD step on the whole "
                    "batch by up to {maxdiff:.2g}."
                ).format(step=step + 1, maxdiff=_maxdiff(weights[0], expected[step])),
                _(
                    "each replica: zero_grad, its shard's mean cross-entropy, backward; then the "
                    "mean of the gradients; then the same step with that mean on every replica."
                ),
            )
    return _(
        "{world} replicas took {steps} identical steps, equal to SGD on the whole batch "
        "(maxdiff < 1e-5): averaging the shards' gradients is the whole trick."
    ).format(world=world, steps=steps)


# ----------------------------------------------------------------------------------- quiz

QUIZ: dict[int, quiz.Question] = {
    1: quiz.Question(
        32,
        i18n.N_(
            "--batch-size is the global batch: 128 images per step, split into 4 equal shares of "
            "128 / 4 = 32, one per process (only an epoch's last, partial batch gives less)."
        ),
    ),
    2: quiz.Question(
        "b",
        i18n.N_(
            "all-reduce with averaging: every process receives (g0 + g1) / 2, the mean gradient "
            "of the whole batch when the two halves are equal."
        ),
    ),
    3: quiz.Question(
        "b",
        i18n.N_(
            "DDP copies rank 0's weights to every process once, at the start; after that each "
            "takes the same step from the same averaged gradient, so no weights are sent again."
        ),
    ),
    4: quiz.Question(
        "c",
        i18n.N_(
            "one process already ran on both cores (two threads); two processes get one core "
            "each, do the same training arithmetic between them, and add an all-reduce every step "
            "(and rank 0 tests alone on one core after each epoch). Any backend must do that "
            "all-reduce, and no backend gives back the second core the threads already used; "
            "each image is still trained on once per epoch."
        ),
    ),
}


def check_quiz(answers: Any) -> quiz.QuizResult:
    """Mark the chapter's quiz (questions in the notebook's last markdown cell)."""
    return quiz.check("chapter 7", QUIZ, answers, module=__name__)
