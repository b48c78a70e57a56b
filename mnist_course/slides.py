"""Static reveal.js decks of the chapters that work offline (``make slides``).

By default nbconvert's decks load reveal.js, require.js, jQuery, MathJax and
mermaid.js from CDNs, so offline they render as one unstyled page. Here the
first four are fetched once from the npm registry into ``<out>/assets/`` and
the decks point at them with relative URLs; mermaid (diagrams, which the
course does not use) is replaced by an empty inline module.

What the projector shows is adjusted in the exported copy only (the
notebooks are never changed): a progress bar, which tqdm writes to stderr
and nbconvert would paint as a red error block, becomes plain output showing
its final line (:func:`for_slides`), and a code or output line too long for
the slide wraps instead of being cut off (:data:`DECK_CSS`).
"""

from __future__ import annotations

import copy
import re
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

# A tqdm bar's line: "epoch 1: 100%|#####| 469/469 [00:01<00:00, 272.13it/s]".
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+(\.\d+)?[kMG]?/\d+")
# Added after nbconvert's styles: long lines wrap (visible) rather than being clipped at the
# slide's edge; the notebooks keep code lines <= 80 characters, which fit without wrapping.
DECK_CSS = """
.reveal .jp-InputArea-editor pre, .reveal .jp-OutputArea-output pre {
  white-space: pre-wrap;
  overflow-wrap: anywhere;
  overflow-x: visible;
}
"""


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
            package = npm_pack(npm, f"{name}@{ASSETS[name]}", Path(tmp))
            shutil.rmtree(assets / name, ignore_errors=True)
            package.rename(assets / name)


def npm_pack(npm: str, spec: str, folder: Path) -> Path:
    """Fetch the npm package ``spec`` (``name@version``) into ``folder``; its unpacked root."""
    result = subprocess.run(
        [npm, "pack", "--silent", spec], cwd=folder, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm pack {spec} failed: {result.stderr.strip()}")
    with tarfile.open(folder / result.stdout.strip().splitlines()[-1]) as tar:
        extract(tar, folder)
    return folder / "package"


def extract(tar: tarfile.TarFile, folder: Path) -> None:
    """Unpack ``tar`` into ``folder``: relative paths, regular files and folders only.

    Python 3.11.4 and later do this with ``filter="data"``; older 3.11 releases (Debian 12's
    3.11.2) have no filters, so there the members are checked here first.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    members = tar.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if member.name.startswith(("/", "\\")) or ".." in parts:
            raise RuntimeError(f"{member.name!r} in a downloaded package: not a path inside it")
        if not (member.isfile() or member.isdir()):
            raise RuntimeError(f"{member.name!r} in a downloaded package: not a file or folder")
    tar.extractall(folder, members=members)


def final_lines(text: str) -> str:
    """What a terminal finally shows: for each line, the part after its last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def for_slides(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` for the deck: progress bars shown as plain output (final line).

    A stderr stream whose every line is a progress bar becomes stdout, and
    consecutive stdout streams of a cell are merged into one block. Other
    stderr output (a warning) keeps its colour.
    """
    nb = copy.deepcopy(notebook)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged: list[nbformat.NotebookNode] = []
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = final_lines(output.text)
                lines = [line for line in output.text.splitlines() if line.strip()]
                if output.name == "stderr" and lines and all(map(PROGRESS_BAR.search, lines)):
                    output.name = "stdout"
                previous = merged[-1] if merged else None
                if (
                    output.name == "stdout"
                    and previous is not None
                    and previous.output_type == "stream"
                    and previous.name == "stdout"
                ):
                    previous.text += output.text
                    continue
            merged.append(output)
        cell.outputs = merged
    return nb


def exporter() -> SlidesExporter:
    """nbconvert's slides exporter, pointed at the local assets (paths relative to the deck)."""
    slides = SlidesExporter()
    slides.reveal_url_prefix = "assets/reveal.js"
    slides.reveal_theme = "white"  # its fonts ship with reveal.js ("simple" loads Google Fonts)
    slides.reveal_scroll = True  # a slide taller than the screen scrolls instead of being cut
    # No "In [7]:" prompts: they take a tenth of the slide's width, which an 80-character
    # code line needs at a font size the back row can read.
    slides.exclude_input_prompt = True
    slides.exclude_output_prompt = True
    slides.mathjax_url = "assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    slides.require_js_url = "assets/requirejs/require.js"
    slides.jquery_url = "assets/jquery/dist/jquery.min.js"
    slides.mermaid_js_url = NO_MERMAID  # not a configurable trait: set on the instance
    return slides


def build_decks(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<chapter>.slides.html`` for each notebook (``<chapter>.zh.slides.html``
    for a Chinese chapter), with their assets beside them."""
    fetch_assets(out_dir / "assets")
    slides = exporter()
    written = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        # A translated chapter (notebooks/zh/) gets <html lang="zh">, so the browser picks
        # Chinese glyphs, and its own name beside the English deck: 01_x.zh.slides.html.
        language = notebook.metadata.get("translation", {}).get("language")
        slides.language_code = language or "en"
        html, _ = slides.from_notebook_node(for_slides(notebook))
        html = html.replace("</head>", f"<style>{DECK_CSS}</style>\n</head>", 1)
        target = out_dir / f"{path.stem}{'.' + language if language else ''}.slides.html"
        target.write_text(html, encoding="utf-8")
        written.append(target)
    return written
