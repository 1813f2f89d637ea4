"""DANet dual attention (Fu et al., CVPR 2019): position attention (PAM) and channel attention (CAM).

Both start as the identity (``gamma = 0``). :class:`DualAttention` adds the two branches' outputs
to its input: ``x + gamma_p * PAM(x) + gamma_c * CAM(x)``, which is DANet's sum of the two
attended maps with the shared input counted once, so a fresh module changes nothing.

PAM attends over all H*W positions. It never materializes the (H*W)^2 score matrix: it runs
``scaled_dot_product_attention`` (scale 1.0, as DANet has no 1/sqrt(d)) in fp32, optionally
restricted to non-overlapping tiles (``tile``) so training crops and whole test images see the
same context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PositionAttention(nn.Module):
    """PAM: ``out = V softmax(Q^T K)^T``, Q/K 1x1 convs C -> C/8, V 1x1 conv C -> C.

    Input (B, C, H, W) -> ``x + gamma * out`` of the same shape. ``tile``: attend within
    tile x tile blocks only (None = whole map). ``query_chunk``: queries per SDPA call (bounds
    peak memory on back-ends without a fused kernel).
    """

    def __init__(
        self, channels: int, reduction: int = 8, tile: int | None = None, query_chunk: int = 4096
    ) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.tile = tile
        self.query_chunk = query_chunk

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attended map (B, C, H, W) before gamma, over the whole of ``x``; fp32 logits."""
        b, c, h, w = x.shape
        q = self.query_conv(x).flatten(2).transpose(1, 2).float()  # (B, N, C/8)
        k = self.key_conv(x).flatten(2).transpose(1, 2).float()
        v = self.value_conv(x).flatten(2).transpose(1, 2).float()  # (B, N, C)
        # Zero-padding Q and K to V's width leaves Q K^T unchanged and lets SDPA pick its fused,
        # O(N) memory kernel (which needs equal head widths) instead of an N x N matrix.
        q, k = (F.pad(t, (0, v.shape[-1] - t.shape[-1])) for t in (q, k))
        v = v.contiguous()  # the fused kernel also needs unit stride along channels
        chunks = [
            F.scaled_dot_product_attention(q[:, s : s + self.query_chunk], k, v, scale=1.0)
            for s in range(0, q.shape[1], self.query_chunk)
        ]
        out = torch.cat(chunks, dim=1) if len(chunks) > 1 else chunks[0]
        return out.transpose(1, 2).reshape(b, c, h, w).to(x.dtype)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``gamma * attended``, tile by tile when ``tile`` is set (edge tiles may be smaller)."""
        if self.tile is None:
            return self.gamma * self.attend(x)
        t = self.tile
        rows = []
        for top in range(0, x.shape[-2], t):
            cols = [self.attend(x[..., top : top + t, left : left + t]) for left in range(0, x.shape[-1], t)]
            rows.append(torch.cat(cols, dim=-1))
        return self.gamma * torch.cat(rows, dim=-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class ChannelAttentionModule(nn.Module):
    """CAM: ``E = X X^T`` over channels, ``A = softmax(rowmax(E) - E)``, ``out = A X``; fp32.

    Input (B, C, H, W) -> ``x + gamma * out``. ``softmax(rowmax(E) - E) == softmax(-E)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w).float()
        energy = flat @ flat.transpose(1, 2)  # (B, C, C)
        attn = torch.softmax(-energy, dim=-1)
        return (attn @ flat).reshape(b, c, h, w).to(x.dtype)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.attend(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class DualAttention(nn.Module):
    """``x + gamma_p * PAM(x) + gamma_c * CAM(x)`` on (B, C, H, W); either branch can be off."""

    def __init__(
        self,
        channels: int,
        pam: bool = True,
        cam: bool = True,
        pam_tile: int | None = None,
        pam_query_chunk: int = 4096,
    ) -> None:
        super().__init__()
        if not (pam or cam):
            raise ValueError("DualAttention needs at least one of pam / cam")
        self.pam = PositionAttention(channels, tile=pam_tile, query_chunk=pam_query_chunk) if pam else None
        self.cam = ChannelAttentionModule() if cam else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.pam is not None:
            out = out + self.pam.residual(x)
        if self.cam is not None:
            out = out + self.cam.residual(x)
        return out
