"""The files an option file names must exist before any heavy work: dataset folders and lists, the
weights and the training state to start from, and the perceptual loss's VGG weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ehat.options import online
from ehat.options.losses import LOSS_SLOTS
from ehat.options.schema import Component, OptionsError

__all__ = ["VGG_URL", "check_paths", "check_vgg_weights", "vgg_weights_locations"]

VGG_URL = "https://download.pytorch.org/models/{name}"
WEIGHT_KEYS = ("pretrain_network_g", "resume_state", "pretrain_network_d", "pretrain_network_t")
"""``path`` keys naming a file to read (those an options class lacks are skipped)."""
DATASET_PATH_KEYS = ("dataroot_gt", "dataroot_lq", "meta_info_file", "meta_info")


def vgg_weights_locations(vgg_type: str) -> tuple[str, list[Path]]:
    """(URL, files tried in order) of the ImageNet weights basicsr's VGGFeatureExtractor loads for
    ``vgg_type``: basicsr's ``VGG_PRETRAIN_PATH`` (vgg19 only, relative to the current folder), then
    torchvision's download cache (``$TORCH_HOME/hub/checkpoints``)."""
    import torch
    import torchvision.models as tvm

    enum = getattr(tvm, f"{vgg_type.upper()}_Weights", None)
    url = enum.IMAGENET1K_V1.url if enum is not None else VGG_URL.format(name=f"{vgg_type}.pth")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    files = [cached]
    if vgg_type == "vgg19":
        from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH

        files.insert(0, Path(VGG_PRETRAIN_PATH))
    return url, files


def check_vgg_weights(spec: Component, key: str) -> None:
    """The perceptual loss's VGG weights: present at one of :func:`vgg_weights_locations`, or downloadable
    (:func:`ehat.options.online.reachable`); else an OptionsError naming the file, the URL and where to
    put it (before any training starts)."""
    if spec.type != "PerceptualLoss":
        return
    vgg_type = spec.args.get("vgg_type", "vgg19")
    url, files = vgg_weights_locations(vgg_type)
    if any(f.is_file() for f in files) or online.reachable(url):
        return
    where = " or ".join(str(f if f.is_absolute() else Path.cwd() / f) for f in files)
    raise OptionsError(
        f"{key}.vgg_type",
        f"the perceptual loss needs the ImageNet weights of {vgg_type} ({files[-1].name}), which are not on this "
        f"machine and cannot be downloaded now: download {url} elsewhere and put it at {where}",
    )


def check_paths(opt: Any) -> None:
    """Require ``opt``'s dataset folders, meta-info files and the weights / state files to exist
    (``opt``: training or test options)."""
    for phase_key, ds in opt.datasets.items():
        for k in DATASET_PATH_KEYS:
            paths = getattr(ds, k, None) or getattr(ds, "extra", {}).get(k) or []
            for i, p in enumerate(paths if isinstance(paths, list) else [paths]):
                if not os.path.exists(p):
                    where = f"datasets.{phase_key}.{k}" + (f"[{i}]" if isinstance(paths, list) else "")
                    raise OptionsError(
                        where, f"path does not exist: {p} (relative paths start at {os.getcwd()})"
                    )
    train = getattr(opt, "train", None)
    for slot in LOSS_SLOTS if train is not None else ():
        spec = getattr(train, slot.key)
        if spec is not None:
            check_vgg_weights(spec, f"train.{slot.key}")
    for k in WEIGHT_KEYS:
        p = getattr(opt.path, k, None)
        if p is None:
            continue
        if os.path.isdir(p):
            raise OptionsError(
                f"path.{k}", f"{p} is a folder: give the file inside it (e.g. a .pth / .state)"
            )
        if not os.path.isfile(p):
            raise OptionsError(
                f"path.{k}", f"file does not exist: {p} (relative paths start at {os.getcwd()})"
            )
