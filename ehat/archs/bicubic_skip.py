"""A learnable image-level skip that starts as exact bicubic upsampling.

``BicubicSkip(scale)`` is a depthwise 5x5 convolution to ``scale**2`` sub-pixel planes per channel
followed by ``PixelShuffle(scale)``. Its initial weights are the separable cubic-convolution
kernel (a = -0.75) at the ``scale`` sub-pixel phases and its border mode is replicate, so at
initialization it equals ``F.interpolate(x, scale_factor=scale, mode='bicubic',
align_corners=False)`` everywhere, borders included. Training may then move it away from bicubic
(e.g. towards the inverse of the degradation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic; MATLAB's imresize uses -0.5
KERNEL = 5  # taps i-2 .. i+2 cover every sub-pixel phase of a 4-tap cubic


def cubic(t: float, a: float = CUBIC_A) -> float:
    """Keys' cubic convolution kernel at distance ``t``."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def phase_taps(scale: int) -> torch.Tensor:
    """(scale, KERNEL) 1-D weights: row r gives output sub-pixel r from LR taps at offsets -2..2."""
    taps = torch.zeros(scale, KERNEL, dtype=torch.float64)
    for r in range(scale):
        d = (r + 0.5) / scale - 0.5  # the output pixel's position relative to its LR pixel
        base = math.floor(d)
        for j in range(base - 1, base + 3):
            taps[r, j + 2] = cubic(d - j)
    return taps


class BicubicSkip(nn.Module):
    """(B, C, H, W) -> (B, C, H*scale, W*scale); keys ``weight`` (C*scale^2, 1, 5, 5), ``bias``."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.channels = channels
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(channels * scale * scale, 1, KERNEL, KERNEL))
        self.bias = nn.Parameter(torch.zeros(channels * scale * scale))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set the weights to bicubic interpolation and the bias to zero."""
        taps = phase_taps(self.scale)
        kernel = torch.einsum("yk,xl->yxkl", taps, taps).reshape(self.scale * self.scale, KERNEL, KERNEL)
        self.weight.copy_(kernel.repeat(self.channels, 1, 1).unsqueeze(1))
        self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = KERNEL // 2
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        y = F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), groups=self.channels)
        return F.pixel_shuffle(y, self.scale)
