"""`make bundle` writes the course offline in one zip: every promised part, checksums, no MNIST.

The bundle is built once (``make bundle`` into a temporary folder, MathJax fetched there too)
and unpacked; the tests below look at what it holds.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mnist_course import book, bundle

ROOT = Path(__file__).resolve().parents[1]
NAME = f"mnist-course-{bundle.version()}-offline"
LANGUAGES = ("en", "zh")
IDX_MAGIC = (b"\x00\x00\x08\x01", b"\x00\x00\x08\x03")  # MNIST's label and image files


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """`make bundle` into a temporary folder; returns the archive."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the book fetches MathJax with it")
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): it prints the PDFs")
    pytest.importorskip("sphinx", reason="the book extra: pip install -e '.[book]'")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    out = tmp_path_factory.mktemp("bundle")
    bin_dir = Path(sys.executable).parent
    command = ["make", "-s", "-o", ".venv/.installed-book", "bundle", f"BIN={bin_dir}"]
    command += [f"BUNDLE={out}", f"BOOK={out / 'book'}"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"make bundle: {time.perf_counter() - start:.1f} s")
    assert re.search(r"built in \d+ s", result.stdout), result.stdout
    archives = list(out.glob("*.zip"))
    assert [a.name for a in archives] == [f"{NAME}.zip"]
    assert not list(out.glob(".bundle-*")), "the temporary folder was left behind"
    return archives[0]


@pytest.fixture(scope="module")
def unpacked(built, tmp_path_factory) -> Path:
    """The archive unpacked; returns its one top folder."""
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(built) as archive:
        assert {n.split("/")[0] for n in archive.namelist()} == {NAME}
        archive.extractall(target)
    return target / NAME


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def unlinked(markdown: str) -> str:
    """``markdown`` with every link target left out."""
    return re.sub(r"\]\([^)\s]+\)", "]", markdown)


def test_the_archive_holds_every_promised_part(unpacked):
    for language in LANGUAGES:
        chapters = book.LANGUAGES[language]
        stored = [*sorted(chapters.glob("0*.ipynb")), chapters / "glossary.md"]
        assert len(stored) >= 9
        for path in stored:
            copy = unpacked / "chapters" / language / path.name
            assert copy.read_bytes() == path.read_bytes(), f"{language}/{path.name} differs"
        site = unpacked / "book" / language
        pages = {"index", "glossary", "search", *(p.stem for p in stored[:-1])}
        missing = sorted(p for p in pages if not (site / f"{p}.html").is_file())
        assert not missing, f"book/{language} lacks {missing}"
        assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
        assert (unpacked / "pdf" / f"mnist-course-{language}.pdf").is_file()
    readmes = {"en": ROOT / "README.md", "zh": book.NOTEBOOKS / "zh" / "README.md"}
    for language, readme in readmes.items():  # the repository's, only the link targets moved
        copy = (unpacked / "chapters" / language / "README.md").read_text(encoding="utf-8")
        assert unlinked(copy) == unlinked(readme.read_text(encoding="utf-8"))
    assert len(list((unpacked / "wheel").glob("mnist_course-*-py3-none-any.whl"))) == 1
    assert (unpacked / "START-HERE.md").is_file() and (unpacked / "SHA256SUMS").is_file()


def test_every_link_of_the_bundled_markdown_opens_a_file_of_the_bundle(unpacked):
    checked = 0
    for page in sorted(unpacked.rglob("*.md")):
        for _, link in bundle.LINK.findall(page.read_text(encoding="utf-8")):
            address = link.partition("#")[0]
            if not address or "://" in address:
                continue
            assert (page.parent / address).resolve().is_file(), f"{page.name}: {link}"
            checked += 1
    assert checked > 100, "hardly any links found: the check would prove nothing"


def test_relink_points_links_at_the_copies_and_names_what_is_left_out(tmp_path):
    readme, chapter = ROOT / "README.md", ROOT / "notebooks" / "01_x.ipynb"
    copy = tmp_path / "chapters" / "en" / "README.md"
    placed = {readme: copy, chapter: copy.parent / "01_x.ipynb"}
    text = "[ch 1](notebooks/01_x.ipynb#top), [web](https://x.org/a), [m](Makefile), [s](#b)"
    assert bundle.relink(text, readme, copy, placed) == (
        "[ch 1](01_x.ipynb#top), [web](https://x.org/a), m (`Makefile` in the repository), [s](#b)"
    )


def test_sha256sums_lists_and_verifies_every_other_file(unpacked):
    listed = {}
    for line in (unpacked / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, path = re.fullmatch(r"([0-9a-f]{64})  (\S.*)", line).groups()
        listed[path] = digest
    assert sorted(listed) == [f for f in files(unpacked) if f != "SHA256SUMS"]
    wrong = [
        p for p, d in listed.items() if hashlib.sha256((unpacked / p).read_bytes()).hexdigest() != d
    ]
    assert not wrong, f"checksums that do not match: {wrong[:5]}"
    if shutil.which("sha256sum"):
        result = subprocess.run(
            ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=unpacked, capture_output=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_no_mnist_file_is_bundled(unpacked):
    names = [f for f in files(unpacked) if re.search(r"ubyte|MNIST/(raw|processed)", f)]
    assert not names, names
    magic = [f for f in files(unpacked) if (unpacked / f).read_bytes()[:4] in IDX_MAGIC]
    assert not magic, f"files that start as MNIST's idx files do: {magic}"


def test_the_wheel_is_a_valid_wheel_of_the_package(unpacked):
    (wheel,) = (unpacked / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        modules = {f"mnist_course/{p.name}" for p in (ROOT / "mnist_course").glob("*.py")}
        assert modules <= names, sorted(modules - names)
        assert any(re.fullmatch(r"mnist_course/results/\w+\.csv", n) for n in names)
        catalogs = [
            n for n in names if re.fullmatch(r"mnist_course/locale/zh/LC_MESSAGES/\w+\.mo", n)
        ]
        assert catalogs, "no compiled Chinese feedback catalog in the wheel"
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        info = f"mnist_course-{bundle.version()}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        assert "Name: mnist-course" in metadata
        assert f"Version: {bundle.version()}" in metadata
        assert "Root-Is-Purelib: true" in archive.read(f"{info}/WHEEL").decode()
        # RECORD lists every file with its hash: the wheel is whole.
        record = csv.reader(io.StringIO(archive.read(f"{info}/RECORD").decode()))
        recorded = set()
        for path, digest, _ in record:
            recorded.add(path)
            if path == f"{info}/RECORD":
                continue
            algorithm, _, value = digest.partition("=")
            actual = hashlib.new(algorithm, archive.read(path)).digest()
            assert base64.urlsafe_b64encode(actual).rstrip(b"=").decode() == value, path
        assert recorded == names


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", data))


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_pdf_is_the_whole_book(unpacked, language):
    data = (unpacked / "pdf" / f"mnist-course-{language}.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    # every chapter: about 160 pages here; a title page alone or one chapter is far fewer
    assert pdf_pages(data) > 60, f"only {pdf_pages(data)} pages"
    fonts = set(re.findall(rb"/FontName\s*/[A-Z]{6}\+([\w-]+)", data))
    assert fonts, "no embedded font found"
    if language == "zh":
        assert [f for f in fonts if b"CJK" in f], f"no CJK font embedded: {fonts}"


def test_start_here_says_what_is_inside_and_the_data_root_rules(unpacked):
    text = (unpacked / "START-HERE.md").read_text(encoding="utf-8")
    english, chinese = text.split("## 中文说明")
    (wheel,) = (unpacked / "wheel").glob("*.whl")
    for part in (english, chinese):
        for name in ("book/en/index.html", "book/zh/index.html", "SHA256SUMS", wheel.name):
            assert name in part
        for rule in ("MNIST_COURSE_DATA", "--data-root", "~/.cache/mnist-course", "MNIST/raw/"):
            assert rule in part
        for idx in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            assert idx in part
        assert "download.pytorch.org/whl/cpu" in part  # what the wheel's install still fetches
    assert "PyTorch" in english and "仍然要从 PyPI 下载" in chinese
    assert "环境变量" in chinese and "数据根目录" in chinese
    # The rules are the READMEs' own words, not a copy that could drift.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert bundle.section(readme, "The MNIST data") in english


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    def fail(work: Path, assets: Path) -> None:
        (work / "half-written.html").parent.mkdir(parents=True)
        (work / "half-written.html").write_text("x")
        raise RuntimeError("sphinx-build failed: (a test's failure)")

    monkeypatch.setattr(bundle, "build_books", fail)
    assert bundle.main(["--out", str(tmp_path / "out"), "--assets", str(tmp_path)]) == 1
    assert "make bundle: sphinx-build failed" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_readme_section_is_named():
    with pytest.raises(RuntimeError, match="README has no section '## The data'"):
        bundle.section("# x\n\n## Other\ntext\n", "The data")


def test_a_page_with_untypeset_formulas_is_not_printed(tmp_path):
    """book/print_pdf.py prints only once every formula is typeset: a page whose formula
    MathJax never typesets (there is no MathJax on it) is refused, and no PDF is written."""
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): it prints the PDFs")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    page = tmp_path / "page.html"
    page.write_text('<p>Loss: <span class="math">\\(L = -\\log p\\)</span></p>')
    command = [sys.executable, str(bundle.PRINT_PDF), str(page), str(tmp_path / "out.pdf")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 of 1 formulas untypeset" in result.stderr
    assert not (tmp_path / "out.pdf").exists()
    missing = subprocess.run(
        command[:2] + ["nowhere.html", "out.pdf"], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no such page: nowhere.html" in missing.stderr
