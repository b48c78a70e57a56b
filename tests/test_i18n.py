"""The learner's feedback in both languages (mnist_course/i18n.py, the gettext catalogs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from babel.messages.pofile import read_po

from mnist_course import catalogs, chapter01, chapter02, chapter03, exercises, i18n

ROOT = Path(__file__).resolve().parents[1]
MODULES = catalogs.modules()
CHINESE = re.compile(r"[\u4e00-\u9fff]")
# A translation shows Chinese: its words, or (for "pixel_stats: {message}") its punctuation.
CHINESE_TEXT = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")
FIELDS = re.compile(r"\{(\w+)(?:![rsa])?(?::[^{}]*)?\}")


@pytest.fixture(autouse=True)
def english_afterwards():
    """Every test leaves the feedback in English, as the other tests expect it."""
    yield
    i18n.set_language("en")


def messages(module: str) -> list:
    with catalogs.po_path(module, "zh").open("rb") as handle:
        return [m for m in read_po(handle, locale="zh", domain=module) if m.id]


def test_the_modules_that_speak_to_the_learner_have_catalogs():
    assert {"exercises", "quiz", "chapter01", "chapter02", "chapter03"} <= set(MODULES)
    for module in MODULES:
        assert catalogs.template_path(module).exists(), f"{module}: run make messages"


@pytest.mark.parametrize("module", MODULES)
def test_the_catalog_is_in_step_with_the_code(module):
    """What `python -m mnist_course.catalogs --check` checks: the template is what the code
    says now, the .po holds exactly those messages, the .mo is the .po compiled."""
    files, _counts = catalogs.build(module)
    behind = [str(p.relative_to(ROOT)) for p, data in files.items() if p.read_bytes() != data]
    assert not behind, f"out of step: {behind}; run make messages (python -m mnist_course.catalogs)"


@pytest.mark.parametrize("module", MODULES)
def test_every_message_has_its_chinese_with_the_same_fields(module):
    problems = []
    for message in messages(module):
        text = str(message.string)
        if not text or message.fuzzy:
            problems.append(f"not translated{' (fuzzy)' if message.fuzzy else ''}: {message.id!r}")
        elif sorted(FIELDS.findall(text)) != sorted(FIELDS.findall(message.id)):
            problems.append(f"fields differ: {message.id!r} -> {text!r}")
        elif not CHINESE_TEXT.search(text):
            problems.append(f"no Chinese: {message.id!r} -> {text!r}")
    assert not problems, f"{module}:\n" + "\n".join(problems)


def test_the_checker_reports_a_catalog_out_of_step(tmp_path, monkeypatch, capsys):
    """--check changes nothing and exits 1 naming the file when the code says something new."""
    module = tmp_path / "toy.py"
    module.write_text(
        "from mnist_course import i18n\n_ = i18n.translator(__name__)\nx = _('a new message')\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(catalogs, "PACKAGE", tmp_path)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path / "locale")
    assert catalogs.main(["--check"]) == 1
    assert "locale/toy.pot" in capsys.readouterr().out and not (tmp_path / "locale").exists()
    assert catalogs.main([]) == 0
    written = {p: p.read_bytes() for p in (tmp_path / "locale").rglob("*.*")}
    assert "0 of 1 translated" in capsys.readouterr().out
    assert catalogs.main(["--check"]) == 0  # idempotent: no dates, no line numbers
    assert written == {p: p.read_bytes() for p in (tmp_path / "locale").rglob("*.*")}
    module.write_text(module.read_text().replace("a new message", "a newer message"))
    assert catalogs.main(["--check"]) == 1


def test_a_changed_message_keeps_its_translation_marked_fuzzy(tmp_path, monkeypatch, capsys):
    module = tmp_path / "toy.py"
    source = (
        "from mnist_course import i18n\n_ = i18n.translator(__name__)\nx = _('{n} rows in all')\n"
    )
    module.write_text(source, encoding="utf-8")
    monkeypatch.setattr(catalogs, "PACKAGE", tmp_path)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path / "locale")
    catalogs.main([])
    po = tmp_path / "locale" / "zh" / "LC_MESSAGES" / "toy.po"
    po.write_text(
        po.read_text(encoding="utf-8").replace(
            'msgid "{n} rows in all"\nmsgstr ""', 'msgid "{n} rows in all"\nmsgstr "共 {n} 行"'
        ),
        encoding="utf-8",
    )
    catalogs.main([])
    assert "1 of 1 translated" in capsys.readouterr().out
    module.write_text(source.replace("rows in all", "rows in all."), encoding="utf-8")
    catalogs.main([])
    assert "0 of 1 translated, 1 fuzzy" in capsys.readouterr().out
    text = po.read_text(encoding="utf-8")
    assert "#, fuzzy" in text and 'msgstr "共 {n} 行"' in text
    assert "Creation-Date" not in text and "toy.py:" not in text


# ---- behaviour: the same checks, in Chinese after set_language("zh") -------------------------


def stable_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def naive_softmax(z):
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def test_set_language_refuses_an_unknown_language_and_names_the_choices():
    with pytest.raises(ValueError, match=r"'en', 'zh'"):
        i18n.set_language("fr")
    assert i18n.language() == "en"


def test_english_is_the_default_and_comes_back():
    assert str(chapter01.check_softmax(naive_softmax, hint=2)).startswith("Not yet (softmax): ")
    i18n.set_language("zh")
    assert str(chapter01.check_softmax(naive_softmax, hint=2)).startswith("还不对（softmax）：")
    i18n.set_language("en")
    assert "Hint: " in str(chapter01.check_softmax(naive_softmax, hint=2))


def assert_chinese_not_yet(feedback: exercises.Feedback, name: str) -> None:
    text = str(feedback)
    assert not feedback.ok and text.startswith(f"还不对（{name}）："), text
    symptom, _, hint = feedback.message.partition("提示：")
    assert CHINESE.search(symptom) and CHINESE.search(hint), text


@pytest.mark.usefixtures("chinese")
def test_chapter01_feedback_in_chinese():
    assert_chinese_not_yet(chapter01.check_softmax(naive_softmax, hint=2), "softmax")
    first = str(chapter01.check_log_softmax(lambda z: np.log(naive_softmax(z)), hint=1))
    assert "再运行一次检查，或传入 hint=2" in first and "Hint" not in first
    right = chapter01.check_softmax(stable_softmax)
    assert right.ok and str(right).startswith("正确（softmax）：") and CHINESE.search(right.message)


@pytest.mark.usefixtures("chinese")
def test_chapter02_feedback_in_chinese():
    import torch

    wrong = chapter02.check_nll_loss(lambda lp, y: lp[torch.arange(len(y)), y].mean(), hint=2)
    assert_chinese_not_yet(wrong, "nll_loss")
    right = chapter02.check_nll_loss(lambda lp, y: -lp[torch.arange(len(y)), y].mean())
    assert right.ok and str(right).startswith("正确（nll_loss）：与 F.nll_loss 一致")


@pytest.mark.usefixtures("chinese")
def test_chapter03_feedback_in_chinese():
    import torch

    wrong = chapter03.check_channels_first(lambda b: torch.from_numpy(b).float() / 255, hint=2)
    assert_chinese_not_yet(wrong, "channels_first")
    right = chapter03.check_channels_first(
        lambda b: torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    )
    assert right.ok and str(right).startswith("正确（channels_first）："), right


@pytest.mark.usefixtures("chinese")
def test_the_machinery_speaks_chinese_too():
    """exercises: a wrong kind of answer, a forbidden function, an unreadable answer."""
    assert str(chapter01.check_softmax(3)) == (
        "还不对（softmax）：需要的是一个函数，得到的却是一个 int：请传入函数本身。"
    )
    import torch

    forbidden = str(chapter01.check_softmax(lambda z: torch.softmax(torch.tensor(z), -1)))
    assert "请自己实现，不要用 `torch.softmax`。" in forbidden
    unreadable = str(chapter02.check_double_softmax(lambda: {"lowest_loss": object()}))
    assert CHINESE.search(unreadable) and "lowest_loss" in unreadable


@pytest.mark.usefixtures("chinese")
@pytest.mark.parametrize("chapter", [chapter01, chapter02, chapter03])
def test_the_quiz_explains_in_chinese(chapter):
    answers = {number: question.answer for number, question in chapter.QUIZ.items()}
    answers[1] = "z" if isinstance(answers[1], str) else answers[1] + 1000
    result = str(chapter.check_quiz(answers))
    head, *lines = result.split("\n")
    total = len(chapter.QUIZ)
    assert head == f"测验（第 {chapter.__name__[-1]} 章）：共 {total} 题，答对 {total - 1} 题"
    assert lines[0].startswith("1. 不太对：答案是 ")
    assert all(line.startswith(f"{n}. 正确。") for n, line in enumerate(lines[1:], 2))
    assert all(CHINESE.search(line.split("。", 1)[1]) for line in lines), result
    assert "right" not in result


# ---- the glossary's terms -----------------------------------------------------------------

# Messages where a glossary term's Chinese is not the glossary's, with the reason.
GLOSSARY_EXCEPTIONS = {
    # batch_norm, layer_norm...: 批归一化、层归一化 in Chinese, so "归一化层" (the glossary's
    # "也常称归一化"), not 标准化.
    (
        "chapter03",
        "normalisation",
        "a normalisation layer (batch_norm, instance_norm, layer_norm, ...)",
    ),
    # code: the attribute `bias` of nn.Linear, in an expression.
    ("chapter04", "bias", "... computes x @ weight.T + bias."),
    # the Jupyter kernel (内核), not a convolution's kernel (the glossary's "filter (kernel)").
    ("grade", "filter", "the checker cell did not run (the kernel died: ...)"),
}
# Code in a message: {fields}, `...`, 'key', calls f(x, labels), dotted names, subscripts,
# snake_case names.
CODE = re.compile(r"\{[^{}]*\}|`[^`]*`|'\w+'|[\w.]+\([^()]*\)|\w+(?:\.\w+)+|\w*\[[^\]]*\]|\w+_\w+")


# English forms the messages use beside the glossary's: "batch norm frozen" is not a batch.
MORE_FORMS = {"batch normalisation": ["batch norm"]}
ACRONYM = re.compile(r"[A-Z][A-Za-z]*[A-Z][A-Za-z]*")


def glossary() -> list[tuple[list[str], list[str], str]]:
    """(English forms, Chinese forms, the chapter that introduces it) of each glossary row.
    An acronym (SGD, MLP) is a Chinese form too: Chinese text writes it as it is."""
    rows = []
    for line in (ROOT / "notebooks" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and not set(cells[0]) <= set("-"):
            english = [f.strip() for f in re.split(r"[()]", cells[0]) if f.strip()]
            forms = [f.strip() for f in re.split(r"[（）]", cells[1]) if f.strip()]
            forms += [form for form in english if ACRONYM.fullmatch(form)]
            english += MORE_FORMS.get(english[0], [])
            rows.append((english, forms, re.sub(r"\D", "", cells[3].split("]")[0])))
    return rows[1:]


@pytest.mark.parametrize("module", MODULES)
def test_glossary_terms_are_translated_as_the_glossary_says(module):
    """Where a message uses a glossary term (in prose, not in code), its Chinese uses the
    glossary's Chinese; in a chapter's messages, from the chapter that introduces the term on."""
    rows = glossary()
    assert len(rows) > 60
    terms = sorted(
        ((t, i) for i, (english, *_) in enumerate(rows) for t in english), key=lambda f: -len(f[0])
    )
    exceptions = {(m, t) for m, t, _ in GLOSSARY_EXCEPTIONS if m == module}
    chapter = module[-2:] if module.startswith("chapter") else "99"
    problems = []
    for message in messages(module):
        prose = CODE.sub(" ", message.id)
        for term, row in terms:
            pattern = re.compile(rf"(?<![\w-]){re.escape(term)}(?:e?s)?(?![\w-])", re.IGNORECASE)
            if not pattern.search(prose):
                continue
            prose = pattern.sub(" ", prose)
            english, forms, introduced = rows[row]
            if chapter < introduced or (module, english[0]) in exceptions:
                continue
            if not any(form in str(message.string) for form in forms):
                problems.append(f"{message.id!r}: '{term}' is used, but none of {forms}")
    assert not problems, f"{module}:\n" + "\n".join(problems)
