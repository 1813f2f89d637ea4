"""DANet dual attention: PAM/CAM equal the paper's formulas; gamma=0 is the identity; memory bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from ehat.archs import ChannelAttentionModule, DualAttention, PositionAttention


def naive_pam(pam: PositionAttention, x: torch.Tensor) -> torch.Tensor:
    """DANet's PAM as written: E = Q^T K, A = softmax(E), out = V A^T, gamma * out + x."""
    b, c, h, w = x.shape
    q = pam.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)  # (B, N, C')
    k = pam.key_conv(x).view(b, -1, h * w)  # (B, C', N)
    attention = torch.softmax(torch.bmm(q, k), dim=-1)  # (B, N, N)
    v = pam.value_conv(x).view(b, -1, h * w)  # (B, C, N)
    out = torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, h, w)
    return pam.gamma * out + x


def naive_cam(cam: ChannelAttentionModule, x: torch.Tensor) -> torch.Tensor:
    """DANet's CAM as written: E = X X^T, A = softmax(rowmax(E) - E), out = A X."""
    b, c, h, w = x.shape
    q = x.view(b, c, -1)
    energy = torch.bmm(q, q.permute(0, 2, 1))
    energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
    attention = torch.softmax(energy_new, dim=-1)
    out = torch.bmm(attention, q).view(b, c, h, w)
    return cam.gamma * out + x


def test_pam_equals_naive_danet_formula():
    torch.manual_seed(0)
    pam = PositionAttention(32, query_chunk=50)  # several chunks, uneven last one
    with torch.no_grad():
        pam.gamma.fill_(0.7)
    x = torch.randn(2, 32, 11, 13)
    with torch.no_grad():
        assert torch.allclose(pam(x), naive_pam(pam, x), atol=1e-5, rtol=1e-5)


def test_cam_equals_naive_danet_formula():
    torch.manual_seed(0)
    cam = ChannelAttentionModule()
    with torch.no_grad():
        cam.gamma.fill_(0.3)
    x = torch.randn(2, 16, 9, 7) * 0.2
    with torch.no_grad():
        assert torch.allclose(cam(x), naive_cam(cam, x), atol=1e-5, rtol=1e-5)


def test_dual_attention_is_identity_at_init_and_sums_branches():
    torch.manual_seed(0)
    da = DualAttention(32)
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        assert torch.equal(da(x), x)
        da.pam.gamma.fill_(0.5)
        da.cam.gamma.fill_(0.25)
        expected = naive_pam(da.pam, x) + naive_cam(da.cam, x) - x
        assert torch.allclose(da(x), expected, atol=1e-5)


def test_pam_tiles_attend_within_each_tile_only():
    torch.manual_seed(0)
    pam = PositionAttention(16, tile=8)
    with torch.no_grad():
        pam.gamma.fill_(1.0)
    x = torch.randn(1, 16, 12, 20)  # edge tiles are 4 rows / 4 columns
    with torch.no_grad():
        out = pam(x)
        for top in range(0, 12, 8):
            for left in range(0, 20, 8):
                tile = x[..., top : top + 8, left : left + 8]
                ref = naive_pam(pam, tile)
                assert torch.allclose(out[..., top : top + 8, left : left + 8], ref, atol=1e-5)


def test_pam_gradients_reach_qkv_once_gamma_moves():
    pam = PositionAttention(16)
    x = torch.randn(1, 16, 6, 6)
    pam(x).sum().backward()
    assert pam.query_conv.weight.grad.abs().max() == 0  # gamma = 0: q/k/v learn nothing yet
    assert pam.gamma.grad.abs() > 0
    pam.zero_grad()
    with torch.no_grad():
        pam.gamma.fill_(0.1)
    pam(x).square().sum().backward()
    assert pam.query_conv.weight.grad.abs().max() > 0


PAM_MEMORY_SCRIPT = """
import json, resource, torch
from ehat.archs import PositionAttention
torch.manual_seed(0)
pam = PositionAttention(180).eval()
x = torch.randn(1, 180, 352, 512)
with torch.inference_mode():
    y = pam.attend(x)
print(json.dumps({"finite": bool(torch.isfinite(y).all()), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


@pytest.mark.slow
def test_pam_on_512x352_with_180_channels_runs_under_8gb():
    """The full N x N attention would need 130 GB; the fused kernel keeps it far below 8 GB."""
    env = dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count() or 2))
    out = subprocess.run(
        [sys.executable, "-c", PAM_MEMORY_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=1500,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["finite"]
    assert result["peak_gb"] < 8.0, result
