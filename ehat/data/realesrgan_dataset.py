"""``RealESRGANDataset`` under HAT's name and keys: basicsr's dataset (GT crops of 400x400 plus the
blur and sinc kernels of the second-order degradation), the LR made later on the device
(:mod:`ehat.train.realesr`).

HAT's files give the image list as ``meta_info_file`` (basicsr's own key is ``meta_info``; either
works) and may leave it out: then every image of ``dataroot_gt`` is used. ``crop_pad_size`` (ours,
default basicsr's 400) degrades smaller GT crops: less work per iteration on a CPU.

Samples: ``{'gt': (3, c, c) with c = crop_pad_size float32 [0, 1] RGB, 'kernel1', 'kernel2': (21, 21), 'sinc_kernel':
(21, 21), 'gt_path'}``.
"""

from __future__ import annotations

import os

from basicsr.data.realesrgan_dataset import RealESRGANDataset as BasicsrRealESRGANDataset
from basicsr.utils.registry import DATASET_REGISTRY

from ehat.data.pairing import list_images, read_meta_info

BASICSR_CROP = 400
"""basicsr pads or crops every GT to 400x400 before degrading it."""


@DATASET_REGISTRY.register()
class RealESRGANDataset(BasicsrRealESRGANDataset):
    """basicsr's ``RealESRGANDataset`` with HAT's ``meta_info_file`` key and an optional image list."""

    def __init__(self, opt: dict) -> None:
        opt = dict(opt)
        listed = opt.pop("meta_info_file", None) or opt.get("meta_info")
        disk = (opt.get("io_backend") or {}).get("type", "disk") == "disk"
        if disk:
            opt["meta_info"] = os.devnull  # basicsr reads its list from this file; ours is set below
        super().__init__(opt)
        if disk:
            root = opt["dataroot_gt"]
            names = read_meta_info(listed) if listed else list_images(root)
            self.paths = [os.path.join(root, n) for n in names]
        self.crop_pad_size = int(opt.get("crop_pad_size") or BASICSR_CROP)
        if not 0 < self.crop_pad_size <= BASICSR_CROP:
            raise ValueError(f"crop_pad_size must be in 1..{BASICSR_CROP}, got {self.crop_pad_size}")

    def __getitem__(self, index: int) -> dict:
        """basicsr's sample; with ``crop_pad_size`` below 400, its GT is the top-left corner of that size
        (basicsr pads at the bottom/right, so a small image keeps all of its own pixels)."""
        out = super().__getitem__(index)
        c = self.crop_pad_size
        if c < BASICSR_CROP:
            out["gt"] = out["gt"][:, :c, :c].contiguous()
        return out


__all__ = ["RealESRGANDataset"]
