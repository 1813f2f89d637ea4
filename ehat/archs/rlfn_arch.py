"""RLFN: Residual Local Feature Network (Kong et al., NTIRE 2022 Efficient SR winner).

Reads top-down as the paper's figure: ESA (enhanced spatial attention) -> RLFB (residual local
feature block) -> RLFN (conv_1, RLFBs, conv_2 + long skip, pixel-shuffle upsampler).

Two released checkpoints share this class (parameter names follow the release so both load with
``strict=True``); their configs and files are the presets ``rlfn`` (``rlfn_x4.pth``, the paper
model) and ``rlfn_ntire`` (``rlfn_ntire_x4.pth`` == NTIRE 2024 ``team00_rlfn.pth``, the challenge
baseline) in :mod:`ehat.archs.presets`.

RLFN works on images in [0, 255] (``img_range`` = 255): no mean shift, no normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ehat.archs.descriptor import ExportStep, NetworkDescriptor, StateDictError, register_network

# The smallest LR side ESA accepts: a 3x3 stride-2 conv then a 7x7 stride-3 max-pool need >= 15.
MIN_INPUT_SIZE = 15

# Keys every RLFN state dict has; the config is read off their shapes.
RLFN_KEYS = ("conv_1.weight", "block_1.c1_r.weight", "block_1.esa.conv1.weight", "upsampler.0.weight")


def _conv(
    in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int | None = None
) -> nn.Conv2d:
    """A conv with 'same' padding unless ``padding`` is given."""
    if padding is None:
        padding = (kernel_size - 1) // 2
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding)


class ESA(nn.Module):
    """Enhanced Spatial Attention as simplified in RLFN (no ``conv_max`` / ``conv3_``).

    A 1x1 reduction to ``esa_channels``, a strided conv + 7x7/3 max-pool for a large receptive
    field, a 3x3 conv, bilinear upsampling back to (H, W), a 1x1 expansion and a sigmoid mask.
    Input and output: (B, C, H, W) with H, W >= 15.
    """

    def __init__(self, esa_channels: int, num_feat: int) -> None:
        super().__init__()
        self.conv1 = _conv(num_feat, esa_channels, 1)
        self.conv_f = _conv(esa_channels, esa_channels, 1)
        self.conv2 = _conv(esa_channels, esa_channels, 3, stride=2, padding=0)
        self.conv3 = _conv(esa_channels, esa_channels, 3)
        self.conv4 = _conv(esa_channels, num_feat, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = F.max_pool2d(self.conv2(reduced), kernel_size=7, stride=3)
        coarse = F.interpolate(self.conv3(coarse), size=x.shape[-2:], mode="bilinear", align_corners=False)
        mask = torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))
        return x * mask


class RLFB(nn.Module):
    """Residual Local Feature Block: three 3x3 conv + LeakyReLU(0.05), a residual, a 1x1 conv, ESA.

    (B, C, H, W) -> (B, C, H, W); the inner convs use ``mid_channels``.
    """

    def __init__(self, num_feat: int, mid_channels: int, esa_channels: int = 16) -> None:
        super().__init__()
        self.c1_r = _conv(num_feat, mid_channels, 3)
        self.c2_r = _conv(mid_channels, mid_channels, 3)
        self.c3_r = _conv(mid_channels, num_feat, 3)
        self.c5 = _conv(num_feat, num_feat, 1)
        self.esa = ESA(esa_channels, num_feat)
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


class RLFN(nn.Module):
    """Residual Local Feature Network, x``upscale`` SR on [0, 255] images.

    Args:
        in_channels / out_channels: image channels (3).
        feature_channels: width of the trunk (52 paper, 46 NTIRE baseline).
        mid_channels: width inside each RLFB (defaults to ``feature_channels``; 48 in the baseline).
        num_blocks: number of RLFBs (6 paper, 4 baseline).
        esa_channels: ESA reduction width (16).
        upscale: scale factor.

    Forward: (B, 3, H, W) in [0, 255], any H, W >= 1 -> (B, 3, H*upscale, W*upscale). Inputs with a
    side under 15 px (ESA's minimum) are reflect/replicate-padded and the output cropped back.
    """

    img_range = 255.0

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        feature_channels: int = 52,
        mid_channels: int | None = None,
        num_blocks: int = 6,
        esa_channels: int = 16,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        mid_channels = feature_channels if mid_channels is None else mid_channels
        self.upscale = upscale
        self.num_blocks = num_blocks
        self.conv_1 = _conv(in_channels, feature_channels, 3)
        for i in range(1, num_blocks + 1):  # named block_1..block_N as in the released weights
            self.add_module(f"block_{i}", RLFB(feature_channels, mid_channels, esa_channels))
        self.conv_2 = _conv(feature_channels, feature_channels, 3)
        self.upsampler = nn.Sequential(
            _conv(feature_channels, out_channels * upscale**2, 3), nn.PixelShuffle(upscale)
        )

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """Pad (B, C, h, w) at the bottom/right up to ESA's minimum side (reflect, or replicate when a
        side is too small to mirror); unchanged when both sides are large enough."""
        h, w = x.shape[-2:]
        ph, pw = max(0, MIN_INPUT_SIZE - h), max(0, MIN_INPUT_SIZE - w)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) in [0, 255] -> (B, C, h*upscale, w*upscale)."""
        h, w = x.shape[-2:]
        shallow = self.conv_1(self.pad_input(x))
        out = shallow
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
        out = self.upsampler(self.conv_2(out) + shallow)
        return out[..., : h * self.upscale, : w * self.upscale]


def rlfn_config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Read RLFN's constructor arguments (no ``type``) off a state dict's keys and shapes.

    Raises :class:`ehat.archs.descriptor.StateDictError` naming the missing keys when the dict is
    not a complete RLFN checkpoint.
    """
    missing = [k for k in RLFN_KEYS if k not in state_dict]
    if missing:
        raise StateDictError(
            f"looks like RLFN (has conv_1.weight) but lacks {', '.join(missing)}: "
            "the file is incomplete or of another network"
        )
    feature_channels, in_channels = state_dict["conv_1.weight"].shape[:2]
    num_blocks = 0
    while f"block_{num_blocks + 1}.c1_r.weight" in state_dict:
        num_blocks += 1
    out_ch_sq = state_dict["upsampler.0.weight"].shape[0]
    out_channels = in_channels
    upscale = round((out_ch_sq / out_channels) ** 0.5)
    return {
        "in_channels": int(in_channels),
        "out_channels": int(out_channels),
        "feature_channels": int(feature_channels),
        "mid_channels": int(state_dict["block_1.c1_r.weight"].shape[0]),
        "num_blocks": num_blocks,
        "esa_channels": int(state_dict["block_1.esa.conv1.weight"].shape[0]),
        "upscale": int(upscale),
    }


register_network(
    NetworkDescriptor(
        name="RLFN",
        cls=RLFN,
        detect=lambda sd: "conv_1.weight" in sd,
        infer_config=rlfn_config_from_state_dict,
        layout="conv_1.weight, block_N...",
        data_range=255.0,  # RLFN reads and writes [0, 255]
        source_modules=("ehat.archs.rlfn_arch",),
        export_steps=(ExportStep(RLFN, "pad_input", "ehat.export.graph:rlfn_pad_input"),),
    )
)
