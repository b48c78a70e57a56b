"""MNIST on disk and in memory (chapters 0, 3, 4 and 5).

Where the data lives is decided in one place, :func:`data_root`:

1. the ``root`` argument, if given;
2. else the environment variable ``MNIST_COURSE_DATA``;
3. else ``$XDG_CACHE_HOME/mnist-course`` (``~/.cache/mnist-course``).

Under that root torchvision's layout is used: ``<root>/MNIST/raw/`` holds the
four uncompressed idx files. They are checked (header, size, md5) before use,
so a truncated or corrupt file is reported, never trained on. The md5 of a file
is computed once: a stamp in the cache folder remembers the files that passed,
keyed on their size, inode and change times, so any write to a file makes it be
checked again.

Importing this module is cheap: torch and torchvision are imported by the
functions that need them (the command line's ``--help`` never loads them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: they take seconds to import
    import torch
    from torchvision import datasets, transforms

ENV_VAR = "MNIST_COURSE_DATA"

# Mean and standard deviation of the 60,000 training images' pixels (in [0, 1]).
# Chapter 3 recomputes them from the data.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

# The validation split: the last 5,000 of the 60,000 training images, always the same ones.
# Chapters choose settings on it and look at the test set once, at the very end (chapter 3).
VAL_SIZE = 5_000
SPLITS = ("train", "val", "train+val", "test")

IMAGE_MAGIC = 2051  # idx3, unsigned byte
LABEL_MAGIC = 2049  # idx1, unsigned byte


@dataclass(frozen=True)
class RawFile:
    """One of the four MNIST idx files, as torchvision expects it in ``MNIST/raw/``."""

    name: str
    magic: int
    count: int
    md5: str

    @property
    def header_size(self) -> int:
        return 16 if self.magic == IMAGE_MAGIC else 8

    @property
    def size(self) -> int:
        item = 28 * 28 if self.magic == IMAGE_MAGIC else 1
        return self.header_size + self.count * item


MNIST_FILES: tuple[RawFile, ...] = (
    RawFile("train-images-idx3-ubyte", IMAGE_MAGIC, 60_000, "6bbc9ace898e44ae57da46a324031adb"),
    RawFile("train-labels-idx1-ubyte", LABEL_MAGIC, 60_000, "a25bea736e30d166cdddb491f175f624"),
    RawFile("t10k-images-idx3-ubyte", IMAGE_MAGIC, 10_000, "2646ac647ad5339dbf082846283269ea"),
    RawFile("t10k-labels-idx1-ubyte", LABEL_MAGIC, 10_000, "27ae3e4e09519cfbb04c329615203637"),
)


class MNISTNotFoundError(FileNotFoundError):
    """MNIST is not under the data root and could not be downloaded."""


class MNISTCorruptError(ValueError):
    """An MNIST file is present but is not the file it should be."""


def default_data_root() -> Path:
    """The cache folder used when neither an argument nor ``MNIST_COURSE_DATA`` is given."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnist-course"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: argument, else ``$MNIST_COURSE_DATA``, else the default cache."""
    if root is None or str(root) == "":
        root = os.environ.get(ENV_VAR) or default_data_root()
    return Path(root).expanduser().resolve()


def root_source(root: str | os.PathLike[str] | None = None) -> str:
    """Which rule of :func:`data_root` picks the root: said in words, with no path in it."""
    if root is not None and str(root) != "":
        return "the root argument"
    return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default cache folder"


def raw_folder(root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/MNIST/raw``, where torchvision reads (and downloads) the idx files."""
    return data_root(root) / "MNIST" / "raw"


def verified_stamp() -> Path:
    """The file remembering which data files passed the md5 check (in the cache folder)."""
    return default_data_root() / "verified-files.json"


def _file_key(path: Path) -> str:
    # Any write to the file changes its ctime (which no program can set back), so a
    # file changed after its check never matches its old key.
    s = path.stat()
    return f"{s.st_dev}:{s.st_ino}:{s.st_size}:{s.st_mtime_ns}:{s.st_ctime_ns}"


def _read_stamp() -> dict[str, str]:
    try:
        stamp = json.loads(verified_stamp().read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _remember_verified(path: Path, md5: str) -> None:
    """Add ``path`` to the stamp; a cache folder that cannot be written is no error."""
    stamp = _read_stamp()
    stamp[str(path.resolve())] = f"{_file_key(path)}:{md5}"
    target = verified_stamp()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".verified-", dir=target.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(stamp, f, indent=0, sort_keys=True)
        os.replace(tmp, target)
    except OSError:
        pass


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified_here: set[str] = set()  # this process' checks, for when the stamp cannot be written


def _md5_matches(path: Path, md5: str) -> bool:
    """Whether ``path`` has this md5: from the stamp when the file is unchanged since."""
    entry = f"{path.resolve()}:{_file_key(path)}:{md5}"
    if entry in _verified_here:
        return True
    if _read_stamp().get(str(path.resolve())) != f"{_file_key(path)}:{md5}":
        if _md5_of(path) != md5:
            return False
        _remember_verified(path, md5)
    _verified_here.add(entry)
    return True


def _problem(path: Path, spec: RawFile) -> str | None:
    """What is wrong with ``path`` as the file ``spec`` describes, or None when it is that file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(spec.header_size)
    if len(header) < 8:
        return f"is truncated ({size} bytes): too short for an idx header"
    magic = int.from_bytes(header[0:4], "big")
    if magic != spec.magic:
        hint = " (is it still gzip-compressed?)" if header[:2] == b"\x1f\x8b" else ""
        return f"is not an MNIST idx file{hint}: magic number {magic}, expected {spec.magic}"
    count = int.from_bytes(header[4:8], "big")
    if count != spec.count:
        return f"holds {count:,} items, expected {spec.count:,}"
    if size != spec.size:
        what = "truncated" if size < spec.size else "too long"
        return f"is {what}: {size:,} bytes, expected {spec.size:,}"
    if not _md5_matches(path, spec.md5):
        return f"is corrupt: its md5 is not {spec.md5}"
    return None


def check_raw_file(path: Path, spec: RawFile) -> None:
    """Raise :class:`MNISTCorruptError` unless ``path`` is exactly the file ``spec`` describes."""
    problem = _problem(path, spec)
    if problem is not None:
        raise MNISTCorruptError(
            f"{path} {problem}. Delete it and run again to download a fresh copy, or replace "
            f"it with a good copy (uncompressed, {spec.size:,} bytes, md5 {spec.md5})."
        )


def _not_found_message(root: Path, missing: list[str], reason: str = "") -> str:
    lines = [
        f"MNIST was not found under the data root {root}",
        f"(missing in {raw_folder(root)}: {', '.join(missing)}).",
    ]
    if reason:
        lines.append(f"Downloading it failed: {reason}")
    lines += [
        "To fix it, do one of these:",
        "  - connect to the internet and run again: the files are downloaded there (about 12 MB);",
        f"  - set {ENV_VAR} to a folder that holds MNIST/raw/ with the four files, e.g.",
        f"    export {ENV_VAR}=/path/to/data   (or pass root=... / --data-root PATH);",
        "  - copy the four uncompressed files (train-images-idx3-ubyte, ...) into",
        f"    {raw_folder(root)}.",
    ]
    return "\n".join(lines)


def mirrors() -> list[str]:
    """Where MNIST is downloaded from: torchvision's list of mirrors, in its order."""
    from torchvision import datasets

    return list(datasets.MNIST.mirrors)


def _fetch(spec: RawFile, folder: Path) -> None:
    """Download ``<spec.name>.gz`` from the first mirror that gives the right file, unpacked.

    Each download is checked with the course's own check (header, size, md5 of the
    unpacked file): a corrupt download raises :class:`MNISTCorruptError` naming the
    file and where it came from (when no other mirror gives a good copy).
    """
    import urllib.request  # here: it takes a while to import, and is rarely needed

    failures, corrupt = [], []
    target = folder / spec.name
    for mirror in mirrors():
        url = f"{mirror}{spec.name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                packed = response.read()
        except OSError as err:  # URLError, HTTPError, timeouts: try the next mirror
            failures.append(f"{url}: {getattr(err, 'reason', None) or err}")
            continue
        try:
            target.write_bytes(gzip.decompress(packed))
        except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
            corrupt.append(f"{url} is not a gzip file ({err})")
            continue
        problem = _problem(target, spec)
        if problem is None:
            return
        corrupt.append(f"{url} {problem}")
    if corrupt:
        raise MNISTCorruptError(
            f"The downloaded MNIST file {spec.name} is not the right file: "
            + "; ".join(corrupt)
            + ". Nothing was saved; try again later, or copy a good copy into the data root."
        )
    raise MNISTNotFoundError(" ".join(failures) or "no mirror to download from")


def _download(root: Path) -> None:
    """Download the missing MNIST files into a temporary folder, check them, then move them in.

    Nothing half-written is left under ``root``: on any failure the temporary
    folder is removed and the error says what went wrong.
    """
    target = raw_folder(root)
    missing = [f for f in MNIST_FILES if not (target / f.name).exists()]
    names = [f.name for f in missing]
    created_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    except OSError as err:
        raise MNISTNotFoundError(
            _not_found_message(root, names, f"cannot write there ({err}).")
        ) from err
    try:
        for spec in missing:
            try:
                _fetch(spec, staging)
            except MNISTNotFoundError as err:
                raise MNISTNotFoundError(_not_found_message(root, names, str(err))) from err
        target.mkdir(parents=True, exist_ok=True)
        for spec in missing:
            os.replace(staging / spec.name, target / spec.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_root and not any(root.iterdir()):
            root.rmdir()


def ensure_mnist(root: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Make sure the four MNIST files are under the data root and intact; return the root.

    Missing files are downloaded (if ``download``); files that are present are
    only read, so a read-only root works.
    """
    path = data_root(root)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"The MNIST data root {path} is a file; give the folder instead.")
    folder = raw_folder(path)
    missing = [f.name for f in MNIST_FILES if not (folder / f.name).is_file()]
    if missing:
        if not download:
            raise MNISTNotFoundError(_not_found_message(path, missing))
        _download(path)
    for spec in MNIST_FILES:
        check_raw_file(folder / spec.name, spec)
    return path


def course_transform() -> transforms.Compose:
    """``ToTensor`` then ``Normalize(0.1307, 0.3081)``: the transform of the lecture (chapter 3)."""
    from torchvision import transforms

    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    )


def mnist_dataset(
    train: bool = True,
    root: str | os.PathLike[str] | None = None,
    transform: transforms.Compose | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """The torchvision MNIST dataset, checked first; ``transform`` defaults to the course's (ch. 3)."""
    from torchvision import datasets

    path = ensure_mnist(root, download=download)
    transform = course_transform() if transform is None else transform
    return datasets.MNIST(path, train=train, transform=transform, download=False)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(N, 28, 28)`` -> float32 ``(N, 1, 28, 28)``, scaled to [0, 1] and normalized."""
    import torch

    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images as stored by MNIST, got {images.dtype}")
    # In place on one new float tensor, in ToTensor + Normalize's order (same numbers).
    return images.float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)


def load_tensors(
    train: bool = True,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as normalized tensors in memory: the fast path of chapter 3.

    Returns images ``(N, 1, 28, 28)`` float32 and labels ``(N,)`` int64: the same
    numbers that :func:`course_transform` gives image by image, in one operation.
    The idx files are read directly (after their check), without torchvision.
    """
    import numpy as np
    import torch

    folder = raw_folder(ensure_mnist(root, download=download))
    images_spec, labels_spec = MNIST_FILES[0:2] if train else MNIST_FILES[2:4]
    images = np.fromfile(folder / images_spec.name, np.uint8, offset=images_spec.header_size)
    labels = np.fromfile(folder / labels_spec.name, np.uint8, offset=labels_spec.header_size)
    images = torch.from_numpy(images).view(images_spec.count, 28, 28)
    return normalize(images), torch.from_numpy(labels).long()


def split_indices(split: str) -> range:
    """Which images of the MNIST file a split uses (chapter 3).

    ``"train"``: the first 55,000 training images; ``"val"``: the last 5,000;
    ``"train+val"``: all 60,000; ``"test"``: the 10,000 test images.
    """
    n_train = 60_000
    ranges = {
        "train": range(0, n_train - VAL_SIZE),
        "val": range(n_train - VAL_SIZE, n_train),
        "train+val": range(0, n_train),
        "test": range(0, 10_000),
    }
    if split not in ranges:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    return ranges[split]


def load_split(
    split: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split (see :func:`split_indices`) as normalized tensors in memory (chapter 3).

    The tensors are the split's own (copies), not views: a view of the validation images
    would keep all 60,000 training images alive.
    """
    index = split_indices(split)
    images, labels = load_tensors(split != "test", root, download)
    return images[index.start : index.stop].clone(), labels[index.start : index.stop].clone()


def split_dataset(
    split: str,
    root: str | os.PathLike[str] | None = None,
    transform: transforms.Compose | None = None,
    download: bool = True,
) -> torch.utils.data.Dataset:
    """The torchvision dataset of one split, for a ``DataLoader`` (chapter 3)."""
    import torch

    index = split_indices(split)
    dataset = mnist_dataset(split != "test", root, transform, download)
    return torch.utils.data.Subset(dataset, list(index))


class TensorLoader:
    """Mini-batches from in-memory tensors, like a ``DataLoader`` without per-image work (ch. 3).

    Each pass over it is one epoch; with ``shuffle`` the order is drawn from a
    generator seeded once, so a run is reproducible and epochs differ. The last
    partial batch is kept.

    With ``world_size`` > 1 (training on several processes, chapter 7) every
    process builds the same loader and takes its own share of each batch:
    ``batch_size`` stays the global batch, every process draws the same
    shuffled order (same seed) and process ``rank`` takes the ``rank``-th of
    ``world_size`` equal slices of it, so the processes together see exactly
    the batches one process would, like ``DistributedSampler``. Equal slices
    keep averaged gradients equal to the one-process gradient; when the last
    batch does not split evenly, its last few images (fewer than
    ``world_size``) are left out of that epoch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int = 64,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank!r}")
        if batch_size % world_size:
            raise ValueError(
                f"a batch of {batch_size} does not split evenly over {world_size} processes: "
                f"use a batch size that is a multiple of {world_size}"
            )
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        import torch

        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        # (one process: a partial batch counts; several: only one that every process shares)
        return full + (rest >= self.world_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                index = slice(start, start + self.batch_size)
            else:
                index = order[start : start + self.batch_size]
            if self.world_size > 1:
                index = self._share(index, min(self.batch_size, n - start))
                if index is None:
                    break
            yield self.images[index], self.labels[index]

    def _share(self, index: slice | torch.Tensor, size: int) -> slice | torch.Tensor | None:
        """This process's equal slice of one batch (None when it is too short to share)."""
        share = size // self.world_size
        if share == 0:
            return None
        first = self.rank * share
        if isinstance(index, slice):
            return slice(index.start + first, index.start + first + share)
        return index[first : first + share]
