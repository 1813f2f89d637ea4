"""Precision variants keep the demo model's PSNR: fp32 backends within 0.001 dB, bf16 within 0.05 dB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from basicsr.metrics.psnr_ssim import calculate_psnr

from ehat.checkpoints import load_model
from tests.helpers import REPO_ROOT

DEMO = REPO_ROOT / "model_zoo" / "ehat_tiny_demo_x4.pth"


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grayscale sets (Set14's bridge) become 3 equal planes
    return img[..., ::-1].copy()


def set_psnr(model: torch.nn.Module, root: Path, autocast: torch.dtype | None) -> list[float]:
    """Per-image RGB PSNR (border 4, HR modcropped to the LR x4 size) of ``model`` on one set."""
    values = []
    for lr_path in sorted((root / "LR_bicubic" / "X4").glob("*.png")):
        hr = _read_rgb(root / "HR" / lr_path.name.replace("x4.png", ".png"))
        lr = _read_rgb(lr_path)
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
        with (
            torch.no_grad(),
            torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None),
        ):
            y = model(x).float()
        sr = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        hr = hr[: sr.shape[0], : sr.shape[1]]
        values.append(calculate_psnr(sr, hr, crop_border=4, input_order="HWC"))
    return values


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
def test_precision_variants_keep_the_psnr(shared_dir, set_name):
    root = shared_dir / "data" / set_name
    fp32 = set_psnr(load_model(DEMO, attn_backend="explicit"), root, None)
    sdpa = set_psnr(load_model(DEMO, attn_backend="sdpa"), root, None)
    bf16 = set_psnr(load_model(DEMO), root, torch.bfloat16)
    assert len(fp32) == {"Set5": 5, "Set14": 14}[set_name]
    assert abs(np.mean(sdpa) - np.mean(fp32)) <= 0.001
    assert abs(np.mean(bf16) - np.mean(fp32)) <= 0.05
    assert max(abs(a - b) for a, b in zip(bf16, fp32)) <= 0.1  # no single image pays for the mean
