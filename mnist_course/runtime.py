"""Seeds and devices: what makes a run repeatable (chapter 0, used by every chapter)."""

from __future__ import annotations

import os
import random

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


def get_device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name``, else ``$MNIST_COURSE_DEVICE``, else the best one found.

    ``"auto"`` (the default) picks cuda, then mps, then cpu. A device that is
    asked for by name but is not available is an error, not a silent fallback.
    """
    name = (name or os.environ.get(DEVICE_ENV_VAR) or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
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
