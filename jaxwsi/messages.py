"""Helpers for user-facing messages: short lists of names, counts with plurals, "did you mean".

plural(3, "slide")                      → "3 slides"
name_some(["a", "b", ...], limit=20)    → "a, b, ... and 12 more"
did_you_mean("labl", ["label", "site"]) → " (did you mean 'label'?)"
unknown("column", "labl", columns)      → "unknown column 'labl' (did you mean 'label'?);
                                           expected one of: label, patient, site, slide"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = ["did_you_mean", "name_some", "plural", "unknown"]

MAX_NAMED = 20  # how many names a message lists before "and N more"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, made plural (``many``, default ``word + "s"``) unless 1."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def name_some(names: Iterable[object], limit: int = MAX_NAMED) -> str:
    """A readable list of at most ``limit`` names, with a count of the rest."""
    names = list(names)
    shown = ", ".join(str(n) for n in names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice (case-insensitive), or ``""``."""
    by_key = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(by_key), n=1, cutoff=0.6)
    return f" (did you mean {by_key[close[0]]!r}?)" if close else ""


def unknown(what: str, word: object, choices: Sequence[object]) -> str:
    """``unknown {what} 'word' (did you mean ...?); expected one of: ...``."""
    return (
        f"unknown {what} {word!r}{did_you_mean(word, choices)}; "
        f"expected one of: {name_some(choices)}"
    )
