"""`make slides` builds reveal.js decks that need no network, and they show as slides."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
