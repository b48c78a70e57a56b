"""Is `channels_last` faster for chapter 6's CNN on this CPU? Training steps, timed both ways (ch. 6).

Chapter 6 stores its CNN `channels_last` (chapter 3: the same numbers, laid out
pixel by pixel with the channels together). This script times training steps of
that CNN, as chapter 6 trains it (Nesterov SGD, batches of 128 training images,
the batches as the loader gives them), with the model in each memory format:

- ``contiguous``: PyTorch's default layout, N x C x H x W row by row;
- ``channels_last``: ``model.to(memory_format=torch.channels_last)``.

Each repeat builds both models from the same seed, runs some warm-up steps, then
times ``--steps`` steps of each; the order alternates between repeats, and the
load average is recorded before each. One CSV row per (repeat, format): the
median milliseconds per step. Measure on a quiet machine.

    python benchmarks/memory_format.py [--repeats 5] [--steps 50] [--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mnist_course import data, measured, models, runtime

DEFAULT_OUT = Path(__file__).parents[1] / "mnist_course" / "results" / "memory_format.csv"
COLUMNS = ("repeat", "variant", "ms_per_step", "threads", "load_before")
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
BATCH, WARMUP = 128, 5


def time_steps(variant: str, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Median milliseconds of ``steps`` training steps of the CNN in memory format ``variant``."""
    runtime.set_seed(0)
    model = models.CNN().to(memory_format=FORMATS[variant])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    times = []
    for step in range(WARMUP + steps):
        start = (step * BATCH) % (len(labels) - BATCH + 1)
        x, y = images[start : start + BATCH], labels[start : start + BATCH]
        began = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= WARMUP:
            times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


def measure(
    images: torch.Tensor, labels: torch.Tensor, repeats: int, steps: int, threads: int
) -> list[dict]:
    """Both formats per repeat, alternating which goes first; one row each."""
    torch.set_num_threads(threads)
    rows = []
    for repeat in range(repeats):
        order = list(FORMATS) if repeat % 2 == 0 else list(reversed(FORMATS))
        for variant in order:
            load = os.getloadavg()[0]
            ms = time_steps(variant, images, labels, steps)
            rows.append(
                {
                    "repeat": repeat,
                    "variant": variant,
                    "ms_per_step": f"{ms:.2f}",
                    "threads": threads,
                    "load_before": f"{load:.2f}",
                }
            )
            print(f"repeat {repeat}: {variant:<14} {ms:6.2f} ms a step (load {load:.2f})")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--write", action="store_true", help=f"store the rows in {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    images, labels = data.load_split("train", args.data_root)
    rows = measure(images, labels, args.repeats, args.steps, args.threads)
    for variant in FORMATS:
        ms = [float(r["ms_per_step"]) for r in rows if r["variant"] == variant]
        print(f"{variant:<14} median {statistics.median(ms):6.2f} ms ({min(ms):.2f}-{max(ms):.2f})")
    if args.write:
        measured.write_rows(rows, DEFAULT_OUT, list(COLUMNS))
        print(f"wrote {DEFAULT_OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
