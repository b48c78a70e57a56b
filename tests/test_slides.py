"""`make slides` builds reveal.js decks that need no network, and they show as slides.

The decks are measured in Chromium in one pass (:func:`measured`): each deck is opened once,
every slide is shown with reveal.js's own ``Reveal.slide(h, v)`` and measured once MathJax
has finished typesetting it (its queue's callback) and the fonts have loaded, then each
chapter's measurements are checked by the tests below. A slide that fails a check is
photographed into ``<decks>/failures/`` (named in the failure message); nothing is written
when everything passes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import nbformat
import pytest

from mnist_course import slides

ROOT = Path(__file__).resolve().parents[1]
# `make slides` builds a deck of each chapter and of its Chinese edition (notebooks/zh/)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TRANSLATED = sorted((ROOT / "notebooks" / "zh").glob("*.ipynb"))


def deck_name(path: Path) -> str:
    """The deck's name without `.slides.html`: the chapter's, `.zh` for its Chinese edition."""
    language = nbformat.read(path, as_version=4).metadata.get("translation", {}).get("language")
    return f"{path.stem}.{language}" if language else path.stem


SOURCES = {deck_name(path): path for path in NOTEBOOKS + TRANSLATED}
CHAPTERS = sorted(SOURCES)  # the decks
SLIDE_HEIGHT = 700  # reveal.js's slide height in nbconvert's decks, scaled to the screen
VIEWPORT = {"width": 1280, "height": 720}  # a classroom projector
REVEAL = "assets/reveal.js/dist/reveal.js"  # an AMD module: the deck loads it with require.js


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
    assert len(CHAPTERS) == 2 * len(NOTEBOOKS) and f"{NOTEBOOKS[1].stem}.zh" in CHAPTERS
    assert sorted(p.name.removesuffix(".slides.html") for p in decks.glob("*.slides.html")) == (
        CHAPTERS
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


# ---------------------------------------------------------------------------------------------
# One pass over every slide of every deck in Chromium
# ---------------------------------------------------------------------------------------------

# Resolves once reveal.js is initialised and MathJax's start-up typesetting and every font
# load have finished (MathJax 2.7: its "End" start-up hook fires after the first typeset);
# then turns MathJax's repaint pauses off.
SETTLED = f"""async () => {{
  const Reveal = require({REVEAL!r});
  await new Promise(done => MathJax.Hub.Register.StartupHook('End', done));
  await document.fonts.ready;
  // MathJax pauses 50 ms four times in each re-render so that a slow page can repaint; the
  // output is the same without the pauses, and 200 ms x 470 slides is not worth waiting for.
  MathJax.Hub.processSectionDelay = 0;
  return Reveal.getTotalSlides();
}}"""

# `show(h, v)`: show a slide with reveal.js's own `Reveal.slide` and resolve once it is drawn.
# Changing slides fires 'slidechanged' at once; the deck's handler then re-renders the new
# slide's math (`MathJax.Hub.Rerender`, which runs in a queue of its own and ends by posting
# "End Rerender" for that slide): wait for that message, then for any font still loading.
SHOW = f"""const Reveal = require({REVEAL!r});
const show = async (h, v) => {{
  let changed = false;
  const mark = () => {{ changed = true; }};
  let hook;
  const rendered = new Promise(done => {{
    hook = MathJax.Hub.Register.MessageHook('End Rerender', message => {{
      if ([].concat(message[1]).includes(Reveal.getCurrentSlide())) done();
    }});
  }});
  Reveal.on('slidechanged', mark);
  Reveal.slide(h, v);
  Reveal.off('slidechanged', mark);
  if (changed) await rendered;
  MathJax.Hub.UnRegister.MessageHook(hook);
  await document.fonts.ready;
  return [...document.querySelectorAll('.reveal .slides section.present')].pop();
}};"""

# Shows every slide in turn and measures it: where reveal.js says it is, the present slide's
# height, each code box's widest line against the slide (lines never wrapped: the deck's CSS
# would wrap a longer line, visible but no longer the line the learner typed), its formulas
# and how many of them MathJax has drawn, and any speaker note that shows.
MEASURE = f"""async () => {{
  {SHOW}
  const measureCode = slide => {{
    const box = slide.getBoundingClientRect();
    const scale = box.width / slide.offsetWidth;
    return [...slide.querySelectorAll('.jp-InputArea-editor pre')].map(pre => {{
      const editor = pre.closest('.jp-InputArea-editor').getBoundingClientRect();
      const keep = pre.style.whiteSpace;
      pre.style.whiteSpace = 'pre';
      const range = document.createRange();
      range.selectNodeContents(pre);
      const text = range.getBoundingClientRect();
      pre.style.whiteSpace = keep;
      const limit = Math.min(editor.right, box.right);
      return {{over: (text.right - limit) / scale, line: pre.textContent.split('\\n')
        .reduce((a, b) => (b.length > a.length ? b : a), '')}};
    }});
  }};
  const shown = element => {{
    const r = element.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(element).visibility !== 'hidden';
  }};
  const stacks = [...document.querySelectorAll('.reveal .slides > section')]
    .map(s => Math.max(1, s.querySelectorAll(':scope > section').length));
  const measured = [];
  for (const [h, count] of stacks.entries()) {{
    for (let v = 0; v < count; v++) {{
      const slide = await show(h, v);
      const at = Reveal.getIndices();
      const formulas = [...slide.querySelectorAll('script[type^="math/tex"]')];
      measured.push({{
        h, v, at: [at.h, at.v],
        height: slide.scrollHeight,
        code: measureCode(slide),
        formulas: formulas.length,
        typeset: formulas.filter(f => document.getElementById(f.id + '-Frame')).length,
        notes_shown: [...slide.querySelectorAll('aside.notes')].filter(shown).length,
      }});
    }}
  }}
  return {{
    title: document.querySelector('.reveal h1')?.textContent ?? '',
    visible: shown(document.querySelector('.reveal .slides')),
    slides: measured,
    notes: document.querySelectorAll('.reveal aside.notes').length,
  }};
}}"""

INDICES = "() => JSON.stringify(require('assets/reveal.js/dist/reveal.js').getIndices())"
# reveal.js moves slides with CSS transitions (a CSS animation may loop forever: not those)
TRANSITIONS_DONE = """() => document.getAnimations()
  .every(a => !(a instanceof CSSTransition) || a.playState !== 'running')"""


@dataclass
class Deck:
    """What the browser saw of one chapter's deck."""

    title: str
    visible: bool
    slides: list[dict]  # per slide: h, v, at, height, code, formulas, typeset, notes_shown
    notes: int  # speaker notes (aside.notes) in the deck
    keyboard_moved: bool
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shots: dict[tuple[int, int], Path] = field(default_factory=dict)  # failed slide -> picture

    def too_tall(self) -> list[dict]:
        return [s for s in self.slides if s["height"] > SLIDE_HEIGHT]

    def too_wide(self) -> list[tuple[dict, dict]]:
        return [(s, b) for s in self.slides for b in s["code"] if b["over"] > 1]


def photograph(page, deck: Path, h: int, v: int, folder: Path) -> Path:
    """A screenshot of slide (h, v) once its transition has ended."""
    page.evaluate(f"async () => {{ {SHOW} await show({h}, {v}); }}")
    page.wait_for_function(TRANSITIONS_DONE)
    folder.mkdir(exist_ok=True)
    path = folder / f"{deck.name.removesuffix('.slides.html')}-{h}-{v}.png"
    page.screenshot(path=str(path))
    return path


def measure_deck(browser, deck: Path, failures: Path) -> Deck:
    """Open ``deck`` at 1280 x 720, measure every slide, press a key; close the page."""
    page = browser.new_page(viewport=VIEWPORT)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(deck.as_uri())
        page.wait_for_function(  # require.js has loaded reveal.js, and the deck is set up
            f"() => require.defined({REVEAL!r}) && require({REVEAL!r}).isReady()"
        )
        page.evaluate(SETTLED)
        seen = page.evaluate(MEASURE)
        result = Deck(**seen, keyboard_moved=False, requests=requests, errors=errors)
        failed = {(s["h"], s["v"]) for s in result.too_tall()}
        failed |= {(s["h"], s["v"]) for s, _ in result.too_wide()}
        for h, v in sorted(failed):
            result.shots[h, v] = photograph(page, deck, h, v, failures)
        # reveal.js answers the keyboard: it is a live deck
        page.evaluate(f"async () => {{ {SHOW} await show(0, 0); }}")
        before = page.evaluate(INDICES)
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => ({INDICES})() !== {before!r}")
        result.keyboard_moved = True
        return result
    finally:
        page.close()


@pytest.fixture(scope="module")
def measured(decks, browser) -> dict[str, Deck]:
    """Every deck measured in Chromium, by chapter."""
    return {
        deck.name.removesuffix(".slides.html"): measure_deck(browser, deck, decks / "failures")
        for deck in sorted(decks.glob("*.slides.html"))
    }


def slide_types(chapter: str) -> list[str]:
    nb = nbformat.read(SOURCES[chapter], as_version=4)
    return [c.metadata.get("slideshow", {}).get("slide_type", "-") for c in nb.cells]


def pictures(deck: Deck, slides: list[dict]) -> str:
    shots = [str(deck.shots[s["h"], s["v"]]) for s in slides if (s["h"], s["v"]) in deck.shots]
    return f" (screenshots: {', '.join(shots)})" if shots else ""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_deck_shows_every_slide_offline(measured, chapter):
    """The deck opens as live slides, every slide can be shown, nothing comes from the network."""
    deck = measured[chapter]
    assert deck.visible, "the slides are not visible"
    assert deck.title.startswith(f"{chapter[:2]} · "), f"the first heading is {deck.title!r}"
    types = slide_types(chapter)
    visible = [t for t in types if t not in ("skip", "notes")]
    expected = types.count("slide") + types.count("subslide") + (visible[0] != "slide")
    assert len(deck.slides) == expected > 1, "a slide or subslide of the notebook is missing"
    missed = [(s["h"], s["v"], s["at"]) for s in deck.slides if s["at"] != [s["h"], s["v"]]]
    assert not missed, f"reveal.js did not show these slides (h, v, where it was): {missed}"
    assert deck.keyboard_moved  # ArrowRight moved to the next slide
    assert not [u for u in deck.requests if u.startswith("http")], "fetched from the network"
    assert not deck.errors, f"console errors: {deck.errors}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_math_is_typeset(measured, chapter):
    deck = measured[chapter]
    nb = nbformat.read(SOURCES[chapter], as_version=4)
    has_math = any(c.cell_type == "markdown" and "$" in c.source for c in nb.cells)
    formulas = sum(s["formulas"] for s in deck.slides)
    if has_math:
        assert formulas > 0, "MathJax found no formula: the $...$ show as source"
    undrawn = [(s["h"], s["v"]) for s in deck.slides if s["typeset"] < s["formulas"]]
    assert not undrawn, f"formulas not drawn on slides {undrawn}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_speaker_notes_are_in_the_deck_and_off_the_slides(measured, chapter):
    deck = measured[chapter]
    assert deck.notes == slide_types(chapter).count("notes")
    shown = [(s["h"], s["v"]) for s in deck.slides if s["notes_shown"]]
    assert not shown, f"speaker notes visible on slides {shown}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_slide_fits_a_1280x720_projector(measured, decks, chapter):
    deck = measured[chapter]
    tall = deck.too_tall()
    found = [f"#/{s['h']}/{s['v']}: {s['height']} px" for s in tall]
    assert not found, (
        f"slides taller than {SLIDE_HEIGHT} px (add a subslide break): {found}"
        + pictures(deck, tall)
    )


def test_the_decks_have_code_to_measure(measured):
    boxes = sum(len(s["code"]) for deck in measured.values() for s in deck.slides)
    assert boxes > 20, "hardly any code found in the decks: the width check would prove nothing"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_code_line_is_wider_than_its_slide(measured, chapter):
    """Every code line fits its slide at 1280 x 720, unwrapped."""
    deck = measured[chapter]
    wide = deck.too_wide()
    found = [f"#/{s['h']}/{s['v']} ({b['over']:.0f} px): {b['line']}" for s, b in wide]
    assert not found, f"code lines wider than the slide: {found}" + pictures(
        deck, [s for s, _ in wide]
    )


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
    toy = tmp_path / "progress.ipynb"
    nbformat.write(progress_notebook(), toy)
    shutil.copytree(decks / "assets", tmp_path / "assets")  # build_decks finds them present
    (deck,) = slides.build_decks([toy], tmp_path)
    html = deck.read_text(encoding="utf-8")
    assert escape(BAR, quote=False) in html and not bars_shown_as_errors(html)
    assert "UserWarning: look here" in html.split(STDERR_BLOCK)[1]  # a warning stays marked
    raw, _ = slides.exporter().from_notebook_node(progress_notebook())
    assert bars_shown_as_errors(raw), "nbconvert alone shows the bar as an error block"
    for chapter, path in SOURCES.items():
        nb = nbformat.read(path, as_version=4)
        streams = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o.output_type == "stream" and o.name == "stderr"
        ]
        if any(slides.PROGRESS_BAR.search(o.text) for o in streams):
            html = (decks / f"{chapter}.slides.html").read_text(encoding="utf-8")
            assert "100%|" in html, f"{chapter}: the progress bar's final line is not shown"
            assert not bars_shown_as_errors(html), chapter


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
