"""Chapter 6's comparisons over several seeds: how much of each difference is seed-to-seed noise.

Chapter 6 runs each comparison once, with seed 0, while the class watches. One
seed cannot tell a setting's effect from the luck of its initial weights and
data order, so this script repeats each comparison over several seeds (the seed
sets both) and stores every run. The chapter reads the CSV files with
``mnist_course.measured.rows`` and prints the mean and spread per setting.

Three parts, each its own CSV in ``mnist_course/results/``:

- ``ladder`` -> ``chapter06_ladder.csv``: the optimiser ladder, the MLP trained for
  1 epoch (batches of 128) per rung and seed; one row per (rung, seed).
- ``architecture`` -> ``chapter06_architecture.csv``: the MLP, the CNN, and the CNN
  with weight decay 5e-4, each 3 epochs of ``training.one_cycle_sgd`` (peak 0.1,
  batches of 128); one row per (model, seed). The test accuracy is stored too, to
  size the chapter's check that the chosen CNN reaches 99% on the test set; no
  choice is made with it.
- ``batchnorm`` -> ``chapter06_batchnorm.csv``: the CNN with and without its two
  ``BatchNorm2d`` layers (replaced by ``nn.Identity``), trained ``--bn-steps`` steps
  of batches of 64 with ``SGD(lr, momentum=0.9, nesterov=True)`` at several
  learning rates; one row per (variant, lr, seed): whether every loss stayed
  finite, the mean loss of the last 20 steps, and the validation accuracy.

Training uses the 55,000 "train" images and judges on the 5,000 "val" images.
Every row records what was run (seed, epochs or steps, batch size).

    OMP_NUM_THREADS=1 python benchmarks/chapter06_seeds.py [--parts ladder batchnorm]
        [--seeds 0 1 2 3 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import data, measured, models, runtime, training

RESULTS = Path(__file__).parents[1] / "mnist_course" / "results"
FILES = {
    "ladder": "chapter06_ladder.csv",
    "architecture": "chapter06_architecture.csv",
    "batchnorm": "chapter06_batchnorm.csv",
}
BATCH, BN_BATCH = 128, 64
BN_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)

Make = Callable[[nn.Module, int], tuple[torch.optim.Optimizer, object]]


def _sgd(**settings: float | bool) -> Make:
    def make(model: nn.Module, steps: int) -> tuple[torch.optim.Optimizer, None]:
        return torch.optim.SGD(model.parameters(), **settings), None

    return make


def _one_cycle_lr(model: nn.Module, steps: int) -> tuple[torch.optim.Optimizer, object]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, total_steps=steps, cycle_momentum=False
    )
    return optimizer, scheduler


def _course_recipe(model: nn.Module, steps: int) -> tuple[torch.optim.Optimizer, object]:
    return training.one_cycle_sgd(model, 0.1, 1, steps)


# The chapter's ladder, rung by rung (the same names and settings as the chapter's LADDER).
LADDER: dict[str, Make] = {
    "SGD lr=0.01": _sgd(lr=0.01),
    "+ momentum 0.5": _sgd(lr=0.01, momentum=0.5),
    "lr 0.01 -> 0.1": _sgd(lr=0.1, momentum=0.5),
    "momentum 0.5 -> 0.9": _sgd(lr=0.1, momentum=0.9),
    "+ Nesterov": _sgd(lr=0.1, momentum=0.9, nesterov=True),
    "+ one-cycle lr": _one_cycle_lr,
    "+ cycled momentum": _course_recipe,
}

ARCHITECTURES = {"mlp": ("mlp", 0.0), "cnn": ("cnn", 0.0), "cnn, weight decay 5e-4": ("cnn", 5e-4)}


def cnn_without_batchnorm() -> nn.Module:
    """``models.CNN`` with its two BatchNorm2d layers replaced by ``nn.Identity`` (chapter 6)."""
    net = models.CNN()
    for i, layer in enumerate(net.features):
        if isinstance(layer, nn.BatchNorm2d):
            net.features[i] = nn.Identity()
    return net


BN_VARIANTS: dict[str, Callable[[], nn.Module]] = {
    "with BatchNorm": models.CNN,
    "without BatchNorm": cnn_without_batchnorm,
}


def ladder(seeds: list[int], splits: dict) -> list[dict[str, str]]:
    rows = []
    val = data.TensorLoader(*splits["val"], batch_size=1000)
    for seed in seeds:
        for rung, make in LADDER.items():
            runtime.set_seed(seed)
            model = models.MLP()
            loader = data.TensorLoader(*splits["train"], BATCH, shuffle=True, seed=seed)
            optimizer, scheduler = make(model, len(loader))
            (stats,) = training.fit(model, loader, val, optimizer, 1, scheduler)
            rows.append(
                {
                    "rung": rung,
                    "seed": str(seed),
                    "epochs": "1",
                    "batch": str(BATCH),
                    "val_loss": f"{stats.val_loss:.5f}",
                    "val_acc": f"{stats.val_acc:.4f}",
                }
            )
            print(f"ladder seed {seed} {rung}: {100 * stats.val_acc:.2f}%", flush=True)
    return rows


def architecture(seeds: list[int], splits: dict, epochs: int = 3) -> list[dict[str, str]]:
    rows = []
    val = data.TensorLoader(*splits["val"], batch_size=1000)
    test = data.TensorLoader(*splits["test"], batch_size=1000)
    for seed in seeds:
        for name, (model_name, weight_decay) in ARCHITECTURES.items():
            runtime.set_seed(seed)
            model = models.build_model(model_name).to(memory_format=torch.channels_last)
            loader = data.TensorLoader(*splits["train"], BATCH, shuffle=True, seed=seed)
            optimizer, scheduler = training.one_cycle_sgd(
                model, 0.1, epochs, len(loader), weight_decay=weight_decay
            )
            history = training.fit(model, loader, val, optimizer, epochs, scheduler)
            _, test_acc = training.evaluate(model, test)
            rows.append(
                {
                    "model": name,
                    "seed": str(seed),
                    "epochs": str(epochs),
                    "batch": str(BATCH),
                    "val_acc": f"{history[-1].val_acc:.4f}",
                    "test_acc": f"{test_acc:.4f}",
                }
            )
            print(f"architecture seed {seed} {name}: {rows[-1]}", flush=True)
    return rows


def batchnorm(seeds: list[int], splits: dict, steps: int) -> list[dict[str, str]]:
    rows = []
    images, labels = (t[: steps * BN_BATCH] for t in splits["train"])
    val = data.TensorLoader(*splits["val"], batch_size=1000)
    for seed in seeds:
        for lr in BN_LRS:
            for variant, build in BN_VARIANTS.items():
                torch.manual_seed(seed)
                net = build()
                optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True)
                losses: list[float] = []
                for x, y in data.TensorLoader(images, labels, BN_BATCH, shuffle=True, seed=seed):
                    loss = F.cross_entropy(net(x), y)
                    losses.append(loss.item())
                    if not math.isfinite(losses[-1]):
                        break
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                finite = all(math.isfinite(v) for v in losses)
                last = sum(losses[-20:]) / 20 if finite else math.inf
                _, val_acc = training.evaluate(net, val) if finite else (math.nan, math.nan)
                rows.append(
                    {
                        "variant": variant,
                        "lr": f"{lr:g}",
                        "seed": str(seed),
                        "steps": str(steps),
                        "batch": str(BN_BATCH),
                        "finite": str(finite),
                        "last20_loss": f"{last:.4f}",
                        "val_acc": f"{val_acc:.4f}",
                    }
                )
                print(f"batchnorm seed {seed}: {rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(FILES), default=list(FILES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--bn-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = {s: data.load_split(s, args.data_root) for s in ("train", "val", "test")}
    for part in args.parts:
        start = time.perf_counter()
        if part == "ladder":
            rows = ladder(args.seeds, splits)
        elif part == "architecture":
            rows = architecture(args.seeds, splits)
        else:
            rows = batchnorm(args.seeds, splits, args.bn_steps)
        measured.write_rows(rows, args.out_dir / FILES[part])
        print(f"wrote {args.out_dir / FILES[part]}")
        print(f"{part}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
