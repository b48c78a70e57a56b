"""The lecture's 100-epoch plan, measured: what happens after 98% (chapter 5).

The lecture trains its MLP with ``SGD(lr=0.01, momentum=0.5)``, batch 64, for
100 epochs and prints the test accuracy after each one. This script does the
same with two changes that do not change the mathematics:

- the data come from the in-memory tensors (``data.load_split`` and
  ``data.TensorLoader``): the same normalised numbers as the lecture's
  per-image ``ToTensor`` + ``Normalize``, only faster;
- it trains on the 55,000 "train" images and watches the 5,000 "val" images
  after each epoch, so the test set stays unseen (chapter 3). The test
  accuracy is measured once, after the last epoch, and only printed.

Each epoch writes one row to the CSV (``epoch, train_loss, train_acc,
val_loss, val_acc``): the training loss and accuracy are averaged over the
epoch's batches while the network learns (as the lecture's running loss is);
the validation numbers are measured after the epoch, in eval mode. Chapter 5
plots the file and quotes it.

    python benchmarks/long_run.py [--epochs 100] [--out mnist_course/results/lecture_100_epochs.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mnist_course import data, measured, models, runtime, training

DEFAULT_OUT = Path(__file__).parents[1] / "mnist_course" / "results" / "lecture_100_epochs.csv"
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")


def row(stats: training.EpochStats) -> dict[str, str]:
    """One CSV row, rounded: losses to 5 decimals, accuracies to 5 (val: exact in 4)."""
    return {
        "epoch": str(stats.epoch),
        "train_loss": f"{stats.train_loss:.5f}",
        "train_acc": f"{stats.train_acc:.5f}",
        "val_loss": f"{stats.val_loss:.5f}",
        "val_acc": f"{stats.val_acc:.5f}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = runtime.get_device(args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    runtime.set_seed(args.seed)
    train_x, train_y = data.load_split("train", args.data_root)
    val_x, val_y = data.load_split("val", args.data_root)
    train_loader = data.TensorLoader(train_x, train_y, 64, shuffle=True, seed=args.seed)
    val_loader = data.TensorLoader(val_x, val_y, 1000)
    model = models.MLP().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)

    rows: list[dict[str, str]] = []
    start = time.perf_counter()

    def record(stats: training.EpochStats) -> None:
        rows.append(row(stats))
        measured.write_rows(rows, args.out, COLUMNS)
        print(
            f"epoch {stats.epoch:3d}: train loss {stats.train_loss:.4f}, "
            f"val loss {stats.val_loss:.4f}, val acc {100 * stats.val_acc:.2f}% "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    training.fit(
        model, train_loader, val_loader, optimizer, args.epochs, device=device, callback=record
    )
    test_x, test_y = data.load_split("test", args.data_root)
    _, test_acc = training.evaluate(model, data.TensorLoader(test_x, test_y, 1000), device)
    print(f"after {args.epochs} epochs: test accuracy {100 * test_acc:.2f}% (measured once)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
