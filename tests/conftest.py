"""Fixtures shared by the unit tests."""

import pytest
from browser import browser  # noqa: F401  (headless Chromium, or a skip; a failure in CI)
from tiny_mnist import tiny  # noqa: F401  (a tiny valid MNIST in a temp folder)


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path_factory):
    """Each test gets its own cache folder (the data's verified stamp goes there), not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
