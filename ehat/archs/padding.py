"""The one padding helper: mirror-pad an image to a multiple of the window size, crop back later."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``x`` (B, C, H, W) at the bottom/right so H and W are multiples of ``multiple``.

    Matches HAT's test-time padding (``F.pad(x, (0, pw, 0, ph), 'reflect')``). An image smaller
    than the pad (e.g. 5x5 with window 16) is mirrored repeatedly, since one reflect pad cannot
    exceed the size - 1. Returns the padded tensor and the original (H, W) for :func:`crop_output`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    while ph > 0 or pw > 0:
        step_h = min(ph, x.shape[-2] - 1)
        step_w = min(pw, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:  # a 1-pixel side cannot be reflected: repeat it
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            break
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        ph, pw = ph - step_h, pw - step_w
    return x, (h, w)


def crop_output(y: torch.Tensor, size: tuple[int, int], scale: int) -> torch.Tensor:
    """Crop a network output (B, C, H', W') back to (B, C, size[0]*scale, size[1]*scale)."""
    h, w = size
    return y[..., : h * scale, : w * scale]
