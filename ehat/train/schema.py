"""The typed schema of a training option file: every known key, its type, default and range.

The format is BasicSR's (so HAT/BasicSR configs port with minimal edits) plus our loop's keys.
Sections whose keys are free-form (``network_g``, ``train.optim_g``, ``train.scheduler``, losses,
``val.metrics``, dataset phases) are checked in :mod:`ehat.train.options` against the constructor
they feed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

REQUIRED = object()
"""Marker: a key without a default must be given."""


class OptionsError(ValueError):
    """An invalid option file. ``key`` is the dotted path of the offending key (e.g. ``train.total_iter``)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"option '{key}': {message}")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_int(value: Any, key: str) -> int:
    """An int; integral floats such as YAML's ``!!float 5e3`` are accepted (BasicSR configs use them)."""
    if isinstance(value, bool):
        raise OptionsError(key, f"expected an integer, got the boolean {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise OptionsError(key, f"expected an integer, got {_describe(value)}")


def as_float(value: Any, key: str) -> float:
    """A finite float (ints accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionsError(key, f"expected a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise OptionsError(key, f"expected a finite number, got {value}")
    return float(value)


def as_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise OptionsError(key, f"expected true or false, got {_describe(value)}")
    return value


def as_str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise OptionsError(key, f"expected a non-empty string, got {_describe(value)}")
    return value


def list_of(convert: Callable[[Any, str], Any]) -> Callable[[Any, str], list]:
    """A list whose items pass ``convert`` (a scalar is not promoted)."""

    def check(value: Any, key: str) -> list:
        if not isinstance(value, (list, tuple)):
            raise OptionsError(key, f"expected a list, got {_describe(value)}")
        return [convert(v, f"{key}[{i}]") for i, v in enumerate(value)]

    return check


def str_or_list(value: Any, key: str) -> str | list[str]:
    """A path or a list of paths (several folders concatenated)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise OptionsError(key, "expected at least one path, got an empty list")
        return list_of(as_str)(value, key)
    return as_str(value, key)


def int_or_auto(value: Any, key: str) -> int | str:
    if value == "auto":
        return "auto"
    return as_int(value, key)


@dataclass(frozen=True)
class Field:
    """One option key: a converter (raises OptionsError), a default, optional bounds and choices."""

    convert: Callable[[Any, str], Any]
    default: Any = REQUIRED
    nullable: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    def check(self, value: Any, key: str) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise OptionsError(key, "must not be empty (null)")
        out = self.convert(value, key)
        if self.choices and out not in self.choices:
            raise OptionsError(key, f"{_describe(out)} is not one of {list(self.choices)}")
        for v in out if isinstance(out, list) else [out]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if self.minimum is not None and v < self.minimum:
                    raise OptionsError(key, f"{v} is below the minimum {self.minimum}")
                if self.maximum is not None and v > self.maximum:
                    raise OptionsError(key, f"{v} is above the maximum {self.maximum}")
        return out


@dataclass(frozen=True)
class Section:
    """A mapping of known keys. ``nullable``: the whole section may be null/absent (then None)."""

    fields: dict[str, Field | Section] = field(default_factory=dict)
    nullable: bool = False


MODEL_TYPES = ("EHATModel", "SRModel", "HATModel")
AMP_MODES = ("bf16", "fp16")
SCHEDULERS = ("MultiStepLR", "MultiStepRestartLR", "CosineAnnealingRestartLR")

TOP_LEVEL = Section(
    {
        "name": Field(
            as_str, doc="experiment name; outputs go to experiments/<name> unless path.experiments_root"
        ),
        "model_type": Field(as_str, "EHATModel", choices=MODEL_TYPES),
        "scale": Field(as_int, 4, minimum=1),
        "num_gpu": Field(int_or_auto, "auto", minimum=0, doc="0 = CPU; 'auto' = CUDA when available"),
        "manual_seed": Field(as_int, None, nullable=True, minimum=0),
        "is_train": Field(as_bool, True, doc="accepted for BasicSR compatibility; ignored"),
        "dist": Field(as_bool, False, doc="accepted for BasicSR compatibility; set by --launcher"),
        "find_unused_parameters": Field(as_bool, False),
        "path": Section(
            {
                "pretrain_network_g": Field(as_str, None, nullable=True),
                "param_key_g": Field(as_str, "auto"),
                "strict_load_g": Field(as_bool, True),
                "resume_state": Field(as_str, None, nullable=True),
                "experiments_root": Field(as_str, None, nullable=True),
                "tb_logger": Field(as_str, None, nullable=True, doc="default: <experiments_root>/tb_logger"),
            }
        ),
        "train": Section(
            {
                "ema_decay": Field(as_float, 0.0, minimum=0.0, maximum=0.999999, doc="0 disables EMA"),
                "total_iter": Field(as_int, minimum=1),
                "warmup_iter": Field(as_int, -1, minimum=-1, doc="linear warm-up over this many iterations"),
                "amp": Field(as_str, None, nullable=True, choices=AMP_MODES),
                "grad_clip": Field(as_float, None, nullable=True, minimum=0.0, doc="max global grad norm"),
                "grad_accum_steps": Field(as_int, 1, minimum=1),
                "compile": Field(as_bool, False),
                "channels_last": Field(as_bool, False),
                "new_param_lr": Field(as_float, None, nullable=True, minimum=0.0),
                "new_param_keys": Field(list_of(as_str), None, nullable=True),
                "on_nonfinite": Field(as_str, "stop", choices=("stop", "skip")),
                "deterministic": Field(as_bool, False),
            }
        ),
        "val": Section(
            {
                "val_freq": Field(as_int, None, nullable=True, minimum=1),
                "val_at_start": Field(as_bool, False),
                "save_img": Field(as_bool, False),
                "pbar": Field(as_bool, True),
                "tile": Field(as_int, None, nullable=True, minimum=1, doc="LR tile size; null = whole image"),
                "tile_overlap": Field(as_int, 32, minimum=0),
                "tb_images": Field(as_int, 2, minimum=0, doc="SR samples per val set sent to TensorBoard"),
                "best_metric": Field(as_str, "psnr"),
                "suffix": Field(as_str, None, nullable=True),
            },
            nullable=True,
        ),
        "logger": Section(
            {
                "print_freq": Field(as_int, 100, minimum=1),
                "save_checkpoint_freq": Field(as_int, 5000, minimum=1),
                "keep_last": Field(as_int, 3, minimum=1, doc="training states / net_g_<iter>.pth kept"),
                "use_tb_logger": Field(as_bool, False),
                "wandb": Section(
                    {
                        "project": Field(as_str, None, nullable=True),
                        "entity": Field(as_str, None, nullable=True),
                        "resume_id": Field(as_str, None, nullable=True),
                    },
                    nullable=True,
                ),
            }
        ),
        "dist_params": Section(
            {
                "backend": Field(as_str, None, nullable=True, choices=("nccl", "gloo")),
                "port": Field(as_int, 29500, minimum=1, maximum=65535),
            }
        ),
    }
)
"""Sections checked field by field. ``datasets``, ``network_g`` and the free-form parts of ``train``
and ``val`` are added by the validator."""

TRAIN_DYNAMIC = ("optim_g", "scheduler")
"""Keys of ``train`` that are mappings checked against a constructor (plus any ``*_opt`` loss)."""

DATASET_COMMON = {
    "name": Field(as_str, None, nullable=True),
    "type": Field(as_str),
    "dataroot_gt": Field(str_or_list, None, nullable=True),
    "dataroot_lq": Field(str_or_list, None, nullable=True),
    "meta_info_file": Field(str_or_list, None, nullable=True),
    "filename_tmpl": Field(as_str, None, nullable=True),
    "io_backend": Section({"type": Field(as_str, "disk", choices=("disk", "lmdb"))}),
    "color": Field(as_str, None, nullable=True, choices=("y",)),
    "mean": Field(list_of(as_float), None, nullable=True),
    "std": Field(list_of(as_float), None, nullable=True),
    "scale": Field(as_int, None, nullable=True, doc="filled from the top-level scale"),
    "phase": Field(as_str, None, nullable=True, doc="filled from the dataset's key"),
}
DATASET_TRAIN = {
    "gt_size": Field(as_int, minimum=1),
    "use_hflip": Field(as_bool, True),
    "use_rot": Field(as_bool, True),
    "use_shuffle": Field(as_bool, True),
    "num_worker_per_gpu": Field(as_int, 0, minimum=0),
    "batch_size_per_gpu": Field(as_int, minimum=1),
    "dataset_enlarge_ratio": Field(as_int, 1, minimum=1),
    "prefetch_mode": Field(as_str, None, nullable=True, choices=("cpu", "cuda")),
    "num_prefetch_queue": Field(as_int, 1, minimum=1),
    "pin_memory": Field(as_bool, False),
    "persistent_workers": Field(as_bool, False),
    "check_images": Field(
        as_str, "header", choices=("header", "decode", "none"), doc="check every image before the first step"
    ),
}

_int_or_list = Field(
    lambda v, k: list_of(as_int)(v, k) if isinstance(v, (list, tuple)) else as_int(v, k), None, nullable=True
)
DATASET_EXTRA = {
    "MultiRootPairedDataset": {
        "enlarge_ratio": _int_or_list,
        "max_images": Field(
            lambda v, k: (
                [None if x is None else as_int(x, f"{k}[{i}]") for i, x in enumerate(v)]
                if isinstance(v, (list, tuple))
                else as_int(v, k)
            ),
            None,
            nullable=True,
        ),
        "bad_image": Field(as_str, None, nullable=True, choices=("error", "skip")),
    },
    "PairedValidationDataset": {"bad_image": Field(as_str, None, nullable=True, choices=("error", "skip"))},
}
"""Keys that ehat.data's datasets take beyond BasicSR's (a dataset class may also declare
``OPTION_KEYS``: a dict of name -> Field)."""
