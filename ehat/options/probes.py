"""Option rules that need more than the file's values, checked at load time all the same.

The network a ``network_g`` names is built once on PyTorch's ``meta`` device (no memory, no weights:
only its constructor runs), so a constructor refusing its arguments and a ``train.new_param_keys``
matching no parameter are option errors before any data is read; a GAN run's
``path.resume_state`` must hold a discriminator; NIQE needs validation outputs of two 96x96 blocks; ``dist`` must agree with train.py's ``--launcher``,
and a single process must find its device.
Before, the trainer raised these after building everything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ehat.archs import build_network
from ehat.data.image_io import read_image_size
from ehat.data.pairing import list_images
from ehat.errors import EhatError
from ehat.options.common import options_device
from ehat.options.schema import OptionsError

__all__ = [
    "DEFAULT_NEW_PARAM_KEYS",
    "NIQE_BLOCK",
    "check_launcher",
    "check_niqe_inputs",
    "check_new_param_keys",
    "check_resume_state",
    "meta_network",
]

DEFAULT_NEW_PARAM_KEYS = ("branch_weights", "dual_attention")
"""Parameter-name fragments of EHAT's new parameters (BSA, DANet): ``train.new_param_keys``'s default."""
LAUNCHERS = ("none", "pytorch", "slurm")
NIQE_BLOCK = 96
"""basicsr's calculate_niqe fits 96x96 blocks: with fewer than two it crashes (no covariance)."""


def meta_network(spec: Mapping[str, Any], key: str = "network_g") -> nn.Module:
    """``spec`` (a checked ``network_<x>`` mapping) built on the ``meta`` device: its constructor runs,
    no memory is filled. A constructor refusing the values (``ValueError``) is an OptionsError at ``key``;
    so is any other exception of a constructor given values it does not annotate (basicsr's archs:
    ``num_feat: true`` fails inside ``torch.empty``), with its type named."""
    try:
        with torch.device("meta"):
            return build_network(dict(spec))
    except ValueError as exc:  # the options checked the argument names; a constructor refused their values
        raise OptionsError(key, f"cannot build the network: {exc}") from exc
    except EhatError:  # the archs' own errors name the key already
        raise
    except Exception as exc:  # noqa: BLE001  (the chained traceback keeps the constructor's frame)
        raise OptionsError(
            key, f"cannot build the network with these arguments ({type(exc).__name__}: {exc})"
        ) from exc


def _parameter_names(net: nn.Module) -> Iterator[str]:
    return (name for name, p in net.named_parameters() if p.requires_grad)


def check_new_param_keys(net: nn.Module, keys: tuple[str, ...] | list[str] | None, lr: float | None) -> None:
    """With ``train.new_param_lr``, some parameter name of ``net`` must contain a ``train.new_param_keys``
    fragment (default :data:`DEFAULT_NEW_PARAM_KEYS`), else nothing would get that learning rate."""
    if lr is None:
        return
    keys = tuple(keys or DEFAULT_NEW_PARAM_KEYS)
    if not any(k in name for name in _parameter_names(net) for k in keys):
        raise OptionsError(
            "train.new_param_keys",
            f"no parameter name contains any of {list(keys)}: nothing gets new_param_lr",
        )


def check_resume_state(path: str | None, needs_discriminator: bool) -> None:
    """A GAN run's ``path.resume_state`` must hold a discriminator (``net_d``). Only the keys are read
    (the file is memory-mapped; ``weights_only=True``)."""
    if path is None or not needs_discriminator:
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # not a zip file: mmap needs torch.save's default format; read it whole
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "net_d" not in state:
        raise OptionsError(
            "path.resume_state",
            "holds no discriminator (written by a run without network_d): start a new run",
        )


def check_launcher(dist: bool | None, num_gpu: int | str, launcher: str | None) -> None:
    """``dist`` (when given) must agree with train.py's ``--launcher``; a single process
    (``--launcher none``) must find the device ``num_gpu`` names. ``launcher`` None: not known here."""
    if launcher is None:
        return
    if launcher == "none":
        options_device(num_gpu)
    if dist is not None and dist != (launcher != "none"):
        raise OptionsError(
            "dist",
            f"is {str(dist).lower()} but train.py runs with --launcher {launcher}: remove the key "
            "(the launcher decides) or start with torchrun ... --launcher pytorch",
        )


def check_niqe_inputs(opt: Any) -> None:
    """Every ``val.metrics`` entry of type ``calculate_niqe`` needs each validation output (LR x scale,
    or the HR when the LR is made on the fly) to hold two 96x96 blocks after its ``crop_border``. The
    sizes come from the image headers of the disk validation folders (``opt``: training options)."""
    niqe = {
        k: m for k, m in ((opt.val.metrics or {}) if opt.val else {}).items() if m.type == "calculate_niqe"
    }
    if not niqe:
        return
    for ds in opt.val_sets.values():
        lr = ds.dataroot_lq is not None
        roots = ds.dataroot_lq if lr else ds.dataroot_gt
        if ds.io_backend.type != "disk" or roots is None:
            continue
        for root in roots if isinstance(roots, list) else [roots]:
            for rel in list_images(root):
                h, w = read_image_size(f"{root}/{rel}")
                h, w = (h * opt.scale, w * opt.scale) if lr else (h, w)
                for name, m in niqe.items():
                    crop = int(m.args.get("crop_border", 0))
                    hc, wc = h - 2 * crop, w - 2 * crop
                    if max(hc, 0) // NIQE_BLOCK * (max(wc, 0) // NIQE_BLOCK) < 2:
                        raise OptionsError(
                            f"val.metrics.{name}",
                            f"NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks of output pixels, but an "
                            f"output is {wc}x{hc} after crop_border: validate on larger images or remove the metric",
                        )
