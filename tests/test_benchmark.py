"""The benchmark scripts run (on tiny data: this checks the code, not the speed), and the
speed-up is computed when both pipelines reach the target."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from tiny_mnist import specs_json

ROOT = Path(__file__).resolve().parents[1]
HEADER = "| pipeline | target | runs | epochs | median s | min s | max s | load before (max) |"


def load_benchmark(name: str = "time_to_accuracy"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
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
    # one run each: the notes' pipeline stops at --max-epochs 1, the course's plan 3 epochs
    for name, target, epochs in (
        ("notes MLP", 98, 1),
        ("course MLP", 98, 3),
        ("course CNN", 99, 3),
    ):
        assert f"| {name} | {target}% | 1 | {epochs} |" in out
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
    assert "| notes script | 98% | 1 | 1 |" in out and "| mnist-course train | 98% | 1 | 3 |" in out


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


def fakes(seconds: dict[str, list[float]], order: list[str], accuracy: float = 0.9804):
    """Pipelines that take the given seconds, run after run, and note the order they ran in."""

    def pipeline(name: str):
        def run(*args, **kwargs):
            order.append(name)
            target = 0.99 if "CNN" in name else 0.98
            return sys.modules["time_to_accuracy"].Result(
                name, target, 3, seconds[name].pop(0), accuracy
            )

        return run

    return pipeline


def test_repeats_alternate_and_give_each_repeats_speed_up(benchmark, monkeypatch, capsys, tmp_path):
    seconds = {"notes MLP": [200.0, 180.0, 190.0], "course MLP": [8.0, 10.0, 9.5],
               "course CNN": [30.0, 31.0, 32.0]}  # fmt: skip
    order: list[str] = []
    pipeline = fakes(seconds, order)
    monkeypatch.setattr(benchmark, "notes_pipeline", lambda *a: pipeline("notes MLP")())
    monkeypatch.setattr(
        benchmark, "course_pipeline",
        lambda args, device, name, *rest: pipeline(f"course {name.upper()}")(),
    )  # fmt: skip
    monkeypatch.setattr(benchmark, "TIMES", tmp_path / "time_to_accuracy.csv")
    assert benchmark.main(["--repeats", "3", "--write"]) == 0
    out = capsys.readouterr().out
    forward = ["notes MLP", "course MLP", "course CNN"]
    assert order == forward + forward[::-1] + forward  # alternated
    assert "| notes MLP | 98% | 3 | 3 | 190.0 | 180.0 | 200.0 |" in out
    # repeat by repeat: 200/8, 180/10, 190/9.5
    assert "course MLP over notes MLP: median 20.0x (repeats: 25.0x, 18.0x, 20.0x)" in out
    with (tmp_path / "time_to_accuracy.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["pipeline"] for r in rows] == order and {r["mode"] for r in rows} == {"in-process"}
    assert set(rows[0]) == set(benchmark.TIME_FIELDS)
    # the other mode's rows are replaced by a new run of that mode, this mode's stay
    benchmark.store_times([{**rows[0], "mode": "end-to-end"}], tmp_path / "time_to_accuracy.csv")
    with (tmp_path / "time_to_accuracy.csv").open() as f:
        modes = [r["mode"] for r in csv.DictReader(f)]
    assert modes == ["in-process"] * 9 + ["end-to-end"]
    assert not list(tmp_path.glob("*.partial"))


def test_no_speed_up_when_a_pipeline_misses_the_target(benchmark):
    rows = [{"pipeline": "slow", "repeat": 1, "seconds": 100.0, "reached": True},
            {"pipeline": "fast", "repeat": 1, "seconds": 5.0, "reached": False}]  # fmt: skip
    assert "not measured" in benchmark.speed_ups(rows, "slow", "fast")


def test_whole_processes_are_timed(benchmark):
    slow = [sys.executable, "-c", "import time; time.sleep(1.0); print('accuracy: 98.5%')"]
    quick = [sys.executable, "-c", "print('epoch 1: test accuracy 98.10%')"]
    results = [benchmark.process("slow", slow, 0.98), benchmark.process("quick", quick, 0.98)]
    assert [r.reached for r in results] == [True, True]
    assert [r.accuracy for r in results] == [0.985, 0.981]
    assert results[0].seconds >= 1.0  # the whole process is timed (its sleep included)


def test_a_failing_process_is_an_error(benchmark):
    with pytest.raises(RuntimeError, match="printed no test accuracy"):
        benchmark.process("silent", [sys.executable, "-c", "pass"], 0.98)
    with pytest.raises(RuntimeError, match="failed"):
        benchmark.process("crash", [sys.executable, "-c", "raise SystemExit(3)"], 0.98)


def test_the_readme_quotes_the_stored_wait_policy_timings():
    """The README's table is the benchmark's own summary of its stored file."""
    from mnist_course import measured

    wait_policy = load_benchmark("wait_policy")
    rows = measured.rows("wait_policy.csv")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert wait_policy.summary(rows) in readme
    assert {r["config"] for r in rows} == set(wait_policy.CONFIGS)
    assert {r["busy_loops"] for r in rows} == {"0", "1"}


def test_the_wait_policy_benchmark_times_each_way_of_waiting(monkeypatch, tmp_path, capsys):
    wait_policy = load_benchmark("wait_policy")
    seen = []

    def fake(place):
        def run(config):
            seen.append((config, place, wait_policy.environment(config)))
            return [0.3, 0.31, 0.32], 2

        return run

    monkeypatch.setattr(wait_policy, "in_process", fake("process"))
    monkeypatch.setattr(wait_policy, "in_kernel", fake("kernel"))
    monkeypatch.setattr(wait_policy, "RESULT", tmp_path / "wait_policy.csv")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a setting of the caller never leaks in
    assert wait_policy.main(["--repeats", "1", "--load", "0", "--write"]) == 0
    assert [(c, p) for c, p, _ in seen] == [
        (c, p) for c in wait_policy.CONFIGS for p in ("process", "kernel")
    ]
    for config, _, env in seen:
        settings = {k: v for k, v in env.items() if k in wait_policy.SETTINGS}
        assert settings == wait_policy.CONFIGS[config]
    assert "| 0 | SPIN1000 | kernel | 0.31 | 0.30 | 0.32 |" in capsys.readouterr().out
    assert len(measured_rows(tmp_path / "wait_policy.csv")) == 18


def test_the_wait_policy_steps_report_their_timings():
    wait_policy = load_benchmark("wait_policy")
    assert wait_policy.parse("SECONDS 0.3 0.31 0.29 THREADS 2\n") == ([0.3, 0.31, 0.29], 2)


def measured_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("mode", ["in-process", "end-to-end"])
def test_the_readme_quotes_the_stored_times_to_98_percent(benchmark, mode):
    """The README's tables are the benchmark's own summary of its stored runs, and its
    speed-ups are those chapter 5 prints (measured.time_to_accuracy)."""
    from mnist_course import measured

    rows = [r for r in measured.rows("time_to_accuracy.csv") if r["mode"] == mode]
    assert len(rows) >= 6  # every pipeline at least twice (alternated)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert benchmark.time_summary(rows) in readme
    stored = measured.time_to_accuracy(mode)
    assert f"**{stored.speed_up:.1f}x** {mode.replace('-', ' ')}" in readme


def test_time_to_accuracy_reads_medians_and_each_repeats_speed_up(monkeypatch):
    from mnist_course import measured

    runs = [
        {"mode": "in-process", "repeat": r, "pipeline": p, "seconds": s, "epochs": e,
         "reached": "True"}
        for r, p, s, e in [(1, "notes MLP", 100.0, 17), (1, "course MLP", 5.0, 3),
                           (2, "course MLP", 4.0, 3), (2, "notes MLP", 120.0, 18),
                           (3, "notes MLP", 90.0, 17), (3, "course MLP", 6.0, 3)]
    ]  # fmt: skip
    monkeypatch.setattr(measured, "rows", lambda name: runs)
    t = measured.time_to_accuracy("in-process")
    assert (t.notes_seconds, t.notes_epochs, t.ours_seconds, t.ours_epochs) == (100.0, 17, 5.0, 3)
    assert t.speed_ups == (20.0, 30.0, 15.0) and t.speed_up == 20.0
    runs[0]["reached"] = "False"
    with pytest.raises(ValueError, match="reached 98%"):
        measured.time_to_accuracy("in-process")


def test_the_memory_format_benchmark_times_both_formats_in_alternating_order(capsys):
    bench = load_benchmark("memory_format")
    images, labels = torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,))
    rows = bench.measure(images, labels, repeats=2, steps=2, threads=1)
    assert [r["variant"] for r in rows] == [
        "contiguous",
        "channels_last",
        "channels_last",
        "contiguous",
    ]
    assert all(float(r["ms_per_step"]) > 0 and r["threads"] == 1 for r in rows)
    assert "channels_last" in capsys.readouterr().out


def test_the_stored_memory_format_timings_have_every_repeat_of_both():
    from mnist_course import measured

    rows = measured.rows("memory_format.csv")
    for variant in ("contiguous", "channels_last"):
        repeats = sorted(int(r["repeat"]) for r in rows if r["variant"] == variant)
        assert repeats == list(range(len(repeats))) and len(repeats) >= 3, variant
