"""Notebook hygiene: what strict nbval needs, and nothing that varies from machine to machine."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NBVAL_MARKERS = {
    "NBVAL_IGNORE_OUTPUT",
    "NBVAL_CHECK_OUTPUT",
    "NBVAL_SKIP",
    "NBVAL_RAISES_EXCEPTION",
}
SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
FORBIDDEN = {
    "a memory address": re.compile(r"at 0x[0-9a-fA-F]{6,}"),
    "a machine path": re.compile(r"(/(home|root|tmp|work|Users|var/folders)/|[A-Z]:\\\\Users)"),
    "a timestamp": re.compile(r"\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d"),
}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_every_chapter_is_there():
    assert [p.stem for p in CHAPTERS] == [
        "00_setup",
        "01_cross_entropy_numpy",
        "02_cross_entropy_pytorch",
        "03_mnist_data",
        "04_softmax_regression",
        "05_mnist_mlp",
        "06_going_further",
        "07_many_processes",
    ]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_executed_in_order_in_a_fresh_kernel(path):
    counts = [c["execution_count"] for c in code_cells(load(path))]
    assert counts == list(range(1, len(counts) + 1)), "re-run with `make notebooks`"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_noise_in_metadata(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"], "widget state is stored"
    for cell in nb["cells"]:
        assert "execution" not in cell.get("metadata", {}), "per-cell timing metadata is stored"
        assert "collapsed" not in cell.get("metadata", {}) and "scrolled" not in cell.get(
            "metadata", {}
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_outputs_hold_nothing_machine_specific(path):
    for cell in code_cells(load(path)):
        for output in cell["outputs"]:
            text = json.dumps({k: v for k, v in output.get("data", {}).items() if "image" not in k})
            text += json.dumps(output.get("text", ""))
            for what, pattern in FORBIDDEN.items():
                assert not pattern.search(text), f"an output holds {what}: {cell['source'][:80]}"
            if output["output_type"] == "error":
                assert "raises-exception" in cell["metadata"].get("tags", []), "a stored error"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_nbval_markers_are_spelled_so_nbval_sees_them(path):
    for cell in code_cells(load(path)):
        for line in (
            cell["source"].splitlines() if isinstance(cell["source"], str) else cell["source"]
        ):
            word = line.strip().lstrip("#").strip()
            if word.startswith("NBVAL_"):
                assert word in NBVAL_MARKERS, f"nbval ignores the marker line {line!r}: use a tag"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_cell_has_a_slide_type(path):
    for cell in load(path)["cells"]:
        assert cell["metadata"].get("slideshow", {}).get("slide_type") in SLIDE_TYPES


# ---------------------------------------------------------------------------------------------
# Exercises, quizzes, speaker notes, code width, glossary (issue 9)
# ---------------------------------------------------------------------------------------------

TAUGHT = CHAPTERS[1:]  # chapters 1 to 7: chapter 0 only sets up
GLOSSARY = ROOT / "notebooks" / "glossary.md"


def source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def tagged(nb: dict, tag: str) -> list[dict]:
    return [c for c in code_cells(nb) if tag in c["metadata"].get("tags", [])]


def shown_text(cell: dict) -> str:
    """What the cell's stored outputs show as text (printed, or a plain-text result)."""
    parts = []
    for output in cell["outputs"]:
        if output["output_type"] == "stream":
            parts.append("".join(output["text"]))
        elif "text/plain" in output.get("data", {}):
            parts.append("".join(output["data"]["text/plain"]))
    return "".join(parts)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_code_lines_fit_the_projector(path):
    long = [
        line
        for cell in code_cells(load(path))
        for line in source(cell).splitlines()
        if len(line) > 80
    ]
    assert not long, f"code lines over 80 characters (`ruff format` in notebooks/): {long}"


def answers_of(nb: dict) -> dict[str, list[dict]]:
    """Exercise name -> its answer cells: by their own ``exercise`` metadata, else the answer
    cells between the previous checker cell and the exercise's checker cell."""
    found: dict[str, list[dict]] = {}
    pending: list[dict] = []
    for cell in code_cells(nb):
        tags = cell["metadata"].get("tags", [])
        if "answer" in tags:
            name = cell["metadata"].get("exercise")
            if name:
                found.setdefault(name, []).append(cell)
            else:
                pending.append(cell)
        elif "checker" in tags:
            found.setdefault(cell["metadata"].get("exercise"), []).extend(pending)
            pending = []
    assert not pending, "an answer cell with no checker cell after it"
    return found


@pytest.mark.parametrize("path", TAUGHT, ids=lambda p: p.name)
def test_exercises_match_the_chapter_module(path):
    nb = load(path)
    checkers = [c["metadata"].get("exercise") for c in tagged(nb, "checker")]
    module = importlib.import_module(f"mnist_course.chapter{path.name[:2]}")
    assert len(checkers) >= 2, "each chapter has at least two exercises"
    assert tuple(checkers) == module.EXERCISES, "checker cells (in order) vs EXERCISES"
    assert len(set(checkers)) == len(checkers), "an exercise name is used twice"
    answers = answers_of(nb)
    assert set(answers) == set(checkers), "answer cells name an exercise with no checker"
    for name in checkers:
        assert answers[name], f"exercise {name} has no answer cell"
        for cell in answers[name]:
            assert "### BEGIN SOLUTION" in source(cell) and "### END SOLUTION" in source(cell)


@pytest.mark.parametrize("path", TAUGHT, ids=lambda p: p.name)
def test_every_checker_says_correct_on_the_solved_chapter(path):
    for cell in tagged(load(path), "checker"):
        name = cell["metadata"].get("exercise")
        assert shown_text(cell).startswith(f"Correct ({name})"), source(cell)


@pytest.mark.parametrize("path", TAUGHT, ids=lambda p: p.name)
def test_one_quiz_at_the_end_all_right(path):
    nb = load(path)
    (quiz,) = tagged(nb, "quiz")
    chapter = int(path.name[:2])
    match = re.match(rf"Quiz \(chapter {chapter}\): (\d+) of (\d+) right", shown_text(quiz))
    assert match, shown_text(quiz)[:200]
    right, total = map(int, match.groups())
    assert right == total and 3 <= total <= 5
    assert "### BEGIN SOLUTION" in source(quiz) and "check_quiz(answers)" in source(quiz)
    later = nb["cells"][nb["cells"].index(quiz) + 1 :]
    assert not tagged({"cells": later}, "checker"), "the quiz comes after the exercises"


@pytest.mark.parametrize("path", TAUGHT, ids=lambda p: p.name)
def test_at_least_three_speaker_notes(path):
    notes = [
        c
        for c in load(path)["cells"]
        if c["metadata"].get("slideshow", {}).get("slide_type") == "notes"
    ]
    assert len(notes) >= 3, f"{len(notes)} cells with slide_type 'notes'"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_markdown_cell_links_the_glossary(path):
    first = next(c for c in load(path)["cells"] if c["cell_type"] == "markdown")
    assert "](glossary.md)" in source(first)


# The key terms that issue 9 names (and the course uses): each must be in the glossary.
ISSUE_TERMS = {
    "交叉熵": "cross-entropy",
    "独热编码": "one-hot",
    "对数似然": "log-likelihood",
    "梯度": "gradient",
    "反向传播": "backpropagation",
    "学习率": "learning rate",
    "动量": "momentum",
    "批量": "batch",
    "轮次": "epoch",
    "过拟合": "over-fitting",
    "卷积": "convolution",
    "池化": "pooling",
    "批归一化": "batch normalisation",
    "损失函数": "loss function",
    "优化器": "optimiser",
    "验证集": "validation set",
    "测试集": "test set",
    "训练集": "training set",
    "激活函数": "activation function",
    "全连接层": "fully connected layer",
    "权重衰减": "weight decay",
    "学习率调度": "learning-rate schedule",
    "归一化": "normalisation",
    "张量": "tensor",
    "自动求导": "autograd",
    "数值稳定": "numerical stability",
    "负对数似然": "negative log-likelihood (NLL)",
    "小批量梯度下降": "mini-batch gradient descent",
}
ENGLISH_ONLY = ["softmax", "logits", "ReLU", "log-sum-exp"]


def glossary_rows() -> list[list[str]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and not set(cells[0]) <= set("- "):
            rows.append(cells)
    return rows[1:]  # after the header


def test_glossary_has_every_term_of_the_issue():
    rows = glossary_rows()
    assert len(rows) >= len(ISSUE_TERMS)
    by_chinese = {}
    for english, chinese, meaning, _ in rows:
        assert meaning.endswith("."), f"{english}: a one-line definition"
        for word in re.findall(r"[\u4e00-\u9fff]+", chinese):
            by_chinese.setdefault(word, []).append(english)
    for chinese, english in ISSUE_TERMS.items():
        found = [e for w, es in by_chinese.items() if chinese in w for e in es]
        assert any(english.lower() in e.lower() for e in found), f"{chinese} {english}"
    english_terms = [row[0] for row in rows]
    for term in ENGLISH_ONLY:
        assert term in english_terms
    assert english_terms == sorted(english_terms, key=str.lower), "alphabetical by English"


def mentions(text: str, english: str) -> bool:
    """Does ``text`` use the term? "negative log-likelihood (NLL)": either form; "-", "_" or
    a space between words; British or American spelling; "normalisation" as "normalise"."""
    names = re.split(r"\s*[()]\s*", english)
    for name in filter(None, names):
        name = re.sub(r"(i[sz])ation$", r"\1", name.rstrip("s"))  # normalisation: normalise
        words = [re.escape(w).replace("is", "i[sz]") for w in re.split(r"[-\s]", name)]
        if re.search(r"[-_\s]?".join(words), text, re.IGNORECASE):
            return True
    return False


def test_glossary_links_each_term_to_a_chapter_that_uses_it():
    texts = {p.name: " ".join(source(c) for c in load(p)["cells"]) for p in CHAPTERS}
    for english, _, _, chapter in glossary_rows():
        link = re.fullmatch(r"\[(\d\d)\]\((\d\d_\w+\.ipynb)\)", chapter)
        assert link and link[2].startswith(link[1]), chapter
        assert link[2] in texts, f"{english}: {link[2]} does not exist"
        assert mentions(texts[link[2]], english), f"{link[2]} never says {english!r}"
    for target in re.findall(r"\]\(([^)]+)\)", GLOSSARY.read_text(encoding="utf-8")):
        assert (GLOSSARY.parent / target).is_file(), target
