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
def deck(tmp_path_factory) -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: make slides fetches reveal.js and MathJax with it")
    # one chapter is enough to test the build; `make slides` builds them all
    out = tmp_path_factory.mktemp("slides")
    bin_dir = Path(sys.executable).parent
    command = [
        "make", "-s", "-o", ".venv/.installed", "slides", f"BIN={bin_dir}", f"SLIDES={out}",
        f"SLIDE_NOTEBOOKS=notebooks/{CHAPTER}.ipynb",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / f"{CHAPTER}.slides.html"


def test_deck_loads_no_asset_from_the_network(deck):
    html = deck.read_text(encoding="utf-8")
    sources = re.findall(r"""<(?:script|link|img)\b[^>]*?(?:src|href)=["']([^"']+)""", html)
    sources += re.findall(r"""\bimport\s+\w+\s+from\s+["']([^"']+)""", html)  # ES modules
    assert sources, "no asset references found: the check would prove nothing"
    remote = [s for s in sources if re.match(r"(https?:)?//", s)]
    assert not remote, f"the deck loads from the network: {remote}"
    for local in (
        "assets/reveal.js/dist/reveal.js",
        "assets/mathjax/MathJax.js",
        "assets/requirejs/require.js",
    ):
        assert local in html and (deck.parent / local).is_file(), local


def test_deck_renders_slides_with_typeset_math(deck, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(deck.as_uri())
    page.wait_for_selector(".reveal .slides section", state="attached")
    page.wait_for_function(
        "document.querySelectorAll('.MathJax_CHTML, mjx-container').length > 0", timeout=60_000
    )
    assert page.locator(".reveal .slides > section").count() > 5
    assert page.locator(".reveal.ready, .reveal .slides").first.is_visible()
    assert page.locator("h1").first.text_content().startswith("01 · Cross-entropy in NumPy")
    page.keyboard.press("ArrowRight")  # reveal.js answers the keyboard: it is a live deck
    page.wait_for_function("location.hash.length > 2")
    assert not [u for u in requests if u.startswith("http")], "the deck fetched from the network"
    assert not errors, f"console errors: {errors}"
    page.close()
