"""Start JupyterLab (as `make lab` does) on a free loopback port with a token, for tests.

Its kernels are shut down through the REST API (:meth:`Lab.end_sessions`), and the server
itself with ``POST /api/shutdown`` (which shuts every kernel down first) when the test is done,
failed or not.
"""

from __future__ import annotations

import json
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

    def api(self, method: str, path: str) -> object:
        """Call JupyterLab's REST API with the token; the JSON answer (None when empty)."""
        request = urllib.request.Request(
            f"{self.base}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict]:
        """The kernels running now."""
        return self.api("GET", "/api/kernels")

    def end_sessions(self, path: str | None = None) -> None:
        """Shut down the sessions (of notebook ``path``, or all) with their kernels."""
        for session in self.api("GET", "/api/sessions"):
            if path is None or session["path"] == path:
                self.api("DELETE", f"/api/sessions/{session['id']}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def stop(lab: subprocess.Popen, running: Lab | None) -> None:
    """Ask the server to shut down (kernels first); signals only if it does not exit."""
    if running is not None:
        try:
            running.api("POST", "/api/shutdown")
        except OSError:
            pass  # the server stops its loop while answering: the answer may never come
        try:
            lab.wait(timeout=60)  # a safety net: it exits within seconds
            return
        except subprocess.TimeoutExpired:
            pass
    os.killpg(lab.pid, signal.SIGTERM)
    try:
        lab.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(lab.pid, signal.SIGKILL)
        lab.wait()


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
        running = None
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120  # a safety net: start-up takes seconds
            while not answers(f"{base}/api/status?token={token}"):
                if lab.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + log_path.read_text())
                time.sleep(0.2)  # poll interval while waiting for the server to answer
            running = Lab(base, token, log_path)
            yield running
        finally:
            if lab.poll() is None:
                stop(lab, running)
