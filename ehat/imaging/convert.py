"""The one tensor <-> uint8 image conversion of training validation, evaluation and ``ehat upscale``.

Images are ``(H, W, 3)`` uint8 RGB; tensors are ``(1, 3, H, W)`` (or ``(3, H, W)``) float32 in
``[0, data_range]`` (1 for [0, 1] models, 255 for [0, 255] ones such as RLFN).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_tensor", "to_uint8"]


def to_tensor(img_uint8: np.ndarray, data_range: float, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, data_range] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(img_uint8)).permute(2, 0, 1).float()
    return x.mul_(data_range / 255.0).unsqueeze(0).to(device)


def to_uint8(y: torch.Tensor, data_range: float) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [0, data_range] -> (H, W, 3) uint8 RGB (clamped, then rounded: the
    challenge's conversion)."""
    y = y.detach()
    if y.dim() == 4:
        y = y[0]
    y = y.float().clamp(0, data_range).mul_(255.0 / data_range).round_()
    return y.byte().permute(1, 2, 0).cpu().numpy()
