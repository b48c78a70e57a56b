"""`mnist-course grade`: runs learner notebooks in a fresh kernel and grades every exercise.

Most tests grade small notebooks written here, whose checkers are built with the
course's own framework (:mod:`mnist_course.exercises`) on toy functions; the last
two grade the real chapters and their learner copies (one shared run).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from mnist_course import cli, grade, student

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("0[1-9]_*.ipynb"))

SETUP = """\
from mnist_course import exercises, quiz


@exercises.checker("double")
def check_double(fn):
    got = exercises.as_float(exercises.call(fn, 2.0))
    if got != 4.0:
        raise exercises.NotYet(f"double(2) gave {got:g}, expected 4.", "x + x")
    return "double(2) == 4."


@exercises.checker("square")
def check_square(fn):
    got = exercises.as_float(exercises.call(fn, 3.0))
    if got != 9.0:
        raise exercises.NotYet(f"square(3) gave {got:g}, expected 9.", "x * x")
    return "square(3) == 9."


KEY = {1: quiz.Question("b", "Because."), 2: quiz.Question(4, "2 + 2.", 0.1)}
"""


def code(source: str, tags: tuple[str, ...] = (), exercise: str | None = None):
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    if exercise:
        cell.metadata["exercise"] = exercise
    return cell


def answer(name: str, body: str):
    source = f"def {name}(x):\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION\n"
    return code(source, ("answer",), name)


def checker(name: str):
    return code(f"check_{name}({name})", ("checker",), name)


QUIZ = code(
    'answers = {}\n### BEGIN SOLUTION\nanswers = {1: "b", 2: 4}\n### END SOLUTION\n'
    'quiz.check("chapter 99", KEY, answers)',
    ("quiz",),
)


def toy(*extra) -> nbformat.NotebookNode:
    """A solved two-exercise notebook with a quiz; ``extra`` cells go after the setup."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 · A toy chapter"),
        code(SETUP),
        *extra,
        answer("double", "return x + x"),
        checker("double"),
        answer("square", "return x * x"),
        checker("square"),
        QUIZ,
    ]
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def statuses(graded: grade.Graded) -> dict[str, str]:
    return {name: r.status for name, r in graded.exercises.items()}


@pytest.fixture(scope="module")
def solved_and_stubbed(tmp_path_factory):
    """The toy notebook and its learner copy (as `make student` writes it), both graded."""
    folder = tmp_path_factory.mktemp("toy")
    writes = code('open("written.txt", "w").write("a file the notebook writes")')
    solved = write(toy(writes), folder / "teacher" / "99_toy.ipynb")
    learner = write(student.learner_copy(nbformat.read(solved, 4)), folder / "learner/99_toy.ipynb")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (solved, learner)}
    graded = [grade.grade_notebook(p, timeout=120) for p in (solved, learner)]
    return solved, learner, graded, before


def test_a_solved_notebook_is_all_correct(solved_and_stubbed):
    _, _, (solved, _), _ = solved_and_stubbed
    assert statuses(solved) == {"double": "correct", "square": "correct"}
    assert solved.exercises["double"].message == "double(2) == 4."
    assert solved.quiz == "2/2" and solved.all_correct


def test_a_learner_copy_is_all_not_yet(solved_and_stubbed):
    _, _, (_, learner), _ = solved_and_stubbed
    assert statuses(learner) == {"double": "not yet", "square": "not yet"}
    assert "not written yet" in learner.exercises["square"].message
    assert learner.quiz == "0/2" and not learner.all_correct


def test_grading_never_touches_the_notebooks_or_their_folder(solved_and_stubbed):
    solved, learner, _, before = solved_and_stubbed
    for path, (data, mtime) in before.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
        assert sorted(p.name for p in path.parent.iterdir()) == ["99_toy.ipynb"]


def test_an_exercise_cell_that_raises_is_an_error_and_later_cells_still_run(tmp_path):
    nb = toy()
    raising = "scale = 1 / 0\n\n\ndef double(x):\n    return scale * x"
    nb.cells[2] = code(raising, ("answer",), "double")  # raises before defining double
    nb.cells[4] = code("def square(x):\n    return x.no_such_thing", ("answer",), "square")
    graded = grade.grade_notebook(write(nb, tmp_path / "99_toy.ipynb"), timeout=120)
    double, square = graded.exercises["double"], graded.exercises["square"]
    assert double == grade.Result(
        "error", "in the answer cell: ZeroDivisionError: division by zero"
    )
    # the learner's function raising inside the checker is the checker's "Not yet", not a crash
    assert square.status == "not yet" and "AttributeError" in square.message
    assert graded.quiz == "2/2"  # the cells after the error ran


def test_a_checker_cell_that_raises_gives_the_first_line_of_the_error(tmp_path):
    nb = toy()
    nb.cells[3] = code("check_double(dubble)", ("checker",), "double")
    graded = grade.grade_notebook(write(nb, tmp_path / "99_toy.ipynb"), timeout=120)
    assert graded.exercises["double"] == grade.Result(
        "error", "NameError: name 'dubble' is not defined"
    )
    assert graded.exercises["square"].status == "correct"


@pytest.mark.parametrize(
    "source",
    [
        'print("Correct (double): double(2) == 4.")',  # the verdict typed by hand
        "check_double(double)\nprint('Correct (double): yes')",
        "check_double(lambda x: 4.0)",  # passes the checker without the answer
        "check_square(square)",  # another exercise's checker
    ],
)
def test_a_changed_checker_cell_is_an_error_whatever_it_printed(tmp_path, source):
    nb = toy()
    nb.cells[2] = answer("double", "return x")  # wrong
    nb.cells[3] = code(source, ("checker",), "double")
    graded = grade.grade_notebook(write(nb, tmp_path / "99_toy.ipynb"), timeout=120)
    assert graded.exercises["double"] == grade.Result(
        "error",
        "the checker cell was changed: it should hold only the call check_double(...) on your "
        "answer; copy it back from the chapter",
    )
    assert graded.exercises["square"].status == "correct"


def test_a_real_chapter_checker_must_call_its_chapter_module():
    call = "chapter01.check_softmax(softmax)"
    assert grade._is_checker_call(call + "  # run this cell", "softmax", "chapter01")
    assert not grade._is_checker_call(call, "softmax", "chapter02")
    assert not grade._is_checker_call("mine.check_softmax(softmax)", "softmax", "chapter01")


def test_deleted_cells_show_as_errors_not_as_missing_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(grade, "expected_exercises", lambda chapter: ("double", "square"))
    nb = toy()
    del nb.cells[5]  # the square checker
    del nb.cells[2]  # the double answer
    graded = grade.grade_notebook(write(nb, tmp_path / "99_toy.ipynb"), timeout=120)
    assert graded.exercises["double"] == grade.Result(
        "error", "NameError: name 'double' is not defined"
    )
    assert graded.exercises["square"] == grade.Result(
        "error", "no checker cell for this exercise (was it deleted?)"
    )


def test_the_exercise_list_comes_from_the_chapter_module():
    assert grade.chapter_of(Path("class/ann/05_mnist_mlp.ipynb")) == "05"
    assert grade.chapter_of(Path("mnist_mlp.ipynb")) is None
    assert grade.expected_exercises("99") == ()  # no mnist_course.chapter99
    assert grade.expected_exercises(None) == ()


def test_a_notebook_that_loops_past_the_timeout(tmp_path):
    """The exercises after the loop get 'timed out'; those before it keep their grade."""
    nb = toy()
    nb.cells.insert(4, code("while True:\n    pass"))
    graded = grade.grade_notebook(write(nb, tmp_path / "99_toy.ipynb"), timeout=25)
    assert graded.exercises["double"].status == "correct"
    assert graded.exercises["square"] == grade.Result("error", "timed out after 25 s")
    assert graded.quiz == "not run"
    assert graded.seconds < 60  # the looping kernel was stopped


def test_a_notebook_whose_kernel_dies(tmp_path):
    nb = toy()
    nb.cells.insert(4, code("import os\n\nos._exit(1)"))
    graded = grade.grade_notebook(write(nb, tmp_path / "99_toy.ipynb"), timeout=120)
    assert graded.exercises["double"].status == "correct"
    assert graded.exercises["square"] == grade.Result(
        "error", "the checker cell did not run (the kernel died)"
    )


def test_a_folder_per_learner_table_json_and_exit_code(tmp_path, capsys):
    classroom = tmp_path / "class"
    write(toy(), classroom / "ann" / "99_toy.ipynb")
    stubbed = student.learner_copy(toy())
    write(stubbed, classroom / "ben" / "99_toy.ipynb")
    write(stubbed, classroom / "ben" / ".ipynb_checkpoints" / "99_toy-checkpoint.ipynb")
    (classroom / "ben" / "broken.ipynb").write_text("{not json")
    out = tmp_path / "grades.json"
    code_ = grade.main([classroom], json_out=out, timeout=120)
    table = capsys.readouterr().out
    assert code_ == 1
    lines = table.splitlines()
    assert lines[:4] == [
        "chapter 99",
        "notebook          double   square   quiz",
        "ann/99_toy.ipynb  correct  correct  2/2",
        "ben/99_toy.ipynb  not yet  not yet  0/2",
    ]
    assert "ben/broken.ipynb" in table and "checkpoint" not in table
    assert lines[-1] == "2 of 4 exercises correct in 3 notebooks"
    report = json.loads(out.read_text())
    assert [n["notebook"] for n in report["notebooks"]] == [
        "ann/99_toy.ipynb",
        "ben/99_toy.ipynb",
        "ben/broken.ipynb",
    ]
    ben = report["notebooks"][1]
    assert ben["exercises"]["double"]["status"] == "not yet" and ben["quiz"] == "0/2"
    assert report["all_correct"] is False
    assert grade.main([classroom / "ann"], timeout=120) == 0
    assert "2 of 2 exercises correct in 1 notebooks" in capsys.readouterr().out


def test_errors_are_listed_under_the_table(tmp_path, capsys):
    nb = toy()
    nb.cells[3] = code("check_double(dubble)", ("checker",), "double")
    path = write(nb, tmp_path / "99_toy.ipynb")
    assert grade.main([path], timeout=120) == 1
    table = capsys.readouterr().out
    assert "error [1]" in table
    assert f"[1] {path.as_posix()}, double: NameError: name 'dubble' is not defined" in table


def test_bad_paths_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert grade.main([tmp_path / "notes.txt"]) == 2
    assert "is not a notebook" in capsys.readouterr().err
    assert grade.main([tmp_path / "nowhere"]) == 2
    (tmp_path / "empty").mkdir()
    assert grade.main([tmp_path / "empty"]) == 2
    assert "holds no notebook" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The real chapters (every exercise correct) and their learner copies (every exercise not yet)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def graded_chapters(tmp_path_factory):
    """Grade the chapters and the learner copies `mnist-course student` writes (one run each)."""
    learners = tmp_path_factory.mktemp("student")
    student.write_learner_copies(CHAPTERS, learners)
    env = os.environ.copy()
    try:
        os.environ.setdefault("MNIST_COURSE_DEVICE", "cpu")
        teacher = [grade.grade_notebook(p, p.name) for p in CHAPTERS]
        learner = [grade.grade_notebook(learners / p.name, p.name) for p in CHAPTERS]
    finally:
        os.environ.clear()
        os.environ.update(env)
    print("\nsolved chapters:\n" + grade.format_table(teacher))
    print("\nlearner copies:\n" + grade.format_table(learner))
    return teacher, learner


def expected(path: Path) -> tuple[str, ...]:
    return importlib.import_module(f"mnist_course.chapter{path.name[:2]}").EXERCISES


def test_the_chapters_grade_all_correct(graded_chapters):
    teacher, _ = graded_chapters
    assert [p.name[:2] for p in CHAPTERS] == ["01", "02", "03", "04", "05", "06", "07"]
    for path, graded in zip(CHAPTERS, teacher, strict=True):
        assert tuple(graded.exercises) == expected(path), path.name
        assert statuses(graded) == dict.fromkeys(expected(path), "correct"), graded.exercises
        score = re.fullmatch(r"(\d+)/(\d+)", graded.quiz or "")
        assert score and score[1] == score[2] and int(score[2]) >= 3, (path.name, graded.quiz)


def test_the_learner_copies_grade_all_not_yet(graded_chapters):
    _, learner = graded_chapters
    for path, graded in zip(CHAPTERS, learner, strict=True):
        assert statuses(graded) == dict.fromkeys(expected(path), "not yet"), graded.exercises
        assert re.fullmatch(r"0/\d+", graded.quiz or ""), path.name


def test_the_command_line_grades_a_folder(solved_and_stubbed, tmp_path, capsys):
    solved, _, _, _ = solved_and_stubbed
    out = tmp_path / "grades.json"
    assert cli.main(["grade", str(solved.parent), "--json", str(out), "--timeout", "120"]) == 0
    assert "2 of 2 exercises correct in 1 notebooks" in capsys.readouterr().out
    assert json.loads(out.read_text())["all_correct"] is True
