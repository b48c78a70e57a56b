"""The benchmark script runs end to end (on tiny data: this checks the code, not the speed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "time_to_accuracy", ROOT / "benchmarks" / "time_to_accuracy.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_its_table(tiny, capsys):
    benchmark = load_benchmark()
    assert benchmark.main(["--data-root", str(tiny), "--max-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| pipeline | target | epochs | wall s | s/epoch | final test acc | reached |" in out
    for name in ("notes MLP", "course MLP", "course CNN"):
        assert f"| {name} |" in out
    assert "speed-up to 98%" in out
