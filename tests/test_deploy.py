"""The class set-ups' files: the hub's config (deploy/jupyterhub/) and repo2docker's (binder/).

These run anywhere, without root: the config is loaded as JupyterHub loads it, with a stand-in
environment. tests/test_hub.py starts the real hub; the binder/ image is not built here.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import types
from pathlib import Path

import pytest
from common import normalize, pins
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def load(monkeypatch, hub_dir: Path, euid: int = 1000, **settings: str):
    """Load the config as `make hub` runs it, with only `settings` in the environment, as the
    user `euid` (an ordinary user unless told: the config asks os.geteuid())."""
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    for name in list(os.environ):
        if name.startswith("HUB_") or name.startswith("MNIST_COURSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_DIR", str(hub_dir))
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()


@pytest.fixture
def hub_dir(tmp_path) -> Path:
    """A stand-in for `make hub-install`'s result (the config checks the server command)."""
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "jupyterhub-singleuser").touch()
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    return tmp_path


def test_the_hub_listens_on_this_machine_only_unless_told(monkeypatch, hub_dir):
    c = load(monkeypatch, hub_dir, HUB_AUTH="shared-password", HUB_PASSWORD="x" * 12,
             HUB_USERS="ann bob")  # fmt: skip
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.Spawner.ip == "127.0.0.1"
    assert c.JupyterHub.cleanup_servers is True
    assert c.Spawner.default_url == "/lab"
    assert c.Spawner.cmd == [str(hub_dir / "venv" / "bin" / "jupyterhub-singleuser")]
    assert c.Authenticator.allowed_users == {"ann", "bob"}
    state = hub_dir / "state"
    assert c.JupyterHub.cookie_secret_file == str(state / "jupyterhub_cookie_secret")
    assert c.JupyterHub.db_url == f"sqlite:///{state / 'jupyterhub.sqlite'}"
    assert state.stat().st_mode & 0o777 == 0o700
    assert "services" not in c.JupyterHub  # no API token unless HUB_SERVICE_TOKEN is set
    assert "args" not in c.Spawner  # no --allow-root, no other flag for the students' servers


DEMO = {"HUB_AUTH": "shared-password", "HUB_PASSWORD": "x" * 12, "HUB_USERS": "ann"}


def test_the_shared_password_demo_refuses_to_run_as_root(monkeypatch, hub_dir):
    with pytest.raises(SystemExit) as stopped:
        load(monkeypatch, hub_dir, euid=0, **DEMO)
    message = str(stopped.value)
    assert "HUB_AUTH=shared-password refuses to run as root" in message
    assert "each student would get root on this machine" in message
    assert "Start the demo as an ordinary user" in message
    assert "run the default instead, HUB_AUTH=pam, as root: one OS user per student" in message
    assert not (hub_dir / "state").exists()  # refused before anything is written


@pytest.mark.parametrize("ip", ["0.0.0.0", "192.168.1.20", "::", "hub.example.org"])
def test_the_shared_password_demo_refuses_an_address_beyond_this_machine(monkeypatch, hub_dir, ip):
    with pytest.raises(SystemExit) as stopped:
        load(monkeypatch, hub_dir, HUB_IP=ip, **DEMO)
    message = str(stopped.value)
    assert f"HUB_AUTH=shared-password refuses HUB_IP={ip}" in message
    assert "Keep the demo on this machine (HUB_IP=127.0.0.1, the default)" in message
    assert "with TLS in front" in message


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_the_shared_password_demo_runs_on_loopback_as_an_ordinary_user(monkeypatch, hub_dir, ip):
    c = load(monkeypatch, hub_dir, HUB_IP=ip, **DEMO)
    assert c.JupyterHub.bind_url == f"http://{ip}:8000"
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.SimpleLocalProcessSpawner"
    assert "args" not in c.Spawner


def test_pam_with_one_os_user_per_student_is_the_default(monkeypatch, hub_dir):
    # A private folder on the way (pytest's tmp_path is one): the config stops and says why.
    with pytest.raises(SystemExit) as stopped:
        load(monkeypatch, hub_dir, HUB_USERS="ann", HUB_ADMIN="teacher")
    message = str(stopped.value)
    assert f"the students' accounts cannot reach {hub_dir / 'venv' / 'bin' / 'python'}" in message
    assert "is mode drwx------" in message  # pytest's folder: private to its owner
    assert "make hub HUB_DIR=/srv/mnist-course-hub" in message


@pytest.fixture
def public_hub_dir():
    """A hub environment every user can run: a real venv from /usr/bin/python3 (no pip) with
    stand-ins for the server command and the package, in a world-readable temporary folder."""
    hub_python = Path("/usr/bin/python3")
    if not hub_python.exists():
        pytest.skip("needs /usr/bin/python3 (the Makefile's HUB_PYTHON)")
    folder = Path(tempfile.mkdtemp(prefix="mnist-course-deploy-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        venv = folder / "venv"
        subprocess.run([hub_python, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
        (venv / "bin" / "jupyterhub-singleuser").write_text("#!/bin/sh\n")
        (venv / "bin" / "jupyterhub-singleuser").chmod(0o755)
        where = "import sysconfig; print(sysconfig.get_path('purelib'))"
        purelib = subprocess.run(
            [venv / "bin" / "python", "-c", where], capture_output=True, text=True, check=True
        ).stdout.strip()
        (Path(purelib) / "mnist_course").mkdir(parents=True)
        (Path(purelib) / "mnist_course" / "__init__.py").touch()
        yield folder
    finally:
        shutil.rmtree(folder)


def test_data_the_students_cannot_read_stops_the_hub_with_the_fix(
    monkeypatch, public_hub_dir, tmp_path
):
    private = tmp_path / "data"  # under pytest's folder, private to its owner
    (private / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(SystemExit) as stopped:
        load(monkeypatch, public_hub_dir, HUB_USERS="ann", MNIST_COURSE_DATA=str(private))
    message = str(stopped.value)
    assert f"cannot reach {private / 'MNIST' / 'raw'}" in message
    assert "set MNIST_COURSE_DATA to a copy every user can read" in message

    public = public_hub_dir / "data"
    (public / "MNIST" / "raw").mkdir(parents=True)
    (public / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 8)
    for path in [public, *public.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    c = load(monkeypatch, public_hub_dir, HUB_USERS="ann", MNIST_COURSE_DATA=str(public),
             MNIST_COURSE_DEVICE="cpu")  # fmt: skip
    assert c.Spawner.environment["MNIST_COURSE_DATA"] == str(public)
    assert c.Spawner.environment["MNIST_COURSE_DEVICE"] == "cpu"
    assert c.Spawner.environment["PATH"].startswith(f"{public_hub_dir / 'venv' / 'bin'}:")
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.LocalProcessSpawner"
    assert c.LocalAuthenticator.create_system_users is True

    # PAM may listen on the network (README: with TLS in front); as root it is refused nothing.
    public = load(monkeypatch, public_hub_dir, euid=0, HUB_USERS="ann", HUB_IP="0.0.0.0",
                  HUB_PORT="443", MNIST_COURSE_DATA=str(public))  # fmt: skip
    assert public.JupyterHub.bind_url == "http://0.0.0.0:443"
    assert public.Spawner.ip == "127.0.0.1"  # the students' servers stay behind the proxy


def test_shared_password_needs_a_password(monkeypatch, hub_dir):
    with pytest.raises(SystemExit, match="HUB_PASSWORD"):
        load(monkeypatch, hub_dir, HUB_AUTH="shared-password", HUB_USERS="ann")
    with pytest.raises(SystemExit, match="HUB_AUTH='ldap'"):
        load(monkeypatch, hub_dir, HUB_AUTH="ldap", HUB_USERS="ann")
    with pytest.raises(SystemExit, match="HUB_USERS"):
        load(monkeypatch, hub_dir, HUB_AUTH="shared-password", HUB_PASSWORD="x" * 12)


def test_each_start_of_a_students_server_hands_the_chapters_out(
    monkeypatch, hub_dir, tmp_path, caplog
):
    """The hook the hub runs before each server starts (shared-password: no change of user;
    tests/test_hub.py runs it as each student's OS user), with a stand-in for JupyterHub's
    spawner: it runs `python -m mnist_course.handout` from the hub's venv (here, this one)."""
    python = hub_dir / "venv" / "bin" / "python"
    python.unlink()
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)

    class SimpleLocalProcessSpawner:  # what the hook reads of JupyterHub's spawner
        home_dir = str(tmp_path / "homes" / "ann")
        user = types.SimpleNamespace(name="ann")
        log = logging.getLogger("test_deploy.spawner")

    module = types.ModuleType("jupyterhub.spawner")
    module.SimpleLocalProcessSpawner = SimpleLocalProcessSpawner
    monkeypatch.setitem(sys.modules, "jupyterhub", types.ModuleType("jupyterhub"))
    monkeypatch.setitem(sys.modules, "jupyterhub.spawner", module)
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    (chapters / "01_a.ipynb").write_text('{"v": 1}')
    (chapters / "glossary.md").write_text("# Glossary")
    (chapters / "ruff.toml").write_text("# the chapters' lint settings, not for students")
    c = load(monkeypatch, hub_dir, HUB_CHAPTERS=str(chapters), **DEMO)
    copy = tmp_path / "homes" / "ann" / "mnist-course"

    caplog.set_level(logging.INFO, logger="test_deploy.spawner")
    c.Spawner.pre_spawn_hook(SimpleLocalProcessSpawner())  # first login
    assert sorted(p.name for p in copy.iterdir()) == [
        ".mnist-course-handout.json",
        "01_a.ipynb",
        "glossary.md",
    ]
    (copy / "01_a.ipynb").write_text('{"v": 1, "mine": true}')
    (copy / "glossary.md").unlink()
    (chapters / "01_a.ipynb").write_text('{"v": 2}')
    c.Spawner.pre_spawn_hook(SimpleLocalProcessSpawner())  # the next login
    assert (copy / "01_a.ipynb").read_text() == '{"v": 1, "mine": true}'
    assert (copy / "01_a (new version).ipynb").read_text() == '{"v": 2}'
    assert (copy / "glossary.md").read_text() == "# Glossary"
    assert "Chapters for ann: restored: glossary.md" in caplog.messages
    assert (
        "Chapters for ann: kept your changes: 01_a.ipynb (the new version is "
        "01_a (new version).ipynb)" in caplog.messages
    )


def test_a_service_token_gets_only_what_the_tests_need(monkeypatch, hub_dir):
    c = load(monkeypatch, hub_dir, HUB_AUTH="shared-password", HUB_PASSWORD="x" * 12,
             HUB_USERS="ann", HUB_SERVICE_TOKEN="t" * 32)  # fmt: skip
    (role,) = c.JupyterHub.load_roles
    assert set(role["scopes"]) == {"admin:users", "admin:servers", "tokens", "access:servers"}
    assert c.JupyterHub.services == [{"name": "course-admin", "api_token": "t" * 32}]


# --- binder/ (repo2docker) ---------------------------------------------------------------------


def binder_requirements() -> tuple[list[str], dict[str, str]]:
    options, pinned = [], {}
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-"):
            options.append(line)
        elif line:
            name, _, version = line.partition("==")
            assert version, f"binder/requirements.txt: {line!r} is not an exact pin"
            pinned[normalize(name)] = version
    return options, pinned


def test_binder_installs_the_tested_pins_of_the_course_and_the_hub():
    options, pinned = binder_requirements()
    assert options == ["-c ../constraints.txt"]  # resolved next to the file, by pip
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    direct = [*project["dependencies"], *extras["lab"], *extras["hub"]]
    names = {normalize(Requirement(r).name) for r in direct} - {"mnist-course"}
    assert set(pinned) == names
    tested = pins()
    assert pinned == {name: tested[name] for name in names}
    assert pinned["torch"] == tested["torch"]


def test_binder_uses_a_supported_python_and_installs_the_package():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime)
    assert runtime.split("-")[1] + ".0" in SpecifierSet(PYPROJECT["project"]["requires-python"])
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111  # repo2docker runs it as a program
    assert "pip install --no-cache-dir --no-deps ." in post_build.read_text()


def test_the_makefile_builds_the_hub_from_a_python_every_user_can_run():
    makefile = (ROOT / "Makefile").read_text()
    assert "HUB_PYTHON ?= /usr/bin/python3" in makefile
    # non-editable (a wheel of the course), every package at its locked version and hash
    assert "pip wheel --quiet --no-deps --wheel-dir $(HUB_WHEELS) $(HUB_SOURCE)" in makefile
    assert "--require-hashes -c $(LOCK)" in makefile and "mnist-course[hub] @ file://" in makefile
    assert "configurable-http-proxy@$(HUB_CHP_VERSION)" in makefile
    assert re.search(r"^\.PHONY:.*\bhub hub-install\b", makefile.replace("\\\n\t", ""), re.M)
