"""Real-world SR's keys: the second-order degradation and its targets, grouped in one place.

HAT's and Real-ESRGAN's option files give them at the top level (``resize_prob``, ``noise_range2``,
``gt_usm``...), so :class:`RealWorldOptions` is a base of
:class:`~ehat.options.train.TrainingOptions` and keeps them there; :func:`check_real_world` is their
cross-key rule. The dataset side (blur kernels, GT crops) is :data:`REAL_ESRGAN_EXTRA`, the keys of
``type: RealESRGANDataset``. Both stages of the degradation take the same keys (the second one's
with a ``2`` suffix).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ehat.options.common import GAN_MODEL_TYPES, REAL_MODEL_TYPES
from ehat.options.converters import (
    as_bool,
    as_int,
    as_str,
    kernel_list,
    list_of,
    probabilities3,
    probability,
    range2,
)
from ehat.options.losses import GAN_ONLY, LOSS_SLOTS
from ehat.options.schema import Field, OptionsError, option

__all__ = [
    "DEGRADATION_KEYS",
    "REAL_ESRGAN_EXTRA",
    "REAL_KEYS",
    "RealWorldOptions",
    "check_real_esrgan_dataset",
    "check_real_world",
]

DEGRADATION_KEYS = (
    "resize_prob",
    "resize_range",
    "gaussian_noise_prob",
    "noise_range",
    "poisson_scale_range",
    "gray_noise_prob",
    "jpeg_range",
    "second_blur_prob",
    "resize_prob2",
    "resize_range2",
    "gaussian_noise_prob2",
    "noise_range2",
    "poisson_scale_range2",
    "gray_noise_prob2",
    "jpeg_range2",
)
"""The top-level keys of the second-order degradation (basicsr's RealESRGANModel, HAT's Real-HAT files)."""
USM_KEYS = ("gt_usm", *(slot.usm_key for slot in LOSS_SLOTS if slot.usm_key))
"""The MSE models' ``gt_usm``, then each loss slot's USM switch of the GAN models."""
REAL_KEYS = (*USM_KEYS, *DEGRADATION_KEYS, "gt_size", "queue_size")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RealWorldOptions:
    """The top-level keys of the real-world model types (``Real*MSEModel``, ``Real*GANModel``)."""

    gt_usm: bool | None = option(as_bool, None, nullable=True, doc="MSE model: USM-sharpen the target first")
    l1_gt_usm: bool | None = option(
        as_bool, None, nullable=True, doc="GAN model: pixel loss on the USM target"
    )
    percep_gt_usm: bool | None = option(
        as_bool, None, nullable=True, doc="GAN model: perceptual loss on the USM target"
    )
    gan_gt_usm: bool | None = option(
        as_bool, None, nullable=True, doc="GAN model: the discriminator's real images USM-sharpened"
    )
    high_order_degradation: bool = option(
        as_bool, True, doc="real-world models: degrade on the fly (false: train on datasets' LR as given)"
    )
    resize_prob: list[float] | None = option(
        probabilities3, None, nullable=True, doc="first resize: P(up, down, keep)"
    )
    resize_range: list[float] | None = option(range2, None, nullable=True, doc="first resize: scale range")
    gaussian_noise_prob: float | None = option(
        probability, None, nullable=True, doc="first noise: P(Gaussian)"
    )
    noise_range: list[float] | None = option(range2, None, nullable=True, doc="first Gaussian sigma (of 255)")
    poisson_scale_range: list[float] | None = option(range2, None, nullable=True, doc="first Poisson scale")
    gray_noise_prob: float | None = option(probability, None, nullable=True, doc="first noise: P(gray noise)")
    jpeg_range: list[float] | None = option(range2, None, nullable=True, doc="first JPEG quality range")
    second_blur_prob: float | None = option(probability, None, nullable=True, doc="P(second blur)")
    resize_prob2: list[float] | None = option(
        probabilities3, None, nullable=True, doc="second resize: P(up, down, keep)"
    )
    resize_range2: list[float] | None = option(range2, None, nullable=True, doc="second resize: scale range")
    gaussian_noise_prob2: float | None = option(
        probability, None, nullable=True, doc="second noise: P(Gaussian)"
    )
    noise_range2: list[float] | None = option(range2, None, nullable=True, doc="second Gaussian sigma")
    poisson_scale_range2: list[float] | None = option(range2, None, nullable=True, doc="second Poisson scale")
    gray_noise_prob2: float | None = option(
        probability, None, nullable=True, doc="second noise: P(gray noise)"
    )
    jpeg_range2: list[float] | None = option(range2, None, nullable=True, doc="second JPEG quality range")
    gt_size: int | None = option(
        as_int, None, nullable=True, minimum=1, doc="real-world: HR patch cropped after degrading"
    )
    queue_size: int | None = option(
        as_int, None, nullable=True, minimum=1, doc="real-world: training pair pool (a multiple of the batch)"
    )


def gan_keys(opt: Any) -> dict[str, bool]:
    """Which of the GAN-only keys ``opt`` (training options) gives."""
    t, p = opt.train, opt.path
    return {
        "network_d": opt.network_d is not None,
        **{f"train.{s.key}": getattr(t, s.key) is not None for s in LOSS_SLOTS if s.gan},
        "train.optim_d": t.optim_d is not None,
        "path.pretrain_network_d": p.pretrain_network_d is not None,
    }


def check_real_world(opt: Any) -> None:
    """Real-world keys only with the real-world model types (and all of them there); GAN keys only with
    the GAN types (and all of them there). ``opt``: the training options."""
    real = opt.model_type in REAL_MODEL_TYPES
    gan = opt.model_type in GAN_MODEL_TYPES
    given = [k for k in REAL_KEYS if getattr(opt, k) is not None]
    if not real and given:
        raise OptionsError(
            given[0],
            f"only for the real-world model types ({', '.join(REAL_MODEL_TYPES)}); model_type is "
            f"{opt.model_type}: set model_type or remove the key",
        )
    # HAT's official Real-HAT MSE file carries a train.optim_d it never uses: accepted there (the
    # trainer says it is unused), refused everywhere else.
    gan_given = [k for k, v in gan_keys(opt).items() if v and not (real and k == "train.optim_d")]
    if not gan and gan_given:
        raise OptionsError(gan_given[0], f"{GAN_ONLY}; model_type is {opt.model_type}: remove the key")
    if not real:
        return
    needed = ["gt_size", "queue_size"]
    if opt.high_order_degradation:
        needed += list(DEGRADATION_KEYS)
        needed += list(USM_KEYS[1:]) if gan else ["gt_usm"]
    for k in needed:
        if getattr(opt, k) is None:
            raise OptionsError(k, f"is required by model_type {opt.model_type}")
    if opt.high_order_degradation and opt.train_set.type not in ("RealESRGANDataset",):
        raise OptionsError(
            "datasets.train.type",
            f"{opt.model_type} degrades GT images on the fly: use type RealESRGANDataset (its blur kernels "
            "and GT crops), or set high_order_degradation: false to train on the dataset's LR",
        )
    batch = opt.train_set.batch_size_per_gpu
    if opt.queue_size % batch:
        raise OptionsError(
            "queue_size",
            f"{opt.queue_size} must be a multiple of datasets.train.batch_size_per_gpu ({batch})",
        )
    if opt.gt_size % opt.scale:
        raise OptionsError("gt_size", f"{opt.gt_size} must be a multiple of scale {opt.scale}")
    if gan:
        gan_losses = [(f"train.{s.key}", getattr(opt.train, s.key)) for s in LOSS_SLOTS if s.gan]
        for k, v in (("network_d", opt.network_d), ("train.optim_d", opt.train.optim_d), *gan_losses):
            if v is None:
                raise OptionsError(k, f"is required by model_type {opt.model_type}")
        if opt.train.grad_accum_steps != 1:
            raise OptionsError(
                "train.grad_accum_steps",
                f"must be 1 with {opt.model_type} (generator and discriminator alternate every iteration)",
            )


# ------------------------------------------------------------------------------------ RealESRGANDataset
def _stage_keys(sfx: str, which: str) -> dict[str, Field]:
    """The blur keys of one degradation stage (``sfx``: '' first, '2' second)."""
    return {
        f"blur_kernel_size{sfx}": Field(
            as_int, None, nullable=True, minimum=1, doc=f"{which} blur: kernel size"
        ),
        f"kernel_list{sfx}": Field(kernel_list, None, nullable=True, doc=f"{which} blur: kinds"),
        f"kernel_prob{sfx}": Field(
            list_of(probability), None, nullable=True, doc=f"{which} blur: P(each kind)"
        ),
        f"sinc_prob{sfx}": Field(probability, None, nullable=True, doc=f"{which} blur: P(sinc filter)"),
        f"blur_sigma{sfx}": Field(range2, None, nullable=True, doc=f"{which} blur: sigma range"),
        f"betag_range{sfx}": Field(range2, None, nullable=True, doc=f"{which} blur: generalized beta"),
        f"betap_range{sfx}": Field(range2, None, nullable=True, doc=f"{which} blur: plateau beta"),
    }


REAL_ESRGAN_EXTRA: dict[str, Field] = {
    **_stage_keys("", "first"),
    **_stage_keys("2", "second"),
    "final_sinc_prob": Field(probability, None, nullable=True, doc="P(final sinc filter)"),
    "meta_info": Field(as_str, None, nullable=True, doc="basicsr's name for meta_info_file"),
    "crop_pad_size": Field(
        as_int, None, nullable=True, minimum=1, maximum=400, doc="GT crop degraded per sample (default 400)"
    ),
}
"""RealESRGANDataset's keys (all required but ``meta_info`` and ``crop_pad_size``)."""


def check_real_esrgan_dataset(ds: Any, prefix: str) -> None:
    """A ``type: RealESRGANDataset`` section (``ds``: its DatasetOptions): every blur key given, one
    probability per kernel kind, one of ``meta_info_file`` / ``meta_info``."""
    for k in REAL_ESRGAN_EXTRA:
        if k not in ("meta_info", "crop_pad_size") and ds.extra.get(k) is None:
            raise OptionsError(f"{prefix}.{k}", "is required by RealESRGANDataset")
    for sfx in ("", "2"):
        if len(ds.extra[f"kernel_list{sfx}"]) != len(ds.extra[f"kernel_prob{sfx}"]):
            raise OptionsError(
                f"{prefix}.kernel_prob{sfx}", f"needs one probability per kernel_list{sfx} entry"
            )
    if ds.extra.get("meta_info") is not None and ds.meta_info_file is not None:
        raise OptionsError(
            f"{prefix}.meta_info", "give meta_info_file or meta_info (basicsr's name), not both"
        )
