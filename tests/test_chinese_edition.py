"""The teacher's tools on the Chinese chapters (notebooks/zh/): learner copies, decks, grading."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mnist_course import grade, sandbox, slides, student, translation

ROOT = Path(__file__).resolve().parents[1]
CHINESE = sorted((ROOT / "notebooks" / "zh").glob("0*.ipynb"))


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list]]:
    """The code cells (id, source, outputs), but the language cell of a translated chapter."""
    return [
        (c.id, c.source, c.get("outputs"))
        for c in nb.cells
        if c.cell_type == "code" and not translation.is_language_cell(c)
    ]


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: p.name[:2])
def test_a_chinese_learner_copy_has_the_english_copys_stubs_and_the_chinese_text(path):
    english = ROOT / "notebooks" / path.name
    theirs = student.learner_copy(nbformat.read(path, as_version=4))
    ours = student.learner_copy(nbformat.read(english, as_version=4))
    assert code_cells(theirs) == code_cells(ours)
    assert sum(translation.is_language_cell(c) for c in theirs.cells) == 1  # it stays
    stubs = [c for c in theirs.cells if "answer" in c.metadata.get("tags", [])]
    assert all("NotImplementedError" in c.source for c in stubs)
    texts = [c.source for c in theirs.cells if c.cell_type == "markdown"]
    assert texts == [c.source for c in nbformat.read(path, 4).cells if c.cell_type == "markdown"]


def test_make_student_and_make_slides_include_the_chinese_chapters():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "mnist-course student notebooks/zh/*.ipynb --out build/student/zh" in makefile
    assert "SLIDE_NOTEBOOKS ?= notebooks/*.ipynb notebooks/zh/*.ipynb" in makefile


def test_a_chinese_deck_is_named_apart_marked_chinese_and_has_the_english_decks_slides(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(slides, "fetch_assets", lambda assets: None)  # (the decks' own test)
    name = "07_many_processes.ipynb"
    english, chinese = slides.build_decks(
        [ROOT / "notebooks" / name, ROOT / "notebooks" / "zh" / name], tmp_path
    )
    assert (english.name, chinese.name) == (
        "07_many_processes.slides.html",
        "07_many_processes.zh.slides.html",
    )
    ours, theirs = english.read_text(), chinese.read_text()
    assert '<html lang="en">' in ours and '<html lang="zh">' in theirs
    assert theirs.count("<section") == ours.count("<section")
    assert "数据并行" in theirs


def test_grading_a_chinese_learner_copy_finds_every_exercise_of_the_chapter(tmp_path):
    """The grader finds the exercises by their cells' tags, which the translation keeps: a
    Chinese learner copy of chapter 1 grades every exercise of chapter01.EXERCISES, each
    "not yet" for its stub (as tests/test_journey.py grades the English copies), in Chinese:
    the chapter's language cell runs too."""
    from mnist_course import chapter01

    name = "01_cross_entropy_numpy.ipynb"
    copy = student.learner_copy(nbformat.read(ROOT / "notebooks" / "zh" / name, as_version=4))
    path = tmp_path / "zh" / name
    path.parent.mkdir()
    nbformat.write(copy, path)
    graded = grade.grade_notebook(path, limits=sandbox.Limits(timeout=300, trusted=True))
    assert list(graded.exercises) == list(chapter01.EXERCISES)
    for result in graded.exercises.values():
        assert result.status == "not yet", result
        assert "这个函数还没有写（它抛出了 NotImplementedError）。" in result.message, result
    assert graded.quiz.startswith("0/")
