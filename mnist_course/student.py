"""Learner copies of the chapters: answers replaced by stubs (``make student``).

In the committed notebooks an exercise's answer cell carries the tag
``answer`` and marks its solution lines with ``### BEGIN SOLUTION`` /
``### END SOLUTION``. The learner copy keeps everything around them (the
``def`` line, so the checker can still call the function), replaces the
solution with a stub, and clears the outputs of the answer and checker cells.

The end-of-chapter quiz cell (tag ``quiz``) marks the filled-in answers the
same way; the learner copy replaces them by a comment naming the question
numbers (``# answers = {1: ..., 2: ...}  # YOUR ANSWERS HERE``), so the
``check_quiz(answers)`` line after it says "not answered yet" for each
question. Quiz outputs (which explain the right answers) are cleared too,
and the stored widget state (``metadata.widgets``) is dropped.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import nbformat

ANSWER_TAG = "answer"
CHECKER_TAG = "checker"
QUIZ_TAG = "quiz"
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


def _dedent(block: str) -> str:
    return textwrap.dedent(block.strip("\n"))


def _question_numbers(block: str) -> list[int | str]:
    """The keys of the ``answers = {...}`` dict in a quiz's solution block."""
    try:
        tree = ast.parse(block)
    except SyntaxError:
        raise ValueError(f"the quiz's solution block is not valid Python:\n{block}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and node.keys:
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if len(keys) == len(node.keys):
                return keys
    raise ValueError(f"the quiz's solution block holds no answers = {{...}} dict:\n{block}")


def stub_quiz(source: str) -> str:
    """Replace the quiz's solution block by a comment naming the questions, without answers."""
    if BEGIN not in source:
        raise ValueError(f"a quiz cell has no '{BEGIN}' ... '{END}' block:\n{source}")

    def comment(m: re.Match[str]) -> str:
        block = m[0].split(BEGIN, 1)[1].rsplit(END, 1)[0]
        keys = ", ".join(f"{k!r}: ..." for k in _question_numbers(_dedent(block)))
        return f"{m['indent']}# answers = {{{keys}}}  # YOUR ANSWERS HERE"

    stubbed, count = _SOLUTION.subn(comment, source)
    if count != source.count(BEGIN) or END in stubbed:
        raise ValueError(f"unbalanced '{BEGIN}' / '{END}' markers in:\n{source}")
    return stubbed


def learner_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook``: answers stubbed, quiz answers removed, their outputs cleared."""
    copy = nbformat.from_dict(notebook)
    copy.metadata.pop("widgets", None)
    for cell in copy.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or not ({ANSWER_TAG, CHECKER_TAG, QUIZ_TAG} & set(tags)):
            continue
        if ANSWER_TAG in tags:
            cell.source = stub_source(cell.source)
        elif QUIZ_TAG in tags:
            cell.source = stub_quiz(cell.source)
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
