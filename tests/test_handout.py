"""Handing the chapters out and handing out new versions (mnist_course.handout): what the hub
runs at each start of a student's server, tested here without a hub."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mnist_course import handout

CH1, CH2, GLOSSARY = "01_cross_entropy_numpy.ipynb", "02_cross_entropy_pytorch.ipynb", "glossary.md"
BESIDE = "01_cross_entropy_numpy (new version).ipynb"
V1 = {CH1: b'{"v": 1}', CH2: b'{"chapter": 2}', GLOSSARY: b"# Glossary\n", "img/a.png": b"png1"}
V2 = {**V1, CH1: b'{"v": 2}'}
V3 = {**V1, CH1: b'{"v": 3}'}


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too), by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def visible(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in contents(folder).items() if k != handout.MANIFEST}


def test_the_first_handout_copies_the_chapters_and_records_them(tmp_path):
    copy = tmp_path / "home" / "mnist-course"
    report = handout.update(V1, copy)
    assert visible(copy) == V1
    assert sorted(report.added) == sorted(V1)
    assert (copy / handout.MANIFEST).is_file()  # hidden: JupyterLab does not list it


def test_an_unchanged_chapter_is_replaced_and_a_changed_one_kept_with_the_new_beside(tmp_path):
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    for copy in (ann, bob):
        handout.update(V1, copy)
    (ann / CH1).write_bytes(b'{"v": 1, "my": "notes"}')  # Ann edits chapter 1; Bob does not

    # The same version at the next login: Ann's edit stays, with nothing beside it.
    assert handout.update(V1, ann).lines() == []
    assert visible(ann) == {**V1, CH1: b'{"v": 1, "my": "notes"}'}

    bob_report = handout.update(V2, bob)
    assert visible(bob) == V2
    assert bob_report.updated == [CH1] and not bob_report.kept

    ann_report = handout.update(V2, ann)
    assert visible(ann) == {**V1, CH1: b'{"v": 1, "my": "notes"}', BESIDE: V2[CH1]}
    assert ann_report.kept == [(CH1, BESIDE)] and not ann_report.updated
    assert f"kept your changes: {CH1} (the new version is {BESIDE})" in ann_report.lines()

    # The same version again (every login): nothing changes.
    handout.update(V2, ann)
    handout.update(V2, bob)
    assert visible(ann) == {**V1, CH1: b'{"v": 1, "my": "notes"}', BESIDE: V2[CH1]}
    assert visible(bob) == V2

    # A third version: Ann's untouched "(new version)" file is replaced too; her edit stays.
    handout.update(V3, ann)
    handout.update(V3, bob)
    assert visible(ann) == {**V1, CH1: b'{"v": 1, "my": "notes"}', BESIDE: V3[CH1]}
    assert visible(bob) == V3


def test_a_new_version_the_student_edited_is_not_overwritten(tmp_path):
    copy = tmp_path / "ann"
    handout.update(V1, copy)
    (copy / CH1).write_bytes(b"mine")
    handout.update(V2, copy)
    (copy / BESIDE).write_bytes(b"mine too")  # she works in the new version as well
    report = handout.update(V3, copy)
    assert (copy / CH1).read_bytes() == b"mine"
    assert (copy / BESIDE).read_bytes() == b"mine too"
    assert report.skipped == [(CH1, f"{BESIDE} holds your changes")]
    assert f"not updated: {CH1}: {BESIDE} holds your changes" in report.lines()
    assert handout.update(V3, copy).skipped == report.skipped  # said again at each update

    (copy / BESIDE).rename(copy / "my version of chapter 1.ipynb")  # she moves it away
    assert handout.update(V3, copy).kept == [(CH1, BESIDE)]
    assert (copy / BESIDE).read_bytes() == V3[CH1]
    assert (copy / "my version of chapter 1.ipynb").read_bytes() == b"mine too"


def test_a_deleted_chapter_comes_back_and_the_students_own_files_are_never_touched(tmp_path):
    copy = tmp_path / "ann"
    handout.update(V1, copy)
    (copy / CH2).unlink()
    (copy / "img" / "a.png").unlink()
    own = {"my_notes.ipynb": b"mine", "img/mine.png": b"drawn", "work/x.py": b"x = 1",
           ".ipynb_checkpoints/01-checkpoint.ipynb": b"checkpoint"}  # fmt: skip
    for name, content in own.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(content)
    times = {name: (copy / name).stat().st_mtime_ns for name in own}

    report = handout.update(V2, copy)
    assert sorted(report.restored) == [CH2, "img/a.png"]
    assert visible(copy) == {**V2, **own}
    assert {name: (copy / name).stat().st_mtime_ns for name in own} == times


def test_a_copy_without_a_manifest_keeps_every_file_that_differs(tmp_path):
    """A copy made before the manifest existed: identical files are recorded, the others kept."""
    copy = tmp_path / "ann"
    copy.mkdir()
    (copy / CH1).write_bytes(b"edited or old")
    (copy / CH2).write_bytes(V2[CH2])
    report = handout.update(V2, copy)
    assert report.kept == [(CH1, BESIDE)]
    assert (copy / CH1).read_bytes() == b"edited or old"
    assert (copy / BESIDE).read_bytes() == V2[CH1]
    (copy / handout.MANIFEST).write_text("not json")  # a damaged manifest: the same rule
    handout.update(V3, copy)
    assert (copy / CH1).read_bytes() == b"edited or old"
    assert (copy / CH2).read_bytes() == V3[CH2]


def test_links_and_folders_in_the_way_are_the_students_and_not_followed(tmp_path):
    copy, outside = tmp_path / "ann", tmp_path / "outside.txt"
    outside.write_bytes(b"not the course's")
    handout.update(V1, copy)
    (copy / CH1).unlink()
    (copy / CH1).symlink_to(outside)
    (copy / "img" / "a.png").unlink()
    (copy / "img").rmdir()
    (copy / "img").symlink_to(tmp_path)
    report = handout.update(V2, copy)
    assert outside.read_bytes() == b"not the course's"
    assert (copy / CH1).is_symlink() and (copy / BESIDE).read_bytes() == V2[CH1]
    assert report.skipped == [("img/a.png", "img is not a folder")]
    assert not (tmp_path / "a.png").exists()

    link = tmp_path / "link"
    link.symlink_to(copy)
    with pytest.raises(handout.HandoutError, match="is not a folder"):
        handout.update(V2, link)


def test_an_interrupted_update_leaves_each_file_whole_and_the_next_one_finishes(
    tmp_path, monkeypatch
):
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    for copy in (ann, bob):
        handout.update(V1, copy)
    (ann / CH1).write_bytes(b"mine")
    new = {**V2, CH2: b'{"chapter": 2, "fixed": true}', "img/a.png": b"png2"}

    real_fsync, calls = os.fsync, []

    def fail_on_the_second_file(fd):
        calls.append(fd)
        if len(calls) == 2:  # the disk fills up (or the hub is stopped) mid-write
            raise OSError("No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(handout.os, "fsync", fail_on_the_second_file)
    for copy in (ann, bob):
        calls.clear()
        before = visible(copy)
        with pytest.raises(OSError, match="No space"):
            handout.update(new, copy)
        allowed = {name: {before.get(name), new.get(name)} for name in {*before, *new}}
        allowed[BESIDE] = {new[CH1]}  # Ann's copy gets the new chapter 1 beside hers
        for name, content in visible(copy).items():  # each file is the old one or the new one
            assert content in allowed[name], name
        assert not [p for p in copy.rglob(f"{handout.TEMP_PREFIX}*")]
    monkeypatch.setattr(handout.os, "fsync", real_fsync)

    # A killed update leaves its temporary file behind: the next update removes it.
    (bob / "img" / f"{handout.TEMP_PREFIX}abc{handout.TEMP_SUFFIX}").write_bytes(b"half")
    for copy in (ann, bob):
        handout.update(new, copy)
    assert visible(bob) == new
    assert visible(ann) == {**new, CH1: b"mine", BESIDE: new[CH1]}


def tar_with(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, content in members:
            info.size = len(content) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(content) if info.isfile() else None)
    buffer.seek(0)
    return buffer


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_an_archive_holds_relative_regular_files_and_folders():
    files = {**V1, "sub/deeper/x.md": b"x"}
    assert handout.unpack(io.BytesIO(handout.pack(files))) == files
    folder = member("./sub", tarfile.DIRTYPE)
    assert handout.unpack(tar_with((folder, b""), (member("./sub/b.md"), b"b"))) == {
        "sub/b.md": b"b"
    }
    with pytest.raises(handout.HandoutError, match="not a valid tar archive"):
        handout.unpack(io.BytesIO(b"not a tar archive" * 100))


@pytest.mark.parametrize(
    "bad",
    [
        member("/etc/passwd"),
        member("../outside"),
        member("a/../../outside"),
        member("../outside", tarfile.DIRTYPE),
        member("link", tarfile.SYMTYPE, "/etc/shadow"),
        member("hard", tarfile.LNKTYPE, "ok.md"),
        member("dev", tarfile.CHRTYPE),
        member("fifo", tarfile.FIFOTYPE),
        member(handout.MANIFEST),
    ],
    ids=lambda info: f"{info.name} ({info.type.decode()})",
)
def test_an_archive_with_anything_else_is_refused(bad):
    with pytest.raises(handout.HandoutError):
        handout.unpack(tar_with((member("ok.md"), b"ok"), (bad, b"x")))


def test_a_chapters_folder_is_read_without_hidden_files_caches_or_links(tmp_path):
    chapters = tmp_path / "notebooks"
    for name, content in V1.items():
        (chapters / name).parent.mkdir(parents=True, exist_ok=True)
        (chapters / name).write_bytes(content)
    for junk in (".ipynb_checkpoints/x.ipynb", "__pycache__/a.pyc", "ruff.toml", "model.pt",
                 ".hidden"):  # fmt: skip
        (chapters / junk).parent.mkdir(parents=True, exist_ok=True)
        (chapters / junk).write_bytes(b"junk")
    (chapters / "link.md").symlink_to(chapters / GLOSSARY)
    assert handout.read_folder(chapters) == V1


def test_the_command_line_reads_an_archive_on_stdin(tmp_path):
    chapters, copy = tmp_path / "notebooks", tmp_path / "home" / "mnist-course"
    chapters.mkdir()
    for name, content in V1.items():
        (chapters / name).parent.mkdir(parents=True, exist_ok=True)
        (chapters / name).write_bytes(content)
    python = [sys.executable, "-I", "-m", "mnist_course.handout"]
    packed = subprocess.run([*python, "--pack", str(chapters)], capture_output=True, timeout=60)
    assert packed.returncode == 0, packed.stderr
    done = subprocess.run([*python, str(copy), "--archive", "-"], input=packed.stdout,
                          capture_output=True, text=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert visible(copy) == V1
    assert f"added: {CH1}" in done.stdout.decode().splitlines()

    (copy / CH1).write_bytes(b"mine")
    (chapters / CH1).write_bytes(V2[CH1])
    done = subprocess.run([*python, str(copy), "--from", str(chapters)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"kept your changes: {CH1} (the new version is {BESIDE})"]

    evil = tar_with((member("../escape.md"), b"x")).getvalue()
    done = subprocess.run([*python, str(copy), "--archive", "-"], input=evil,
                          capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert b"'../escape.md': not a path inside the copy" in done.stderr
    assert not (copy.parent / "escape.md").exists()
