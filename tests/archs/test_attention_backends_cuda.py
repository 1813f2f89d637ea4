"""The attention backends on CUDA (run where a GPU is present; skipped elsewhere): outputs and the
gradients of every parameter equal the explicit formula, flex included (it has no CPU backward)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import TINY_EHAT, TINY_HAT, tiny_network

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _grads(cfg, backend, x, compile_flex=False):
    model = tiny_network(cfg, attn_backend=backend).cuda().train()
    if compile_flex:
        from ehat.acceleration import compile_model

        compile_model(model, "blocks")
    out = model(x)
    out.square().mean().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("cfg", [TINY_HAT, TINY_EHAT], ids=["HAT", "EHAT"])
@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_cuda_backend_outputs_and_gradients_equal_the_explicit_path(cfg, backend):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x = torch.rand(2, 3, 19, 23, generator=torch.Generator().manual_seed(4)).cuda()
    ref_out, ref = _grads(cfg, "explicit", x)
    out, got = _grads(cfg, backend, x, compile_flex=backend == "flex")
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-5)
    for name, g in ref.items():
        scale = max(g.abs().max().item(), 1e-3)
        torch.testing.assert_close(got[name] / scale, g / scale, rtol=0, atol=1e-5, msg=name)


def test_cuda_sdpa_pads_the_head_dim_to_a_fused_kernel_size():
    """HAT's head dim 30 runs through SDPA padded to 32 on CUDA: same numbers as the formula."""
    from ehat.archs.attention import explicit_attention, sdpa_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(8, 6, n, 30, generator=g).cuda() for n in (256, 576, 576))
    mask = torch.randn(1, 6, 256, 576, generator=g).cuda()
    torch.testing.assert_close(
        sdpa_attention(q, k, v, mask, 30**-0.5, head_multiple=8), explicit_attention(q, k, v, mask, 30**-0.5),
        rtol=0, atol=1e-5,
    )  # fmt: skip
