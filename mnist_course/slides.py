"""Static reveal.js decks of the chapters that work offline (``make slides``).

By default nbconvert's decks load reveal.js, require.js, jQuery, MathJax and
mermaid.js from CDNs, so offline they render as one unstyled page. Here the
first four are fetched once from the npm registry into ``<out>/assets/`` and
the decks point at them with relative URLs; mermaid (diagrams, which the
course does not use) is replaced by an empty inline module.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

# npm package -> version: the set checked to work together with nbconvert 7's reveal template
ASSETS = {"reveal.js": "4.0.2", "mathjax": "2.7.7", "requirejs": "2.1.10", "jquery": "2.2.4"}
NO_MERMAID = "data:text/javascript,export default { initialize() {} };"


def fetch_assets(assets: Path) -> None:
    """Put each npm package of :data:`ASSETS` under ``assets/<name>/`` (skipping those present)."""
    npm = shutil.which("npm")
    missing = [name for name in ASSETS if not (assets / name / "package.json").is_file()]
    if missing and npm is None:
        raise RuntimeError(
            "npm is needed once to fetch reveal.js and MathJax for offline slides: install "
            "Node.js (which brings npm), or copy a built build/slides/assets/ folder here."
        )
    assets.mkdir(parents=True, exist_ok=True)
    for name in missing:
        with tempfile.TemporaryDirectory(dir=assets) as tmp:
            spec = f"{name}@{ASSETS[name]}"
            result = subprocess.run(
                [npm, "pack", "--silent", spec], cwd=tmp, capture_output=True, text=True
            )
            if result.returncode != 0:
                raise RuntimeError(f"npm pack {spec} failed: {result.stderr.strip()}")
            with tarfile.open(Path(tmp) / result.stdout.strip().splitlines()[-1]) as tar:
                tar.extractall(tmp, filter="data")
            shutil.rmtree(assets / name, ignore_errors=True)
            (Path(tmp) / "package").rename(assets / name)


def exporter() -> SlidesExporter:
    """nbconvert's slides exporter, pointed at the local assets (paths relative to the deck)."""
    slides = SlidesExporter()
    slides.reveal_url_prefix = "assets/reveal.js"
    slides.reveal_theme = "white"  # its fonts ship with reveal.js ("simple" loads Google Fonts)
    slides.reveal_scroll = True  # a slide taller than the screen scrolls instead of being cut
    slides.mathjax_url = "assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    slides.require_js_url = "assets/requirejs/require.js"
    slides.jquery_url = "assets/jquery/dist/jquery.min.js"
    slides.mermaid_js_url = NO_MERMAID  # not a configurable trait: set on the instance
    return slides


def build_decks(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<chapter>.slides.html`` for each notebook, with its assets beside them."""
    fetch_assets(out_dir / "assets")
    slides = exporter()
    written = []
    for path in notebooks:
        html, _ = slides.from_notebook_node(nbformat.read(path, as_version=4))
        target = out_dir / f"{path.stem}.slides.html"
        target.write_text(html, encoding="utf-8")
        written.append(target)
    return written
