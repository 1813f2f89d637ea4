"""Named network presets (timm style): ``create_model('hat_l')``.

Each preset is a small function returning the constructor arguments; overrides replace them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_PRESETS: dict[str, Callable[[], dict[str, Any]]] = {}


def register_preset(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Register ``fn`` (returning {'type': ..., **kwargs}) under its function name."""
    _PRESETS[fn.__name__] = fn
    return fn


def list_presets() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_PRESETS)


def preset_config(name: str) -> dict[str, Any]:
    """The full config {'type': class name, **kwargs} of preset ``name``."""
    if name not in _PRESETS:
        raise KeyError(f"unknown network preset {name!r}; known presets: {', '.join(list_presets())}")
    return dict(_PRESETS[name]())


def _hat_common(**kw: Any) -> dict[str, Any]:
    cfg = dict(
        type="HAT",
        upscale=4,
        in_chans=3,
        img_size=64,
        window_size=16,
        compress_ratio=3,
        squeeze_factor=30,
        conv_scale=0.01,
        overlap_ratio=0.5,
        img_range=1.0,
        depths=[6] * 6,
        embed_dim=180,
        num_heads=[6] * 6,
        mlp_ratio=2,
        upsampler="pixelshuffle",
        resi_connection="1conv",
    )
    cfg.update(kw)
    return cfg


@register_preset
def hat_s() -> dict[str, Any]:
    """HAT-S x4: embed 144, 6 groups of 6, compress 24, squeeze 24 (9,621,183 params)."""
    return _hat_common(embed_dim=144, compress_ratio=24, squeeze_factor=24)


@register_preset
def hat() -> dict[str, Any]:
    """HAT x4: embed 180, 6 groups of 6 (20,772,507 params)."""
    return _hat_common()


@register_preset
def hat_l() -> dict[str, Any]:
    """HAT-L x4: embed 180, 12 groups of 6 (40,846,575 params)."""
    return _hat_common(depths=[6] * 12, num_heads=[6] * 12)


@register_preset
def ehat_l() -> dict[str, Any]:
    """EHAT-L x4, team SKDADDYS's network: HAT-L + BSA (169 + 157 scalars), no dual attention.

    The release has no dual attention; turn it on with ``dual_attention='body'`` (or 'rhag').
    """
    return {**hat_l(), "type": "EHAT", "bsa": True, "dual_attention": "none"}


@register_preset
def ehat_tiny() -> dict[str, Any]:
    """A small EHAT x4 for tests and CPU demos: embed 30, 2 groups of 2 HABs, window 8, BSA + DA."""
    return _hat_common(
        type="EHAT",
        embed_dim=30,
        depths=[2, 2],
        num_heads=[3, 3],
        window_size=8,
        squeeze_factor=10,
        drop_path_rate=0.0,
        bsa=True,
        dual_attention="body",
    )


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build preset ``name`` with ``overrides`` applied to its arguments."""
    from ehat.archs import build_network

    return build_network({**preset_config(name), **overrides})
