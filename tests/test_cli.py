"""The mnist-course command line: arguments, errors, a training run on tiny data, and a
plain install (no extras) in which `--help`, `check` and `train` still work."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from tiny_mnist import specs_json
from torchvision import datasets

from mnist_course import cli, models, training

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "0"], "--epochs: must be at least 1"),
        (["train", "--epochs", "two"], "--epochs: expected a whole number"),
        (["train", "--batch-size", "-5"], "--batch-size: must be at least 1"),
        (["train", "--lr", "0"], "--lr: must be a positive number"),
        (["train", "--lr", "nan"], "--lr: must be a positive number"),
        (["train", "--seed", "1.5"], "--seed: expected a whole number"),
        (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_missing_data_exits_1_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])  # refused at once
    code = cli.main(["train", "--data-root", str(tmp_path / "none"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "MNIST was not found" in err and "MNIST_COURSE_DATA" in err


def test_bad_device_and_save_folder_exit_1(tiny, tmp_path, capsys):
    assert cli.main(["train", "--data-root", str(tiny), "--device", "tpu"]) == 1
    assert "Unknown device 'tpu'" in capsys.readouterr().err
    assert (
        cli.main(["train", "--data-root", str(tiny), "--save", str(tmp_path / "x" / "m.pt")]) == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_train_on_tiny_data_and_save(tiny, tmp_path, capsys):
    path = tmp_path / "cnn.pt"
    args = ["train", "--model", "cnn", "--epochs", "2", "--batch-size", "4", "--device", "cpu"]
    code = cli.main([*args, "--data-root", str(tiny), "--save", str(path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training cnn" in out and "epoch 2: test loss" in out and "saved weights" in out
    meta = training.load_checkpoint(models.CNN(), path)
    assert meta["model_name"] == "cnn" and meta["epochs"] == 2


def test_diverging_run_exits_1_naming_epoch_and_rate(tiny, capsys, monkeypatch):
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a: torch.tensor(float("nan")))
    code = cli.main(["train", "--data-root", str(tiny), "--lr", "5", "--no-progress"])
    assert code == 1 and "epoch 1 at learning rate" in capsys.readouterr().err


def test_check_command_and_module_entry_point(tiny):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_course", "check", "--data-root", str(tiny)],
        capture_output=True,
        text=True,
    )
    # the tiny files are not the real MNIST: the check must say so and exit 1
    assert result.returncode == 1 and "FIX  MNIST data" in result.stdout
    assert "ok   torch" in result.stdout


def test_model_names_match_the_models():
    assert sorted(cli.MODEL_NAMES) == sorted(models.MODELS)


def run_python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=env
    )


HEAVY = ("torch", "torchvision", "numpy", "nbformat", "nbconvert", "nbclient", "matplotlib")
IMPORTED = """
import sys
from mnist_course import cli
try:
    cli.main(sys.argv[1:])
finally:
    print(sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args, expected",
    [(["--help"], "grade"), (["train", "--epochs", "0"], "must be at least 1"), (["fly"], "fly")],
)
def test_help_and_bad_arguments_import_no_heavy_package(args, expected):
    result = run_python(IMPORTED.format(heavy=HEAVY), *args)
    assert expected in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"  # nothing heavy was imported


def test_grade_command_passes_its_arguments(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("mnist_course.grade")
    fake.main = lambda paths, **options: calls.append((paths, options)) or 3
    monkeypatch.setitem(sys.modules, "mnist_course.grade", fake)
    given = ["--json", "g.json", "--timeout", "20", "--csv", "g.csv", "--feedback", "fb",
             "--jobs", "2", "--memory", "1.5", "--user", "nobody"]  # fmt: skip
    assert cli.main(["grade", "a.ipynb", "b", *given]) == 3
    assert calls == [
        (
            [Path("a.ipynb"), Path("b")],
            dict(json_out=Path("g.json"), timeout=20.0, csv_out=Path("g.csv"),
                 feedback_dir=Path("fb"), jobs=2, memory_gb=1.5, user="nobody"),
        )
    ]  # fmt: skip
    defaults = dict(json_out=None, timeout=300.0, csv_out=None, feedback_dir=None, jobs=1,
                    memory_gb=4.0, user=None)  # fmt: skip
    assert cli.main(["grade", "c"]) == 3 and calls[-1] == ([Path("c")], defaults)


@pytest.mark.parametrize("command", ["student", "slides", "grade"])
def test_teacher_tools_without_the_lab_extra_name_it(command, tmp_path, monkeypatch, capsys):
    notebook = tmp_path / "n.ipynb"
    notebook.write_text("{}")
    monkeypatch.delitem(sys.modules, f"mnist_course.{command}", raising=False)
    for name in ("nbformat", "nbclient", "nbconvert"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: "not installed"
    assert cli.main([command, str(notebook)]) == 1
    err = capsys.readouterr().err
    assert f"'mnist-course {command}' needs the package" in err
    assert 'pip install "mnist-course[lab]"' in err


# --- A plain install: `pip install mnist-course`, no extras --------------------------------


def plain_distributions() -> set[str]:
    """The distributions a plain install of the course brings: its requirements, recursively."""
    wanted, todo = set(), ["mnist-course"]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in wanted:
            continue
        wanted.add(key)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return wanted


def blocked_modules() -> list[str]:
    """Top-level modules that only the extras (or nothing of the course) bring."""
    plain = plain_distributions()
    blocked = []
    for module, dists in metadata.packages_distributions().items():
        if not any(d.lower().replace("_", "-") in plain for d in dists):
            blocked.append(module)
    return sorted(blocked)


# Each blocked module is None in sys.modules: importing it raises ModuleNotFoundError and
# importlib.util.find_spec finds nothing, as when the package is not installed (torch._dynamo
# asks find_spec about optional modules such as tabulate).
BLOCKER = """
import json, sys

for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from mnist_course import cli, data

data.MNIST_FILES = tuple(data.RawFile(*spec) for spec in json.loads(sys.argv[2]))
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture
def plain(tiny, tmp_path):
    """Run the command line with every package outside a plain install made unimportable."""
    blocked = blocked_modules()
    for extra_only in ("nbformat", "nbclient", "jupyterlab", "ipykernel", "pytest", "playwright"):
        assert extra_only in blocked  # the blocker does block what it must
    specs = specs_json()
    env = {**__import__("os").environ, "MNIST_COURSE_DEVICE": "cpu"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_python(BLOCKER, json.dumps(blocked), specs, *args, env=env)

    return run


def test_plain_install_help_check_and_train(plain, tiny):
    helped = plain("--help")
    assert helped.returncode == 0 and "train" in helped.stdout, helped.stderr
    checked = plain("check", "--data-root", str(tiny))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok   torch" in checked.stdout and "ok   MNIST data" in checked.stdout
    trained = plain("train", "--epochs", "1", "--data-root", str(tiny), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert "epoch 1: test loss" in trained.stdout


def test_plain_install_teacher_tool_names_the_extra(plain, tmp_path):
    notebook = tmp_path / "n.ipynb"
    notebook.write_text("{}")
    result = plain("student", str(notebook))
    assert result.returncode == 1 and 'pip install "mnist-course[lab]"' in result.stderr
    assert "Traceback" not in result.stderr
