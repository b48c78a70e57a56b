"""A class on one machine: `make hub` (deploy/jupyterhub/) serves the course to two students.

The test builds the hub's environment with `make hub-install` (once: later runs reuse it),
starts `make hub` on free loopback ports with PAM and one OS user per student (the hub creates
them; the test deletes them), and checks what a teacher relies on: each student gets a copy of
the chapters and runs them in the course's kernel, cannot read another student's files or
server, cannot change the originals or the shared MNIST folder, a student's work survives a
restart, a chapter the teacher changes reaches both students at their next start (kept beside
the edited copy of the student who changed it) or at once with `make hub-update`, a PAM
password logs in, nothing listens beyond 127.0.0.1, and stopping the hub stops everything it
started. A second hub checks the shared-password demo: refused as root, it runs as an OS user
the test creates, and every kernel runs as that user (README's warning). Timings here: the
first `make hub-install` about 2 minutes, then a hub up in 2-5 s and a student's server ready
in 4-9 s.

It needs root (the hub creates OS users and runs each student's server as that user) and npm
(the hub's proxy). Because it creates OS users and sets their passwords, it runs only when
asked: `MNIST_COURSE_TEST_HUB=1` (`.ci/run` sets it). Otherwise it skips with that reason,
and in CI (`CI` set) a skip fails instead (conftest.py), so CI cannot leave it out.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from common import free_port

from mnist_course import handout

ROOT = Path(__file__).resolve().parents[1]
HUB_PYTHON = Path("/usr/bin/python3")  # the Makefile's default HUB_PYTHON
USERS = ("mc-test-a", "mc-test-b")  # A is in HUB_USERS; B is added later through the API
DEMO_HUB_USER = "mc-test-hub"  # the ordinary OS user that runs the shared-password demo
CHAPTER = "01_cross_entropy_numpy.ipynb"
NEW_VERSION = "01_cross_entropy_numpy (new version).ipynb"  # beside a copy the student changed
COPY = "mnist-course"  # the students' copy of the chapters, in their homes

ASKED = os.environ.get("MNIST_COURSE_TEST_HUB", "").strip() not in ("", "0")

pytestmark = [
    pytest.mark.skipif(
        not ASKED,
        reason="creates OS users and sets passwords: runs only with MNIST_COURSE_TEST_HUB=1 "
        "(as .ci/run does)",
    ),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the hub recipe is for Linux"),
    pytest.mark.skipif(
        hasattr(os, "geteuid") and os.geteuid() != 0,
        reason="needs root: the hub creates an OS user per student and runs their servers as them",
    ),
    pytest.mark.skipif(
        shutil.which("npm") is None, reason="npm is not installed (the hub's proxy comes from npm)"
    ),
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
    pytest.mark.skipif(
        not HUB_PYTHON.exists()
        or not all(shutil.which(tool) for tool in ("adduser", "useradd", "userdel")),
        reason="needs /usr/bin/python3, adduser, useradd and userdel (Debian's python3, adduser, "
        "passwd)",
    ),
]

websocket = pytest.importorskip("websocket", reason="websocket-client is in the dev extra")


# --- Helpers -------------------------------------------------------------------------------


def api(base: str, method: str, path: str, token: str, body=None) -> tuple[int, object]:
    """One REST call with a token; returns (status, decoded JSON or None)."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError:  # not listening (yet)
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def run_code(base: str, name: str, token: str, kernel_id: str, code: str) -> str:
    """Execute `code` in a kernel over its websocket; return what it printed (raises on errors)."""
    url = f"ws{base[4:]}/user/{name}/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=180)
    try:
        msg_id, out = uuid.uuid4().hex, []
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": name,
                  "session": uuid.uuid4().hex, "version": "5.3"}  # fmt: skip
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}  # fmt: skip
        ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                            "content": content, "channel": "shell", "buffers": []}))  # fmt: skip
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(body["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(body["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                raise AssertionError(f"{body['ename']}: {body['evalue']}\n{''.join(out)}")
            elif kind == "status" and body["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()


def first_code_cells(notebook: Path, count: int) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][:count]


def listening(uids: set[int] | None = None, ports: set[int] | None = None) -> list[tuple]:
    """(address, port, uid) of the TCP sockets listening that belong to one of `uids` or are
    on one of `ports`, read from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].rsplit(":", 1)
            if fields[3] != "0A":  # LISTEN
                continue
            port, uid = int(port, 16), int(fields[7])
            if uid in (uids or ()) or port in (ports or ()):
                found.append((address, port, uid))
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1 (as tcp and tcp6)


def descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of `pid` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[19]
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in starts:
            found.add((p, starts[p]))
        todo += children.get(p, [])
    return found


def alive(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    left = set()
    for pid, start in processes:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == start and fields[0] != "Z":
            left.add((pid, start))
    return left


def processes_of(uids: set[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def remove_test_users(names=USERS) -> None:
    for name in names:
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        for pid in processes_of({uid}):  # only these test accounts' own processes
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["userdel", "-r", name], capture_output=True, timeout=60)
        subprocess.run(["groupdel", name], capture_output=True, timeout=60)


# --- The hub ---------------------------------------------------------------------------------


@dataclass
class Hub:
    base: str
    service_token: str = field(repr=False)  # kept out of failure output
    log: Path
    process: subprocess.Popen
    ports: set[int]
    state: Path
    data: Path
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    started: set[tuple[int, str]] = field(default_factory=set)

    def call(self, method: str, path: str, body=None, token: str | None = None):
        return api(self.base, method, path, token or self.service_token, body)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def user_token(self, name: str) -> str:
        body = {"expires_in": 3600, "note": "tests/test_hub.py"}
        status, made = self.call("POST", f"/hub/api/users/{name}/tokens", body)
        assert status == 201, f"a token for {name}: {status}"
        return made["token"]

    def start_server(self, *names: str) -> float:
        """Start the servers of `names` at once (the hub spawns them side by side); return the
        seconds until every one is ready."""
        began = time.monotonic()
        for name in names:
            status, _ = self.call("POST", f"/hub/api/users/{name}/server")
            assert status in (201, 202), f"starting {name}'s server: {status}\n{self.logs()}"
        waiting, deadline = set(names), time.monotonic() + 180
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                status, user = self.call("GET", f"/hub/api/users/{name}")
                if status == 200 and user["servers"].get("", {}).get("ready"):
                    waiting.discard(name)
            if waiting:
                time.sleep(0.5)
        assert not waiting, f"{sorted(waiting)}: server never became ready\n{self.logs()}"
        return time.monotonic() - began

    def stop_server(self, *names: str) -> None:
        """Stop the servers of `names` at once; return when none is left."""
        for name in names:
            status, _ = self.call("DELETE", f"/hub/api/users/{name}/server")
            assert status in (202, 204), status
        waiting, deadline = set(names), time.monotonic() + 60
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                status, user = self.call("GET", f"/hub/api/users/{name}")
                if status == 200 and "" not in user["servers"]:
                    waiting.discard(name)
            if waiting:
                time.sleep(0.5)
        assert not waiting, f"{sorted(waiting)}: server did not stop\n{self.logs()}"

    def stop(self) -> int | None:
        """Ctrl-C, as a teacher stops `make hub`; returns the exit code (None if it hung)."""
        if self.process.poll() is None:
            self.started |= descendants(self.process.pid)
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                return None
        return self.process.returncode


@pytest.fixture(scope="module")
def data_root(public_mnist) -> Path:
    """The shared MNIST folder students read (tests/public.py; stand-ins when there is none:
    only access to the folder is checked here)."""
    return public_mnist[0]


@contextmanager
def make_hub(
    hub_dir: Path,
    data: Path,
    state: Path,
    users: str,
    account: pwd.struct_passwd | None = None,
    config: Path | None = None,
    **settings: str,
):
    """Run `make hub` on free loopback ports (with a service token); yield once it answers.
    With `account`, run what `make hub` runs (jupyterhub -f CONFIG, the same settings) as that
    OS user instead, from `config`, a copy of the config it can read (a checkout may be private
    to root). On the way out: Ctrl-C, then anything it started that is still alive is killed."""
    port, api_port, proxy_port = free_port(), free_port(), free_port()
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "HUB_STATE_DIR": str(state),
        "HUB_API_PORT": str(api_port),
        "HUB_PROXY_API_PORT": str(proxy_port),
        "HUB_SERVICE_TOKEN": token,
        "MNIST_COURSE_DATA": str(data),
        **settings,
    }
    auth = settings.get("HUB_AUTH", "pam")
    command = ["make", "-s", "hub", f"HUB_DIR={hub_dir}", f"HUB_PORT={port}",
               f"HUB_USERS={users}", "HUB_ADMIN=", f"HUB_AUTH={auth}"]  # fmt: skip
    cwd, as_user = ROOT, {}
    if account is not None:
        assert config is not None, "a copy of the config that the account can read"
        command = [str(hub_dir / "venv" / "bin" / "jupyterhub"), "-f", str(config)]
        env = {name: value for name, value in env.items() if not name.startswith("XDG_")}
        env.update(HUB_DIR=str(hub_dir), HUB_IP="127.0.0.1", HUB_PORT=str(port), HUB_USERS=users,
                   HUB_ADMIN="", HUB_AUTH=auth, HOME=str(state))  # fmt: skip
        env.setdefault("HUB_CHAPTERS", str(ROOT / "notebooks"))
        cwd = state
        as_user = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    log = state.parent / f"{state.name}.log"
    began = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True, **as_user
        )
    running = Hub(f"http://127.0.0.1:{port}", token, log, process,
                  {port, api_port, proxy_port}, state, data)  # fmt: skip
    try:
        while running.call("GET", "/hub/api")[0] != 200:
            if process.poll() is not None or time.monotonic() - began > 120:
                raise AssertionError(f"the hub did not start:\n{running.logs()}")
            time.sleep(0.3)
        print(f"hub up: {time.monotonic() - began:.1f} s")
        yield running
    finally:
        running.stop()
        for pid, _ in alive(running.started):  # only what this hub started
            os.kill(pid, signal.SIGKILL)


def copy_chapters(folder: Path) -> Path:
    """A copy of notebooks/ every user can read (the test changes a chapter in it)."""
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns(".*"))
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture(scope="module")
def chapters(public_dir) -> Path:
    """HUB_CHAPTERS of the PAM hub."""
    return copy_chapters(public_dir / "chapters")


@pytest.fixture(scope="module")
def hub(hub_dir, data_root, chapters, tmp_path_factory):
    """PAM, the default: student A from HUB_USERS, B added through the API, both running."""
    remove_test_users()  # left by an interrupted earlier run
    state = tmp_path_factory.mktemp("hub-state")
    try:
        with make_hub(hub_dir, data_root, state, USERS[0], HUB_CHAPTERS=str(chapters)) as running:
            status, _ = running.call("POST", "/hub/api/users", {"usernames": [USERS[1]]})
            assert status == 201, f"adding {USERS[1]}: {status}\n{running.logs()}"
            for name in USERS:
                running.tokens[name] = running.user_token(name)
            print(f"both servers ready: {running.start_server(*USERS):.1f} s")
            yield running
    finally:
        remove_test_users()


def chapter_names() -> set[str]:
    """The top-level names each student gets: the chapters, the glossary and the folder of
    translated chapters (notebooks/zh), by mnist_course.handout's rules."""
    return {name.split("/")[0] for name in handout.read_folder(ROOT / "notebooks")}


def listing(hub: Hub, name: str) -> set[str]:
    """The names JupyterLab lists in the student's copy (hidden files are not listed)."""
    status, model = hub.call("GET", f"/user/{name}/api/contents/{COPY}", token=hub.tokens[name])
    assert status == 200, status
    return {item["name"] for item in model["content"]}


def cells(hub: Hub, name: str, notebook: str) -> list[str]:
    """The cells' sources of a notebook in the student's copy, read through their server."""
    path = f"/user/{name}/api/contents/{COPY}/{urllib.parse.quote(notebook)}"
    status, model = hub.call("GET", path, token=hub.tokens[name])
    assert status == 200, f"{path}: {status}"
    return ["".join(cell["source"]) for cell in model["content"]["cells"]]


# --- The tests -------------------------------------------------------------------------------


def test_each_student_gets_a_copy_of_the_chapters_that_survives_a_restart(hub, chapters):
    a, b = USERS
    original = (chapters / CHAPTER).read_bytes()
    for name in USERS:
        assert listing(hub, name) == chapter_names()
        home = Path(pwd.getpwnam(name).pw_dir)
        assert (home / COPY / CHAPTER).stat().st_uid == pwd.getpwnam(name).pw_uid

    # A edits a chapter and saves it: the original in the repository does not change.
    path = f"/user/{a}/api/contents/{COPY}/{CHAPTER}"
    status, model = hub.call("GET", path, token=hub.tokens[a])
    assert status == 200
    notebook = model["content"]
    notebook["cells"].append(
        {"cell_type": "markdown", "metadata": {}, "source": "my notes", "id": "mine"}
    )
    status, _ = hub.call(
        "PUT", path, {"type": "notebook", "content": notebook}, token=hub.tokens[a]
    )
    assert status == 200, status
    assert (chapters / CHAPTER).read_bytes() == original

    # A's server restarts (or the hub does): the copy is not replaced, the edit is still there.
    hub.stop_server(a)
    hub.start_server(a)
    status, model = hub.call("GET", path, token=hub.tokens[a])
    assert status == 200 and model["content"]["cells"][-1]["source"] == "my notes"
    status, other = hub.call("GET", f"/user/{b}/api/contents/{COPY}/{CHAPTER}", token=hub.tokens[b])
    assert status == 200 and other["content"]["cells"][-1]["source"] != "my notes"
    assert listing(hub, a) == chapter_names()  # nothing new to hand out: nothing beside it


def test_a_changed_chapter_reaches_each_student_at_their_next_start(hub, chapters):
    """The teacher fixes chapter 1 in HUB_CHAPTERS. At the next start of their servers, B (who
    never changed it) gets the new version; A keeps the edited copy and finds the new version
    beside it, written as A."""
    a, b = USERS
    if cells(hub, a, CHAPTER)[-1] != "my notes":  # A's edit (the test above makes it too)
        path = f"/user/{a}/api/contents/{COPY}/{CHAPTER}"
        notebook = hub.call("GET", path, token=hub.tokens[a])[1]["content"]
        notebook["cells"].append(
            {"cell_type": "markdown", "metadata": {}, "source": "my notes", "id": "mine"}
        )
        status, _ = hub.call(
            "PUT", path, {"type": "notebook", "content": notebook}, token=hub.tokens[a]
        )
        assert status == 200, status
    fixed = json.loads((chapters / CHAPTER).read_text())
    fixed["cells"].append(
        {"cell_type": "markdown", "id": "teacher-fix", "metadata": {}, "source": "A fix."}
    )
    (chapters / CHAPTER).write_text(json.dumps(fixed, indent=1) + "\n")

    hub.stop_server(*USERS)
    hub.start_server(*USERS)

    assert cells(hub, b, CHAPTER)[-1] == "A fix."
    b_home = Path(pwd.getpwnam(b).pw_dir)
    assert (b_home / COPY / CHAPTER).read_bytes() == (chapters / CHAPTER).read_bytes()
    assert listing(hub, b) == chapter_names()

    assert cells(hub, a, CHAPTER)[-1] == "my notes"
    assert cells(hub, a, NEW_VERSION)[-1] == "A fix."
    assert listing(hub, a) == chapter_names() | {NEW_VERSION}
    account = pwd.getpwnam(a)
    assert (Path(account.pw_dir) / COPY / NEW_VERSION).stat().st_uid == account.pw_uid
    assert f"Chapters for {a}: kept your changes: {CHAPTER}" in hub.log.read_text()


def test_make_hub_update_hands_a_change_out_at_once(hub, hub_dir, chapters):
    """`make hub-update` (as root): the same rules, as each student, while their servers run."""
    a, b = USERS
    glossary = chapters / "glossary.md"
    glossary.write_text(glossary.read_text() + "\nA new entry.\n")
    command = ["make", "-s", "hub-update", f"HUB_DIR={hub_dir}", f"HUB_CHAPTERS={chapters}"]
    done = subprocess.run([*command, f"HUB_USERS={a} {b}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{a}:",
        "updated: glossary.md",
        f"{b}:",
        "updated: glossary.md",
    ]
    for name in USERS:
        account = pwd.getpwnam(name)
        copy = Path(account.pw_dir) / COPY / "glossary.md"
        assert copy.read_bytes() == glossary.read_bytes()
        assert (copy.stat().st_uid, copy.stat().st_mode & 0o777) == (account.pw_uid, 0o600)
        status, user = hub.call("GET", f"/hub/api/users/{name}")
        assert status == 200 and user["servers"][""]["ready"]  # still running
    assert cells(hub, a, CHAPTER)[-1] == "my notes"

    done = subprocess.run([*command, "HUB_USERS=mc-test-nobody"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0
    assert "make: mc-test-nobody is not an OS user" in done.stderr


@pytest.fixture(scope="module")
def kernel_a(hub):
    a = USERS[0]
    status, session = hub.call(
        "POST",
        f"/user/{a}/api/sessions",
        {"path": f"{COPY}/{CHAPTER}", "type": "notebook", "kernel": {"name": "python3"}},
        token=hub.tokens[a],
    )
    assert status == 201, f"{status} {session}"
    return session["kernel"]["id"]


def test_a_student_runs_a_chapter_in_the_course_kernel(hub, kernel_a):
    a = USERS[0]
    cells = first_code_cells(ROOT / "notebooks" / CHAPTER, 2)
    began = time.monotonic()
    out = "".join(run_code(hub.base, a, hub.tokens[a], kernel_a, cell) for cell in cells)
    print(f"first two cells of {CHAPTER}: {time.monotonic() - began:.1f} s")
    assert "0.9729189131256584" in out
    who = run_code(hub.base, a, hub.tokens[a], kernel_a,
                   "import os, sys; print(os.getuid(), sys.prefix, os.getcwd())")  # fmt: skip
    uid, prefix, cwd = who.split()
    account = pwd.getpwnam(a)
    assert int(uid) == account.pw_uid  # the student's own OS user, not root
    assert Path(prefix).name == "venv" and Path(cwd) == Path(account.pw_dir) / COPY


PROBE = """
import os, pathlib
def probe(label, action):
    try:
        action()
        print(label, "allowed")
    except PermissionError:
        print(label, "PermissionError")
probe("other-home", lambda: os.listdir({other_home!r}))
probe("hub-state", lambda: os.listdir({state!r}))
raw = pathlib.Path(os.environ["MNIST_COURSE_DATA"], "MNIST", "raw")
probe("data-read", lambda: [f.open("rb").read(16) for f in raw.iterdir()])
probe("data-write", lambda: (raw / "mine").write_bytes(b"x"))
probe("data-root-write", lambda: (raw.parent.parent / "mine").write_bytes(b"x"))
print("data", os.environ["MNIST_COURSE_DATA"])
"""


def test_students_cannot_reach_each_other_and_data_is_shared_read_only(hub, kernel_a):
    a, b = USERS
    code = PROBE.format(other_home=pwd.getpwnam(b).pw_dir, state=str(hub.state))
    lines = dict(
        line.split(" ", 1)
        for line in run_code(hub.base, a, hub.tokens[a], kernel_a, code).split("\n")
        if line
    )
    assert lines == {
        "other-home": "PermissionError",
        "hub-state": "PermissionError",
        "data-read": "allowed",
        "data-write": "PermissionError",
        "data-root-write": "PermissionError",
        "data": str(hub.data),
    }
    # A's token opens neither B's server nor B's record on the hub. (The statuses are read
    # before the asserts: pytest would print a call's arguments, the token, on a failure.)
    b_files = hub.call("GET", f"/user/{b}/api/contents/{COPY}", token=hub.tokens[a])[0]
    b_record = hub.call("GET", f"/hub/api/users/{b}", token=hub.tokens[a])[0]
    a_record = hub.call("GET", f"/hub/api/users/{a}", token=hub.tokens[a])[0]
    assert b_files == 403
    assert b_record in (403, 404)
    assert a_record == 200


def log_in(base: str, name: str, password: str) -> int:
    """Log in with the hub's form, as a browser does: 302 (to the server) or 403."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    with opener.open(f"{base}/hub/login", timeout=30) as page:
        assert page.status == 200
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf})
    try:
        with opener.open(f"{base}/hub/login", data=form.encode(), timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_student_logs_in_with_the_os_password(hub):
    """PAM, the default: the OS account's password opens the hub (the teacher sets it)."""
    a = USERS[0]
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{a}:{password}", text=True, check=True, timeout=30)
    wrong, right = log_in(hub.base, a, "wrong-" + password), log_in(hub.base, a, password)
    assert (wrong, right) == (403, 302)  # read first: pytest would print the password


def test_nothing_listens_beyond_loopback(hub):
    uids = {pwd.getpwnam(name).pw_uid for name in USERS}
    sockets = listening(uids, hub.ports)
    assert {port for _, port, _ in sockets} >= hub.ports  # the hub, its API, the proxy's API
    assert len({port for _, port, uid in sockets if uid in uids}) >= 2  # the students' servers
    assert all(address in LOOPBACK for address, _, _ in sockets), sockets


def test_stopping_the_hub_stops_everything_it_started(hub):
    """Last: Ctrl-C stops the hub, the proxy, the students' servers and their kernels."""
    uids = {pwd.getpwnam(name).pw_uid for name in USERS}
    assert processes_of(uids), "the students' servers should be running before the stop"
    code = hub.stop()
    assert code is not None, f"the hub did not stop on Ctrl-C\n{hub.logs()}"
    deadline = time.monotonic() + 20
    while (alive(hub.started) or processes_of(uids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(hub.started), f"left running: {alive(hub.started)}\n{hub.logs()}"
    assert not processes_of(uids)
    assert not listening(ports=hub.ports)


def demo_hub_account() -> pwd.struct_passwd:
    """An ordinary OS user, with no home and no login shell, to run the demo hub."""
    remove_test_users([DEMO_HUB_USER])  # left by an interrupted earlier run
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", DEMO_HUB_USER],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return pwd.getpwnam(DEMO_HUB_USER)


def owned_folder(path: Path, account: pwd.struct_passwd) -> Path:
    path.mkdir(mode=0o755)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def test_the_shared_password_demo_refuses_root(hub_dir, public_dir):
    """As root, `make hub HUB_AUTH=shared-password` stops with the reason and the fix."""
    settings = {"HUB_AUTH": "shared-password", "HUB_PASSWORD": secrets.token_urlsafe(12),
                "HUB_STATE_DIR": str(public_dir / "refused-state")}  # fmt: skip
    done = subprocess.run(
        ["make", "-s", "hub", f"HUB_DIR={hub_dir}", "HUB_USERS=mc-demo", "HUB_AUTH=shared-password"],
        cwd=ROOT, env={**os.environ, **settings}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "HUB_AUTH=shared-password refuses to run as root" in done.stderr, done.stderr
    assert "Start the demo as an ordinary user" in done.stderr
    assert not (public_dir / "refused-state").exists()


def test_the_shared_password_demo_runs_every_student_as_the_hubs_own_user(
    hub_dir, data_root, public_dir
):
    """HUB_AUTH=shared-password, started by an ordinary OS user: anyone with the password logs
    in, no OS users are made, and every kernel runs as the hub's user: it can read the hub's
    secrets (README). Stopping it leaves nothing of that user running."""
    name, password = "mc-demo", secrets.token_urlsafe(12)
    account = demo_hub_account()
    try:
        state = owned_folder(public_dir / "demo-state", account)
        homes = owned_folder(public_dir / "demo-homes", account)
        config = public_dir / "deploy" / "jupyterhub" / "jupyterhub_config.py"
        config.parent.mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py", config)
        for path in (public_dir / "deploy", config.parent, config):
            path.chmod(0o755 if path.is_dir() else 0o644)
        chapters = copy_chapters(public_dir / "demo-chapters")
        settings = {"HUB_AUTH": "shared-password", "HUB_PASSWORD": password,
                    "HUB_HOMES": f"{homes}/{{username}}", "HUB_CHAPTERS": str(chapters)}  # fmt: skip
        with make_hub(hub_dir, data_root, state, name, account, config, **settings) as demo:
            wrong = log_in(demo.base, name, "wrong-" + password)
            right = log_in(demo.base, name, password)
            assert (wrong, right) == (403, 302)  # read first: pytest would print the password
            with pytest.raises(KeyError):
                pwd.getpwnam(name)
            token = demo.user_token(name)
            demo.start_server(name)
            copy = homes / name / COPY / CHAPTER
            assert copy.read_bytes() == (chapters / CHAPTER).read_bytes()
            assert copy.stat().st_uid == account.pw_uid
            status, session = demo.call(
                "POST", f"/user/{name}/api/sessions",
                {"path": f"{COPY}/{CHAPTER}", "type": "notebook", "kernel": {"name": "python3"}},
                token=token,
            )  # fmt: skip
            assert status == 201
            secret = state / "jupyterhub_cookie_secret"
            code = f"import os; print(os.getuid(), len(open({str(secret)!r}).read()) > 0)"
            out = run_code(demo.base, name, token, session["kernel"]["id"], code)
            assert out.split() == [str(account.pw_uid), "True"]
            assert processes_of({account.pw_uid})

            assert demo.stop() is not None, f"the hub did not stop on Ctrl-C\n{demo.logs()}"
            deadline = time.monotonic() + 20
            while alive(demo.started) or processes_of({account.pw_uid}):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert not alive(demo.started), f"left running: {alive(demo.started)}\n{demo.logs()}"
            assert not processes_of({account.pw_uid})
            assert not listening(ports=demo.ports)
    finally:
        remove_test_users([DEMO_HUB_USER])
