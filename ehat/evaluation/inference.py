"""Inference of one image: tensor <-> uint8 image, the timed forward (autocast, self-ensemble,
tiles) and the retry with smaller tiles after an out-of-memory error.

Images are ``(H, W, 3)`` uint8 RGB; tensors are ``(1, 3, H, W)`` float32 in ``[0, data_range]``
(1 for [0, 1] models, 255 for [0, 255] ones such as RLFN); the conversions are
:mod:`ehat.imaging.convert`'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import torch

from ehat.evaluation.ensemble import self_ensemble
from ehat.evaluation.runtime import Timing, timed
from ehat.imaging.tiling import TilePolicy, describe_tile, forward_tiled

__all__ = [
    "OOM_TILES",
    "PRECISIONS",
    "Forward",
    "RunSettings",
    "check_finite",
    "infer",
    "is_out_of_memory",
    "make_forward",
]

OOM_TILES = (512, 256, 128, 64)  # tile sides tried, largest first, after an out-of-memory error
PRECISIONS = ("fp32", "bf16", "fp16")
Forward = Callable[[torch.Tensor], torch.Tensor]


class RunSettings(Protocol):
    """What inference reads from the evaluation's options (:class:`ehat.evaluation.protocol.EvalOptions`).

    ``scale``: the SR factor; ``precision``: fp32, bf16 or fp16 (autocast); ``warmup`` untimed and
    ``repeat`` timed runs per image.
    """

    device: torch.device
    scale: int
    tiles: TilePolicy
    self_ensemble: bool
    precision: str
    warmup: int
    repeat: int


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_forward(model: Forward, settings: RunSettings, tile: int | None) -> Forward:
    """The function that is timed: (1, 3, h, w) -> (1, 3, h*s, w*s) float32, under ``no_grad`` and
    autocast, optionally self-ensembled (x8), in ``tile`` x ``tile`` LR tiles (None: whole)."""
    overlap = settings.tiles.overlap

    def run_one(x: torch.Tensor) -> torch.Tensor:
        return forward_tiled(model, x, settings.scale, tile, overlap)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), _autocast(settings.device, settings.precision):
            y = self_ensemble(run_one, x) if settings.self_ensemble else run_one(x)
        return y.float()

    return forward


def is_out_of_memory(e: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` (CUDA's, or the CPU allocator's where torch raises it)."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom)


def check_finite(x: torch.Tensor, name: str, what: str, advice: str) -> None:
    """Raise ``ValueError`` naming image ``name`` when tensor ``x`` holds NaN or inf values."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n = int(finite.numel() - finite.sum())
        raise ValueError(f"{name}: the {what} holds {n} NaN/inf value(s); {advice}")


def _nonfinite_advice(precision: str) -> str:
    if precision == "fp16":
        return (
            "fp16 overflowed (its largest value is 65504; attention logits and HAT's activations can exceed "
            "it): use --bf16 (fp32's range, as fast on current GPUs) or full precision"
        )
    return "check the weights and --data_range"


def infer(
    model: Forward, x: torch.Tensor, settings: RunSettings, log: logging.Logger, name: str
) -> tuple[tuple[torch.Tensor, Timing], int | None]:
    """Timed inference of one (1, 3, h, w) image; after an out-of-memory error retry with smaller
    tiles (:data:`OOM_TILES`) and log the tile that failed and the one tried next.

    Returns ((output (1, 3, h*s, w*s), Timing), the tile actually used or None for the whole image).
    Raises ``ValueError`` naming the image when the input or the output holds NaN/inf.
    """
    check_finite(x, name, "input", "the image must hold finite values: re-create it")
    tile, why = settings.tiles.choose(x.shape[-2], x.shape[-1])
    if why:
        log.info("%s: %s", name, why)
    side = max(x.shape[-2:])
    current = side if tile is None else tile
    candidates = [t for t in OOM_TILES if t < current]
    while True:
        fwd = make_forward(model, settings, tile)
        try:
            out = timed(lambda f=fwd: f(x), settings.device, settings.warmup, settings.repeat)
            check_finite(out[0], name, "model output", _nonfinite_advice(settings.precision))
            return out, tile
        except RuntimeError as e:
            if not is_out_of_memory(e) or not candidates:
                raise
            failed, tile = tile, candidates.pop(0)
            if settings.device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("%s: out of memory on %s with %s; retrying with tiles of %d (overlap %d)", name,
                        settings.device.type.upper(), describe_tile(failed), tile, settings.tiles.overlap)  # fmt: skip
