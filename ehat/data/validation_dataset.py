"""``PairedValidationDataset``: whole images of any size, with names for saving results.

Options (BasicSR YAML)::

    type: PairedValidationDataset
    dataroot_gt: datasets/DIV2K_LSDIR_valid_HR    # null for LR-only sets (test images)
    dataroot_lq: datasets/DIV2K_LSDIR_valid_LR    # null: bicubic LR made from the HR
    io_backend: {type: disk}                      # or lmdb
    scale: 4
    filename_tmpl: ~                              # default: automatic (0901 <-> 0901x4)
    bad_image: error                              # skip: drop unpaired images (with a warning)

Samples: ``{'lq': (3, h, w) float32 [0,1] RGB, 'lq_path', 'name'}`` plus ``'gt': (3, h*scale, w*scale)``
(the HR modcropped to ``scale`` x LR) and ``'gt_path'`` when there is an HR. ``name`` is the pairing name
(``0901`` for ``0901x4.png``; ``/``-separated for images in sub-folders). An image that fails to decode
always raises here (a validation set must not shrink silently); check a set once with
``scripts/verify_dataset.py``.
"""

from __future__ import annotations

from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils.data import Dataset

from ehat.data.paired_dataset import bad_image_policy, build_sources
from ehat.data.pairing import DatasetError
from ehat.data.transforms import bicubic_downsample, match_gt_to_lq, modcrop, to_tensor


@DATASET_REGISTRY.register()
class PairedValidationDataset(Dataset):
    """Whole-image HR/LR (or LR-only) pairs of one root; see the module docstring for the options."""

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt.get("scale") or 4)
        bad_image_policy(opt)
        for key in ("dataroot_gt", "dataroot_lq"):
            if isinstance(opt.get(key), (list, tuple)):
                raise DatasetError(f"option {key} of PairedValidationDataset takes one folder, not a list")
        (self.source,) = build_sources(opt)
        self.pairs = self.source.pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        src, pair = self.source, self.pairs[index]
        sample: dict = {"name": pair.name}
        if pair.hr_path is None:
            lq = src.read(pair.lr_path, "lq")
        else:
            gt_path = src.display_path(pair.hr_path, "gt")
            gt = src.read(pair.hr_path, "gt")
            if src.lq_on_the_fly:
                gt = modcrop(gt, self.scale)
                lq = bicubic_downsample(gt, self.scale)
                sample["lq_path"] = gt_path
            else:
                lq_path = src.display_path(pair.lr_path, "lq")
                lq = src.read(pair.lr_path, "lq")
                gt = match_gt_to_lq(gt, lq, self.scale, gt_path, lq_path)
            sample["gt"] = to_tensor(gt)
            sample["gt_path"] = gt_path
        sample.setdefault("lq_path", src.display_path(pair.lr_path, "lq"))
        sample["lq"] = to_tensor(lq)
        return sample
