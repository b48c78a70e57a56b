"""Fixtures shared by the unit tests."""

import fcntl
import shutil
from pathlib import Path

import public
import pytest
from browser import browser  # noqa: F401  (headless Chromium, or a skip; a failure in CI)
from tiny_mnist import tiny, tiny_env  # noqa: F401  (a tiny valid MNIST; processes that see it)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path_factory):
    """Each test gets its own cache folder (the data's verified stamp goes there), not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def public_dir():
    """A temporary folder every user can enter, for the whole run (tests/public.py)."""
    folder = public.make_public_dir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_dir(public_dir) -> Path:
    """The hub's environment, built once per run (`make hub-install`; tests/public.py). One
    build at a time: with several pytest processes (pytest-xdist), the first builds and the
    others wait, then find it made."""
    (ROOT / "build").mkdir(exist_ok=True)
    with (ROOT / "build" / "hub-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            return public.build_hub(public_dir)
        except RuntimeError as err:
            pytest.fail(str(err))


@pytest.fixture(scope="session")
def public_mnist(public_dir) -> tuple[Path, bool]:
    """An MNIST root other users can read, and whether it is the real MNIST."""
    return public.public_data(public_dir)
