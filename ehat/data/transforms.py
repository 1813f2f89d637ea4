"""Pair geometry: modcrop, HR/LR size agreement, MATLAB bicubic LR, crops that keep HR and LR aligned.

Arrays are ``(H, W, 3)`` RGB, uint8 or uint16 (decoded, not yet float). Random crops and flips reuse
basicsr's ``paired_random_crop`` and ``augment``; this module adds what they lack.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ehat.data.image_io import to_float32
from ehat.data.pairing import DatasetError


class PairSizeError(DatasetError):
    """An HR/LR pair whose sizes disagree, or an image too small for the requested crop."""


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of ``scale`` (a view, no copy)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def match_gt_to_lq(gt: np.ndarray, lq: np.ndarray, scale: int, gt_path: str, lq_path: str) -> np.ndarray:
    """Return ``gt`` modcropped to exactly ``scale`` x the LR size; :class:`PairSizeError` if they disagree.

    A pair agrees when ``floor(H_hr / scale) == H_lr`` and the same for W (bicubic LR of a modcropped HR).
    """
    h, w = gt.shape[:2]
    hl, wl = lq.shape[:2]
    if h // scale != hl or w // scale != wl:
        raise PairSizeError(
            f"HR/LR size mismatch: HR {gt_path} is {w}x{h} (WxH) but LR {lq_path} is {wl}x{hl}; "
            f"expected the LR to be {w // scale}x{h // scale} (HR / {scale}, after modcrop)",
            gt_path,
        )
    return gt[: hl * scale, : wl * scale]


def check_patch_fits(lq_shape: tuple[int, ...], gt_size: int, scale: int, path: str) -> None:
    """:class:`PairSizeError` when an LR of ``lq_shape`` is smaller than the LR patch ``gt_size // scale``."""
    need = gt_size // scale
    if lq_shape[0] < need or lq_shape[1] < need:
        raise PairSizeError(
            f"image {path} is too small for gt_size {gt_size}: its LR is {lq_shape[1]}x{lq_shape[0]}, "
            f"the LR patch is {need}x{need}; remove the image or lower gt_size",
            path,
        )


def _quantize_like(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    peak = 65535.0 if dtype == np.uint16 else 255.0
    return np.round(np.clip(x, 0.0, 1.0) * peak).astype(dtype)


def bicubic_downsample(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` (basicsr's implementation), rounded to ``img``'s dtype.

    ``img`` should already be modcropped; the result is ``(H/scale, W/scale, 3)``.
    """
    from basicsr.utils.matlab_functions import imresize

    out = imresize(to_float32(img), 1.0 / scale)
    return _quantize_like(out, img.dtype)


def random_crop_with_bicubic_lr(
    gt: np.ndarray, gt_size: int, scale: int, margin: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``gt_size`` HR patch of a modcropped ``gt`` and its bicubic LR, computed on the fly.

    The patch sits on the LR grid, and the LR is resized from the patch plus ``margin`` HR pixels on each
    side (default ``4 * scale``, more than the bicubic kernel's reach), so the LR equals the matching crop
    of the whole image's bicubic LR. Uses Python's ``random`` like basicsr's crops (seeded per worker).

    Returns:
        ``(gt_patch (gt_size, gt_size, 3), lq_patch (gt_size/scale, gt_size/scale, 3))``, ``gt``'s dtype.
    """
    margin = 4 * scale if margin is None else margin
    if gt_size % scale or margin % scale:
        raise ValueError(f"gt_size ({gt_size}) and margin ({margin}) must be multiples of scale ({scale})")
    h, w = gt.shape[:2]
    lq_size = gt_size // scale
    top = random.randint(0, h // scale - lq_size) * scale
    left = random.randint(0, w // scale - lq_size) * scale
    r0, c0 = max(0, top - margin), max(0, left - margin)
    r1, c1 = min(h, top + gt_size + margin), min(w, left + gt_size + margin)
    lq_region = bicubic_downsample(gt[r0:r1, c0:c1], scale)
    lt, ll = (top - r0) // scale, (left - c0) // scale
    lq = lq_region[lt : lt + lq_size, ll : ll + lq_size]
    # Contiguous copies: OpenCV (flips, colour conversion) rejects strided views.
    return np.ascontiguousarray(gt[top : top + gt_size, left : left + gt_size]), np.ascontiguousarray(lq)


def to_tensor(img: np.ndarray, bgr: bool = False) -> torch.Tensor:
    """``(H, W, 3)`` uint8/uint16 RGB (or BGR, reordered here) array -> float32 RGB ``(3, H, W)`` in [0, 1]."""
    chw = img.transpose(2, 0, 1)
    if bgr:
        chw = chw[::-1]
    return torch.from_numpy(np.ascontiguousarray(to_float32(chw)))
