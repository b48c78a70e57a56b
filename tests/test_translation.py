"""Translated chapters (notebooks/zh/): in step with the English ones, cell by cell."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mnist_course import chapter01, cli, translation

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = sorted((ROOT / "notebooks" / "zh").glob("*.ipynb"))


def chapter(markdown: str = "# Title\n\nSome text.") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(markdown, id="md-1"),
        nbformat.v4.new_code_cell("print(1 + 1)", id="code-1"),
        nbformat.v4.new_markdown_cell("## Next", id="md-2"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.cells[0].metadata["slideshow"] = {"slide_type": "slide"}
    return nb


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    english = tmp_path / "01_toy.ipynb"
    nbformat.write(chapter(), english)
    return english, translation.translated_path(english)


def test_sync_copies_the_code_and_marks_every_text_cell_missing(pair):
    english, translated = pair
    report = translation.sync(english, translated)
    assert translated == english.parent / "zh" / "01_toy.ipynb"
    assert report.missing == ["md-1", "md-2"] and not report.ok
    nb = nbformat.read(translated, as_version=4)
    assert [c.id for c in nb.cells] == ["md-1", "set-language", "code-1", "md-2"]
    code = nb.cells[2]
    assert code.source == "print(1 + 1)" and code.outputs[0]["text"] == "2\n"
    assert nb.cells[0].source == "# Title\n\nSome text."  # the English text, until translated
    assert nb.cells[0].metadata["slideshow"] == {"slide_type": "slide"}
    assert nb.metadata["translation"] == {"language": "zh", "source": "../01_toy.ipynb"}


def test_export_translate_import_makes_every_cell_current(pair, tmp_path):
    english, translated = pair
    text = translation.export(english, translated)
    assert text.count("<!-- cell ") == 2 and "# Title" in text
    chinese = text.replace("# Title\n\nSome text.", "# 标题\n\n一段文字。").replace(
        "## Next", "## 下一步"
    )
    report = translation.import_text(chinese, english, translated)
    assert report.ok and report.current == ["md-1", "md-2"], report
    nb = nbformat.read(translated, as_version=4)
    assert nb.cells[0].source == "# 标题\n\n一段文字。" and nb.cells[-1].source == "## 下一步"
    assert translation.export(english, translated) == ""  # nothing left to translate


def test_a_changed_english_cell_makes_its_translation_stale_and_sync_keeps_it(pair):
    english, translated = pair
    translation.import_text(translation.export(english, translated), english, translated)
    changed = chapter("# Title\n\nOther text.")
    changed.cells[1].source = "print(2 + 2)"
    nbformat.write(changed, english)
    report = translation.status(english, translated)
    assert report.stale == ["md-1"] and report.current == ["md-2"]
    assert "stale (the English changed): md-1" in str(report)
    report = translation.sync(english, translated)
    assert report.stale == ["md-1"]
    nb = nbformat.read(translated, as_version=4)
    assert nb.cells[2].source == "print(2 + 2)"  # code follows the English at once
    assert nb.cells[0].source == "# Title\n\nSome text."  # the old translation, to revise
    assert "Other text." in translation.export(english, translated)  # offered again


PNG = nbformat.v4.new_output(
    "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "fig"}
)


def test_a_figures_alt_text_is_translated_kept_and_goes_stale_like_a_cell(pair):
    english, translated = pair
    nb = chapter()
    nb.cells[1].outputs = [PNG]
    nb.cells[1].metadata["alt"] = "Line plot of the loss falling."
    nbformat.write(nb, english)
    report = translation.sync(english, translated)
    assert report.alt_missing == ["code-1"] and not report.ok
    assert "alt text not translated: code-1" in str(report)
    text = translation.export(english, translated)
    assert "<!-- alt code-1 sha256:" in text and "Line plot of the loss falling." in text
    chinese = (
        text.replace("Line plot of the loss falling.", "折线图：损失逐步下降。")
        .replace("# Title\n\nSome text.", "# 标题")
        .replace("## Next", "## 下一步")
    )
    report = translation.import_text(chinese, english, translated)
    assert report.ok and report.alt_current == ["code-1"], report
    assert "figure alt text: 1 of 1 current" in str(report)
    translation.sync(english, translated)  # sync keeps the translated alt text
    code = nbformat.read(translated, as_version=4).cells[2]
    assert code.metadata["alt"] == "折线图：损失逐步下降。" and code.outputs == [PNG]
    nb.cells[1].metadata["alt"] = "Line plot of the loss falling, then flat."
    nbformat.write(nb, english)
    report = translation.sync(english, translated)
    assert report.alt_stale == ["code-1"] and "alt text stale: code-1" in str(report)
    kept = nbformat.read(translated, as_version=4).cells[2].metadata["alt"]
    assert kept == "折线图：损失逐步下降。"  # the old translation, to revise
    assert "then flat." in translation.export(english, translated)
    with pytest.raises(ValueError, match="not a figure with alt text"):
        translation.import_text("<!-- alt md-1 sha256:000000000000 -->\n图", english, translated)


def test_every_figure_has_alt_text_in_english_and_chinese():
    """The book gives each figure its cell's ``alt``: written for the reader, in both languages
    (the Chinese is current: test_every_translated_cell_is_current)."""
    for path in TRANSLATED:
        pairs = zip(
            nbformat.read(ROOT / "notebooks" / path.name, as_version=4).cells,
            [
                c
                for c in nbformat.read(path, as_version=4).cells
                if not translation.is_language_cell(c)
            ],
            strict=True,
        )
        for en, zh in pairs:
            if not any("image/png" in o.get("data", {}) for o in en.get("outputs", [])):
                continue
            alt_en, alt_zh = translation.alt_text(en), translation.alt_text(zh)
            where = f"{path.name}, cell {en.id}"
            assert alt_en and 40 <= len(alt_en) <= 300, f"{where}: write its alt text (metadata)"
            assert alt_zh and alt_zh != alt_en and re.search("[\u4e00-\u9fff]", alt_zh), where
            assert zh.metadata["translation"]["hash"] == translation.source_hash(alt_en), where


def feedback_chapter(*texts: str) -> nbformat.NotebookNode:
    """A toy chapter whose code cells show ``texts`` (one cell each), then a plain output."""
    nb = chapter()
    for number, text in enumerate(texts):
        cell = nbformat.v4.new_code_cell(f"check_{number}()", id=f"check-{number}")
        cell.outputs = [
            nbformat.v4.new_output("execute_result", data={"text/plain": text}, execution_count=1)
        ]
        nb.cells.append(cell)
    return nb


def test_the_translated_chapter_sets_the_language_once_before_its_first_code_cell(pair):
    english, translated = pair
    translation.sync(english, translated)
    translation.sync(english, translated)  # again: still one
    nb = nbformat.read(translated, as_version=4)
    added = [c for c in nb.cells if translation.is_language_cell(c)]
    assert len(added) == 1 and nb.cells.index(added[0]) == 1  # before code-1
    cell = added[0]
    assert cell.id == "set-language" and cell.cell_type == "code" and cell.outputs == []
    assert cell.source == (
        'from mnist_course import i18n\n\ni18n.set_language("zh")  # 检查器的反馈、提示和测验讲解用中文'
    )
    assert cell.metadata["slideshow"] == {"slide_type": "skip"}  # off the slides


def test_sync_shows_the_feedback_in_chinese_and_every_other_output_as_it_is(pair):
    english, translated = pair
    quiz = "Quiz (chapter 1): 4 of 5 right\n1. right. " + chapter01.QUIZ[1].explanation
    quiz += "\n2. not answered yet."
    nbformat.write(
        feedback_chapter(
            "Correct (softmax): right on ordinary and on huge logits (no overflow).",
            "Not yet (softmax): nan or inf for huge logits like [1000, 0, -1000]: exp() "
            "overflows. (Run the check again, or pass hint=2, for a hint.)",
            quiz,
            "Correctness (of a plot): not feedback",
        ),
        english,
    )
    translation.sync(english, translated)
    shown = {
        c.id: c.outputs[0]["data"]["text/plain"]
        for c in nbformat.read(translated, as_version=4).cells
        if c.id.startswith("check-")
    }
    assert shown == {
        "check-0": "正确（softmax）：在普通的和很大的 logits 上结果都对（没有上溢）。",
        "check-1": "还不对（softmax）：对 [1000, 0, -1000] 这样的大 logits 得到 nan 或 inf："
        "exp() 上溢了。（再运行一次检查，或传入 hint=2，就能看到提示。）",
        "check-2": "测验（第 1 章）：共 5 题，答对 4 题\n1. 正确。softmax 具有平移不变性：从每个 logit "
        "中减去同一个 c，分子和分母都乘以 e^-c，所以 softmax([2, 1, 0]) = softmax([102, 101, 100])。"
        "\n2. 还没有作答。",
        "check-3": "Correctness (of a plot): not feedback",
    }


def test_feedback_that_no_catalog_message_matches_stops_sync_and_writes_nothing(pair):
    english, translated = pair
    translation.sync(english, translated)
    before = translated.read_bytes()
    nbformat.write(feedback_chapter("Correct (softmax): a message the code never had."), english)
    with pytest.raises(ValueError, match=r"cell check-0: no catalog message matches"):
        translation.sync(english, translated)
    assert translated.read_bytes() == before


def test_import_refuses_unknown_cells_and_files_without_markers(pair):
    english, translated = pair
    translation.sync(english, translated)
    before = translated.read_bytes()
    with pytest.raises(ValueError, match="code-1 is not a markdown cell"):
        translation.import_text(
            "<!-- cell code-1 sha256:0123456789ab -->\nx\n", english, translated
        )
    with pytest.raises(ValueError, match="marker line"):
        translation.import_text("just some text\n", english, translated)
    assert translated.read_bytes() == before


def test_a_chapter_without_cell_ids_is_refused(tmp_path):
    nb = chapter()
    english = tmp_path / "old.ipynb"
    nbformat.write(nb, english)
    raw = english.read_text().replace('"id": "md-1",', "")
    english.write_text(raw.replace('"nbformat_minor": 5', '"nbformat_minor": 4'))
    with pytest.raises(ValueError, match="no id"):
        translation.status(english, translation.translated_path(english))


def test_the_command_line_reports_and_exits_1_until_all_is_current(pair, tmp_path, capsys):
    english, translated = pair
    assert cli.main(["translate", "status", str(english)]) == 1
    assert "0 of 2 markdown cells current" in capsys.readouterr().out
    exported = tmp_path / "toy.md"
    assert cli.main(["translate", "export", str(english), "--file", str(exported)]) == 0
    assert cli.main(["translate", "import", str(english), "--file", str(exported)]) == 0
    assert cli.main(["translate", "status", str(english)]) == 0
    assert cli.main(["translate", "export", str(english)]) == 1  # needs --file
    assert "takes one chapter and --file" in capsys.readouterr().err


def test_every_translated_cell_is_current():
    reports = [translation.status(ROOT / "notebooks" / p.name, p) for p in TRANSLATED]
    assert all(r.ok for r in reports), "\n".join(map(str, reports)) + (
        "\nfix: make translations, then translate what it lists (README, 中文版)"
    )


def test_a_translated_chapter_is_its_english_chapter_with_the_text_translated(tmp_path):
    """Code cells, their outputs and the order of all cells are the English chapter's: what
    sync writes (so strict nbval on the English chapter checks both)."""
    for path in TRANSLATED:
        copy = tmp_path / "zh" / path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(path.read_bytes())
        translation.sync(ROOT / "notebooks" / path.name, copy)
        assert nbformat.read(copy, as_version=4) == nbformat.read(path, as_version=4), (
            f"{path.name} is not in step with the English chapter: run make translations"
        )


def test_the_chinese_chapters_show_their_feedback_in_chinese_and_their_other_outputs_as_is():
    """A translated chapter's code cells are the English ones and the language cell; each
    stored output is the English one, but for the feedback, shown in Chinese."""
    translator = translation.FeedbackTranslator("zh")
    problems = []
    for path in TRANSLATED:
        english = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        ours = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        theirs = [c for c in english.cells if c.cell_type == "code"]
        added = [c for c in ours if translation.is_language_cell(c)]
        if theirs and (len(added) != 1 or ours[0] is not added[0]):
            problems.append(f"{path.name}: not one language cell before the code")
        ours = [c for c in ours if not translation.is_language_cell(c)]
        if [(c.id, c.source) for c in ours] != [(c.id, c.source) for c in theirs]:
            problems.append(f"{path.name}: its code is not the English chapter's")
            continue
        for mine, original in zip(ours, theirs, strict=True):
            for out, english_out in zip(mine.outputs, original.outputs, strict=True):
                text = english_out.get("data", {}).get("text/plain", english_out.get("text", ""))
                if not translator.is_feedback(text):
                    if out != english_out:
                        problems.append(f"{path.name} {mine.id}: an output is not the English")
                    continue
                shown = out.get("data", {}).get("text/plain", out.get("text", ""))
                if translator.is_feedback(shown) or not re.search(r"[\u4e00-\u9fff]", shown):
                    problems.append(f"{path.name} {mine.id}: feedback not in Chinese: {shown!r}")
    assert not problems, "\n".join(problems) + "\nfix: make translations"


# What a translation must carry over unchanged, block by block: numbers, inline code, math,
# link targets and the heading structure.
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.DOTALL)
TARGET = re.compile(r"\]\(([^)\s]+)\)")
DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
HEADING = re.compile(r"^(#+) ", re.MULTILINE)
TEXT = re.compile(r"\\text\{[^{}]*\}")


def carried(text: str) -> dict[str, object]:
    """What a cell's translation must keep: its code, math, link targets, numbers, headings."""
    code = CODE.findall(text)
    prose = MATH.sub(" ", CODE.sub(" ", text))
    numbers = {n.replace(",", "") for n in DIGITS.findall(TARGET.sub(" ", prose))}
    return {
        "inline code": sorted(set(code)),
        # the words inside a formula's \text{...} may be translated; the formula may not
        "math": sorted({TEXT.sub(r"\\text{}", m) for m in MATH.findall(CODE.sub(" ", text))}),
        "link targets": sorted(set(TARGET.findall(text))),
        "numbers": sorted(numbers),
        "headings": HEADING.findall(CODE.sub(" ", text)),
    }


def pairs() -> list[tuple[str, str, str]]:
    """(chapter and cell id, English text, translated text) of every translated markdown cell."""
    found = []
    for path in TRANSLATED:
        english = {c.id: c for c in nbformat.read(ROOT / "notebooks" / path.name, 4).cells}
        for cell in nbformat.read(path, 4).cells:
            if cell.cell_type == "markdown" and cell.metadata.get("translation", {}).get("hash"):
                found.append((f"{path.name} {cell.id}", english[cell.id].source, cell.source))
    return found


def test_translations_keep_the_numbers_code_math_links_and_headings():
    problems = []
    for where, english, chinese in pairs():
        ours, theirs = carried(english), carried(chinese)
        for what in ours:
            if ours[what] != theirs[what]:
                problems.append(f"{where}: {what} {ours[what]} became {theirs[what]}")
    assert not problems, "\n".join(problems[:40])


def table(path: Path) -> list[list[str]]:
    """The rows of a Markdown file's 4-column table (the glossary), header left out."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and not set(cells[0]) <= set("-"):
            rows.append(cells)
    return rows[1:]  # (the header row)


def glossary() -> list[tuple[list[str], list[str], str]]:
    """(English forms, Chinese forms, chapter that introduces it) of each row:
    'dtype (data type)' -> ['dtype', 'data type'], '自动求导（自动微分）' -> ['自动求导', '自动微分']."""
    rows = []
    for term, chinese, _, chapter in table(ROOT / "notebooks" / "glossary.md"):
        english = [f.strip() for f in re.split(r"[()]", term) if f.strip()]
        forms = [f.strip() for f in re.split(r"[（）]", chinese) if f.strip()]
        rows.append((english, forms, re.sub(r"\D", "", chapter.split("]")[0])))
    return rows


def prose(nb: nbformat.NotebookNode) -> str:
    return "\n".join(CODE.sub(" ", c.source) for c in nb.cells if c.cell_type == "markdown")


def test_glossary_terms_are_translated_as_the_glossary_says():
    """Where an English chapter uses a glossary term (from the chapter that introduces it on),
    its translation uses the glossary's Chinese. (Before that chapter a word may mean something
    else: chapter 0's "kernel" is Jupyter's, not a convolution's.)"""
    rows = glossary()
    assert len(rows) > 60 and all(len(chapter) == 2 for *_, chapter in rows)
    # Longer terms first, each match blanked out: "batch normalisation" is not "normalisation".
    forms = sorted(
        ((t, i) for i, (terms, *_) in enumerate(rows) for t in terms), key=lambda f: -len(f[0])
    )
    problems = []
    for path in TRANSLATED:
        english = prose(nbformat.read(ROOT / "notebooks" / path.name, 4))
        chinese = prose(nbformat.read(path, 4))
        used = set()
        for term, row in forms:
            pattern = re.compile(rf"\b{re.escape(term)}(?:e?s)?\b", re.IGNORECASE)
            if pattern.search(english):
                used.add(row)
                english = pattern.sub(" ", english)
        for row in sorted(used):
            terms, chinese_forms, chapter = rows[row]
            if path.name[:2] >= chapter and not any(form in chinese for form in chinese_forms):
                problems.append(f"{path.name}: '{terms[0]}' is used, but none of {chinese_forms}")
    assert not problems, "\n".join(problems)


DOCUMENT = re.compile(
    r"^<!-- translation of (?P<source>.+?) sha256:(?P<hash>[0-9a-f]{12}) -->$", re.M
)


def test_the_chinese_glossary_is_the_english_one_with_the_meanings_translated():
    """Same terms, same Chinese forms, same chapters, row by row; each meaning in Chinese with
    the English meaning's numbers and code; made from the English glossary as it is now."""
    english_path = ROOT / "notebooks" / "glossary.md"
    chinese_path = ROOT / "notebooks" / "zh" / "glossary.md"
    marker = DOCUMENT.search(chinese_path.read_text(encoding="utf-8"))
    assert marker and marker["source"] == "../glossary.md"
    english_text = english_path.read_text(encoding="utf-8")
    assert marker["hash"] == translation.source_hash(english_text), (
        "notebooks/glossary.md changed since notebooks/zh/glossary.md was translated: "
        "bring the Chinese glossary up to date, then write the new hash in its first line "
        f"({translation.source_hash(english_text)})"
    )
    english, chinese = table(english_path), table(chinese_path)
    assert [(e, z, c) for e, z, _, c in chinese] == [(e, z, c) for e, z, _, c in english]
    for (term, _, meaning, _), (_, _, translated, _) in zip(english, chinese, strict=True):
        assert re.search(r"[\u4e00-\u9fff]", translated), term
        ours, theirs = carried(meaning), carried(translated)
        assert ours["inline code"] == theirs["inline code"], term
        assert ours["numbers"] == theirs["numbers"], (term, ours["numbers"], theirs["numbers"])


def unrendered_emphasis(markdown: str) -> list[str]:
    """Asterisks that a CommonMark renderer (mistune, what nbconvert and the slides use) leaves
    as text: e.g. `**讲：**文字`, where the closing `**` follows full-width punctuation and a
    character follows it directly (`**讲：** 文字` renders)."""
    import mistune

    html = mistune.html(MATH.sub(" ", markdown))
    text = re.sub(r"<pre>.*?</pre>|<code>.*?</code>", " ", html, flags=re.DOTALL)
    return re.findall(r"\*\*[^*]{0,30}|(?<![*\w])\*[^*\s<>][^*<>]{0,30}\*", text)


def test_bold_and_italic_render_in_the_translations():
    problems = [
        f"{path.name} {cell.id}: {found}"
        for path in TRANSLATED
        for cell in nbformat.read(path, 4).cells
        if cell.cell_type == "markdown" and (found := unrendered_emphasis(cell.source))
    ]
    assert not problems, "\n".join(problems) + "\nfix: a space after the closing ** or *"
    assert unrendered_emphasis("**讲：**文字") and not unrendered_emphasis("**讲：** 文字")


def test_every_chapter_has_its_chinese_edition():
    english = sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb"))
    assert [p.name for p in TRANSLATED] == english
    for path in TRANSLATED:
        title = nbformat.read(path, 4).metadata.get("title", "")
        assert re.search(r"[\u4e00-\u9fff]", title), f"{path.name}: no Chinese title ({title!r})"


README_SECTIONS = [
    "Chapters", "Start the course (one command)", "The MNIST data", "Training from a terminal",
    "Troubleshooting",
]  # fmt: skip


def test_the_chinese_readme_translates_the_learner_sections_as_they_are_now():
    text = (ROOT / "notebooks" / "zh" / "README.md").read_text(encoding="utf-8")
    english = translation.sections((ROOT / "README.md").read_text(encoding="utf-8"))
    markers = list(DOCUMENT.finditer(text))
    assert [m["source"] for m in markers] == [f"../../README.md#{s}" for s in README_SECTIONS]
    for number, marker in enumerate(markers):
        heading = marker["source"].split("#", 1)[1]
        now = translation.source_hash(english[heading])
        assert marker["hash"] == now, (
            f"README section {heading!r} changed since it was translated: update "
            f"notebooks/zh/README.md and write sha256:{now} in its marker line"
        )
        end = markers[number + 1].start() if number + 1 < len(markers) else len(text)
        ours, theirs = carried(english[heading]), carried(text[marker.end() : end])
        assert ours["inline code"] == theirs["inline code"], heading
        assert ours["numbers"] == theirs["numbers"], heading
        assert not unrendered_emphasis(text[marker.end() : end]), heading
    for target in TARGET.findall(text):  # every relative link opens from notebooks/zh/
        if not target.startswith(("http://", "https://", "#")):
            assert (ROOT / "notebooks" / "zh" / target.split("#")[0]).exists(), target
