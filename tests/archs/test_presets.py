"""Presets carry their released weights (timm's default_cfgs); zoo ids are aliases; network-config errors."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

import ehat.archs as archs
from ehat.archs import (
    NetworkArgumentError,
    NetworkConfigError,
    UnknownNetworkError,
    build_network,
    create_model,
    get_preset,
    list_presets,
    list_pretrained,
    preset_config,
    pretrained_weights,
)
from ehat.checkpoints import CheckpointError, load_model, load_weights
from ehat.errors import EhatError
from ehat.zoo import ZOO, ModelSpec, ZooError, build_model
from tests.helpers import REPO_ROOT


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_preset_has_a_config_and_the_expected_names():
    assert {"hat_s", "hat", "hat_l", "ehat_l", "ehat_tiny", "rlfn", "rlfn_ntire"} <= set(list_presets())
    for name in list_presets():
        cfg = preset_config(name)
        assert cfg["type"] in archs.list_networks(), name  # a registered network (descriptor)
        assert get_preset(name).doc, name  # documented


@pytest.mark.parametrize(
    ("preset", "tag", "file"),
    [("rlfn", "paper", "rlfn_x4.pth"), ("rlfn_ntire", "ntire", "rlfn_ntire_x4.pth")],
)
def test_rlfn_presets_hold_the_checksums_of_the_released_files(shared_dir, preset, tag, file):
    weights = pretrained_weights(preset, tag)
    path = shared_dir / "weights" / file
    assert weights.file == file and weights.sha256 == _file_sha256(path)
    model = create_model(preset)
    load_weights(model, path)  # strict: the preset's config is the released network's
    assert weights.data_range == model.img_range == 255 and weights.scale == model.upscale == 4


def test_shared_file_md5s_match_the_shared_readme(shared_dir):
    """The shared files are the ones the README describes (an independent reference for the above)."""
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (shared_dir / "weights").glob("*.pth")}
    assert md5["rlfn_x4.pth"] == "895d77797df35d0dc945982def3fd8d3"
    assert md5["rlfn_ntire_x4.pth"] == "8d2967b9d0f398370797289438bd248d"


def test_demo_preset_holds_the_checksum_of_the_shipped_file():
    weights = pretrained_weights("ehat_tiny")
    path = REPO_ROOT / "model_zoo" / weights.file
    assert weights.sha256 == _file_sha256(path) and weights.url is None
    model = create_model("ehat_tiny")
    load_weights(model, path)
    assert weights.data_range == model.img_range == 1.0 and weights.scale == model.upscale


def test_weights_we_never_had_carry_no_invented_checksum():
    have = {
        "rlfn_x4.pth",
        "rlfn_ntire_x4.pth",
        "ehat_tiny_demo_x4.pth",
        "team00_SPAN.pth",
        "team00_EFDN.pth",
    }  # SPAN: shared/; EFDN: NTIRE2025_ESR
    for preset, tag, w in list_pretrained():
        if w.file not in have:
            assert w.sha256 is None, (preset, tag)
        assert w.scale == preset_config(preset)["upscale"], (preset, tag)
        expected_range = archs.descriptor_of(preset_config(preset)["type"]).data_range
        assert w.data_range == expected_range, (preset, tag)


def test_zoo_ids_are_aliases_onto_preset_weights():
    """No config, URL or checksum of its own: every zoo entry's data comes from its preset."""
    fields = {f.name for f in dataclasses.fields(ModelSpec)}
    assert fields == {"model_id", "name", "preset", "pretrained", "weights", "description"}
    for spec in ZOO.values():
        assert spec.preset in list_presets()
        assert any(spec.pretrained is w for p, _, w in list_pretrained() if p == spec.preset)
        assert (spec.url, spec.sha256, spec.data_range) == (
            spec.pretrained.url,
            spec.pretrained.sha256,
            spec.pretrained.data_range,
        )
    assert (ZOO[0].preset, ZOO[35].preset, ZOO[100].preset, ZOO[101].preset, ZOO[102].preset) == (
        "rlfn_ntire",
        "ehat_l",
        "hat_l",
        "rlfn",
        "ehat_tiny",
    )


@pytest.mark.parametrize("model_id", [0, 101, 102])
def test_zoo_builds_its_preset(model_id):
    spec = ZOO[model_id]
    built, reference = build_model(spec, None).state_dict(), create_model(spec.preset).state_dict()
    assert {k: v.shape for k, v in built.items()} == {k: v.shape for k, v in reference.items()}


def test_rlfn_config_lives_in_one_place():
    import ehat.archs.rlfn_arch as rlfn_arch
    import ehat.zoo as zoo

    assert not hasattr(rlfn_arch, "RLFN_CONFIGS")
    assert not any(name.startswith("_RLFN") for name in vars(zoo))


# --------------------------------------------------------------------------- errors


def test_error_classes_share_the_base():
    for cls in (CheckpointError, ZooError, NetworkConfigError, UnknownNetworkError, NetworkArgumentError):
        assert issubclass(cls, EhatError), cls


def test_unknown_network_type_names_the_key_and_suggests():
    with pytest.raises(UnknownNetworkError) as info:
        build_network({"type": "EHTA"})
    assert isinstance(info.value, KeyError)  # still caught where a KeyError was
    msg = str(info.value)
    assert msg.startswith("network_g.type: ") and "(did you mean 'EHAT'?)" in msg and not msg.startswith("'")
    with pytest.raises(UnknownNetworkError, match=r"network_g\.type: is required"):
        build_network({"embed_dim": 30})


def test_unknown_network_argument_names_the_key_and_suggests():
    with pytest.raises(NetworkArgumentError) as info:
        create_model("ehat_tiny", windw_size=8)
    assert isinstance(info.value, TypeError)  # still caught where a TypeError was
    assert (
        str(info.value)
        == "network_g.windw_size: EHAT has no argument 'windw_size' (did you mean 'window_size'?)"
    )


def test_unknown_preset_suggests_and_lists():
    with pytest.raises(
        UnknownNetworkError, match=r"'hat_ll' \(did you mean 'hat_l'\?\); known presets: .*rlfn_ntire"
    ):
        preset_config("hat_ll")
    with pytest.raises(UnknownNetworkError, match=r"no pretrained weights 'nope'.*its weights: ntire"):
        pretrained_weights("rlfn_ntire", "nope")


def test_dead_registration_helper_is_gone():
    assert not hasattr(archs, "_register_optional")
    assert archs.RLFN is archs.rlfn_arch.RLFN


def test_wrong_preset_for_a_file_says_to_load_without_one(tmp_path, shared_dir):
    with pytest.raises(CheckpointError) as info:
        load_model(shared_dir / "weights" / "rlfn_x4.pth", preset="rlfn_ntire")
    msg = str(info.value)
    assert "rlfn_x4.pth" in msg and "preset 'rlfn_ntire' does not describe this file" in msg
    assert "without preset=" in msg
    model = load_model(shared_dir / "weights" / "rlfn_x4.pth")  # and that advice works
    assert model.arch_config["feature_channels"] == 52
    x = torch.rand(1, 3, 16, 16) * 255
    with torch.no_grad():
        assert model(x).shape == (1, 3, 64, 64)
