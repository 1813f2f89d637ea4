"""Side-by-side pictures (MATLAB bicubic | SR | HR crops) to look at results; for eyes only, never
for metrics.

One drawing for both users: ``test_demo.py --save_crops`` (one row per image, centre crop) and
``python -m ehat.demo`` (one row per demo image, the most textured crop, enlarged). The bicubic
panel is MATLAB-compatible bicubic (basicsr's ``imresize``), the baseline SR papers compare with,
and is labelled as such.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ehat.data.image_io import write_image

__all__ = [
    "BICUBIC_LABEL",
    "GAP",
    "LABEL_HEIGHT",
    "Panel",
    "bicubic_upscale",
    "center_box",
    "comparison_picture",
    "detail_crop",
    "picture_size",
    "save_side_by_side",
    "side_by_side",
]

BICUBIC_LABEL = "MATLAB bicubic"
LABEL_HEIGHT = 26  # pixels above each row's crops, for the labels
GAP = 6  # white pixels between panels and between rows

#: One panel of a row: (uint8 RGB image, its label); all images of a row have the same size.
Panel = tuple[np.ndarray, str]


def bicubic_upscale(lr_uint8: np.ndarray, scale: int = 4) -> np.ndarray:
    """MATLAB-compatible bicubic upscaling (basicsr's ``imresize``) of a uint8 ``(h, w, 3)`` image.

    Returns uint8 ``(h*scale, w*scale, 3)``: the baseline every SR result is compared with.
    """
    from basicsr.utils.matlab_functions import imresize

    up = imresize(lr_uint8.astype(np.float32) / 255.0, float(scale))
    return np.round(np.clip(up, 0.0, 1.0) * 255.0).astype(np.uint8)


def center_box(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of a centred ``size`` x ``size`` box in an image of ``height`` x ``width``."""
    return max(0, (height - size) // 2), max(0, (width - size) // 2)


def detail_crop(hr: np.ndarray, size: int) -> tuple[int, int]:
    """``(top, left)`` of the ``size`` x ``size`` HR window with the most gradient energy (on a
    half-window grid): where the eye can tell the methods apart. Chosen from the HR alone."""
    gray = hr.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    h, w = gray.shape
    size_h, size_w = min(size, h), min(size, w)
    step = max(1, size // 2)
    best, where = -1.0, (0, 0)
    for top in range(0, h - size_h + 1, step):
        for left in range(0, w - size_w + 1, step):
            e = float(energy[top : top + size_h - 1, left : left + size_w - 1].sum())
            if e > best:
                best, where = e, (top, left)
    return where


def picture_size(n_rows: int, crop: int = 128, zoom: int = 2, panels: int = 3) -> tuple[int, int]:
    """``(height, width)`` in pixels of :func:`comparison_picture` with ``n_rows`` rows of ``panels``."""
    panel = crop * zoom
    return n_rows * (LABEL_HEIGHT + panel) + (n_rows - 1) * GAP, panels * panel + (panels - 1) * GAP


def comparison_picture(
    rows: Sequence[Sequence[Panel]], boxes: Sequence[tuple[int, int]], crop: int = 128, zoom: int = 2
) -> np.ndarray:
    """uint8 RGB picture, one row per entry of ``rows``: each panel's ``crop`` x ``crop`` window at
    that row's ``boxes`` (top, left), enlarged ``zoom`` x with nearest neighbour (pixels stay
    visible), under its label. Panels smaller than the window are padded with black."""
    import cv2

    panel = crop * zoom
    height, width = picture_size(len(rows), crop, zoom, max((len(r) for r in rows), default=0))
    canvas = np.full((height, width, 3), 255, np.uint8)
    for row, (panels, (top, left)) in enumerate(zip(rows, boxes)):
        y0 = row * (LABEL_HEIGHT + panel + GAP)
        for col, (img, label) in enumerate(panels):
            x0 = col * (panel + GAP)
            tile = np.zeros((crop, crop, 3), np.uint8)
            part = img[top : top + crop, left : left + crop]
            tile[: part.shape[0], : part.shape[1]] = part
            canvas[y0 + LABEL_HEIGHT : y0 + LABEL_HEIGHT + panel, x0 : x0 + panel] = np.kron(
                tile, np.ones((zoom, zoom, 1), np.uint8)
            )
            cv2.putText(canvas, label, (x0 + 3, y0 + LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return canvas


def side_by_side(
    lr_uint8: np.ndarray, sr_uint8: np.ndarray, hr_uint8: np.ndarray | None, scale: int, crop: int = 192
) -> np.ndarray:
    """One labelled row: MATLAB bicubic x``scale`` of the LR | SR | HR (when given), ``crop`` x ``crop``
    HR pixels at the centre of the SR image (zoom 1).

    ``lr_uint8`` (h, w, 3), ``sr_uint8`` (h*scale, w*scale, 3), ``hr_uint8`` (H, W, 3), all RGB uint8.
    """
    sh, sw = sr_uint8.shape[:2]
    panels: list[Panel] = [(bicubic_upscale(lr_uint8, scale)[:sh, :sw], BICUBIC_LABEL), (sr_uint8, "SR")]
    if hr_uint8 is not None:
        panels.append((hr_uint8[:sh, :sw], "HR"))
    return comparison_picture([panels], [center_box(sh, sw, crop)], crop, zoom=1)


def save_side_by_side(
    path: str | os.PathLike,
    lr_uint8: np.ndarray,
    sr_uint8: np.ndarray,
    hr_uint8: np.ndarray | None,
    scale: int,
    crop: int = 192,
) -> None:
    """Write :func:`side_by_side` to ``path`` (PNG)."""
    write_image(path, side_by_side(lr_uint8, sr_uint8, hr_uint8, scale, crop))
