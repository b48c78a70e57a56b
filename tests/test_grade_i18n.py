"""The learner's grading feedback in the notebook's language (mnist_course/grade.py, gradebook.py).

A Chinese chapter (metadata ``translation.language == "zh"``) gets its feedback section and
the grader's own messages in Chinese; an English one gets exactly the text it got before.
The data (statuses, JSON keys, CSV, the teacher's report) stays English. Only the last test
starts a kernel (one run of a Chinese learner copy of chapter 1).
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from mnist_course import gradebook, i18n, student
from mnist_course.grade import Graded, Result, _grade_exercise, notebook_language
from mnist_course.sandbox import Executed, Limits

ROOT = Path(__file__).resolve().parents[1]
CHAPTER01 = "01_cross_entropy_numpy.ipynb"
CHINESE = re.compile(r"[\u4e00-\u9fff]")
# What the grader's English frame says; none of it may be left in a Chinese section.
ENGLISH_FRAME = [
    "Feedback for",
    "could not be graded",
    "Cells that raised",
    "**quiz**",
    ": correct.",
    ": not yet.",
    ": error.",
    "- cell ",
    "not run",
    "not written yet",
    "checker cell",
    "answer cell",
    "timed out",
]


# ---- the notebook's language ---------------------------------------------------------------


def test_a_chapters_language_is_its_translation_metadata():
    chinese = nbformat.read(ROOT / "notebooks" / "zh" / CHAPTER01, as_version=4)
    english = nbformat.read(ROOT / "notebooks" / CHAPTER01, as_version=4)
    assert notebook_language(chinese) == "zh"
    assert notebook_language(english) == "en"
    assert notebook_language(student.learner_copy(chinese)) == "zh"  # the copy keeps it


@pytest.mark.parametrize(
    "metadata",
    [{}, {"translation": "zh"}, {"translation": {"language": "fr"}},
     {"translation": {"language": ["zh"]}}, {"translation": {"source": "../x.ipynb"}}],
)  # fmt: skip
def test_a_notebook_without_a_course_language_is_english(metadata):
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(metadata)
    assert notebook_language(nb) == "en"


def test_a_translator_for_a_language_ignores_the_kernels_language():
    """The grader's translator: fixed to the notebook's language, whatever set_language says."""
    zh = i18n.translator("mnist_course.gradebook", "zh")
    en = i18n.translator("mnist_course.gradebook", "en")
    assert zh("not yet") == "还不对" and en("not yet") == "not yet"
    i18n.set_language("zh")
    try:
        assert en("not yet") == "not yet" and zh("not yet") == "还不对"
    finally:
        i18n.set_language("en")
    with pytest.raises(ValueError, match=r"'en', 'zh'"):
        i18n.translator("mnist_course.gradebook", "fr")


# ---- the grader's own messages -------------------------------------------------------------


def code(source: str, tags: tuple[str, ...] = (), outputs: list | None = None):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    cell.outputs = outputs or []
    return cell


def raised(ename: str, evalue: str) -> list:
    return [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]


def grader_messages(language: str) -> dict[str, Result]:
    """Each of the grader's own verdicts on chapter 1's softmax, in ``language``."""
    checker = code("chapter01.check_softmax(softmax)", ("checker",))
    shown = code(checker.source, ("checker",), [nbformat.v4.new_output("stream", text="hello\n")])
    stub = code("def softmax(z): ...", ("answer",), raised("NotImplementedError", ""))
    broken = code(
        "def softmax(z): ...", ("answer",), raised("NameError", "name 'np' is not defined")
    )
    cells = [stub, checker]
    ran, done = {0, 1}, Executed({}, {0, 1})

    def verdict(checker_=checker, answers=(), ran_=ran, run=done, shown_=None) -> Result:
        return _grade_exercise(
            "softmax", checker_, list(answers), ran_, cells, None, run, 300, "chapter01", shown_,
            language,
        )  # fmt: skip

    return {
        "deleted": verdict(checker_=None),
        "changed": verdict(checker_=code("print(softmax)", ("checker",))),
        "timed out": verdict(ran_={0}, run=Executed({}, {0}, timed_out=True)),
        "kernel died": verdict(ran_={0}, run=Executed({}, {0}, stopped="the kernel died")),
        "worker failed": verdict(
            ran_=set(), run=Executed({}, set(), stopped="the grading worker failed: killed by X")
        ),
        "stub": verdict(answers=[stub]),
        "answer raised": verdict(answers=[broken]),
        "no verdict": verdict(shown_=shown),
    }


def test_the_graders_messages_in_english_are_as_before():
    assert grader_messages("en") == {
        "deleted": Result("error", "no checker cell for this exercise (was it deleted?)"),
        "changed": Result(
            "error",
            "the checker cell was changed: it should hold only the call "
            "chapter01.check_softmax(...) on your answer; copy it back from the chapter",
        ),
        "timed out": Result("error", "timed out after 300 s"),
        "kernel died": Result(
            "error",
            "the checker cell did not run (the kernel died: it crashed, or used up its CPU time)",
        ),
        "worker failed": Result(
            "error", "the checker cell did not run (the grading worker failed: killed by X)"
        ),
        "stub": Result("not yet", "not written yet (the answer cell raises NotImplementedError)"),
        "answer raised": Result("error", "in the answer cell: NameError: name 'np' is not defined"),
        "no verdict": Result("error", "no verdict from the checker cell (it showed 'hello')"),
    }


@pytest.mark.usefixtures("chinese")  # the kernel's language must not matter: still English
def test_the_graders_messages_follow_the_notebook_not_the_kernel_language():
    assert grader_messages("en")["stub"].message.startswith("not written yet")


def test_the_graders_messages_on_a_chinese_notebook_are_chinese():
    english, chinese = grader_messages("en"), grader_messages("zh")
    assert {k: r.status for k, r in chinese.items()} == {k: r.status for k, r in english.items()}
    assert chinese == {
        "deleted": Result("error", "这道练习缺少调用检查函数的单元格（是不是被删掉了？）"),
        "changed": Result(
            "error",
            "调用检查函数的单元格被改动过：其中应当只有对你的答案的调用 "
            "chapter01.check_softmax(...)；请从本章把它原样复制回来。",
        ),
        "timed out": Result("error", "运行超时（超过了 300 秒）。"),
        "kernel died": Result(
            "error",
            "调用检查函数的单元格没有运行（内核中途退出了：可能是崩溃了，也可能是用完了 CPU 时间）。",
        ),
        # the sandbox's reason is a technical detail: it stays as the sandbox wrote it
        "worker failed": Result(
            "error", "调用检查函数的单元格没有运行（the grading worker failed: killed by X）。"
        ),
        "stub": Result("not yet", "这道练习还没有写（答案单元格抛出了 NotImplementedError）。"),
        "answer raised": Result("error", "答案单元格出错：NameError: name 'np' is not defined"),
        "no verdict": Result("error", "调用检查函数的单元格没有给出评判结果（它显示的是 'hello'）。"),
    }  # fmt: skip


# ---- the feedback file ---------------------------------------------------------------------


def graded(language: str, notebook: str = f"li/{CHAPTER01}", **changes) -> Graded:
    """One notebook with every status, a problem, a failed cell and the quiz, in ``language``
    (the checkers' messages as the kernel gave them, the grader's as it makes them)."""
    mine = grader_messages(language)
    checked = {"en": "each row sums to 1.", "zh": "每一行的和都是 1。"}[language]
    found = Graded(
        notebook,
        "01",
        "li",
        {
            "softmax": Result("correct", checked),
            "log_softmax": mine["stub"],
            "cross_entropy": mine["timed out"],
            "grad": Result("error", ""),
        },
        quiz="2/5",
        problem="unreadable notebook: JSONDecodeError: Expecting value",
        failed_cells=["cell 7 (`x = 1 / 0`): ZeroDivisionError: division by zero"],
        language=language,
    )
    for name, value in changes.items():
        setattr(found, name, value)
    return found


ENGLISH_FEEDBACK = """\
# Feedback for li

## 01_cross_entropy_numpy.ipynb

This notebook could not be graded: unreadable notebook: JSONDecodeError: Expecting value

- **softmax**: correct. each row sums to 1.
- **log_softmax**: not yet. not written yet (the answer cell raises NotImplementedError)
- **cross_entropy**: error. timed out after 300 s
- **grad**: error.
- **quiz**: 2/5

Cells that raised an error:
- cell 7 (`x = 1 / 0`): ZeroDivisionError: division by zero

## 02_x.ipynb

- **quiz**: error

## 03_x.ipynb

- **quiz**: not run

## 04_x.ipynb

- **quiz**: 3 of 4
"""


def three_more(language: str) -> list[Graded]:
    return [
        Graded("li/02_x.ipynb", "02", "li", quiz="error", language=language),
        Graded("li/03_x.ipynb", "03", "li", quiz="not run", language=language),
        Graded("li/04_x.ipynb", "04", "li", quiz="3 of 4", language=language),
    ]


def test_english_feedback_is_what_it_was():
    """The text the feedback had before it could be translated, byte for byte."""
    assert gradebook.feedback("li", [graded("en"), *three_more("en")]) == ENGLISH_FEEDBACK


def without_data(text: str) -> str:
    """``text`` without what is data, not frame: code, names, the problem and error texts."""
    for data in ("unreadable notebook: JSONDecodeError: Expecting value",
                 "ZeroDivisionError: division by zero", "NotImplementedError", "3 of 4"):  # fmt: skip
        text = text.replace(data, "")
    text = re.sub(r"`[^`\n]*`|\*\*\w+\*\*|^## .*$|\bli\b", "", text, flags=re.MULTILINE)
    return text


def test_chinese_feedback_is_chinese_with_no_english_frame_left():
    text = gradebook.feedback("li", [graded("zh"), *three_more("zh")])
    assert text.splitlines() == [
        "# 给 li 的反馈",
        "",
        "## 01_cross_entropy_numpy.ipynb",
        "",
        "这个笔记本无法评分：unreadable notebook: JSONDecodeError: Expecting value",
        "",
        "- **softmax**：正确。每一行的和都是 1。",
        "- **log_softmax**：还不对。这道练习还没有写（答案单元格抛出了 NotImplementedError）。",
        "- **cross_entropy**：出错。运行超时（超过了 300 秒）。",
        "- **grad**：出错。",
        "- **测验**：共 5 题，答对 2 题",
        "",
        "运行时出错的单元格：",
        "- 第 7 个单元格（`x = 1 / 0`）：ZeroDivisionError: division by zero",
        "",
        "## 02_x.ipynb",
        "",
        "- **测验**：没有得到成绩（测验单元格出错了，或者没有返回测验结果）",
        "",
        "## 03_x.ipynb",
        "",
        "- **测验**：没有运行完（笔记本在测验单元格结束之前就停下了）",
        "",
        "## 04_x.ipynb",
        "",
        "- **测验**：3 of 4",
    ]
    assert not [words for words in ENGLISH_FRAME if words in text]
    assert not re.findall(r"[A-Za-z]{2,}", without_data(text)), without_data(text)


def test_a_learner_with_both_languages_gets_each_notebook_in_its_own():
    """Each section in its notebook's language; the heading in English when they differ, in
    the learners' language when all agree."""
    zh = graded("zh", f"li/zh/{CHAPTER01}", problem=None, failed_cells=[])
    en = graded("en", problem=None, failed_cells=[])
    text = gradebook.feedback("li", [en, zh])
    first, second = text.split("\n## ")[1:]
    assert text.startswith("# Feedback for li\n")
    assert "- **log_softmax**: not yet. not written yet" in first and not CHINESE.search(first)
    assert "- **log_softmax**：还不对。这道练习还没有写" in second
    assert not [words for words in ENGLISH_FRAME if words in second]
    assert gradebook.feedback("li", [zh, zh]).startswith("# 给 li 的反馈\n")
    assert gradebook.feedback_language([en, zh]) == "en" == gradebook.feedback_language([en])


def test_feedback_in_threads_keeps_each_notebooks_language():
    """No global language: grading both languages at once gives each its own."""
    both = [graded("zh"), graded("en")] * 20
    one_by_one = ["\n".join(gradebook.notebook_feedback(g)) for g in both[:2]] * 20
    with ThreadPoolExecutor(max_workers=8) as pool:
        at_once = list(pool.map(lambda g: "\n".join(gradebook.notebook_feedback(g)), both))
    assert at_once == one_by_one
    assert "还不对" in one_by_one[0] and "not yet." in one_by_one[1]


def test_the_teachers_data_stays_english_for_a_chinese_notebook():
    """Statuses, quiz, failed cells, the report's words, the CSV: English data; only the
    message (the learner's text) is in the notebook's language."""
    zh, en = graded("zh", problem=None), graded("en", problem=None)
    report = gradebook.report([zh])
    assert "not yet" in report and "Cells that failed" in report and "还不对" not in report
    assert gradebook.gradebook_csv([zh]) == gradebook.gradebook_csv([en])
    limits = Limits(timeout=300)
    (chinese,) = gradebook.to_json([zh], limits)["notebooks"]
    (english,) = gradebook.to_json([en], limits)["notebooks"]
    assert {k: v for k, v in chinese.items() if k != "exercises"} == {
        k: v for k, v in english.items() if k != "exercises"
    }
    assert [e["status"] for e in chinese["exercises"].values()] == [
        "correct", "not yet", "error", "error"
    ]  # fmt: skip
    assert chinese["exercises"]["log_softmax"]["message"] == grader_messages("zh")["stub"].message


# ---- end to end: one Chinese learner copy, graded in a kernel --------------------------------


def test_grading_a_chinese_learner_copy_writes_chinese_feedback(tmp_path, capsys):
    """A Chinese learner copy of chapter 1 (as tests/test_chinese_edition.py grades it), with
    one checker cell deleted and a cell that raises added: the feedback file is Chinese, the
    JSON's statuses English."""
    from mnist_course import chapter01, grade

    copy = student.learner_copy(nbformat.read(ROOT / "notebooks" / "zh" / CHAPTER01, as_version=4))
    copy.cells = [
        c for c in copy.cells
        if not ("checker" in c.metadata.get("tags", []) and c.metadata.get("exercise") == "cross_entropy")
    ]  # fmt: skip
    copy.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    path = tmp_path / "class" / "li" / CHAPTER01
    path.parent.mkdir(parents=True)
    nbformat.write(copy, path)
    folder, out = tmp_path / "feedback", tmp_path / "grades.json"
    assert grade.main([tmp_path / "class"], json_out=out, feedback_dir=folder, trusted=True) == 1
    assert "not yet" in capsys.readouterr().out  # the teacher's report: English words
    text = (folder / "li.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[:4] == ["# 给 li 的反馈", "", f"## {CHAPTER01}", ""], text
    stub = "还不对。这个函数还没有写（它抛出了 NotImplementedError）。"  # the checker's, in Chinese
    assert f"- **softmax**：{stub}" in lines and f"- **log_softmax**：{stub}" in lines, text
    assert (
        "- **cross_entropy**：出错。这道练习缺少调用检查函数的单元格（是不是被删掉了？）" in lines
    )
    quiz = [line for line in lines if line.startswith("- **测验**：")]
    assert len(quiz) == 1 and re.fullmatch(r"- \*\*测验\*\*：共 \d+ 题，答对 0 题", quiz[0]), text
    number = len(copy.cells)
    assert "运行时出错的单元格：" in lines, text
    assert f"- 第 {number} 个单元格（`1 / 0`）：ZeroDivisionError: division by zero" in lines
    assert not [words for words in ENGLISH_FRAME if words in text], text
    (record,) = json.loads(out.read_text(encoding="utf-8"))["notebooks"]
    assert list(record["exercises"]) == list(chapter01.EXERCISES)
    assert [e["status"] for e in record["exercises"].values()] == ["not yet", "not yet", "error"]
    assert (
        record["failed_cells"][-1]
        == f"cell {number} (`1 / 0`): ZeroDivisionError: division by zero"
    )
