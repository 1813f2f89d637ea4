"""The small JSON caches of evaluation (complexity counts, memory fits): read leniently, write atomically."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ehat.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)


def read_json_cache(path: str | os.PathLike | None) -> dict[str, Any]:
    """The cache's entries; {} when there is no file or it is unreadable (it is then rewritten)."""
    if path is None or not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        logger.warning("cache %s is unreadable (%s); recomputing", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def write_json_cache(path: str | os.PathLike, cache: dict[str, Any]) -> None:
    """Write ``cache`` to ``path`` atomically (creates the folder)."""
    atomic_write_bytes(path, json.dumps(cache, indent=1).encode("utf-8"))
