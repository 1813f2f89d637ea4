"""Masked multi-head attention with selectable kernels: ``softmax(q k^T * scale + mask) v``.

HAT's window attention and OCAB add a relative-position bias (and, for shifted windows, the
official -100 region mask) to the logits. Three backends compute the same function:

- ``explicit``: the formula written out (the reference path). Under autocast the logits are
  upcast before the mask is added, so the bias add and the softmax run in fp32.
- ``sdpa``: ``F.scaled_dot_product_attention`` with the mask as ``attn_mask``. On CPU it is a fused
  kernel (fp32 accumulation). On CUDA the head dimension is zero-padded to a multiple of 8 (HAT's
  180 / 6 = 30 -> 32: the same numbers, ``scale`` from the true head dim) so the memory-efficient
  kernel, which needs such sizes, can take it.
- ``flex``: FlexAttention, the mask read inside a ``score_mod`` (fp32 logits). Fast only when
  compiled; no backward on CPU.

``auto`` picks per device what measured fastest: CPU and meta (FLOP counting) -> ``sdpa``, CUDA ->
``explicit`` (H200, torch 2.11: no fused SDPA kernel took HAT's unpadded shapes and the math
fallback launched ~2x the kernels). Shapes: q (B, heads, Nq, d), k/v (B, heads, Nk, d), mask
broadcastable to (B, heads, Nq, Nk) -> (B, heads, Nq, d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ehat.errors import EhatError

__all__ = [
    "ATTN_BACKENDS",
    "AttentionBackendError",
    "attention",
    "check_backend",
    "explicit_attention",
    "resolve_backend",
    "sdpa_attention",
]

ATTN_BACKENDS = ("auto", "explicit", "sdpa", "flex")
CUDA_HEAD_MULTIPLE = 8  # head dims the memory-efficient CUDA kernel takes


class AttentionBackendError(EhatError):
    """An unknown attention backend, or one that cannot run on the device / in this mode."""


def check_backend(name: str) -> str:
    """``name`` if it is a known backend, else an error listing them."""
    if name not in ATTN_BACKENDS:
        raise AttentionBackendError(f"attn_backend {name!r} is not one of {', '.join(ATTN_BACKENDS)}")
    return name


def resolve_backend(name: str, device: torch.device, needs_grad: bool = False) -> str:
    """The concrete backend ``name`` means on ``device``; an error if it cannot run there."""
    check_backend(name)
    if name == "auto":
        return "explicit" if device.type == "cuda" else "sdpa"
    if name == "flex":
        if needs_grad and device.type == "cpu":
            raise AttentionBackendError(
                "attn_backend 'flex' has no backward pass on CPU (PyTorch's FlexAttention): "
                "train on CPU with attn_backend 'auto', 'sdpa' or 'explicit'"
            )
        if device.type not in ("cpu", "cuda"):
            raise AttentionBackendError(f"attn_backend 'flex' does not run on {device.type}")
    return name


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, dropout: float = 0.0
) -> torch.Tensor:
    """The formula written out; logits, mask add and softmax in at least fp32."""
    logits = (q * scale) @ k.transpose(-2, -1)
    if logits.dtype in (torch.float16, torch.bfloat16):
        attn = (logits.float() + mask.float()).softmax(dim=-1).to(v.dtype)
    else:
        attn = (logits + mask).softmax(dim=-1)
    if dropout > 0.0:
        attn = F.dropout(attn, p=dropout)
    return attn @ v


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
    dropout: float = 0.0,
    head_multiple: int = 1,
) -> torch.Tensor:
    """SDPA with the head dim zero-padded to a multiple of ``head_multiple`` (zeros add nothing to
    q k^T, and the padded output columns are dropped); ``scale`` stays the caller's."""
    mask = mask.to(q.dtype)  # SDPA wants the mask in the query's dtype (it accumulates in fp32)
    d = q.shape[-1]
    pad = (-d) % head_multiple
    if pad:
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)
    return out[..., :d] if pad else out


def flex_attention_masked(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, dropout: float
) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    if dropout > 0.0:
        raise AttentionBackendError("attn_backend 'flex' has no attention dropout: set attn_drop_rate 0")
    batch_index = mask.shape[0] != 1  # a (1, ...) mask is shared by every window
    head_index = mask.shape[1] != 1

    def add_mask(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, qi: torch.Tensor, ki: torch.Tensor):  # noqa: ANN202
        return score + mask[b if batch_index else 0, h if head_index else 0, qi, ki]

    return flex_attention(q, k, v, score_mod=add_mask, scale=scale)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
    backend: str = "auto",
    dropout: float = 0.0,
) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` with ``backend`` (see the module docstring).

    ``mask``: float, broadcastable to (B, heads, Nq, Nk); keep it 4-D and contiguous, which the
    fused CPU kernel needs. Dropout is applied to the attention weights in training only by callers.
    """
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, mask))
    name = resolve_backend(backend, q.device, needs_grad)
    if name == "explicit":
        return explicit_attention(q, k, v, mask, scale, dropout)
    if name == "sdpa":
        return sdpa_attention(q, k, v, mask, scale, dropout, CUDA_HEAD_MULTIPLE if q.is_cuda else 1)
    return flex_attention_masked(q, k, v, mask, scale, dropout)
