"""Sphinx configuration of the course's book (`make book`, mnist_course/book.py).

mnist_course.book copies this file, _templates/, _static/ and the language's index page into
a source folder named after the language (``en`` or ``zh``), beside the chapters prepared for
the book; the folder's name sets the language. The chapters are shown with their stored
outputs: nothing is executed.
"""

from pathlib import Path

from sphinx.search.zh import SearchChinese

EDITION = Path(__file__).resolve().parent.name  # "en" or "zh"
ZH = EDITION == "zh"
# Sphinx and the theme translate their own words (search results, "Contents") for zh_CN.
language = "zh_CN" if ZH else "en"

project = "mnist-course"
author = "the mnist-course authors"
copyright = "the mnist-course authors (MIT licence)"
html_title = "从交叉熵到 MNIST" if ZH else "From cross-entropy to MNIST"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["book.css"]

# The chapters as stored (strict nbval keeps their outputs current): no execution.
nb_execution_mode = "off"
# The widget demos store no widget state (`make notebooks`), so their views would show
# nothing: their text/plain line (what the widget is) is shown instead.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}  # never load ipywidgets' embedder from a CDN
myst_enable_extensions = ["dollarmath", "amsmath"]
# The chapters write display formulas as $$...$$ inside a paragraph too (Jupyter shows those
# as display math); without this MyST reads them as $ + $...$ + $.
myst_dmath_double_inline = True
myst_heading_anchors = 3

# MathJax 3 from the npm registry (mnist_course.book puts it in _static/mathjax/): no CDN.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "article_header_end": ["language-switch.html", "article-header-buttons.html"],
}
# The theme's light/dark switch starts from the reader's system setting (pydata-sphinx-theme
# logs a console error on a first visit when this is not set).
html_context = {"default_mode": "auto"}
html_last_updated_fmt = None
html_copy_source = True
# Chinese search: Sphinx segments the text with jieba (the `book` extra installs it).
html_search_language = EDITION
# jieba's dictionary lacks some of the course's terms: mnist_course.book writes the zh
# glossary's terms into search-words.txt, a jieba user dictionary (one word a line).
if ZH:
    html_search_options = {"dict": str(Path(__file__).resolve().parent / "search-words.txt")}


class ChineseSearch(SearchChinese):
    """Sphinx 9.0's Chinese search, with the JavaScript stemmer it ships.

    SearchChinese ships the English stemmer (for the Latin words in Chinese text) but writes
    ``window.Stemmer = ChineseStemmer;`` (from its language_name), which is not defined: every
    Chinese page then logged "ChineseStemmer is not defined" and the search found nothing
    (sphinx-doc/sphinx#14229, fixed upstream by #14416 after 9.0; drop this class then).
    """

    language_name = "English"


def setup(app):
    """Register the fixed Chinese search (for the zh edition)."""
    if ZH:
        app.add_search_language(ChineseSearch)
