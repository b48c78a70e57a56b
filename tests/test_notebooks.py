"""Notebook hygiene: what strict nbval needs, and nothing that varies from machine to machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NBVAL_MARKERS = {
    "NBVAL_IGNORE_OUTPUT",
    "NBVAL_CHECK_OUTPUT",
    "NBVAL_SKIP",
    "NBVAL_RAISES_EXCEPTION",
}
SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
FORBIDDEN = {
    "a memory address": re.compile(r"at 0x[0-9a-fA-F]{6,}"),
    "a machine path": re.compile(r"(/(home|root|tmp|work|Users|var/folders)/|[A-Z]:\\\\Users)"),
    "a timestamp": re.compile(r"\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d"),
}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_every_chapter_is_there():
    assert [p.name[:2] for p in CHAPTERS] == ["00", "01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_executed_in_order_in_a_fresh_kernel(path):
    counts = [c["execution_count"] for c in code_cells(load(path))]
    assert counts == list(range(1, len(counts) + 1)), "re-run with `make notebooks`"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_noise_in_metadata(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"], "widget state is stored"
    for cell in nb["cells"]:
        assert "execution" not in cell.get("metadata", {}), "per-cell timing metadata is stored"
        assert "collapsed" not in cell.get("metadata", {}) and "scrolled" not in cell.get(
            "metadata", {}
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_outputs_hold_nothing_machine_specific(path):
    for cell in code_cells(load(path)):
        for output in cell["outputs"]:
            text = json.dumps({k: v for k, v in output.get("data", {}).items() if "image" not in k})
            text += json.dumps(output.get("text", ""))
            for what, pattern in FORBIDDEN.items():
                assert not pattern.search(text), f"an output holds {what}: {cell['source'][:80]}"
            if output["output_type"] == "error":
                assert "raises-exception" in cell["metadata"].get("tags", []), "a stored error"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_nbval_markers_are_spelled_so_nbval_sees_them(path):
    for cell in code_cells(load(path)):
        for line in (
            cell["source"].splitlines() if isinstance(cell["source"], str) else cell["source"]
        ):
            word = line.strip().lstrip("#").strip()
            if word.startswith("NBVAL_"):
                assert word in NBVAL_MARKERS, f"nbval ignores the marker line {line!r}: use a tag"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_cell_has_a_slide_type(path):
    for cell in load(path)["cells"]:
        assert cell["metadata"].get("slideshow", {}).get("slide_type") in SLIDE_TYPES
