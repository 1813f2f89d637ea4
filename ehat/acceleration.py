"""Speed switches shared by training and evaluation: regional compilation and TF32.

``compile_model(model, "blocks")`` compiles each repeated block (the network descriptor's
``compile_blocks``: HAB and OCAB for HAT/EHAT) in place, so a network of many identical blocks compiles one
graph per block shape instead of one huge graph; ``"full"`` compiles the whole forward in place.
Both keep the state-dict keys (``nn.Module.compile`` wraps ``forward``, not the module).
Compilation is lazy: the time is spent on the first forward, which callers time and log apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ehat.errors import EhatError

__all__ = [
    "COMPILE_MODES",
    "CompileError",
    "compile_model",
    "compiled_blocks",
    "enable_tf32",
    "timed_first_call",
]

COMPILE_MODES = ("false", "blocks", "full")
log = logging.getLogger("ehat")


class CompileError(EhatError):
    """An unknown compile mode."""


def compiled_blocks(model: nn.Module) -> list[nn.Module]:
    """The modules ``compile_model(model, "blocks")`` compiles, in order: every instance of its
    descriptor's ``compile_blocks`` (HAB and OCAB for HAT/EHAT); none for a network that is not
    registered."""
    from ehat.archs import descriptor_of
    from ehat.archs.presets import UnknownNetworkError

    try:
        kinds = descriptor_of(model).compile_blocks
    except UnknownNetworkError:
        kinds = ()
    return [m for m in model.modules() if isinstance(m, kinds)]


def compile_model(
    model: nn.Module, mode: str | bool, dynamic: bool | None = None, backend: str | Callable = "inductor"
) -> nn.Module:
    """Compile ``model`` in place and return it. ``mode``: false | blocks | full (bools accepted).

    ``dynamic=None`` lets torch mark H/W dynamic after the first size change, so a validation set
    of many image sizes compiles at most twice per block; ``True`` starts dynamic.
    Networks without HAT blocks (RLFN) fall back to ``full`` under ``blocks``. ``backend`` is
    torch.compile's (tests count graphs with a recording backend).
    """
    mode = {True: "full", False: "false"}.get(mode, mode) if isinstance(mode, bool) else str(mode).lower()
    if mode not in COMPILE_MODES:
        raise CompileError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    if mode == "false":
        return model
    blocks = compiled_blocks(model) if mode == "blocks" else []
    if not blocks:
        model.compile(dynamic=dynamic, backend=backend)
        return model
    for block in blocks:
        block.compile(dynamic=dynamic, backend=backend)
    return model


def enable_tf32(on: bool) -> None:
    """Let CUDA matmuls and cuDNN convolutions use TF32 (Ampere and newer); no effect on CPU."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def timed_first_call(fn: Callable[..., Any], *args: Any, what: str = "compile") -> tuple[Any, float]:
    """Run ``fn(*args)`` once (the call that compiles), log and return (result, seconds)."""
    start = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    log.info("%s: first call (compilation included) took %.1f s", what, seconds)
    return out, seconds
