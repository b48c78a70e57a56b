"""Training on several processes (mnist_course.distributed, `train --nproc`), with gloo on the CPU.

The multi-process tests start real processes with torchrun on toy data
(tests/ddp_worker.py) or on a tiny MNIST (the command line); each takes a few seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_course import cli, data, distributed

WORKER = Path(__file__).with_name("ddp_worker.py")
# Two processes with global batch B against one process with batch B, after 32 steps:
# measured max |difference| of any weight 3.0e-8, one float32 step (ulp) at the largest
# weight (0.26). The gradients are the same average summed in another order, so only
# rounding differs; 1e-6 is about 30 such steps and far below a real error (a wrong
# shard or a missing average moves weights by 1e-3 or more).
TOLERANCE = 1e-6


# --- the sharded loader (no processes needed) ---------------------------------------------


def loaders(n: int, batch: int, world: int, shuffle: bool = True):
    images, labels = torch.arange(n).float().view(n, 1, 1, 1), torch.arange(n)
    one = data.TensorLoader(images, labels, batch, shuffle=shuffle, seed=3)
    shards = [
        data.TensorLoader(images, labels, batch, shuffle=shuffle, seed=3, rank=r, world_size=world)
        for r in range(world)
    ]
    return one, shards


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n, batch, world", [(100, 10, 2), (103, 12, 3), (64, 64, 2)])
def test_shards_together_are_the_one_process_batches(n, batch, world, shuffle):
    one, shards = loaders(n, batch, world, shuffle)
    for _epoch in range(2):  # epochs differ, and every process draws the same order
        steps = list(zip(one, *shards, strict=False))
        assert len(steps) == len(one) == len(shards[0]) == len(shards[-1])
        for (_, labels), *parts in steps:
            sizes = {len(part[1]) for part in parts}
            assert len(sizes) == 1  # equal shares, so averaged gradients are the full mean
            together = torch.cat([part[1] for part in parts])
            assert torch.equal(together, labels[: len(together)])
            assert len(labels) - len(together) < world  # at most world - 1 left out


def test_a_last_batch_too_short_to_share_is_left_out():
    one, shards = loaders(21, 10, 2)  # batches 10, 10, 1: the 1 cannot be shared by two
    assert len(one) == 3 and len(shards[0]) == 2
    assert sum(len(labels) for _, labels in shards[0]) == 10


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"batch_size": 10, "world_size": 3}, "does not split evenly over 3"),
        ({"rank": 2, "world_size": 2}, "rank must be in 0..1"),
        ({"world_size": 0}, "world_size must be a positive integer"),
    ],
)
def test_bad_sharding_is_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        data.TensorLoader(torch.zeros(4, 1), torch.zeros(4), **kwargs)


# --- real processes on toy data (tests/ddp_worker.py) --------------------------------------


def run_worker(out: Path, nproc: int, *args: str, timeout: float = 120):
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:  # alone, without torchrun
        command = [sys.executable, str(WORKER)]
    else:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
        command = [sys.executable, *launcher, str(WORKER)]
    return subprocess.run(
        [*command, "--out", str(out), *args], env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The toy MLP trained by one process and by two (global batch 64, 2 epochs, 32 steps)."""
    root = tmp_path_factory.mktemp("ddp")
    for nproc in (1, 2):
        done = run_worker(root / f"n{nproc}", nproc)
        assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_both_processes_end_with_identical_weights(trained):
    rank0, rank1 = weights(trained / "n2/rank0.pt"), weights(trained / "n2/rank1.pt")
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)


def test_two_processes_match_one_process_with_the_same_global_batch(trained):
    one, two = weights(trained / "n1/rank0.pt"), weights(trained / "n2/rank0.pt")
    maxdiff = max((one[name] - two[name]).abs().max().item() for name in one)
    assert maxdiff < TOLERANCE, maxdiff
    # and the run learned something, so the comparison is not of two untouched networks
    start = torch.nn.Linear(784, 512).weight.abs().max().item()  # MLP's first layer at init
    assert maxdiff < 1e-3 * start


def test_every_process_reports_the_same_whole_epoch_numbers(trained):
    one = json.loads((trained / "n1/rank0.json").read_text())
    ranks = [json.loads((trained / f"n2/rank{r}.json").read_text()) for r in (0, 1)]
    assert one["steps"] == ranks[0]["steps"] == 16  # 1000 images, global batch 64
    assert one["images"] == 1000 and ranks[0]["images"] == ranks[1]["images"] == 500
    assert ranks[0]["history"] == ranks[1]["history"]  # summed over shards; test from rank 0
    for mine, theirs in zip(one["history"], ranks[0]["history"], strict=True):
        assert mine == pytest.approx(theirs, rel=1e-6)
    assert ranks[0]["history"][-1][3] > 0.9  # held-out accuracy after 2 epochs


def test_a_process_that_dies_stops_the_others(tmp_path):
    done = run_worker(tmp_path / "out", 2, "--fail-rank", "1", timeout=90)
    assert done.returncode != 0
    assert "deliberate failure on rank 1" in done.stderr
    assert not list((tmp_path / "out").iterdir())  # nobody finished or saved


# --- the command line -----------------------------------------------------------------------


def mnist_course(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_course", *args], env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def test_train_nproc_2_prints_once_and_saves_what_one_process_would(tiny_env, tmp_path):
    common = ["train", "--epochs", "2", "--batch-size", "4", "--no-progress"]
    two = mnist_course(tiny_env, *common, "--nproc", "2", "--save", str(tmp_path / "two.pt"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("epoch 2: test loss") == 1  # only rank 0 reports
    assert "on 2 processes (gloo)" in two.stdout
    assert "torchrun --standalone --nproc-per-node 2 -m mnist_course train" in two.stdout
    one = mnist_course(tiny_env, *common, "--save", str(tmp_path / "one.pt"))
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (torch.load(tmp_path / f, weights_only=True)["state_dict"] for f in ("one.pt", "two.pt"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < TOLERANCE


def test_a_failing_process_gives_one_clear_error_and_no_hang(tiny_env, tmp_path):
    raw = Path(tiny_env["MNIST_COURSE_DATA"]) / "MNIST" / "raw"
    with open(raw / data.MNIST_FILES[1].name, "ab") as labels:
        labels.write(b"x")  # one byte too many: process 0 refuses the file
    done = mnist_course(tiny_env, "train", "--nproc", "2")
    assert done.returncode == 1
    assert "is too long" in done.stderr and "failed first" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_named_before_anything_starts(tiny, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["train", "--nproc", "2", "--port", str(port), "--data-root", str(tiny)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"--port {port} is already in use" in err and "leave --port out" in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--nproc", "0"], "--nproc: must be at least 1, got 0"),
        (["--nproc", "two"], "--nproc: expected a whole number, got 'two'"),
        (["--nproc", "2", "--port", "80"], "--port: must be a port number in 1024..65535"),
    ],
)
def test_bad_nproc_and_port_are_usage_errors(argv, words, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", *argv])
    assert stopped.value.code == 2 and words in capsys.readouterr().err


def test_more_processes_than_cores_or_an_uneven_batch_is_refused(tiny, capsys, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert cli.main(["train", "--nproc", "3", "--device", "cpu", "--data-root", str(tiny)]) == 1
    assert "2 CPU core(s)" in capsys.readouterr().err
    assert cli.main(["train", "--nproc", "2", "--batch-size", "7", "--device", "cpu"]) == 1
    assert "does not split evenly over 2 processes" in capsys.readouterr().err


def test_without_options_drops_the_launch_options():
    argv = ["train", "--nproc", "2", "--model", "cnn", "--port=2900", "--epochs", "1"]
    kept = distributed.without_options(argv, ("--nproc", "--port"))
    assert kept == ["train", "--model", "cnn", "--epochs", "1"]


def test_nproc_on_an_apple_gpu_is_refused_before_anything_starts(tiny, capsys, monkeypatch):
    from mnist_course import runtime

    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("torchrun was started"))
    assert cli.main(["train", "--nproc", "2", "--device", "mps", "--data-root", str(tiny)]) == 1
    err = capsys.readouterr().err
    assert "MPS" in err and "use --device cpu" in err
