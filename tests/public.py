"""What other OS accounts can reach: the hub's students, the grader's unprivileged account.

Shared by tests/test_hub.py and tests/test_journey.py through the session fixtures in
tests/conftest.py (`public_dir`, `hub_dir`, `public_data`), so the hub's environment is
built once per run.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def reachable(path: Path) -> bool:
    """Whether users other than root can enter `path` (o+x on it and on every parent)."""
    path = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def make_public_dir() -> Path:
    """A new temporary folder every user can enter (pytest's tmp_path is private to root)."""
    base = next(
        (Path(d) for d in (tempfile.gettempdir(), "/tmp", "/var/tmp") if reachable(Path(d))),
        None,
    )
    if base is None:
        raise RuntimeError("no temporary folder that other users can enter (/tmp, /var/tmp)")
    folder = Path(tempfile.mkdtemp(prefix="mnist-course-public-", dir=base))
    folder.chmod(0o755)
    return folder


def build_hub(public: Path) -> Path:
    """`make hub-install`: build/hub when other users can reach this checkout (kept: later
    runs reuse it), else a folder under `public` (a checkout may sit in a private folder)."""
    folder = ROOT / "build" / "hub" if reachable(ROOT) else public / "hub"
    began = time.monotonic()
    done = subprocess.run(
        ["make", "-s", "hub-install", f"HUB_DIR={folder}"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"make hub-install failed:\n{done.stdout}\n{done.stderr}")
    print(f"\nmake hub-install: {time.monotonic() - began:.1f} s ({folder})")
    return folder


def public_data(public: Path) -> tuple[Path, bool]:
    """(an MNIST root other users can read, whether it holds the real MNIST).

    $MNIST_COURSE_DATA when others can read it, else a copy under `public`; with no MNIST
    here, two small stand-in files (enough to check access to the folder)."""
    given = os.environ.get("MNIST_COURSE_DATA", "")
    raw = Path(given) / "MNIST" / "raw" if given else None
    if raw is not None and raw.is_dir() and reachable(raw):
        return Path(given), True
    copy = public / "data" / "MNIST" / "raw"
    real = raw is not None and raw.is_dir()
    if real:
        shutil.copytree(raw, copy)
    else:
        copy.mkdir(parents=True)
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            (copy / name).write_bytes(b"\0\0\x08\x03" + bytes(12))
    for path in [public / "data", *(public / "data").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return public / "data", real
