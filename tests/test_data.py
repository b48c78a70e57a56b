"""mnist_course.data on tiny idx files built here (every branch), and on the real copy if set."""

from __future__ import annotations

import functools
import gzip
import os
import stat
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from tiny_mnist import TEST, TRAIN
from torchvision import datasets

from mnist_course import data


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "from-env"))
    assert data.data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert data.data_root() == (tmp_path / "from-env").resolve()
    monkeypatch.delenv(data.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_root() == (tmp_path / "cache" / "mnist-course").resolve()
    assert data.default_data_root() == tmp_path / "cache" / "mnist-course"
    assert data.raw_folder(tmp_path) == tmp_path.resolve() / "MNIST" / "raw"


def test_found_reads_through_torchvision(tiny):
    assert data.ensure_mnist(tiny, download=False) == tiny.resolve()
    train = data.mnist_dataset(True, tiny, download=False)
    assert isinstance(train, datasets.MNIST) and len(train) == TRAIN
    image, label = train[3]
    assert image.shape == (1, 28, 28) and label == 3
    images, labels = data.load_tensors(False, tiny, download=False)
    assert images.shape == (TEST, 1, 28, 28) and images.dtype == torch.float32
    assert labels.tolist() == [0, 1, 2, 3, 4] and labels.dtype == torch.int64
    # the fast path gives exactly what the per-image transform gives
    test = data.mnist_dataset(False, tiny, download=False)
    assert torch.allclose(torch.stack([test[i][0] for i in range(TEST)]), images, atol=1e-6)


def test_env_var_names_the_root(tiny, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tiny))
    assert data.ensure_mnist(download=False) == tiny.resolve()


def test_missing_without_download_says_how_to_fix(tmp_path):
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.ensure_mnist(tmp_path / "empty", download=False)
    message = str(info.value)
    assert str((tmp_path / "empty").resolve()) in message
    assert data.ENV_VAR in message and "internet" in message
    assert "train-images-idx3-ubyte" in message
    assert not (tmp_path / "empty").exists()


def test_a_file_as_root_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        data.ensure_mnist(tmp_path / "f")


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda b: b[:-100], "truncated"),
        (lambda b: b[:6], "truncated"),
        (lambda b: b + b"\0", "too long"),
        (lambda b: (1234).to_bytes(4, "big") + b[4:], "not an MNIST idx file"),
        (lambda b: gzip.compress(b), "gzip"),
        (lambda b: b[:4] + (99).to_bytes(4, "big") + b[8:], "holds 99 items"),
        (lambda b: b[:-1] + bytes([(b[-1] + 1) % 256]), "md5"),
    ],
)
def test_damaged_file_is_named_with_the_fix(tiny, damage, match):
    path = tiny / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(data.MNISTCorruptError, match=match) as info:
        data.ensure_mnist(tiny, download=False)
    assert str(path) in str(info.value) and "Delete it" in str(info.value)
    with pytest.raises(data.MNISTCorruptError):
        data.load_tensors(True, tiny, download=False)


def test_read_only_root_is_read_without_writing(tiny):
    before = sorted((p, p.stat().st_mtime_ns) for p in tiny.rglob("*"))
    modes = []
    for p in [tiny, *tiny.rglob("*")]:
        modes.append((p, p.stat().st_mode))
        p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
    try:
        images, labels = data.load_tensors(True, tiny, download=True)
        assert len(labels) == TRAIN
    finally:
        for p, mode in modes:
            p.chmod(mode)
    assert sorted((p, p.stat().st_mtime_ns) for p in tiny.rglob("*")) == before


@pytest.fixture
def mirror(tiny, tmp_path, monkeypatch) -> Iterator[Path]:
    """Serve the tiny files, gzipped, over HTTP on loopback, as torchvision downloads them."""
    served = tmp_path / "mirror"
    served.mkdir()
    for spec in data.MNIST_FILES:
        gz = served / f"{spec.name}.gz"
        gz.write_bytes(gzip.compress((tiny / "MNIST" / "raw" / spec.name).read_bytes()))
    handler = functools.partial(QuietHandler, directory=str(served))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/"
        # the course downloads from torchvision's list of mirrors
        monkeypatch.setattr(datasets.MNIST, "mirrors", [url, url + "missing/"])
        yield served
        server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_fills_only_the_missing_files(mirror, tiny):
    for spec in data.MNIST_FILES[2:]:
        (tiny / "MNIST" / "raw" / spec.name).unlink()
    data.ensure_mnist(tiny)
    assert sorted(os.listdir(tiny)) == ["MNIST"]  # the staging folder is gone
    assert sorted(os.listdir(tiny / "MNIST" / "raw")) == sorted(f.name for f in data.MNIST_FILES)


def test_download_into_a_new_root(mirror, tmp_path):
    root = tmp_path / "new" / "root"
    assert len(data.load_tensors(False, root)[1]) == TEST
    assert sorted(os.listdir(root)) == ["MNIST"]


def test_failed_download_leaves_nothing_behind(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "mirrors", [datasets.MNIST.mirrors[1]])
    root = tmp_path / "new"
    with pytest.raises(data.MNISTNotFoundError, match="Downloading it failed") as info:
        data.ensure_mnist(root)
    assert data.ENV_VAR in str(info.value)
    assert not root.exists()


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda b: b[:-1] + bytes([(b[-1] + 1) % 256]), "md5"),  # one byte changed
        (lambda b: b[:-3], "truncated"),
    ],
)
def test_corrupt_download_is_rejected_by_the_course_check(mirror, tmp_path, damage, match):
    gz = mirror / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(damage(gzip.decompress(gz.read_bytes()))))
    root = tmp_path / "new"
    with pytest.raises(data.MNISTCorruptError, match=match) as info:
        data.ensure_mnist(root)
    assert "train-labels-idx1-ubyte" in str(info.value)
    assert "MNIST was not found" not in str(info.value)
    assert not root.exists()  # nothing half-written is kept


def test_a_download_that_is_not_gzip_is_corrupt(mirror, tmp_path):
    (mirror / "t10k-images-idx3-ubyte.gz").write_bytes(b"<html>a login page</html>")
    with pytest.raises(data.MNISTCorruptError, match="t10k-images-idx3-ubyte.*not a gzip file"):
        data.ensure_mnist(tmp_path / "new")


def test_md5_is_computed_once_then_taken_from_the_stamp(tiny, monkeypatch):
    hashed = []
    real_md5 = data._md5_of
    monkeypatch.setattr(data, "_md5_of", lambda path: hashed.append(path.name) or real_md5(path))
    data.ensure_mnist(tiny, download=False)
    assert len(hashed) == len(data.MNIST_FILES)
    assert data.verified_stamp().is_file()
    monkeypatch.setattr(data, "_verified_here", set())  # as a new process would start
    data.ensure_mnist(tiny, download=False)
    assert len(hashed) == len(data.MNIST_FILES)  # no file hashed again


def test_a_file_changed_after_its_check_is_checked_again(tiny):
    data.ensure_mnist(tiny, download=False)
    path = tiny / "MNIST" / "raw" / "train-images-idx3-ubyte"
    before = path.stat()
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF  # same size, and the old modification time put back:
    path.write_bytes(bytes(content))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(data.MNISTCorruptError, match="md5"):
        data.ensure_mnist(tiny, download=False)


def test_an_unwritable_cache_folder_is_no_error(tiny, monkeypatch, tmp_path):
    (tmp_path / "cache-file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-file"))
    assert data.ensure_mnist(tiny, download=False) == tiny.resolve()


def test_tensor_loader_batches_and_shuffles():
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    loader = data.TensorLoader(x, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    shuffled = data.TensorLoader(x, y, batch_size=4, shuffle=True, seed=1)
    first, second = (torch.cat([b[1] for b in shuffled]) for _ in range(2))
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    again = data.TensorLoader(x, y, batch_size=4, shuffle=True, seed=1)
    assert torch.equal(torch.cat([b[1] for b in again]), first)
    for xb, yb in shuffled:
        assert torch.equal(xb[:, 0].long(), yb)


def test_tensor_loader_and_normalize_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        data.TensorLoader(torch.zeros(3, 1), torch.zeros(2))
    with pytest.raises(ValueError, match="batch_size"):
        data.TensorLoader(torch.zeros(3, 1), torch.zeros(3), batch_size=0)
    with pytest.raises(TypeError, match="uint8"):
        data.normalize(torch.zeros(2, 28, 28))


def test_course_transform_constants():
    normalize = data.course_transform().transforms[1]
    assert normalize.mean == (0.1307,) and normalize.std == (0.3081,)


@pytest.mark.skipif(not os.environ.get(data.ENV_VAR), reason=f"set {data.ENV_VAR} to a real copy")
def test_real_copy():
    root = data.ensure_mnist(download=False)
    train = data.mnist_dataset(True, root, download=False)
    test = data.mnist_dataset(False, root, download=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    images, _ = data.load_tensors(True, root, download=False)
    assert abs(images.mean().item()) < 1e-3 and abs(images.std().item() - 1) < 1e-3


def test_root_source_says_which_rule_applied(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.root_source() == "the default cache folder"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.root_source() == f"${data.ENV_VAR}"
    assert data.root_source(tmp_path) == "the root argument"


def test_load_split_returns_its_own_tensors_not_views_of_all_60000(monkeypatch):
    images, labels = torch.zeros(60_000, 1, 2, 2), torch.zeros(60_000, dtype=torch.long)
    monkeypatch.setattr(data, "load_tensors", lambda train, root, download: (images, labels))
    val_x, val_y = data.load_split("val")
    assert len(val_x) == data.VAL_SIZE == len(val_y)
    # a view would share the 60,000 images' storage (and keep it alive)
    assert val_x.untyped_storage().nbytes() == val_x.numel() * val_x.element_size()
    assert val_y.untyped_storage().nbytes() == val_y.numel() * val_y.element_size()
    assert val_x.untyped_storage().data_ptr() != images.untyped_storage().data_ptr()
