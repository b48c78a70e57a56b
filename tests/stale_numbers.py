"""Stale outputs in the cells whose output nbval ignores: their numbers, re-run, within a tolerance.

Strict nbval compares every cell's output except those marked ``NBVAL_IGNORE_OUTPUT`` (a
training log, a table of accuracies: their last digits depend on the machine). Ignoring them
whole would let a stored output go stale (a chapter's text changed, its training cell not
re-run). So, for those cells, this plugin compares the *numbers* of the fresh output with the
stored ones: the same count of numbers, each within :data:`REL_TOL` (relative) or
:data:`ABS_TOL` (absolute). Timings (a number followed by a unit of time or a rate, the
progress bar's bracket) and version strings are left out: they cannot be stable.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable

import pytest

REL_TOL = 0.01
ABS_TOL = 0.01

# Parts of an output that are timings or rates, removed before the numbers are read.
TIMINGS = [
    re.compile(r"\[\d+:\d+(:\d+)?<(\d+:\d+(:\d+)?|\?)"),  # tqdm's [00:03<00:00, (its loss= stays)
    re.compile(r"\d+(\.\d+)?\s*\??(it|batch|batches|images|img|samples)/s\b"),
    re.compile(r"\d+(\.\d+)?\s*s/it\b"),
    re.compile(r"\d+(\.\d+)?\s*(s|ms|µs|us|sec|seconds|min|minutes)\b(?! of)"),
    re.compile(r"\d+(\.\d+)?\s*x (faster|slower)\b"),
    re.compile(r"\b\d+\.\d+\.\d+\w*"),  # versions: 3.11.7, 2.14.1+cpu
    re.compile(r"\b0x[0-9a-fA-F]+\b"),  # addresses
]
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\bnan\b|\binf\b")


def output_text(outputs: Iterable) -> str:
    """The text of a cell's outputs: streams and ``text/plain`` (figures are not text).

    The streams come merged by nbval's ``coalesce_streams``, which also keeps only what a
    terminal shows of a progress bar (the part after each line's last carriage return).
    """
    parts = []
    for output in outputs:
        if "text" in output:
            text = output["text"]
            parts.append(text if isinstance(text, str) else "".join(text))
        elif "text/plain" in output.get("data", {}):
            text = output["data"]["text/plain"]
            parts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(parts)


def numbers(text: str) -> list[float]:
    """The numbers of ``text`` in order, timings and versions left out."""
    for pattern in TIMINGS:
        text = pattern.sub(" ", text)
    return [float(token.replace(",", "")) for token in NUMBER.findall(text)]


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def differences(stored: str, fresh: str) -> list[str]:
    """What differs between the numbers of two outputs (empty when they agree)."""
    old, new = numbers(stored), numbers(fresh)
    if len(old) != len(new):
        return [f"{len(old)} numbers stored, {len(new)} now: {old} vs {new}"]
    return [f"{a:g} stored, {b:g} now" for a, b in zip(old, new, strict=True) if not close(a, b)]


def compare(stored: list, fresh: list) -> list[str]:
    """What differs between a cell's stored outputs and nbval's fresh ones (already merged).

    nbval merges each stream (stdout, stderr) into one block, in order of first appearance;
    the stored outputs get the same treatment before their numbers are read.
    """
    from nbval.plugin import coalesce_streams

    merged = coalesce_streams(copy.deepcopy(stored))
    return differences(output_text(merged), output_text(fresh))


def is_ignored_cell(item) -> bool:
    """An nbval cell that is run, has a stored run, and whose output nbval does not compare."""
    options = getattr(item, "options", None)
    cell = getattr(item, "cell", None)
    if options is None or cell is None or type(item).__name__ != "IPyNbCell":
        return False
    return not options["skip"] and not options["check"] and cell.execution_count is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if is_ignored_cell(item) and item.test_outputs is not None:
        found = compare(item.cell.outputs, item.test_outputs)
        if found:
            raise AssertionError(
                f"{item.nodeid}: the numbers of this output-ignored cell changed beyond "
                f"{REL_TOL:.0%} / {ABS_TOL}: {'; '.join(found)}. The stored output is stale: "
                "re-execute the chapter (make notebooks NOTEBOOKS=...) and check its text."
            )
    return result
