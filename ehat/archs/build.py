"""``network_g`` -> module: a class or preset name plus arguments, checked against the constructor."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ehat.archs.descriptor import (
    NetworkArgumentError,
    UnknownNetworkError,
    descriptor_of,
    list_networks,
)
from ehat.archs.presets import list_presets, preset_config
from ehat.errors import did_you_mean

__all__ = ["build_network", "create_model", "network_kwargs", "resolve_network_config"]


def _arch_class(type_name: str) -> type[nn.Module]:
    """The class registered as ``type_name`` (see :func:`register_network`), else basicsr's network
    of that name (``SRVGGNetCompact``, the discriminators: loads basicsr, only then)."""
    if type_name in list_networks():
        return descriptor_of(type_name).cls
    from basicsr.utils.registry import ARCH_REGISTRY

    for name in (type_name, f"{type_name}_basicsr"):  # basicsr suffixes the names it would clash on
        if name in ARCH_REGISTRY:
            return ARCH_REGISTRY.get(name)
    known = sorted({name for name, _ in ARCH_REGISTRY} | set(list_networks()) | set(list_presets()))
    raise UnknownNetworkError(
        f"network_g.type: unknown network {type_name!r}{did_you_mean(type_name, known)}; "
        f"known classes and presets: {', '.join(known)}"
    )


def network_kwargs(cls: type[nn.Module]) -> dict[str, inspect.Parameter]:
    """Constructor parameters of ``cls`` (for EHAT: its own plus HAT's)."""
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if klass is nn.Module or not issubclass(klass, nn.Module):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params[name] = p
    return params


def resolve_network_config(opt: dict[str, Any]) -> dict[str, Any]:
    """Expand a preset name in ``opt['type']`` into its full config; other keys override it."""
    opt = dict(opt)
    if "type" not in opt:
        raise UnknownNetworkError(
            f"network_g.type: is required: give a class name (HAT, EHAT, RLFN) or a preset "
            f"({', '.join(list_presets())})"
        )
    type_name = opt.pop("type")
    if type_name in list_presets():
        base = preset_config(type_name)
        base.update(opt)
        return base
    return {"type": type_name, **opt}


def build_network(opt: dict[str, Any]) -> nn.Module:
    """Build a network from a BasicSR ``network_g`` dict: ``type`` (class or preset) + arguments.

    An unknown type is an :class:`UnknownNetworkError`, an unknown argument a
    :class:`NetworkArgumentError`, both naming ``network_g.<key>`` (and the closest valid name).
    """
    cfg = resolve_network_config(opt)
    type_name = cfg.pop("type")
    cls = _arch_class(type_name)
    valid = network_kwargs(cls)
    for key in cfg:
        if key not in valid:
            raise NetworkArgumentError(
                f"network_g.{key}: {type_name} has no argument {key!r}{did_you_mean(key, valid)}"
            )
    model = cls(**cfg)
    model.arch_config = {"type": type_name, **cfg}
    return model


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build preset ``name`` with ``overrides`` applied to its arguments."""
    return build_network({**preset_config(name), **overrides})
