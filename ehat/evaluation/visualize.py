"""Side-by-side crops (bicubic | SR | HR) to look at results; for eyes only, never for metrics."""

from __future__ import annotations

import os

import cv2
import numpy as np


def center_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a centred ``size`` x ``size`` box clipped to the image."""
    h, w = min(size, height), min(size, width)
    return (height - h) // 2, (width - w) // 2, h, w


def side_by_side(
    lr_uint8: np.ndarray, sr_uint8: np.ndarray, hr_uint8: np.ndarray | None, scale: int, crop: int = 192
) -> np.ndarray:
    """A (crop, 2 or 3 * crop + gaps, 3) uint8 RGB strip: bicubic-upsampled LR | SR | HR (if any).

    All inputs are RGB uint8; ``sr`` is (h*scale, w*scale, 3); the crop is taken at the centre
    of the SR image, in HR pixels.
    """
    sh, sw = sr_uint8.shape[:2]
    bicubic = cv2.resize(lr_uint8, (sw, sh), interpolation=cv2.INTER_CUBIC)
    top, left, h, w = center_box(sh, sw, crop)
    panels = [bicubic, sr_uint8] + ([hr_uint8[:sh, :sw]] if hr_uint8 is not None else [])
    gap = np.full((h, 4, 3), 255, np.uint8)
    tiles: list[np.ndarray] = []
    for p in panels:
        tile = np.zeros((h, w, 3), np.uint8)
        part = p[top : top + h, left : left + w]
        tile[: part.shape[0], : part.shape[1]] = part
        tiles += [tile, gap]
    return np.concatenate(tiles[:-1], axis=1)


def save_side_by_side(
    path: str | os.PathLike,
    lr_uint8: np.ndarray,
    sr_uint8: np.ndarray,
    hr_uint8: np.ndarray | None,
    scale: int,
    crop: int = 192,
) -> None:
    """Write :func:`side_by_side` to ``path`` (PNG)."""
    from ehat.data.image_io import write_image

    write_image(path, side_by_side(lr_uint8, sr_uint8, hr_uint8, scale, crop))
