"""Learner copies: valid notebooks, no answer code, no quiz answers, no stored outputs.

That the checkers of every chapter say "Not yet" on the learner copies (and the
quizzes "0 of n right") is tested by running them: tests/test_journey.py grades them, cut
down to the cells the exercises touch; the cells it leaves out are handed out unchanged
(`test_make_student_copies`), so they run as in the solved chapter.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mnist_course import cli, quiz, student

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
    assert [p.name[:2] for p in WITH_EXERCISES] == ["01", "02", "03", "04", "05", "06", "07"]


def solution_lines(cell) -> set[str]:
    """The non-blank lines between the solution markers of an answer or quiz cell."""
    block = cell.source.split(student.BEGIN)[1].split(student.END)[0]
    return {line.strip() for line in block.splitlines() if line.strip()}


def test_make_student_copies(tmp_path, capsys):
    assert cli.main(["student", *map(str, CHAPTERS), "--out", str(tmp_path)]) == 0
    assert f"wrote {len(CHAPTERS)} learner notebooks" in capsys.readouterr().out
    for path in CHAPTERS:
        original = nbformat.read(path, as_version=4)
        copy = nbformat.read(tmp_path / path.name, as_version=4)
        nbformat.validate(copy)
        assert "SOLUTION" not in (tmp_path / path.name).read_text(encoding="utf-8")
        assert "widgets" not in copy.metadata
        assert len(copy.cells) == len(original.cells)
        for before, cell in zip(original.cells, copy.cells, strict=True):
            tags = set(cell.metadata.get("tags", []))
            if {"answer", "checker", "quiz"} & tags:
                assert cell.outputs == [] and cell.execution_count is None
            if {"answer", "quiz"} & tags:
                kept = solution_lines(before) & {line.strip() for line in cell.source.splitlines()}
                assert not kept, f"solution left in the learner copy of {path.name}: {kept}"
            if "quiz" in tags:
                assert "# YOUR ANSWERS HERE" in cell.source, path.name
            if not {"answer", "checker", "quiz"} & tags:
                assert cell == before  # the rest of the chapter is handed out as it is


def test_student_rejects_a_non_notebook(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("x")
    assert cli.main(["student", str(tmp_path / "x.txt"), "--out", str(tmp_path)]) == 1
    assert "is not a notebook" in capsys.readouterr().err


QUIZ_CELL = """\
answers = {}
### BEGIN SOLUTION
answers = {1: "b", 2: 2.303, 3: "a"}
### END SOLUTION
chapter99.check_quiz(answers)"""
KEY = {
    1: quiz.Question("b", "B is right."),
    2: quiz.Question(2.303, "ln 10.", 0.01),
    3: quiz.Question("a", "A is right."),
}


def run_quiz_cell(source: str) -> quiz.QuizResult:
    """Run a quiz cell's code the way the kernel does; returns what its last line shows."""
    *body, last = source.splitlines()
    chapter99 = type(
        "chapter99", (), {"check_quiz": staticmethod(lambda a: quiz.check("c", KEY, a))}
    )
    scope = {"chapter99": chapter99}
    exec("\n".join(body), scope)
    return eval(last, scope)


def test_stub_quiz_names_the_questions_but_not_the_answers():
    stubbed = student.stub_quiz(QUIZ_CELL)
    assert stubbed == (
        "answers = {}\n"
        "# answers = {1: ..., 2: ..., 3: ...}  # YOUR ANSWERS HERE\n"
        "chapter99.check_quiz(answers)"
    )
    assert run_quiz_cell(QUIZ_CELL).right == 3  # the teacher's cell: all right
    result = run_quiz_cell(stubbed)
    assert (result.right, result.total) == (0, 3)
    assert result.lines == ("1. not answered yet.", "2. not answered yet.", "3. not answered yet.")


def test_stub_quiz_keeps_indentation_and_rejects_a_cell_without_answers():
    indented = "if True:\n    ### BEGIN SOLUTION\n    answers = {1: 'a'}\n    ### END SOLUTION\n"
    assert student.stub_quiz(indented) == (
        "if True:\n    # answers = {1: ...}  # YOUR ANSWERS HERE\n"
    )
    for bad in ("answers = {1: 'a'}", "### BEGIN SOLUTION\nanswers = 1\n### END SOLUTION"):
        with pytest.raises(ValueError, match="SOLUTION|answers"):
            student.stub_quiz(bad)


def test_learner_copy_clears_quiz_output_and_widget_state():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cell = nbformat.v4.new_code_cell(QUIZ_CELL, execution_count=1)
    cell.metadata["tags"] = ["quiz"]
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "Quiz (c): 3 of 3"})]
    other = nbformat.v4.new_code_cell("print(1)", execution_count=2)
    other.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [cell, other]
    copy = student.learner_copy(nb)
    assert "widgets" not in copy.metadata and "widgets" in nb.metadata  # the original is untouched
    assert copy.cells[0].outputs == [] and copy.cells[0].execution_count is None
    assert "2.303" not in copy.cells[0].source
    assert copy.cells[1].outputs == other.outputs  # other cells keep their outputs
