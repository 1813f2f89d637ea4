"""Options whose keys are a constructor's arguments: ``network_g``, ``train.optim_g``,
``train.scheduler``, losses and ``val.metrics``.

Each converter checks the ``type`` against its registry (with the closest name for a typo), the
arguments against the constructor's signature (names, required ones, int/float/bool/str
annotations), and the rules the constructor would only break at the first forward pass
(``network_g.embed_dim`` against HAT's channel divisions).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

from ehat.errors import did_you_mean
from ehat.train.schema import (
    Component,
    OptionsError,
    as_bool,
    as_float,
    as_int,
    as_str,
    converter,
    list_of,
    mapping,
)

SCHEDULERS = ("MultiStepLR", "MultiStepRestartLR", "CosineAnnealingRestartLR")
BUILTIN_METRICS = ("psnr", "psnr_y", "ssim_y")
"""Metrics every validation reports (``ehat.evaluation.metrics.image_metrics``): RGB PSNR, and PSNR /
SSIM on the Y channel, border ``scale`` cropped."""


@dataclasses.dataclass(frozen=True)
class Metric(Component):
    """One ``val.metrics`` entry: a basicsr metric, its arguments, and which way is better."""

    better: str = "higher"
    renamed_from: str | None = None
    """The entry's name in the option file when it clashed with a built-in metric (see :func:`check_metrics`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "better": self.better, **self.args}


def _unknown_value(key: str, value: str, known: Iterable[str], what: str) -> OptionsError:
    """An unknown name (network, optimizer, loss...) given as the value of ``key``."""
    known = sorted(known)
    hint = did_you_mean(value, known) or f"; valid: {', '.join(known[:30])}"
    return OptionsError(key, f"unknown {what} {value!r}{hint}")


def _unknown_argument(prefix: str, key: str, known: Iterable[str], owner: str) -> OptionsError:
    known = sorted(known)
    hint = did_you_mean(key, known) or f"; valid arguments: {', '.join(known[:30])}"
    return OptionsError(f"{prefix}.{key}", f"unknown argument of {owner}{hint}")


def registered(registry: Any, name: str) -> bool:
    """Whether basicsr's ``registry.get(name)`` finds ``name`` (it also tries ``<name>_basicsr``)."""
    return name in registry or f"{name}_basicsr" in registry


def lookup(registry: Any, name: str) -> Any:
    """``registry.get(name)`` without basicsr's fallback message on stdout."""
    table = dict(iter(registry))
    return table[name] if name in table else table[f"{name}_basicsr"]


def registry_names(registry: Any) -> list[str]:
    return sorted({n[: -len("_basicsr")] if n.endswith("_basicsr") else n for n in registry.keys()})


def _annotation_converter(annotation: Any) -> Callable[[Any, str], Any] | None:
    """A converter for simple annotations (int, float, bool, str); None = not checked."""
    return {int: as_int, float: as_float, bool: as_bool, str: as_str}.get(annotation)


def check_kwargs(target: Callable, kwargs: dict, prefix: str, skip: tuple[str, ...] = ("self",)) -> None:
    """Check that ``target(**kwargs)`` names real parameters, gives the required ones, and that values
    for parameters annotated int/float/bool/str have that type. ``prefix`` is the section's key."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    owner = getattr(target, "__name__", str(target))
    params = {n: p for n, p in sig.parameters.items() if n not in skip}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    for k in kwargs:
        if k not in named and not accepts_any:
            raise _unknown_argument(prefix, k, named, owner)
    for n, p in params.items():
        if n in named and p.default is inspect.Parameter.empty and n not in kwargs:
            raise OptionsError(f"{prefix}.{n}", f"is required by {owner}")
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: skip type checks  # noqa: BLE001
        hints = {}
    for k, v in kwargs.items():
        convert = _annotation_converter(hints.get(k))
        if convert is not None and v is not None:
            convert(v, f"{prefix}.{k}")


def typed_mapping(value: Any, key: str) -> tuple[str, dict]:
    """(``type``, the other keys) of a ``{type: ..., ...}`` mapping."""
    value = mapping(value, key)
    if "type" not in value:
        raise OptionsError(f"{key}.type", "is required")
    kind = as_str(value["type"], f"{key}.type")
    return kind, {k: v for k, v in value.items() if k != "type"}


# ------------------------------------------------------------------------------------ network
def _network_constraints(cfg: dict[str, Any], defaults: dict[str, inspect.Parameter]) -> None:
    """HAT's channel arithmetic, checked before any tensor is made: the CAB convolution has
    embed_dim // compress_ratio channels, its channel attention embed_dim // squeeze_factor, each
    attention head embed_dim / num_heads, DANet's position attention embed_dim // 8."""

    def get(name: str) -> Any:
        if name in cfg:
            return cfg[name]
        p = defaults.get(name)
        return None if p is None or p.default is inspect.Parameter.empty else p.default

    if not {"embed_dim", "squeeze_factor", "compress_ratio", "num_heads", "depths"} <= defaults.keys():
        return
    embed = as_int(get("embed_dim"), "network_g.embed_dim")
    if embed < 1:
        raise OptionsError("network_g.embed_dim", f"{embed} is below the minimum 1")
    for name in ("squeeze_factor", "compress_ratio"):
        v = as_int(get(name), f"network_g.{name}")
        if v < 1:
            raise OptionsError(f"network_g.{name}", f"{v} is below the minimum 1")
    heads = list_of(as_int)(get("num_heads"), "network_g.num_heads")
    depths = list_of(as_int)(get("depths"), "network_g.depths")
    if len(heads) != len(depths):
        raise OptionsError(
            "network_g.num_heads", f"has {len(heads)} entries but depths has {len(depths)}: one per group"
        )
    squeeze, compress = get("squeeze_factor"), get("compress_ratio")
    if embed // squeeze < 1:
        raise OptionsError(
            "network_g.embed_dim",
            f"{embed} is smaller than squeeze_factor {squeeze}: HAT's channel attention would have "
            f"embed_dim // squeeze_factor = 0 channels; use embed_dim >= squeeze_factor",
        )
    if embed // compress < 1:
        raise OptionsError(
            "network_g.embed_dim",
            f"{embed} is smaller than compress_ratio {compress}: HAT's convolution block would have "
            f"embed_dim // compress_ratio = 0 channels; use embed_dim >= compress_ratio",
        )
    for i, h in enumerate(heads):
        if h < 1 or embed % h:
            raise OptionsError(
                "network_g.embed_dim",
                f"{embed} is not divisible by num_heads[{i}] = {h}: each attention head takes "
                "embed_dim / num_heads channels",
            )
    placement, branches = get("dual_attention"), get("dual_attention_branches")
    if placement not in (None, "none") and branches is not None and "pam" in branches and embed < 8:
        raise OptionsError(
            "network_g.embed_dim",
            f"{embed} is below 8: DANet's position attention has embed_dim // 8 query/key channels",
        )


NOT_NETWORKS = ("VGGFeatureExtractor", "SpyNet")
"""Registered archs that are parts of losses or video models, never a ``network_g`` / ``network_d``."""


def is_discriminator(name: str) -> bool:
    """Whether the registered arch ``name`` is a discriminator (``network_d``), not a generator."""
    return "Discriminator" in name


def arch_names(role: str) -> list[str]:
    """Registered arch names fit for ``role`` ('generator' for network_g, 'discriminator' for network_d)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    names = [n for n in registry_names(ARCH_REGISTRY) if n not in NOT_NETWORKS]
    return [n for n in names if is_discriminator(n) == (role == "discriminator")]


@converter("mapping (type + constructor arguments)", dict)
def check_network(value: Any, key: str = "network_g", role: str = "generator") -> dict[str, Any]:
    """``network_g``: a registered class or a preset name, plus constructor arguments checked by name,
    by type where annotated int/float/bool/str, and against HAT's channel rules. Returned as the
    dict :func:`ehat.archs.build_network` takes. ``role='discriminator'`` (``network_d``): registered
    discriminators only. A typo is answered with a name of the same role."""
    from basicsr.utils.registry import ARCH_REGISTRY

    import ehat.archs as archs

    kind, kwargs = typed_mapping(value, key)
    presets = archs.list_presets() if role == "generator" else []
    base: dict[str, Any] = {}
    if kind in presets:
        base = archs.preset_config(kind)
        cls = lookup(ARCH_REGISTRY, base.pop("type"))
    elif registered(ARCH_REGISTRY, kind) and (role == "generator" or is_discriminator(kind)):
        cls = lookup(ARCH_REGISTRY, kind)
    else:
        raise _unknown_value(f"{key}.type", kind, arch_names(role) + presets, f"{role} network type")
    valid = archs.network_kwargs(cls)
    for k in kwargs:
        if k not in valid:
            raise _unknown_argument(key, k, valid, cls.__name__)
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in klass.__dict__ and klass.__module__.startswith("ehat"):
            try:
                hints.update(typing.get_type_hints(klass.__init__))
            except Exception:  # noqa: BLE001  (unresolvable annotation: skip type checks)
                pass
    for k, v in kwargs.items():
        convert = _annotation_converter(hints.get(k))
        if convert is not None and v is not None:
            convert(v, f"{key}.{k}")
    _network_constraints({**base, **kwargs}, valid)
    return {"type": kind, **kwargs}


# ------------------------------------------------------------------------------------ training
@converter("mapping (type + constructor arguments)", dict)
def check_optimizer(value: Any, key: str) -> Component:
    import torch

    kind, kwargs = typed_mapping(value, key)
    names = [
        n for n, c in vars(torch.optim).items() if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer)
    ]
    if kind not in names or kind == "Optimizer":
        raise _unknown_value(f"{key}.type", kind, [n for n in names if n != "Optimizer"], "optimizer")
    check_kwargs(getattr(torch.optim, kind), kwargs, key, skip=("self", "params"))
    if "lr" not in kwargs:
        raise OptionsError(f"{key}.lr", "is required")
    return Component(kind, kwargs)


@converter("mapping (type + constructor arguments)", dict)
def check_scheduler(value: Any, key: str) -> Component:
    from basicsr.models import lr_scheduler

    kind, kwargs = typed_mapping(value, key)
    if kind not in SCHEDULERS:
        raise _unknown_value(f"{key}.type", kind, SCHEDULERS, "scheduler")
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


LOSS_KINDS = {
    "pixel_opt": ("L1Loss", "MSELoss", "CharbonnierLoss", "WeightedTVLoss"),
    "perceptual_opt": ("PerceptualLoss",),
    "gan_opt": ("GANLoss", "MultiScaleGANLoss"),
}
"""basicsr's losses by the option key they belong under (a typo is answered with a loss of its key's kind)."""


def _loss_section(key: str) -> str | None:
    return next((k for k in LOSS_KINDS if key == k or key.endswith(f".{k}")), None)


@converter("mapping (type + constructor arguments)", dict)
def check_loss(value: Any, key: str) -> Component:
    """A basicsr loss and its arguments. Under ``pixel_opt`` / ``perceptual_opt`` / ``gan_opt`` only losses
    of that kind (:data:`LOSS_KINDS`): a loss of another kind names the key it belongs under."""
    import basicsr.losses  # noqa: F401  (fills LOSS_REGISTRY)
    from basicsr.utils.registry import LOSS_REGISTRY

    kind, kwargs = typed_mapping(value, key)
    section = _loss_section(key)
    same_kind = list(LOSS_KINDS[section]) if section else registry_names(LOSS_REGISTRY)
    if not registered(LOSS_REGISTRY, kind):
        raise _unknown_value(f"{key}.type", kind, same_kind, "loss")
    home = next((k for k, names in LOSS_KINDS.items() if kind in names), None)
    if section and home not in (None, section):  # a loss of another kind (a registered custom loss is fine)
        raise OptionsError(
            f"{key}.type", f"{kind} is not a {section[: -len('_opt')]} loss: give it as train.{home}"
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
            raise _unknown_value(f"{where}.type", kind, registry_names(METRIC_REGISTRY), "metric")
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
