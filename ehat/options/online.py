"""Whether a download would work now: one TCP connection to the URL's host (the only network access
of option checking)."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

__all__ = ["reachable"]


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host accepts a connection on port 443 within ``timeout`` seconds."""
    try:
        with socket.create_connection((urlparse(url).hostname, 443), timeout=timeout):
            return True
    except OSError:
        return False
