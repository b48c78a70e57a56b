"""The language of the learner's feedback: checker messages, hints and quiz explanations.

The English text is written in the code, inside ``_("...")``; every other language comes
from a gettext catalog, one per module: ``locale/<language>/LC_MESSAGES/<module>.po`` beside
this file, compiled to the ``.mo`` that :mod:`gettext` reads (``make messages``, that is
``python -m mnist_course.catalogs``, extracts, updates and compiles them;
``tests/test_i18n.py`` checks that every message has both languages). A Chinese chapter sets the language once, in the cell before its first code cell (added by
``mnist-course translate sync``)::

    from mnist_course import i18n

    i18n.set_language("zh")

A module translates with its own catalog::

    _ = i18n.translator(__name__)
    raise NotYet(_("expected shape {expected}, got {got}.").format(expected=..., got=...))

The text is looked up when the message is made, so the language set last holds. Text built
at import (a quiz's explanations) is marked with ``N_`` and translated where it is shown.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "zh": "中文"}
_state = {"language": "en"}


def set_language(language: str) -> None:
    """Give the checkers' feedback in ``language`` from now on in this kernel ("en" or "zh")."""
    if language not in LANGUAGES:
        raise ValueError(
            f"set_language({language!r}): the course's languages are "
            f"{', '.join(repr(code) for code in LANGUAGES)}; for example set_language('zh')"
        )
    _state["language"] = language


def language() -> str:
    """The language feedback is given in now ("en" unless :func:`set_language` changed it)."""
    return _state["language"]


@cache
def catalog(domain: str, language: str) -> gettext.NullTranslations:
    """The compiled catalog of one module in one language (English: the text itself)."""
    if language == "en":
        return gettext.NullTranslations()
    return gettext.translation(domain, LOCALE_DIR, languages=[language], fallback=True)


def translator(module: str, language: str | None = None) -> Callable[[str], str]:
    """``_`` for the module named ``module`` (``__name__``): its text in the language now, or
    always in ``language`` when one is given (the grader's way: a notebook's own language)."""
    if language is not None and language not in LANGUAGES:
        raise ValueError(
            f"translator(..., {language!r}): the course's languages are "
            f"{', '.join(repr(code) for code in LANGUAGES)}"
        )
    domain = module.rsplit(".", 1)[-1]

    def _(message: str) -> str:
        return catalog(domain, language or _state["language"]).gettext(message)

    return _


def N_(message: str) -> str:  # noqa: N802  (gettext's name for "mark only")
    """Mark ``message`` for the catalog without translating it now (text built at import)."""
    return message


def domains(language: str) -> list[str]:
    """The modules that have a compiled catalog in ``language``, by domain name."""
    return sorted(path.stem for path in (LOCALE_DIR / language / "LC_MESSAGES").glob("*.mo"))


def messages(domain: str, language: str) -> dict[str, str]:
    """Every translated message of one module's catalog: English text -> its translation."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.mo"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    found = compiled._catalog  # type: ignore[attr-defined]  # gettext keeps no public list
    return {str(key): str(value) for key, value in found.items() if key and isinstance(key, str)}
