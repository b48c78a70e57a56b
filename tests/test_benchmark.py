"""The benchmark scripts run (on tiny data: this checks the code, not the speed), and the
speed-up is computed when both pipelines reach the target."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from tiny_mnist import specs_json

ROOT = Path(__file__).resolve().parents[1]
HEADER = "| pipeline | target | epochs | wall s | s/epoch | final test acc | reached |"


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "time_to_accuracy", ROOT / "benchmarks" / "time_to_accuracy.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark()


def test_in_process_mode_prints_its_table(benchmark, tiny, capsys):
    assert benchmark.main(["--data-root", str(tiny), "--max-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert HEADER in out
    for name in ("notes MLP", "course MLP", "course CNN"):
        assert f"| {name} |" in out
    # tiny random data never reaches 98%: the branch that says so
    assert "speed-up to 98%: not measured" in out


def test_end_to_end_mode_runs_both_whole_processes(benchmark, tiny_env, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", tiny_env["PYTHONPATH"])  # the processes see the tiny files
    monkeypatch.setattr(benchmark, "course_command", lambda: [sys.executable, "-m", "mnist_course"])
    tiny = tiny_env["MNIST_COURSE_DATA"]
    assert (
        benchmark.main(["--mode", "end-to-end", "--data-root", str(tiny), "--max-epochs", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "notes_script.py" in out and " train --model mlp --epochs 3" in out
    assert "| notes script | 98% | 1 |" in out and "| mnist-course train | 98% | 3 |" in out


def test_processes_mode_alternates_and_stores_every_run(
    benchmark, tiny, capsys, monkeypatch, tmp_path
):
    specs = specs_json()
    commands = []

    def process(name, command, target):  # (the real 2-process run is tests/test_distributed.py's)
        commands.append(command)
        seconds = 20.0 if "--nproc" in command else 10.0 + len(commands)
        return benchmark.Result(name, target, 3, seconds, 0.991)

    monkeypatch.setattr(benchmark, "process", process)
    monkeypatch.setattr(benchmark, "course_command", lambda: ["mc", specs])
    monkeypatch.setattr(benchmark, "RESULTS", tmp_path / "processes.csv")
    argv = ["--mode", "processes", "--data-root", str(tiny), "--repeats", "3", "--write"]
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    many = ["--nproc" in c for c in commands]
    assert many == [False, True, True, False, False, True]  # alternated
    assert commands[1] == [*commands[0], "--nproc", "2"] and "cnn" in commands[0]
    # one process took 11, 14 and 15 s (median 14); two took 20 s each
    assert "| 1 | 3 | 14.0 | 11.0 | 15.0 |" in out and "| 2 | 3 | 20.0 | 20.0 | 20.0 |" in out
    assert "2 processes took 1.43x the median time of 1 process" in out
    with (tmp_path / "processes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["processes"] for r in rows] == ["1", "2", "2", "1", "1", "2"]
    assert set(rows[0]) == set(benchmark.PROCESS_FIELDS)
    assert not list(tmp_path.glob("*.partial"))


def fake(name: str, seconds: float, accuracy: float):
    def pipeline(*args, **kwargs):
        return sys.modules["time_to_accuracy"].Result(name, 0.98, 3, seconds, accuracy)

    return pipeline


def test_speed_up_is_reported_when_both_reach_the_target(benchmark, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "notes_pipeline", fake("notes MLP", 200.0, 0.9804))
    monkeypatch.setattr(benchmark, "course_pipeline", fake("course MLP", 8.0, 0.9833))
    assert benchmark.main([]) == 0
    out = capsys.readouterr().out
    assert "speed-up to 98%, course MLP over notes MLP: 25.0x" in out
    assert "| notes MLP | 98% | 3 | 200.0 | 66.7 | 98.04% | yes |" in out


def test_speed_up_of_whole_processes(benchmark, tmp_path, monkeypatch, capsys):
    slow = [sys.executable, "-c", "import time; time.sleep(1.0); print('accuracy: 98.5%')"]
    quick = [sys.executable, "-c", "print('epoch 1: test accuracy 98.10%')"]
    results = [benchmark.process("slow", slow, 0.98), benchmark.process("quick", quick, 0.98)]
    assert [r.reached for r in results] == [True, True]
    assert results[0].seconds >= 1.0  # the whole process is timed (its sleep included)
    line = benchmark.speed_up(*results)  # (no speed relation asserted: the machine may be busy)
    ratio = float(line.rsplit(": ", 1)[1].rstrip("x"))
    assert ratio == pytest.approx(results[0].seconds / results[1].seconds, rel=0.06)


def test_a_failing_process_is_an_error(benchmark):
    with pytest.raises(RuntimeError, match="printed no test accuracy"):
        benchmark.process("silent", [sys.executable, "-c", "pass"], 0.98)
    with pytest.raises(RuntimeError, match="failed"):
        benchmark.process("crash", [sys.executable, "-c", "raise SystemExit(3)"], 0.98)
