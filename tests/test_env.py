"""mnist_course.env: the environment check of chapter 0."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from mnist_course import data, env


def test_supported_ranges_come_from_the_package_metadata():
    ranges = env.supported_ranges()
    assert "3.11.7" in ranges["python"] and "3.9.6" not in ranges["python"]
    assert "2.14.1" in ranges["torch"] and "0.29.1" in ranges["torchvision"]
    assert set(env.CHECKED_PACKAGES) <= set(ranges)
    assert "jupyterlab" not in ranges  # dev extras are not runtime requirements


def test_check_version():
    wanted = SpecifierSet(">=2.4,<3")
    assert env.check_version("torch", "2.14.1+cpu", wanted).ok
    bad = env.check_version("torch", "1.13.0", wanted)
    assert not bad.ok and "pip install" in bad.advice
    missing = env.check_version("tqdm", None, SpecifierSet(">=4"))
    assert not missing.ok and missing.found == "not installed"


@pytest.mark.parametrize(
    "found", ["2.5.0a0+872d972e41", "2.6.0rc1", "2.14.1+cpu", "2.15.0.dev20260101"]
)
def test_check_version_accepts_pre_release_and_local_builds(found):
    # NGC containers ship pre-release torch builds such as 2.5.0a0+872d972e41
    assert env.check_version("torch", found, SpecifierSet(">=2.4,<3")).ok


def test_check_version_still_refuses_a_pre_release_out_of_range():
    assert not env.check_version("torch", "3.0.0a0+abc", SpecifierSet(">=2.4,<3")).ok
    assert not env.check_version("torch", "2.3.0a0", SpecifierSet(">=2.4,<3")).ok


def test_check_environment_reports_missing_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_DEVICE", "cpu")
    checks = {c.name: c for c in env.check_environment(str(tmp_path))}
    assert all(checks[n].ok for n in ("python", "torch", "torchvision", "numpy", "matplotlib"))
    assert checks["device"].found == "cpu"
    assert not checks["MNIST data"].ok and data.ENV_VAR in checks["MNIST data"].advice
    assert "root argument" not in checks["MNIST data"].found
    assert not (tmp_path / "MNIST").exists()  # checking never downloads
    report = env.format_report(list(checks.values()))
    assert "FIX  MNIST data" in report and "ok   torch" in report


def test_check_environment_reports_bad_device_and_corrupt_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_DEVICE", "tpu")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for spec in data.MNIST_FILES:
        (raw / spec.name).write_bytes(b"nonsense")
    checks = {c.name: c for c in env.check_environment(str(tmp_path))}
    assert not checks["device"].ok and "Unknown device" in checks["device"].advice
    assert checks["MNIST data"].found == "corrupt"


def test_found_data_is_reported_without_a_path(tmp_path, monkeypatch):
    monkeypatch.setattr(env.data, "ensure_mnist", lambda root, download: tmp_path)
    checks = {c.name: c for c in env.check_environment(str(tmp_path))}
    assert checks["MNIST data"].ok and str(tmp_path) not in checks["MNIST data"].found


def test_a_data_root_that_is_a_file_is_a_problem_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_DEVICE", "cpu")
    not_a_folder = tmp_path / "mnist.zip"
    not_a_folder.write_bytes(b"PK")
    monkeypatch.setenv(data.ENV_VAR, str(not_a_folder))
    checks = {c.name: c for c in env.check_environment()}  # no traceback
    assert checks["MNIST data"].found == "not a folder" and not checks["MNIST data"].ok
    assert (
        data.ENV_VAR in checks["MNIST data"].advice and "MNIST/raw/" in checks["MNIST data"].advice
    )
