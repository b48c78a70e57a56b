"""The gettext catalogs of the learner's feedback, kept in step with the code (``make messages``).

For every module of the package that calls ``i18n.translator(``: its messages (the text inside
``_("...")`` and ``N_("...")``) are extracted with Babel into ``locale/<module>.pot``; each
language's ``locale/<language>/LC_MESSAGES/<module>.po`` is updated from it (a new message
untranslated, a changed one fuzzy, every translation kept); the ``.mo`` beside it is compiled
from the translated, non-fuzzy messages. Nothing written holds a date or a line number, so a run
on unchanged code changes nothing.

    python -m mnist_course.catalogs           # update, compile, one status line per module
    python -m mnist_course.catalogs --check   # change nothing; exit 1 if anything is out of step
"""

from __future__ import annotations

import argparse
import ast
import io
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from mnist_course import i18n

PACKAGE = Path(__file__).parent
KEYWORDS = {"_": None, "N_": None}
TRANSLATED = [code for code in i18n.LANGUAGES if code != "en"]
HEADER = "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"


def uses_translator(path: Path) -> bool:
    """Whether the module at ``path`` calls ``i18n.translator(...)`` (its code, not its text)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "translator"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "i18n"
        ):
            return True
    return False


def modules() -> list[str]:
    """The package's modules that speak to the learner through a translator, by name."""
    return sorted(path.stem for path in PACKAGE.glob("*.py") if uses_translator(path))


def template_path(module: str) -> Path:
    return i18n.LOCALE_DIR / f"{module}.pot"


def po_path(module: str, language: str) -> Path:
    return i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{module}.po"


def extract(module: str) -> Catalog:
    """The English messages of ``mnist_course.<module>``, in the order the code has them."""
    template = Catalog(project="mnist-course", domain=module, fuzzy=False)
    template.header_comment = f"# The learner-facing messages of mnist_course.{module}."
    for _line, message, comments, context in extract_from_file(
        "python", PACKAGE / f"{module}.py", keywords=KEYWORDS, comment_tags=("Translators:",)
    ):
        template.add(message, None, auto_comments=comments, context=context)
    return template


def _po_bytes(catalog: Catalog) -> bytes:
    """A catalog as .po text, without locations, dates or the tool's version."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, no_location=True, ignore_obsolete=True)
    lines = buffer.getvalue().decode("utf-8").splitlines(keepends=True)
    dated = ('"POT-Creation-Date:', '"PO-Revision-Date:', '"Generated-By:')
    return "".join(line for line in lines if not line.startswith(dated)).encode("utf-8")


def mo_bytes(catalog: Catalog) -> bytes:
    """The compiled catalog (GNU .mo): its translated, non-fuzzy messages, sorted by msgid."""
    pairs = {"": HEADER}
    for message in catalog:
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy:
            key = f"{message.context}\x04{message.id}" if message.context else message.id
            pairs[key] = str(message.string)
    keys = sorted(pairs)
    ids = [key.encode("utf-8") for key in keys]
    strs = [pairs[key].encode("utf-8") for key in keys]
    start = 7 * 4 + 16 * len(keys)  # header, then the two tables of (length, offset)
    id_offsets, offset = [], start
    for data in ids:
        id_offsets.append((len(data), offset))
        offset += len(data) + 1
    str_offsets = []
    for data in strs:
        str_offsets.append((len(data), offset))
        offset += len(data) + 1
    out = [struct.pack("<7I", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)]
    out += [struct.pack("<2I", *pair) for pair in id_offsets + str_offsets]
    out += [data + b"\0" for data in ids + strs]
    return b"".join(out)


@dataclass
class Counts:
    """How many messages of one catalog are translated, fuzzy, or not translated yet."""

    translated: int = 0
    fuzzy: int = 0
    untranslated: int = 0

    @property
    def total(self) -> int:
        return self.translated + self.fuzzy + self.untranslated


def counts(catalog: Catalog) -> Counts:
    found = Counts()
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy:
            found.fuzzy += 1
        elif message.string:
            found.translated += 1
        else:
            found.untranslated += 1
    return found


def build(module: str) -> tuple[dict[Path, bytes], dict[str, Counts]]:
    """What the catalog files of ``module`` should hold now (path -> bytes), and the counts."""
    template = extract(module)
    files = {template_path(module): _po_bytes(template)}
    found = {}
    for language in TRANSLATED:
        path = po_path(module, language)
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=language, domain=module)
        else:
            catalog = Catalog(locale=language, domain=module, project="mnist-course")
        catalog.update(template, update_header_comment=True)
        catalog.header_comment = (
            f"# The learner-facing messages of mnist_course.{module}, in {language}."
        )
        catalog.fuzzy = False
        files[path] = _po_bytes(catalog)
        files[path.with_suffix(".mo")] = mo_bytes(catalog)
        found[language] = counts(catalog)
    return files, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_course.catalogs",
        description="Extract, update and compile the catalogs of the learner's feedback.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a catalog is out of step"
    )
    args = parser.parse_args(argv)
    behind: list[str] = []
    for module in modules():
        files, found = build(module)
        for path, data in files.items():
            if path.exists() and path.read_bytes() == data:
                continue
            if args.check:
                behind.append(str(path.relative_to(PACKAGE.parent)))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        for language, count in found.items():
            print(
                f"{module} ({language}): {count.translated} of {count.total} translated, "
                f"{count.fuzzy} fuzzy, {count.untranslated} untranslated"
            )
    if behind:
        print("out of step with the code (run `make messages`):\n  " + "\n  ".join(behind))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
