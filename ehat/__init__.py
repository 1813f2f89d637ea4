"""EHAT: HAT + Branch Self-Attention + DANet dual attention for x4 super-resolution.

Importing ``ehat`` is light: it installs an import hook that, when basicsr is first imported,
installs the torchvision alias basicsr 1.4.2 needs and registers our networks and datasets in
basicsr's registries (:mod:`ehat._compat`). ``ehat.archs`` and ``ehat.data`` load on first use.
"""

import importlib
from typing import Any

from ehat._compat import install_basicsr_hook

install_basicsr_hook()

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``ehat.archs`` / ``ehat.data`` without importing them first (PEP 562)."""
    if name in ("archs", "data"):
        return importlib.import_module(f"ehat.{name}")
    raise AttributeError(f"module 'ehat' has no attribute {name!r}")
