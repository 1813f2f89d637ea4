"""EFDN (the NTIRE 2025 ESR baseline, deployed form): shapes, config inference, complexity, and the
released weights against the challenge's own ``models/team00_EFDN.py`` when ``EHAT_NTIRE2025_ESR``
points at a checkout of Amazingren/NTIRE2025_ESR (its ``model_zoo/team00_EFDN.pth`` included)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ehat.archs import create_model, detect_network, preset_config, pretrained_weights
from ehat.archs.descriptor import StateDictError
from ehat.archs.efdn_arch import EFDN, efdn_config_from_state_dict
from ehat.data.image_io import read_image_uint8
from ehat.imaging.convert import to_tensor, to_uint8


def _checkout() -> Path:
    root = os.environ.get("EHAT_NTIRE2025_ESR")
    if not root or not (Path(root) / "model_zoo" / "team00_EFDN.pth").is_file():
        pytest.skip(
            "EHAT_NTIRE2025_ESR is not set to a checkout of Amazingren/NTIRE2025_ESR (with model_zoo/)"
        )
    return Path(root)


def _released(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "model_zoo" / "team00_EFDN.pth", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (14, 15), (16, 21)])
def test_any_input_size_gives_exactly_upscaled_output_in_range(size):
    torch.manual_seed(0)
    model = EFDN(feature_channels=8).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * 4, size[1] * 4)
    assert 0 <= float(y.min()) and float(y.max()) <= 1


def test_config_round_trip_and_detection_among_the_small_networks():
    model = EFDN(feature_channels=16, upscale=2)
    sd = model.state_dict()
    cfg = efdn_config_from_state_dict(sd)
    assert cfg == {"in_channels": 3, "out_channels": 3, "feature_channels": 16, "upscale": 2}
    EFDN(**cfg).load_state_dict(sd, strict=True)
    assert detect_network(sd).name == "EFDN"
    assert detect_network(create_model("span_ntire").state_dict()).name == "SPAN"
    assert detect_network(create_model("rlfn_ntire").state_dict()).name == "RLFN"


def test_incomplete_state_dict_names_the_missing_keys():
    with pytest.raises(StateDictError, match="local_fuse.0.weight"):
        efdn_config_from_state_dict(
            {"head.weight": torch.zeros(48, 3, 3, 3), "tail.0.weight": torch.zeros(48, 48, 3, 3)}
        )


def test_complexity_matches_the_ntire_2025_readme():
    """README of NTIRE2025_ESR: 0.276 M params, 16.70 G FLOPs on a 256x256 LR image."""
    from ehat.evaluation.complexity import measure_complexity

    cx = measure_complexity(create_model("efdn").eval())
    assert cx.num_parameters == 276_192
    assert round(cx.flops / 1e9, 2) == 16.70


def test_released_weights_load_strictly_with_the_presets_checksum():
    root = _checkout()
    path = root / "model_zoo" / "team00_EFDN.pth"
    weights = pretrained_weights("efdn", "ntire")
    assert weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and weights.data_range == 1.0
    sd = _released(root)
    cfg = efdn_config_from_state_dict(sd)
    assert {"type": "EFDN", **cfg} == preset_config("efdn") | {"in_channels": 3, "out_channels": 3}
    EFDN(**cfg).load_state_dict(sd, strict=True)

    from ehat.zoo import build_model, get_spec

    model = build_model(get_spec(104), path)
    assert isinstance(model, EFDN) and not model.training


@pytest.mark.slow
def test_released_weights_equal_the_challenges_own_model_file(shared_dir):
    """NTIRE 2025's ``models/team00_EFDN.py`` built as its test_demo.py does, on Set5 LR (real photos)."""
    root = _checkout()
    spec = importlib.util.spec_from_file_location("team00_EFDN", root / "models" / "team00_EFDN.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sd = _released(root)
    reference = module.EFDN().eval()
    reference.load_state_dict(sd, strict=True)
    ours = EFDN().eval()
    ours.load_state_dict(sd, strict=True)
    for path in sorted((shared_dir / "data" / "Set5" / "LR_bicubic" / "X4").glob("*.png")):
        x = to_tensor(read_image_uint8(path), 1.0, torch.device("cpu"))
        with torch.no_grad():
            y_ref, y_ours = reference(x), ours(x)
        assert (y_ours - y_ref).abs().max() <= 1e-5
        assert np.array_equal(to_uint8(y_ours, 1.0), to_uint8(y_ref, 1.0))
