"""One exception family for mistakes a user can fix, and the one "did you mean" helper.

Entry points catch ``EhatError`` (and ``OSError``) and print the message without a traceback;
anything else (``TypeError``, ``KeyError`` from our own code) is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["EhatError", "did_you_mean", "closest"]


class EhatError(Exception):
    """Base of every user-facing error (bad option, file, checkpoint, image, data set)."""


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (difflib ratio >= ``cutoff``), or None."""
    match = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=cutoff)
    return match[0] if match else None


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""`` when none is close.

    Pass only candidates of the same kind as ``word`` (keys of one section, names of one registry):
    a suggestion across kinds misleads more than no suggestion.
    """
    match = closest(word, candidates, cutoff)
    return f" (did you mean {match!r}?)" if match else ""
