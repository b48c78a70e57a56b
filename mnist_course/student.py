"""Learner copies of the chapters: answers replaced by stubs (``make student``).

In the committed notebooks an exercise's answer cell carries the tag
``answer`` and marks its solution lines with ``### BEGIN SOLUTION`` /
``### END SOLUTION``. The learner copy keeps everything around them (the
``def`` line, so the checker can still call the function), replaces the
solution with a stub, and clears the outputs of the answer and checker cells.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ANSWER_TAG = "answer"
CHECKER_TAG = "checker"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_SOLUTION = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[ \t]*\n.*?^[ \t]*{re.escape(END)}[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def stub_source(source: str) -> str:
    """Replace each marked solution block with ``# YOUR CODE HERE`` and a NotImplementedError."""
    if BEGIN not in source:
        raise ValueError(f"an answer cell has no '{BEGIN}' ... '{END}' block:\n{source}")
    stubbed, count = _SOLUTION.subn(
        lambda m: f"{m['indent']}# YOUR CODE HERE\n{m['indent']}raise NotImplementedError()", source
    )
    if count != source.count(BEGIN) or END in stubbed:
        raise ValueError(f"unbalanced '{BEGIN}' / '{END}' markers in:\n{source}")
    return stubbed


def learner_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with every answer stubbed and the exercise outputs cleared."""
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or not ({ANSWER_TAG, CHECKER_TAG} & set(tags)):
            continue
        if ANSWER_TAG in tags:
            cell.source = stub_source(cell.source)
        cell.outputs = []
        cell.execution_count = None
    return copy


def write_learner_copies(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write a learner copy of each notebook into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        copy = learner_copy(nbformat.read(path, as_version=4))
        nbformat.validate(copy)
        target = out_dir / path.name
        nbformat.write(copy, target)
        written.append(target)
    return written
