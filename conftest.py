"""Make nbval's sanitize file work from any working directory (it opens the path as given)."""

from pathlib import Path


def pytest_configure(config):
    option = getattr(config.option, "nbval_sanitize_with", None)
    if option and not Path(option).is_absolute():
        config.option.nbval_sanitize_with = str(config.rootpath / option)
