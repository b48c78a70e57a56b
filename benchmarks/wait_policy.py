"""How PyTorch's idle CPU threads should wait: measured quiet and beside a busy program.

PyTorch's CPU threads (OpenMP; on Linux, GNU libgomp) spin for a while when they wait
for work. Beside another CPU-bound program, a spinning thread waits on a core that is
taken. This script times 100 training steps of the notes' MLP (batch 128, SGD with
momentum, 2 threads on this machine) under each way of waiting:

- ``default``: nothing set (libgomp spins about 300,000 times, then sleeps);
- ``PASSIVE``: ``OMP_WAIT_POLICY=PASSIVE``, waiting threads sleep at once;
- ``SPIN1000``: ``GOMP_SPINCOUNT=1000``, a short spin, then sleep (the course's choice).

Each in a plain Python process (as ``mnist-course train``) and in a Jupyter kernel (as a
chapter), on a quiet machine and beside ``--load`` busy loops that this script starts and
stops itself. Every run is a fresh process (OpenMP reads its settings when torch loads);
each times the 100 steps three times after a warm-up. The configurations alternate within
each repeat, so a slow spell of the machine does not fall on one of them only.

    python benchmarks/wait_policy.py --repeats 3 [--write]

``--write`` stores every timing in ``mnist_course/results/wait_policy.csv``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from mnist_course import measured

RESULT = Path(__file__).resolve().parents[1] / "mnist_course" / "results" / "wait_policy.csv"
CONFIGS = {
    "default": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "SPIN1000": {"GOMP_SPINCOUNT": "1000"},
}
# torch is imported before mnist_course, so the package's own setting does not apply here.
STEPS = """
import time, torch
from mnist_course import models
torch.manual_seed(0)
model = models.MLP()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
def steps(n):
    start = time.perf_counter()
    for _ in range(n):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return time.perf_counter() - start
steps(10)
print("SECONDS", *[round(steps(100), 3) for _ in range(3)], "THREADS", torch.get_num_threads())
"""
FIELDS = ["config", "place", "busy_loops", "repeat", "seconds", "threads", "load_before", "cpus"]
SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "KMP_BLOCKTIME")


def environment(config: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(CONFIGS[config])
    return env


def parse(text: str) -> tuple[list[float], int]:
    words = text.split("SECONDS", 1)[1].split()
    return [float(w) for w in words[:3]], int(words[4])


def in_process(config: str) -> tuple[list[float], int]:
    done = subprocess.run(
        [sys.executable, "-c", STEPS],
        env=environment(config),
        capture_output=True,
        text=True,
        check=True,
    )
    return parse(done.stdout)


def in_kernel(config: str) -> tuple[list[float], int]:
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", env=environment(config))
    try:
        printed: list[str] = []

        def keep(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])

        client.execute_interactive(STEPS, output_hook=keep, timeout=900)
        return parse("".join(printed))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def measure(repeats: int, loads: list[int]) -> list[dict]:
    rows = []
    for busy_loops in loads:
        loops = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy_loops)
        ]
        try:
            for repeat in range(1, repeats + 1):
                for config in CONFIGS:
                    for place, run in (("process", in_process), ("kernel", in_kernel)):
                        before = os.getloadavg()[0]
                        seconds, threads = run(config)
                        print(
                            f"{busy_loops} busy, {config:8} {place:7} "
                            f"{' '.join(f'{s:.2f}' for s in seconds)} s",
                            flush=True,
                        )
                        rows += [
                            {
                                "config": config,
                                "place": place,
                                "busy_loops": busy_loops,
                                "repeat": repeat,
                                "seconds": s,
                                "threads": threads,
                                "load_before": round(before, 2),
                                "cpus": os.cpu_count(),
                            }
                            for s in seconds
                        ]
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
    return rows


def summary(rows: list[dict]) -> str:
    lines = [
        "| busy loops | config | place | median s | min s | max s |",
        "|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["busy_loops"], r["config"], r["place"]) for r in rows)
    for busy_loops, config, place in keys:
        times = [
            float(r["seconds"])
            for r in rows
            if (r["busy_loops"], r["config"], r["place"]) == (busy_loops, config, place)
        ]
        lines.append(
            f"| {busy_loops} | {config} | {place} | {statistics.median(times):.2f} | "
            f"{min(times):.2f} | {max(times):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--load",
        type=int,
        nargs="+",
        default=[0, 1],
        help="numbers of busy loops to measure beside (default: 0 1)",
    )
    parser.add_argument("--write", action="store_true", help=f"store the timings in {RESULT}")
    args = parser.parse_args(argv)
    rows = measure(args.repeats, args.load)
    print(summary(rows))
    if args.write:
        measured.write_rows(rows, RESULT, FIELDS)
        print(f"stored {len(rows)} timings in {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
