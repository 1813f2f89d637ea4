"""The evaluation's user-facing error: a set, a folder or an option that cannot be evaluated."""

from __future__ import annotations

from ehat.errors import EhatError

__all__ = ["EvalError"]


class EvalError(EhatError):
    """A set cannot be evaluated at all (missing folder, empty set, bad option); the message names
    the folder or the option and says what to do."""
