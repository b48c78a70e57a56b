"""Time to accuracy: the lecture notes' pipeline against the course's, side by side.

Two modes:

``--mode in-process`` (default): the pipelines train one after the other in this process,
and the clock starts when each builds its data sets (imports are already done):

1. notes:  the notes' exact pipeline. torchvision MNIST through a DataLoader with
           ToTensor + Normalize per image (train and test batch 64, shuffled), the
           notes' MLP, SGD(lr=0.01, momentum=0.5); until 98% or --max-epochs.
2. course: the same MLP on the in-memory tensors (batch 128) with one-cycle
           Nesterov SGD planned over 3 epochs (chapter 5); until 98%.
3. cnn:    the course CNN, same pipeline, weight decay 5e-4, 3 epochs; until 99%.

``--mode end-to-end``: the way a user waits. Each pipeline is a whole process, timed
from its start to its exit (interpreter, imports, data checks, loading, training,
evaluation): the notes' script (``benchmarks/notes_script.py``, stopping at 98%) and
``mnist-course train --model mlp --epochs 3``.

In both modes ``--repeats R`` runs every pipeline R times, in alternating order (forward,
then backward, ...) so that a slow spell of the machine does not fall on one pipeline only;
the machine's load average is recorded before and after each run, the medians, the spread
and the speed-up of each repeat are printed, and ``--write`` stores every run in
``mnist_course/results/time_to_accuracy.csv`` (what the README and chapter 5 quote), replacing
the rows of that mode.

``--mode processes``: one process against several (chapter 7). The same whole-process
timing of ``mnist-course train --model cnn --epochs 3``, alone and with ``--nproc N``
(DistributedDataParallel started by torchrun; default N = 2), same seed and global batch.
With ``--repeats R`` the two alternate (1, N, N, 1, 1, N, ...) so that a slow spell of the
machine does not fall on one of them only; the machine's load average is recorded before
and after each run, the medians and the spread are printed, and ``--write`` stores every
run in ``mnist_course/results/processes.csv`` (what chapter 7 quotes).

Prints a table and the speed-up of the course's MLP over the notes' to 98% (or, for
processes, the time of N processes over one). Runs on the CPU unless --device says otherwise.

    python benchmarks/time_to_accuracy.py [--mode end-to-end|processes] [--data-root PATH]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mnist_course import data, measured, models, runtime, training

HERE = Path(__file__).resolve().parent


@dataclass
class Result:
    name: str
    target: float
    epochs: int
    seconds: float
    accuracy: float

    @property
    def reached(self) -> bool:
        return self.accuracy >= self.target


def run(
    name, model, train_loader, test_loader, optimizer, scheduler, epochs, target, start, device
):
    """Train until ``target`` test accuracy or ``epochs``; the clock started at ``start``."""

    def report(stats: training.EpochStats) -> bool:
        print(f"    {name} epoch {stats.epoch}: {100 * stats.val_acc:.2f}%", flush=True)
        return stats.val_acc >= target  # stop once the target is reached

    history = training.fit(
        model, train_loader, test_loader, optimizer, epochs, scheduler, device, callback=report
    )
    seconds = time.perf_counter() - start
    result = Result(name, target, len(history), seconds, history[-1].val_acc)
    print(
        f"  {name}: {result.epochs} epochs, {seconds:.1f} s, {100 * result.accuracy:.2f}%",
        flush=True,
    )
    return result


def notes_pipeline(args, device) -> Result:
    start = time.perf_counter()
    runtime.set_seed(args.seed)
    train_loader = DataLoader(data.mnist_dataset(True, args.data_root), batch_size=64, shuffle=True)
    test_loader = DataLoader(data.mnist_dataset(False, args.data_root), batch_size=64, shuffle=True)
    model = models.MLP().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    return run(
        "notes MLP", model, train_loader, test_loader, optimizer, None, args.max_epochs, 0.98,
        start, device,
    )  # fmt: skip


def course_pipeline(args, device, name: str, target: float, weight_decay: float) -> Result:
    start = time.perf_counter()
    runtime.set_seed(args.seed)
    train_x, train_y = data.load_tensors(True, args.data_root)
    test_x, test_y = data.load_tensors(False, args.data_root)
    train_loader = data.TensorLoader(train_x, train_y, 128, shuffle=True, seed=args.seed)
    test_loader = data.TensorLoader(test_x, test_y, 1000)
    model = models.build_model(name).to(device)
    epochs = 3
    optimizer, scheduler = training.one_cycle_sgd(
        model, 0.1, epochs, len(train_loader), weight_decay
    )
    return run(
        f"course {name.upper()}", model, train_loader, test_loader, optimizer, scheduler, epochs,
        target, start, device,
    )  # fmt: skip


def process(name: str, command: list[str], target: float) -> Result:
    """Run ``command`` as a whole process; the test accuracies are read from what it prints."""
    print(f"  $ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stdout}\n{done.stderr}")
    accuracies = [
        float(a) / 100 for a in re.findall(r"accuracy[^\d]*(\d+(?:\.\d+)?)%", done.stdout, re.I)
    ]
    if not accuracies:
        raise RuntimeError(f"{name} printed no test accuracy:\n{done.stdout}")
    result = Result(name, target, len(accuracies), seconds, accuracies[-1])
    print(
        f"  {name}: {result.epochs} epochs, {seconds:.1f} s, {100 * result.accuracy:.2f}%",
        flush=True,
    )
    return result


def course_command() -> list[str]:
    """``mnist-course`` beside this Python (the installed console script), else ``-m``."""
    script = shutil.which("mnist-course", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mnist_course"]


RESULTS = HERE.parent / "mnist_course" / "results" / "processes.csv"
PROCESS_FIELDS = ["run", "processes", "seconds", "test_acc", "load_before", "load_after", "cpus"]


def load_average() -> float:
    """The machine's 1-minute load average (0.0 where the system does not report one)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def alternating(repeats: int, count: int = 2) -> list[int]:
    """Which of ``count`` pipelines to run, in order: 0, 1, 1, 0, 0, 1, ... for two;
    forward, then backward, for more (``repeats`` of each)."""
    order = []
    for r in range(repeats):
        forward = list(range(count))
        order += forward if r % 2 == 0 else forward[::-1]
    return order


def processes(args) -> list[dict]:
    """One process and ``--nproc`` processes, alternated ``--repeats`` times: one row per run."""
    root = str(data.data_root(args.data_root))
    cnn = [*course_command(), "train", "--model", "cnn", "--epochs", "3", "--no-progress",
           "--device", args.device, "--data-root", root, "--seed", str(args.seed)]  # fmt: skip
    pipelines = [
        ("1 process", 1, cnn),
        (f"{args.nproc} processes (DDP)", args.nproc, [*cnn, "--nproc", str(args.nproc)]),
    ]
    rows = []
    for run_number, which in enumerate(alternating(args.repeats), start=1):
        name, count, command = pipelines[which]
        before = load_average()
        result = process(name, command, 0.99)
        rows.append({
            "run": run_number, "processes": count, "seconds": round(result.seconds, 1),
            "test_acc": round(result.accuracy, 4), "load_before": round(before, 2),
            "load_after": round(load_average(), 2), "cpus": os.cpu_count(),
        })  # fmt: skip
        print(
            f"    load average {before:.2f} before, {rows[-1]['load_after']:.2f} after", flush=True
        )
    return rows


TIMES = HERE.parent / "mnist_course" / "results" / "time_to_accuracy.csv"
TIME_FIELDS = ["mode", "repeat", "pipeline", "target", "epochs", "seconds", "test_acc",
               "reached", "load_before", "load_after", "cpus", "gomp_spincount"]  # fmt: skip


def pipelines(args, device) -> list[tuple[str, Callable[[], Result]]]:
    """The mode's pipelines, each a function that runs it once."""
    if args.mode == "end-to-end":
        root = str(data.data_root(args.data_root))
        notes = [sys.executable, str(HERE / "notes_script.py"), root, "--target", "98",
                 "--max-epochs", str(args.max_epochs), "--seed", str(args.seed)]  # fmt: skip
        course = [*course_command(), "train", "--model", "mlp", "--epochs", "3", "--no-progress",
                  "--device", args.device, "--data-root", root, "--seed", str(args.seed)]  # fmt: skip
        return [
            ("notes script", lambda: process("notes script", notes, 0.98)),
            ("mnist-course train", lambda: process("mnist-course train", course, 0.98)),
        ]
    return [
        ("notes MLP", lambda: notes_pipeline(args, device)),
        ("course MLP", lambda: course_pipeline(args, device, "mlp", 0.98, 0.0)),
        ("course CNN", lambda: course_pipeline(args, device, "cnn", 0.99, 5e-4)),
    ]


def time_runs(args, device) -> list[dict]:
    """Every pipeline of the mode ``--repeats`` times, alternated: one row per run."""
    runs = pipelines(args, device)
    rows, seen = [], {}
    for which in alternating(args.repeats, len(runs)):
        name, run_once = runs[which]
        seen[name] = seen.get(name, 0) + 1
        before = load_average()
        result = run_once()
        rows.append({
            "mode": args.mode, "repeat": seen[name], "pipeline": result.name,
            "target": result.target, "epochs": result.epochs, "seconds": round(result.seconds, 1),
            "test_acc": round(result.accuracy, 4), "reached": result.reached,
            "load_before": round(before, 2), "load_after": round(load_average(), 2),
            "cpus": os.cpu_count(), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", "unset"),
        })  # fmt: skip
        print(
            f"    load average {before:.2f} before, {rows[-1]['load_after']:.2f} after", flush=True
        )
    return rows


def time_summary(rows: list[dict]) -> str:
    """Per pipeline: median and spread of the seconds and epochs; then the speed-up to 98%
    of the course's MLP over the notes' (the first two pipelines), repeat by repeat."""
    lines = ["| pipeline | target | runs | epochs | median s | min s | max s | load before (max) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    names = list(dict.fromkeys(r["pipeline"] for r in rows))
    for name in names:
        mine = [r for r in rows if r["pipeline"] == name]
        times = [float(r["seconds"]) for r in mine]
        epochs = sorted({int(r["epochs"]) for r in mine})
        lines.append(
            f"| {name} | {100 * float(mine[0]['target']):.0f}% | {len(mine)} | "
            f"{', '.join(map(str, epochs))} | {statistics.median(times):.1f} | {min(times):.1f} | "
            f"{max(times):.1f} | {max(float(r['load_before']) for r in mine):.2f} |"
        )
    lines += ["", speed_ups(rows, names[0], names[1])]
    return "\n".join(lines)


def speed_ups(rows: list[dict], slow: str, fast: str) -> str:
    """How many times sooner ``fast`` reached its target than ``slow``: each repeat's ratio."""
    ratios = measured.speed_ups(rows, slow, fast)
    if ratios is None:
        return "speed-up to 98%: not measured (a pipeline did not reach 98%)"
    return (
        f"speed-up to 98%, {fast} over {slow}: median {statistics.median(ratios):.1f}x "
        f"(repeats: {', '.join(f'{r:.1f}x' for r in ratios)})"
    )


def store_times(rows: list[dict], path: Path) -> None:
    """Replace the rows of this mode in ``path`` (the other mode's rows stay)."""
    mode = rows[0]["mode"]
    kept = []
    if path.exists():
        with path.open(encoding="utf-8") as f:
            kept = [r for r in csv.DictReader(f) if r["mode"] != mode]
    measured.write_rows(kept + rows, path, TIME_FIELDS)


def summary(rows: list[dict]) -> str:
    """Median and spread of each process count, and the ratio of the medians."""
    lines = ["| processes | runs | median s | min s | max s | load before (max) |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    medians = {}
    for count in sorted({int(r["processes"]) for r in rows}):
        times = [float(r["seconds"]) for r in rows if int(r["processes"]) == count]
        loads = [float(r["load_before"]) for r in rows if int(r["processes"]) == count]
        medians[count] = statistics.median(times)
        lines.append(
            f"| {count} | {len(times)} | {medians[count]:.1f} | {min(times):.1f} | "
            f"{max(times):.1f} | {max(loads):.2f} |"
        )
    one, many = medians[min(medians)], medians[max(medians)]
    lines += ["", f"{max(medians)} processes took {many / one:.2f}x the median time of 1 process"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root", help="folder holding MNIST/raw/ (default: $MNIST_COURSE_DATA)"
    )
    parser.add_argument(
        "--mode", choices=["in-process", "end-to-end", "processes"], default="in-process"
    )
    parser.add_argument("--nproc", type=int, default=2, help="processes for --mode processes")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each pipeline, alternated")
    parser.add_argument(
        "--write", action="store_true",
        help=f"store the runs ({RESULTS.name} for processes, else {TIMES.name})",
    )  # fmt: skip
    parser.add_argument("--max-epochs", type=int, default=25, help="cap for the notes' pipeline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = runtime.get_device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{os.cpu_count()} CPUs, mode {args.mode}",
        flush=True,
    )
    if args.mode == "processes":
        rows = processes(args)
        print()
        print(summary(rows))
        if args.write:
            measured.write_rows(rows, RESULTS, PROCESS_FIELDS)
            print(f"stored in {RESULTS}")
        return 0
    rows = time_runs(args, device)
    print()
    print(time_summary(rows))
    if args.write:
        store_times(rows, TIMES)
        print(f"stored in {TIMES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
