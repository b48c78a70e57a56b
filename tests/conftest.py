"""Fixtures shared by the unit tests."""

from browser import browser  # noqa: F401  (headless Chromium, or a skip)
from tiny_mnist import tiny  # noqa: F401  (a tiny valid MNIST in a temp folder)
