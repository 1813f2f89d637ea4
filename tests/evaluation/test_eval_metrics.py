"""The challenge's PSNR and BasicSR's PSNR-Y / SSIM-Y, checked against independent formulas."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.signal import convolve2d

from ehat.data.image_io import read_image_uint8
from ehat.data.transforms import modcrop
from ehat.imaging.metrics import image_metrics


# ---- independent implementations of the formulas (NTIRE 2024 ESR utils_image / BasicSR conventions)
def psnr_ref(a: np.ndarray, b: np.ndarray, border: int) -> float:
    a = a[border:-border, border:-border].astype(np.float64)
    b = b[border:-border, border:-border].astype(np.float64)
    mse = np.mean((a - b) ** 2)
    return 20 * math.log10(255.0 / math.sqrt(mse))


def y_ref(rgb_uint8: np.ndarray) -> np.ndarray:
    """BT.601 Y in [16, 235] from float RGB, not rounded."""
    rgb = rgb_uint8.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def ssim_ref_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    k = np.outer(g, g)

    def f(x):
        return convolve2d(x, k, mode="valid")

    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def ssim_ref(a: np.ndarray, b: np.ndarray, border: int) -> float:
    a = a[border:-border, border:-border].astype(np.float64)
    b = b[border:-border, border:-border].astype(np.float64)
    if a.ndim == 2:
        return ssim_ref_channel(a, b)
    return float(np.mean([ssim_ref_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def _bicubic_pair(shared_dir, set_name: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    root = shared_dir / "data" / set_name
    hr = read_image_uint8(root / "HR" / f"{name}.png")
    lr = read_image_uint8(root / "LR_bicubic" / "X4" / f"{name}x4.png")
    sr = cv2.resize(lr, (lr.shape[1] * 4, lr.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    return sr, hr


@pytest.mark.parametrize(("set_name", "name"), [("Set5", "baby"), ("Set5", "butterfly"), ("Set14", "bridge")])
def test_metrics_equal_the_challenge_and_basicsr_formulas_on_real_pairs(shared_dir, set_name, name):
    sr, hr = _bicubic_pair(shared_dir, set_name, name)
    m = image_metrics(sr, hr, scale=4, ssim=True)
    hr_c = modcrop(hr, 4)
    assert m["psnr"] == pytest.approx(psnr_ref(sr, hr_c, 4), abs=1e-9)
    assert m["ssim"] == pytest.approx(ssim_ref(sr, hr_c, 4), abs=1e-6)
    assert m["psnr_y"] == pytest.approx(psnr_ref(y_ref(sr), y_ref(hr_c), 4), abs=1e-4)
    assert m["ssim_y"] == pytest.approx(ssim_ref(y_ref(sr), y_ref(hr_c), 4), abs=1e-5)
    assert 15 < m["psnr"] < 40 and 0 < m["ssim_y"] < 1


def test_grayscale_images_are_scored_as_three_equal_channels(photo):
    gray_hr = cv2.cvtColor(photo[:64, :64], cv2.COLOR_RGB2GRAY)
    gray_sr = np.clip(
        gray_hr.astype(int) + np.random.default_rng(0).integers(-9, 9, gray_hr.shape), 0, 255
    ).astype(np.uint8)
    m = image_metrics(gray_sr, gray_hr)
    assert m["psnr"] == pytest.approx(psnr_ref(gray_sr, gray_hr, 4), abs=1e-9)
    rgb = image_metrics(np.repeat(gray_sr[..., None], 3, 2), np.repeat(gray_hr[..., None], 3, 2))
    assert m == rgb


def test_hr_is_modcropped_before_comparison(photo):
    hr = photo[:67, :70]  # not multiples of 4
    sr = photo[:64, :68].copy()
    sr[10:20, 10:20] = 0
    m = image_metrics(sr, hr)
    assert m["psnr"] == pytest.approx(psnr_ref(sr, hr[:64, :68], 4), abs=1e-9)


def test_size_mismatch_names_both_shapes(photo):
    with pytest.raises(ValueError, match=r"\(60, 60\).*\(64, 64\)"):
        image_metrics(photo[:60, :60], photo[:64, :64])
