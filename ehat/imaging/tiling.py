"""Tiled inference with overlapping tiles and feathered (linearly blended) seams.

Used by training validation and by ``test_demo.py`` alike. Each tile goes through the model as a
whole image (the model reflect-pads it to its window multiple and crops back); overlapping
outputs are averaged with weights that ramp linearly from the tile's edge over the overlap, so
no seam is visible and each output pixel leans on the tile where it is most central.

:class:`TilePolicy` is the one place an evaluation's tile setting lives: whole images, a fixed
tile of N LR pixels, or ``auto`` (the largest tile whose predicted peak memory fits a budget,
:class:`ehat.evaluation.memory_model.AutoTiler`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]
#: (LR h, LR w) -> (tile side in LR pixels or None for the whole image, a log line)
TileChooser = Callable[[int, int], tuple[int | None, str]]


@dataclass(frozen=True)
class TilePolicy:
    """How images are split for inference: ``whole``, ``fixed`` (``size`` LR pixels) or ``auto``.

    ``overlap``: LR pixels shared by neighbouring tiles. ``chooser`` (``auto`` only) picks the tile
    per image; an ``auto`` policy without one (memory cannot be measured here) runs whole images.
    Build with :meth:`whole`, :meth:`fixed`, :meth:`auto` or :meth:`from_setting`.
    """

    mode: str = "whole"
    size: int | None = None
    overlap: int = 32
    chooser: TileChooser | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "fixed", "auto"):
            raise ValueError(f"tile mode must be whole, fixed or auto, got {self.mode!r}")
        if (self.mode == "fixed") != (self.size is not None) or (self.size is not None and self.size <= 0):
            raise ValueError(f"a fixed tile needs a size > 0 (and only a fixed one): {self}")
        if self.overlap < 0:
            raise ValueError(f"tile overlap must be >= 0 LR pixels, got {self.overlap}")

    @classmethod
    def whole(cls, overlap: int = 32) -> TilePolicy:
        """Whole images (the challenge's protocol); ``overlap`` is used by out-of-memory retries."""
        return cls("whole", None, overlap)

    @classmethod
    def fixed(cls, size: int, overlap: int = 32) -> TilePolicy:
        """Tiles of ``size`` x ``size`` LR pixels."""
        return cls("fixed", int(size), overlap)

    @classmethod
    def auto(cls, overlap: int = 32, chooser: TileChooser | None = None) -> TilePolicy:
        """A tile per image from ``chooser`` (set later with :meth:`with_chooser`)."""
        return cls("auto", None, overlap, chooser)

    @classmethod
    def from_setting(cls, setting: int | str | None, overlap: int = 32) -> TilePolicy:
        """``--tile``'s value: None / ``"none"`` -> whole, an int -> fixed, ``"auto"`` -> auto."""
        if setting is None or setting == "none":
            return cls.whole(overlap)
        if setting == "auto":
            return cls.auto(overlap)
        return cls.fixed(int(setting), overlap)

    def with_chooser(self, chooser: TileChooser | None) -> TilePolicy:
        """This ``auto`` policy with its per-image chooser (None: whole images)."""
        return dataclasses.replace(self, chooser=chooser)

    @property
    def label(self) -> int | str:
        """What ``results.json`` records as ``tile``: ``"none"``, the fixed size, or ``"auto"``."""
        if self.mode == "fixed":
            assert self.size is not None
            return self.size
        return "none" if self.mode == "whole" else "auto"

    def choose(self, lr_h: int, lr_w: int) -> tuple[int | None, str | None]:
        """(tile side in LR pixels or None for the whole image, the chooser's log line or None)."""
        if self.chooser is not None:
            return self.chooser(lr_h, lr_w)
        return self.size, None


def describe_tile(tile: int | None) -> str:
    """``whole image`` or ``tiles of N``: how one forward was run, for log lines."""
    return "whole image" if tile is None else f"tiles of {tile}"


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with >= ``overlap`` overlap."""
    if tile >= size:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, ramp: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """1-D blending weight: rises over ``ramp`` px from each inner edge, 1 elsewhere (never 0)."""
    w = torch.ones(length, device=device)
    if ramp <= 0:
        return w
    steps = (torch.arange(ramp, device=device, dtype=torch.float32) + 0.5) / ramp
    n = min(ramp, length)
    if not at_start:
        w[:n] = torch.minimum(w[:n], steps[:n])
    if not at_end:
        w[length - n :] = torch.minimum(w[length - n :], steps[:n].flip(0))
    return w


@torch.no_grad()
def forward_tiled(
    model: Forward, x: torch.Tensor, scale: int, tile: int | None = None, overlap: int = 32
) -> torch.Tensor:
    """Run ``model`` on ``x`` (B, C, H, W), whole or in ``tile`` x ``tile`` LR tiles.

    Args:
        model: a module or function mapping (B, C, h, w) -> (B, C, h*scale, w*scale).
        x: LR input in the model's range.
        scale: the SR factor.
        tile: tile side in LR pixels; None (or >= the image) runs the whole image at once.
        overlap: LR pixels shared by neighbouring tiles (blended linearly across them).
    Returns:
        (B, C, H*scale, W*scale) in the input's dtype and device. Runs under ``torch.no_grad``.
    """
    h, w = x.shape[-2:]
    if tile is None or (tile >= h and tile >= w):
        return model(x)
    if tile <= 0 or overlap < 0:
        raise ValueError(f"tile must be > 0 and overlap >= 0, got tile={tile}, overlap={overlap}")
    overlap = min(overlap, tile - 1)
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    out: torch.Tensor | None = None
    weight = torch.zeros(1, 1, h * scale, w * scale, device=x.device)
    ramp = overlap * scale
    for y0 in ys:
        wy = _ramp(th * scale, ramp, y0 == 0, y0 + th == h, x.device)
        for x0 in xs:
            patch = model(x[..., y0 : y0 + th, x0 : x0 + tw])
            if out is None:
                out = torch.zeros(
                    *patch.shape[:2], h * scale, w * scale, device=x.device, dtype=torch.float32
                )
            wx = _ramp(tw * scale, ramp, x0 == 0, x0 + tw == w, x.device)
            wmap = (wy[:, None] * wx[None, :])[None, None]
            region = (..., slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale))
            out[region] += patch.float() * wmap
            weight[region] += wmap
    assert out is not None
    return (out / weight).to(x.dtype)
