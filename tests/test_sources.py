"""Every number in a chapter's text has a source, and no slide shows test scaffolding.

A measured number quoted in a chapter's markdown (its prose or its speaker notes) must be
printed by one of the chapter's cells, written in its code (a setting such as ``lr=0.01``),
stored in a results file that the chapter reads (``mnist_course/results/*.csv``), or printed in the lecture notes
the chapter quotes. Cells whose output nbval ignores count too: ``tests/stale_numbers.py``
re-runs them and fails when their numbers move. Whatever is left must be a definitional
constant of :data:`CONSTANTS`. Run ``python tests/test_sources.py [chapter.ipynb ...]`` to
list a chapter's unsourced numbers.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RESULTS = sorted((ROOT / "mnist_course" / "results").glob("*.csv"))
NOTES = ROOT.parent / "shared" / "reference" / "source-notes.txt"

# Definitional constants and derived values, not measurements, each with what it is.
CONSTANTS = {
    "28": "an image's side in pixels",
    "784": "28 x 28 pixels",
    "255": "the largest pixel value",
    "0.1307": "MNIST's mean pixel (the lecture's Normalize)",
    "0.3081": "MNIST's pixel standard deviation (the lecture's Normalize)",
    "60000": "MNIST's training images",
    "10000": "MNIST's test images",
    "70000": "all of MNIST",
    "2.3026": "ln 10, the first loss of 10 equally likely classes",
    "1.099": "ln 3",
    "3.4": "float32's largest value, about 3.4e38",
    "1.8": "float64's largest value, about 1.8e308",
    "308": "float64's largest value, about 1.8e308",
    "0.197": "the sigmoid's slope at 1: s(1)(1 - s(1))",
    "7840": "784 x 10 weights of the softmax regression",
    "401920": "784 x 512 + 512 weights and biases of the first layer",
    "1.5": "a quiz's wrong option (1.5 GB)",
    "25": "DistributedDataParallel's default bucket size, 25 MiB",
}
# Where a small integer is a name, not a quantity: "chapter 3", "exercise 2", "lecture 9".
NAMES = re.compile(
    r"(chapter|chapters|exercise|exercises|lecture|lectures|section|part|step|question|"
    r"quiz|Python|PyTorch|torch|CUDA|nbval|cell|第|章|节|练习|第\s*)\s*$",
    re.IGNORECASE,
)
NUMBER = re.compile(r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+−]?\d+)?")
# Markdown parts that carry no measured numbers: links' targets, images, HTML attributes,
# code (settings, not measurements) and headings' numbering ("## 3. The data").
NOT_TEXT = [
    re.compile(r"```.*?```", re.DOTALL),  # code blocks: settings, not measurements
    re.compile(r"`[^`]*`"),
    re.compile(r"\]\([^)]*\)"),
    re.compile(r"<[^>]+>"),
    re.compile(r"^#+\s*[\d.]+\s", re.MULTILINE),
    re.compile(r"https?://\S+"),
]


def text_of(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def outputs_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        text = output.get("text")
        if text is None:
            data = output.get("data", {})
            text = [data.get("text/plain", ""), data.get("text/markdown", "")]
            text = "".join("".join(t) if isinstance(t, list) else t for t in text)
        parts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(parts)


def as_decimal(token: str) -> Decimal:
    return Decimal(token.replace(",", "").replace("−", "-").lstrip("+"))


def source_numbers(nb: dict, notes: Path | None = NOTES) -> set[Decimal]:
    """Every number of a chapter's code and outputs, the results files it reads, the notes."""
    texts = [text_of(c) + "\n" + outputs_text(c) for c in nb["cells"] if c["cell_type"] == "code"]
    for path in [p for p in RESULTS if p.name in "\n".join(texts)]:
        with path.open(encoding="utf-8") as f:
            texts += [" ".join(row) for row in csv.reader(f)]
    if notes is not None and notes.is_file():
        texts.append(notes.read_text(encoding="utf-8"))
    return {abs(as_decimal(t)) for text in texts for t in NUMBER.findall(text)}


def is_sourced(token: str, sources: set[Decimal]) -> bool:
    """Whether ``token`` is a source number (or its percentage) at the precision written."""
    value = abs(as_decimal(token))
    digits = value.as_tuple().exponent
    quantum = Decimal(1).scaleb(digits) if isinstance(digits, int) else Decimal(1)
    for source in sources:
        for candidate in (source, source * 100, source / 100):
            if abs(candidate - value) <= quantum / 2:
                return True
    return False


def prose_numbers(nb: dict) -> list[tuple[str, str]]:
    """(number, its context) for every number of the markdown cells that needs a source."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = text_of(cell)
        for pattern in NOT_TEXT:
            text = pattern.sub(" ", text)
        for match in NUMBER.finditer(text):
            token = match.group()
            before = text[: match.start()]
            value = abs(as_decimal(token))
            if value == value.to_integral_value() and value < 10 and "." not in token:
                continue  # small whole numbers: counts and names (3 epochs, 2 layers)
            if NAMES.search(before[-12:]):
                continue
            if token.lstrip("+-−").replace(",", "") in CONSTANTS:
                continue
            if re.fullmatch(r"(19|20)\d\d", token):
                continue  # a year
            context = text[max(0, match.start() - 40) : match.end() + 20].replace("\n", " ")
            found.append((token, context))
    return found


def unsourced(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    sources = source_numbers(nb)
    return [
        f"{token!r} in '...{context}...'"
        for token, context in prose_numbers(nb)
        if not is_sourced(token, sources)
    ]


def test_the_check_finds_an_invented_number():
    nb = {
        "cells": [
            {"cell_type": "code", "source": "print(acc)", "outputs": [{"text": "acc 98.62%\n"}]},
            {"cell_type": "markdown", "source": "We reach 98.62%, or 98.6%, then 97.31%."},
        ]
    }
    sources = source_numbers(nb, notes=None)
    assert [t for t, _ in prose_numbers(nb) if not is_sourced(t, sources)] == ["97.31"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_number_in_the_text_has_a_source(path):
    missing = unsourced(path)
    assert not missing, (
        "numbers in the markdown that no cell prints, no code sets and no results file holds "
        "(print them from a checked cell, or read them with measured.rows): " + "; ".join(missing)
    )


def shows_an_assert(cell: dict) -> bool:
    slide_type = cell.get("metadata", {}).get("slideshow", {}).get("slide_type", "-")
    asserts = re.search(r"^\s*assert\b", text_of(cell), re.MULTILINE)
    return cell["cell_type"] == "code" and slide_type != "skip" and asserts is not None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_slide_shows_an_assert(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    shown = [text_of(c).splitlines()[0] for c in nb["cells"] if shows_an_assert(c)]
    assert not shown, (
        "code cells on the slides that assert (put the asserts in a cell with slide_type "
        f"'skip' and print what the class should see): {shown}"
    )


if __name__ == "__main__":
    for name in sys.argv[1:] or [str(p) for p in CHAPTERS]:
        for line in unsourced(Path(name)):
            print(f"{Path(name).name}: {line}")
