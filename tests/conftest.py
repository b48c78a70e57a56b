"""Fixtures shared by the unit tests."""

import fcntl
import shutil
import threading
from pathlib import Path

import public
import pytest
from browser import browser  # noqa: F401  (headless Chromium, or a skip; a failure in CI)
from tiny_mnist import tiny, tiny_env  # noqa: F401  (a tiny valid MNIST; processes that see it)

from mnist_course import i18n

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def chinese():
    """Feedback in Chinese for one test, English again afterwards (whatever the test does)."""
    i18n.set_language("zh")
    try:
        yield
    finally:
        i18n.set_language("en")


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path_factory):
    """Each test gets its own cache folder (the data's verified stamp goes there), not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


PUBLIC_DIR = pytest.StashKey[Path]()
HUB_BUILD = pytest.StashKey["HubBuild"]()


def build_hub_once(public_dir: Path) -> Path:
    """`make hub-install` (tests/public.py), one build at a time: with several pytest
    processes (pytest-xdist), the first builds and the others wait, then find it made."""
    (ROOT / "build").mkdir(exist_ok=True)
    with (ROOT / "build" / "hub-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return public.build_hub(public_dir)


class HubBuild:
    """The hub's environment, built in a thread while the tests before the hub's run."""

    def __init__(self, public_dir: Path) -> None:
        self.folder: Path | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self.build, args=(public_dir,), daemon=True)
        self.thread.start()

    def build(self, public_dir: Path) -> None:
        try:
            self.folder = build_hub_once(public_dir)
        except RuntimeError as err:
            self.error = str(err)

    def result(self) -> Path:
        """Wait for the build; its folder, or the test fails with make's output."""
        self.thread.join()
        if self.folder is None:
            pytest.fail(self.error or "make hub-install stopped")
        return self.folder


def needs_the_hub(item: pytest.Item) -> bool:
    """Whether `item` uses the hub's environment and no skipif mark of it holds."""
    skipped = any(mark.args and mark.args[0] is True for mark in item.iter_markers("skipif"))
    return "hub_dir" in getattr(item, "fixturenames", ()) and not skipped  # (nbval cells have none)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the hub's environment (minutes: a venv of about 6 GB) as soon as the
    tests are collected, when one of them will use it; `hub_dir` waits for it."""
    if session.config.option.collectonly:
        return
    if any(needs_the_hub(item) for item in session.items):
        folder = public.make_public_dir()
        session.config.stash[PUBLIC_DIR] = folder
        session.config.stash[HUB_BUILD] = HubBuild(folder)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Nothing left running: a run that stops before the hub's tests waits for the build."""
    build = session.config.stash.get(HUB_BUILD, None)
    if build is not None:
        build.thread.join()
        shutil.rmtree(session.config.stash[PUBLIC_DIR], ignore_errors=True)


@pytest.fixture(scope="session")
def public_dir(pytestconfig):
    """A temporary folder every user can enter, for the whole run (tests/public.py)."""
    folder = pytestconfig.stash.get(PUBLIC_DIR, None) or public.make_public_dir()
    yield folder
    build = pytestconfig.stash.get(HUB_BUILD, None)
    if build is not None:
        build.thread.join()  # it may be writing there (a checkout other users cannot reach)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_dir(pytestconfig, public_dir) -> Path:
    """The hub's environment, built once per run (`make hub-install`; tests/public.py): by the
    build started after collection, or now."""
    build = pytestconfig.stash.get(HUB_BUILD, None)
    if build is not None:
        return build.result()
    try:
        return build_hub_once(public_dir)
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def public_mnist(public_dir) -> tuple[Path, bool]:
    """An MNIST root other users can read, and whether it is the real MNIST."""
    return public.public_data(public_dir)
