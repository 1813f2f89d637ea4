"""EHAT's optional bicubic image skip: exact bicubic at init, learnable, loud in checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ehat.archs import build_network, preset_config
from ehat.archs.bicubic_skip import BicubicSkip, cubic
from ehat.checkpoints import CheckpointError, infer_config, load_weights


def skip_cfg(**kw):
    return {**preset_config("ehat_tiny"), "bicubic_skip": True, **kw}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(7, 9), (1, 5), (16, 16)])
def test_skip_at_init_is_torch_bicubic_borders_included(scale, size):
    x = torch.rand(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    got = BicubicSkip(3, scale).double()(x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-7  # x3: PyTorch computes the 1/3 step in float


def test_cubic_kernel_is_keys_with_a_minus_075():
    """Independent values: Keys' kernel with a=-0.75 at 0, 0.5, 1, 1.5, 2 (partition of unity)."""
    assert [cubic(t) for t in (0.0, 0.5, 1.0, 1.5, 2.0)] == [1.0, 0.59375, 0.0, -0.09375, 0.0]
    for d in (0.125, 0.375):
        assert abs(sum(cubic(d - j) for j in range(-1, 3)) - 1.0) < 1e-12


@pytest.mark.parametrize("size", [(13, 17), (8, 8), (5, 3)])
def test_fresh_ehat_with_skip_computes_bicubic(size):
    """conv_last starts at zero, so the network's output is the skip: bicubic of the input."""
    model = build_network(skip_cfg()).double().eval()
    x = torch.rand(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
    ref = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert (y - ref).abs().max().item() < 1e-12


def test_skip_and_body_both_learn():
    """One step moves the skip's kernel and conv_last; after it the body reaches the output."""
    model = build_network(skip_cfg()).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    skip0 = model.bicubic_skip.weight.detach().clone()
    (model(x) - gt).abs().mean().backward()
    assert model.bicubic_skip.weight.grad.abs().sum() > 0
    assert model.conv_last.weight.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    assert not torch.equal(model.bicubic_skip.weight, skip0)
    (model(x) - gt).abs().mean().backward()
    assert model.conv_first.weight.grad.abs().sum() > 0


def test_plain_configs_have_no_skip():
    for name in ("hat_l", "ehat_l", "ehat_tiny"):
        assert not any(k.startswith("bicubic_skip") for k in build_network({"type": name}).state_dict())


def test_checkpoint_with_skip_needs_a_model_with_skip_and_back():
    with_skip = build_network(skip_cfg()).state_dict()
    without = build_network(preset_config("ehat_tiny")).state_dict()
    with pytest.raises(
        CheckpointError, match=r"(?s)unexpected keys: .*bicubic_skip\.weight.*bicubic_skip: true"
    ):
        load_weights(build_network(preset_config("ehat_tiny")), with_skip)
    with pytest.raises(
        CheckpointError, match=r"(?s)missing keys: .*bicubic_skip\.weight.*bicubic_skip: false"
    ):
        load_weights(build_network(skip_cfg()), without)


def test_plain_hat_checkpoint_is_not_quietly_loaded_into_a_skip_model():
    """HAT weights + a bicubic skip would compute HAT + bicubic: refuse, naming the skip."""
    hat = {k: v for k, v in preset_config("ehat_tiny").items() if k not in ("bsa", "dual_attention")}
    sd = build_network({**hat, "type": "HAT"}).state_dict()
    with pytest.raises(
        CheckpointError, match=r"(?s)bicubic_skip\.weight.*the checkpoint lacks.*bicubic_skip: false"
    ):
        load_weights(build_network(skip_cfg()), sd)


def test_config_with_skip_is_inferred_from_the_state_dict():
    cfg = infer_config(build_network(skip_cfg()).state_dict())
    assert cfg["type"] == "EHAT" and cfg["bicubic_skip"] is True
    rebuilt = build_network(cfg).state_dict()
    assert rebuilt.keys() == build_network(skip_cfg()).state_dict().keys()
