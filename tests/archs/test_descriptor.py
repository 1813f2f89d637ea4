"""Network descriptors: detection, config inference, look-up by model / class / name."""

from __future__ import annotations

import pytest
import torch

from ehat.archs import (
    EHAT,
    HAT,
    RLFN,
    UnknownLayoutError,
    UnknownNetworkError,
    create_model,
    descriptor_of,
    detect_network,
    list_networks,
    network_config_from_state_dict,
)


@pytest.mark.parametrize(
    "preset, overrides, expected",
    [
        ("ehat_tiny", {"type": "HAT", "bsa": None, "dual_attention": None}, "HAT"),
        ("ehat_tiny", {}, "EHAT"),
        ("ehat_tiny", {"bsa": False, "dual_attention": "none", "bicubic_skip": True}, "EHAT"),
        ("rlfn_ntire", {}, "RLFN"),
    ],
)
def test_detect_network_names_the_class_that_built_the_state_dict(preset, overrides, expected):
    from ehat.archs import build_network, preset_config

    cfg = {**preset_config(preset), **overrides}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    model = build_network(cfg)
    desc = detect_network(model.state_dict())
    assert desc.name == expected and desc.cls is type(model)
    rebuilt = build_network(network_config_from_state_dict(model.state_dict()))
    assert type(rebuilt) is type(model)
    rebuilt.load_state_dict(model.state_dict(), strict=True)


def test_unknown_layout_lists_every_registered_network():
    with pytest.raises(UnknownLayoutError) as err:
        detect_network({"body.0.weight": torch.zeros(1)})
    for name in list_networks():
        assert name in str(err.value)
    assert "body.0.weight" in str(err.value)


def test_descriptor_of_model_class_name_and_subclass():
    model = create_model("rlfn_ntire")
    assert descriptor_of(model) is descriptor_of(RLFN) is descriptor_of("RLFN")
    assert descriptor_of(model).data_range == 255.0 and descriptor_of(EHAT).data_range == 1.0

    class Team07Net(EHAT):  # a submission's no-argument subclass is described by its base
        pass

    assert descriptor_of(Team07Net) is descriptor_of(EHAT) is not descriptor_of(HAT)
    with pytest.raises(UnknownNetworkError, match="registered networks: .*RLFN"):
        descriptor_of("RLFNN")
    with pytest.raises(UnknownNetworkError, match="not a registered network"):
        descriptor_of(torch.nn.Conv2d(1, 1, 1))
