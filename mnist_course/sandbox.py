"""Run one learner notebook in a fresh kernel, in a process of its own, with limits (grading).

``mnist-course grade`` (:mod:`mnist_course.grade`) hands each notebook to
:func:`run_notebook`, which starts a worker process (``python -c ...
sandbox.worker()``) that runs the notebook with nbclient and sends back the
executed notebook. The worker and the kernel it starts get:

- a temporary home and working folder (a copy of the notebook's folder, its
  notebooks left out), deleted afterwards, and a small environment: ``PATH``,
  ``HOME``, ``MNIST_COURSE_DATA`` and ``MNIST_COURSE_DEVICE`` (cpu unless the
  teacher set one), nothing else of the teacher's;
- limits set by the worker on itself before any learner code runs, inherited by
  the kernel: memory (``RLIMIT_DATA``), CPU time (``RLIMIT_CPU``), file size
  (``RLIMIT_FSIZE``), no core files;
- with ``Limits.user``, another OS account (only root may switch): the learner's
  code then cannot read or write what that account cannot, e.g. the teacher's
  home. The network is not cut.

A notebook gets ``Limits.timeout`` seconds in all (nbclient stops the cell that
runs then); a worker that does not answer well after that is killed.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_course import WAIT_POLICY

SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git"}
WORKER = "from mnist_course import sandbox; sandbox.worker()"
GRACE = 60.0  # seconds past the timeout before the worker itself is killed


class SandboxError(Exception):
    """A set-up problem the teacher must fix; the message says what to do."""


@dataclass(frozen=True)
class Limits:
    """What one notebook may use: wall-clock seconds, memory (GiB), and whose account it runs as."""

    timeout: float = 300.0
    memory_gb: float = 4.0
    user: str | None = None  # None: the grader's own account
    trusted: bool = False  # the course's own notebooks (tests): may run as root
    threads: int | None = None  # OMP_NUM_THREADS for the kernel (None: PyTorch's default)
    cpu_limit: float | None = None  # CPU seconds per process (None: see cpu_seconds)

    @property
    def cpu_seconds(self) -> int:
        """CPU time for the kernel: the timeout on every core, plus a minute for start-up."""
        if self.cpu_limit is not None:
            return math.ceil(self.cpu_limit)
        return math.ceil(self.timeout * (os.cpu_count() or 1) + 60)


@dataclass
class Executed:
    """What came back: the executed notebook, the cells that finished, and why it stopped."""

    notebook: dict[str, Any]
    finished: set[int]
    timed_out: bool = False
    stopped: str | None = None  # why execution ended early otherwise (the kernel died, ...)


def account(user: str | None, trusted: bool = False) -> pwd.struct_passwd | None:
    """The account learners' code runs as (None: ours). Root must name one, unless the
    notebooks are ``trusted``; other accounts cannot switch."""
    if user is None:
        if os.geteuid() == 0 and not trusted:
            raise SandboxError(
                "grading as root would run every learner's code as root, able to read and "
                "change anything on this machine. Name an unprivileged account that can run "
                f"{sys.executable}: --user NAME (e.g. --user nobody, or a dedicated one made "
                "with `adduser --system --group --no-create-home mnist-grader`)."
            )
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SandboxError(f"--user {user}: there is no such OS account.") from None
    if entry.pw_uid == 0:
        raise SandboxError(f"--user {user}: that account is root; name an unprivileged one.")
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise SandboxError(
            f"--user {user}: only root can run code as another account; run without --user "
            "(the learners' code then runs as you), or as root."
        )
    return entry


def check_account(entry: pwd.struct_passwd | None) -> None:
    """Raise :class:`SandboxError` with the fix if ``entry`` cannot run this Python and package."""
    if entry is None:
        return
    probe = "import mnist_course.sandbox, nbclient, ipykernel"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
            cwd="/", env=_environment(Path("/")), **_as(entry),
        )  # fmt: skip
        problem = done.stderr.strip().splitlines()[-1:] if done.returncode else []
    except OSError as err:
        problem = [f"{type(err).__name__}: {err}"]
    if problem:
        raise SandboxError(
            f"the account {entry.pw_name} cannot run the course's Python ({sys.executable}): "
            f"{problem[0]}. Every folder up to the Python, the course and MNIST needs r-x for "
            "others (a Python under /root, e.g. pyenv's, is not). Grade with an environment "
            "built from a system Python, e.g. the hub's: "
            f"build/hub/venv/bin/mnist-course grade ... --user {entry.pw_name}."
        )


def _as(entry: pwd.struct_passwd | None) -> dict[str, Any]:
    if entry is None:
        return {}
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _environment(home: Path, threads: int | None = None) -> dict[str, str]:
    """The worker's whole environment: nothing of the teacher's but the course's settings."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "MNIST_COURSE_DEVICE": os.environ.get("MNIST_COURSE_DEVICE", "cpu"),
        "PYTHONDONTWRITEBYTECODE": "1",
        **WAIT_POLICY,  # idle OpenMP threads spin briefly: kernels side by side do not spin-wait
    }
    if threads is not None:  # notebooks graded side by side share the cores, not fight for them
        env["OMP_NUM_THREADS"] = str(threads)
    if os.environ.get("MNIST_COURSE_DATA"):
        env["MNIST_COURSE_DATA"] = str(Path(os.environ["MNIST_COURSE_DATA"]).absolute())
    return env


def _copy_folder(source: Path, target: Path) -> None:
    """Copy the notebook's folder (not its notebooks or checkpoints) to be the kernel's cwd."""
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.ipynb"), symlinks=True
    )


def _give(path: Path, entry: pwd.struct_passwd) -> None:
    """Hand ``path`` and everything under it to ``entry``."""
    for item in [path, *path.rglob("*")]:
        os.lchown(item, entry.pw_uid, entry.pw_gid)


def run_notebook(notebook: dict[str, Any], folder: Path, limits: Limits) -> Executed:
    """Execute ``notebook`` (errors allowed) in a worker process, as set out in the module doc.

    ``folder`` is copied to be the kernel's working folder. Raises
    :class:`SandboxError` for a set-up problem (no such account, ...).
    """
    entry = account(limits.user, limits.trusted)
    with tempfile.TemporaryDirectory(prefix="mnist-course-grade-") as tmp:
        top = Path(tmp)
        home, workdir = top / "home", top / "work"
        home.mkdir()
        _copy_folder(folder, workdir)
        if entry is not None:
            _give(top, entry)
        request = {
            "notebook": notebook,
            "workdir": str(workdir),
            "timeout": limits.timeout,
            "memory_bytes": int(limits.memory_gb * 2**30),
            "cpu_seconds": limits.cpu_seconds,
        }
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=workdir, env=_environment(home, limits.threads),
            start_new_session=True, umask=0o077, **_as(entry),
        )  # fmt: skip
        try:
            out, err = process.communicate(
                json.dumps(request).encode(), timeout=limits.timeout + GRACE
            )
        except subprocess.TimeoutExpired:
            _kill(process)
            return Executed(notebook, set(), timed_out=True, stopped="the grader stopped it")
    if process.returncode != 0 or not out:
        why = err.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
        code = process.returncode
        if code is not None and code < 0:
            why = [f"killed by {signal.Signals(-code).name}"]
        return Executed(notebook, set(), stopped=f"the grading worker failed: {why[0]}")
    answer = json.loads(out)
    return Executed(
        answer["notebook"], set(answer["finished"]), answer["timed_out"], answer["stopped"]
    )


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


# ---------------------------------------------------------------------------------------------
# The worker: runs in its own process, as the learner's account, with the limits set first
# ---------------------------------------------------------------------------------------------


def _limit(kind: int, value: int) -> None:
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else hard))


def worker() -> None:
    """Read a request on stdin, set the limits, run the notebook, answer on stdout (JSON)."""
    request = json.loads(sys.stdin.buffer.read())
    _limit(resource.RLIMIT_DATA, request["memory_bytes"])
    _limit(resource.RLIMIT_CPU, request["cpu_seconds"])
    _limit(resource.RLIMIT_FSIZE, 2**30)
    _limit(resource.RLIMIT_CORE, 0)
    import nbformat

    notebook = nbformat.from_dict(request["notebook"])
    finished, timed_out, stopped = execute(notebook, Path(request["workdir"]), request["timeout"])
    answer = {
        "notebook": notebook,
        "finished": sorted(finished),
        "timed_out": timed_out,
        "stopped": stopped,
    }
    sys.stdout.write(json.dumps(answer))


def execute(nb: Any, workdir: Path, timeout: float) -> tuple[set[int], bool, str | None]:
    """Execute ``nb`` in place (errors allowed) within ``timeout`` seconds in all.

    Returns the indices of the cells that finished, whether time ran out, and
    why execution stopped early otherwise (a dead kernel), or None.
    """
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    deadline = time.monotonic() + timeout
    finished: set[int] = set()

    def remaining(cell: Any = None) -> int:
        return max(1, math.ceil(deadline - time.monotonic()))

    client = NotebookClient(
        nb,
        kernel_name="python3",
        allow_errors=True,
        timeout=math.ceil(timeout),
        timeout_func=remaining,
        startup_timeout=120,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(workdir)}},
    )
    # nbclient has no "cell finished" hook that sees the index: record it on the way out.
    original = client.async_execute_cell

    async def execute_cell(cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= deadline:
            raise CellTimeoutError("the notebook's time is up")
        result = await original(cell, cell_index, *args, **kwargs)
        finished.add(cell_index)
        return result

    client.async_execute_cell = execute_cell  # type: ignore[method-assign]
    try:
        # The kernel's own streams go nowhere: what the learner's code writes to its file
        # descriptors never reaches the grader (only what the kernel sends as cell output).
        client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        return finished, True, None
    except Exception as err:  # nbclient may mask a dead kernel with an error of its cleanup
        if isinstance(err, DeadKernelError) or isinstance(err.__context__, DeadKernelError):
            return finished, False, "the kernel died"
        lines = [line for line in f"{type(err).__name__}: {err}".splitlines() if line.strip()]
        return finished, False, lines[0] if lines else "an error"
    finally:
        if client.km is not None and client.km.has_kernel:  # never leave a kernel behind
            run_sync(client.km.shutdown_kernel)(now=True)
    return finished, False, None
