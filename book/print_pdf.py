"""Print pages of the book to PDF with Chromium, once their formulas are typeset.

``python book/print_pdf.py PAGE.html OUT.pdf [PAGE.html OUT.pdf ...]`` (``make bundle`` runs it
on each language's single-page build, mnist_course/bundle.py). Playwright drives Debian's
Chromium; both come with the course's dev set and .ci/run, not with the package, so this is a
script beside the book's configuration rather than a module of the package. Exits 1 with the
reason (and the fix) when a page cannot be printed whole.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

WAIT_MS = 120_000  # the longest a page may take to load and typeset before printing
# Resolves once the page's formulas are typeset (MathJax 3's startup promise), its fonts and
# its images have loaded; then says how many formulas are left untypeset.
TYPESET = r"""async () => {
  if (window.MathJax?.startup?.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await Promise.all([...document.images].map(img => img.complete ? null :
    new Promise(done => { img.onload = img.onerror = done; })));
  const math = [...document.querySelectorAll('.math')];
  return {formulas: math.length,
          untypeset: math.filter(m => !m.querySelector('mjx-container')).length,
          broken: [...document.images].filter(i => !i.naturalWidth).map(i => i.src)};
}"""
# Added to the page before printing: a printed page cannot scroll, so long code and output
# lines wrap (the screen's pages scroll them sideways, and the PDF cut them off); Chinese text
# in either book in the Simplified Chinese fonts (the English book's Chinese words were set in
# the Japanese ones, as the page's language is English); each chapter on a new page; no floating
# back-to-top button.
PRINT_CSS = """
@media print {
  pre { white-space: pre-wrap !important; overflow-wrap: anywhere; overflow: visible !important; }
  :root {
    --pst-font-family-base-system: system-ui, sans-serif, "Noto Sans CJK SC";
    --pst-font-family-monospace-system: ui-monospace, "DejaVu Sans Mono", monospace,
      "Noto Sans Mono CJK SC";
  }
  #pst-back-to-top { display: none !important; }
  span[id^="document-"] + section { break-before: page; }
}
"""
MARGIN = {"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"}


def print_pages(jobs: list[tuple[Path, Path]]) -> None:
    """Print each ``(page, pdf)`` of ``jobs``; raises RuntimeError when one cannot be."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError(
            "Chromium prints the book's PDFs: install it (apt-get install chromium, "
            "with fonts-noto-cjk for the Chinese text), then run make bundle again."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError(
            "Playwright drives Chromium to print the book's PDFs: install the dev set "
            "(make install-dev, or pip install -e '.[dev]'), then run make bundle again."
        ) from None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            # The book holds every asset; nothing may come from the network.
            page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
            for source, pdf in jobs:
                page.goto(source.resolve().as_uri(), wait_until="load")
                page.add_style_tag(content=PRINT_CSS)
                seen = page.evaluate(TYPESET)
                if seen["untypeset"] or seen["broken"]:
                    raise RuntimeError(
                        f"{source} is not ready to print: {seen['untypeset']} of "
                        f"{seen['formulas']} formulas untypeset, images not loaded: "
                        f"{seen['broken'][:5]}"
                    )
                pdf.parent.mkdir(parents=True, exist_ok=True)
                page.pdf(path=str(pdf), format="A4", print_background=True, margin=MARGIN)
        finally:
            browser.close()


def main(argv: list[str]) -> int:
    """``print_pdf.py PAGE.html OUT.pdf [PAGE.html OUT.pdf ...]``."""
    if not argv or len(argv) % 2:
        print("usage: print_pdf.py PAGE.html OUT.pdf [PAGE.html OUT.pdf ...]", file=sys.stderr)
        return 2
    jobs = [(Path(argv[i]), Path(argv[i + 1])) for i in range(0, len(argv), 2)]
    missing = [str(page) for page, _ in jobs if not page.is_file()]
    if missing:
        print(f"print_pdf.py: no such page: {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        print_pages(jobs)
    except RuntimeError as error:
        print(f"print_pdf.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
