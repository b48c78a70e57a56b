"""Learner copies: valid notebooks, no answer code, and checkers that fail with a hint."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mnist_course import cli, student

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WITH_EXERCISES = [
    p
    for p in CHAPTERS
    if any("answer" in c.metadata.get("tags", []) for c in nbformat.read(p, as_version=4).cells)
]


def test_stub_source_keeps_the_signature():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert student.stub_source(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )


@pytest.mark.parametrize(
    "source", ["def f(x):\n    return x\n", "### BEGIN SOLUTION\nx = 1\n", "### END SOLUTION\n"]
)
def test_stub_source_rejects_unmarked_or_unbalanced_cells(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        student.stub_source(source)


def test_there_are_exercises_to_hand_out():
    assert [p.name for p in WITH_EXERCISES] == [
        "01_cross_entropy_numpy.ipynb",
        "02_cross_entropy_pytorch.ipynb",
    ]


def answer_lines(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    lines = []
    for cell in nb.cells:
        if "answer" in cell.metadata.get("tags", []):
            block = cell.source.split(student.BEGIN)[1].split(student.END)[0]
            lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


def test_make_student_copies(tmp_path, capsys):
    assert cli.main(["student", *map(str, CHAPTERS), "--out", str(tmp_path)]) == 0
    assert "wrote 6 learner notebooks" in capsys.readouterr().out
    for path in CHAPTERS:
        copy = nbformat.read(tmp_path / path.name, as_version=4)
        nbformat.validate(copy)
        text = (tmp_path / path.name).read_text(encoding="utf-8")
        assert "SOLUTION" not in text
        for line in answer_lines(path):
            assert line not in text, f"answer code left in the learner copy of {path.name}: {line}"
        for cell in copy.cells:
            if {"answer", "checker"} & set(cell.metadata.get("tags", [])):
                assert cell.outputs == [] and cell.execution_count is None


def test_student_rejects_a_non_notebook(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("x")
    assert cli.main(["student", str(tmp_path / "x.txt"), "--out", str(tmp_path)]) == 1
    assert "is not a notebook" in capsys.readouterr().err


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_checkers_fail_with_a_hint_on_the_stubs(path, tmp_path):
    copy = student.learner_copy(nbformat.read(path, as_version=4))
    NotebookClient(copy, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    checkers = [c for c in copy.cells if "checker" in c.metadata.get("tags", [])]
    assert checkers
    for cell in checkers:
        (output,) = cell.outputs
        text = output["data"]["text/plain"]
        assert text.startswith("Not yet") and "not written yet" in text, text
