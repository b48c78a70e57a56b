"""Seeds and devices: what makes a run repeatable (chapter 0, used by every chapter)."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

DEVICE_ENV_VAR = "MNIST_COURSE_DEVICE"
_DEVICE_KINDS = ("cpu", "cuda", "mps")


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every GPU) with ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(int(seed))
    np.random.seed(int(seed))  # noqa: NPY002  (the global generator learners use)
    torch.manual_seed(int(seed))


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def _arch_number(arch: str) -> int:
    """``"sm_86"`` -> 86, ``"compute_90a"`` -> 90."""
    return int("".join(ch for ch in arch.split("_", 1)[1] if ch.isdigit()))


def cuda_unsupported() -> str | None:
    """Why the first GPU cannot run this build of PyTorch, or None when it can.

    A build carries kernels for some GPU generations (``torch.cuda.get_arch_list()``):
    binary code (``sm_XY``) runs on that generation's later models (same major, minor >= Y),
    and PTX (``compute_XY``) is compiled for any newer GPU. An older GPU gets neither.
    """
    try:
        archs = torch.cuda.get_arch_list()
        major, minor = torch.cuda.get_device_capability(0)
    except (RuntimeError, AssertionError):
        return None  # nothing known: let CUDA decide
    if not archs:
        return None
    capability = 10 * major + minor
    for arch in archs:
        number = _arch_number(arch)
        if arch.startswith("compute_") and capability >= number:
            return None
        if arch.startswith("sm_") and number // 10 == major and number <= capability:
            return None
    return (
        f"the GPU {torch.cuda.get_device_name(0)} (compute capability {major}.{minor}) is "
        f"older than this PyTorch build supports ({' '.join(archs)}); install a PyTorch "
        "build for it, or ask for --device cuda to try anyway"
    )


def get_device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name``, else ``$MNIST_COURSE_DEVICE``, else the best one found.

    ``"auto"`` (the default) picks cuda, then mps, then cpu; a GPU this PyTorch build has
    no code for is passed over, with one line saying why (:func:`cuda_unsupported`). A
    device that is asked for by name but is not available is an error, not a fallback.
    """
    name = (name or os.environ.get(DEVICE_ENV_VAR) or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            reason = cuda_unsupported()
            if reason is None:
                return torch.device("cuda")
            print(f"mnist_course: using the CPU: {reason}.", file=sys.stderr)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in _DEVICE_KINDS or (index and not index.isdigit()):
        raise ValueError(
            f"Unknown device {name!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' "
            f"(argument or ${DEVICE_ENV_VAR})."
        )
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if not available[kind]:
        raise RuntimeError(
            f"Device {name!r} was asked for but is not available on this machine; "
            f"use 'auto' or 'cpu' instead (argument or ${DEVICE_ENV_VAR})."
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise RuntimeError(
            f"Device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)."
        )
    return torch.device(name)
