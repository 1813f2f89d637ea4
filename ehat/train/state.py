"""Training states on disk: atomic writes, the newest complete state, keep-last-K.

A state file (``training_states/<iter>.state``) holds everything a resumed run needs: network and
EMA weights, optimizer, scheduler progress, grad scaler, iteration, data position, RNG states
(per rank). It is written to a temporary file in the same folder, fsynced, then renamed over the
final name, so a crash (SIGKILL, full disk) leaves either the old set of files or the new one,
never a half-written file under a final name. Everything stored is a tensor or a plain container,
so it loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ehat import atomic
from ehat.errors import EhatError

STATE_SUFFIX = ".state"
_STATE_NAME = re.compile(r"^(\d+)\.state$")


class StateError(EhatError):
    """A training state or checkpoint that cannot be written or read; the message names the file."""


def write_error(path: str | os.PathLike, exc: OSError) -> StateError:
    """The error for a failed atomic write of ``path`` (a full disk above all): the previous files
    are intact, since the writer never replaces a file with half of one."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateError(f"no space left to write {path}: the previous files are intact; free disk space")
    return StateError(f"cannot write {path}: {exc}; the previous files are intact")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """:func:`ehat.atomic.atomic_write`, with an OS error raised as :class:`StateError` (:func:`write_error`)."""
    path = Path(path)
    try:
        return atomic.atomic_write(path, write)
    except OSError as exc:
        raise write_error(path, exc) from exc


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""
    return atomic_write(path, lambda f: torch.save(obj, f))


is_temporary = atomic.is_temporary


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete temporary files left by a writer that was killed mid-save (call before writing again)."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if is_temporary(p.name) and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()


# ------------------------------------------------------------------------------------------ RNG
def capture_rng() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as tensors / plain containers (weights_only-safe)."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------- state files
def state_path(folder: str | os.PathLike, iteration: int) -> Path:
    return Path(folder) / f"{iteration}{STATE_SUFFIX}"


def list_states(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """(iteration, path) of every complete state file in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _STATE_NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_state(path: str | os.PathLike) -> dict:
    """Read a training state on CPU with ``weights_only=True``; :class:`StateError` names the file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise StateError(f"training state {path} does not exist") from exc
    except Exception as exc:  # truncated / not a state: name the file  # noqa: BLE001
        raise StateError(f"training state {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "iter" not in state or "net" not in state:
        raise StateError(f"{path} is not an EHAT training state (no 'iter'/'net' entries)")
    return state


def latest_state(folder: str | os.PathLike) -> Path | None:
    """The newest state file in ``folder`` (None when there is none)."""
    states = list_states(folder)
    return states[-1][1] if states else None


def prune(folder: str | os.PathLike, keep_last: int, pattern: re.Pattern[str] = _STATE_NAME) -> None:
    """Delete all but the ``keep_last`` newest files of ``folder`` whose name matches ``pattern``
    (group 1 = iteration)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name)))
    for _, p in found[: max(0, len(found) - keep_last)]:
        with contextlib.suppress(OSError):
            p.unlink()
