"""The one atomic file writer: a temporary file beside the target, fsync, rename, fsync the folder.

A crash, a kill or a full disk leaves either the previous file or the new one under the final
name, never half a file; the temporary is removed on any error. Temporaries are named
``.tmp-<name>.<random>`` (:func:`is_temporary`), so a folder can be cleaned after a killed run.
The file gets the permissions a plain ``open(path, "wb")`` would give it: an existing file's mode
is kept, a new file gets ``0o666 & ~umask`` (not ``mkstemp``'s private 0600).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of :func:`atomic_write`'s temporaries."""
    return name.startswith(TMP_PREFIX)


def current_umask() -> int:
    """The process's umask (read from /proc on Linux; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no read-only query exists: this briefly changes it (not thread-safe)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """Permission bits a plain ``open(path, "wb")`` would leave: kept if it exists, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / filesystem
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary file)`` on a temporary beside ``path``, fsync, rename it to ``path``.

    Creates the parent folders. On any error the temporary is removed, ``path`` is left as it
    was, and the error propagates unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            else:  # Windows: only the read-only bit exists
                os.chmod(tmp, mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
