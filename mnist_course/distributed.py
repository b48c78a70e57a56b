"""Training on several processes with DistributedDataParallel (chapter 7).

``mnist-course train --nproc N`` calls :func:`launch`, which starts N copies of
the same command with ``torchrun`` (PyTorch's launcher). Each copy finds out
who it is from the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ...),
joins the group with :func:`setup` (gloo on the CPU, nccl on CUDA GPUs), and
trains its own share of every batch (``data.TensorLoader(rank=, world_size=)``).
DistributedDataParallel averages the gradients of all processes after every
``backward()``, so every process takes the same step and the weights stay
identical. Only rank 0 shows progress, evaluates and saves.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mnist_course import runtime

# The variables torchrun sets in every process it starts.
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Process:
    """Who this process is in the group, and where it computes."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str


def under_torchrun() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def setup(device: torch.device) -> Process:
    """Join the process group torchrun prepared; returns this process's place in it.

    On CUDA each process takes the GPU numbered by its ``LOCAL_RANK`` and the
    group talks over nccl; on the CPU over gloo. Other devices are refused.
    """
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"process {local_rank} needs cuda:{local_rank}, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s): start at most that many processes"
            )
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise RuntimeError(
            f"training on several processes works on the CPU (gloo) or CUDA GPUs (nccl), "
            f"not on {device.type}: use --device cpu"
        )
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return Process(rank, world_size, local_rank, device, backend)


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is one of several training together."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when training alone)."""
    return dist.get_rank() if active() else 0


def _on_backend(values: Sequence[float]) -> torch.Tensor:
    """``values`` as a float64 tensor where the backend can send it (nccl: the GPU)."""
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    return torch.tensor(list(values), dtype=torch.float64, device=device)


def sum_over_processes(values: Sequence[float]) -> list[float]:
    """Each value summed over all processes (unchanged when training alone).

    Training loss and accuracy are measured on each process's shard; their
    sums (loss x count, correct, count) add up to the one-process numbers.
    """
    if not active():
        return list(values)
    tensor = _on_backend(values)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def share_from_rank_0(values: Sequence[float]) -> list[float]:
    """Rank 0's values, on every process (unchanged when training alone)."""
    if not active():
        return list(values)
    tensor = _on_backend(values)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def check_nproc(nproc: int, device: str | None) -> None:
    """Refuse a number of processes this machine cannot run, saying what it can."""
    kind = runtime.get_device(device).type
    if kind == "mps":
        raise ValueError(
            f"--nproc {nproc}: several processes cannot share an Apple GPU (MPS has no "
            "backend for torch.distributed); use --device cpu (gloo), or leave --nproc out"
        )
    if kind == "cuda":
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise ValueError(
                f"--nproc {nproc}: this machine has {gpus} CUDA device(s); use --nproc {gpus} "
                f"or fewer (one process per GPU), or --device cpu"
            )
    else:
        cores = os.cpu_count() or 1
        if nproc > cores:
            raise ValueError(
                f"--nproc {nproc}: this machine has {cores} CPU core(s), and more processes "
                f"than cores only compete for them; use --nproc {cores} or fewer"
            )


def check_port(port: int) -> None:
    """Fail clearly, before anything starts, when the rendezvous port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise ValueError(
                f"--port {port} is already in use ({err.strerror}): choose another port, "
                f"or leave --port out and a free one is picked"
            ) from None


def torchrun_args(nproc: int, argv: Sequence[str], port: int | None = None) -> list[str]:
    """torchrun's arguments for running ``mnist-course <argv>`` on ``nproc`` processes."""
    where = (
        ["--standalone"]  # one machine, a free port picked by torchrun
        if port is None
        else ["--nnodes", "1", "--master-addr", "127.0.0.1", "--master-port", str(port)]
    )
    return [*where, "--nproc-per-node", str(nproc), "-m", "mnist_course", *argv]


def without_options(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """``argv`` less the options ``names`` and their values (``--name V`` or ``--name=V``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in names)):
            kept.append(arg)
    return kept


def launch(nproc: int, argv: Sequence[str], port: int | None = None) -> int:
    """Run ``mnist-course <argv>`` on ``nproc`` processes, as torchrun would; returns 0 or 1.

    The launcher is torchrun's own (``torch.distributed.run``), run in this
    process. Each worker gets ``OMP_NUM_THREADS`` = cores // nproc, so the
    processes share the CPU instead of fighting over it. When a process fails,
    torchrun stops the others (none is left waiting for a dead peer) and this
    returns 1 after one line naming the process that failed first.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if port is not None:
        check_port(port)
    # (the copies must not launch again; torchrun would also misread --nproc as its own option)
    args = torchrun_args(nproc, without_options(argv, ("--nproc", "--port")), port)
    print(f"starting {nproc} processes: torchrun {' '.join(args)}", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        run(get_args_parser().parse_args(args))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        print(
            f"mnist-course: error: process {rank} of {nproc} failed first (exit code "
            f"{failure.exitcode}) and torchrun stopped the others; its error is printed above",
            file=sys.stderr,
        )
        return 1
    return 0
