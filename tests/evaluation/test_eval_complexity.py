"""Complexity: the fast (meta-device) count equals real fvcore; the baseline matches the challenge."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ehat.archs import create_model
from ehat.archs.rlfn_arch import RLFN
from ehat.evaluation.complexity import cached_complexity, fvcore_flops, measure_complexity


class EveryOp(nn.Module):
    """Uses every op fvcore counts (and some it does not), the way models call them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.fc = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inorm(self.gn(self.bn(self.conv(x))))
        y = F.adaptive_avg_pool2d(y, 1) * F.gelu(y)
        t = self.ln(self.fc(y.flatten(2).transpose(1, 2)))  # (1, N, 8)
        a = torch.bmm(t @ t.transpose(1, 2), t)
        b = torch.einsum("bij,bjk->bik", torch.matmul(a, t.transpose(1, 2)), t)
        c = torch.einsum("bnc,bmc->bnm", t, t).softmax(-1)
        s = F.scaled_dot_product_attention(t[:, None], t[:, None], t[:, None])[:, 0]
        y = (b + s).transpose(1, 2).reshape(y.shape) + c.mean()
        y = F.interpolate(y, scale_factor=2, mode="nearest") + F.interpolate(
            y, scale_factor=2, mode="bilinear"
        )
        extra = t[0].mm(x.new_ones(8, 8)).sum() + torch.addmm(x.new_zeros(8), t[0], x.new_ones(8, 8)).sum()
        return self.up(y) + extra


def _real_fvcore(model, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fvcore_flops(model.eval(), torch.rand(shape))


@pytest.mark.parametrize(
    ("factory", "shape"),
    [
        (EveryOp, (1, 3, 12, 12)),
        (lambda: RLFN(feature_channels=46, mid_channels=48, num_blocks=4), (1, 3, 64, 64)),
        (
            lambda: create_model(
                "hat", embed_dim=30, depths=[2], num_heads=[3], window_size=8, squeeze_factor=10
            ),
            (1, 3, 24, 40),
        ),  # fmt: skip
    ],
    ids=["every_op", "rlfn_baseline", "hat_small"],
)
def test_meta_count_equals_real_fvcore_and_real_forward(factory, shape):
    torch.manual_seed(0)
    model = factory().eval()
    fast = measure_complexity(model, shape, method="meta")
    real = measure_complexity(model, shape, method="real")
    assert fast.method == "meta" and real.method == "real"
    assert fast.flops == _real_fvcore(model, shape) > 0
    assert (fast.macs_all, fast.activations, fast.num_conv) == (
        real.macs_all,
        real.activations,
        real.num_conv,
    )


@pytest.mark.slow
def test_meta_count_equals_real_fvcore_on_ehat_tiny():
    model = create_model("ehat_tiny").eval()
    assert measure_complexity(model, (1, 3, 32, 32), "meta").flops == _real_fvcore(model, (1, 3, 32, 32))


def test_rlfn_baseline_matches_the_challenge_numbers():
    """REFERENCE.md: 0.317M params, 19.67 GFLOPs, 80.05M activations, 39 convs on 1x3x256x256."""
    c = measure_complexity(RLFN(feature_channels=46, mid_channels=48, num_blocks=4))
    assert round(c.num_parameters / 1e6, 3) == 0.317
    assert round(c.flops / 1e9, 2) == 19.67
    assert round(c.activations / 1e6, 2) == 80.05
    assert c.num_conv == 39


def test_attention_is_in_macs_all_but_not_in_fvcore_flops():
    class Attn(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, x, x)

    b, h, n, d = 2, 3, 16, 8
    c = measure_complexity(Attn(), (b, h, n, d), method="meta")
    assert c.flops == 0  # fvcore skips SDPA
    assert c.macs_all == 2 * b * h * n * n * d  # QK^T and AV


def test_activations_count_every_conv_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(5, 5)  # challenge: Linear outputs are not activations

        def forward(self, x):
            return self.fc(self.conv(self.conv(x)))

    c = measure_complexity(Twice(), (1, 3, 5, 5))
    assert (c.activations, c.num_conv) == (2 * 3 * 5 * 5, 2)


def test_model_that_cannot_run_on_meta_falls_back_to_a_real_count(caplog):
    class MakesCpuTensors(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x) + torch.ones(1)  # a CPU tensor: not allowed beside meta

    c = measure_complexity(MakesCpuTensors(), (1, 3, 8, 8))
    assert c.method == "real" and c.flops == 4 * 3 * 9 * 36
    assert "meta-device count failed" in caplog.text


def test_counts_are_cached_per_model_and_input_size(tmp_path):
    model = RLFN(feature_channels=8, mid_channels=8, num_blocks=1)
    cache = tmp_path / "c.json"
    first, hit1 = cached_complexity(model, "m", cache, (1, 3, 32, 32))
    again, hit2 = cached_complexity(model, "m", cache, (1, 3, 32, 32))
    other, hit3 = cached_complexity(model, "m", cache, (1, 3, 48, 32))
    assert (hit1, hit2, hit3) == (False, True, False)
    assert again == first and other.flops > first.flops
    cache.write_text("{not json")
    assert cached_complexity(model, "m", cache, (1, 3, 32, 32)) == (first, False)


@pytest.mark.slow
def test_hat_l_is_counted_on_the_meta_device():
    c = measure_complexity(create_model("hat_l"))
    assert c.method == "meta"
    assert c.num_parameters == 40_846_575  # REFERENCE.md
    assert c.macs_all > c.flops  # window attention is only in the attention-inclusive count
