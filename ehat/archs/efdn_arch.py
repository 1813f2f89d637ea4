"""EFDN: Edge-enhanced Feature Distillation Network (Wang, arXiv 2204.08759), the NTIRE 2025 ESR baseline.

ESA (enhanced spatial attention, the full form) -> Cell (a 1x1 and two 3x3 convs with PReLU, four
1x1 distillation branches fused by a 1x1, ESA, a residual) -> EFDN (head, four cells with local
fusions, long skip, pixel-shuffle tail, output clamped to [0, 1]).

The released network (NTIRE2025_ESR ``model_zoo/team00_EFDN.pth``, 276,192 params) is the deployed
form: each edge-enhanced diverse branch block (EDBB: 3x3 + 1x1 + Sobel-x/y + Laplacian branches)
is already re-parameterised into one 3x3 conv (``rep_conv``) with its PReLU; that is the only form
built here. Parameter names follow the release, so it loads with ``strict=True``.

Images are (B, C, H, W) in [0, 1] (data range 1), no mean shift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ehat.archs.descriptor import (
    ExportStep,
    NetworkDescriptor,
    StateDictError,
    count_indexed,
    register_network,
)
from ehat.archs.rlfn_arch import RLFN

# Keys every EFDN state dict has; the config is read off their shapes.
EFDN_KEYS = ("head.weight", "cells.0.conv2.rep_conv.weight", "local_fuse.0.weight", "tail.0.weight")


class ESA(nn.Module):
    """Enhanced Spatial Attention, full form (with ``conv_max`` and ``conv3_``); (B, C, H, W), H, W >= 15.

    1x1 reduction to C/4, strided 3x3 + 7x7/3 max-pool, ReLU(conv_max), ReLU(conv3), conv3_, bilinear
    back to (H, W), plus ``conv_f`` of the reduction, 1x1 expansion, sigmoid mask on ``x``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        f = channels // 4
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = F.max_pool2d(self.conv2(reduced), kernel_size=7, stride=3)
        coarse = F.relu(self.conv3(F.relu(self.conv_max(coarse))))
        coarse = F.interpolate(self.conv3_(coarse), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))


class ConvAct(nn.Module):
    """A conv and a per-channel PReLU: (B, C, H, W) -> (B, C, H, W).

    ``kernel_size`` 1 is the cell's first step (keys ``conv1x1``, ``act``); 3 is a deployed EDBB
    (keys ``rep_conv``, ``act``).
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv_name = "conv1x1" if kernel_size == 1 else "rep_conv"
        self.add_module(self.conv_name, conv)
        self.act = nn.PReLU(num_parameters=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(getattr(self, self.conv_name)(x))


class Cell(nn.Module):
    """EFDN's cell: ``x -> c1 -> c2 -> c3``, the four features (x, c1, c2, c3) each reduced to C/2 by a
    1x1 ``branch``, concatenated, fused by a 1x1, ESA, plus ``x``. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvAct(channels, 1)
        self.conv2 = ConvAct(channels, 3)
        self.conv3 = ConvAct(channels, 3)
        self.fuse = nn.Conv2d(channels * 2, channels, 1)
        self.att = ESA(channels)
        self.branch = nn.ModuleList([nn.Conv2d(channels, channels // 2, 1) for _ in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        features = [b(f) for b, f in zip(self.branch, (x, out1, out2, out3), strict=True)]
        return self.att(self.fuse(torch.cat(features, dim=1))) + x


class EFDN(nn.Module):
    """EFDN, x``upscale`` SR on [0, 1] images (deployed form).

    Args:
        in_channels / out_channels: image channels (3).
        feature_channels: trunk width (48 in the release).
        upscale: scale factor.

    Forward: (B, C, H, W) in [0, 1], any H, W >= 1 -> (B, C, H*upscale, W*upscale), clamped to [0, 1].
    The four cells are chained through 1x1 ``local_fuse`` convs of [out1, out2], [out2, out3] and
    [out2, out4] (the release's wiring). Inputs with a side under 15 px (ESA's minimum) are padded
    and the output cropped back, as RLFN's are.
    """

    num_cells = 4
    pad_input = RLFN.pad_input  # the one minimum-size padding of ESA networks (export swaps it)

    def __init__(
        self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 48, upscale: int = 4
    ) -> None:
        super().__init__()
        self.upscale = upscale
        self.head = nn.Conv2d(in_channels, feature_channels, 3, padding=1)
        self.cells = nn.ModuleList([Cell(feature_channels) for _ in range(self.num_cells)])
        self.local_fuse = nn.ModuleList(
            [nn.Conv2d(feature_channels * 2, feature_channels, 1) for _ in range(3)]
        )
        self.tail = nn.Sequential(
            nn.Conv2d(feature_channels, out_channels * upscale**2, 3, padding=1), nn.PixelShuffle(upscale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) in [0, 1] -> (B, C, h*upscale, w*upscale) in [0, 1]."""
        h, w = x.shape[-2:]
        out0 = self.head(self.pad_input(x))
        out1 = self.cells[0](out0)
        out2 = self.cells[1](out1)
        out3 = self.cells[2](self.local_fuse[0](torch.cat([out1, out2], dim=1)))
        out4 = self.cells[3](self.local_fuse[1](torch.cat([out2, out3], dim=1)))
        out = self.local_fuse[2](torch.cat([out2, out4], dim=1)) + out0
        out = self.tail(out).clamp(0, 1)
        return out[..., : h * self.upscale, : w * self.upscale]


def efdn_config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Read EFDN's constructor arguments (no ``type``) off a state dict; :class:`StateDictError` names
    missing keys. A training-form file (EDBB branches: ``*.conv1x1_sbx.*`` ...) is refused: only the
    deployed form is built here."""
    missing = [k for k in EFDN_KEYS if k not in state_dict]
    if missing:
        raise StateDictError(
            f"looks like EFDN (has head.weight) but lacks {', '.join(missing)}: the file is incomplete or of "
            "another network (a training-form EFDN with EDBB branches must be re-parameterised first)"
        )
    cells = count_indexed(state_dict, "cells")
    if cells != EFDN.num_cells:
        raise StateDictError(f"EFDN has {EFDN.num_cells} cells; the state dict has {cells} (cells.N.* keys)")
    feature_channels, in_channels = state_dict["head.weight"].shape[:2]
    out_ch_sq = state_dict["tail.0.weight"].shape[0]
    return {
        "in_channels": int(in_channels),
        "out_channels": int(in_channels),
        "feature_channels": int(feature_channels),
        "upscale": round((out_ch_sq / int(in_channels)) ** 0.5),
    }


register_network(
    NetworkDescriptor(
        name="EFDN",
        cls=EFDN,
        detect=lambda sd: "head.weight" in sd and "local_fuse.0.weight" in sd,
        infer_config=efdn_config_from_state_dict,
        layout="head.weight, cells.N.conv2.rep_conv.weight, local_fuse.N.weight, tail.0.weight",
        data_range=1.0,
        compile_blocks=(Cell,),
        source_modules=("ehat.archs.rlfn_arch", "ehat.archs.efdn_arch"),
        export_steps=(ExportStep(EFDN, "pad_input", "ehat.export.graph:rlfn_pad_input"),),
    )
)
