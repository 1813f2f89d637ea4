"""The typed options of ``train.py`` and ``test.py`` (BasicSR's YAML format), validated once at load.

:func:`load_options` returns a :class:`TrainingOptions`, :func:`load_test_options` a
:class:`TestOptions`: frozen dataclasses read by attribute (``opt.train.total_iter``,
``opt.datasets["train"].gt_size``). Every mistake is an :class:`OptionsError` naming the dotted key
at fault, with the closest valid key of the same section for a typo: unknown keys, wrong types,
out-of-range values, missing dataset folders and pretrained files, arch/optimizer/scheduler/loss/
metric arguments the constructor does not take, BasicSR keys EHAT does not implement.
``network_g`` stays a dict of constructor arguments (the constructor's signature is its schema).
The option reference ``docs/options.md`` is generated from these classes
(``scripts/generate_option_docs.py``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ehat.train.checks import (
    BUILTIN_METRICS,
    Metric,
    check_loss,
    check_metrics,
    check_network,
    check_optimizer,
    check_scheduler,
    lookup,
    registered,
    registry_names,
)
from ehat.train.schema import (
    Component,
    Field,
    OptionsError,
    as_bool,
    as_float,
    as_int,
    as_str,
    build,
    converter,
    int_or_auto,
    list_of,
    mapping,
    option,
    option_fields,
    section,
    str_or_list,
    to_plain,
)

__all__ = [
    "OptionsError",
    "TestOptions",
    "TrainingOptions",
    "apply_force_yml",
    "experiments_root",
    "load_options",
    "load_test_options",
    "options_device",
    "to_plain",
    "validate_options",
    "validate_test_options",
]

MODEL_TYPES = (
    "EHATModel",
    "SRModel",
    "HATModel",
    "RealHATMSEModel",
    "RealEHATMSEModel",
    "RealHATGANModel",
    "RealEHATGANModel",
)
REAL_MODEL_TYPES = ("RealHATMSEModel", "RealEHATMSEModel", "RealHATGANModel", "RealEHATGANModel")
"""Real-world SR: LR made on the fly by second-order degradations (``ehat.train.realesr``)."""
GAN_MODEL_TYPES = ("RealHATGANModel", "RealEHATGANModel")
"""Real-world SR with a discriminator (``network_d``, ``optim_d``, ``gan_opt``)."""
AMP_MODES = ("bf16", "fp16")
_PHASE = re.compile(r"^(train|val|test)(_.+)?$")
LOSS_KEYS = ("pixel_opt", "perceptual_opt")
GAN_ONLY = f"only for the GAN model types ({', '.join(GAN_MODEL_TYPES)})"


def _compile_modes() -> tuple[str, ...]:
    from ehat.acceleration import COMPILE_MODES

    return COMPILE_MODES


@converter("false | 'blocks' | 'full' (true = 'full')", bool, str)
def as_compile_mode(value: Any, key: str) -> str:
    """``train.compile``: YAML booleans kept for old configs (true -> 'full', false -> 'false')."""
    if isinstance(value, bool):
        return "full" if value else "false"
    if isinstance(value, str) and value.lower() in _compile_modes():
        return value.lower()
    raise OptionsError(key, f"expected false, blocks or full (true means full), got {value!r}")


@converter("float in [0, 1]", int, float)
def _prob(value: Any, key: str) -> float:
    p = as_float(value, key)
    if not 0.0 <= p <= 1.0:
        raise OptionsError(key, f"{p} is a probability: expected a number in [0, 1]")
    return p


@converter("[p_up, p_down, p_keep]", list, tuple)
def _probs3(value: Any, key: str) -> list[float]:
    probs = list_of(_prob)(value, key)
    if len(probs) != 3 or sum(probs) <= 0:
        raise OptionsError(
            key, f"expected three probabilities [up, down, keep] with a positive sum, got {value}"
        )
    return probs


@converter("[low, high]", list, tuple)
def _range2(value: Any, key: str) -> list[float]:
    pair = list_of(as_float)(value, key)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise OptionsError(key, f"expected [low, high] with low <= high, got {value}")
    return pair


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
REAL_KEYS = ("gt_usm", "l1_gt_usm", "percep_gt_usm", "gan_gt_usm", *DEGRADATION_KEYS, "gt_size", "queue_size")


@converter("mapping (type + constructor arguments)", dict)
def check_discriminator(value: Any, key: str) -> dict[str, Any]:
    """``network_d``: a registered discriminator (:func:`ehat.train.checks.check_network`, role discriminator)."""
    return check_network(value, key, role="discriminator")


VGG_URL = "https://download.pytorch.org/models/{name}"


def _vgg_downloadable(url: str) -> bool:
    """Whether ``url``'s host answers within 3 s (the perceptual loss would download from it)."""
    import socket
    from urllib.parse import urlparse

    try:
        with socket.create_connection((urlparse(url).hostname, 443), timeout=3):
            return True
    except OSError:
        return False


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
    """The perceptual loss's VGG weights: present at one of :func:`vgg_weights_locations`, or downloadable;
    else an OptionsError naming the file, the URL and where to put it (before any training starts)."""
    if spec.type != "PerceptualLoss":
        return
    vgg_type = spec.args.get("vgg_type", "vgg19")
    url, files = vgg_weights_locations(vgg_type)
    if any(f.is_file() for f in files) or _vgg_downloadable(url):
        return
    where = " or ".join(str(f if f.is_absolute() else Path.cwd() / f) for f in files)
    raise OptionsError(
        f"{key}.vgg_type",
        f"the perceptual loss needs the ImageNet weights of {vgg_type} ({files[-1].name}), which are not on this "
        f"machine and cannot be downloaded now: download {url} elsewhere and put it at {where}",
    )


# ------------------------------------------------------------------------------------ shared
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class IoBackendOptions:
    type: str = option(as_str, "disk", choices=("disk", "lmdb"), doc="lmdb: the roots are .lmdb folders")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetOptions:
    """One ``datasets.<phase>`` section. ``extra`` holds the keys only that dataset type takes;
    :meth:`to_dict` is the dict basicsr's dataset classes are built from."""

    REFUSED: ClassVar[dict[str, str]] = {}

    name: str | None = option(as_str, None, nullable=True, doc="shown in logs; default: the section's key")
    type: str = option(as_str, doc="a dataset registered in basicsr's DATASET_REGISTRY")
    dataroot_gt: str | list[str] | None = option(str_or_list, None, nullable=True, doc="HR folder(s)")
    dataroot_lq: str | list[str] | None = option(str_or_list, None, nullable=True, doc="LR folder(s)")
    meta_info_file: str | list[str] | None = option(
        str_or_list, None, nullable=True, doc="image list(s), one per root"
    )
    filename_tmpl: str | None = option(as_str, None, nullable=True, doc="LR name from HR name, e.g. '{}x4'")
    io_backend: IoBackendOptions = section(IoBackendOptions, doc="how images are read")
    color: str | None = option(
        as_str, None, nullable=True, choices=("y",), doc="basicsr's datasets only: train on the Y channel"
    )
    mean: list[float] | None = option(list_of(as_float), None, nullable=True, doc="basicsr's datasets only")
    std: list[float] | None = option(list_of(as_float), None, nullable=True, doc="basicsr's datasets only")
    bad_image: str | None = option(
        as_str,
        None,
        nullable=True,
        choices=("error", "skip"),
        doc="EHAT's datasets only: stop on an unreadable image (error, default) or skip it",
    )
    scale: int | None = option(
        as_int, None, nullable=True, doc="filled from the top-level scale (a different value is an error)"
    )
    phase: str | None = option(as_str, None, nullable=True, doc="filled from the section's key")
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {name: to_plain(getattr(self, name)) for name in option_fields(type(self))}
        return {**out, **self.extra}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainDatasetOptions(DatasetOptions):
    """``datasets.train``: the common keys plus patch size, augmentation and loader settings."""

    gt_size: int = option(as_int, minimum=1, doc="HR patch size (a multiple of scale)")
    use_hflip: bool = option(as_bool, True, doc="random horizontal flips")
    use_rot: bool = option(as_bool, True, doc="random 90-degree rotations and vertical flips")
    use_shuffle: bool = option(as_bool, True, doc="a new seeded order every epoch")
    num_worker_per_gpu: int = option(as_int, 0, minimum=0, doc="DataLoader workers per process")
    batch_size_per_gpu: int = option(as_int, minimum=1, doc="patches per micro-batch per process")
    dataset_enlarge_ratio: int = option(as_int, 1, minimum=1, doc="repeat the set this many times per epoch")
    prefetch_mode: str | None = option(
        as_str,
        None,
        nullable=True,
        unsupported="the DataLoader's workers prefetch (num_worker_per_gpu, pin_memory); remove the key "
        "or leave it null",
    )
    num_prefetch_queue: int | None = option(
        as_int,
        None,
        nullable=True,
        unsupported="belongs to BasicSR's prefetch_mode: cpu; the DataLoader's workers prefetch instead",
    )
    pin_memory: bool = option(as_bool, False, doc="DataLoader's pin_memory (faster host-to-GPU copies)")
    persistent_workers: bool = option(as_bool, False, doc="keep the workers between epochs")
    check_images: str = option(
        as_str, "header", choices=("header", "decode", "none"), doc="check every image before the first step"
    )


def _int_or_list(value: Any, key: str) -> int | list[int]:
    return list_of(as_int)(value, key) if isinstance(value, (list, tuple)) else as_int(value, key)


def _int_or_nulls(value: Any, key: str) -> int | list[int | None]:
    if isinstance(value, (list, tuple)):
        return [None if x is None else as_int(x, f"{key}[{i}]") for i, x in enumerate(value)]
    return as_int(value, key)


_MULTI_ROOT_EXTRA: dict[str, Field] = {
    "enlarge_ratio": Field(
        converter("int | list[int]", int, float, list, tuple)(_int_or_list),
        None,
        nullable=True,
        doc="per-root repetition (balances DIV2K against LSDIR)",
    ),
    "max_images": Field(
        converter("int | list[int | null]", int, float, list, tuple)(_int_or_nulls),
        None,
        nullable=True,
        doc="use at most this many images per root",
    ),
    "enlarge_small": Field(
        as_bool,
        None,
        nullable=True,
        doc="LR made on the fly: enlarge an HR smaller than gt_size first (default: true for "
        "ImageNetPairedDataset, false otherwise)",
    ),
}
KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def _kernel_list(value: Any, key: str) -> list[str]:
    names = list_of(as_str)(value, key)
    for i, n in enumerate(names):
        if n not in KERNELS:
            raise OptionsError(f"{key}[{i}]", f"unknown blur kernel {n!r}; valid: {', '.join(KERNELS)}")
    return names


def _real_esrgan_extra() -> dict[str, Field]:
    out: dict[str, Field] = {}
    for sfx, which in (("", "first"), ("2", "second")):
        out.update(
            {
                f"blur_kernel_size{sfx}": Field(
                    as_int, None, nullable=True, minimum=1, doc=f"{which} blur: kernel size"
                ),
                f"kernel_list{sfx}": Field(
                    converter("list[str]", list, tuple)(_kernel_list),
                    None,
                    nullable=True,
                    doc=f"{which} blur: kinds",
                ),
                f"kernel_prob{sfx}": Field(
                    list_of(_prob), None, nullable=True, doc=f"{which} blur: P(each kind)"
                ),
                f"sinc_prob{sfx}": Field(_prob, None, nullable=True, doc=f"{which} blur: P(sinc filter)"),
                f"blur_sigma{sfx}": Field(_range2, None, nullable=True, doc=f"{which} blur: sigma range"),
                f"betag_range{sfx}": Field(
                    _range2, None, nullable=True, doc=f"{which} blur: generalized beta"
                ),
                f"betap_range{sfx}": Field(_range2, None, nullable=True, doc=f"{which} blur: plateau beta"),
            }
        )
    out["final_sinc_prob"] = Field(_prob, None, nullable=True, doc="P(final sinc filter)")
    out["meta_info"] = Field(as_str, None, nullable=True, doc="basicsr's name for meta_info_file")
    out["crop_pad_size"] = Field(
        as_int, None, nullable=True, minimum=1, maximum=400, doc="GT crop degraded per sample (default 400)"
    )
    return out


REAL_ESRGAN_EXTRA = _real_esrgan_extra()
"""RealESRGANDataset's keys (all required but ``meta_info``)."""

DATASET_EXTRA: dict[str, dict[str, Field]] = {
    "MultiRootPairedDataset": _MULTI_ROOT_EXTRA,
    "ImageNetPairedDataset": _MULTI_ROOT_EXTRA,
    "RealESRGANDataset": REAL_ESRGAN_EXTRA,
}
"""Keys a dataset type takes beyond the common ones (kept in ``DatasetOptions.extra``)."""

_VIDEO_DATASET = re.compile(r"REDS|Vimeo|Video|DUF")
"""basicsr's video datasets: never suggested for a typo in an image dataset type."""

_BASICSR_ONLY = ("color", "mean", "std")


def _dataset(phase_key: str, value: Any, scale: int, cls: type[DatasetOptions]) -> DatasetOptions:
    """One dataset section: type checked against the registry, keys against ``cls``, filled fields."""
    import basicsr.data  # noqa: F401  (fills DATASET_REGISTRY)
    from basicsr.utils.registry import DATASET_REGISTRY

    prefix = f"datasets.{phase_key}"
    value = mapping(value, prefix)
    if "type" not in value:
        raise OptionsError(f"{prefix}.type", "is required")
    kind = as_str(value["type"], f"{prefix}.type")
    if not registered(DATASET_REGISTRY, kind):
        images = [n for n in registry_names(DATASET_REGISTRY) if not _VIDEO_DATASET.search(n)]
        raise OptionsError(f"{prefix}.type", f"unknown dataset type {kind!r}" + _closest(kind, images))
    ds = build(cls, value, prefix, extra=DATASET_EXTRA.get(kind))
    phase = phase_key.split("_")[0]
    for key, given, filled in (("scale", ds.scale, scale), ("phase", ds.phase, phase)):
        if given is not None and given != filled:
            raise OptionsError(
                f"{prefix}.{key}", f"is {given!r} but is filled with {filled!r}: remove the key"
            )
    ours = lookup(DATASET_REGISTRY, kind).__module__.startswith("ehat.")
    for key in _BASICSR_ONLY if ours else ("bad_image",):
        if getattr(ds, key) is not None:
            owner = f"EHAT's {kind}" if ours else f"basicsr's {kind} (EHAT's datasets take it)"
            raise OptionsError(f"{prefix}.{key}", f"not supported by {owner}: remove the key")
    gt, lq = ds.dataroot_gt, ds.dataroot_lq
    if isinstance(gt, list) and isinstance(lq, list) and len(gt) != len(lq):
        raise OptionsError(f"{prefix}.dataroot_lq", f"has {len(lq)} entries but dataroot_gt has {len(gt)}")
    if kind == "RealESRGANDataset":
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
    if kind == "ImageNetPairedDataset" and lq is not None and lq != gt:
        raise OptionsError(
            f"{prefix}.dataroot_lq",
            f"ImageNetPairedDataset makes the LR from dataroot_gt on the fly: leave dataroot_lq out or equal to "
            f"dataroot_gt ({gt}), or use type MultiRootPairedDataset for an LR folder",
        )
    if isinstance(ds, TrainDatasetOptions) and ds.gt_size % scale:
        raise OptionsError(f"{prefix}.gt_size", f"{ds.gt_size} must be a multiple of scale {scale}")
    return dataclasses.replace(ds, name=ds.name or phase_key, phase=phase, scale=scale)


def _closest(word: str, names: list[str]) -> str:
    from ehat.errors import did_you_mean

    return did_you_mean(word, names) or f"; valid: {', '.join(names[:30])}"


@converter("mapping of section key -> dataset", dict)
def check_datasets(value: Any, key: str, scale: int) -> dict[str, DatasetOptions]:
    """``datasets``: ``train`` (required), ``val`` / ``val_<n>`` (validation), ``test_<n>``."""
    out = {}
    for phase_key, spec in mapping(value, key).items():
        if not _PHASE.match(phase_key):
            raise OptionsError(
                f"{key}.{phase_key}", "dataset keys must be 'train', 'val', 'val_<n>' or 'test_<n>'"
            )
        cls = TrainDatasetOptions if phase_key == "train" else DatasetOptions
        out[phase_key] = _dataset(phase_key, spec, scale, cls)
    if "train" not in out:
        raise OptionsError(f"{key}.train", "is required")
    return out


# ------------------------------------------------------------------------------------ training
@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainPathOptions(WeightsPathOptions):
    pretrain_network_d: str | None = option(
        as_str, None, nullable=True, doc=f"discriminator checkpoint to start from ({GAN_ONLY})"
    )
    param_key_d: str = option(as_str, "auto", doc="entry of pretrain_network_d to load (params, or auto)")
    strict_load_d: bool = option(as_bool, True, doc="as strict_load_g, for the discriminator")

    resume_state: str | None = option(
        as_str, None, nullable=True, doc="training state to resume (see also --auto_resume)"
    )
    experiments_root: str | None = option(
        as_str, None, nullable=True, doc="output folder; default: ./experiments/<name>"
    )
    tb_logger: str | None = option(
        as_str, None, nullable=True, doc="TensorBoard folder; default: <experiments_root>/tb_logger"
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """``train``: the loop, the optimizer, the schedule and the losses."""

    ema_decay: float = option(as_float, 0.0, minimum=0.0, maximum=0.999999, doc="0 disables EMA")
    total_iter: int = option(as_int, minimum=1, doc="iterations to train (1-based, like BasicSR)")
    warmup_iter: int = option(as_int, -1, minimum=-1, doc="linear warm-up over this many iterations")
    amp: str | None = option(
        as_str, None, nullable=True, choices=AMP_MODES, doc="autocast dtype; null = fp32"
    )
    grad_clip: float | None = option(
        as_float, None, nullable=True, minimum=0.0, doc="max global gradient norm"
    )
    grad_accum_steps: int = option(as_int, 1, minimum=1, doc="micro-batches per optimizer step")
    compile: str = option(
        as_compile_mode,
        "false",
        doc="torch.compile: 'blocks' compiles each HAB/OCAB in place, 'full' the whole forward; the "
        "first step (compilation included) is logged apart",
    )
    tf32: bool = option(as_bool, False, doc="let CUDA matmuls and convolutions use TF32 during the run")
    channels_last: bool = option(as_bool, False, doc="network and inputs in channels-last memory format")
    new_param_lr: float | None = option(
        as_float, None, nullable=True, minimum=0.0, doc="learning rate of EHAT's new parameters (BSA, DANet)"
    )
    new_param_keys: list[str] | None = option(
        list_of(as_str),
        None,
        nullable=True,
        doc="parameter-name fragments that get new_param_lr; default: branch_weights, dual_attention",
    )
    on_nonfinite: str = option(
        as_str, "stop", choices=("stop", "skip"), doc="a NaN/inf loss or gradient: stop, or skip the step"
    )
    deterministic: bool = option(as_bool, False, doc="torch deterministic algorithms (slower)")
    optim_g: Component = option(check_optimizer, doc="a torch.optim class and its arguments; lr required")
    scheduler: Component | None = option(
        check_scheduler,
        None,
        nullable=True,
        doc="MultiStepLR / MultiStepRestartLR / CosineAnnealingRestartLR (BasicSR's) and their arguments",
    )
    pixel_opt: Component | None = option(
        check_loss, None, nullable=True, doc="a basicsr loss (L1Loss, MSELoss, CharbonnierLoss...)"
    )
    perceptual_opt: Component | None = option(
        check_loss, None, nullable=True, doc="basicsr's PerceptualLoss and its arguments"
    )
    gan_opt: Component | None = option(
        check_loss, None, nullable=True, doc=f"basicsr's GANLoss and its arguments ({GAN_ONLY})"
    )
    optim_d: Component | None = option(
        check_optimizer, None, nullable=True, doc=f"the discriminator's optimizer ({GAN_ONLY}); lr required"
    )
    net_d_iters: int = option(as_int, 1, minimum=1, doc="update the generator every N iterations (GAN)")
    net_d_init_iters: int = option(
        as_int, 0, minimum=0, doc="train only the discriminator for the first N iterations (GAN)"
    )

    @property
    def losses(self) -> dict[str, Component]:
        """The configured losses by key (``pixel_opt``, ``perceptual_opt``)."""
        return {k: getattr(self, k) for k in LOSS_KEYS if getattr(self, k) is not None}

    def check(self, prefix: str) -> None:
        if not self.losses:
            raise OptionsError(
                f"{prefix}.pixel_opt", "at least one loss (pixel_opt or perceptual_opt) is required"
            )
        if self.new_param_keys and self.new_param_lr is None:
            raise OptionsError(f"{prefix}.new_param_lr", "is required when train.new_param_keys is given")
        sch = self.scheduler
        if (
            sch is not None
            and sch.type == "CosineAnnealingRestartLR"
            and sum(sch.args["periods"]) < self.total_iter
        ):
            raise OptionsError(
                f"{prefix}.scheduler.periods",
                f"sum {sum(sch.args['periods'])} must cover train.total_iter ({self.total_iter})",
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValOptions:
    """``val``: validation during training on every ``datasets.val*`` (absent or null: none)."""

    val_freq: int | None = option(as_int, None, nullable=True, minimum=1, doc="validate every N iterations")
    val_at_start: bool = option(as_bool, False, doc="validate before the first step (not on resume)")
    save_img: bool = option(as_bool, False, doc="write SR images to visualization/<set>/")
    pbar: bool = option(as_bool, True, doc="progress bar over the validation images")
    tile: int | None = option(as_int, None, nullable=True, minimum=1, doc="LR tile size; null = whole image")
    tile_overlap: int = option(as_int, 32, minimum=0, doc="LR pixels of overlap between tiles")
    tb_images: int = option(as_int, 2, minimum=0, doc="SR samples per val set sent to TensorBoard")
    best_metric: str = option(as_str, "psnr", doc="metric that picks net_g_best.pth (of the first val set)")
    suffix: str | None = option(
        as_str, None, nullable=True, doc="saved images are <name>_<suffix>.png; default: the iteration"
    )
    metrics: dict[str, Metric] | None = option(
        check_metrics,
        None,
        nullable=True,
        doc=f"basicsr metrics reported beside the built-in {', '.join(BUILTIN_METRICS)} (name -> type "
        "+ arguments + better: higher|lower); an entry named like a built-in is reported as <name>_opt",
    )

    def better(self, name: str) -> str:
        """'higher' or 'lower': which way metric ``name`` improves."""
        return self.metrics[name].better if self.metrics and name in self.metrics else "higher"

    def check(self, prefix: str) -> None:
        names = set(BUILTIN_METRICS) | set(self.metrics or {})
        if self.best_metric not in names:
            raise OptionsError(
                f"{prefix}.best_metric",
                f"unknown metric {self.best_metric!r}" + _closest(self.best_metric, sorted(names)),
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WandbOptions:
    project: str | None = option(
        as_str, None, nullable=True, doc="log to this wandb project (when installed)"
    )
    entity: str | None = option(as_str, None, nullable=True, doc="wandb team or user")
    resume_id: str | None = option(as_str, None, nullable=True, doc="continue this wandb run")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggerOptions:
    print_freq: int = option(as_int, 100, minimum=1, doc="log a line every N iterations")
    save_checkpoint_freq: int = option(
        as_int, 5000, minimum=1, doc="write net_g_<iter>.pth and a training state every N iterations"
    )
    keep_last: int = option(as_int, 3, minimum=1, doc="training states / net_g_<iter>.pth kept")
    use_tb_logger: bool = option(as_bool, False, doc="TensorBoard scalars and sample images")
    wandb: WandbOptions | None = section(WandbOptions, nullable=True, doc="null: no wandb")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistParamsOptions:
    backend: str | None = option(
        as_str, None, nullable=True, choices=("nccl", "gloo"), doc="default: nccl with CUDA, else gloo"
    )
    port: int = option(as_int, 29500, minimum=1, maximum=65535, doc="MASTER_PORT under SLURM")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """A whole training option file (``python train.py -opt <file>``)."""

    name: str = option(
        as_str, doc="experiment name; outputs go to experiments/<name> unless path.experiments_root"
    )
    model_type: str = option(
        as_str,
        "EHATModel",
        choices=MODEL_TYPES,
        doc="BasicSR's model class: EHATModel, SRModel and HATModel run the same loop; Real*MSEModel degrade "
        "GT images on the fly, Real*GANModel add a discriminator",
    )
    scale: int = option(as_int, 4, minimum=1, doc="upscaling factor")
    num_gpu: int | str = option(
        int_or_auto, "auto", minimum=0, doc="0 = CPU; 'auto' = CUDA when available; N > 1 needs torchrun"
    )
    manual_seed: int | None = option(as_int, None, nullable=True, minimum=0, doc="null: a random seed")
    is_train: bool = option(
        as_bool,
        True,
        refused=((False, "train.py always trains: evaluate with test.py, or remove the key"),),
        doc="BasicSR's flag; only true",
    )
    dist: bool | None = option(
        as_bool,
        None,
        nullable=True,
        doc="set by --launcher; when given, it must agree (true with pytorch/slurm)",
    )
    find_unused_parameters: bool = option(as_bool, False, doc="DistributedDataParallel's flag")
    path: TrainPathOptions = section(
        TrainPathOptions, doc="weights to start from, resume state, output folders"
    )
    network_g: dict[str, Any] = option(
        check_network,
        doc="type: a network class (HAT, EHAT, RLFN, basicsr's) or a preset (ehat.archs.list_presets(): "
        "hat_s, hat, hat_l, ehat_l, ehat_tiny...), plus constructor arguments overriding the preset's",
    )
    datasets: dict[str, DatasetOptions] = option(
        check_datasets, needs=("scale",), doc="train (required), val / val_<n> (validation sets)"
    )
    network_d: dict[str, Any] | None = option(
        check_discriminator,
        None,
        nullable=True,
        doc=f"the discriminator: a registered one (UNetDiscriminatorSN...) and its arguments ({GAN_ONLY})",
    )
    train: TrainOptions = section(TrainOptions, required=True, doc="the loop, optimizer, schedule, losses")
    val: ValOptions | None = section(ValOptions, nullable=True, doc="absent or null: no validation")
    logger: LoggerOptions = section(LoggerOptions, doc="console/file log, checkpoints, TensorBoard, wandb")
    dist_params: DistParamsOptions = section(DistParamsOptions, doc="multi-GPU process group")
    # ---- real-world SR (top-level keys, as in HAT's and Real-ESRGAN's files)
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
        _probs3, None, nullable=True, doc="first resize: P(up, down, keep)"
    )
    resize_range: list[float] | None = option(_range2, None, nullable=True, doc="first resize: scale range")
    gaussian_noise_prob: float | None = option(_prob, None, nullable=True, doc="first noise: P(Gaussian)")
    noise_range: list[float] | None = option(
        _range2, None, nullable=True, doc="first Gaussian sigma (of 255)"
    )
    poisson_scale_range: list[float] | None = option(_range2, None, nullable=True, doc="first Poisson scale")
    gray_noise_prob: float | None = option(_prob, None, nullable=True, doc="first noise: P(gray noise)")
    jpeg_range: list[float] | None = option(_range2, None, nullable=True, doc="first JPEG quality range")
    second_blur_prob: float | None = option(_prob, None, nullable=True, doc="P(second blur)")
    resize_prob2: list[float] | None = option(
        _probs3, None, nullable=True, doc="second resize: P(up, down, keep)"
    )
    resize_range2: list[float] | None = option(_range2, None, nullable=True, doc="second resize: scale range")
    gaussian_noise_prob2: float | None = option(_prob, None, nullable=True, doc="second noise: P(Gaussian)")
    noise_range2: list[float] | None = option(_range2, None, nullable=True, doc="second Gaussian sigma")
    poisson_scale_range2: list[float] | None = option(
        _range2, None, nullable=True, doc="second Poisson scale"
    )
    gray_noise_prob2: float | None = option(_prob, None, nullable=True, doc="second noise: P(gray noise)")
    jpeg_range2: list[float] | None = option(_range2, None, nullable=True, doc="second JPEG quality range")
    gt_size: int | None = option(
        as_int, None, nullable=True, minimum=1, doc="real-world: HR patch cropped after degrading"
    )
    queue_size: int | None = option(
        as_int, None, nullable=True, minimum=1, doc="real-world: training pair pool (a multiple of the batch)"
    )

    def check(self, prefix: str) -> None:
        """Real-world keys only with the real-world model types (and all of them there); GAN keys only
        with the GAN types (and all of them there)."""
        real = self.model_type in REAL_MODEL_TYPES
        gan = self.model_type in GAN_MODEL_TYPES
        given = [k for k in REAL_KEYS if getattr(self, k) is not None]
        if not real and given:
            raise OptionsError(
                given[0],
                f"only for the real-world model types ({', '.join(REAL_MODEL_TYPES)}); model_type is "
                f"{self.model_type}: set model_type or remove the key",
            )
        # HAT's official Real-HAT MSE file carries a train.optim_d it never uses: accepted there (the
        # trainer says it is unused), refused everywhere else.
        gan_given = [k for k, v in self._gan_keys().items() if v and not (real and k == "train.optim_d")]
        if not gan and gan_given:
            raise OptionsError(gan_given[0], f"{GAN_ONLY}; model_type is {self.model_type}: remove the key")
        if not real:
            return
        needed = ["gt_size", "queue_size"]
        if self.high_order_degradation:
            needed += [k for k in DEGRADATION_KEYS]
            needed += ["l1_gt_usm", "percep_gt_usm", "gan_gt_usm"] if gan else ["gt_usm"]
        for k in needed:
            if getattr(self, k) is None:
                raise OptionsError(k, f"is required by model_type {self.model_type}")
        if self.high_order_degradation and self.train_set.type not in ("RealESRGANDataset",):
            raise OptionsError(
                "datasets.train.type",
                f"{self.model_type} degrades GT images on the fly: use type RealESRGANDataset (its blur kernels "
                "and GT crops), or set high_order_degradation: false to train on the dataset's LR",
            )
        batch = self.train_set.batch_size_per_gpu
        if self.queue_size % batch:
            raise OptionsError(
                "queue_size",
                f"{self.queue_size} must be a multiple of datasets.train.batch_size_per_gpu ({batch})",
            )
        if self.gt_size % self.scale:
            raise OptionsError("gt_size", f"{self.gt_size} must be a multiple of scale {self.scale}")
        if gan:
            for k, v in (("network_d", self.network_d), ("train.optim_d", self.train.optim_d),
                         ("train.gan_opt", self.train.gan_opt)):  # fmt: skip
                if v is None:
                    raise OptionsError(k, f"is required by model_type {self.model_type}")
            if self.train.grad_accum_steps != 1:
                raise OptionsError(
                    "train.grad_accum_steps",
                    f"must be 1 with {self.model_type} (generator and discriminator "
                    "alternate every iteration)",
                )

    def _gan_keys(self) -> dict[str, bool]:
        t, p = self.train, self.path
        return {
            "network_d": self.network_d is not None,
            "train.gan_opt": t.gan_opt is not None,
            "train.optim_d": t.optim_d is not None,
            "path.pretrain_network_d": p.pretrain_network_d is not None,
        }

    @property
    def train_set(self) -> TrainDatasetOptions:
        ds = self.datasets["train"]
        assert isinstance(ds, TrainDatasetOptions)
        return ds

    @property
    def val_sets(self) -> dict[str, DatasetOptions]:
        """The ``datasets.val*`` sections (none when ``val`` is absent)."""
        if self.val is None:
            return {}
        return {k: v for k, v in self.datasets.items() if k.startswith("val")}


# ------------------------------------------------------------------------------------ test.py
TEST_DATASET_TYPES = ("PairedImageDataset", "PairedValidationDataset", "SingleImageDataset")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestIoBackendOptions:
    __test__ = False  # not a pytest test class
    type: str = option(
        as_str,
        "disk",
        choices=("disk",),
        refused=(
            (
                "lmdb",
                "not supported by EHAT's test.py: it reads image folders; point dataroot_gt / dataroot_lq "
                "at the PNG folders the LMDB was made from",
            ),
        ),
        doc="only disk",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestDatasetOptions:
    """One ``datasets.test_<n>`` section: an LR folder, with the HR folder for metrics."""

    __test__ = False  # not a pytest test class

    name: str | None = option(as_str, None, nullable=True, doc="set name; default: the LR folder's name")
    type: str = option(
        as_str,
        "PairedImageDataset",
        choices=TEST_DATASET_TYPES,
        doc="test.py pairs the folders by name itself; SingleImageDataset: no dataroot_gt",
    )
    dataroot_gt: str | None = option(as_str, None, nullable=True, doc="HR folder; null: no metrics")
    dataroot_lq: str = option(as_str, doc="LR folder (names <name>.png or <name>x<scale>.png)")
    io_backend: TestIoBackendOptions = section(TestIoBackendOptions, doc="only disk")
    filename_tmpl: str | None = option(
        as_str, None, nullable=True, doc="only '{}' or '{}x<scale>': both are paired automatically"
    )
    phase: str | None = option(as_str, None, nullable=True, choices=("test",), doc="filled")
    scale: int | None = option(as_int, None, nullable=True, doc="filled from the top-level scale")

    def check(self, prefix: str) -> None:
        if self.type == "SingleImageDataset" and self.dataroot_gt is not None:
            raise OptionsError(
                f"{prefix}.dataroot_gt", "SingleImageDataset takes no HR folder: remove the key"
            )


@converter("mapping of test_<n> -> dataset", dict)
def check_test_datasets(value: Any, key: str, scale: int) -> dict[str, TestDatasetOptions]:
    out = {}
    for ds_key, spec in mapping(value, key).items():
        prefix = f"{key}.{ds_key}"
        ds = build(TestDatasetOptions, spec, prefix)
        if ds.scale is not None and ds.scale != scale:
            raise OptionsError(f"{prefix}.scale", f"is {ds.scale} but the top-level scale is {scale}")
        if ds.filename_tmpl not in (None, "{}", f"{{}}x{scale}"):
            raise OptionsError(
                f"{prefix}.filename_tmpl",
                f"not supported by EHAT's test.py: LR images are paired as <name> or <name>x{scale}; "
                "remove the key",
            )
        name = ds.name or Path(ds.dataroot_lq).name
        out[ds_key] = dataclasses.replace(ds, name=name, phase="test", scale=scale)
    if not out:
        raise OptionsError(key, "needs at least one test_<n> section")
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestMetricOptions:
    __test__ = False  # not a pytest test class
    type: str = option(as_str, choices=("calculate_psnr", "calculate_ssim"), doc="PSNR or SSIM")
    crop_border: int | None = option(as_int, None, nullable=True, doc="must equal scale (the default)")
    test_y_channel: bool = option(as_bool, False, doc="on the Y channel (the benchmark convention)")
    better: str = option(as_str, "higher", choices=("higher", "lower"), doc="accepted for HAT configs")

    @property
    def field(self) -> str:
        """The evaluation's column: psnr, psnr_y, ssim or ssim_y."""
        base = "psnr" if self.type == "calculate_psnr" else "ssim"
        return f"{base}_y" if self.test_y_channel else base


@converter("mapping of name -> metric", dict)
def check_test_metrics(value: Any, key: str) -> dict[str, TestMetricOptions]:
    return {
        name: build(TestMetricOptions, spec, f"{key}.{name}") for name, spec in mapping(value, key).items()
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestValOptions:
    __test__ = False  # not a pytest test class
    save_img: bool = option(as_bool, False, doc="write the SR images to results/<name>/<set>/")
    suffix: str | None = option(as_str, None, nullable=True, doc="SR images are named <image>_<suffix>.png")
    self_ensemble: bool = option(as_bool, False, doc="x8 geometric self-ensemble")
    metrics: dict[str, TestMetricOptions] | None = option(
        check_test_metrics, None, nullable=True, doc="default: psnr and ssim on Y, crop scale"
    )
    pbar: bool = option(
        as_bool,
        False,
        refused=(
            (
                True,
                "not supported by EHAT's test.py: it logs one line per image; set false or remove the key",
            ),
        ),
        doc="only false",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TileOptions:
    tile_size: int | None = option(as_int, None, nullable=True, minimum=1, doc="LR tile; null = whole image")
    tile_pad: int = option(as_int, 32, minimum=0, doc="LR pixels of overlap between tiles")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestPathOptions(WeightsPathOptions):
    __test__ = False  # not a pytest test class
    results_root: str | None = option(
        as_str, None, nullable=True, doc="results go to <results_root>/<name>/; default: results"
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestOptions:
    """A whole test option file (``python test.py -opt <file>``)."""

    __test__ = False  # not a pytest test class

    name: str = option(as_str, doc="results go to <results_root>/<name>/")
    model_type: str = option(as_str, "EHATModel", choices=MODEL_TYPES, doc="accepted for BasicSR configs")
    scale: int = option(as_int, 4, minimum=1, doc="upscaling factor")
    num_gpu: int | str = option(int_or_auto, "auto", minimum=0, doc="0 = CPU; 'auto' = CUDA when available")
    device: str = option(as_str, "auto", doc="auto, cpu, cuda or cuda:N (num_gpu: 0 forces cpu)")
    manual_seed: int | None = option(
        as_int, None, nullable=True, minimum=0, doc="seeds the network's initialisation (no weights given)"
    )
    datasets: dict[str, TestDatasetOptions] = option(
        check_test_datasets, needs=("scale",), doc="one test_<n> section per benchmark set"
    )
    network_g: dict[str, Any] = option(check_network, doc="as in training")
    path: TestPathOptions = section(TestPathOptions, doc="the weights to evaluate, the results folder")
    val: TestValOptions = section(TestValOptions, doc="images saved and metrics reported")
    tile: TileOptions = section(TileOptions, doc="tiled inference for large images")
    data_range: float | None = option(
        as_float, None, nullable=True, minimum=1e-6, doc="input range; default 255 for RLFN, else 1"
    )
    precision: str = option(as_str, "fp32", choices=("fp32", "bf16", "fp16"), doc="autocast dtype")

    def check(self, prefix: str) -> None:
        for name, m in (self.val.metrics or {}).items():
            if m.crop_border is not None and m.crop_border != self.scale:
                raise OptionsError(
                    f"val.metrics.{name}.crop_border", f"{m.crop_border} must equal scale ({self.scale})"
                )


# ------------------------------------------------------------------------------------ loading
def _check_paths(opt: TrainingOptions | TestOptions) -> None:
    """Require dataset folders, meta-info files and the weights / state files to exist."""
    for phase_key, ds in opt.datasets.items():
        for k in ("dataroot_gt", "dataroot_lq", "meta_info_file", "meta_info"):
            paths = getattr(ds, k, None) or getattr(ds, "extra", {}).get(k) or []
            for i, p in enumerate(paths if isinstance(paths, list) else [paths]):
                if not os.path.exists(p):
                    where = f"datasets.{phase_key}.{k}" + (f"[{i}]" if isinstance(paths, list) else "")
                    raise OptionsError(
                        where, f"path does not exist: {p} (relative paths start at {os.getcwd()})"
                    )
    percep = getattr(getattr(opt, "train", None), "perceptual_opt", None)
    if percep is not None:
        check_vgg_weights(percep, "train.perceptual_opt")
    for k in ("pretrain_network_g", "resume_state", "pretrain_network_d"):
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


def validate_options(opt: Any, *, check_paths: bool = True) -> TrainingOptions:
    """Validate a parsed training option mapping into :class:`TrainingOptions` (defaults filled).

    ``check_paths``: also require dataset folders, meta-info files, ``path.pretrain_network_g`` /
    ``pretrain_network_d``, ``path.resume_state`` and the perceptual loss's VGG weights to exist (turn off to check a config written for another machine).
    Raises :class:`OptionsError` naming the key.
    """
    out = build(TrainingOptions, opt, "")
    if check_paths:
        _check_paths(out)
    return out


def validate_test_options(opt: Any, *, check_paths: bool = True) -> TestOptions:
    """Validate a parsed ``test.py`` option mapping into :class:`TestOptions` (the same machinery)."""
    out = build(TestOptions, opt, "")
    if check_paths:
        _check_paths(out)
    return out


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionsError("<file>", f"cannot read option file {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OptionsError("<file>", f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
    if raw is None:
        raise OptionsError("<file>", f"{path} is empty")
    return raw


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: ``line L, column C: <problem>`` (PyYAML's marks are 0-based)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        problem = f"{problem} ({context}" + (f" started at line {cmark.line + 1})" if cmark else ")")
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def apply_force_yml(raw: Any, entries: Sequence[str]) -> Any:
    """BasicSR's ``--force_yml``: each ``a:b:c=value`` sets ``raw['a']['b']['c']`` to ``value`` read as YAML
    (``7``, ``true``, ``~``, ``[1, 2]``); missing sections are created. A malformed entry or a path through a
    non-mapping is an :class:`OptionsError` naming the entry."""
    for entry in entries:
        keys, sep, text = entry.partition("=")
        parts = [k.strip() for k in keys.split(":")]
        if not sep or not all(parts):
            raise OptionsError("--force_yml", f"{entry!r} is not of the form key:subkey=value")
        try:
            value = yaml.safe_load(text.strip()) if text.strip() else None
        except yaml.YAMLError as exc:
            raise OptionsError(
                "--force_yml", f"{entry!r}: the value is not valid YAML ({_yaml_problem(exc)})"
            ) from None
        node = raw
        for i, k in enumerate(parts[:-1]):
            child = node.setdefault(k, {})
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise OptionsError("--force_yml", f"{entry!r}: option '{where}' is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def _load(path: str | os.PathLike, validate: Any, check_paths: bool, force_yml: Sequence[str] = ()) -> Any:
    path = Path(path)
    raw = _read_yaml(path)
    if force_yml:
        if not isinstance(raw, dict):
            raise OptionsError("<file>", f"{path} is not a mapping of options")
        raw = apply_force_yml(raw, force_yml)
    try:
        return validate(raw, check_paths=check_paths)
    except OptionsError as exc:
        raise OptionsError(exc.key, f"{exc.message} (in {path})") from None


def load_options(
    path: str | os.PathLike, *, check_paths: bool = True, force_yml: Sequence[str] = ()
) -> TrainingOptions:
    """Read a YAML training option file with ``yaml.safe_load``, apply ``--force_yml`` entries
    (:func:`apply_force_yml`) and validate it (:func:`validate_options`)."""
    return _load(path, validate_options, check_paths, force_yml)


def load_test_options(
    path: str | os.PathLike, *, check_paths: bool = True, force_yml: Sequence[str] = ()
) -> TestOptions:
    """Read a YAML ``test.py`` option file, apply ``--force_yml`` entries and validate it
    (:func:`validate_test_options`)."""
    return _load(path, validate_test_options, check_paths, force_yml)


def experiments_root(opt: TrainingOptions) -> Path:
    """Where a run writes: ``path.experiments_root``, else ``./experiments/<name>`` (current folder)."""
    root = opt.path.experiments_root
    return Path(root) if root else Path.cwd() / "experiments" / opt.name


def options_device(num_gpu: int | str, device: str = "auto") -> Any:
    """The torch device for ``num_gpu`` (0 = CPU, auto, N) and ``device`` (test options), through
    :func:`ehat.device.resolve_device`; a device this machine lacks is an OptionsError."""
    from ehat.device import DeviceError, resolve_device

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
