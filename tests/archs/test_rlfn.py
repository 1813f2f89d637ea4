"""RLFN (the NTIRE baseline architecture): both released checkpoints, shapes, registry."""

from __future__ import annotations

import pytest
import torch

from ehat.archs import preset_config
from ehat.archs.descriptor import StateDictError
from ehat.archs.rlfn_arch import RLFN, rlfn_config_from_state_dict


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    ("file", "params", "config"),
    [("rlfn_x4.pth", 543_740, "rlfn"), ("rlfn_ntire_x4.pth", 317_218, "rlfn_ntire")],
)
def test_both_released_checkpoints_load_strictly(shared_dir, file, params, config):
    sd = _load(shared_dir / "weights" / file)
    cfg = rlfn_config_from_state_dict(sd)
    preset = {k: v for k, v in preset_config(config).items() if k != "type"}
    assert {k: cfg[k] for k in preset} == preset  # the preset is the one home of the config
    model = RLFN(**cfg)
    model.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in model.parameters()) == params  # shared/README.md


def test_rlfn_is_registered_and_built_by_build_network():
    from basicsr.utils.registry import ARCH_REGISTRY

    from ehat.archs import build_network

    assert ARCH_REGISTRY.get("RLFN") is RLFN
    model = build_network({"type": "RLFN", "feature_channels": 46, "mid_channels": 48, "num_blocks": 4})
    assert isinstance(model, RLFN) and model.upscale == 4 and model.img_range == 255


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (14, 15), (17, 23), (32, 32)])
def test_any_input_size_gives_exactly_upscaled_output(size):
    model = RLFN(feature_channels=8, mid_channels=8, num_blocks=1).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 3, *size) * 255)
    assert y.shape == (2, 3, size[0] * 4, size[1] * 4)
    assert torch.isfinite(y).all()


def test_large_inputs_are_not_padded():
    """From 15 px up the network runs on the input as is: cropping a padded run must not happen."""
    torch.manual_seed(0)
    model = RLFN(feature_channels=8, mid_channels=8, num_blocks=1).eval()
    x = torch.rand(1, 3, 16, 18) * 255
    with torch.no_grad():
        y = model(x)
        # The same computation written out from the paper's figure, without the forward method.
        shallow = model.conv_1(x)
        ref = model.upsampler(model.conv_2(model.block_1(shallow)) + shallow)
    torch.testing.assert_close(y, ref)


def test_state_dict_that_is_not_rlfn_names_the_missing_key():
    with pytest.raises(StateDictError, match="conv_1.weight"):
        rlfn_config_from_state_dict({"conv_first.weight": torch.zeros(1)})
