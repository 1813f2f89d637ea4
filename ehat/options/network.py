"""``network_g`` / ``network_d``: a registered network class or a preset, and its constructor arguments.

Checked through the archs API (:func:`ehat.archs.preset_config`, :func:`ehat.archs.network_kwargs`):
the type against the registry (a typo answered with a name of the same role), the arguments by
name and by annotated type, and HAT's channel arithmetic, which the constructor would only break
at the first forward pass.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from basicsr.utils.registry import ARCH_REGISTRY

import ehat.archs as archs
from ehat.options.converters import annotation_converter, as_int, converter, list_of
from ehat.options.registries import (
    lookup,
    registered,
    registry_names,
    typed_mapping,
    unknown_argument,
    unknown_value,
)
from ehat.options.schema import OptionsError

__all__ = ["NOT_NETWORKS", "arch_names", "check_discriminator", "check_network", "is_discriminator"]


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
    names = [n for n in registry_names(ARCH_REGISTRY) if n not in NOT_NETWORKS]
    return [n for n in names if is_discriminator(n) == (role == "discriminator")]


@converter("mapping (type + constructor arguments)", dict)
def check_network(value: Any, key: str = "network_g", role: str = "generator") -> dict[str, Any]:
    """``network_g``: a registered class or a preset name, plus constructor arguments checked by name,
    by type where annotated int/float/bool/str, and against HAT's channel rules. Returned as the
    dict :func:`ehat.archs.build_network` takes. ``role='discriminator'`` (``network_d``): registered
    discriminators only. A typo is answered with a name of the same role."""
    kind, kwargs = typed_mapping(value, key)
    presets = archs.list_presets() if role == "generator" else []
    base: dict[str, Any] = {}
    if kind in presets:
        base = archs.preset_config(kind)
        cls = lookup(ARCH_REGISTRY, base.pop("type"))
    elif registered(ARCH_REGISTRY, kind) and (role == "generator" or is_discriminator(kind)):
        cls = lookup(ARCH_REGISTRY, kind)
    else:
        raise unknown_value(f"{key}.type", kind, arch_names(role) + presets, f"{role} network type")
    valid = archs.network_kwargs(cls)
    for k in kwargs:
        if k not in valid:
            raise unknown_argument(key, k, valid, cls.__name__)
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in klass.__dict__ and klass.__module__.startswith("ehat"):
            try:
                hints.update(typing.get_type_hints(klass.__init__))
            except Exception:  # noqa: BLE001  (unresolvable annotation: skip type checks)
                pass
    for k, v in kwargs.items():
        convert = annotation_converter(hints.get(k))
        if convert is not None and v is not None:
            convert(v, f"{key}.{k}")
    _network_constraints({**base, **kwargs}, valid)
    return {"type": kind, **kwargs}


@converter("mapping (type + constructor arguments)", dict)
def check_discriminator(value: Any, key: str) -> dict[str, Any]:
    """``network_d``: a registered discriminator (:func:`check_network`, role discriminator)."""
    return check_network(value, key, role="discriminator")
