"""mnist_course.runtime: seeds and device choice."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from mnist_course import runtime

GENERATORS = {
    "random": random.random,
    "numpy": lambda: float(np.random.rand()),  # noqa: NPY002  (the global generator)
    "torch": lambda: torch.rand(1).item(),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_set_seed_makes_each_generator_repeat(name):
    draw = GENERATORS[name]
    runtime.set_seed(7)
    first = [draw() for _ in range(3)]
    draw()  # move the generator on: only set_seed can bring it back
    runtime.set_seed(7)
    assert [draw() for _ in range(3)] == first, f"set_seed does not seed {name}"
    runtime.set_seed(8)
    assert [draw() for _ in range(3)] != first


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_set_seed_rejects_non_integers(seed):
    with pytest.raises(TypeError, match="seed must be an integer"):
        runtime.set_seed(seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_set_seed_rejects_out_of_range(seed):
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
        runtime.set_seed(seed)


def test_numpy_integer_seed_is_fine():
    runtime.set_seed(np.int64(3))


def test_get_device_choice(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV_VAR, raising=False)
    assert runtime.get_device("cpu") == torch.device("cpu")
    assert runtime.get_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device() == torch.device("cpu")
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.get_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device() == torch.device("cuda")


def test_env_var_overrides_auto(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "cpu")
    assert runtime.get_device() == torch.device("cpu")
    assert runtime.get_device("cuda") == torch.device("cuda")  # the argument wins


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "cpu:0:1"])
def test_unknown_device_names_the_choices(name):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        runtime.get_device(name)


def test_unavailable_device_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    for name in ("cuda", "cuda:0", "mps"):
        with pytest.raises(RuntimeError, match="not available"):
            runtime.get_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match="1 GPU"):
        runtime.get_device("cuda:3")


def test_importing_the_package_before_torch_sets_a_short_spin():
    """OpenMP reads GOMP_SPINCOUNT when torch loads: the package sets it first (no override)."""
    import subprocess
    import sys

    code = "import os, mnist_course, torch; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "1000", done.stderr
    env["GOMP_SPINCOUNT"] = "INFINITY"  # a user's own choice stays
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "INFINITY", done.stderr


def test_every_way_a_kernel_starts_sets_the_same_wait_policy():
    from pathlib import Path

    from mnist_course import WAIT_POLICY, sandbox

    root = Path(__file__).resolve().parents[1]
    assert WAIT_POLICY == {"GOMP_SPINCOUNT": "1000"}
    assert sandbox._environment(Path("/nonexistent"))["GOMP_SPINCOUNT"] == "1000"
    assert "export GOMP_SPINCOUNT ?= 1000" in (root / "Makefile").read_text()
    hub = (root / "deploy" / "jupyterhub" / "jupyterhub_config.py").read_text()
    assert '"GOMP_SPINCOUNT": "1000"' in hub
    assert "OMP_WAIT_POLICY" not in hub + (root / "Makefile").read_text()


@pytest.mark.parametrize(
    ("capability", "archs", "usable"),
    [
        ((9, 0), ["sm_80", "sm_90", "sm_100", "compute_120"], True),
        ((8, 6), ["sm_80", "sm_90"], True),  # sm_80 code runs on later 8.x GPUs
        ((12, 1), ["sm_90", "compute_120"], True),  # PTX compiles for newer GPUs
        ((6, 1), ["sm_75", "sm_80", "sm_90", "compute_90"], False),  # too old
        ((7, 0), ["sm_75", "sm_80", "sm_90a"], False),
    ],
)
def test_auto_passes_over_a_gpu_the_build_has_no_code_for(
    monkeypatch, capsys, capability, archs, usable
):
    monkeypatch.delenv("MNIST_COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: archs)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Old GPU")
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device().type == ("cuda" if usable else "cpu")
    err = capsys.readouterr().err
    if usable:
        assert err == ""
    else:
        assert err.count("\n") == 1 and "using the CPU" in err and "Old GPU" in err
