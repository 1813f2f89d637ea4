"""HAT: Hybrid Attention Transformer (Chen et al., CVPR 2023), read top-down like the paper's figure.

window attention -> CAB -> HAB -> OCAB -> RHAG -> HAT

State-dict keys and shapes equal the official XPixelGroup/HAT layout, so official checkpoints load
with ``strict=True``. Attention takes the relative position bias (plus the shifted-window mask)
as one additive mask and computes the reference formula ``softmax(q k^T * scale + bias + mask) v``
with the kernel named by ``attn_backend`` (see :mod:`ehat.archs.attention`).

Tokens are (B, H*W, C) in LR pixels; images are (B, C, H, W) in [0, 1] * ``img_range``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from torch import nn

from ehat.archs.attention import attention, check_backend
from ehat.archs.descriptor import (
    ExportStep,
    NetworkDescriptor,
    StateDictError,
    count_indexed,
    register_network,
)
from ehat.archs.padding import crop_output, pad_to_multiple
from ehat.errors import EhatError

RGB_MEAN = (0.4488, 0.4371, 0.4040)
SHIFT_MASK_VALUE = -100.0  # the official value (not -inf)


class HATConfigError(EhatError, ValueError):
    """Hyper-parameters that cannot build a working network; the message names the argument."""


# --------------------------------------------------------------------------- pathway weights
# HAT's residual and dense pathways can carry a scalar weight each. Plain HAT has none (every
# field None: identity shortcuts, no dense sums); an extension returns these from the hooks
# ``HAT.group_pathways`` / ``HAT.body_pathways`` and owns where the scalars are stored.


class BlockPathways(NamedTuple):
    """One HAB's pathway scalars: ``cab_identity`` (adds ``w * x`` to CAB's output),
    ``attn_shortcut`` (scales the block input before the attention sum), ``mlp_residual``."""

    cab_identity: torch.Tensor
    attn_shortcut: torch.Tensor
    mlp_residual: torch.Tensor


class GroupPathways(NamedTuple):
    """One RHAG's pathway scalars.

    The OCAB input becomes ``h_last + dense_input * x_in + sum_j dense_blocks[j] * h_j``, the
    group output ``conv(...) + residual * x_in``, and the body's dense sum gains
    ``dense_output * group output``.
    """

    blocks: tuple[BlockPathways, ...]
    dense_input: torch.Tensor
    dense_blocks: tuple[torch.Tensor, ...]
    residual: torch.Tensor
    dense_output: torch.Tensor


class BodyPathways(NamedTuple):
    """Body scalars: the deep features become ``t_last + dense_input * t_0 + sum_i dense_output_i * t_i``
    and the long skip ``long_skip * shallow``."""

    dense_input: torch.Tensor
    long_skip: torch.Tensor


# --------------------------------------------------------------------------- initialization and stochastic depth
# Written here rather than imported from timm, whose import (torchvision, huggingface_hub) costs
# seconds; same algorithms, so initializations and training runs are unchanged.


def trunc_normal_(
    tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> torch.Tensor:
    """Fill ``tensor`` in place from N(mean, std^2) truncated to [a, b], by the inverse CDF of a
    uniform draw on [cdf(a), cdf(b)] (timm's method: one uniform draw per element, no rejection)."""

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1).erfinv_()
        return tensor.mul_(std * math.sqrt(2.0)).add_(mean).clamp_(min=a, max=b)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual path with probability ``drop_prob`` and scale
    the kept ones by 1 / (1 - drop_prob); the identity in eval mode. (B, ...) -> same."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask


# --------------------------------------------------------------------------- window helpers


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws*ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, ws*ws, C) -> (B, H, W, C); inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index_sa(ws: int) -> torch.Tensor:
    """Index (ws*ws, ws*ws) into a ((2ws-1)^2, heads) bias table (Swin's formula)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


def relative_position_index_oca(ws: int, overlap_ratio: float) -> torch.Tensor:
    """Index (ws*ws, ows*ows) into the OCAB bias table of (ws + ows - 1)^2 rows.

    Reproduces the official formula exactly, including its offset ``ws - ows + 1`` that yields
    negative indices (they wrap around the table; the mapping stays one-to-one).
    """
    ows = ws + int(overlap_ratio * ws)
    ori = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    ext = torch.stack(torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")).flatten(1)
    rel = (ext[:, None, :] - ori[:, :, None]).permute(1, 2, 0) + (ws - ows + 1)
    return rel[..., 0] * (ws + ows - 1) + rel[..., 1]


def shift_window_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """The official additive mask (nW, ws*ws, ws*ws) for shifted windows: 0 within a region, -100 across."""
    region = torch.zeros(1, h, w, 1)
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in slices:
        for wsl in slices:
            region[:, hs, wsl, :] = label
            label += 1
    win = window_partition(region, ws).squeeze(-1)  # nW, ws*ws
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK_VALUE)


# After the cyclic shift only four kinds of window exist: interior, last column, last row and the
# corner. All windows of a kind share one mask, so attention runs kind by kind with a (heads, N, N)
# mask instead of materializing a (nW, heads, N, N) one in every block.


@lru_cache(maxsize=16)
def shift_kind_masks(ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """(4, ws*ws, ws*ws) masks of the interior, last-column, last-row and corner windows.

    Independent of the image size; cached per device (a pure function, never mutated).
    """
    return shift_window_mask(2 * ws, 2 * ws, ws, shift).to(device)


def partition_by_kind(x: torch.Tensor, ws: int) -> tuple[torch.Tensor, list[int]]:
    """(B, H, W, C) -> windows (B*nW, ws*ws, C) grouped by kind, and the window count of each kind."""
    b, h, w, c = x.shape
    hi, wi = h - ws, w - ws
    parts = (x[:, :hi, :wi], x[:, :hi, wi:], x[:, hi:, :wi], x[:, hi:, wi:])
    counts = [b * (p.shape[1] // ws) * (p.shape[2] // ws) for p in parts]
    return torch.cat([window_partition(p, ws) for p, n in zip(parts, counts) if n]), counts


def reverse_by_kind(windows: torch.Tensor, counts: list[int], ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`partition_by_kind`: (B*nW, ws*ws, C) -> (B, H, W, C)."""
    hi, wi = h - ws, w - ws
    inter, col, row, corner = windows.split(counts)
    top = [window_reverse(t, ws, hi, ww) for t, ww in ((inter, wi), (col, ws)) if t.numel()]
    bottom = [window_reverse(t, ws, ws, ww) for t, ww in ((row, wi), (corner, ws)) if t.numel()]
    rows = [torch.cat(r, dim=2) for r in (top, bottom) if r]
    return torch.cat(rows, dim=1)


# --------------------------------------------------------------------------- attention


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a relative position bias.

    Args: dim, window_size, num_heads, qkv_bias, qk_scale (default head_dim**-0.5), attn_drop, proj_drop,
    attn_backend (``auto | explicit | sdpa | flex``, see :mod:`ehat.archs.attention`; not a weight).
    Input (B*nW, ws*ws, C) -> output of the same shape.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        attn_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.attn_backend = check_backend(attn_backend)
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_bias(self, rpi: torch.Tensor) -> torch.Tensor:
        """(heads, N, N) bias gathered from the table with index ``rpi`` (N, N)."""
        n = rpi.shape[0]
        return self.relative_position_bias_table[rpi.reshape(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T * scale + mask) v`` with this module's backend: q, k, v (B', heads, N, d),
        mask broadcastable to (B', heads, N, N) -> (B', heads, N, d)."""
        dropout = self.attn_drop if self.training else 0.0
        return attention(q, k, v, mask, self.scale, self.attn_backend, dropout)

    def forward(
        self,
        x: torch.Tensor,
        rpi: torch.Tensor,
        masks: torch.Tensor | None = None,
        counts: list[int] | None = None,
    ) -> torch.Tensor:
        """x: (B*nW, N, C); rpi: (N, N). Shifted windows carry an additive region mask: with
        ``counts``, ``x`` is grouped by kind (see :func:`partition_by_kind`), ``counts`` windows per
        kind, and ``masks`` is (4, N, N), one per kind; without, ``masks`` is (nW, N, N), one per
        window of each image in row-major order."""
        bw, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B*nW, heads, N, d)
        # A 4-D (1, heads, N, N) mask keeps SDPA on its fused CPU kernel; a 3-D one falls back to the
        # unfused math path (4x slower for these shapes).
        bias = self.relative_bias(rpi).unsqueeze(0)  # (1, heads, N, N), fp32 (backends cast as they need)
        if masks is None:
            out = self.attend(q, k, v, bias)
        elif counts is None:  # one mask per window: (B*nW, 1, N, N) + bias
            per_window = masks.to(bias.dtype).repeat(bw // masks.shape[0], 1, 1).unsqueeze(1)
            out = self.attend(q, k, v, bias + per_window)
        else:
            outs, start = [], 0
            for kind, count in enumerate(counts):
                if count:
                    sl = slice(start, start + count)
                    outs.append(self.attend(q[sl], k[sl], v[sl], bias + masks[kind].to(bias.dtype)))
                    start += count
            out = torch.cat(outs) if len(outs) > 1 else outs[0]
        out = out.transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(out))


class ChannelAttention(nn.Module):
    """RCAN channel attention: x * sigmoid(W2 relu(W1 avgpool(x))). (B, C, H, W) -> same."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel-attention block: conv3x3 (C -> C/compress) -> GELU -> conv3x3 -> channel attention.

    With ``identity_weight`` (a pathway scalar, see :class:`BlockPathways`) it returns ``cab(x) + w * x``.
    """

    def __init__(self, num_feat: int, compress_ratio: int = 3, squeeze_factor: int = 30) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // compress_ratio, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(num_feat // compress_ratio, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: torch.Tensor, identity_weight: torch.Tensor | None = None) -> torch.Tensor:
        out = self.cab(x)
        return out if identity_weight is None else out + identity_weight * x


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout on (..., C)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + scaled CAB in parallel, then an MLP.

    ``x = a * x + attn(norm1(x)) + conv_scale * cab(norm1(x));  x = m * x + mlp(norm2(x))``
    where a = m = 1 for HAT; with :class:`BlockPathways` they are scalars (plus a CAB identity term).
    Tokens (B, H*W, C).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        attn_backend: str = "auto",
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise HATConfigError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop, attn_backend
        )
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def window_attention(
        self, x: torch.Tensor, rpi_sa: torch.Tensor, shift_masks: torch.Tensor | None
    ) -> torch.Tensor:
        """(Shifted) window attention on a map (B, H, W, C), H and W multiples of the window -> same.

        Shifted: the map is rolled by -shift, its windows grouped by kind (interior, last column,
        last row, corner) so each kind shares one mask of ``shift_masks`` (4, N, N), and rolled back.
        """
        b, h, w, _ = x.shape
        ws, s = self.window_size, self.shift_size
        if s == 0:
            return window_reverse(self.attn(window_partition(x, ws), rpi_sa), ws, h, w)
        windows, counts = partition_by_kind(torch.roll(x, shifts=(-s, -s), dims=(1, 2)), ws)
        attn = reverse_by_kind(self.attn(windows, rpi_sa, shift_masks, counts), counts, ws, h, w)
        return torch.roll(attn, shifts=(s, s), dims=(1, 2))

    def forward(
        self,
        x: torch.Tensor,
        x_size: tuple[int, int],
        rpi_sa: torch.Tensor,
        shift_masks: torch.Tensor | None,
        weights: BlockPathways | None = None,
    ) -> torch.Tensor:
        """x: (B, H*W, C); shift_masks: (4, N, N) per window kind (see :func:`shift_kind_masks`);
        weights: this block's pathway scalars, or None (HAT)."""
        h, w = x_size
        b, _, c = x.shape
        w_cab, w_attn, w_mlp = weights if weights is not None else (None, None, None)
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        conv_x = self.conv_block(x.permute(0, 3, 1, 2), w_cab).permute(0, 2, 3, 1).reshape(b, h * w, c)

        attn = self.window_attention(x, rpi_sa, shift_masks).reshape(b, h * w, c)

        if w_attn is not None:
            shortcut = w_attn * shortcut
        x = shortcut + self.drop_path(attn) + conv_x * self.conv_scale
        residual = x if w_mlp is None else w_mlp * x
        return residual + self.drop_path(self.mlp(self.norm2(x)))


class OCAB(nn.Module):
    """Overlapping cross-attention: queries from ws x ws windows, keys/values from ows x ows windows.

    ows = ws + int(overlap_ratio * ws); keys/values come from zero-padded overlapping windows (as the
    official code's ``nn.Unfold``). Tokens (B, H*W, C) -> same.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        overlap_ratio: float,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        mlp_ratio: float = 2.0,
        attn_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.attn_backend = check_backend(attn_backend)
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        if (self.overlap_win_size - window_size) % 2:
            raise HATConfigError(
                f"overlap_ratio {overlap_ratio} with window_size {window_size} gives an odd overlap of "
                f"{self.overlap_win_size - window_size} pixels; OCAB pads half of it on each side, so "
                "int(window_size * overlap_ratio) must be even (HAT uses 0.5 with windows 8, 12 or 16)"
            )
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + self.overlap_win_size - 1) ** 2, num_heads)
        )
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def key_value_windows(self, kv: torch.Tensor) -> torch.Tensor:
        """The overlapping ows x ows windows of a key/value map (B, H, W, 2C) -> (B*nW, ows*ows, 2C).

        Zero-padded by (ows - ws) / 2 at the borders (what the official ``nn.Unfold`` gives), windows
        every ws pixels in row-major order, gathered channels-last in one copy so SDPA gets
        unit-stride heads.
        """
        b, _, _, c2 = kv.shape
        ws, ows = self.window_size, self.overlap_win_size
        pad = (ows - ws) // 2
        kv = (
            F.pad(kv, (0, 0, pad, pad, pad, pad)).unfold(1, ows, ws).unfold(2, ows, ws)
        )  # (B, nh, nw, 2C, ows, ows)
        return kv.permute(0, 1, 2, 4, 5, 3).reshape(-1, ows * ows, c2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T * scale + mask) v`` with this module's backend; (B', heads, N, d) shapes."""
        return attention(q, k, v, mask, self.scale, self.attn_backend)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], rpi_oca: torch.Tensor) -> torch.Tensor:
        """x: (B, H*W, C); rpi_oca: (ws*ws, ows*ows)."""
        h, w = x_size
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        d = c // heads
        shortcut = x
        qkv = self.qkv(self.norm1(x)).view(b, h, w, 3, c)
        q = window_partition(qkv[..., 0, :], ws)  # (B*nW, ws*ws, C)
        kv = self.key_value_windows(qkv[..., 1:, :].reshape(b, h, w, 2 * c))  # (B*nW, ows*ows, 2C)
        nw = kv.shape[0] // b
        kv = kv.view(b * nw, ows * ows, 2, heads, d).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)  # each (B*nW, heads, ows*ows, d)
        q = q.view(b * nw, ws * ws, heads, d).transpose(1, 2)
        n_q, n_k = ws * ws, ows * ows
        table = self.relative_position_bias_table
        # Contiguous (1, heads, Nq, Nk): a permuted view would send SDPA down its unfused math path.
        bias = table[rpi_oca.reshape(-1)].view(n_q, n_k, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        out = self.attend(q, k, v, bias)
        out = window_reverse(out.transpose(1, 2).reshape(b * nw, n_q, c), ws, h, w).reshape(b, h * w, c)
        x = self.proj(out) + shortcut
        return x + self.mlp(self.norm2(x))


class AttenBlocks(nn.Module):
    """The HABs of one RHAG followed by its OCAB (key prefix ``residual_group``)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        overlap_ratio: float,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: Sequence[float],
        use_checkpoint: bool = False,
        attn_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            HAB(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                compress_ratio=compress_ratio,
                squeeze_factor=squeeze_factor,
                conv_scale=conv_scale,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path[i],
                attn_backend=attn_backend,
            )
            for i in range(depth)
        )
        self.overlap_attn = OCAB(
            dim, window_size, overlap_ratio, num_heads, qkv_bias, qk_scale, mlp_ratio, attn_backend
        )

    def _run(self, module: nn.Module, *args: object) -> torch.Tensor:
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint.checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(
        self,
        x: torch.Tensor,
        x_size: tuple[int, int],
        attn_inputs: dict[str, torch.Tensor | None],
        pathways: GroupPathways | None = None,
    ) -> torch.Tensor:
        """x: (B, H*W, C). ``pathways``: this group's scalars (see :class:`GroupPathways`), or None."""
        dense = None if pathways is None else pathways.dense_input * x
        for j, blk in enumerate(self.blocks):
            weights = None if pathways is None else pathways.blocks[j]
            x = self._run(blk, x, x_size, attn_inputs["rpi_sa"], attn_inputs["shift_masks"], weights)
            if dense is not None:
                dense = dense + pathways.dense_blocks[j] * x
        if dense is not None:
            x = x + dense
        return self._run(self.overlap_attn, x, x_size, attn_inputs["rpi_oca"])


class RHAG(nn.Module):
    """Residual hybrid attention group: AttenBlocks -> conv3x3 -> + (weighted) input. Tokens (B, H*W, C)."""

    def __init__(
        self, dim: int, resi_connection: str = "1conv", use_checkpoint: bool = False, **blocks_kwargs
    ) -> None:
        super().__init__()
        self.residual_group = AttenBlocks(dim=dim, use_checkpoint=use_checkpoint, **blocks_kwargs)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(
        self,
        x: torch.Tensor,
        x_size: tuple[int, int],
        attn_inputs: dict[str, torch.Tensor | None],
        pathways: GroupPathways | None = None,
    ) -> torch.Tensor:
        """x: (B, H*W, C) -> same; ``pathways`` as in :class:`AttenBlocks`."""
        h, w = x_size
        y = self.residual_group(x, x_size, attn_inputs, pathways)
        y = self.conv(y.transpose(1, 2).contiguous().view(x.shape[0], -1, h, w)).flatten(2).transpose(1, 2)
        # Contiguous tokens: every block then sees one memory layout (one compiled graph, not two).
        return (y + (x if pathways is None else pathways.residual * x)).contiguous()


def _resi_conv(dim: int, resi_connection: str) -> nn.Module:
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "identity":
        return nn.Identity()
    raise HATConfigError(f"resi_connection must be '1conv' or 'identity', got {resi_connection!r}")


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H*W, C), with an optional LayerNorm (key ``patch_embed.norm``)."""

    def __init__(self, embed_dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return x if self.norm is None else self.norm(x)


class Upsample(nn.Sequential):
    """conv3x3 + PixelShuffle stages for scale 2^n or 3 (keys ``upsample.0``, ``upsample.2``, ...)."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise HATConfigError(f"upscale {scale} is not supported: use 2^n or 3")
        super().__init__(*layers)


class HAT(nn.Module):
    """Hybrid Attention Transformer for image SR (official hyper-parameter names and key layout).

    Input (B, in_chans, H, W) in [0, 1] of any H, W (reflect-padded to a multiple of
    ``window_size`` and cropped back); output (B, in_chans, H*upscale, W*upscale).
    ``img_size`` and ``patch_size`` only matter with ``ape`` (absolute position embedding).
    """

    def __init__(
        self,
        img_size: int = 64,
        patch_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        window_size: int = 7,
        compress_ratio: int = 3,
        squeeze_factor: int = 30,
        conv_scale: float = 0.01,
        overlap_ratio: float = 0.5,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
        attn_backend: str = "auto",
    ) -> None:
        super().__init__()
        check_backend(attn_backend)
        if upsampler != "pixelshuffle":
            raise HATConfigError(f"upsampler {upsampler!r} is not supported: HAT uses 'pixelshuffle'")
        if len(depths) != len(num_heads):
            raise HATConfigError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        if patch_size != 1:
            raise HATConfigError(f"patch_size must be 1 for HAT (got {patch_size})")
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.overlap_ratio = overlap_ratio
        self.upscale = upscale
        self.upsampler = upsampler
        self.img_range = img_range
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.depths = tuple(depths)
        self.ape = ape
        self.use_checkpoint = use_checkpoint
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
        self.register_buffer("relative_position_index_SA", relative_position_index_sa(window_size))
        self.register_buffer(
            "relative_position_index_OCA", relative_position_index_oca(window_size, overlap_ratio)
        )

        num_feat = 64
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img_size * img_size, embed_dim))
            trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                RHAG(
                    dim=embed_dim,
                    resi_connection=resi_connection,
                    use_checkpoint=use_checkpoint,
                    depth=depth,
                    num_heads=num_heads[i],
                    window_size=window_size,
                    compress_ratio=compress_ratio,
                    squeeze_factor=squeeze_factor,
                    conv_scale=conv_scale,
                    overlap_ratio=overlap_ratio,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[start : start + depth],
                    attn_backend=attn_backend,
                )
            )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
        )
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        self.apply(_init_weights)

    # ----------------------------------------------------------------- extension hooks
    # Identity in HAT; a subclass overrides them to weight pathways or refine features.

    def group_pathways(self, i: int) -> GroupPathways | None:
        """Pathway scalars of RHAG ``i``; None: HAT's plain residuals, no dense sums."""
        return None

    def body_pathways(self) -> BodyPathways | None:
        """The body's dense-sum and long-skip scalars; None: HAT's (no dense sum, skip weight 1)."""
        return None

    def after_group(self, i: int, t: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        """Tokens (B, H*W, C) after RHAG ``i``, before the body's dense sum sees them."""
        return t

    def after_body(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features (B, C, H, W) after the final norm, before ``conv_after_body``."""
        return x

    def image_skip(self, x: torch.Tensor) -> torch.Tensor | None:
        """An image-level term (B, C, H*upscale, W*upscale) added to the output, from the normalised
        input (B, C, H, W); None: none."""
        return None

    def attention_inputs(self, device: torch.device) -> dict[str, torch.Tensor | None]:
        """Relative-position indices and the per-kind shift masks (independent of the image size)."""
        shift = shift_kind_masks(self.window_size, self.shift_size, device) if self.shift_size else None
        return {
            "rpi_sa": self.relative_position_index_SA,
            "rpi_oca": self.relative_position_index_OCA,
            "shift_masks": shift,
        }

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features: (B, C, H, W) -> (B, C, H, W), H and W multiples of window_size."""
        h, w = x.shape[-2:]
        attn_inputs = self.attention_inputs(x.device)
        t = self.patch_embed(x)
        if self.ape:
            t = t + self.absolute_pos_embed
        t = self.pos_drop(t)
        body = self.body_pathways()
        dense = None if body is None else body.dense_input * t
        for i, layer in enumerate(self.layers):
            pathways = self.group_pathways(i)
            t = self.after_group(i, layer(t, (h, w), attn_inputs, pathways), (h, w))
            if dense is not None:
                dense = dense + pathways.dense_output * t
        if dense is not None:
            t = t + dense
        x = self.norm(t).transpose(1, 2).contiguous().view(-1, self.embed_dim, h, w)
        return self.after_body(x)

    def pad_input(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) mirror-padded at the bottom/right to multiples of the window, and (H, W)."""
        return pad_to_multiple(x, self.window_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H*upscale, W*upscale)."""
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        image_skip = self.image_skip(x)
        x, size = self.pad_input(x)
        shallow = self.conv_first(x)
        body = self.body_pathways()
        skip = shallow if body is None else body.long_skip * shallow
        x = self.conv_after_body(self.forward_features(shallow)) + skip
        x = crop_output(self.conv_last(self.upsample(self.conv_before_upsample(x))), size, self.upscale)
        if image_skip is not None:
            x = x + image_skip
        return x / self.img_range + mean


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- descriptor


def hat_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """HAT's constructor arguments read off a canonical state dict's keys and shapes (no ``type``).

    Values no state dict records (conv_scale, img_range, qk_scale, drop_path_rate, attention
    backend) keep the published defaults. A missing key raises :class:`StateDictError` naming it.
    """

    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise StateDictError(
                f"looks like HAT or an extension of it (has conv_first.weight) but lacks {key!r}, which the network "
                "config is read from: the file is incomplete or of another network"
            )
        return sd[key]

    def ratio_for(hidden: int, dim: int) -> float | int:
        """A ratio ``r`` with ``int(dim * r) == hidden`` (what HAT computes), as plain as possible."""
        ratio: float = hidden / dim
        while int(dim * ratio) < hidden:  # e.g. 40 / 30 * 30 == 39.99...: step to the next float up
            ratio = math.nextafter(ratio, math.inf)
        return int(ratio) if ratio == int(ratio) else ratio

    def overlap_ratio_for(overlap_win: int, window: int) -> float:
        """An ``overlap_ratio`` with ``int(window * r) + window == overlap_win`` (what OCAB computes)."""
        ratio = (overlap_win - window) / window
        while int(window * ratio) + window < overlap_win:
            ratio = math.nextafter(ratio, math.inf)
        return ratio

    def upscale_from(num_feat: int) -> int:
        scale = 1
        for i in range(0, 2 * count_indexed(sd, "upsample") + 1, 2):
            w = sd.get(f"upsample.{i}.weight")
            if w is not None:
                scale *= int(math.isqrt(w.shape[0] // num_feat))
        return scale

    embed_dim, in_chans = need("conv_first.weight").shape[:2]
    n_layers = count_indexed(sd, "layers")
    if n_layers == 0:
        raise StateDictError("state dict has conv_first but no layers.N: not a HAT-family checkpoint")
    depths = [count_indexed(sd, f"layers.{i}.residual_group.blocks") for i in range(n_layers)]
    heads = [
        need(f"layers.{i}.residual_group.overlap_attn.relative_position_bias_table").shape[1]
        for i in range(n_layers)
    ]
    blk = "layers.0.residual_group.blocks.0."
    window = (math.isqrt(need(blk + "attn.relative_position_bias_table").shape[0]) + 1) // 2
    oca_rows = need("layers.0.residual_group.overlap_attn.relative_position_bias_table").shape[0]
    overlap_win = math.isqrt(oca_rows) + 1 - window
    cfg: dict[str, Any] = {
        "upscale": upscale_from(need("conv_last.weight").shape[1]),
        "in_chans": int(in_chans),
        "img_size": 64,
        "window_size": int(window),
        "compress_ratio": int(embed_dim // need(blk + "conv_block.cab.0.weight").shape[0]),
        "squeeze_factor": int(embed_dim // need(blk + "conv_block.cab.3.attention.1.weight").shape[0]),
        "conv_scale": 0.01,
        "overlap_ratio": overlap_ratio_for(overlap_win, int(window)),
        "img_range": 1.0,
        "depths": depths,
        "embed_dim": int(embed_dim),
        "num_heads": [int(h) for h in heads],
        "mlp_ratio": ratio_for(need(blk + "mlp.fc1.weight").shape[0], int(embed_dim)),
        "qkv_bias": blk + "attn.qkv.bias" in sd,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "ape": "absolute_pos_embed" in sd,
        "upsampler": "pixelshuffle",
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "identity",
    }
    if cfg["ape"]:
        cfg["img_size"] = math.isqrt(sd["absolute_pos_embed"].shape[1])
    return cfg


HAT_SOURCE_MODULES = ("ehat.archs.attention", "ehat.archs.padding", "ehat.archs.hat_arch")
HAT_EXPORT_STEPS = (
    ExportStep(HAT, "pad_input", "ehat.export.graph:hat_pad_input"),
    ExportStep(HAB, "window_attention", "ehat.export.graph:hab_window_attention"),
    ExportStep(WindowAttention, "attend", "ehat.export.graph:explicit_attend"),
    ExportStep(OCAB, "key_value_windows", "ehat.export.graph:ocab_key_value_windows"),
    ExportStep(OCAB, "attend", "ehat.export.graph:explicit_attend"),
)

register_network(
    NetworkDescriptor(
        name="HAT",
        cls=HAT,
        detect=lambda sd: "conv_first.weight" in sd,
        infer_config=hat_config_from_state_dict,
        layout="conv_first.weight, layers.N.residual_group...",
        data_range=1.0,  # img_range is an internal gain; images are [0, 1]
        compile_blocks=(HAB, OCAB),
        source_modules=HAT_SOURCE_MODULES,
        export_steps=HAT_EXPORT_STEPS,
    )
)
