"""Start JupyterLab (as `make lab` does) on a free loopback port with a token, for tests."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Lab:
    base: str
    token: str
    log: Path


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def make_lab(workdir: Path, lab_dir: Path | None = None, extra_args: str = "") -> Iterator[Lab]:
    """Run `make lab` with the environment running the tests; yield once it answers."""
    port, token = free_port(), secrets.token_hex(16)
    args = (
        f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} {extra_args}"
    )
    bin_dir = Path(sys.executable).parent
    # -o: take the installed environment running this test as set up (no venv is made).
    command = ["make", "-s", "-o", ".venv/.installed", "lab", f"BIN={bin_dir}", f"LAB_ARGS={args}"]
    if lab_dir is not None:
        command.append(f"LAB_DIR={lab_dir}")
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(workdir / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
    }
    log_path = workdir / "lab.log"
    with log_path.open("w") as log:
        lab = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=log, start_new_session=True, env=env
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while not answers(f"{base}/api/status?token={token}"):
                if lab.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + log_path.read_text())
                time.sleep(0.5)
            yield Lab(base, token, log_path)
        finally:
            if lab.poll() is None:
                os.killpg(lab.pid, signal.SIGTERM)
                try:
                    lab.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(lab.pid, signal.SIGKILL)
