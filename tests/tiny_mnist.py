"""A tiny but valid MNIST built in a temp folder: helpers and the `tiny` fixture."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest
import torch

from mnist_course import data

TRAIN, TEST = 12, 5


def idx_bytes(spec: data.RawFile, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    if spec.magic == data.IMAGE_MAGIC:
        header = [spec.magic, spec.count, 28, 28]
        body = torch.randint(0, 256, (spec.count * 784,), generator=g, dtype=torch.uint8)
    else:
        header = [spec.magic, spec.count]
        body = torch.arange(spec.count, dtype=torch.uint8) % 10
    return b"".join(h.to_bytes(4, "big") for h in header) + body.numpy().tobytes()


@pytest.fixture
def tiny(monkeypatch, tmp_path) -> Path:
    """A data root holding a tiny but valid MNIST; data.MNIST_FILES describes it."""
    specs, folder = [], tmp_path / "root" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for name, magic, count in [
        ("train-images-idx3-ubyte", data.IMAGE_MAGIC, TRAIN),
        ("train-labels-idx1-ubyte", data.LABEL_MAGIC, TRAIN),
        ("t10k-images-idx3-ubyte", data.IMAGE_MAGIC, TEST),
        ("t10k-labels-idx1-ubyte", data.LABEL_MAGIC, TEST),
    ]:
        content = idx_bytes(data.RawFile(name, magic, count, ""))
        (folder / name).write_bytes(content)
        specs.append(data.RawFile(name, magic, count, hashlib.md5(content).hexdigest()))
    monkeypatch.setattr(data, "MNIST_FILES", tuple(specs))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    return tmp_path / "root"


def specs_json() -> str:
    """The tiny files' descriptions (name, magic, count, md5), for another process."""
    return json.dumps([[f.name, f.magic, f.count, f.md5] for f in data.MNIST_FILES])


@pytest.fixture
def tiny_env(tiny, tmp_path) -> dict[str, str]:
    """An environment whose Python processes (torchrun's workers too) see the tiny MNIST as the
    real one: a `sitecustomize.py` on PYTHONPATH gives them `data.MNIST_FILES`."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(f"""
        import json
        from mnist_course import data
        data.MNIST_FILES = tuple(data.RawFile(*spec) for spec in json.loads({specs_json()!r}))
        """)
    )
    return {
        **os.environ, "PYTHONPATH": str(site), "MNIST_COURSE_DEVICE": "cpu",
        "XDG_CACHE_HOME": str(tmp_path / "cache"), "MNIST_COURSE_DATA": str(tiny),
    }  # fmt: skip
