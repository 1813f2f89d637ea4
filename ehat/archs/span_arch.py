"""SPAN: Swift Parameter-free Attention Network (Wan et al., arXiv 2311.12770), read top-down.

Conv3XC (a 3x3 conv trained as three branches, re-parameterised into one) -> SPAB (three Conv3XC
with SiLU and the parameter-free attention ``sigmoid(y) - 0.5``) -> SPAN (conv_1, SPABs, conv_2,
a 1x1 fusion of four features, pixel-shuffle upsampler).

SPAN won the NTIRE 2024 Efficient SR challenge (team 38, XiaomiMM) and is the NTIRE 2026
baseline; the released file (``span_ntire_x4.pth`` == ``team00_SPAN.pth``) holds the **fused**
form only: every Conv3XC is one ``eval_conv`` 3x3 conv, no branch weights.

Two forms, one class (``fused`` constructor argument):

- training form (``fused=False``): each Conv3XC is ``sk`` (1x1) + ``conv`` (1x1 expand by ``gain``
  -> 3x3 valid on the zero-padded input -> 1x1 reduce); keys ``*.sk.*``, ``*.conv.{0,1,2}.*``;
- fused form (``fused=True``): each Conv3XC is ``eval_conv`` (3x3, padding 1); keys
  ``*.eval_conv.*``, the release's layout.

:meth:`SPAN.fuse` turns the first into the second in place (all linear, so the output is the same
to float rounding); the descriptor's ``prepare_for_inference`` calls it before evaluation, export
and submission. Unlike the reference code, the forward never rewrites weights: the training form
computes its branches in eval mode too, and the fused form has no branches left.

Images are (B, C, H, W) in [0, 1] (data range 1); the network subtracts the DIV2K RGB mean and
multiplies by ``img_range`` (255 in the release) inside, and writes [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ehat.archs.descriptor import NetworkDescriptor, StateDictError, register_network

RGB_MEAN = (0.4488, 0.4371, 0.4040)


class Conv3XC(nn.Module):
    """A 3x3 conv (padding 1) that trains as ``sk(x) + c3(c2(c1(pad(x))))`` and fuses into one conv.

    ``c1``: 1x1, in -> in*gain; ``c2``: 3x3 valid, in*gain -> out*gain; ``c3``: 1x1, out*gain -> out;
    ``sk``: 1x1 in -> out. The input is zero-padded *before* ``c1``, so the padded border carries
    ``c1``'s bias into ``c2`` exactly as the fused conv's bias term does: the fusion is exact.

    (B, in, H, W) -> (B, out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, gain: int = 2, fused: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.gain = in_channels, out_channels, gain
        if fused:
            self.eval_conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        else:
            self.sk = nn.Conv2d(in_channels, out_channels, 1)
            self.conv = nn.Sequential(
                nn.Conv2d(in_channels, in_channels * gain, 1),
                nn.Conv2d(in_channels * gain, out_channels * gain, 3),
                nn.Conv2d(out_channels * gain, out_channels, 1),
            )

    @property
    def fused(self) -> bool:
        return "eval_conv" in self._modules

    def fused_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 conv equal to the branches: weight (out, in, 3, 3), bias (out,).

        ``W = w3 . w2 . w1`` (per tap) plus ``sk`` at the centre tap;
        ``b = w3 (sum_taps(w2) b1 + b2) + b3 + b_sk``. Computed in float64, returned in the weights' dtype.
        """
        if self.fused:
            return self.eval_conv.weight, self.eval_conv.bias
        c1, c2, c3 = self.conv
        dtype = c2.weight.dtype
        w1 = c1.weight.detach().double()[:, :, 0, 0]  # (M, in)
        w2 = c2.weight.detach().double()  # (N, M, 3, 3)
        w3 = c3.weight.detach().double()[:, :, 0, 0]  # (out, N)
        weight = torch.einsum("on,nmhw,mi->oihw", w3, w2, w1)
        weight[:, :, 1, 1] += self.sk.weight.detach().double()[:, :, 0, 0]
        inner = w2.sum(dim=(2, 3)) @ c1.bias.detach().double() + c2.bias.detach().double()
        bias = w3 @ inner + c3.bias.detach().double() + self.sk.bias.detach().double()
        return weight.to(dtype), bias.to(dtype)

    def fuse(self) -> Conv3XC:
        """Replace the branches by ``eval_conv`` in place (no-op when already fused); returns self."""
        if not self.fused:
            weight, bias = self.fused_weight_and_bias()
            eval_conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1)
            eval_conv.to(device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                eval_conv.weight.copy_(weight)
                eval_conv.bias.copy_(bias)
            del self.sk, self.conv
            self.eval_conv = eval_conv
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self.eval_conv(x)
        return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)


class SPAB(nn.Module):
    """Swift parameter-free attention block: (B, C, H, W) -> (out, feature), both (B, C, H, W).

    ``feature = silu(c1_r(x))``; ``y = c3_r(silu(c2_r(feature)))``; ``out = (y + x) * (sigmoid(y) - 0.5)``.
    ``feature`` is what the reference code's in-place SiLU leaves in ``c1_r``'s output, which SPAN
    concatenates from the last block.
    """

    def __init__(self, channels: int, gain: int = 2, fused: bool = False) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels, gain, fused)
        self.c2_r = Conv3XC(channels, channels, gain, fused)
        self.c3_r = Conv3XC(channels, channels, gain, fused)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = F.silu(self.c1_r(x))
        y = self.c3_r(F.silu(self.c2_r(feature)))
        return (y + x) * (torch.sigmoid(y) - 0.5), feature


class SPAN(nn.Module):
    """SPAN, x``upscale`` SR on [0, 1] images.

    Args:
        in_channels / out_channels: image channels (3).
        feature_channels: trunk width (28 in the NTIRE release, 48 in the paper's large model).
        num_blocks: number of SPABs (6 in every release).
        upscale: scale factor.
        img_range: the factor applied after the mean shift (255 in the release, which reads [0, 1]).
        rgb_mean: the mean subtracted from the input (DIV2K's).
        gain: the branch expansion of each Conv3XC (2).
        fused: build the fused (release) form instead of the training form; see :meth:`fuse`.

    Forward: (B, C, H, W) in [0, 1], any H, W >= 1 -> (B, C, H*upscale, W*upscale). The fusion
    conv ``conv_cat`` takes [conv_1 output, conv_2(last block), block 1's output, the last block's
    ``feature``].
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        feature_channels: int = 48,
        num_blocks: int = 6,
        upscale: int = 4,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = RGB_MEAN,
        gain: int = 2,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"SPAN needs num_blocks >= 1, got {num_blocks}")
        self.upscale = upscale
        self.img_range = img_range
        self.num_blocks = num_blocks
        self.register_buffer(
            "mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.conv_1 = Conv3XC(in_channels, feature_channels, gain, fused)
        for i in range(1, num_blocks + 1):  # block_1..block_N as in the released weights
            self.add_module(f"block_{i}", SPAB(feature_channels, gain, fused))
        self.conv_cat = nn.Conv2d(feature_channels * 4, feature_channels, 1)
        self.conv_2 = Conv3XC(feature_channels, feature_channels, gain, fused)
        self.upsampler = nn.Sequential(
            nn.Conv2d(feature_channels, out_channels * upscale**2, 3, padding=1), nn.PixelShuffle(upscale)
        )

    @property
    def fused(self) -> bool:
        """Whether every Conv3XC is in the fused (release) form."""
        return all(m.fused for m in self.modules() if isinstance(m, Conv3XC))

    def fuse(self) -> SPAN:
        """Re-parameterise every Conv3XC into its single 3x3 conv, in place; returns self.

        The output is unchanged (to ~1e-6 in fp32); the state dict then has the release's layout,
        and ``arch_config`` (when set by ``build_network``) says ``fused: True``.
        """
        for m in self.modules():
            if isinstance(m, Conv3XC):
                m.fuse()
        if isinstance(getattr(self, "arch_config", None), dict):
            self.arch_config = {**self.arch_config, "fused": True}
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H*upscale, W*upscale) in [0, 1]."""
        x = (x - self.mean.to(x.dtype)) * self.img_range
        shallow = self.conv_1(x)
        out, feature = self.block_1(shallow)
        first = out
        for i in range(2, self.num_blocks + 1):
            out, feature = getattr(self, f"block_{i}")(out)
        out = self.conv_cat(torch.cat([shallow, self.conv_2(out), first, feature], dim=1))
        return self.upsampler(out)


def fuse_span(model: nn.Module) -> nn.Module:
    """``prepare_for_inference`` of SPAN: fuse every Conv3XC (no-op for the fused form); returns ``model``."""
    return model.fuse() if isinstance(model, SPAN) else model


_EVAL = "conv_1.eval_conv.weight"
_BRANCH = "conv_1.sk.weight"


def is_span_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict has SPAN's layout (either form)."""
    return (_EVAL in state_dict or _BRANCH in state_dict) and "conv_cat.weight" in state_dict


def span_config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Read SPAN's constructor arguments (no ``type``) off a state dict's keys and shapes.

    The form follows the keys: ``*.sk.*`` / ``*.conv.N.*`` -> ``fused=False``; ``*.eval_conv.*`` only
    -> ``fused=True``. ``img_range`` and ``rgb_mean`` are not stored in any SPAN file: the release's
    values (255, DIV2K mean) are assumed. A training-form file that also carries ``eval_conv``
    (the reference code's checkpoints) is a :class:`StateDictError`: those ``eval_conv`` weights
    are never used by its forward; drop the ``*.eval_conv.*`` keys (see :func:`drop_stale_eval_convs`).
    """
    fused = _BRANCH not in state_dict
    first = _EVAL if fused else _BRANCH
    needed = [
        first,
        "conv_cat.weight",
        "upsampler.0.weight",
        "block_1.c1_r." + ("eval_conv" if fused else "sk") + ".weight",
    ]
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise StateDictError(
            f"looks like SPAN but lacks {', '.join(missing)}: the file is incomplete or of another network"
        )
    if not fused and any(k.endswith(".eval_conv.weight") for k in state_dict):
        raise StateDictError(
            "a SPAN state dict with both training branches (*.sk.*, *.conv.N.*) and *.eval_conv.* keys: the "
            "reference code recomputes eval_conv from the branches, so its stored values are unused; drop the "
            "*.eval_conv.* keys (ehat.archs.span_arch.drop_stale_eval_convs) and load the rest"
        )
    feature_channels, in_channels = state_dict[first].shape[:2]
    num_blocks = len({int(m.group(1)) for k in state_dict if (m := re.match(r"block_(\d+)\.", k))})
    out_ch_sq = state_dict["upsampler.0.weight"].shape[0]
    out_channels = int(in_channels)
    upscale = round((out_ch_sq / out_channels) ** 0.5)
    cfg: dict[str, Any] = {
        "in_channels": int(in_channels),
        "out_channels": out_channels,
        "feature_channels": int(feature_channels),
        "num_blocks": num_blocks,
        "upscale": int(upscale),
        "img_range": 255.0,  # not stored in SPAN files: the release's value
        "fused": fused,
    }
    if not fused:
        cfg["gain"] = int(state_dict["conv_1.conv.0.weight"].shape[0]) // int(in_channels)
    return cfg


def drop_stale_eval_convs(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A reference-code training checkpoint (branches + ``eval_conv``) without its unused ``eval_conv`` keys."""
    if _BRANCH not in state_dict:
        return dict(state_dict)
    return {k: v for k, v in state_dict.items() if ".eval_conv." not in k}


register_network(
    NetworkDescriptor(
        name="SPAN",
        cls=SPAN,
        detect=is_span_state_dict,
        infer_config=span_config_from_state_dict,
        layout="conv_1.eval_conv.weight (fused) or conv_1.sk.weight (training form), conv_cat.weight",
        data_range=1.0,  # reads and writes [0, 1]; img_range 255 is applied inside
        compile_blocks=(SPAB,),
        source_modules=("ehat.archs.span_arch",),
        prepare_for_inference=fuse_span,
    )
)
