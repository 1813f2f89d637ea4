"""Attention backends (explicit / sdpa / flex): each equals the written-out formula, outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from ehat.archs import attention as attn_mod
from ehat.archs import build_network
from ehat.archs.attention import (
    AttentionBackendError,
    attention,
    explicit_attention,
    resolve_backend,
    sdpa_attention,
)
from tests.helpers import TINY_EHAT, tiny_network
from tests.helpers import TINY_HAT as TINY


def naive_attention(q, k, v, mask, scale):
    """Independent reference: exp / sum in float64."""
    q, k, v, mask = (t.double() for t in (q, k, v, mask))
    logits = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale + mask
    weights = torch.exp(logits - logits.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("bhqk,bhkd->bhqd", weights, v)


def qkv_mask(mask_shape, d=30, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(5, 3, n, d, generator=g, dtype=dtype) for n in (16, 24, 24))
    mask = torch.randn(*mask_shape, generator=g, dtype=dtype)
    mask[..., 0, :5] = -100.0  # the official shifted-window value
    return q, k, v, mask


def randomized(cfg, backend, seed=0):
    return tiny_network(cfg, seed, attn_backend=backend)


@pytest.mark.parametrize("mask_shape", [(1, 3, 16, 24), (5, 3, 16, 24), (1, 1, 16, 24)])
@pytest.mark.parametrize("backend", ["explicit", "sdpa", "flex"])
def test_every_backend_computes_the_formula(backend, mask_shape):
    q, k, v, mask = qkv_mask(mask_shape)
    with torch.no_grad():
        out = attention(q, k, v, mask, 0.3, backend)
    torch.testing.assert_close(out.double(), naive_attention(q, k, v, mask, 0.3), rtol=0, atol=1e-5)


def test_sdpa_with_a_padded_head_dim_keeps_the_true_scale():
    """The CUDA path pads 30 -> 32 (zeros); run it here on CPU: same numbers as unpadded."""
    q, k, v, mask = qkv_mask((1, 3, 16, 24), dtype=torch.float64)
    padded = sdpa_attention(q, k, v, mask, 30**-0.5, head_multiple=8)
    assert padded.shape == q.shape
    torch.testing.assert_close(padded, naive_attention(q, k, v, mask, 30**-0.5), rtol=0, atol=1e-12)


def test_auto_picks_per_device():
    assert resolve_backend("auto", torch.device("cpu")) == "sdpa"
    assert resolve_backend("auto", torch.device("meta")) == "sdpa"  # FLOP counting sees the CPU path
    assert resolve_backend("auto", torch.device("cuda")) == "explicit"
    assert resolve_backend("sdpa", torch.device("cuda")) == "sdpa"


def test_attention_dispatches_through_the_device_switch(monkeypatch):
    """``attention`` itself routes by ``resolve_backend`` (not a patched function): record the calls."""
    calls = []
    monkeypatch.setattr(attn_mod, "explicit_attention", lambda *a, **k: calls.append("explicit") or a[0])
    monkeypatch.setattr(attn_mod, "sdpa_attention", lambda *a, **k: calls.append("sdpa") or a[0])
    monkeypatch.setattr(attn_mod, "resolve_backend", lambda name, device, needs_grad=False: "explicit")
    q, k, v, mask = qkv_mask((1, 3, 16, 24))
    attention(q, k, v, mask, 0.3, "auto")
    monkeypatch.setattr(attn_mod, "resolve_backend", lambda name, device, needs_grad=False: "sdpa")
    attention(q, k, v, mask, 0.3, "auto")
    assert calls == ["explicit", "sdpa"]


def test_unknown_backend_is_named():
    with pytest.raises(AttentionBackendError, match="'fast'.*explicit, sdpa, flex"):
        build_network({**TINY, "attn_backend": "fast"})


def test_flex_says_it_has_no_backward_on_cpu():
    model = randomized(TINY, "flex").train()
    with pytest.raises(AttentionBackendError, match="'flex' has no backward pass on CPU"):
        model(torch.rand(1, 3, 16, 16))


def test_backend_is_not_stored_in_weights():
    a, b = randomized(TINY, "explicit"), randomized(TINY, "sdpa")
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@pytest.mark.parametrize("cfg", [TINY, TINY_EHAT], ids=["HAT", "EHAT"])
@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_network_output_equals_the_explicit_path(cfg, backend):
    x = torch.rand(2, 3, 19, 23, generator=torch.Generator().manual_seed(3))  # padded, shifted windows
    with torch.no_grad():
        ref = randomized(cfg, "explicit").eval()(x)
        out = randomized(cfg, backend).eval()(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cfg", [TINY, TINY_EHAT], ids=["HAT", "EHAT"])
def test_every_gradient_equals_the_explicit_path(cfg):
    """Gradients of every parameter (bias tables and branch weights included), fp32 and fp64."""
    x = torch.rand(2, 3, 19, 23, generator=torch.Generator().manual_seed(4))
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-11)):
        grads = {}
        for backend in ("explicit", "sdpa"):
            model = randomized(cfg, backend).to(dtype).train()
            model(x.to(dtype)).square().mean().backward()
            grads[backend] = {n: p.grad for n, p in model.named_parameters()}
        assert any("relative_position_bias_table" in n for n in grads["sdpa"])
        for name, g in grads["explicit"].items():
            assert g is not None, name
            scale = max(g.abs().max().item(), 1e-3)
            torch.testing.assert_close(grads["sdpa"][name] / scale, g / scale, rtol=0, atol=tol, msg=name)


def test_bf16_adds_the_bias_and_softmaxes_in_fp32():
    """Under bf16 autocast a mask of 100.3 vs 100.0 must not round to 100.5 (bf16's spacing at 100)."""
    q = k = torch.zeros(1, 1, 1, 8)
    v = torch.tensor([[1.0] * 8, [0.0] * 8]).view(1, 1, 2, 8)
    k = torch.zeros(1, 1, 2, 8)
    mask = torch.tensor([100.3, 100.0]).view(1, 1, 1, 2)
    w_fp32 = torch.softmax(torch.tensor([100.3, 100.0]), -1)[0].item()  # 0.5744
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = explicit_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, 1.0)
    assert out.dtype == torch.bfloat16
    # bf16 output rounding is ~2e-3 at 0.57; rounding the mask first would give 0.6225.
    assert abs(out[0, 0, 0, 0].item() - w_fp32) < 4e-3
