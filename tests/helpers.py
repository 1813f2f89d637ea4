"""Helpers shared by test files, imported as ``from tests.helpers import ...`` (tests/ is a package).

Networks: :func:`perturb` (seeded noise on every parameter). Images: :func:`matlab_bicubic` (the
independent MATLAB-bicubic reference, uint8 in and out). Training: a tiny real-photo data set
(:func:`make_data`), a tiny valid option dict (:func:`tiny_options`) and checks on final weights.
Fixtures shared by many files live in ``tests/conftest.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data as skdata

import ehat  # noqa: F401  (before basicsr: torchvision alias)

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the folder holding ehat/, scripts/, options/ and tests/)."""


# ------------------------------------------------------------------------------------------ networks
def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Add N(0, 0.05^2) noise (a ``torch.Generator`` seeded ``seed``) to every parameter, in place.

    So no pathway sits at a trivial value (identity-initialised BSA weights, zero gammas). Returns the
    same model, its train/eval mode unchanged.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


TINY_HAT = dict(
    type="HAT", upscale=4, img_size=16, window_size=8, squeeze_factor=10,
    depths=[2, 2], embed_dim=30, num_heads=[3, 3], mlp_ratio=2,
)  # fmt: skip
"""A two-group HAT small enough for gradient checks on CPU (head dim 10)."""
TINY_EHAT = dict(TINY_HAT, type="EHAT", bsa=True, dual_attention="body")
"""TINY_HAT plus branch weights and dual attention on the body."""


def tiny_network(cfg: dict, seed: int = 0, **changes: object) -> torch.nn.Module:
    """``build_network({**cfg, **changes})`` seeded, then :func:`perturb` ed (train mode as built)."""
    from ehat.archs import build_network

    torch.manual_seed(seed)
    return perturb(build_network({**cfg, **changes}), seed)


# ------------------------------------------------------------------------------------------ images
def matlab_bicubic(img: np.ndarray, factor: float) -> np.ndarray:
    """basicsr's MATLAB ``imresize`` (float64) of an HxWxC uint8 image by ``factor``, rounded back to uint8."""
    from basicsr.utils.matlab_functions import imresize

    out = imresize(img.astype(np.float64) / 255.0, factor)
    return np.round(np.clip(out, 0, 1) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------------------------ training
def bicubic_lr(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """MATLAB-style bicubic x1/scale of an HxWx3 uint8 image (basicsr's imresize), rounded to uint8."""
    return matlab_bicubic(hr, 1 / scale)


def named_photo(name: str) -> np.ndarray:
    """scikit-image's photo ``name`` as HxWx3 uint8 RGB (grey photos repeated to 3 channels)."""
    img = getattr(skdata, name)()
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def write_pairs(root: Path, crops: list[tuple[str, int, int, int, int]], scale: int = 4) -> tuple[Path, Path]:
    """Write HR crops (photo, top, left, h, w) and their bicubic LR as ``root/HR/<i>.png``, ``root/LR/<i>.png``."""
    hr_dir, lr_dir = root / "HR", root / "LR"
    hr_dir.mkdir(parents=True, exist_ok=True)
    lr_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, top, left, h, w) in enumerate(crops):
        hr = np.ascontiguousarray(named_photo(name)[top : top + h, left : left + w])
        assert hr.shape[:2] == (h, w), (name, hr.shape)
        cv2.imwrite(str(hr_dir / f"{i:04d}.png"), hr[..., ::-1])
        cv2.imwrite(str(lr_dir / f"{i:04d}.png"), bicubic_lr(hr, scale)[..., ::-1])
    return hr_dir, lr_dir


def make_data(root: Path) -> dict[str, tuple[Path, Path]]:
    """A 4-image training set (64x64 HR crops of real photos) and a 2-image validation set (held-out crops)."""
    train = write_pairs(
        root / "train",
        [
            ("astronaut", 30, 180, 64, 64),
            ("coffee", 100, 200, 64, 64),
            ("chelsea", 60, 150, 64, 64),
            ("rocket", 150, 100, 64, 64),
        ],
    )
    val = write_pairs(root / "val", [("astronaut", 250, 250, 48, 40), ("coffee", 200, 380, 40, 48)])
    return {"train": train, "val": val}


def tiny_options(root: Path, data: dict[str, tuple[Path, Path]], **changes: object) -> dict:
    """A valid option dict: basicsr's SRVGGNetCompact (8 features, 2 convs) on the tiny photo set, CPU.

    ``changes`` maps dotted keys to values (``{"train.total_iter": 6}``); a value None deletes the key.
    """
    opt = {
        "name": "tiny",
        "model_type": "EHATModel",
        "scale": 4,
        "num_gpu": 0,
        "manual_seed": 7,
        "datasets": {
            "train": {
                "name": "photos",
                "type": "PairedImageDataset",
                "dataroot_gt": str(data["train"][0]),
                "dataroot_lq": str(data["train"][1]),
                "io_backend": {"type": "disk"},
                "gt_size": 32,
                "use_hflip": True,
                "use_rot": True,
                "use_shuffle": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 2,
                "dataset_enlarge_ratio": 2,
            },
            "val": {
                "name": "held_out",
                "type": "PairedImageDataset",
                "dataroot_gt": str(data["val"][0]),
                "dataroot_lq": str(data["val"][1]),
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": {
            "type": "SRVGGNetCompact",
            "num_feat": 8,
            "num_conv": 2,
            "upscale": 4,
            "act_type": "relu",
        },
        "path": {"experiments_root": str(root / "exp")},
        "train": {
            "ema_decay": 0.9,
            "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [4], "gamma": 0.5},
            "total_iter": 6,
            "warmup_iter": 2,
            "grad_clip": 1.0,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "val": {"val_freq": 1000, "pbar": False, "tb_images": 0},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 1000, "keep_last": 3},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = opt
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return opt


def final_weights(root: Path) -> dict[str, torch.Tensor]:
    """params of ``models/net_g_latest.pth`` under an experiment root."""
    return torch.load(root / "models" / "net_g_latest.pth", map_location="cpu", weights_only=True)["params"]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same keys and bit-identical tensors; a failure names the key and the largest difference."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), (
            f"{k} differs (max abs diff {(a[k].float() - b[k].float()).abs().max()})"
        )
