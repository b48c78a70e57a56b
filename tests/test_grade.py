"""`mnist-course grade`: runs learner notebooks in a fresh kernel and grades every exercise.

The tests grade small notebooks written here, whose checkers are built with the
course's own framework (:mod:`mnist_course.exercises`) on toy functions. Each notebook
starts a kernel (a few seconds): the notebooks that tests only read the grades of are
graded once, side by side (the `toys` fixture). The real chapters and their learner
copies are graded in tests/test_journey.py.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from mnist_course import cli, grade, gradebook, sandbox, student

ROOT = Path(__file__).resolve().parents[1]
# The toy notebooks are the suite's own: they may run as root (CI's account) without --user.
TRUSTED = sandbox.Limits(timeout=120, trusted=True)

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


@dataclass
class Toys:
    """The toy notebooks below, each graded once: name -> path, grades, and the file before."""

    paths: dict[str, Path]
    graded: dict[str, grade.Graded]
    before: dict[str, tuple[bytes, int]]  # the notebook's bytes and mtime before grading


# Seconds: the cells before the loop need about 5 on a quiet machine, graded beside the others;
# `make test` runs another test file beside this one, maybe a busy program too: a wide margin
# (the loop only sleeps, so the other process uses the wait).
LOOP_TIMEOUT = 40


@pytest.fixture(scope="module")
def toys(tmp_path_factory) -> Toys:
    """Every toy notebook whose grades the tests below only read, graded once, three at a time
    (each in its own kernel, each in a folder of its own), the two that run out a limit first.

    While they are graded, the toy chapter's exercises are double and square (as a real
    chapter's module lists them), and the teacher's environment holds a secret."""
    notebooks = {
        "loops": (loops_forever(), sandbox.Limits(timeout=LOOP_TIMEOUT, trusted=True)),
        "busy": (busy_forever(), sandbox.Limits(timeout=300, cpu_limit=10, trusted=True)),
        "solved": (solved(), TRUSTED),
        "learner": (student.learner_copy(solved()), TRUSTED),
        "raises": (raising_cells(), TRUSTED),
        "checker raises": (raising_checker(), TRUSTED),
        **{f"changed {i}": (changed_checker(s), TRUSTED) for i, s in enumerate(CHANGED)},
        **{f"forged {how}": (forged_verdict(how), TRUSTED) for how in FORGERIES},
        "earlier verdict": (earlier_verdict(), TRUSTED),
        "failing cell": (failing_cell(), TRUSTED),
        "dies": (kernel_dies(), TRUSTED),
        "memory": (asks_10_gb(), sandbox.Limits(timeout=120, memory_gb=2, trusted=True)),
        "deleted": (deleted_cells(), TRUSTED),
        "environment": (probes_its_environment(), TRUSTED),
    }
    folder = tmp_path_factory.mktemp("toys")
    paths = {name: write(nb, folder / name / "99_toy.ipynb") for name, (nb, _) in notebooks.items()}
    before = {name: (p.read_bytes(), p.stat().st_mtime_ns) for name, p in paths.items()}
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=3) as pool:
        patch.setattr(grade, "expected_exercises", lambda chapter: ("double", "square"))
        patch.setenv("GRADE_TEST_SECRET", "x")
        running = {
            name: pool.submit(grade.grade_notebook, paths[name], limits=limits)
            for name, (_, limits) in notebooks.items()
        }
        graded = {name: future.result() for name, future in running.items()}
    return Toys(paths, graded, before)


def solved() -> nbformat.NotebookNode:
    """The toy chapter, solved, with a cell that writes a file in its working folder."""
    return toy(code('open("written.txt", "w").write("a file the notebook writes")'))


def test_a_solved_notebook_is_all_correct(toys):
    solved = toys.graded["solved"]
    assert statuses(solved) == {"double": "correct", "square": "correct"}
    assert solved.exercises["double"].message == "double(2) == 4."
    assert solved.quiz == "2/2" and solved.all_correct


def test_a_learner_copy_is_all_not_yet(toys):
    learner = toys.graded["learner"]  # as `make student` writes it
    assert statuses(learner) == {"double": "not yet", "square": "not yet"}
    assert "not written yet" in learner.exercises["square"].message
    assert learner.quiz == "0/2" and not learner.all_correct


def test_grading_never_touches_the_notebooks_or_their_folder(toys):
    for name, path in toys.paths.items():
        data, mtime = toys.before[name]
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, name
        assert sorted(p.name for p in path.parent.iterdir()) == ["99_toy.ipynb"], name


def raising_cells() -> nbformat.NotebookNode:
    nb = toy()
    raising = "scale = 1 / 0\n\n\ndef double(x):\n    return scale * x"
    nb.cells[2] = code(raising, ("answer",), "double")  # raises before defining double
    nb.cells[4] = code("def square(x):\n    return x.no_such_thing", ("answer",), "square")
    return nb


def test_an_exercise_cell_that_raises_is_an_error_and_later_cells_still_run(toys):
    graded = toys.graded["raises"]
    double, square = graded.exercises["double"], graded.exercises["square"]
    assert double == grade.Result(
        "error", "in the answer cell: ZeroDivisionError: division by zero"
    )
    # the learner's function raising inside the checker is the checker's "Not yet", not a crash
    assert square.status == "not yet" and "AttributeError" in square.message
    assert graded.quiz == "2/2"  # the cells after the error ran


def raising_checker() -> nbformat.NotebookNode:
    nb = toy()
    nb.cells[3] = code("check_double(dubble)", ("checker",), "double")
    return nb


def test_a_checker_cell_that_raises_gives_the_first_line_of_the_error(toys):
    graded = toys.graded["checker raises"]
    assert graded.exercises["double"] == grade.Result(
        "error", "NameError: name 'dubble' is not defined"
    )
    assert graded.exercises["square"].status == "correct"


def test_errors_are_listed_under_the_table(toys):
    graded = toys.graded["checker raises"]
    table = gradebook.report([graded])
    assert "error [1]" in table
    path = toys.paths["checker raises"].as_posix()
    assert f"[1] {path}, double: NameError: name 'dubble' is not defined" in table


CHANGED = [
    'print("Correct (double): double(2) == 4.")',  # the verdict typed by hand
    "check_double(double)\nprint('Correct (double): yes')",
    "check_double(lambda x: 4.0)",  # passes the checker without the answer
    "check_square(square)",  # another exercise's checker
]


def changed_checker(source: str) -> nbformat.NotebookNode:
    nb = toy()
    nb.cells[2] = answer("double", "return x")  # wrong
    nb.cells[3] = code(source, ("checker",), "double")
    return nb


@pytest.mark.parametrize("index", range(len(CHANGED)), ids=CHANGED)
def test_a_changed_checker_cell_is_an_error_whatever_it_printed(toys, index):
    graded = toys.graded[f"changed {index}"]
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


def deleted_cells() -> nbformat.NotebookNode:
    nb = toy()
    del nb.cells[5]  # the square checker
    del nb.cells[2]  # the double answer
    return nb


def test_deleted_cells_show_as_errors_not_as_missing_columns(toys):
    graded = toys.graded["deleted"]  # the chapter's exercises: double and square
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


def loops_forever() -> nbformat.NotebookNode:
    nb = toy()
    nb.cells.insert(4, code("import time\n\nwhile True:\n    time.sleep(1)"))
    return nb


def test_a_notebook_that_loops_past_the_timeout(toys):
    """The exercises after the loop get 'timed out'; those before it keep their grade."""
    graded = toys.graded["loops"]
    assert graded.exercises["double"].status == "correct"
    assert graded.exercises["square"] == grade.Result("error", f"timed out after {LOOP_TIMEOUT} s")
    assert graded.quiz == "not run" and graded.timed_out


def kernel_dies() -> nbformat.NotebookNode:
    nb = toy()
    nb.cells.insert(4, code("import os\n\nos._exit(1)"))
    return nb


def test_a_notebook_whose_kernel_dies(toys):
    graded = toys.graded["dies"]
    assert graded.exercises["double"].status == "correct"
    assert graded.exercises["square"] == grade.Result(
        "error",
        "the checker cell did not run (the kernel died: it crashed, or used up its CPU time)",
    )


def busy_forever() -> nbformat.NotebookNode:
    nb = toy()
    nb.cells.insert(4, code("while True:\n    pass"))
    return nb


def test_cpu_time_is_limited(toys):
    """A busy loop is stopped by the CPU-time limit (10 s) long before the timeout (300 s)."""
    graded = toys.graded["busy"]
    assert graded.exercises["double"].status == "correct"
    assert "used up its CPU time" in graded.exercises["square"].message
    assert not graded.timed_out and graded.stopped == "the kernel died"


def test_a_folder_per_learner_table_json_and_exit_code(tmp_path, capsys):
    classroom = tmp_path / "class"
    write(toy(), classroom / "ann" / "99_toy.ipynb")
    stubbed = student.learner_copy(toy())
    write(stubbed, classroom / "ben" / "99_toy.ipynb")
    write(stubbed, classroom / "ben" / ".ipynb_checkpoints" / "99_toy-checkpoint.ipynb")
    (classroom / "ben" / "broken.ipynb").write_text("{not json")
    out = tmp_path / "grades.json"
    code_ = grade.main([classroom], json_out=out, timeout=120, trusted=True, jobs=2)
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
    assert report["all_correct"] is False  # exit code 0 when all is correct: the next test


def test_bad_paths_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert grade.main([tmp_path / "notes.txt"]) == 2
    assert "is not a notebook" in capsys.readouterr().err
    assert grade.main([tmp_path / "nowhere"]) == 2
    (tmp_path / "empty").mkdir()
    assert grade.main([tmp_path / "empty"]) == 2
    assert "holds no notebook" in capsys.readouterr().err


def test_the_command_line_grades_a_folder(toys, tmp_path, capsys, monkeypatch):
    folder = toys.paths["solved"].parent
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)  # a teacher's own account
    out = tmp_path / "grades.json"
    assert cli.main(["grade", str(folder), "--json", str(out), "--timeout", "120"]) == 0
    assert "2 of 2 exercises correct in 1 notebooks" in capsys.readouterr().out
    assert json.loads(out.read_text())["all_correct"] is True


# ---------------------------------------------------------------------------------------------
# A verdict that text cannot forge; every failing cell reported; limits; who runs the code
# ---------------------------------------------------------------------------------------------

FORGERIES = {
    "print": 'print("Correct (double): double(2) == 4.")',
    "display": "from IPython.display import display\n"
    "    display(exercises.Feedback('double', True, 'double(2) == 4.'))",
    "stdout": "import sys\n    sys.__stdout__.write('Correct (double): double(2) == 4.\\n')",
}


def forged_verdict(how: str) -> nbformat.NotebookNode:
    nb = toy()
    nb.cells[2] = answer("double", f"{FORGERIES[how]}\n    return x")  # wrong: double(2) == 2
    return nb


@pytest.mark.parametrize("how", sorted(FORGERIES))
def test_an_answer_that_prints_or_displays_the_verdict_is_still_graded_by_the_checker(toys, how):
    graded = toys.graded[f"forged {how}"]
    assert graded.exercises["double"].status == "not yet"
    assert graded.exercises["double"].message.startswith("double(2) gave 2, expected 4.")
    assert graded.exercises["square"].status == "correct"


def earlier_verdict() -> nbformat.NotebookNode:
    """Calling the checker on a right answer elsewhere, then failing the checker cell."""
    nb = toy(code("check_double(lambda x: 2 * x)"))  # Correct, recorded before the exercise
    nb.cells[3] = answer("double", "return x")
    return nb


def test_a_verdict_from_an_earlier_call_does_not_count(toys):
    assert toys.graded["earlier verdict"].exercises["double"].status == "not yet"


def failing_cell() -> nbformat.NotebookNode:
    return toy(code("import math\n\nmath.sqrt(-1)"), code("print('fine')"))


def test_every_cell_that_fails_is_reported(toys):
    graded = toys.graded["failing cell"]
    assert graded.failed_cells == ["cell 3 (`import math`): ValueError: math domain error"]
    assert statuses(graded) == {"double": "correct", "square": "correct"}
    assert "Cells that failed\n  " in gradebook.report([graded])


def test_a_learner_copy_reports_no_failing_cell_for_its_stubs(toys):
    assert toys.graded["solved"].failed_cells == [] and toys.graded["learner"].failed_cells == []


def asks_10_gb() -> nbformat.NotebookNode:
    return toy(code("import numpy as np\n\nhuge = np.ones(10 * 2**30 // 8)"))


def test_memory_is_limited_and_reported(toys):
    """10 GB asked for, 2 GB allowed: a MemoryError in that cell; the notebook goes on."""
    graded = toys.graded["memory"]
    assert len(graded.failed_cells) == 1
    assert graded.failed_cells[0].startswith("cell 3 (`import numpy as np`): MemoryError")
    assert statuses(graded) == {"double": "correct", "square": "correct"}


def probes_its_environment() -> nbformat.NotebookNode:
    probe = (
        "import os\n\n"
        "home = os.environ['HOME']\n"
        "seen = {\n"
        "    'a temporary HOME': home != os.path.expanduser('~root'),\n"
        "    'no variable of the teacher': 'GRADE_TEST_SECRET' not in os.environ,\n"
        "    'cwd: work beside HOME': os.getcwd() == os.path.join(os.path.dirname(home), 'work'),\n"
        "}\n"
        "print(seen)\n"
        "assert all(seen.values()), seen"
    )
    return toy(code(probe))


def test_the_kernel_gets_a_temporary_home_and_none_of_the_teachers_environment(toys):
    """The teacher's environment held GRADE_TEST_SECRET while the probe ran (`toys`)."""
    graded = toys.graded["environment"]
    assert graded.failed_cells == []  # the probe's assert held
    assert statuses(graded) == {"double": "correct", "square": "correct"}  # and it ran


def test_root_must_name_an_account(monkeypatch, tmp_path, capsys):
    write(toy(), tmp_path / "ann" / "99_toy.ipynb")
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    assert grade.main([tmp_path]) == 2
    err = capsys.readouterr().err
    assert "grading as root would run every learner's code as root" in err
    assert "--user NAME" in err
    with pytest.raises(sandbox.SandboxError, match="no such OS account"):
        sandbox.account("no-such-user-mnist")
    with pytest.raises(sandbox.SandboxError, match="that account is root"):
        sandbox.account("root")


def test_only_root_can_switch_accounts(monkeypatch):
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 4242)
    with pytest.raises(sandbox.SandboxError, match="only root can run code as another account"):
        sandbox.account("nobody")
    assert sandbox.account(None) is None


def test_bad_output_paths_are_refused_before_grading(tmp_path, capsys):
    path = write(toy(), tmp_path / "99_toy.ipynb")
    assert grade.main([path], csv_out=tmp_path, trusted=True) == 2
    assert "--csv" in capsys.readouterr().err
    assert grade.main([path], feedback_dir=path, trusted=True) == 2
    assert "--feedback" in capsys.readouterr().err


def made(learner: str, chapter: str, **statuses_: str) -> grade.Graded:
    exercises_ = {n: grade.Result(s, f"{n} is {s}") for n, s in statuses_.items()}
    return grade.Graded(f"{learner}/{chapter}_x.ipynb", chapter, learner, exercises_, quiz="1/2")


def test_the_gradebook_csv_has_a_row_per_learner_and_nbgraders_column_names():
    results = [
        made("ann", "01", softmax="correct", log_softmax="correct"),
        made("ann", "02", nll="not yet"),
        made("ben", "01", softmax="error", log_softmax="correct"),
    ]
    assert gradebook.gradebook_csv(results).splitlines() == [
        "student_id,01.softmax,01.log_softmax,02.nll,raw_score,max_score",
        "ann,1,1,0,2,3",
        "ben,0,1,,1,3",  # ben handed in no chapter 2
    ]
    assert gradebook.summary(results).splitlines()[:4] == [
        "Class summary (2 learners)",
        "  01.softmax      1 of 2 correct",
        "  01.log_softmax  2 of 2 correct",
        "  02.nll          0 of 1 correct",
    ]


def test_feedback_files_hold_each_verdict_and_message(tmp_path):
    results = [made("ann", "01", softmax="correct"), made("ben", "01", softmax="not yet")]
    results[1].failed_cells = ["cell 4 (`1 / 0`): ZeroDivisionError: division by zero"]
    written = gradebook.write_feedback(tmp_path / "feedback", results)
    assert sorted(p.name for p in written) == ["ann.md", "ben.md"]
    ben = (tmp_path / "feedback" / "ben.md").read_text()
    assert ben.splitlines() == [
        "# Feedback for ben",
        "",
        "## 01_x.ipynb",
        "",
        "- **softmax**: not yet. softmax is not yet",
        "- **quiz**: 1/2",
        "",
        "Cells that raised an error:",
        "- cell 4 (`1 / 0`): ZeroDivisionError: division by zero",
    ]
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == ["ann.md", "ben.md"]


def test_the_learner_is_the_folder_under_the_class_folder(tmp_path):
    assert grade.learner_of(Path("class/ann/01_x.ipynb"), "ann/01_x.ipynb") == "ann"
    direct = Path("class/ann/01_x.ipynb")
    assert grade.learner_of(direct, direct.as_posix()) == "ann"
    assert grade.learner_of(tmp_path / "bo" / "01_x.ipynb", "01_x.ipynb") == "bo"
