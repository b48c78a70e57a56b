"""The teacher's whole journey (README, "Teaching a class"): learner copies, a class, grading.

`mnist-course student` (what `make student` runs) writes the learner copies; a class folder
gets one folder per learner; `mnist-course grade` grades it with `--csv`, `--json`,
`--feedback` and `--jobs 3`, and the test asserts the whole report. The class:

- ann solved every exercise of every chapter (the chapters' own solutions), ben none (every
  learner copy, stubs as handed out). Both hand in each chapter cut down to the cells its
  exercises touch (`exercise_cells`: the answer, checker and quiz cells, every cell that
  reads what they bind, and the cells those need), so the training runs of chapters 5-7
  are not run twice more. The cells left out read nothing the exercise cells bind, and the
  learner copy hands them out unchanged (tests/test_student.py): they run in a learner copy
  as in the solved chapter, which nbval runs whole, every checker printing "Correct";
- abe's chapter 1 loops forever after the first exercise; cara made the typical mistakes
  of chapter 1; dan's wrong answer prints the verdict line, eve's displays the checker's
  own verdict object; gus deleted a checker cell; hal's notebook is not valid JSON (these
  hand in the whole of chapter 1);
- as root, ivy's solved chapter 1 also tries to read a file only the teacher can read, to
  write outside its folder, and to allocate 10 GB. As root the grader runs the learners'
  code as `nobody`, from the hub's environment (a system Python that account can run).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import subprocess
import symtable
import sys
from pathlib import Path

import nbformat
import pytest

from mnist_course import cli, grade

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("0[1-7]_*.ipynb"))
CHAPTER1 = "01_cross_entropy_numpy.ipynb"
AS_ROOT = os.geteuid() == 0
# Seconds per notebook: the longest took 16 s, 3 side by side on a busy machine; `make test`
# runs another test file beside this one. abe only sleeps: the other process uses the wait.
TIMEOUT = 90
JOBS = 3  # abe waits out the timeout while two others grade the rest of the class
SECRET = "the teacher's answer key"


def exercises_of(chapter: Path) -> tuple[str, ...]:
    module = __import__(f"mnist_course.chapter{chapter.name[:2]}", fromlist=["EXERCISES"])
    return tuple(module.EXERCISES)


def cells_of(nb) -> dict[str, int]:
    """'answer:softmax' / 'checker:softmax' -> the cell's index (answers named by the checker
    just after them)."""
    found: dict[str, int] = {}
    pending: list[int] = []
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if "answer" in tags:
            pending.append(index)
        if "checker" in tags:
            name = cell.metadata["exercise"]
            found[f"checker:{name}"] = index
            for answer in pending:
                found[f"answer:{name}"] = answer
            pending = []
    return found


def with_answer(nb, name: str, body: str):
    """``nb`` with the answer cell of exercise ``name`` replaced by ``body``."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells[cells_of(nb)[f"answer:{name}"]].source = body
    return nb


EXERCISE_TAGS = {"answer", "checker", "quiz"}


class _TopLevel(ast.NodeVisitor):
    """The names a cell's top-level code reads before binding them, and the names it binds,
    in the order Python runs it (values before the names they are assigned to). The bodies of
    functions, classes and comprehensions run in scopes of their own (see `reads_and_binds`)."""

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.binds: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.binds:
                self.reads.add(node.id)
        else:
            self.binds.add(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name) and node.target.id not in self.binds:
            self.reads.add(node.target.id)  # x += 1 reads x
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.binds.add(node.name)
        for statement in node.body:
            self.visit(statement)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            self.binds.add(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def _definition(self, node: ast.AST) -> None:
        """Decorators, defaults and bases run now; the body runs in its own scope."""
        for part in [*getattr(node, "decorator_list", []), *getattr(node, "bases", [])]:
            self.visit(part)
        arguments = getattr(node, "args", None)
        if isinstance(arguments, ast.arguments):
            for default in [*arguments.defaults, *filter(None, arguments.kw_defaults)]:
                self.visit(default)
        if not isinstance(node, ast.Lambda):
            self.binds.add(node.name)  # type: ignore[attr-defined]

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _definition

    def _comprehension(self, node: ast.AST) -> None:
        self.visit(node.generators[0].iter)  # type: ignore[attr-defined]  # the rest: own scope

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension


def reads_and_binds(source: str) -> tuple[set[str], set[str]]:
    """The notebook-level names a cell reads (also from the bodies of the functions and
    comprehensions it defines, which read them when they run) and the names it binds."""
    top = _TopLevel()
    top.visit(ast.parse(source))
    nested: set[str] = set()
    tables = list(symtable.symtable(source, "<cell>", "exec").get_children())
    while tables:
        table = tables.pop()
        tables += table.get_children()
        for symbol in table.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                nested.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                top.binds.add(symbol.get_name())
    return top.reads | (nested - top.binds), top.binds


def exercise_cells(nb) -> list[int]:
    """The indices of the code cells a chapter's exercises touch: the answer, checker and quiz
    cells; every later cell that reads a name one of these binds (what a learner copy's stubs
    could change), and so on; and every cell all of those read a name from, back to the imports.

    Cells pass results to each other by name, so the cells left out read nothing that differs
    between a solved chapter and its learner copy."""
    needs: dict[int, set[int]] = {}  # cell -> the cells that bound the names it reads
    bound_by: dict[str, int] = {}
    keep: set[int] = set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        reads, binds = reads_and_binds(cell.source)
        needs[index] = {bound_by[name] for name in reads if name in bound_by}
        if EXERCISE_TAGS & set(cell.metadata.get("tags", [])) or needs[index] & keep:
            keep.add(index)
        bound_by.update(dict.fromkeys(binds, index))
    todo = sorted(keep)
    while todo:
        for needed in needs[todo.pop()] - keep:
            keep.add(needed)
            todo.append(needed)
    return sorted(keep)


def cut_down(nb, keep: list[int]):
    """A copy of ``nb`` with only the code cells at ``keep`` (the text cells stay)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells = [c for i, c in enumerate(nb.cells) if c.cell_type != "code" or i in keep]
    return nb


# Typical mistakes in chapter 1 (each one the chapter warns about).
NO_SHIFT = "def softmax(z):\n    e = np.exp(z)\n    return e / e.sum(axis=-1, keepdims=True)\n"
LOG_OF_SOFTMAX = "def log_softmax(z):\n    return np.log(losses.softmax(z))\n"
SUMMED = (
    "def cross_entropy(logits, labels):\n"
    "    log_probs = losses.log_softmax(logits)\n"
    "    return -log_probs[np.arange(len(labels)), labels].sum()\n"
)
PRINTS_VERDICT = (
    "def softmax(z):\n"
    "    print('Correct (softmax): every row sums to 1, no overflow.')\n"
    "    return z\n"
)
DISPLAYS_VERDICT = (
    "from IPython.display import display\n\nfrom mnist_course import exercises\n\n\n"
    "def softmax(z):\n"
    "    display(exercises.Feedback('softmax', True, 'every row sums to 1.'))\n"
    "    return z\n"
)


def hostile_cells(secret: Path, outside: Path) -> list:
    read = f"print(open({str(secret)!r}).read())"
    write = f"open({str(outside / 'written-by-ivy.txt')!r}, 'w').write('x')"
    allocate = "import numpy as np\n\nhuge = np.ones(10 * 2**30 // 8)"
    return [nbformat.v4.new_code_cell(code) for code in (read, write, allocate)]


@pytest.fixture(scope="module")
def grader(request, public_dir) -> tuple[list[str], dict[str, str]]:
    """The `mnist-course` command that grades, and its environment.

    As root: the hub's environment (`make hub-install`, built from /usr/bin/python3, which
    `nobody` can run; shared with tests/test_hub.py), grading as `--user nobody`, with an
    MNIST folder `nobody` can read. Otherwise: this environment's command, as ourselves."""
    env = {**os.environ, "MNIST_COURSE_DEVICE": "cpu"}
    if not AS_ROOT:
        return [str(Path(sys.executable).parent / "mnist-course")], env
    hub = request.getfixturevalue("hub_dir")
    data, real = request.getfixturevalue("public_mnist")
    if not real:
        pytest.fail("the journey trains on MNIST: set MNIST_COURSE_DATA (README, 'The MNIST data')")
    env["MNIST_COURSE_DATA"] = str(data)
    return [str(hub / "venv" / "bin" / "mnist-course"), "--user", "nobody"], env


@pytest.fixture(scope="module")
def journey(grader, public_dir, tmp_path_factory):
    """Make the learner copies and the class folder, grade it; return what came out."""
    work = tmp_path_factory.mktemp("journey")
    copies = work / "student"
    assert cli.main(["student", *map(str, CHAPTERS), "--out", str(copies)]) == 0
    solved1 = nbformat.read(ROOT / "notebooks" / CHAPTER1, as_version=4)
    stub1 = nbformat.read(copies / CHAPTER1, as_version=4)
    classroom = work / "class"
    learners: dict[str, list] = {"ann": [], "ben": []}
    for chapter in CHAPTERS:  # each cut down to the cells its exercises touch
        solved = nbformat.read(chapter, as_version=4)
        copy = nbformat.read(copies / chapter.name, as_version=4)
        keep = exercise_cells(solved)
        learners["ann"].append((chapter.name, cut_down(solved, keep)))
        learners["ben"].append((chapter.name, cut_down(copy, keep)))  # cell for cell the same
    looping = nbformat.from_dict(json.loads(json.dumps(solved1)))
    after = cells_of(looping)["checker:softmax"] + 1
    looping.cells.insert(
        after, nbformat.v4.new_code_cell("import time\n\nwhile True:\n    time.sleep(1)")
    )
    learners["abe"] = [(CHAPTER1, looping)]
    wrong = with_answer(stub1, "softmax", NO_SHIFT)
    wrong = with_answer(wrong, "log_softmax", LOG_OF_SOFTMAX)
    learners["cara"] = [(CHAPTER1, with_answer(wrong, "cross_entropy", SUMMED))]
    learners["dan"] = [(CHAPTER1, with_answer(stub1, "softmax", PRINTS_VERDICT))]
    learners["eve"] = [(CHAPTER1, with_answer(stub1, "softmax", DISPLAYS_VERDICT))]
    deleted = nbformat.from_dict(json.loads(json.dumps(solved1)))
    del deleted.cells[cells_of(deleted)["checker:softmax"]]
    learners["gus"] = [(CHAPTER1, deleted)]
    secret = outside = None
    if AS_ROOT:
        teacher = public_dir / "teacher"
        teacher.mkdir()
        secret, outside = teacher / "answer-key.txt", teacher
        secret.write_text(SECRET)
        secret.chmod(0o600)
        ivy = nbformat.from_dict(json.loads(json.dumps(solved1)))
        ivy.cells[2:2] = hostile_cells(secret, outside)
        learners["ivy"] = [(CHAPTER1, ivy)]
    for name, notebooks in learners.items():
        for filename, nb in notebooks:
            (classroom / name).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, classroom / name / filename)
    (classroom / "hal").mkdir()
    (classroom / "hal" / CHAPTER1).write_text('{"cells": [ not json')
    before = sorted(p.relative_to(classroom).as_posix() for p in classroom.rglob("*"))
    out = work / "grades"
    command, env = grader
    done = subprocess.run(
        [*command[:1], "grade", str(classroom), "--jobs", str(JOBS), "--timeout", str(TIMEOUT),
         "--csv", str(out / "grades.csv"), "--json", str(out / "grades.json"),
         "--feedback", str(out / "feedback"), *command[1:]],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    print(done.stdout)
    if (out / "grades.json").exists():  # how long each notebook took (for the record)
        for notebook in json.loads((out / "grades.json").read_text())["notebooks"]:
            print(f"{notebook['seconds']:7.1f} s  {notebook['notebook']}")
    after_ = sorted(p.relative_to(classroom).as_posix() for p in classroom.rglob("*"))
    return done, out, before, after_, outside


def expected() -> dict[str, dict[str, str]]:
    """learner -> {column: status} for every exercise handed in."""
    table: dict[str, dict[str, str]] = {}
    for chapter in CHAPTERS:
        for name in exercises_of(chapter):
            column = f"{chapter.name[:2]}.{name}"
            table.setdefault("ann", {})[column] = "correct"
            table.setdefault("ben", {})[column] = "not yet"
    one = [f"01.{n}" for n in exercises_of(CHAPTERS[0])]
    table["abe"] = dict(zip(one, ["correct", "error", "error"], strict=True))
    for name in ("cara", "dan", "eve"):
        table[name] = dict.fromkeys(one, "not yet")
    table["gus"] = dict(zip(one, ["error", "correct", "correct"], strict=True))
    table["hal"] = dict.fromkeys(one, "error")
    if AS_ROOT:
        table["ivy"] = dict.fromkeys(one, "correct")
    return dict(sorted(table.items()))


def test_the_grade_exits_1_and_writes_the_files(journey):
    done, out, before, after, _ = journey
    assert done.returncode == 1, done.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    learners = sorted(expected())
    assert files == sorted(["grades.csv", "grades.json", *(f"feedback/{n}.md" for n in learners)])
    assert after == before  # the class folder is only read


def test_every_learner_and_every_exercise_in_the_gradebook(journey):
    _, out, _, _, _ = journey
    table = expected()
    columns = [f"{c.name[:2]}.{n}" for c in CHAPTERS for n in exercises_of(c)]
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert rows[0] == ["student_id", *columns, "raw_score", "max_score"]
    want = []
    for learner, statuses in table.items():
        marks = ["" if c not in statuses else str(int(statuses[c] == "correct")) for c in columns]
        want.append([learner, *marks, str(marks.count("1")), str(len(columns))])
    assert sorted(rows[1:]) == want


def test_every_verdict_message_and_failed_cell_in_the_json(journey):
    _, out, _, _, outside = journey
    report = json.loads((out / "grades.json").read_text())
    got: dict[str, dict[str, str]] = {}
    for notebook in report["notebooks"]:
        for name, result in notebook["exercises"].items():
            got.setdefault(notebook["learner"], {})[f"{notebook['chapter']}.{name}"] = result[
                "status"
            ]
    assert dict(sorted(got.items())) == expected()
    by_label = {n["notebook"]: n for n in report["notebooks"]}
    for label, notebook in by_label.items():
        learner = notebook["learner"]
        if learner not in ("ivy",):  # every chapter runs alone in an empty folder
            assert notebook["failed_cells"] == [], (label, notebook["failed_cells"])
        if learner == "ann":
            assert (
                notebook["quiz"]
                and notebook["quiz"].split("/")[0] == notebook["quiz"].split("/")[1]
            )
        if learner == "ben":
            assert notebook["quiz"].startswith("0/")
            assert all(r["message"] for r in notebook["exercises"].values())
    abe = by_label[f"abe/{CHAPTER1}"]
    assert abe["timed_out"] is True and abe["quiz"] == "not run"
    assert [r["message"] for r in abe["exercises"].values()][1:] == [
        f"timed out after {TIMEOUT} s"
    ] * 2
    gus = by_label[f"gus/{CHAPTER1}"]["exercises"]["softmax"]["message"]
    assert gus == "no checker cell for this exercise (was it deleted?)"
    hal = by_label[f"hal/{CHAPTER1}"]
    assert hal["problem"].startswith("unreadable notebook: ")
    for name in ("dan", "eve"):  # the text they printed or displayed changed nothing
        assert by_label[f"{name}/{CHAPTER1}"]["exercises"]["softmax"]["status"] == "not yet"


def test_the_printed_report_has_the_tables_the_failures_and_the_summary(journey):
    done, _, _, _, _ = journey
    text = done.stdout
    for chapter in CHAPTERS:
        assert f"chapter {chapter.name[:2]}\nnotebook" in text
    summary = text[text.index("Class summary") :].splitlines()
    assert summary[0] == f"Class summary ({len(expected())} learners)"
    for column in [f"{c.name[:2]}.{n}" for c in CHAPTERS for n in exercises_of(c)]:
        correct = sum(row.get(column) == "correct" for row in expected().values())
        handed = sum(column in row for row in expected().values())
        line = next(line for line in summary if line.split()[:1] == [column])
        assert line.split()[1:] == [str(correct), "of", str(handed), "correct"]
    assert f"  timed out: abe/{CHAPTER1}" in summary
    table = expected()
    right = sum(s == "correct" for row in table.values() for s in row.values())
    total = sum(len(row) for row in table.values())
    notebooks = 2 * len(CHAPTERS) + len(table) - 2  # ann's and ben's chapters, one each for others
    assert summary[-1] == f"{right} of {total} exercises correct in {notebooks} notebooks"


def test_feedback_tells_each_learner_their_verdicts(journey):
    _, out, _, _, _ = journey
    cara = (out / "feedback" / "cara.md").read_text()
    assert cara.startswith("# Feedback for cara\n\n## 01_cross_entropy_numpy.ipynb\n")
    assert cara.count(": not yet. ") == 3
    assert "could not be graded: unreadable notebook" in (out / "feedback" / "hal.md").read_text()


@pytest.mark.skipif(not AS_ROOT, reason="needs root: the learners' code runs as another account")
def test_hostile_code_is_contained_and_reported(journey):
    done, out, _, _, outside = journey
    report = json.loads((out / "grades.json").read_text())
    ivy = next(n for n in report["notebooks"] if n["learner"] == "ivy")
    errors = [cell.split("): ", 1)[1].split(":")[0] for cell in ivy["failed_cells"]]
    assert errors == ["PermissionError", "PermissionError", "MemoryError"], ivy["failed_cells"]
    assert not (outside / "written-by-ivy.txt").exists()
    assert SECRET not in done.stdout + done.stderr + (out / "grades.json").read_text()
    assert set(s["status"] for s in ivy["exercises"].values()) == {"correct"}


def test_the_cut_down_chapters_keep_every_cell_the_exercises_touch():
    """`exercise_cells` on a small notebook: the cells the answer and checker need, those that
    read what an answer binds (a learner copy's stub changes them), and nothing else."""
    sources = [
        ("import numpy as np", ()),  # 0: the answer reads np
        ("data = np.arange(3)\noffset = 1\nslow = sum(range(10**6))", ()),  # 1: cell 5 reads data
        ("def f(x):\n    return np.sum(x) + offset", ("answer",)),  # 2: offset read when run
        ("check_f(f)", ("checker",)),  # 3
        ("trained = [slow * k for k in range(3)]", ()),  # 4: no exercise reads it
        ("try:\n    out = f(data)\nexcept NotImplementedError:\n    out = None", ()),  # 5: calls f
        ("print(out)", ()),  # 6: reads what cell 5 made of f
        ("k = 2\nprint(trained)", ()),  # 7: not the k of cell 4's comprehension
        ("def g():\n    return f(1)", ()),  # 8: calls f when it runs
        ("f = len\nprint(f([1]))", ()),  # 9: binds f before it reads it
        ("total = 0\ntotal += slow", ()),  # 10
        ("for total in trained:\n    print(total)", ()),  # 11
        ("answers = {}\ncheck_quiz(answers)", ("quiz",)),  # 12
    ]
    nb = nbformat.v4.new_notebook()
    for source, tags in sources:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("text cells stay"))
    keep = exercise_cells(nb)
    assert keep == [0, 2, 3, 4, 6, 7, 9, 13]
    assert [c.source for c in cut_down(nb, keep).cells] == [
        nb.cells[i].source for i in (0, 1, 2, 3, 4, 6, 7, 9, 13)
    ]
    assert reads_and_binds("x += y") == ({"x", "y"}, {"x"})
    assert reads_and_binds("def h(a=b):\n    global c\n    c = a + d") == ({"b", "d"}, {"h", "c"})


NOT_COMPARED = {"nbval-ignore-output", "nbval-skip", "raises-exception", "nbval-raises-exception"}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name[:2])
def test_nbval_checks_that_every_whole_solved_chapter_is_all_correct(chapter):
    """What the journey leaves to nbval (`make test` runs every chapter whole, in strict mode):
    each checker cell stores "Correct (name): ..." and the quiz its full score, and nbval
    compares those outputs. Every exercise of the chapter's module has its checker cell, in
    the form the grader accepts."""
    nb = nbformat.read(chapter, as_version=4)
    checked = []
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        if not {"checker", "quiz"} & tags:
            continue
        assert not NOT_COMPARED & tags and "NBVAL" not in cell.source, cell.source
        shown = [o.data["text/plain"] for o in cell.outputs if o.output_type == "execute_result"]
        assert len(shown) == 1, cell.source
        if "checker" in tags:
            name = cell.metadata["exercise"]
            checked.append(name)
            assert grade._is_checker_call(cell.source, name, f"chapter{chapter.name[:2]}")
            assert shown[0].startswith(f"Correct ({name}): "), shown[0]
        else:
            score = re.match(r"Quiz \(chapter \d+\): (\d+) of (\d+) right", shown[0])
            assert score and score[1] == score[2], shown[0]
    assert checked == list(exercises_of(chapter))
