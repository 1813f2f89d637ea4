"""``MultiRootPairedDataset``: paired x4 training patches from one or several roots (DIV2K + LSDIR).

BasicSR YAML options (lists give one entry per root; a scalar applies to every root)::

    type: MultiRootPairedDataset
    dataroot_gt: [datasets/DIV2K/DIV2K_train_HR_sub, datasets/LSDIR/HR_sub]
    dataroot_lq: [datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub, datasets/LSDIR/X4_sub]  # null: LR on the fly
    meta_info_file: ~            # optional, str or list
    enlarge_ratio: [1, 1]        # repeat each root's pairs per epoch
    max_images: [~, 10000]       # optional subset: the first N source images of a root
    filename_tmpl: ~             # BasicSR's LR template; default: automatic (0001 <-> 0001x4 or 0001)
    io_backend: {type: disk}     # or lmdb (roots are .lmdb folders)
    gt_size: 256
    use_hflip: true
    use_rot: true
    scale: 4
    phase: train                 # any other phase returns whole (modcropped) images
    bad_image: error             # or skip: warn and use another image
    enlarge_small: false         # LR on the fly only: enlarge an HR smaller than gt_size (HAT's ImageNet)

``ImageNetPairedDataset`` is the same dataset under the name and keys of HAT's ImageNet pre-training
files: GT images only (``dataroot_lq`` equal to ``dataroot_gt``, HAT's convention, or absent), the LR
made on the fly by MATLAB bicubic, images smaller than ``gt_size`` enlarged first as HAT does.

Samples: ``{'lq': (3, h, w) float32 [0,1] RGB, 'gt': (3, h*scale, w*scale), 'lq_path', 'gt_path'}``.
"""

from __future__ import annotations

import random
import warnings
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils.data import Dataset

from ehat.data.image_io import ImageReadError
from ehat.data.pairing import DatasetError
from ehat.data.sources import PairSource
from ehat.data.transforms import (
    PairSizeError,
    bicubic_downsample,
    check_patch_fits,
    match_gt_to_lq,
    modcrop,
    random_crop_with_bicubic_lr,
    to_tensor,
)

BAD_IMAGE_POLICIES = ("error", "skip")
MAX_CONSECUTIVE_SKIPS = 50


def per_root(opt: dict, key: str, n: int, default: Any = None) -> list:
    """``opt[key]`` as a list of ``n`` entries (a scalar is repeated; missing or null gives ``default``)."""
    value = opt.get(key)
    if value is None:
        value = default
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise DatasetError(f"option {key} has {len(value)} entries but there are {n} dataset roots")
        return list(value)
    return [value] * n


def bad_image_policy(opt: dict) -> str:
    """The validated ``bad_image`` option (default ``'error'``)."""
    policy = opt.get("bad_image") or "error"
    if policy not in BAD_IMAGE_POLICIES:
        raise DatasetError(f"option bad_image must be one of {BAD_IMAGE_POLICIES}, got {policy!r}")
    return policy


def build_sources(opt: dict) -> list[PairSource]:
    """One :class:`PairSource` per root of a BasicSR dataset option dict (see the module docstring)."""
    gts = opt.get("dataroot_gt")
    lqs = opt.get("dataroot_lq")
    n = len(gts) if isinstance(gts, (list, tuple)) else len(lqs) if isinstance(lqs, (list, tuple)) else 1
    gts, lqs = per_root(opt, "dataroot_gt", n), per_root(opt, "dataroot_lq", n)
    metas = per_root(opt, "meta_info_file", n)
    maxes = per_root(opt, "max_images", n)
    backend = (opt.get("io_backend") or {"type": "disk"}).get("type", "disk")
    missing = "warn" if bad_image_policy(opt) == "skip" else "error"
    return [
        PairSource(gt, lq, backend, int(opt.get("scale") or 4), meta, opt.get("filename_tmpl"), missing, mx)
        for gt, lq, meta, mx in zip(gts, lqs, metas, maxes)
    ]


def enlarge_to(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` (H, W, C) resized (cv2 bilinear, as HAT's ImageNet dataset) so both sides are at least
    ``size``; unchanged when already large enough."""
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    out = cv2.resize(img, (max(w, size), max(h, size)))
    return out if out.ndim == 3 else out[..., None]


@DATASET_REGISTRY.register()
class MultiRootPairedDataset(Dataset):
    """Paired HR/LR training data from several roots; see the module docstring for the options."""

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt.get("scale") or 4)
        self.train = opt.get("phase", "train") == "train"
        self.bad_image = bad_image_policy(opt)
        self.sources = build_sources(opt)
        self.enlarge_small = bool(opt.get("enlarge_small", False))
        if self.train:
            if "gt_size" not in opt:
                raise DatasetError("option gt_size is required when phase is train")
            self.gt_size = int(opt["gt_size"])
            if self.gt_size % self.scale:
                raise DatasetError(
                    f"option gt_size ({self.gt_size}) must be a multiple of scale ({self.scale})"
                )
        for s in self.sources:
            if s.gt_root is None:
                raise DatasetError(
                    f"MultiRootPairedDataset needs dataroot_gt for every root (LR root {s.lq_root})"
                )
        ratios = per_root(opt, "enlarge_ratio", len(self.sources), 1)
        root_ids, pair_ids = [], []
        for i, (src, ratio) in enumerate(zip(self.sources, ratios)):
            ratio = 1 if ratio is None else ratio
            if not isinstance(ratio, int) or ratio < 1:
                raise DatasetError(f"option enlarge_ratio must hold positive integers, got {ratio!r}")
            root_ids.append(np.full(len(src.pairs) * ratio, i, dtype=np.int32))
            pair_ids.append(np.tile(np.arange(len(src.pairs), dtype=np.int64), ratio))
        self._root_ids = np.concatenate(root_ids)
        self._pair_ids = np.concatenate(pair_ids)

    def __len__(self) -> int:
        return len(self._root_ids)

    def __getitem__(self, index: int) -> dict:
        last_error: Optional[Exception] = None
        for _ in range(MAX_CONSECUTIVE_SKIPS):
            try:
                return self._load(int(self._root_ids[index]), int(self._pair_ids[index]))
            except (ImageReadError, PairSizeError) as e:
                if self.bad_image == "error":
                    raise
                warnings.warn(f"bad_image: skip: {e}", stacklevel=2)
                last_error = e
                index = random.randrange(len(self))
        raise DatasetError(
            f"{MAX_CONSECUTIVE_SKIPS} bad images in a row (last: {last_error}); run scripts/verify_dataset.py"
        )

    def _load(self, root_id: int, pair_id: int) -> dict:
        src = self.sources[root_id]
        pair = src.pairs[pair_id]
        gt_path = src.display_path(pair.hr_path, "gt")
        gt = src.read(pair.hr_path, "gt", bgr=True)
        if src.lq_on_the_fly:
            lq_path = gt_path
            gt = modcrop(gt, self.scale)
            if self.train and self.enlarge_small:
                gt = enlarge_to(gt, self.gt_size)
            if self.train:
                check_patch_fits(
                    (gt.shape[0] // self.scale, gt.shape[1] // self.scale), self.gt_size, self.scale, gt_path
                )
                gt, lq = random_crop_with_bicubic_lr(gt, self.gt_size, self.scale)
            else:
                lq = bicubic_downsample(gt, self.scale)
        else:
            lq_path = src.display_path(pair.lr_path, "lq")
            lq = src.read(pair.lr_path, "lq", bgr=True)
            gt = match_gt_to_lq(gt, lq, self.scale, gt_path, lq_path)
            if self.train:
                check_patch_fits(lq.shape, self.gt_size, self.scale, lq_path)
                gt, lq = paired_random_crop(gt, lq, self.gt_size, self.scale, gt_path)
        if self.train:
            gt, lq = augment([gt, lq], self.opt.get("use_hflip", True), self.opt.get("use_rot", True))
        return {
            "lq": to_tensor(lq, bgr=True),
            "gt": to_tensor(gt, bgr=True),
            "lq_path": lq_path,
            "gt_path": gt_path,
        }

    def root_sizes(self) -> Sequence[int]:
        """Number of pairs per root (before ``enlarge_ratio``)."""
        return [len(s.pairs) for s in self.sources]


@DATASET_REGISTRY.register()
class ImageNetPairedDataset(MultiRootPairedDataset):
    """HAT's ``ImageNetPairedDataset`` keys onto :class:`MultiRootPairedDataset`: the LR is always made
    on the fly from ``dataroot_gt`` (``dataroot_lq`` must be absent or equal to it) and small images
    are enlarged to ``gt_size`` first (``enlarge_small``)."""

    def __init__(self, opt: dict) -> None:
        opt = dict(opt)
        gt, lq = opt.get("dataroot_gt"), opt.get("dataroot_lq")
        if lq is not None and lq != gt:
            raise DatasetError(
                f"ImageNetPairedDataset makes the LR from dataroot_gt; dataroot_lq ({lq}) must be absent or "
                f"equal to dataroot_gt ({gt}): use MultiRootPairedDataset for LR folders"
            )
        opt["dataroot_lq"] = None
        opt.setdefault("enlarge_small", True)
        super().__init__(opt)


__all__ = [
    "ImageNetPairedDataset",
    "MultiRootPairedDataset",
    "enlarge_to",
    "build_sources",
    "per_root",
    "bad_image_policy",
]
