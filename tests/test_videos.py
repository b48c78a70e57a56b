"""Each chapter, English and Chinese, links the part of the lecture's video series it follows.

The series is Liu Er's (刘二大人) 《PyTorch深度学习实践》 on Bilibili, BV1Y7411d7Ys; part ``p`` is
``?p=<p>``. The part numbers and titles below could not be opened on Bilibili from the machine
that wrote them (no internet). They agree in four independent public sources that cite each part
by its URL: the lizhuofan-curry/LiuErDaRenPyTorch README (a table of parts 1-13), the notes of
HelloWorld-1017 ("08.加载数据集", "09.多分类问题", "10.卷积神经网络（基础篇）", "11.卷积神经网络（高级篇）"
- 刘二大人, each with its ?p= link), and two sets of lecture code that name their part in a
header comment ("多分类问题(softmax)" ?p=9; the basic and advanced CNN examples ?p=10 / ?p=11).
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SERIES = "https://www.bilibili.com/video/BV1Y7411d7Ys"
DDP_VIDEOS = "https://docs.pytorch.org/tutorials/beginner/ddp_series_intro.html"

# part number -> its title in the series
PARTS = {
    8: "08.加载数据集",  # Dataset and DataLoader
    9: "09.多分类问题",  # Softmax Classifier: the lecture the notes transcribe
    10: "10.卷积神经网络（基础篇）",  # basic CNN
    11: "11.卷积神经网络（高级篇）",  # advanced CNN
}

# chapter -> the parts it links (chapter 0 also links the whole series; chapter 7 has no part)
CHAPTER_PARTS = {
    "00": (9,),
    "01": (9,),
    "02": (9,),
    "03": (8, 9),
    "04": (9,),
    "05": (9,),
    "06": (10, 11),
    "07": (),
}

LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
CHAPTERS = sorted(ROOT.glob("notebooks/0*.ipynb"))
EDITIONS = [(path, "en") for path in CHAPTERS] + [
    (ROOT / "notebooks" / "zh" / path.name, "zh") for path in CHAPTERS
]


def video_links(path: Path) -> list[tuple[int, str, str]]:
    """(cell index, link text, URL) of every Bilibili link in the chapter's markdown."""
    notebook = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        for text, url in LINK.findall(cell.source):
            if "bilibili.com" in url:
                found.append((index, text, url))
    return found


def test_every_chapter_is_listed() -> None:
    assert sorted(path.name[:2] for path in CHAPTERS) == sorted(CHAPTER_PARTS)


@pytest.mark.parametrize(("path", "language"), EDITIONS, ids=lambda v: getattr(v, "name", v))
def test_chapter_links_its_parts(path: Path, language: str) -> None:
    chapter = path.name[:2]
    links = video_links(path)
    parts = []
    for index, text, url in links:
        assert index == 0, f"{path.name} ({language}): video links belong in the title cell"
        if url == SERIES:
            continue
        match = re.fullmatch(re.escape(SERIES) + r"\?p=(\d+)", url)
        assert match, f"{path.name} ({language}): {url} is not a part of the series"
        part = int(match.group(1))
        assert text == PARTS.get(part), f"{path.name}: part {part} is titled {PARTS.get(part)!r}"
        parts.append(part)
    assert tuple(sorted(parts)) == CHAPTER_PARTS[chapter], f"{path.name} ({language})"
    title = nbformat.read(path, as_version=4).cells[0].source
    assert ("**视频**" if language == "zh" else "**Video**") in title


def test_setup_links_the_whole_series() -> None:
    for path in (ROOT / "notebooks" / "00_setup.ipynb", ROOT / "notebooks/zh/00_setup.ipynb"):
        assert SERIES in [url for _, _, url in video_links(path)], path


def test_chapter_7_says_the_series_has_no_part_and_points_on() -> None:
    for path, words in (
        (ROOT / "notebooks" / "07_many_processes.ipynb", "has no part"),
        (ROOT / "notebooks/zh/07_many_processes.ipynb", "没有"),
    ):
        title = nbformat.read(path, as_version=4).cells[0].source
        assert words in title and DDP_VIDEOS in title, path
