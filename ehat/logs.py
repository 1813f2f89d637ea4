"""The one log set-up: a named logger (plus the library loggers) to a console stream and a file.

Training (``ehat.train``) and evaluation (``test_demo``, ``test.py``) both attach handlers here, so
log lines look the same everywhere and a run's handlers are closed when it ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

__all__ = ["LIBRARY_LOGGERS", "attach", "run_log"]

LIBRARY_LOGGERS = ("ehat.zoo", "ehat.checkpoints", "ehat.evaluation", "ehat.acceleration")
"""Loggers of library modules (downloads, checkpoint notes, fallbacks) that a run's log includes."""
_FORMAT = ("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")


def attach(
    name: str,
    log_file: str | Path | None,
    *,
    console: IO[str] | None = sys.stderr,
    level: int = logging.INFO,
    libraries: Sequence[str] = LIBRARY_LOGGERS,
) -> tuple[logging.Logger, Callable[[], None]]:
    """Send logger ``name`` and ``libraries`` to ``console`` and ``log_file`` (appending; either may
    be None). Returns the logger and a function that detaches and closes these handlers."""
    log = logging.getLogger(name)
    log.setLevel(level)
    log.propagate = False
    fmt = logging.Formatter(*_FORMAT)
    handlers: list[logging.Handler] = []
    if console is not None:
        handlers.append(logging.StreamHandler(console))
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    loggers = [log] + [logging.getLogger(n) for n in libraries if n != name]
    for lg in loggers[1:]:
        lg.setLevel(min(lg.level or level, level))
    for h in handlers:
        h.setFormatter(fmt)
        for lg in loggers:
            lg.addHandler(h)

    def detach() -> None:
        for h in handlers:
            for lg in loggers:
                lg.removeHandler(h)
            h.close()

    return log, detach


@contextlib.contextmanager
def run_log(name: str, log_file: str | Path | None, **kwargs: object) -> Iterator[logging.Logger]:
    """:func:`attach` for the duration of a ``with`` block."""
    log, detach = attach(name, log_file, **kwargs)
    try:
        yield log
    finally:
        detach()
