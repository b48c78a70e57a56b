"""Run by tests/test_distributed.py, alone or under torchrun: train the MLP on toy data
with the package's multi-process pieces, then save this process's weights and history.

    torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from mnist_course import data, distributed, models, training


def toy_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose label is which of ten 28-pixel rows is bright (as in test_training)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randn(n, 1, 28, 28, generator=g) * 0.1
    images[torch.arange(n), 0, labels * 2, :] += 3.0
    return images, labels


class FailingLoader:
    """The loader, except that it raises on its third batch (a process that dies mid-epoch)."""

    def __init__(self, loader: data.TensorLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for step, batch in enumerate(self.loader):
            if step == 2:
                raise RuntimeError(f"deliberate failure on rank {self.loader.rank}")
            yield batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fail-rank", type=int, default=-1)
    args = parser.parse_args()
    torch.manual_seed(0)
    group = distributed.setup(torch.device("cpu")) if distributed.under_torchrun() else None
    rank, world = (group.rank, group.world_size) if group else (0, 1)
    images, labels = toy_data(args.images)
    loader = data.TensorLoader(
        images, labels, args.batch_size, shuffle=True, seed=0, rank=rank, world_size=world
    )
    # how many images this process trains on per epoch (a fresh copy: same batches, and
    # counting does not move the real loader's random order)
    copy = data.TensorLoader(images, labels, args.batch_size, rank=rank, world_size=world)
    images_seen = sum(len(batch_labels) for _, batch_labels in copy)
    held_out = data.TensorLoader(*toy_data(200, seed=1), 100)
    model = models.MLP()
    optimizer, scheduler = training.one_cycle_sgd(model, 0.1, args.epochs, len(loader))
    if group is not None:
        model = DistributedDataParallel(model)
    train = FailingLoader(loader) if rank == args.fail_rank else loader
    try:
        history = training.fit(model, train, held_out, optimizer, args.epochs, scheduler)
    finally:
        distributed.cleanup()
    plain = model.module if group is not None else model
    torch.save(plain.state_dict(), args.out / f"rank{rank}.pt")
    stats = [[h.train_loss, h.train_acc, h.val_loss, h.val_acc] for h in history]
    (args.out / f"rank{rank}.json").write_text(
        json.dumps({"steps": len(loader), "images": images_seen, "history": stats})
    )


if __name__ == "__main__":
    main()
