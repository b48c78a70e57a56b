"""`make book` builds the course as a static website in English and Chinese that works offline.

The book is built once (into a temporary folder, with a repository and a hub set so that the
launch links are there), then every page of both languages is opened in Chromium in one
browser context (dark colour scheme: the figures must stay readable on it) and looked at once
its formulas are typeset; the tests below check what was seen. A page that fails a check is
photographed into ``<book>/failures/`` (named in the failure message).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from mnist_course import book

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("en", "zh")
CHAPTERS = {
    language: sorted(p.stem for p in book.LANGUAGES[language].glob("0*.ipynb"))
    for language in LANGUAGES
}
REPOSITORY = "https://github.com/example/mnist-course"
HUB = "https://hub.example.org"
SEARCHES = {"en": "cross-entropy", "zh": "交叉熵"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """`make book` into a temporary folder; returns the folder (en/ and zh/ in it)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: make book fetches MathJax with it")
    pytest.importorskip("sphinx", reason="the book extra: pip install -e '.[book]'")
    out = tmp_path_factory.mktemp("book")
    bin_dir = Path(sys.executable).parent
    command = ["make", "-s", "-o", ".venv/.installed-book", "book", f"BIN={bin_dir}"]
    command += [f"BOOK={out}", f"BOOK_REPOSITORY={REPOSITORY}", f"BOOK_HUB={HUB}"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"make book: {time.perf_counter() - start:.1f} s")
    return out


def pages(site: Path) -> list[Path]:
    """Every page of both languages."""
    return sorted(p for language in LANGUAGES for p in (site / language).glob("*.html"))


def test_each_language_has_its_index_chapters_glossary_and_search(site):
    for language in LANGUAGES:
        names = {p.stem for p in (site / language).glob("*.html")}
        expected = {"index", "glossary", "search", *CHAPTERS[language]}
        assert expected <= names, f"{language}: missing {sorted(expected - names)}"
    assert CHAPTERS["en"] == CHAPTERS["zh"] and len(CHAPTERS["en"]) >= 8


def test_no_page_loads_an_asset_from_the_network(site):
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        sources = re.findall(r"""<(?:script|link|img)\b[^>]*?(?:src|href)=["']([^"']+)""", html)
        assert sources, f"{page.name}: no asset references found"
        remote = [s for s in sources if re.match(r"(https?:)?//", s)]
        assert not remote, f"{page.relative_to(site)} loads from the network: {remote}"
    for language in LANGUAGES:
        assert (site / language / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_page_links_to_the_same_page_in_the_other_language(site):
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        links = re.findall(r'id="language-switch"\s+href="([^"]+)"', html)
        assert len(links) == 1, f"{page.relative_to(site)}: {len(links)} language switches"
        other = "zh" if page.parent.name == "en" else "en"
        target = (page.parent / links[0]).resolve()
        assert target == (site / other / page.name).resolve() and target.is_file(), links[0]


def test_chapters_are_shown_as_stored_with_their_figures(site):
    """No execution: each chapter page holds as many figures as its notebook's stored outputs."""
    for language in LANGUAGES:
        for chapter in CHAPTERS[language]:
            nb = nbformat.read(book.LANGUAGES[language] / f"{chapter}.ipynb", as_version=4)
            stored = sum(
                "image/png" in o.get("data", {})
                for c in nb.cells
                if c.cell_type == "code"
                for o in c.outputs
            )
            html = (site / language / f"{chapter}.html").read_text(encoding="utf-8")
            shown = len(re.findall(r"<img\b[^>]*src=\"_images/", html))
            assert shown == stored, f"{language}/{chapter}: {shown} figures, {stored} stored"


def test_launch_links_with_a_repository_and_a_hub(site):
    html = (site / "zh" / "03_mnist_data.html").read_text(encoding="utf-8")
    assert f"{HUB}/hub/user-redirect/lab/tree/mnist-course/zh/03_mnist_data.ipynb" in html
    assert (
        "https://mybinder.org/v2/gh/example/mnist-course/main"
        "?labpath=notebooks/zh/03_mnist_data.ipynb" in html
    )
    assert (
        "https://colab.research.google.com/github/example/mnist-course/blob/main/"
        "notebooks/zh/03_mnist_data.ipynb" in html
    )
    text = re.sub(r"<[^>]+>", "", html)  # the Colab cell, without its highlighting
    assert '!pip install "mnist-course @ git+https://github.com/example/mnist-course@main"' in text


def test_without_settings_a_chapter_says_how_to_run_it_locally():
    cell = book.launch_cell("en", "03_mnist_data.ipynb", book.Launch())
    assert "make lab" in cell.source and "href" not in cell.source
    cell = book.launch_cell("zh", "03_mnist_data.ipynb", book.Launch())
    assert "make lab" in cell.source and "zh/03_mnist_data.ipynb" in cell.source


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"repository": "https://gitlab.com/x/mnist-course"}, "BOOK_REPOSITORY"),
        ({"repository": "github.com/x/mnist-course"}, "BOOK_REPOSITORY"),
        ({"hub": "hub.example.org"}, "BOOK_HUB"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(settings, named, capsys):
    with pytest.raises(ValueError, match=f"{named}=.*Write it as"):
        book.Launch(**settings)
    key, value = next(iter(settings.items()))
    assert book.main(["--out", "/nonexistent/book", f"--{key}", value]) == 1
    assert named in capsys.readouterr().err


def test_figures_get_alt_text_from_the_cell_or_the_line_that_drew_them():
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "x"})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 03 · The data\n\nText."),
        nbformat.v4.new_code_cell("curves(history)\nplt.show()", outputs=[png]),
        nbformat.v4.new_code_cell("# the first 32 digits\nplots.grid(x)", outputs=[png]),
        nbformat.v4.new_code_cell("plots.grid(x)", outputs=[png], metadata={"alt": "Digits"}),
        nbformat.v4.new_code_cell("print(1)"),
        nbformat.v4.new_code_cell('ax.plot(h)\nax.set(title="loss per step")', outputs=[png]),
        nbformat.v4.new_code_cell(
            'plt.plot(h)\nplt.xlabel("step")\nplt.ylabel("loss")', outputs=[png]
        ),
    ]
    assert book.add_alt_text(nb, "en") == 5
    alts = [c.metadata.get("mystnb", {}).get("image", {}).get("alt") for c in nb.cells]
    assert alts == [
        None,
        "03 · The data, figure 1: the output of curves(history)",
        "03 · The data, figure 2: the first 32 digits",
        "Digits",
        None,
        "03 · The data, figure 4: loss per step",
        "03 · The data, figure 5: loss against step",
    ]


def test_the_chinese_search_knows_the_glossarys_terms():
    glossary = (book.NOTEBOOKS / "zh" / "glossary.md").read_text(encoding="utf-8")
    terms = book.glossary_terms(glossary)
    assert {"交叉熵", "批量", "批次", "独热编码"} <= set(terms)
    assert "中文" not in terms  # the table's heading


# ---------------------------------------------------------------------------------------------
# Every page of both languages in Chromium
# ---------------------------------------------------------------------------------------------

# Resolves once the page's formulas are typeset (MathJax 3: startup.promise resolves after the
# first typeset) and its fonts have loaded; then reports what the page shows.
LOOK = r"""async () => {
  if (window.MathJax?.startup?.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  const skip = 'pre, code, script, style, mjx-container, textarea';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(skip)) continue;
    // $$, \( or \[ left in the text, or a $ beside a formula (a $$ read as $ + $...$ + $)
    const beside = [node.previousSibling, node.nextSibling].some(n => n?.classList?.contains('math'));
    if (/\$\$|\\\(|\\\[/.test(node.textContent) || (beside && node.textContent.includes('$')))
      raw.push(node.textContent.trim().slice(0, 80));
  }
  const math = [...document.querySelectorAll('.math')];
  const figures = [...document.querySelectorAll('.cell_output img')].map(img => ({
    src: img.getAttribute('src'), alt: img.alt, loaded: img.complete && img.naturalWidth > 0,
    background: getComputedStyle(img).backgroundColor,
  }));
  return {
    title: document.querySelector('article h1')?.textContent ?? '',
    formulas: math.length,
    typeset: math.filter(m => m.querySelector('mjx-container')).length,
    raw, figures,
  };
}"""


@dataclass
class Page:
    """What the browser saw of one page."""

    title: str
    formulas: int  # elements Sphinx marked as math
    typeset: int  # of those, how many hold MathJax's output
    raw: list[str]  # text outside code that still shows $$, \( or \[, or a $ beside a formula
    figures: list[dict]
    failed: list[str] = field(default_factory=list)  # requests that failed or left the disk
    errors: list[str] = field(default_factory=list)  # console errors and page errors


def photograph(page, site: Path, name: str) -> Path:
    folder = site / "failures"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name.replace('/', '-')}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


@pytest.fixture(scope="module")
def context(browser):
    """One browser context for every page, in the dark colour scheme; no network."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    context.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
    yield context
    context.close()


@pytest.fixture(scope="module")
def seen(site, context) -> dict[str, Page]:
    """Every page of both languages opened and looked at, by ``<language>/<page>``."""
    found = {}
    page = context.new_page()
    failed: list[str] = []
    errors: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        for path in pages(site):
            failed.clear()
            errors.clear()
            page.goto(path.as_uri(), wait_until="load")
            look = page.evaluate(LOOK)
            name = f"{path.parent.name}/{path.stem}"
            found[name] = Page(**look, failed=list(failed), errors=list(errors))
            bad = found[name]
            if bad.failed or bad.errors or bad.raw or bad.typeset < bad.formulas:
                bad.errors.append(f"screenshot: {photograph(page, site, name)}")
    finally:
        page.close()
    return found


def test_every_page_loads_with_no_failed_request_and_no_console_error(seen):
    assert len(seen) == sum(len(CHAPTERS[lang]) + 4 for lang in LANGUAGES)  # + index etc.
    problems = [f"{name}: {m}" for name, p in seen.items() for m in p.failed + p.errors]
    assert not problems, "\n".join(problems)


def test_formulas_are_typeset(seen):
    with_math = [name for name, p in seen.items() if p.formulas]
    assert {f"{lang}/{CHAPTERS[lang][1]}" for lang in LANGUAGES} <= set(with_math), with_math
    undrawn = {name: (p.typeset, p.formulas) for name, p in seen.items() if p.typeset < p.formulas}
    assert not undrawn, f"formulas not typeset (typeset, found): {undrawn}"
    raw = {name: p.raw for name, p in seen.items() if p.raw}
    assert not raw, f"math source shown as text: {raw}"


def test_every_figure_has_alt_text_and_an_opaque_white_background(seen):
    figures = [(name, f) for name, p in seen.items() for f in p.figures]
    assert len(figures) > 10, "hardly any figures found: the check would prove nothing"
    bad = [
        (name, f)
        for name, f in figures
        if not f["alt"].strip() or not f["loaded"] or f["background"] != "rgb(255, 255, 255)"
    ]
    assert not bad, f"figures without alt text, not loaded or not on white: {bad}"
    # each chapter's figures have alt text written for the reader, in the page's language
    # (the fallback made from the code says ", figure N:" / "，图 N：")
    fallback = [
        (name, f["alt"]) for name, f in figures if re.search(r"(, figure|，图) \d", f["alt"])
    ]
    assert not fallback, f"figures with the code-made fallback alt text: {fallback}"
    chinese = re.compile("[\u4e00-\u9fff]")
    wrong = [
        (name, f["alt"])
        for name, f in figures
        if bool(chinese.search(f["alt"])) != name.startswith("zh/")
    ]
    assert not wrong, f"alt text not in the page's language: {wrong}"


def test_the_language_switch_lands_on_the_same_chapter(site, context):
    chapter = CHAPTERS["en"][3]
    page = context.new_page()
    try:
        page.goto((site / "en" / f"{chapter}.html").as_uri())
        for language in ("zh", "en"):
            with page.expect_navigation():
                page.click("#language-switch")
            assert page.url == (site / language / f"{chapter}.html").as_uri()
            assert page.locator("article h1").first.text_content().startswith("03 ·")
            assert page.evaluate("document.documentElement.lang").startswith(language)
    finally:
        page.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_search_finds_a_term(site, context, language):
    page = context.new_page()
    try:
        url = (site / language / "search.html").as_uri() + f"?q={SEARCHES[language]}"
        page.goto(url)
        # Sphinx's search writes its summary once it has finished
        page.wait_for_function(
            "() => document.querySelector('#search-results .search-summary')?.textContent"
        )
        hits = page.locator("#search-results ul.search li a").all_text_contents()
        if not hits:
            photograph(page, site, f"{language}-search")
        assert len(hits) >= 3, f"{SEARCHES[language]!r} found only {hits}"
        chapters = [h for h in hits if h[:2].isdigit()]
        assert chapters, f"no chapter among the results: {hits}"
    finally:
        page.close()
