"""Options whose keys are a constructor's arguments: ``train.optim_g`` / ``optim_d``,
``train.scheduler``, the losses and ``val.metrics`` (``network_g``: :mod:`ehat.options.network`).

Each converter checks the ``type`` against its registry (with the closest name for a typo) and the
arguments against the constructor's signature (:mod:`ehat.options.registries`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from typing import Any

from ehat.options.converters import as_float, as_int, converter, list_of
from ehat.options.losses import LOSS_SLOTS, slot_of
from ehat.options.registries import (
    check_kwargs,
    lookup,
    registered,
    registry_names,
    typed_mapping,
    unknown_value,
)
from ehat.options.schema import Component, OptionsError, mapping

__all__ = [
    "BUILTIN_METRICS",
    "LOSS_KINDS",
    "SCHEDULERS",
    "Metric",
    "check_loss",
    "check_metrics",
    "check_optimizer",
    "check_scheduler",
    "metric_renames",
    "renamed_metric",
]

SCHEDULERS = ("MultiStepLR", "MultiStepRestartLR", "CosineAnnealingRestartLR")
BUILTIN_METRICS = ("psnr", "psnr_y", "ssim_y")
"""Metrics every validation reports (``ehat.imaging.metrics.image_metrics``): RGB PSNR, and PSNR /
SSIM on the Y channel, border ``scale`` cropped."""


@dataclasses.dataclass(frozen=True)
class Metric(Component):
    """One ``val.metrics`` entry: a basicsr metric, its arguments, and which way is better."""

    better: str = "higher"
    renamed_from: str | None = None
    """The entry's name in the option file when it clashed with a built-in metric (see :func:`check_metrics`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "better": self.better, **self.args}


@converter("mapping (type + constructor arguments)", dict)
def check_optimizer(value: Any, key: str) -> Component:
    """A ``torch.optim`` class and its arguments (``lr`` required)."""
    import torch

    kind, kwargs = typed_mapping(value, key)
    names = [
        n for n, c in vars(torch.optim).items() if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer)
    ]
    if kind not in names or kind == "Optimizer":
        raise unknown_value(f"{key}.type", kind, [n for n in names if n != "Optimizer"], "optimizer")
    check_kwargs(getattr(torch.optim, kind), kwargs, key, skip=("self", "params"))
    if "lr" not in kwargs:
        raise OptionsError(f"{key}.lr", "is required")
    return Component(kind, kwargs)


@converter("mapping (type + constructor arguments)", dict)
def check_scheduler(value: Any, key: str) -> Component:
    """One of :data:`SCHEDULERS` (basicsr's) and its arguments; restart weights match their restarts."""
    from basicsr.models import lr_scheduler

    kind, kwargs = typed_mapping(value, key)
    if kind not in SCHEDULERS:
        raise unknown_value(f"{key}.type", kind, SCHEDULERS, "scheduler")
    cosine = kind == "CosineAnnealingRestartLR"
    target = lr_scheduler.CosineAnnealingRestartLR if cosine else lr_scheduler.MultiStepRestartLR
    check_kwargs(target, kwargs, key, skip=("self", "optimizer", "last_epoch"))
    if cosine:
        periods = list_of(as_int)(kwargs["periods"], f"{key}.periods")
        weights = list_of(as_float)(kwargs.get("restart_weights", [1]), f"{key}.restart_weights")
        if len(periods) != len(weights):
            raise OptionsError(f"{key}.restart_weights", "needs one weight per entry of 'periods'")
    else:
        list_of(as_int)(kwargs["milestones"], f"{key}.milestones")
        restarts = list_of(as_int)(kwargs.get("restarts", [0]), f"{key}.restarts")
        weights = list_of(as_float)(kwargs.get("restart_weights", [1]), f"{key}.restart_weights")
        if len(restarts) != len(weights):
            raise OptionsError(f"{key}.restart_weights", "needs one weight per entry of 'restarts'")
    return Component(kind, kwargs)


LOSS_KINDS = {slot.key: slot.kinds for slot in LOSS_SLOTS}
"""basicsr's losses by the option key they belong under (a typo is answered with a loss of its key's kind)."""


@converter("mapping (type + constructor arguments)", dict)
def check_loss(value: Any, key: str) -> Component:
    """A basicsr loss and its arguments. Under a loss slot's key (:data:`ehat.options.losses.LOSS_SLOTS`)
    only losses of that slot's kind: a loss of another slot names the key it belongs under."""
    import basicsr.losses  # noqa: F401  (fills LOSS_REGISTRY)
    from basicsr.utils.registry import LOSS_REGISTRY

    kind, kwargs = typed_mapping(value, key)
    slot = slot_of(key)
    same_kind = list(slot.kinds) if slot else registry_names(LOSS_REGISTRY)
    if not registered(LOSS_REGISTRY, kind):
        raise unknown_value(f"{key}.type", kind, same_kind, "loss")
    home = next((s.key for s in LOSS_SLOTS if kind in s.kinds), None)
    if slot and home not in (None, slot.key):  # a loss of another slot (a registered custom loss is fine)
        raise OptionsError(
            f"{key}.type", f"{kind} is not a {slot.key[: -len('_opt')]} loss: give it as train.{home}"
        )
    check_kwargs(lookup(LOSS_REGISTRY, kind), kwargs, key)
    return Component(kind, kwargs)


RENAMED_SUFFIX = "_opt"
"""A ``val.metrics`` entry named like a built-in metric is reported as ``<name>_opt`` (from the option file)."""


def renamed_metric(name: str, taken: Iterable[str]) -> str:
    """The name a ``val.metrics`` entry called ``name`` (a built-in's name) is reported under: ``<name>_opt``,
    else ``<name>_opt2``, ... when that is taken too."""
    taken = set(taken)
    new, i = f"{name}{RENAMED_SUFFIX}", 2
    while new in taken:
        new, i = f"{name}{RENAMED_SUFFIX}{i}", i + 1
    return new


@converter("mapping of name -> metric", dict)
def check_metrics(value: Any, key: str) -> dict[str, Metric]:
    """``val.metrics``: basicsr metrics reported beside the built-in ones. An entry named like a built-in
    (HAT's files name their Y-channel PSNR ``psnr``) is reported as ``<name>_opt`` (:func:`renamed_metric`;
    ``Metric.renamed_from`` keeps the given name, and the trainer logs the renaming once)."""
    import basicsr.metrics  # noqa: F401  (fills METRIC_REGISTRY)
    from basicsr.utils.registry import METRIC_REGISTRY

    entries = mapping(value, key)
    out = {}
    for name, spec in entries.items():
        where = f"{key}.{name}"
        kind, kwargs = typed_mapping(spec, where)
        if not registered(METRIC_REGISTRY, kind):
            raise unknown_value(f"{where}.type", kind, registry_names(METRIC_REGISTRY), "metric")
        better = kwargs.pop("better", "higher")
        if better not in ("higher", "lower"):
            raise OptionsError(f"{where}.better", f"expected 'higher' or 'lower', got {better!r}")
        check_kwargs(lookup(METRIC_REGISTRY, kind), kwargs, where, skip=("self", "img", "img2"))
        if name in BUILTIN_METRICS:
            new = renamed_metric(name, [*BUILTIN_METRICS, *entries, *out])
            out[new] = Metric(kind, kwargs, better, renamed_from=name)
        else:
            out[name] = Metric(kind, kwargs, better)
    return out


def metric_renames(metrics: dict[str, Metric] | None) -> list[str]:
    """One sentence per ``val.metrics`` entry renamed by :func:`check_metrics` (for the training log)."""
    return [
        f"val.metrics.{m.renamed_from} ({m.type}) is reported as '{new}': '{m.renamed_from}' is a built-in "
        f"metric every validation reports ({', '.join(BUILTIN_METRICS)}: RGB PSNR, Y-channel PSNR and SSIM, "
        "a border of `scale` pixels cropped)"
        for new, m in (metrics or {}).items()
        if m.renamed_from is not None
    ]
