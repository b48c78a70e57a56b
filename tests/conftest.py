"""Fixtures shared by the unit tests."""

from tiny_mnist import tiny  # noqa: F401  (the fixture, for every test file)
