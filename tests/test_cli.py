"""The mnist-course command line: arguments, errors and a training run on tiny data."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchvision import datasets

from mnist_course import cli, models, training


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
