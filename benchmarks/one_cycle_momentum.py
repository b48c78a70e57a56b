"""Does OneCycleLR's momentum cycle help? Both settings, measured on the validation split (ch. 5).

``torch.optim.lr_scheduler.OneCycleLR`` cycles the optimiser's momentum by
default (``cycle_momentum=True``): 0.95 at the start, down to 0.85 at the
peak learning rate, back up to 0.95 at the end. Chapter 5 trains the lecture's
MLP for 3 epochs with Nesterov SGD and a one-cycle rate (peak 0.1, batch 128).
This script trains it both ways, with the same seeds and data order:

- ``cycled``: ``cycle_momentum=True`` (PyTorch's default: 0.95 -> 0.85 -> 0.95);
- ``constant``: ``cycle_momentum=False`` with momentum 0.9 throughout.

It trains on the 55,000 "train" images and measures the 5,000 "val" images
after each epoch (the test set is not used: this is a choice of settings).
One CSV row per (variant, seed, epoch), rounded.

    python benchmarks/one_cycle_momentum.py [--seeds 0 1 2 3 4] [--jobs 5]
"""

from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path

import torch

from mnist_course import data, measured, models, runtime, training

DEFAULT_OUT = Path(__file__).parents[1] / "mnist_course" / "results" / "one_cycle_momentum.csv"
COLUMNS = ("variant", "seed", "epoch", "train_loss", "val_loss", "val_acc")
VARIANTS = {"cycled": True, "constant": False}
MAX_LR, BATCH = 0.1, 128


def run(job: tuple[str, int, int, str | None, int]) -> list[dict[str, str]]:
    """Train one (variant, seed) for ``epochs``; one row per epoch."""
    variant, seed, epochs, root, threads = job
    torch.set_num_threads(threads)
    runtime.set_seed(seed)
    train_loader = data.TensorLoader(*data.load_split("train", root), BATCH, True, seed)
    val_loader = data.TensorLoader(*data.load_split("val", root), 1000)
    model = models.MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=MAX_LR, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=MAX_LR,
        epochs=epochs,
        steps_per_epoch=len(train_loader),
        cycle_momentum=VARIANTS[variant],
    )
    history = training.fit(model, train_loader, val_loader, optimizer, epochs, scheduler)
    rows = [
        {
            "variant": variant,
            "seed": str(seed),
            "epoch": str(h.epoch),
            "train_loss": f"{h.train_loss:.5f}",
            "val_loss": f"{h.val_loss:.5f}",
            "val_acc": f"{h.val_acc:.4f}",
        }
        for h in history
    ]
    print(f"{variant} seed {seed}: val acc {100 * history[-1].val_acc:.2f}%", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per job")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data.ensure_mnist(args.data_root)
    jobs = [
        (variant, seed, args.epochs, args.data_root, args.threads)
        for seed in args.seeds
        for variant in VARIANTS
    ]
    with Pool(args.jobs) as pool:
        results = pool.map(run, jobs)
    measured.write_rows([row for rows in results for row in rows], args.out, COLUMNS)
    for variant in VARIANTS:
        last = [
            float(r["val_acc"])
            for rows in results
            for r in rows
            if r["variant"] == variant and r["epoch"] == str(args.epochs)
        ]
        print(f"{variant}: mean val acc {100 * sum(last) / len(last):.2f}% over {len(last)} seeds")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
