"""``datasets.<phase>`` of train.py's options: the keys every dataset takes, the training set's own,
and the keys of each dataset type (:data:`DATASET_KINDS`: one row per type, its extra keys and its
rule)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ehat.options.converters import (
    as_bool,
    as_float,
    as_int,
    as_str,
    converter,
    int_or_list,
    int_or_nulls,
    list_of,
    str_or_list,
)
from ehat.options.degradations import REAL_ESRGAN_EXTRA, check_real_esrgan_dataset
from ehat.options.registries import closest, lookup, registered, registry_names
from ehat.options.schema import Field, OptionsError, build, mapping, option, option_fields, section, to_plain

__all__ = [
    "DATASET_EXTRA",
    "DATASET_KINDS",
    "DatasetKind",
    "DatasetOptions",
    "IoBackendOptions",
    "TrainDatasetOptions",
    "check_datasets",
]

_PHASE = re.compile(r"^(train|val|test)(_.+)?$")
_VIDEO_DATASET = re.compile(r"REDS|Vimeo|Video|DUF")
"""basicsr's video datasets: never suggested for a typo in an image dataset type."""
_BASICSR_ONLY = ("color", "mean", "std")


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


# ------------------------------------------------------------------------------------ dataset types
@dataclass(frozen=True)
class DatasetKind:
    """What one dataset type adds to the common keys: ``extra`` keys (kept in ``DatasetOptions.extra``)
    and ``check(ds, prefix)``, its rule across keys."""

    extra: Mapping[str, Field]
    check: Callable[[DatasetOptions, str], None] | None = None


MULTI_ROOT_EXTRA: dict[str, Field] = {
    "enlarge_ratio": Field(
        int_or_list, None, nullable=True, doc="per-root repetition (balances DIV2K against LSDIR)"
    ),
    "max_images": Field(int_or_nulls, None, nullable=True, doc="use at most this many images per root"),
    "enlarge_small": Field(
        as_bool,
        None,
        nullable=True,
        doc="LR made on the fly: enlarge an HR smaller than gt_size first (default: true for "
        "ImageNetPairedDataset, false otherwise)",
    ),
}


def _check_imagenet(ds: DatasetOptions, prefix: str) -> None:
    """ImageNetPairedDataset makes its LR from the HR: no other LR folder."""
    lq, gt = ds.dataroot_lq, ds.dataroot_gt
    if lq is not None and lq != gt:
        raise OptionsError(
            f"{prefix}.dataroot_lq",
            f"ImageNetPairedDataset makes the LR from dataroot_gt on the fly: leave dataroot_lq out or equal to "
            f"dataroot_gt ({gt}), or use type MultiRootPairedDataset for an LR folder",
        )


DATASET_KINDS: dict[str, DatasetKind] = {
    "MultiRootPairedDataset": DatasetKind(MULTI_ROOT_EXTRA),
    "ImageNetPairedDataset": DatasetKind(MULTI_ROOT_EXTRA, _check_imagenet),
    "RealESRGANDataset": DatasetKind(REAL_ESRGAN_EXTRA, check_real_esrgan_dataset),
}
"""Dataset types that take keys beyond the common ones, or have a rule of their own."""
DATASET_EXTRA: dict[str, Mapping[str, Field]] = {k: v.extra for k, v in DATASET_KINDS.items()}
"""Keys a dataset type takes beyond the common ones (the option reference lists them)."""


def _dataset(phase_key: str, value: Any, scale: int, cls: type[DatasetOptions]) -> DatasetOptions:
    """One dataset section: type checked against the registry, keys against ``cls``, filled fields."""
    import basicsr.data  # noqa: F401  (fills DATASET_REGISTRY; deliberate: basicsr.data is slow to import)
    from basicsr.utils.registry import DATASET_REGISTRY

    prefix = f"datasets.{phase_key}"
    value = mapping(value, prefix)
    if "type" not in value:
        raise OptionsError(f"{prefix}.type", "is required")
    kind = as_str(value["type"], f"{prefix}.type")
    if not registered(DATASET_REGISTRY, kind):
        images = [n for n in registry_names(DATASET_REGISTRY) if not _VIDEO_DATASET.search(n)]
        raise OptionsError(f"{prefix}.type", f"unknown dataset type {kind!r}" + closest(kind, images))
    spec = DATASET_KINDS.get(kind)
    ds = build(cls, value, prefix, extra=spec.extra if spec else None)
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
    if spec is not None and spec.check is not None:
        spec.check(ds, prefix)
    if isinstance(ds, TrainDatasetOptions) and ds.gt_size % scale:
        raise OptionsError(f"{prefix}.gt_size", f"{ds.gt_size} must be a multiple of scale {scale}")
    return dataclasses.replace(ds, name=ds.name or phase_key, phase=phase, scale=scale)


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
