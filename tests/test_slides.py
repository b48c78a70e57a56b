"""`make slides` builds reveal.js decks that need no network, and they show as slides."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import nbformat
import pytest

from mnist_course import slides

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_cross_entropy_numpy"


@pytest.fixture(scope="module")
def decks(tmp_path_factory) -> Path:
    """`make slides` into a temporary folder; returns the folder."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: make slides fetches reveal.js and MathJax with it")
    out = tmp_path_factory.mktemp("slides")
    bin_dir = Path(sys.executable).parent
    command = ["make", "-s", "-o", ".venv/.installed", "slides", f"BIN={bin_dir}", f"SLIDES={out}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_one_deck_per_chapter(decks):
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert (
        sorted(p.name.removesuffix(".slides.html") for p in decks.glob("*.slides.html")) == chapters
    )


def test_decks_load_no_asset_from_the_network(decks):
    for deck in decks.glob("*.slides.html"):
        html = deck.read_text(encoding="utf-8")
        sources = re.findall(r"""<(?:script|link|img)\b[^>]*?(?:src|href)=["']([^"']+)""", html)
        sources += re.findall(r"""\bimport\s+\w+\s+from\s+["']([^"']+)""", html)  # ES modules
        assert sources, "no asset references found: the check would prove nothing"
        remote = [s for s in sources if re.match(r"(https?:)?//", s)]
        assert not remote, f"{deck.name} loads from the network: {remote}"
        for local in (
            "assets/reveal.js/dist/reveal.js",
            "assets/mathjax/MathJax.js",
            "assets/requirejs/require.js",
        ):
            assert local in html and (decks / local).is_file(), local


def test_deck_renders_slides_with_typeset_math(decks, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((decks / f"{CHAPTER}.slides.html").as_uri())
    page.wait_for_selector(".reveal .slides section", state="attached")
    page.wait_for_function(
        "document.querySelectorAll('.MathJax_CHTML, mjx-container').length > 0", timeout=60_000
    )
    assert page.locator(".reveal .slides > section").count() > 5
    assert page.locator(".reveal .slides").first.is_visible()
    assert page.locator("h1").first.text_content().startswith("01 · Cross-entropy in NumPy")
    page.keyboard.press("ArrowRight")  # reveal.js answers the keyboard: it is a live deck
    page.wait_for_function("location.hash.length > 2")
    assert not [u for u in requests if u.startswith("http")], "the deck fetched from the network"
    assert not errors, f"console errors: {errors}"
    page.close()


SLIDE_HEIGHT = 700  # reveal.js's slide height in nbconvert's decks, scaled to the screen


def test_every_slide_fits_a_1280x720_projector(decks, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    too_tall = []
    for deck in sorted(decks.glob("*.slides.html")):
        page.goto(deck.as_uri())
        page.wait_for_selector(".reveal .slides section.present")
        page.wait_for_timeout(1000)  # fonts and MathJax settle
        layout = page.evaluate(
            "() => [...document.querySelectorAll('.reveal .slides > section')]"
            ".map(s => Math.max(1, s.querySelectorAll(':scope > section').length))"
        )
        for h, count in enumerate(layout):
            for v in range(count):
                page.evaluate(f"location.hash = '#/{h}/{v}'")
                page.wait_for_timeout(100)
                height = page.evaluate(
                    "() => [...document.querySelectorAll('.reveal .slides section.present')]"
                    ".pop().scrollHeight"
                )
                if height > SLIDE_HEIGHT:
                    too_tall.append(f"{deck.name} #/{h}/{v}: {height} px")
    page.close()
    assert not too_tall, f"slides taller than {SLIDE_HEIGHT} px (add a subslide break): {too_tall}"


# ---------------------------------------------------------------------------------------------
# Progress bars and long lines (issue 9: the projector shows them right)
# ---------------------------------------------------------------------------------------------

STDERR_BLOCK = 'data-mime-type="application/vnd.jupyter.stderr"'
BAR = "epoch 1: 100%|##########| 2/2 [00:01<00:00,  1.00it/s]"


def progress_notebook() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("for x in tqdm(range(2)): print(x)", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="epoch 1: loss 0.25\n"),
        nbformat.v4.new_output(
            "stream", name="stderr", text=f"epoch 1:  50%|#####     | 1/2 [00:00<?]\r{BAR}\n"
        ),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: look here\n"),
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    return nb


def test_progress_bars_become_plain_output_showing_their_final_line():
    nb = progress_notebook()
    shown = slides.for_slides(nb).cells[0].outputs
    assert [(o.name, o.text) for o in shown] == [
        ("stdout", f"epoch 1: loss 0.25\n{BAR}\ndone\n"),
        ("stderr", "UserWarning: look here\n"),  # a real warning keeps its colour
    ]
    assert nb.cells[0].outputs[1].name == "stderr"  # the notebook itself is untouched


def bars_shown_as_errors(html: str) -> list[str]:
    """The stderr blocks of a deck that hold a progress bar."""
    blocks = html.split(STDERR_BLOCK)[1:]
    return [b[:200] for b in blocks if slides.PROGRESS_BAR.search(b[:2000])]


def test_decks_show_no_progress_bar_as_an_error_block(decks, tmp_path):
    """A deck built from a notebook with a progress bar, and every chapter that has one."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    toy = tmp_path / "progress.ipynb"
    nbformat.write(progress_notebook(), toy)
    shutil.copytree(decks / "assets", tmp_path / "assets")  # build_decks finds them present
    (deck,) = slides.build_decks([toy], tmp_path)
    html = deck.read_text(encoding="utf-8")
    assert escape(BAR, quote=False) in html and not bars_shown_as_errors(html)
    assert "UserWarning: look here" in html.split(STDERR_BLOCK)[1]  # a warning stays marked
    raw, _ = slides.exporter().from_notebook_node(progress_notebook())
    assert bars_shown_as_errors(raw), "nbconvert alone shows the bar as an error block"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        streams = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o.output_type == "stream" and o.name == "stderr"
        ]
        if any(slides.PROGRESS_BAR.search(o.text) for o in streams):
            html = (decks / f"{path.stem}.slides.html").read_text(encoding="utf-8")
            assert "100%|" in html, f"{path.stem}: the progress bar's final line is not shown"
            assert not bars_shown_as_errors(html), path.stem


# For each code box of the present slide, with lines never wrapped: does its text's right edge
# stay inside the code box and the slide? (The deck's CSS would wrap a longer line: visible,
# but no longer the line the learner typed.)
MEASURE_CODE = """() => {
  const slide = [...document.querySelectorAll('.reveal .slides section.present')].pop();
  const box = slide.getBoundingClientRect();
  const scale = box.width / slide.offsetWidth;
  return [...slide.querySelectorAll('.jp-InputArea-editor pre')].map(pre => {
    const editor = pre.closest('.jp-InputArea-editor').getBoundingClientRect();
    const keep = pre.style.whiteSpace;
    pre.style.whiteSpace = 'pre';
    const range = document.createRange();
    range.selectNodeContents(pre);
    const text = range.getBoundingClientRect();
    pre.style.whiteSpace = keep;
    const limit = Math.min(editor.right, box.right);
    return {over: (text.right - limit) / scale, line: pre.textContent.split('\\n')
      .reduce((a, b) => (b.length > a.length ? b : a), '')};
  });
}"""


def test_no_code_line_is_wider_than_its_slide(decks, browser):
    """Every code line of every deck fits its slide at 1280 x 720; screenshots in decks/shots."""
    shots = decks / "shots"
    shots.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    measured, too_wide = 0, []
    for deck in sorted(decks.glob("*.slides.html")):
        page.goto(deck.as_uri())
        page.wait_for_selector(".reveal .slides section.present")
        page.wait_for_timeout(1000)
        layout = page.evaluate(
            "() => [...document.querySelectorAll('.reveal .slides > section')]"
            ".map(s => Math.max(1, s.querySelectorAll(':scope > section').length))"
        )
        for h, count in enumerate(layout):
            for v in range(count):
                page.evaluate(f"location.hash = '#/{h}/{v}'")
                page.wait_for_timeout(100)
                boxes = page.evaluate(MEASURE_CODE)
                measured += len(boxes)
                wide = [b for b in boxes if b["over"] > 1]
                if boxes:
                    page.wait_for_timeout(800)  # let the slide transition end for the picture
                    name = f"{deck.name.removesuffix('.slides.html')}-{h}-{v}.png"
                    page.screenshot(path=str(shots / name))
                too_wide += [
                    f"{deck.name} #/{h}/{v} ({b['over']:.0f} px): {b['line']}" for b in wide
                ]
    page.close()
    assert measured > 20, "hardly any code found in the decks: the check would prove nothing"
    assert not too_wide, f"code lines wider than the slide (see {shots}): {too_wide}"


def tar_with(tmp_path: Path, name: str, link: bool = False) -> Path:
    import io
    import tarfile

    path = tmp_path / "package.tgz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"ok"))
    return path


@pytest.mark.parametrize("filters", [True, False], ids=["python>=3.11.4", "python-3.11.2"])
def test_downloaded_packages_unpack_safely_with_or_without_tar_filters(
    tmp_path, monkeypatch, filters
):
    import tarfile

    if not filters:  # Debian 12's Python 3.11.2: tarfile has no extraction filters
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with tarfile.open(tar_with(tmp_path, "package/reveal.js")) as tar:
        slides.extract(tar, tmp_path / "out")
    assert (tmp_path / "out" / "package" / "reveal.js").read_text() == "ok"
    for name, link in [("../escape.js", False), ("package/passwd", True)]:
        (tmp_path / "bad").mkdir(exist_ok=True)
        with tarfile.open(tar_with(tmp_path, name, link)) as tar:
            with pytest.raises((RuntimeError, tarfile.TarError)):
                slides.extract(tar, tmp_path / "bad" / "inside")
        assert not (tmp_path / "bad" / "escape.js").exists()
