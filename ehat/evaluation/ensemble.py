"""Self-ensemble x8: run the model on the 8 flips/rotations of the input and average the outputs."""

from __future__ import annotations

from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


def _transform(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Rotate (B, C, H, W) by k*90 degrees in the H-W plane, after an optional horizontal flip."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1))


def _inverse(y: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def self_ensemble(forward: Forward, x: torch.Tensor) -> torch.Tensor:
    """Mean of ``T^-1(forward(T(x)))`` over the 8 dihedral transforms T (x8 cost).

    ``forward`` maps (B, C, H, W) -> (B, C, H*s, W*s) for any H, W (rotations swap H and W).
    Accumulates in float32; returns the input's dtype.
    """
    acc: torch.Tensor | None = None
    for flip in (False, True):
        for k in range(4):
            y = _inverse(forward(_transform(x, k, flip)), k, flip).float()
            acc = y if acc is None else acc + y
    assert acc is not None
    return (acc / 8).to(x.dtype)
