"""Named network presets (timm style): ``create_model('hat_l')``, each with its known pretrained weights.

A preset is the one home of a published network: its constructor config and the weight files
released for it (:class:`PretrainedWeights`: url, sha256, data range, scale), as timm's
``default_cfgs`` / ``pretrained_cfg`` do. The model zoo's ``--model_id``\\ s are aliases onto a
preset and one of its weights (``ehat.zoo``), not a second table of configs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ehat.archs.descriptor import (  # the errors live with the registry (re-exported here)
    NetworkArgumentError,
    NetworkConfigError,
    UnknownNetworkError,
)
from ehat.errors import did_you_mean

__all__ = [
    "NetworkArgumentError",
    "NetworkConfigError",
    "PretrainedWeights",
    "Preset",
    "UnknownNetworkError",
    "get_preset",
    "list_presets",
    "list_pretrained",
    "preset_config",
    "pretrained_weights",
    "register_preset",
]


@dataclass(frozen=True)
class PretrainedWeights:
    """One released weights file of a preset.

    ``file``: the released file name; ``url``: a direct download (None: no stable direct link is
    known; ``source`` says where it is published); ``sha256``: the file's hex SHA-256, None when we
    have never had the file to compute it (a download is then reported as unverified, never
    passed off as verified); ``data_range``: the network's input/output range (1.0 for [0, 1],
    255.0 for [0, 255]); ``scale``: the upscaling factor.
    """

    file: str
    url: str | None
    sha256: str | None
    data_range: float
    scale: int
    source: str = ""


@dataclass(frozen=True)
class Preset:
    """A named network: ``config()`` -> {'type': class name, **kwargs}, plus its weights by tag."""

    name: str
    config: Callable[[], dict[str, Any]]
    weights: Mapping[str, PretrainedWeights] = field(default_factory=dict)
    default_tag: str | None = None

    @property
    def doc(self) -> str:
        """First line of the preset function's docstring."""
        return (self.config.__doc__ or "").strip().splitlines()[0] if self.config.__doc__ else ""


_PRESETS: dict[str, Preset] = {}


def register_preset(
    fn: Callable[[], dict[str, Any]] | None = None,
    *,
    weights: Mapping[str, PretrainedWeights] | None = None,
) -> Any:
    """Register ``fn`` (returning {'type': ..., **kwargs}) under its function name.

    Use bare (``@register_preset``) or with the preset's released weights by tag
    (``@register_preset(weights={'ntire': PretrainedWeights(...)})``); the first tag is the default.
    """

    def add(f: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        tags = MappingProxyType(dict(weights or {}))
        _PRESETS[f.__name__] = Preset(f.__name__, f, tags, next(iter(tags), None))
        return f

    return add(fn) if fn is not None else add


def list_presets() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name is an :class:`UnknownNetworkError` listing the known ones."""
    if name not in _PRESETS:
        raise UnknownNetworkError(
            f"unknown network preset {name!r}{did_you_mean(name, _PRESETS)}; known presets: "
            f"{', '.join(list_presets())}",
        )
    return _PRESETS[name]


def preset_config(name: str) -> dict[str, Any]:
    """The full config {'type': class name, **kwargs} of preset ``name``."""
    return dict(get_preset(name).config())


def pretrained_weights(name: str, tag: str | None = None) -> PretrainedWeights:
    """The released weights ``tag`` (default: the preset's first) of preset ``name``."""
    preset = get_preset(name)
    tag = preset.default_tag if tag is None else tag
    if tag is None or tag not in preset.weights:
        known = ", ".join(preset.weights) or "none"
        raise UnknownNetworkError(
            f"preset {name!r} has no pretrained weights {tag!r}{did_you_mean(str(tag), preset.weights)}; "
            f"its weights: {known}",
        )
    return preset.weights[tag]


def list_pretrained() -> list[tuple[str, str, PretrainedWeights]]:
    """Every (preset, tag, weights) known, sorted by preset name."""
    return [(name, tag, w) for name in list_presets() for tag, w in _PRESETS[name].weights.items()]


# --------------------------------------------------------------------------- HAT family

_EHAT_RELEASE = "https://github.com/notiom/Ehat/releases/download/vv2.0.0"
_HAT_OFFICIAL = "official HAT release (XPixelGroup/HAT README: Google Drive / Baidu links, no direct URL)"


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


@register_preset(weights={"official": PretrainedWeights("HAT-S_SRx4.pth", None, None, 1.0, 4, _HAT_OFFICIAL)})
def hat_s() -> dict[str, Any]:
    """HAT-S x4: embed 144, 6 groups of 6, compress 24, squeeze 24 (9,621,183 params)."""
    return _hat_common(embed_dim=144, compress_ratio=24, squeeze_factor=24)


@register_preset(
    weights={
        "official": PretrainedWeights("HAT_SRx4.pth", None, None, 1.0, 4, _HAT_OFFICIAL),
        "imagenet": PretrainedWeights("HAT_SRx4_ImageNet-pretrain.pth", None, None, 1.0, 4, _HAT_OFFICIAL),
    }
)
def hat() -> dict[str, Any]:
    """HAT x4: embed 180, 6 groups of 6 (20,772,507 params)."""
    return _hat_common()


@register_preset(
    weights={
        "imagenet": PretrainedWeights(
            "preHAT_L_x4.pth",
            f"{_EHAT_RELEASE}/preHAT_L_x4.pth",
            None,
            1.0,
            4,
            "official ImageNet-pretrained HAT-L x4 (HAT-L_SRx4_ImageNet-pretrain.pth), the team's mirror",
        ),
    }
)
def hat_l() -> dict[str, Any]:
    """HAT-L x4: embed 180, 12 groups of 6 (40,846,575 params)."""
    return _hat_common(depths=[6] * 12, num_heads=[6] * 12)


@register_preset(
    weights={
        "skdaddys": PretrainedWeights(
            "SKDADDYS_Ehat.pth",
            f"{_EHAT_RELEASE}/SKDADDYS_Ehat.pth",
            None,
            1.0,
            4,
            "team SKDADDYS, NTIRE 2024 ESR (release layout: BSA vectors repeated under every sub-module)",
        ),
    }
)
def ehat_l() -> dict[str, Any]:
    """EHAT-L x4, team SKDADDYS's network: HAT-L + BSA (169 + 157 scalars), no dual attention.

    The release has no dual attention; turn it on with ``dual_attention='body'`` (or 'rhag').
    """
    return {**hat_l(), "type": "EHAT", "bsa": True, "dual_attention": "none"}


@register_preset(
    weights={
        "demo": PretrainedWeights(
            "ehat_tiny_demo_x4.pth",
            None,
            "d77e763f49e702665a6b13354f48fd9dea222889a83987df69a5162dcc0ee2f2",
            1.0,
            4,
            "shipped in model_zoo/ (trained offline on scikit-image photos by "
            "options/train/train_EHAT-tiny_SRx4_CPU_quickstart.yml)",
        ),
    }
)
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


# --------------------------------------------------------------------------- RLFN (NTIRE baseline)

_RLFN_REPO = "https://github.com/bytedance/RLFN/raw/main/model_zoo"


@register_preset(
    weights={
        "paper": PretrainedWeights(
            "rlfn_x4.pth",
            f"{_RLFN_REPO}/rlfn_x4.pth",
            "8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0",
            255.0,
            4,
            "bytedance/RLFN model_zoo/rlfn_x4.pth (Apache-2.0)",
        ),
    }
)
def rlfn() -> dict[str, Any]:
    """RLFN x4, the paper model: 52 channels, 6 blocks, mid 52 (543,740 params), on [0, 255]."""
    return {"type": "RLFN", "feature_channels": 52, "mid_channels": 52, "num_blocks": 6, "upscale": 4}


@register_preset(
    weights={
        "ntire": PretrainedWeights(
            "rlfn_ntire_x4.pth",
            f"{_RLFN_REPO}/rlfn_ntire_x4.pth",
            "3c9be7b9d7a4bece9b68c83a56a1ffb38010f76413d5f215be6b4be842e18fb2",
            255.0,
            4,
            "bytedance/RLFN model_zoo/rlfn_ntire_x4.pth (Apache-2.0) == NTIRE 2024 ESR team00_rlfn.pth",
        ),
    }
)
def rlfn_ntire() -> dict[str, Any]:
    """RLFN x4, the NTIRE 2022-2024 ESR baseline: 46 channels, 4 blocks, mid 48 (317,218 params), [0, 255]."""
    return {"type": "RLFN", "feature_channels": 46, "mid_channels": 48, "num_blocks": 4, "upscale": 4}


# --------------------------------------------------------------------------- SPAN (NTIRE 2024 winner, 2026 baseline)

_NTIRE2026_ZOO = "https://github.com/Amazingren/NTIRE2026_ESR/raw/main/model_zoo"


@register_preset
def span() -> dict[str, Any]:
    """SPAN x4 in its training form: 28 channels, 6 SPABs with Conv3XC branches (fuse() -> ``span_ntire``)."""
    return {"type": "SPAN", "feature_channels": 28, "num_blocks": 6, "upscale": 4, "img_range": 255.0}


@register_preset(
    weights={
        "ntire": PretrainedWeights(
            "team00_SPAN.pth",
            f"{_NTIRE2026_ZOO}/team00_SPAN.pth",
            "6c80f05048313289c6526e5fc9726688d7bb3dfdd6ae3c8b1e7dd09f601e5971",
            1.0,
            4,
            "Amazingren/NTIRE2026_ESR model_zoo/team00_SPAN.pth (MIT) == NTIRE 2024 team38_span_ch28_slim.pth",
        ),
    }
)
def span_ntire() -> dict[str, Any]:
    """SPAN x4 as released (NTIRE 2024 winner, NTIRE 2026 baseline): fused, 28 channels (150,688 params), [0, 1]."""
    return {**span(), "fused": True}


# --------------------------------------------------------------------------- EFDN (NTIRE 2025 baseline)


@register_preset(
    weights={
        "ntire": PretrainedWeights(
            "team00_EFDN.pth",
            "https://github.com/Amazingren/NTIRE2025_ESR/raw/main/model_zoo/team00_EFDN.pth",
            "71069f10ef234cd123f45ac8e69099f0a1fdc0c16afcfe2189e50071d47ce477",
            1.0,
            4,
            "Amazingren/NTIRE2025_ESR model_zoo/team00_EFDN.pth (MIT), the deployed (re-parameterised) form",
        ),
    }
)
def efdn() -> dict[str, Any]:
    """EFDN x4, the NTIRE 2025 ESR baseline, deployed form: 48 channels, 4 cells (276,192 params), [0, 1]."""
    return {"type": "EFDN", "feature_channels": 48, "upscale": 4}
