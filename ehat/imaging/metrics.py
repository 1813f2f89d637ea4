"""Image-quality metrics on uint8 RGB images: the challenge's PSNR and BasicSR's PSNR-Y / SSIM-Y.

All numbers come from basicsr's ``calculate_psnr`` / ``calculate_ssim`` (which expect BGR order
for the Y conversion, so RGB inputs are flipped first). Conventions:

- ``psnr``: RGB, ``crop_border`` = scale (4), HR modcropped to the scale -- the NTIRE 2024 ESR
  challenge's number (its Y-channel lines are commented out).
- ``ssim``: RGB SSIM (per-channel mean), same crop -- the challenge's ``--ssim``.
- ``psnr_y`` / ``ssim_y``: BT.601 Y in [16, 235] computed from the float RGB, same crop -- the
  BasicSR / paper convention (RLFN, HAT tables).
"""

from __future__ import annotations

import numpy as np
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

from ehat.data.transforms import modcrop


def as_rgb_uint8(img: np.ndarray, what: str = "image") -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) uint8 -> (H, W, 3) uint8 (grayscale is repeated)."""
    if img.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"{what} must be (H, W), (H, W, 1) or (H, W, 3), got shape {img.shape}")
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def image_metrics(
    sr_uint8: np.ndarray,
    hr_uint8: np.ndarray,
    scale: int = 4,
    ssim: bool = False,
    crop_border: int | None = None,
) -> dict[str, float]:
    """PSNR (RGB), PSNR-Y, SSIM-Y and, with ``ssim``, RGB SSIM of an SR image against its HR.

    Args:
        sr_uint8: (h*scale, w*scale[, 3]) uint8 RGB network output.
        hr_uint8: (H, W[, 3]) uint8 RGB ground truth; modcropped to ``scale`` here.
        scale: the SR factor; also the border cropped unless ``crop_border`` is given.
    Returns:
        {'psnr', 'psnr_y', 'ssim_y'} (+ 'ssim') in dB / [0, 1].
    """
    sr = as_rgb_uint8(sr_uint8, "SR image")
    hr = modcrop(as_rgb_uint8(hr_uint8, "HR image"), scale)
    if sr.shape != hr.shape:
        raise ValueError(
            f"SR shape {sr.shape[:2]} does not match the HR shape {hr.shape[:2]} after modcrop to {scale}: "
            f"is the LR really the x{scale} downscale of this HR?"
        )
    border = scale if crop_border is None else crop_border
    sr_bgr, hr_bgr = sr[..., ::-1], hr[..., ::-1]
    out = {
        "psnr": float(calculate_psnr(sr, hr, border)),
        "psnr_y": float(calculate_psnr(sr_bgr, hr_bgr, border, test_y_channel=True)),
        "ssim_y": float(calculate_ssim(sr_bgr, hr_bgr, border, test_y_channel=True)),
    }
    if ssim:
        out["ssim"] = float(calculate_ssim(sr, hr, border))
    return out
