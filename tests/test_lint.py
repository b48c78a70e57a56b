"""ruff lints and checks the formatting of the package, the tests and the notebooks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
TARGETS = ["mnist_course", "tests", "notebooks", "benchmarks", "deploy", "conftest.py"]


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize("command", [["check"], ["format", "--check", "--diff"]])
def test_ruff(command):
    targets = [t for t in TARGETS if (ROOT / t).exists()]
    result = subprocess.run([RUFF, *command, *targets], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
