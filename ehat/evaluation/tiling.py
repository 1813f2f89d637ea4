"""Tiled inference with overlapping tiles and feathered (linearly blended) seams.

Used by training validation and by ``test_demo.py`` alike. Each tile goes through the model as a
whole image (the model reflect-pads it to its window multiple and crops back); overlapping
outputs are averaged with weights that ramp linearly from the tile's edge over the overlap, so
no seam is visible and each output pixel leans on the tile where it is most central.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


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
