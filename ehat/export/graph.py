"""Graph-friendly steps for export: the same function as a few small methods of our networks,
written without Python control flow on the image size, so one exported graph serves every height
and width. The forwards themselves are the networks' own; only the steps each network's descriptor
lists in ``export_steps`` are swapped (:func:`graph_mode`).

What differs from the eager steps (and why):

* window padding: :func:`reflect_pad_to_multiple` gathers rows/columns with a triangle-wave index
  (period ``2 * (size - 1)``), which equals :func:`ehat.archs.padding.pad_to_multiple`'s repeated
  reflect pads (and its replicate fallback for 1-pixel sides) for every size, without a loop;
* shifted windows: the official (nW, N, N) region mask is built in the graph from the padded size
  (:func:`shift_mask`) and passed one per window, instead of grouping windows by kind with
  size-dependent counts; attention uses the explicit formula (:func:`explicit_attend`);
* OCAB's overlapping key/value windows are gathered with computed indices (no ``unfold``);
* RLFN's padding of inputs under 15 pixels is a gather (reflect or replicate, chosen in the graph);
* DANet's position attention runs as one explicit softmax over the whole map (or over
  ``pam_tile`` tiles, edge tiles masked), without the eager code's query-chunk loop.

:func:`graph_mode` swaps these in on one model instance for the duration of an export and puts
the eager steps back afterwards; nothing is changed on the classes or in any module's globals.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ehat.archs.attention import explicit_attention
from ehat.archs.dual_attention import PositionAttention
from ehat.archs.hat_arch import (
    HAB,
    HAT,
    OCAB,
    SHIFT_MASK_VALUE,
    WindowAttention,
    window_partition,
    window_reverse,
)
from ehat.archs.rlfn_arch import MIN_INPUT_SIZE, RLFN


def _reflect_index(size: int, padded: int, device: torch.device) -> torch.Tensor:
    """(padded,) int64 source indices: 0..size-1, then mirrored without repeating the edge, periodic.

    A 1-pixel side maps every index to 0 (replicate), as ``pad_to_multiple`` does.
    """
    period = 2 * size - 2 + 1 // size  # 1 for a 1-pixel side (no branch: the size may be symbolic)
    j = torch.arange(padded, device=device) % period
    return torch.where(j < size, j, period - j)


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, C, H, W) -> (B, C, H', W') with H', W' the next multiples of ``multiple``, mirrored at the
    bottom/right; and (H, W). Same values as :func:`ehat.archs.padding.pad_to_multiple`."""
    h, w = x.shape[-2:]
    hp, wp = h + (-h) % multiple, w + (-w) % multiple
    x = x.index_select(-2, _reflect_index(h, hp, x.device))
    x = x.index_select(-1, _reflect_index(w, wp, x.device))
    return x, (h, w)


def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """The official additive mask (nW, ws*ws, ws*ws) of shifted windows on an h x w map (multiples
    of ``ws``): 0 within a region, -100 across; equals :func:`ehat.archs.hat_arch.shift_window_mask`."""

    def labels(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - ws).long() + (i >= n - shift).long()

    region = (labels(h)[:, None] * 3 + labels(w)[None, :]).float()  # (h, w) in 0..8
    win = window_partition(region[None, :, :, None], ws).squeeze(-1)  # (nW, N)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.where(diff != 0, SHIFT_MASK_VALUE, 0.0)


def hat_pad_input(self: HAT, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """:meth:`HAT.pad_input` as a gather (:func:`reflect_pad_to_multiple`)."""
    return reflect_pad_to_multiple(x, self.window_size)


def hab_window_attention(
    self: HAB, x: torch.Tensor, rpi_sa: torch.Tensor, shift_masks: torch.Tensor | None
) -> torch.Tensor:
    """:meth:`HAB.window_attention` on (B, H, W, C) with one region mask per window, built in the graph
    for this size (``shift_masks``, the eager per-kind masks, is ignored)."""
    b, h, w, _ = x.shape
    ws, s = self.window_size, self.shift_size
    if s == 0:
        return window_reverse(self.attn(window_partition(x, ws), rpi_sa), ws, h, w)
    x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
    attn = window_reverse(
        self.attn(window_partition(x, ws), rpi_sa, shift_mask(h, w, ws, s, x.device)), ws, h, w
    )
    return torch.roll(attn, shifts=(s, s), dims=(1, 2))


def explicit_attend(
    self: WindowAttention | OCAB, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """:meth:`WindowAttention.attend` / :meth:`OCAB.attend` with the explicit formula (plain ONNX ops)."""
    return explicit_attention(q, k, v, mask, self.scale)


def _window_starts(n_windows: int, ws: int, ows: int, device: torch.device) -> torch.Tensor:
    """(n_windows * ows,) indices of the overlapping windows' rows in a map padded by (ows - ws) / 2."""
    starts = torch.arange(n_windows, device=device) * ws
    return (starts[:, None] + torch.arange(ows, device=device)[None, :]).reshape(-1)


def ocab_key_value_windows(self: OCAB, kv: torch.Tensor) -> torch.Tensor:
    """:meth:`OCAB.key_value_windows` (B, H, W, 2C) -> (B*nW, ows*ows, 2C) gathered by computed
    indices instead of ``unfold``."""
    b, h, w, c2 = kv.shape
    ws, ows = self.window_size, self.overlap_win_size
    pad = (ows - ws) // 2
    kv = F.pad(kv, (0, 0, pad, pad, pad, pad))
    nh, nw = h // ws, w // ws
    kv = kv.index_select(1, _window_starts(nh, ws, ows, kv.device)).view(b, nh, ows, w + 2 * pad, c2)
    kv = kv.index_select(3, _window_starts(nw, ws, ows, kv.device)).view(b, nh, ows, nw, ows, c2)
    return kv.permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, ows * ows, c2)


def pam_residual(self: PositionAttention, x: torch.Tensor) -> torch.Tensor:
    """:meth:`PositionAttention.residual` as one explicit fp32 softmax over the whole map (memory
    (H*W)^2 per image), or within ``tile`` x ``tile`` blocks (edge tiles: the padded keys masked)."""
    b, c, h, w = x.shape
    if self.tile is None:
        return self.gamma * _pam_attend(self, x, None)
    t = self.tile
    hp, wp = h + (-h) % t, w + (-w) % t
    valid = F.pad(torch.ones(1, h, w, 1, device=x.device), (0, 0, 0, wp - w, 0, hp - h))  # (1, hp, wp, 1)
    key_mask = torch.where(window_partition(valid, t).squeeze(-1) > 0, 0.0, float("-inf"))  # (nT, t*t)
    tiles = window_partition(F.pad(x, (0, wp - w, 0, hp - h)).permute(0, 2, 3, 1), t)  # (B*nT, t*t, C)
    tiles = tiles.transpose(1, 2).reshape(-1, c, t, t)
    out = _pam_attend(self, tiles, key_mask.repeat(b, 1))  # (B*nT, C, t, t)
    out = window_reverse(out.flatten(2).transpose(1, 2), t, hp, wp)  # (B, hp, wp, C)
    return self.gamma * out.permute(0, 3, 1, 2)[..., :h, :w]


def _pam_attend(self: PositionAttention, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(Q^T K + key_mask) V on (B, C, H, W) -> (B, C, H, W); Q, K, V and the softmax in fp32."""
    b, c, h, w = x.shape
    q = self.query_conv(x).flatten(2).transpose(1, 2).float()  # (B, N, C/8)
    k = self.key_conv(x).flatten(2).float()  # (B, C/8, N)
    v = self.value_conv(x).flatten(2).transpose(1, 2).float()  # (B, N, C)
    logits = q @ k
    if key_mask is not None:
        logits = logits + key_mask.unsqueeze(1)  # (B, 1, N): masked keys get no weight
    out = logits.softmax(dim=-1) @ v
    return out.transpose(1, 2).reshape(b, c, h, w).to(x.dtype)


def _pad_index(size: int, minimum: int, reflect: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Source indices that pad ``size`` up to at least ``minimum``: mirrored where ``reflect``, else the
    last index repeated."""
    j = torch.arange(torch.maximum(torch.as_tensor(size), torch.as_tensor(minimum)), device=device)
    mirrored = torch.where(j < size, j, 2 * (size - 1) - j)
    return torch.where(reflect, mirrored, torch.clamp(j, max=size - 1))


def rlfn_pad_input(self: RLFN, x: torch.Tensor) -> torch.Tensor:
    """:meth:`RLFN.pad_input` (up to ESA's 15 pixels) as a gather, the reflect/replicate choice in the graph."""
    h, w = x.shape[-2:]
    m = MIN_INPUT_SIZE
    ph, pw = (torch.maximum(torch.as_tensor(m - n), torch.as_tensor(0)) for n in (h, w))
    reflect = (ph < h) & (pw < w)  # the eager code's choice between reflect and replicate
    return x.index_select(-2, _pad_index(h, m, reflect, x.device)).index_select(
        -1, _pad_index(w, m, reflect, x.device)
    )


@contextlib.contextmanager
def graph_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model`` computes its function with the graph-friendly steps above.

    Swaps, on this instance's modules only, the methods its network descriptor lists in
    ``export_steps`` (instance attributes, removed on exit); other instances, the classes and
    every module global keep their eager code.
    """
    from ehat.archs import descriptor_of

    steps = [(step.owner, step.method, step.resolve()) for step in descriptor_of(model).export_steps]
    patched: list[tuple[nn.Module, str]] = []
    try:
        for m in model.modules():
            for owner, name, fn in steps:
                if isinstance(m, owner):
                    setattr(m, name, types.MethodType(fn, m))
                    patched.append((m, name))
        yield model
    finally:
        for m, name in patched:
            delattr(m, name)
