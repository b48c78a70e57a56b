"""Translated chapters kept in step with the English ones (``notebooks/zh/``).

A translated chapter is built from its English chapter (``mnist-course translate sync``):

- every code cell is the English cell, copied whole (source, outputs, metadata), so strict
  nbval on the English chapter checks the code and outputs of both. One exception: a figure's
  alt text (the cell's ``alt`` metadata, which the book gives its images) is translated like
  a markdown cell, and the translated cell keeps its ``alt`` with its own ``translation.hash``;
- every markdown cell is the translation of the English cell with the same id. Its metadata
  records the state of the English cell it translates: ``translation.hash``, the first 12 hex
  digits of the SHA-256 of the English source when it was translated;
- one extra code cell, before the first code cell, sets the language of the checkers' feedback
  (:data:`LANGUAGE_CELL_ID`, off the slides, no outputs): ``i18n.set_language("zh")``;
- a stored output that is the checkers' feedback (a ``Correct (...)`` / ``Not yet (...)``
  line, a quiz's lines) is shown as the translated chapter's kernel would show it: each
  English message is matched against the catalogs of :mod:`mnist_course.i18n` (a message with
  ``{fields}`` is a pattern; the matched values go into the translation). Feedback that no
  catalog message matches is an error naming the cell, and nothing is written.

A translation is *current* when its hash is the English cell's hash now; *stale* when the
English cell changed since (the translator must look at it again); *missing* when the cell
has none yet (sync then puts the English text in its place, with ``hash`` null).
:func:`status` reports the three per chapter; the tests require every cell current.

Translators who prefer a text editor to JupyterLab use ``export`` (the English text of every
missing or stale cell or alt text, in one Markdown file with a marker line before each) and
``import`` (that file, translated, back into the chapter, with the hashes the export wrote).
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mnist_course import i18n

LANGUAGES = {"zh": "中文"}
MARKER = re.compile(
    r"^<!-- (?P<kind>cell|alt) (?P<id>\S+) sha256:(?P<hash>[0-9a-f]{12}) -->$", re.M
)

# The code cell that sets the language of the feedback in a translated chapter.
LANGUAGE_CELL_ID = "set-language"
LANGUAGE_CELL_SOURCE = {
    "zh": "from mnist_course import i18n\n\n"
    'i18n.set_language("zh")  # 检查器的反馈、提示和测验讲解用中文',
}
# A message's fields, as str.format reads them: {name}, {name:.3f}, {name!r}.
FIELD = re.compile(r"\{(\w+)(?:![rsa])?(?::[^{}]*)?\}")
# What a field can match, where it is narrower than any text: names and counts.
FIELD_TEXT = {"name": r"[\w.]+", "exercise": r"[\w.]+", "number": r"\d+", "right": r"\d+"}
# Fields that hold a message themselves (never a number or a name): they must translate too.
MESSAGE_FIELDS = {"message", "symptom", "hint", "explanation", "expects"}
# English prose (three words in a row): a field left as it is may not hold any.
PROSE = re.compile(r"[A-Za-z']{2,}(?:\s+[A-Za-z']{2,}){2,}")
# How the checkers' feedback begins (mnist_course.exercises.Feedback, quiz.QuizResult).
FEEDBACK_HEADS = (
    "Correct ({exercise}): {message}",
    "Not yet ({exercise}): {message}",
    "Quiz ({chapter}): {right} of {total} right",
)


def source_hash(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of a cell's source (the state it translates)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def translated_path(english: Path, language: str = "zh") -> Path:
    """``notebooks/01_x.ipynb`` -> ``notebooks/zh/01_x.ipynb``."""
    return english.parent / language / english.name


@dataclass
class Status:
    """Which markdown cells of a translated chapter are current, stale or missing (by id)."""

    chapter: str
    current: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # the same for the alt text of figures (code cells whose English has ``alt`` metadata)
    alt_current: list[str] = field(default_factory=list)
    alt_stale: list[str] = field(default_factory=list)
    alt_missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.stale or self.missing or self.alt_stale or self.alt_missing)

    def __str__(self) -> str:
        total = len(self.current) + len(self.stale) + len(self.missing)
        line = f"{self.chapter}: {len(self.current)} of {total} markdown cells current"
        if self.stale:
            line += f"; stale (the English changed): {', '.join(self.stale)}"
        if self.missing:
            line += f"; not translated: {', '.join(self.missing)}"
        figures = len(self.alt_current) + len(self.alt_stale) + len(self.alt_missing)
        if figures:
            line += f"; figure alt text: {len(self.alt_current)} of {figures} current"
        if self.alt_stale:
            line += f"; alt text stale: {', '.join(self.alt_stale)}"
        if self.alt_missing:
            line += f"; alt text not translated: {', '.join(self.alt_missing)}"
        return line


def _literal(text: str, formatted: bool) -> str:
    """Fixed text of a message as it is shown: ``{{`` is ``{`` in a message that is formatted."""
    return text.replace("{{", "{").replace("}}", "}") if formatted else text


def _formatted(english: str) -> bool:
    """Whether a message is filled in with str.format (it has a field, or a doubled brace)."""
    return bool(FIELD.search(english)) or "{{" in english or "}}" in english


def message_pattern(english: str) -> re.Pattern[str] | None:
    """The English text a message with ``{fields}`` can become, as a pattern with one group per
    field (None for a message that is only fields: it would match anything)."""
    if not FIELD.sub("", english).strip():
        return None
    formatted = _formatted(english)
    parts, seen, last = [], set(), 0
    for field_match in FIELD.finditer(english):
        parts.append(re.escape(_literal(english[last : field_match.start()], formatted)))
        name = field_match.group(1)
        text = FIELD_TEXT.get(name, ".+?")
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{text})")
        seen.add(name)
        last = field_match.end()
    parts.append(re.escape(_literal(english[last:], formatted)))
    return re.compile("".join(parts))  # a field never spans lines


def fill(template: str, values: dict[str, str], formatted: bool = True) -> str:
    """``template`` with each ``{field}`` replaced by its value (as text, already formatted),
    as str.format shows it (``{{`` as ``{``) when ``formatted``."""
    if not formatted:
        return template
    pieces, last = [], 0
    for found in FIELD.finditer(template):
        pieces.append(_literal(template[last : found.start()], True))
        pieces.append(values.get(found.group(1), found.group(0)))
        last = found.end()
    pieces.append(_literal(template[last:], True))
    return "".join(pieces)


@dataclass(frozen=True)
class _Message:
    english: str
    translated: str
    pattern: re.Pattern[str]


class FeedbackTranslator:
    """Feedback text, as the checkers wrote it in English, in ``language`` (from the catalogs)."""

    def __init__(self, language: str) -> None:
        found = []
        # list separators ("; " in English): a message that is only punctuation and spaces
        self.separators: dict[str, str] = {}
        for domain in i18n.domains(language):
            for english, translated in i18n.messages(domain, language).items():
                if english.strip() and not re.search(r"\w", english):
                    self.separators[english] = translated
                pattern = message_pattern(english)
                if pattern is not None:
                    found.append(_Message(english, translated, pattern))
        # the message with the most fixed text first: "{number}. right. {explanation}" before
        # a shorter message that could match the same line less precisely
        self.messages = sorted(found, key=lambda m: -len(FIELD.sub("", m.english)))
        self.heads = [message_pattern(head) for head in FEEDBACK_HEADS]
        self._seen: dict[str, tuple[str, int] | None] = {}

    def is_feedback(self, text: str) -> bool:
        """Whether ``text`` (an output) is the checkers' feedback: its first line says so."""
        first = text.split("\n", 1)[0]
        return any(head is not None and head.fullmatch(first) for head in self.heads)

    def message(self, english: str) -> str | None:
        """One English message (its fields filled in) translated, or None if none matches."""
        found = self._reading(english)
        return found[0] if found is not None else None

    def _reading(self, english: str) -> tuple[str, int] | None:
        """The translation of the reading of ``english`` that explains most of its text by the
        catalogs' fixed text (its messages' and, inside, its fields' messages'), and how much.

        "Correct (momentum_step): 4 steps match ..." is the Feedback line around the message
        "{steps} steps match ...", not that message with the steps "Correct (momentum_step): 4".
        """
        if english in self._seen:
            return self._seen[english]
        self._seen[english] = None  # (a field never holds the whole text again)
        best: tuple[str, int] | None = None
        for message in self.messages:
            match = message.pattern.fullmatch(english)
            if match is None:
                continue
            values: dict[str, str] = {}
            explained = len(FIELD.sub("", message.english))
            for name, value in match.groupdict().items():
                inner = self._reading(value) or self._list_reading(value)
                if inner is None and (name in MESSAGE_FIELDS or PROSE.search(value)):
                    break  # this reading leaves English in the text: try the next
                values[name] = value if inner is None else inner[0]
                explained += 0 if inner is None else inner[1]
            else:
                if best is None or explained > best[1]:
                    translated = fill(message.translated, values, _formatted(message.english))
                    best = (translated, explained)
        self._seen[english] = best
        return best

    def _list_reading(self, english: str) -> tuple[str, int] | None:
        """A list of messages joined by a catalog's separator ("; "), each item translated."""
        for separator, translated in self.separators.items():
            if separator not in english:
                continue
            items = [self._reading(item) for item in english.split(separator)]
            if all(item is not None for item in items):
                return (
                    translated.join(item[0] for item in items),  # type: ignore[index]
                    sum(item[1] for item in items) + len(separator) * (len(items) - 1),  # type: ignore[index]
                )
        return None

    def output(self, english: str) -> str | None:
        """A whole feedback output (one message a line: a quiz's lines) translated, or None."""
        lines = [self.message(line) for line in english.split("\n")]
        if any(line is None for line in lines):
            return None
        return "\n".join(lines)  # type: ignore[arg-type]


def _output_texts(output: nbformat.NotebookNode) -> list[tuple[dict, str]]:
    """Where an output holds plain text: (the dict, its key)."""
    if output.get("output_type") == "stream":
        return [(output, "text")]
    data = output.get("data", {})
    return [(data, "text/plain")] if "text/plain" in data else []


def translate_outputs(cell: nbformat.NotebookNode, translator: FeedbackTranslator) -> None:
    """Translate the feedback among ``cell``'s outputs; leave every other output as it is."""
    for output in cell.get("outputs", []):
        for holder, key in _output_texts(output):
            text = holder[key] if isinstance(holder[key], str) else "".join(holder[key])
            if not translator.is_feedback(text):
                continue
            translated = translator.output(text)
            if translated is None:
                raise ValueError(
                    f"cell {cell.get('id')}: no catalog message matches the feedback it shows "
                    f"({text[:200]!r}); run `make messages`, translate the new messages in "
                    "mnist_course/locale/, then sync again"
                )
            holder[key] = translated


def language_cell(language: str) -> nbformat.NotebookNode:
    """The code cell that sets the language of the feedback (off the slides, no outputs)."""
    return nbformat.v4.new_code_cell(
        LANGUAGE_CELL_SOURCE[language],
        id=LANGUAGE_CELL_ID,
        metadata={"slideshow": {"slide_type": "skip"}, "translation": {"language_cell": True}},
    )


def is_language_cell(cell: nbformat.NotebookNode) -> bool:
    """Whether ``cell`` is the language cell that sync adds to a translated chapter."""
    return bool(cell.get("metadata", {}).get("translation", {}).get("language_cell"))


def alt_text(cell: nbformat.NotebookNode) -> str | None:
    """A figure cell's ``alt`` metadata as one string (a list of lines is joined), else None."""
    alt = cell.get("metadata", {}).get("alt")
    if not alt:
        return None
    return " ".join(alt) if isinstance(alt, list) else str(alt)


def _english_cells(english: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    cells = {}
    for index, cell in enumerate(english.cells):
        if "id" not in cell:
            raise ValueError(
                f"cell {index} of the English chapter has no id: save it with nbformat 4.5"
            )
        cells[cell.id] = cell
    return cells


def sync(english_path: Path, translated: Path) -> Status:
    """Rebuild ``translated`` from the English chapter, keeping every translation it holds.

    Code cells are copied from the English chapter; each markdown cell keeps its translation
    (and the hash it was made from) or, when it has none, takes the English text. Cells that
    no longer exist in English are dropped. Written whole, or not at all.
    """
    english = nbformat.read(english_path, as_version=4)
    old = nbformat.read(translated, as_version=4) if translated.exists() else None
    kept = {cell.id: cell for cell in old.cells} if old else {}
    result = copy.deepcopy(english)
    language = translated.parent.name
    result.metadata["translation"] = {"language": language, "source": f"../{english_path.name}"}
    if old and "title" in old.metadata:
        result.metadata["title"] = old.metadata["title"]
    if LANGUAGE_CELL_ID in _english_cells(english):  # every cell has an id, and not this one
        raise ValueError(f"the English chapter has a cell with the id {LANGUAGE_CELL_ID!r}")
    translator = FeedbackTranslator(language) if language in LANGUAGE_CELL_SOURCE else None
    for cell in result.cells:
        if cell.cell_type == "code" and translator is not None:
            translate_outputs(cell, translator)
        if cell.cell_type == "code" and alt_text(cell) is not None:
            _keep_alt(cell, kept.get(cell.id))
        if cell.cell_type != "markdown":
            continue
        mine = kept.get(cell.id)
        recorded = mine.metadata.get("translation", {}).get("hash") if mine else None
        if mine is not None and mine.cell_type == "markdown" and recorded:
            cell.source = mine.source
            cell.metadata["translation"] = {"hash": recorded}
        else:
            cell.metadata["translation"] = {"hash": None}
    first_code = next((i for i, c in enumerate(result.cells) if c.cell_type == "code"), None)
    if translator is not None and first_code is not None:
        result.cells.insert(first_code, language_cell(language))
    translated.parent.mkdir(parents=True, exist_ok=True)
    partial = translated.with_suffix(".ipynb.partial")
    nbformat.write(result, partial)
    partial.replace(translated)
    return status(english_path, translated)


def _keep_alt(cell: nbformat.NotebookNode, mine: nbformat.NotebookNode | None) -> None:
    """Give a copied figure cell the alt text translation ``mine`` holds, with its hash."""
    recorded = mine.metadata.get("translation", {}).get("hash") if mine is not None else None
    if mine is not None and mine.cell_type == "code" and recorded and alt_text(mine):
        cell.metadata["alt"] = mine.metadata["alt"]
        cell.metadata["translation"] = {"hash": recorded}
    else:  # the English alt text stands in until it is translated
        cell.metadata["translation"] = {"hash": None}


def status(english_path: Path, translated: Path) -> Status:
    """Compare each markdown cell's recorded hash with its English cell's hash now."""
    english = _english_cells(nbformat.read(english_path, as_version=4))
    report = Status(english_path.name)
    mine = {}
    if translated.exists():
        mine = {c.get("id"): c for c in nbformat.read(translated, as_version=4).cells}
    for cell_id, cell in english.items():
        if cell.cell_type == "markdown":
            text, lists = cell.source, (report.current, report.stale, report.missing)
        elif cell.cell_type == "code" and alt_text(cell) is not None:
            text, lists = alt_text(cell), (report.alt_current, report.alt_stale, report.alt_missing)
        else:
            continue
        current, stale, missing = lists
        theirs = mine.get(cell_id)
        recorded = theirs.metadata.get("translation", {}).get("hash") if theirs else None
        if not recorded:
            missing.append(cell_id)
        elif recorded != source_hash(text):
            stale.append(cell_id)
        else:
            current.append(cell_id)
    return report


def export(english_path: Path, translated: Path, everything: bool = False) -> str:
    """The English text of every missing or stale cell (or of all, ``everything``), each after
    a marker line that names the cell and its hash, for :func:`import_text`."""
    report = status(english_path, translated)
    wanted = set(report.missing + report.stale + (report.current if everything else []))
    wanted_alt = set(
        report.alt_missing + report.alt_stale + (report.alt_current if everything else [])
    )
    blocks = []
    for cell in nbformat.read(english_path, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.id in wanted:
            blocks.append(
                f"<!-- cell {cell.id} sha256:{source_hash(cell.source)} -->\n{cell.source}"
            )
        elif cell.cell_type == "code" and cell.id in wanted_alt:
            alt = alt_text(cell)
            blocks.append(f"<!-- alt {cell.id} sha256:{source_hash(alt)} -->\n{alt}")
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def import_text(text: str, english_path: Path, translated: Path) -> Status:
    """Put the translated blocks of an :func:`export` file into the translated chapter.

    Each block replaces its cell's text (an ``alt`` block: its figure's alt text) and records
    the hash from its marker line (the state of the English text that was translated). An
    unknown cell id is an error, and nothing is written.
    """
    markers = list(MARKER.finditer(text))
    if not markers:
        raise ValueError(
            "no '<!-- cell <id> sha256:<hash> -->' marker line: is this an export file?"
        )
    if not translated.exists():
        sync(english_path, translated)
    nb = nbformat.read(translated, as_version=4)
    cells = {cell.get("id"): cell for cell in nb.cells}
    for number, match in enumerate(markers):
        end = markers[number + 1].start() if number + 1 < len(markers) else len(text)
        cell = cells.get(match["id"])
        body = text[match.end() : end].strip("\n")
        if match["kind"] == "alt":
            if cell is None or cell.cell_type != "code" or alt_text(cell) is None:
                raise ValueError(
                    f"cell {match['id']} is not a figure with alt text in {translated.name}: "
                    "export again from the current chapter"
                )
            cell.metadata["alt"] = body
        elif cell is None or cell.cell_type != "markdown":
            raise ValueError(
                f"cell {match['id']} is not a markdown cell of {translated.name}: "
                "export again from the current chapter"
            )
        else:
            cell.source = body
        cell.metadata["translation"] = {"hash": match["hash"]}
    partial = translated.with_suffix(".ipynb.partial")
    nbformat.write(nb, partial)
    partial.replace(translated)
    return status(english_path, translated)


def sections(markdown: str) -> dict[str, str]:
    """A Markdown document's ``## `` sections (each with its ``###`` subsections), by heading."""
    found: dict[str, list[str]] = {}
    current = None
    in_code = False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        if current is not None:
            found[current].append(line)
    return {heading: "".join(lines).strip("\n") + "\n" for heading, lines in found.items()}
