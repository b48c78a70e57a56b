"""The course as a static website in English and Chinese (``make book``), built with Sphinx.

``python -m mnist_course.book --out build/book`` writes ``<out>/en/`` and ``<out>/zh/``: an
index page, every chapter with its stored outputs (nothing is executed), the glossary and a
search page per language, with a link on every page to the same page in the other language.
Each language is a Sphinx project prepared in ``<out>/.source/<language>/`` from book/ (its
conf.py, templates, styles and index page) and a copy of the chapters, changed only for the
book:

- under each chapter's title, how to run it: links to the class hub (``--hub``), Binder and
  Colab (``--repository``, a GitHub repository), or with neither set, ``make lab``;
- each figure gets alt text: the cell's ``alt`` metadata if it has one (the Chinese chapters
  hold its translation, :mod:`mnist_course.translation`), else the chapter's title, the
  figure's number and the code line that drew it.

MathJax 3 comes from the npm registry once (``npm pack``) into ``<out>/.assets/``, unpacked
with :func:`mnist_course.slides.npm_pack`, and is copied into each site: no page loads anything
from the network.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import nbformat

from mnist_course import translation
from mnist_course.slides import npm_pack

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"  # conf.py, _templates/, _static/, en/index.md, zh/index.md
NOTEBOOKS = ROOT / "notebooks"
LANGUAGES = {"en": NOTEBOOKS, "zh": NOTEBOOKS / "zh"}
MATHJAX = "3.2.2"  # Sphinx's mathjax3_config works with it; one package, fonts included
# What the pages use of MathJax's es5 build: the TeX-to-HTML component, the TeX extensions it
# loads on demand, its fonts, the menu and its accessibility parts (not the 4 MB speech engine).
MATHJAX_PARTS = ["tex-chtml.js", "input", "output", "ui", "a11y"]
CJK = "[\u4e00-\u9fff]"  # a Chinese character (CJK Unified Ideographs)
# Sphinx's Chinese search cuts the text into words with jieba, whose dictionary lacks some of
# the course's terms (交叉熵 becomes 交叉 + 熵, and one-character words are not indexed): the
# glossary's terms are given to it as a user dictionary (conf.py's html_search_options).
SEARCH_WORDS = "search-words.txt"
BOOKKEEPING = re.compile(r"(plt|fig)\.(show|tight_layout|savefig|close)\(")
GITHUB = re.compile(r"https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?")


@dataclass(frozen=True)
class Launch:
    """Where a chapter can be run: the class hub's address and the course's GitHub repository."""

    repository: str = ""  # https://github.com/OWNER/NAME
    hub: str = ""  # https://hub.example.org
    branch: str = "main"

    def __post_init__(self) -> None:
        if self.repository and not GITHUB.fullmatch(self.repository):
            raise ValueError(
                f"BOOK_REPOSITORY={self.repository!r} is not a GitHub repository's address: "
                "Binder and Colab open notebooks from GitHub. Write it as "
                "https://github.com/OWNER/NAME, or leave it empty."
            )
        if self.hub and not re.match(r"https?://[^/\s]+", self.hub):
            raise ValueError(
                f"BOOK_HUB={self.hub!r} is not a web address. Write it as "
                "https://hub.example.org (the hub's address), or leave it empty."
            )


TEXT = {
    "en": {
        "title": "Run this chapter",
        "hub": "On the class hub",
        "binder": "On Binder",
        "colab": "In Colab",
        "colab_cell": (
            "Colab has none of the course's packages: in Colab, first add a code cell at the "
            "top with this line and run it (it installs the course's package from the "
            "repository; this has not been tested from here, where Colab cannot be reached):"
        ),
        "local": (
            "On your computer: in the course's folder run `make lab` (it installs the course "
            "the first time), then open `{path}` in JupyterLab."
        ),
        "alt": "{title}, figure {number}: {what}",
        "against": "{y} against {x}",
        "output": "the output of {code}",
    },
    "zh": {
        "title": "运行本章",
        "hub": "在课程的 JupyterHub 上运行",
        "binder": "在 Binder 上运行",
        "colab": "在 Colab 中运行",
        "colab_cell": (
            "Colab 中没有本课程的包：在 Colab 中，请先在最上面添加一个代码单元，写入下面这一行并"
            "运行它（它从代码仓库安装本课程的包；这一步在这里没有测试过，因为这里无法访问 Colab）："
        ),
        "local": (
            "在自己的电脑上：在课程文件夹中运行 `make lab`（第一次运行时会安装课程），"
            "然后在 JupyterLab 中打开 `{path}`。"
        ),
        "alt": "{title}，图 {number}：{what}",
        "against": "{y} 随 {x} 的变化",
        "output": "{code} 的输出",
    },
}


def launch_cell(language: str, name: str, launch: Launch) -> nbformat.NotebookNode:
    """The markdown cell under a chapter's title that says how to run chapter ``name``."""
    text = TEXT[language]
    path = name if language == "en" else f"{language}/{name}"  # inside notebooks/
    links = []
    if launch.hub:
        url = f"{launch.hub.rstrip('/')}/hub/user-redirect/lab/tree/mnist-course/{quote(path)}"
        links.append(f'<a class="launch launch-hub" href="{url}">{text["hub"]}</a>')
    colab = ""
    if launch.repository:
        match = GITHUB.fullmatch(launch.repository)
        assert match is not None  # checked by Launch
        owner, repo, branch = match["owner"], match["name"], quote(launch.branch)
        binder = f"https://mybinder.org/v2/gh/{owner}/{repo}/{branch}?labpath=notebooks/{path}"
        colab_url = (
            f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/"
            f"notebooks/{path}"
        )
        links.append(f'<a class="launch launch-binder" href="{binder}">{text["binder"]}</a>')
        links.append(f'<a class="launch launch-colab" href="{colab_url}">{text["colab"]}</a>')
        package = f"mnist-course @ git+https://github.com/{owner}/{repo}@{launch.branch}"
        colab = f'\n{text["colab_cell"]}\n\n```ipython3\n!pip install "{package}"\n```\n'
    body = " ".join(links) + "\n" + colab if links else text["local"].format(path=path)
    source = f"````{{admonition}} {text['title']}\n:class: tip launch-links\n{body}\n````"
    return nbformat.v4.new_markdown_cell(source, metadata={"slideshow": {"slide_type": "skip"}})


def chapter_title(notebook: nbformat.NotebookNode) -> str:
    """The first heading of ``notebook`` (its first markdown cell's first line), without ``#``."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            return cell.source.strip().splitlines()[0].lstrip("#").strip()
    return "Chapter"


def figure_words(source: str) -> tuple[list[str], dict[str, str]]:
    """The titles and axis labels a cell gives its figure (string constants only)."""
    titles: list[str] = []
    labels: dict[str, str] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (!pip, %time): no figure words
        return titles, labels
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            if name in ("title", "set_title", "suptitle"):
                titles.append(first.value)
            elif name in ("xlabel", "ylabel", "set_xlabel", "set_ylabel"):
                labels.setdefault(name[-6:], first.value)
        for keyword in node.keywords:
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                if keyword.arg == "title":
                    titles.append(value.value)
                elif keyword.arg in ("xlabel", "ylabel"):
                    labels.setdefault(keyword.arg, value.value)
    return titles, labels


def default_alt(source: str, language: str, title: str, number: int) -> str:
    """Alt text for figure ``number`` of a chapter, from the code cell that drew it: its leading
    comment, else the figure's titles, else its axis labels, else the cell's last call."""
    text = TEXT[language]
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    titles, labels = figure_words(source)
    if lines and lines[0].startswith("#"):
        what = lines[0].lstrip("#").strip()
    elif titles:
        what = " / ".join(titles)
    elif "ylabel" in labels:
        what = text["against"].format(y=labels["ylabel"], x=labels.get("xlabel", "?"))
    else:
        drawing = [line for line in lines if not BOOKKEEPING.match(line)]
        code = " ".join(" ".join(drawing[-1:]).split())
        try:  # the last statement whole (a call may span several lines)
            last = ast.parse(source).body[-1]
            code = " ".join((ast.get_source_segment(source, last) or code).split())
            if BOOKKEEPING.match(code) and len(ast.parse(source).body) > 1:
                last = ast.parse(source).body[-2]
                code = " ".join((ast.get_source_segment(source, last) or code).split())
        except (SyntaxError, IndexError):
            pass
        what = text["output"].format(code=code[:120])
    return text["alt"].format(title=title, number=number, what=what)


def add_alt_text(notebook: nbformat.NotebookNode, language: str) -> int:
    """Give each code cell with an image output alt text for its images; returns how many."""
    title = chapter_title(notebook)
    number = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            continue
        number += 1
        alt = translation.alt_text(cell) or default_alt(cell.source, language, title, number)
        cell.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = alt
    return number


def glossary_terms(glossary: str) -> list[str]:
    """The Chinese terms of a glossary page's table (the second column), for the search.

    A term's alternatives in full-width brackets count too when they are Chinese words:
    "批量（批次）" gives 批量 and 批次.
    """
    terms: list[str] = []
    for line in glossary.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] == "English" or not re.search(CJK, cells[1]):
            continue
        main, _, rest = cells[1].partition("（")
        for word in [main.strip(), rest.removesuffix("）").strip()]:
            if re.fullmatch(f"{CJK}{{2,}}", word) and word not in terms:
                terms.append(word)
    return terms


def prepare(language: str, source: Path, launch: Launch, mathjax: Path) -> Path:
    """Write the Sphinx project of ``language`` into ``source`` (emptied first); returns it."""
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    shutil.copy2(BOOK / "conf.py", source / "conf.py")
    shutil.copytree(BOOK / "_templates", source / "_templates")
    shutil.copytree(BOOK / "_static", source / "_static")
    shutil.copytree(mathjax, source / "_static" / "mathjax")
    shutil.copy2(BOOK / language / "index.md", source / "index.md")
    chapters = LANGUAGES[language]
    shutil.copy2(chapters / "glossary.md", source / "glossary.md")
    if language == "zh":
        terms = glossary_terms((chapters / "glossary.md").read_text(encoding="utf-8"))
        (source / SEARCH_WORDS).write_text("".join(f"{t}\n" for t in terms), encoding="utf-8")
    for path in sorted(chapters.glob("0*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        add_alt_text(notebook, language)
        notebook.cells.insert(1, launch_cell(language, path.name, launch))
        nbformat.write(notebook, source / path.name)
    return source


def fetch_mathjax(assets: Path) -> Path:
    """MathJax's es5 build (the parts of :data:`MATHJAX_PARTS`), fetched once with npm."""
    target = assets / f"mathjax-{MATHJAX}"
    if (target / "tex-chtml.js").is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is needed once to fetch MathJax for the book's formulas: install Node.js "
            f"(which brings npm), or copy a built {target} folder here."
        )
    assets.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=assets) as tmp:
        package = npm_pack(npm, f"mathjax@{MATHJAX}", Path(tmp))
        parts = Path(tmp) / "parts"
        parts.mkdir()
        for part in MATHJAX_PARTS:
            (package / "es5" / part).rename(parts / part)
        shutil.rmtree(target, ignore_errors=True)
        parts.rename(target)
    return target


def sphinx(source: Path, out: Path, doctrees: Path) -> subprocess.Popen:
    """Start ``sphinx-build`` of one language: warnings are errors (``-W``), all reported."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-d", str(doctrees), str(source), str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def build(out: Path, launch: Launch) -> dict[str, Path]:
    """Build both languages into ``<out>/<language>/`` at once; returns them by language."""
    mathjax = fetch_mathjax(out / ".assets")
    runs = {}
    for language in LANGUAGES:
        source = prepare(language, out / ".source" / language, launch, mathjax)
        runs[language] = sphinx(source, out / language, out / ".doctrees" / language)
    failed = []
    for language, run in runs.items():
        output, _ = run.communicate()
        if run.returncode != 0:
            failed.append(f"--- {language} ---\n{output}")
    if failed:
        raise RuntimeError("sphinx-build failed:\n" + "\n".join(failed))
    return {language: out / language for language in LANGUAGES}


def main(argv: list[str] | None = None) -> int:
    """``python -m mnist_course.book --out DIR [--repository URL] [--hub URL]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/book"))
    parser.add_argument("--repository", default="", help="https://github.com/OWNER/NAME")
    parser.add_argument("--hub", default="", help="the class hub's address")
    parser.add_argument("--branch", default="main", help="the repository's branch")
    args = parser.parse_args(argv)
    try:
        launch = Launch(args.repository, args.hub, args.branch)
        start = time.perf_counter()
        sites = build(args.out, launch)
    except (ValueError, RuntimeError) as error:
        print(f"make book: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    for language, site in sites.items():
        print(f"{language}: {site / 'index.html'}")
    print(f"built in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
