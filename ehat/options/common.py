"""What train.py's and test.py's options share: the model types, where the weights come from, and
the device a ``num_gpu`` / ``device`` pair names."""

from __future__ import annotations

import dataclasses

import torch

from ehat.device import DeviceError, resolve_device
from ehat.options.converters import as_bool, as_str
from ehat.options.distill import DISTILL_MODEL_TYPES
from ehat.options.losses import GAN_MODEL_TYPES
from ehat.options.schema import OptionsError, option

__all__ = [
    "GAN_MODEL_TYPES",
    "MODEL_TYPES",
    "REAL_MODEL_TYPES",
    "WeightsPathOptions",
    "options_device",
]

REAL_MODEL_TYPES = ("RealHATMSEModel", "RealEHATMSEModel", *GAN_MODEL_TYPES)
"""Real-world SR: LR made on the fly by second-order degradations (``ehat.train.realesr``)."""
MODEL_TYPES = ("EHATModel", "SRModel", "HATModel", *REAL_MODEL_TYPES, *DISTILL_MODEL_TYPES)
"""BasicSR's ``model_type`` values EHAT runs (EHATModel, SRModel and HATModel run the same loop)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightsPathOptions:
    """Where the network's weights come from (shared by train and test options)."""

    pretrain_network_g: str | None = option(
        as_str, None, nullable=True, doc="checkpoint to start from (BasicSR, HAT or EHAT layout)"
    )
    param_key_g: str = option(
        as_str, "auto", doc="entry of the checkpoint to load: params_ema, params, or auto (params_ema first)"
    )
    strict_load_g: bool = option(
        as_bool,
        True,
        doc="true: every key must match; false: load every key whose shape fits (fine-tuning across scales) "
        "and log every key left at its initial value, unexpected or of another shape",
    )


def options_device(num_gpu: int | str, device: str = "auto") -> torch.device:
    """The torch device for ``num_gpu`` (0 = CPU, auto, N) and ``device`` (test options), through
    :func:`ehat.device.resolve_device`; a device this machine lacks is an OptionsError."""
    if num_gpu == 0:
        choice, key = "cpu", "num_gpu"
    elif device != "auto":
        choice, key = device, "device"
    else:
        choice, key = ("auto" if num_gpu == "auto" else "cuda"), "num_gpu"
    try:
        return resolve_device(choice)
    except DeviceError as exc:
        value = num_gpu if key == "num_gpu" else device
        raise OptionsError(key, f"is {value!r}: {exc}; set num_gpu: 0 to run on the CPU") from None
