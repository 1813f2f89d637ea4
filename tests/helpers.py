"""Helpers shared by test files, imported as ``from tests.helpers import ...`` (tests/ is a package).

Networks: :func:`perturb` (seeded noise on every parameter). Images: :func:`matlab_bicubic` (the
independent MATLAB-bicubic reference, uint8 in and out). Training: a tiny real-photo data set
(:func:`make_data`), a tiny valid option dict (:func:`tiny_options`) and checks on final weights.
Real-world SR: a working folder with a random VGG19 file (:func:`make_real_data`) and HAT's Real-HAT
training keys on a tiny HAT (:func:`real_options`).
Fixtures shared by many files live in ``tests/conftest.py``.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
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


# ------------------------------------------------------------------------------------ real-world SR
KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
DEGRADATION = {
    "resize_prob": [0.2, 0.7, 0.1],
    "resize_range": [0.15, 1.5],
    "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30],
    "poisson_scale_range": [0.05, 3],
    "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95],
    "second_blur_prob": 0.8,
    "resize_prob2": [0.3, 0.4, 0.3],
    "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5,
    "noise_range2": [1, 25],
    "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4,
    "jpeg_range2": [30, 95],
}
BLUR = {
    "blur_kernel_size": 21,
    "kernel_list": KERNELS,
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4],
    "betap_range": [1, 2],
    "blur_kernel_size2": 21,
    "kernel_list2": KERNELS,
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5],
    "betag_range2": [0.5, 4],
    "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
}


def make_real_data(root: Path) -> Path:
    """Write a real-world SR working folder under ``root`` and return ``root``.

    GT photos (``DFO/HR``), HAT's meta-info file, a validation pair set and a random VGG19 file at
    basicsr's ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (relative: training must run with
    ``root`` as the current folder; features random, classifier a zero-stride view so the file stays
    ~80 MB). Nothing is downloaded.
    """
    import torchvision
    from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH

    gt, _ = write_pairs(root / "DFO", [("astronaut", 30, 180, 64, 64), ("coffee", 100, 200, 64, 64)])
    (root / "meta_info_DFOsub_GT.txt").write_text("0000.png\n0001.png\n")
    write_pairs(root / "val", [("astronaut", 250, 250, 48, 48)])
    g = torch.Generator().manual_seed(0)
    sd = {
        k: torch.randn(v.shape, generator=g) * 0.05
        if k.startswith("features")
        else torch.zeros(1).expand(v.shape)
        for k, v in torchvision.models.vgg19().state_dict().items()
    }
    vgg = root / VGG_PRETRAIN_PATH
    vgg.parent.mkdir(parents=True)
    torch.save(sd, vgg)
    return root


def real_options(root: Path, gan: bool, total_iter: int = 2) -> dict:
    """HAT's train_Real_HAT_SRx4_mse_model.yml / train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml keys;
    tiny HAT, 32x32 patches, queue of 4, crop_pad_size 64 (ours; basicsr's 400 otherwise)."""
    opt = {
        "name": "train_Real_HAT_GAN_SRx4_finetune_from_mse_model" if gan else "train_Real_HAT_mse_model",
        "model_type": "RealHATGANModel" if gan else "RealHATMSEModel",
        "scale": 4,
        "num_gpu": "auto",
        "manual_seed": 0,
        **({"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False} if gan else {"gt_usm": True}),
        **DEGRADATION,
        "gt_size": 32,
        "queue_size": 4,
        "datasets": {
            "train": {
                "name": "DF2K+OST",
                "type": "RealESRGANDataset",
                "dataroot_gt": str(root / "DFO" / "HR"),
                "meta_info_file": str(root / "meta_info_DFOsub_GT.txt"),
                "io_backend": {"type": "disk"},
                **BLUR,
                "crop_pad_size": 64,
                "gt_size": 32,
                "use_hflip": True,
                "use_rot": False,
                "use_shuffle": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 2,
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
            }
        },
        "network_g": {
            "type": "HAT",
            "upscale": 4,
            "in_chans": 3,
            "img_size": 64,
            "window_size": 4,
            "compress_ratio": 3,
            "squeeze_factor": 30,
            "conv_scale": 0.01,
            "overlap_ratio": 0.5,
            "img_range": 1.0,
            "depths": [1],
            "embed_dim": 30,
            "num_heads": [2],
            "mlp_ratio": 2,
            "upsampler": "pixelshuffle",
            "resi_connection": "1conv",
        },  # fmt: skip
        "path": {
            "pretrain_network_g": None,
            "param_key_g": "params_ema",
            "strict_load_g": True,
            "resume_state": None,
        },
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "optim_d": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [1000000], "gamma": 0.5},
            "total_iter": total_iter,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {
            "print_freq": 1,
            "save_checkpoint_freq": 10000,
            "use_tb_logger": True,
            "wandb": {"project": None, "resume_id": None},
        },  # fmt: skip
        "dist_params": {"backend": "nccl", "port": 29500},
    }
    if gan:
        opt["network_d"] = {
            "type": "UNetDiscriminatorSN",
            "num_in_ch": 3,
            "num_feat": 8,
            "skip_connection": True,
        }
        opt["train"].update(
            perceptual_opt={
                "type": "PerceptualLoss",
                "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1},
                "vgg_type": "vgg19",
                "use_input_norm": True,
                "perceptual_weight": 1.0,
                "style_weight": 0,
                "range_norm": False,
                "criterion": "l1",
            },  # fmt: skip
            gan_opt={
                "type": "GANLoss",
                "gan_type": "vanilla",
                "real_label_val": 1.0,
                "fake_label_val": 0.0,
                "loss_weight": 0.1,
            },  # fmt: skip
            net_d_iters=1,
            net_d_init_iters=0,
        )
    return opt  # the MSE file keeps HAT's unused train.optim_d, as the official one does


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


# --------------------------------------------------------------------------- challenge-layout sets


def make_challenge_set(
    root: Path,
    photo: np.ndarray,
    names_sizes: list[tuple[str, tuple[int, int]]],
    prefix: str = "DIV2K_LSDIR_valid",
) -> tuple[Path, Path]:
    """``<root>/<prefix>_HR/<name>.png`` crops of ``photo`` (h, w) and their MATLAB-bicubic x4 LR
    ``<prefix>_LR/<name>x4.png``; returns (HR folder, LR folder)."""
    from ehat.data.image_io import write_image

    hr_dir, lr_dir = root / f"{prefix}_HR", root / f"{prefix}_LR"
    for i, (name, (h, w)) in enumerate(names_sizes):
        hr = np.ascontiguousarray(photo[40 * i : 40 * i + h, 30 * i : 30 * i + w])
        write_image(hr_dir / f"{name}.png", hr)
        write_image(lr_dir / f"{name}x4.png", matlab_bicubic(hr[: h - h % 4, : w - w % 4], 1 / 4))
    return hr_dir, lr_dir


# --------------------------------------------------------------------------- isolated processes

SUBMISSION_HIDDEN = ("ehat", "basicsr", "timm")
"""Packages a submission's model file must run without."""


def isolated_site(tmp_path: Path) -> Path:
    """A site folder of links to every installed package except :data:`SUBMISSION_HIDDEN` (and .pth hooks)."""
    site = Path(sysconfig.get_paths()["purelib"])
    out = tmp_path / "site"
    out.mkdir()
    for entry in site.iterdir():
        low = entry.name.lower()
        if low.endswith(".pth") or any(low.startswith(h) or f"_{h}" in low for h in SUBMISSION_HIDDEN):
            continue
        (out / entry.name).symlink_to(entry)
    return out


def run_isolated_python(tmp_path: Path, first_path: Path, body: str, cwd: Path) -> str:
    """Run ``body`` in ``python -I -S`` whose sys.path is ``first_path``, the standard library and an
    isolated site (:func:`isolated_site`); the child first proves ehat/basicsr/timm are not importable.
    Returns its stdout; a failure is an assertion with its stderr."""
    base = Path(sys.base_prefix).resolve()
    stdlib = [p for p in sys.path if p and "-packages" not in p and Path(p).resolve().is_relative_to(base)]
    preamble = (
        "import importlib, sys\n"
        f"sys.path[:] = [{str(first_path)!r}, *{stdlib!r}, {str(isolated_site(tmp_path))!r}]\n"
        f"for name in {SUBMISSION_HIDDEN!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    raise SystemExit(f'{name} is importable in the isolated process')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", preamble + body],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def run_submission_model(
    tmp_path: Path, package: Path, cls: str, model_file: str, weights: Path, x: torch.Tensor
) -> torch.Tensor:
    """``models/<model_file>.py``'s ``cls`` of a submission ``package``, strictly loaded from ``weights``,
    run on ``x`` in an isolated process (:func:`run_isolated_python`)."""
    inp, outp = tmp_path / "x.pt", tmp_path / "y.pt"
    torch.save(x, inp)
    body = (
        "import torch\n"
        f"module = importlib.import_module({model_file!r})\n"
        f"model = getattr(module, {cls!r})().eval()\n"
        f"model.load_state_dict(torch.load({str(weights)!r}, weights_only=True), strict=True)\n"
        "with torch.no_grad():\n"
        f"    torch.save(model(torch.load({str(inp)!r}, weights_only=True)), {str(outp)!r})\n"
        "print('loaded from', module.__file__)\n"
    )
    out = run_isolated_python(tmp_path, package / "models", body, cwd=tmp_path)
    assert str(package / "models") in out
    return torch.load(outp, weights_only=True)


# --------------------------------------------------------------------------- DDP


def run_two_ranks(tmp_path: Path, script: str, options: dict) -> tuple[dict, dict]:
    """Run ``script`` (argv: option file, output folder) in two gloo processes under torchrun on
    ``options``; return what each rank saved as ``<tmp_path>/rank<r>.pt``."""
    config = tmp_path / "ddp.yml"
    config.write_text(yaml.safe_dump(options))
    path = tmp_path / "rank.py"
    path.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, str(path), str(config), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    return r0, r1
