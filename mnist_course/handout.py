"""Hand the chapters out into a student's copy, and hand out new versions without losing work.

The rules follow nbgitpuller's merge rules, file by file, in the copy (e.g. ``~/mnist-course``):

- a chapter file the student never changed is replaced by the new version;
- a chapter file the student changed is kept, and the new version is put beside it as
  ``NAME (new version).EXT`` (a later update replaces that file too, unless the student
  edited it: then the newer version is not placed, and each update says so until that
  file is moved away);
- a chapter file the student deleted comes back;
- every other file in the copy (the student's own) is never touched.

"Never changed" means that the file's sha256 is the one recorded when it was handed out, in
the copy's hidden manifest ``.mnist-course-handout.json``. A copy without a manifest (or with
an unreadable one) counts every file that differs from the new version as changed.

Each file is written under a temporary name in its folder, then renamed over the old one, and
the manifest is written last: an interrupted update leaves each file either as it was or
complete, and the next update finishes the job.

The hub (deploy/jupyterhub/jupyterhub_config.py) runs, as the student's own OS user at each
start of the student's server::

    python -I -m mnist_course.handout ~/mnist-course --archive -

with the chapters as a tar archive on stdin (members: regular files and folders only, relative
paths without ``..``). ``--from FOLDER`` reads the chapters from a folder instead, and
``--pack FOLDER`` writes that archive to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

MANIFEST = ".mnist-course-handout.json"
NEW_VERSION = " (new version)"
TEMP_PREFIX, TEMP_SUFFIX = ".handout-", ".tmp"
SKIPPED_NAMES = {"__pycache__", "ruff.toml"}  # besides hidden names and checkpoints (*.pt)

Files = dict[str, bytes]  # relative POSIX path -> content


class HandoutError(Exception):
    """The chapters or the copy cannot be used as given (the message says why)."""


@dataclass
class Report:
    """What an update did, path by path (paths relative to the copy)."""

    added: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # deleted by the student, back again
    updated: list[str] = field(default_factory=list)  # unchanged by the student, replaced
    kept: list[tuple[str, str]] = field(default_factory=list)  # (changed file, new version)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def lines(self) -> list[str]:
        out = [f"added: {p}" for p in self.added]
        out += [f"restored: {p}" for p in self.restored]
        out += [f"updated: {p}" for p in self.updated]
        out += [f"kept your changes: {p} (the new version is {b})" for p, b in self.kept]
        out += [f"not updated: {p}: {why}" for p, why in self.skipped]
        return out


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def beside_name(path: str) -> str:
    """Where the new version of a changed file goes: ``a/01_x.ipynb`` -> ``a/01_x (new
    version).ipynb``."""
    pure = PurePosixPath(path)
    return str(pure.with_name(pure.stem + NEW_VERSION + pure.suffix))


def check_name(name: str) -> str:
    """`name` as a clean relative path, or HandoutError (absolute, ``..``, empty, reserved)."""
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise HandoutError(f"{name!r}: not a relative path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise HandoutError(f"{name!r}: not a path inside the copy")
    clean = "/".join(parts)
    if clean == MANIFEST or parts[-1].startswith(TEMP_PREFIX):
        raise HandoutError(f"{name!r}: a name the handout keeps for itself")
    return clean


def handed_out(name: str) -> bool:
    """Whether a file or folder of the chapters folder goes to the students."""
    return not (name.startswith(".") or name in SKIPPED_NAMES or name.endswith(".pt"))


def read_folder(folder: Path) -> Files:
    """The chapters in `folder`: regular files (no links), without hidden names, caches,
    checkpoints or the folder's lint settings."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HandoutError(f"{folder} is not a folder")
    files: Files = {}
    for parent, folders, names in os.walk(folder):
        folders[:] = sorted(d for d in folders if handed_out(d))
        for name in sorted(names):
            path = Path(parent) / name
            if handed_out(name) and stat.S_ISREG(path.lstat().st_mode):
                files[check_name(path.relative_to(folder).as_posix())] = path.read_bytes()
    return files


def pack(files: Mapping[str, bytes]) -> bytes:
    """`files` as an uncompressed tar archive (root-owned, mode 644: no one's ids leak)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(check_name(name))
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def unpack(stream: IO[bytes]) -> Files:
    """The files of a tar archive read from `stream`, checked member by member (Python 3.11's
    tarfile has no extraction filter): regular files and folders only, relative paths."""
    files: Files = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if member.isdir():
                    check_name(member.name)
                    continue
                if not member.isfile():
                    raise HandoutError(f"{member.name!r}: not a regular file or folder")
                reader = archive.extractfile(member)
                assert reader is not None  # a regular file always has one
                files[check_name(member.name)] = reader.read()
    except tarfile.TarError as error:
        raise HandoutError(f"not a valid tar archive: {error}") from None
    return files


def current_digest(path: Path) -> str | None:
    """sha256 of a regular file, None if nothing is there, or a note that never equals a
    digest (a link, a folder: the student's own)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return sha256(path.read_bytes())


def blocked_folder(copy: Path, folder: PurePosixPath) -> str | None:
    """Why `folder` (relative to `copy`) cannot be written in (None when each folder on the way
    is a real folder or absent): a link or a file in the way belongs to the student."""
    here = copy
    for part in folder.parts:
        here = here / part
        try:
            mode = here.lstat().st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(mode):
            return f"{here.relative_to(copy)} is not a folder"
    return None


def write(target: Path, content: bytes, mode: int) -> None:
    """Write `content` to a temporary name next to `target`, then rename it over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def remove_temporaries(copy: Path, files: Mapping[str, bytes]) -> None:
    """Remove what an interrupted update left: its temporary files, in the folders it writes."""
    for folder in {PurePosixPath(), *(PurePosixPath(path).parent for path in files)}:
        if blocked_folder(copy, folder) or not (copy / folder).is_dir():
            continue
        for entry in (copy / folder).iterdir():
            name = entry.name
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                if stat.S_ISREG(entry.lstat().st_mode):
                    entry.unlink(missing_ok=True)


def read_manifest(copy: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(handed-out file -> sha256, new-version file -> sha256) from the copy's manifest; empty
    when it is missing or unreadable."""
    try:
        data = json.loads((copy / MANIFEST).read_text())
        files, beside = data["files"], data["new_versions"]
        if all(isinstance(v, str) for v in [*files.values(), *beside.values()]):
            return dict(files), dict(beside)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {}, {}


def update(files: Mapping[str, bytes], copy: Path) -> Report:
    """Hand `files` out into `copy` by the rules in this module's docstring."""
    files = {check_name(name): content for name, content in files.items()}
    copy = Path(copy)
    if copy.is_symlink() or (copy.exists() and not copy.is_dir()):
        raise HandoutError(f"{copy} is not a folder: move it away to get the chapters there")
    copy.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
    remove_temporaries(copy, files)
    old_files, old_beside = read_manifest(copy)
    new_files: dict[str, str] = {}
    new_beside = {b: d for b, d in old_beside.items() if current_digest(copy / b) == d}
    report = Report()
    for path, content in sorted(files.items()):
        digest, target = sha256(content), copy / path
        why = blocked_folder(copy, PurePosixPath(path).parent)
        if why:
            report.skipped.append((path, why))
            if path in old_files:
                new_files[path] = old_files[path]
            continue
        current = current_digest(target)
        if current is None:
            write(target, content, mode)
            (report.restored if path in old_files else report.added).append(path)
        elif current == old_files.get(path) and current != digest:
            write(target, content, mode)
            report.updated.append(path)
        elif current != digest and digest == old_files.get(path):
            pass  # the student's changes to the version handed out last time: nothing new
        elif current != digest:  # changed by the student (or never handed out by us)
            beside = beside_name(path)
            there = current_digest(copy / beside)
            if there is None or (there != digest and there == old_beside.get(beside)):
                write(copy / beside, content, mode)
            elif there != digest:  # tried again at each update, reported each time
                report.skipped.append((path, f"{beside} holds your changes"))
                if path in old_files:
                    new_files[path] = old_files[path]
                continue
            new_beside[beside] = digest
            report.kept.append((path, beside))
        new_files[path] = digest
    manifest = {"files": new_files, "new_versions": new_beside}
    write(copy / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode(), mode)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_course.handout",
        description="Hand the chapters out into COPY: files the student changed are kept, and "
        "the new version goes beside them as 'NAME (new version).EXT'.",
    )
    parser.add_argument("copy", nargs="?", type=Path, help="the student's copy (a folder)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="folder", type=Path, help="the chapters' folder")
    source.add_argument("--archive", help="the chapters as a tar archive ('-': stdin)")
    source.add_argument("--pack", type=Path, help="write FOLDER as a tar archive to stdout")
    args = parser.parse_args(argv)
    try:
        if args.pack is not None:
            sys.stdout.buffer.write(pack(read_folder(args.pack)))
            return 0
        if args.copy is None:
            parser.error("COPY is needed with --from and --archive")
        if args.folder is not None:
            files = read_folder(args.folder)
        elif args.archive == "-":
            files = unpack(sys.stdin.buffer)
        else:
            with open(args.archive, "rb") as stream:
                files = unpack(stream)
        report = update(files, args.copy)
    except (HandoutError, OSError) as error:
        print(f"mnist_course.handout: {error}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
