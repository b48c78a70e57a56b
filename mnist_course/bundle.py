"""The course offline in one archive (``make bundle``), for a learner with poor internet.

``python -m mnist_course.bundle --out build/bundle`` writes
``<out>/mnist-course-<version>-offline.zip``, a zip (Windows opens it without tools) holding
one folder ``mnist-course-<version>-offline/`` with:

- ``START-HERE.md``: what is inside, how to open the book, how to install the wheel and what
  that still downloads, how to get MNIST (the course's data-root rules), in English and Chinese;
- ``chapters/en/`` and ``chapters/zh/``: the notebooks as stored, the glossary and the README
  (its links to the chapters and to the other README pointed at the copies);
- ``wheel/``: the package as a wheel (built from a copy of it, never in the checkout), and
  ``constraints.txt``, the versions the course was tested with;
- ``book/en/`` and ``book/zh/``: the book's HTML (:mod:`mnist_course.book`, no launch links);
- ``pdf/``: the whole book in each language, printed by Chromium from Sphinx's single-page
  build once its formulas are typeset;
- ``SHA256SUMS``: the sha256 of every other file, as ``sha256sum -c`` reads it.

MNIST itself is not in it. The archive is written whole or not at all: everything is built in
a temporary folder beside it, then moved into place.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

from mnist_course import book, translation

ROOT = book.ROOT
CHAPTER_FILES = ("0*.ipynb", "glossary.md", "README.md")
PRINT_PDF = book.BOOK / "print_pdf.py"  # Chromium via Playwright (the dev set)


def version() -> str:
    """The course's version, from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["version"]


LINK = re.compile(r"(\[[^\]]*\])\(([^)\s]+)\)")


def relink(markdown: str, source: Path, target: Path, placed: dict[Path, Path]) -> str:
    """``markdown`` (the file ``source``, copied to ``target``) with each relative link pointed
    at where the linked file lies in the bundle (``placed``: source path -> bundle path). A link
    to a file the bundle does not hold becomes its text, with the path in the repository."""

    def point(match: re.Match[str]) -> str:
        text, link = match.groups()
        address, _, anchor = link.partition("#")
        if not address or "://" in address or address.startswith("mailto:"):
            return match.group(0)
        linked = (source.parent / address).resolve()
        if linked in placed:
            moved = os.path.relpath(placed[linked], target.parent).replace(os.sep, "/")
            return f"{text}({moved}{'#' + anchor if anchor else ''})"
        return f"{text[1:-1]} (`{linked.relative_to(ROOT).as_posix()}` in the repository)"

    return LINK.sub(point, markdown)


def copy_chapters(target: Path) -> None:
    """``target/en/`` and ``target/zh/``: the chapters as stored, the glossary, the README
    (links between them pointed at the copies, :func:`relink`)."""
    placed: dict[Path, Path] = {}
    for language, folder in book.LANGUAGES.items():
        out = target / language
        out.mkdir(parents=True)
        for pattern in CHAPTER_FILES:
            for path in sorted(folder.glob(pattern)):
                placed[path.resolve()] = out / path.name
    placed[(ROOT / "README.md").resolve()] = target / "en" / "README.md"  # notebooks/ has none
    for source, copy in placed.items():
        if copy.suffix == ".md":
            text = source.read_text(encoding="utf-8")
            copy.write_text(relink(text, source, copy, placed), encoding="utf-8")
        else:
            shutil.copy2(source, copy)


def build_wheel(target: Path, work: Path) -> Path:
    """The package as a wheel in ``target``, built from a copy of it in ``work``."""
    source = work / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "mnist_course", source / "mnist_course", ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    if has_setuptools():  # build offline with this environment's setuptools
        command.append("--no-build-isolation")
    command += ["--wheel-dir", str(target), str(source)]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(target.glob("mnist_course-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(f"pip wheel failed: {result.stdout}{result.stderr}".strip())
    return wheels[0]


def has_setuptools() -> bool:
    """Whether this environment has a setuptools that builds the package (77 or later)."""
    from importlib import metadata

    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77


def sphinx(builder: str, source: Path, out: Path, doctrees: Path) -> subprocess.Popen:
    """Start ``sphinx-build -b builder`` (warnings are errors, as in ``make book``)."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder]
    command += ["-d", str(doctrees), str(source), str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def build_books(work: Path, assets: Path) -> dict[str, dict[str, Path]]:
    """Each language's book as pages (``html``) and as one page (``singlehtml``), built at once.

    Returns ``{builder: {language: folder}}``.
    """
    mathjax = book.fetch_mathjax(assets)
    runs = {}
    for language in book.LANGUAGES:
        source = book.prepare(language, work / "source" / language, book.Launch(), mathjax)
        for builder in ("html", "singlehtml"):
            out = work / builder / language
            runs[builder, language] = (
                sphinx(builder, source, out, work / "doctrees" / builder / language),
                out,
            )
    failed = []
    for (builder, language), (run, _) in runs.items():
        output, _ = run.communicate()
        if run.returncode != 0:
            failed.append(f"--- {builder} {language} ---\n{output}")
    if failed:
        raise RuntimeError("sphinx-build failed:\n" + "\n".join(failed))
    return {
        builder: {language: runs[builder, language][1] for language in book.LANGUAGES}
        for builder in ("html", "singlehtml")
    }


def print_pdfs(pages: dict[str, Path], target: Path) -> dict[str, Path]:
    """Print each language's single page (``pages[language]/index.html``) to
    ``target/mnist-course-<language>.pdf`` with Chromium, once its formulas are typeset
    (book/print_pdf.py: Playwright is a tool of the dev set, not a package the course needs)."""
    pdfs = {language: target / f"mnist-course-{language}.pdf" for language in pages}
    command = [sys.executable, str(PRINT_PDF)]
    for language, folder in pages.items():
        command += [str(folder / "index.html"), str(pdfs[language])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"printing the PDFs failed: {result.stdout}{result.stderr}".strip())
    return pdfs


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading`` in ``markdown`` (the way translate sync reads a README's
    sections), without the heading and without translation markers (``<!-- ... -->``)."""
    found = translation.sections(markdown)
    if heading not in found:
        raise RuntimeError(f"README has no section '## {heading}' (START-HERE.md quotes it)")
    body = found[heading].split("\n", 1)[1] if "\n" in found[heading] else ""
    return re.sub(r"<!--.*?-->\n?", "", body).strip()


START_HERE = """\
# mnist-course {version}, offline

*中文说明在下面：[中文](#中文说明)。*

The course "From cross-entropy to MNIST" for a computer with poor or no internet. Inside:

| folder | what it holds |
| --- | --- |
| `book/en/`, `book/zh/` | the book, a website on disk: open `book/en/index.html` (中文: `book/zh/index.html`) in a web browser; it loads nothing from the internet |
| `pdf/` | the whole book as one PDF per language (`mnist-course-en.pdf`, `mnist-course-zh.pdf`) |
| `chapters/en/`, `chapters/zh/` | the chapters as Jupyter notebooks (with their outputs), the glossary and the README |
| `wheel/` | the course's Python package (`{wheel}`) and `constraints.txt`, the versions it was tested with |
| `SHA256SUMS` | a checksum of every file: `sha256sum -c SHA256SUMS` (Linux; macOS: `shasum -a 256 -c SHA256SUMS`) says whether the copy is whole |

## Read the book

Open `book/en/index.html` in a browser (double-click it), or `pdf/mnist-course-en.pdf`. Every
page has a link to the same page in Chinese (`中文`). The book shows each chapter with its
stored outputs: you can read the whole course without installing anything.

## Run the chapters

Running the notebooks needs Python 3.11 to 3.13 and the course's package. The wheel holds
only the course's own code: installing it **still downloads** its dependencies from PyPI
(PyTorch, torchvision, NumPy, matplotlib, tqdm, Pillow; with `[lab]` also JupyterLab and the
widgets). That can be several GB: on Linux, PyPI's PyTorch brings the CUDA libraries (about
4 GB) unless you first install the CPU build from PyTorch's index. Do it
once, where the internet is good, in this folder:

```bash
python3 -m venv .venv
.venv/bin/pip install -c wheel/constraints.txt "wheel/{wheel}[lab]"
.venv/bin/jupyter lab chapters/en
```

On Windows: `py -m venv .venv`, then `.venv\\Scripts\\pip install -c wheel\\constraints.txt
"wheel\\{wheel}[lab]"` and `.venv\\Scripts\\jupyter lab chapters\\en`. Linux without an NVIDIA
GPU, before the second line: `.venv/bin/pip install --index-url
https://download.pytorch.org/whl/cpu "{torch}" "{torchvision}"`. Open `00_setup.ipynb` first:
it checks Python, the packages, the device and the data, and says what to fix. (Commands like
`make lab` in the chapters and the book are for the course's git repository; with this bundle,
use the lines above.)

## The MNIST data

MNIST is not in this bundle (about 12 MB once downloaded, 55 MB unpacked).

{data_en}

## 中文说明

本课程“从交叉熵到 MNIST”的离线版本，供网络不好或无法上网的电脑使用。内容如下：

| 文件夹 | 内容 |
| --- | --- |
| `book/zh/`、`book/en/` | 全书的网页版，保存在磁盘上：用浏览器打开 `book/zh/index.html`（英文版：`book/en/index.html`），它不会从网络加载任何东西 |
| `pdf/` | 每种语言一个 PDF，包含全书（`mnist-course-zh.pdf`、`mnist-course-en.pdf`） |
| `chapters/zh/`、`chapters/en/` | 各章的 Jupyter 笔记本（带有保存的输出）、术语表和 README |
| `wheel/` | 课程的 Python 包（`{wheel}`），以及 `constraints.txt`：测试本课程时所用的各个版本 |
| `SHA256SUMS` | 每个文件的校验和：运行 `sha256sum -c SHA256SUMS`（Linux；macOS 上用 `shasum -a 256 -c SHA256SUMS`）可以检查这份副本是否完整 |

### 阅读本书

用浏览器打开 `book/zh/index.html`（双击即可），或者打开 `pdf/mnist-course-zh.pdf`。每一页上都有指向同一页英文版的链接（`English`）。书中每一章都带有保存的输出：不安装任何东西也能读完整门课程。

### 运行各章

运行笔记本需要 Python 3.11 到 3.13 以及本课程的包。wheel 中只有课程自己的代码：安装它时**仍然要从 PyPI 下载**它所依赖的包（PyTorch、torchvision、NumPy、matplotlib、tqdm、Pillow；加上 `[lab]` 时还有 JupyterLab 和交互控件）。这可能有好几 GB：在 Linux 上，PyPI 的 PyTorch 会带上 CUDA 库（约 4 GB），除非先从 PyTorch 的索引安装 CPU 版本。请在网络好的地方，在本文件夹中执行一次：

```bash
python3 -m venv .venv
.venv/bin/pip install -c wheel/constraints.txt "wheel/{wheel}[lab]"
.venv/bin/jupyter lab chapters/zh
```

在 Windows 上：先运行 `py -m venv .venv`，再运行 `.venv\\Scripts\\pip install -c wheel\\constraints.txt "wheel\\{wheel}[lab]"` 和 `.venv\\Scripts\\jupyter lab chapters\\zh`。没有 NVIDIA GPU 的 Linux 电脑，在第二行之前先运行：`.venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu "{torch}" "{torchvision}"`。请先打开 `00_setup.ipynb`：它会检查 Python、各个包、设备和数据，并告诉你需要修复什么。（各章和书中提到的 `make lab` 等命令是给课程的 git 仓库用的；使用这个离线包时，请用上面几行命令。）

### MNIST 数据集

这个离线包中没有 MNIST（下载约 12 MB，解压后约 55 MB）。

{data_zh}
"""


def start_here(wheel: str) -> str:
    """START-HERE.md: the bundle's contents and first steps, in English and Chinese; the data
    rules are the READMEs' own sections (README.md, notebooks/zh/README.md)."""
    pins = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    pin = {name: re.search(rf"^{name}==\S+", pins, re.M) for name in ("torch", "torchvision")}
    missing = [name for name, found in pin.items() if found is None]
    if missing:
        raise RuntimeError(f"constraints.txt pins no {missing}: START-HERE.md names their pins")
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (book.NOTEBOOKS / "zh" / "README.md").read_text(encoding="utf-8")
    return START_HERE.format(
        version=version(),
        wheel=wheel,
        torch=pin["torch"][0],
        torchvision=pin["torchvision"][0],
        data_en=section(english, "The MNIST data"),
        data_zh=section(chinese, "MNIST 数据集"),
    )


def write_sums(folder: Path) -> Path:
    """``folder/SHA256SUMS``: every other file's sha256, in ``sha256sum -c``'s format."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(folder).as_posix()}\n")
    sums = folder / "SHA256SUMS"
    sums.write_text("".join(lines), encoding="utf-8")
    return sums


def write_zip(folder: Path, archive: Path) -> None:
    """``archive``: ``folder`` and everything in it, under the folder's name."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zip_file.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")


def build(out: Path, assets: Path) -> Path:
    """Write ``out/mnist-course-<version>-offline.zip`` whole, or nothing; returns it."""
    name = f"mnist-course-{version()}-offline"
    out, assets = out.resolve(), assets.resolve()  # the browser opens the pages by file URI
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out) as tmp:
        work = Path(tmp)
        folder = work / name
        copy_chapters(folder / "chapters")
        wheel = build_wheel(folder / "wheel", work / "wheel")
        shutil.copy2(ROOT / "constraints.txt", folder / "wheel" / "constraints.txt")
        books = build_books(work / "book", assets)
        for language, site in books["html"].items():
            shutil.copytree(site, folder / "book" / language, ignore=ignore_build_files)
        print_pdfs(books["singlehtml"], folder / "pdf")
        (folder / "START-HERE.md").write_text(start_here(wheel.name), encoding="utf-8")
        write_sums(folder)
        archive = work / f"{name}.zip"
        write_zip(folder, archive)
        target = out / archive.name
        os.replace(archive, target)
    return target


def ignore_build_files(folder: str, names: list[str]) -> set[str]:
    """What Sphinx leaves in a site that a reader needs not (its build record)."""
    return {name for name in names if name in (".buildinfo", ".doctrees")}


def main(argv: list[str] | None = None) -> int:
    """``python -m mnist_course.bundle [--out DIR] [--assets DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bundle"))
    parser.add_argument(
        "--assets",
        type=Path,
        default=Path("build/book/.assets"),
        help="where MathJax is fetched once (shared with make book)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        archive = build(args.out, args.assets)
    except (RuntimeError, OSError) as error:
        print(f"make bundle: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    print(f"{archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    print(f"built in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
