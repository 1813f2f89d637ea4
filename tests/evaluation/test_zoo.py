"""The model zoo: ids, downloads (offline message, checksums), checkpoint/model_id mismatches."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import pytest
import torch

from ehat.archs.rlfn_arch import RLFN
from ehat.zoo import ZOO, ZooError, build_model, get_spec, resolve_weights


def test_challenge_ids_map_to_the_right_networks_and_ranges():
    assert (ZOO[35].preset, ZOO[35].weights, ZOO[35].data_range) == (
        "ehat_l",
        "model_zoo/SKDADDYS_Ehat.pth",
        1.0,
    )
    assert ZOO[35].url == "https://github.com/notiom/Ehat/releases/download/vv2.0.0/SKDADDYS_Ehat.pth"
    assert ZOO[35].sha256 is None  # unknown: reported, never pretended
    assert (ZOO[0].preset, ZOO[0].data_range, ZOO[0].weights) == (
        "rlfn_ntire",
        255.0,
        "model_zoo/team00_rlfn.pth",
    )
    assert (ZOO[101].preset, ZOO[101].data_range) == ("rlfn", 255.0)
    assert any(s.preset == "hat_l" for s in ZOO.values())
    assert ZOO[35].arch == "ehat_l"  # the old attribute name, still read by callers


def test_unknown_model_id_lists_the_known_ones():
    with pytest.raises(ZooError, match=r"--model_id 7 .*35 \(35_EHAT_L\)"):
        get_spec(7)


def test_baseline_checksum_is_that_of_the_shared_weights(shared_dir):
    data = (shared_dir / "weights" / "rlfn_ntire_x4.pth").read_bytes()
    assert hashlib.sha256(data).hexdigest() == ZOO[0].sha256
    assert hashlib.md5(data).hexdigest() == "8d2967b9d0f398370797289438bd248d"  # shared/README.md


def _spec(url, sha256=None):
    pretrained = dataclasses.replace(ZOO[0].pretrained, url=url, sha256=sha256)
    return dataclasses.replace(ZOO[0], pretrained=pretrained, weights="model_zoo/w.pth")


def test_offline_download_says_where_to_get_the_file_and_where_to_put_it(tmp_path):
    url = "http://127.0.0.1:9/x.pth"
    with pytest.raises(ZooError) as err:
        resolve_weights(_spec(url), None, root=tmp_path)
    msg = str(err.value)
    assert (
        "offline" in msg
        and url in msg
        and str(tmp_path / "model_zoo" / "w.pth") in msg
        and "--model_path" in msg
    )
    assert not (tmp_path / "model_zoo" / "w.pth").exists()


def test_download_verifies_a_known_checksum(tmp_path):
    src = tmp_path / "src.pth"
    torch.save(RLFN(feature_channels=8, mid_channels=8, num_blocks=1).state_dict(), src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    path = resolve_weights(_spec(src.as_uri(), digest), None, root=tmp_path / "a")
    assert path.read_bytes() == src.read_bytes()
    with pytest.raises(ZooError, match="expected 0000"):
        resolve_weights(_spec(src.as_uri(), "0000"), None, root=tmp_path / "b")


def test_unknown_checksum_is_reported_as_unverified(tmp_path, caplog):
    src = tmp_path / "src.pth"
    src.write_bytes(b"weights")
    with caplog.at_level(logging.INFO, logger="ehat.zoo"):
        resolve_weights(_spec(src.as_uri(), None), None, root=tmp_path / "a")
    assert hashlib.sha256(b"weights").hexdigest() in caplog.text and "NOT be verified" in caplog.text


def test_missing_model_path_is_named(tmp_path):
    with pytest.raises(ZooError, match="nope.pth does not exist"):
        resolve_weights(ZOO[35], tmp_path / "nope.pth")


def test_checkpoint_for_another_model_id_is_a_clear_error(tmp_path):
    path = tmp_path / "paper.pth"
    torch.save(RLFN(feature_channels=52, num_blocks=6).state_dict(), path)  # the paper model's shapes
    with pytest.raises(ZooError, match=r"(?s)paper.pth does not match --model_id 0 .*block_1.c1_r.weight"):
        build_model(ZOO[0], path)
    assert build_model(ZOO[101], path).training is False


def test_unreadable_checkpoint_is_not_called_a_mismatch(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ZooError, match=r"cannot use .*empty.pth: .*empty \(0 bytes\)") as info:
        build_model(ZOO[0], empty)
    assert "does not match" not in str(info.value)


def test_folder_given_as_model_path_is_called_a_folder(tmp_path):
    (tmp_path / "SKDADDYS_Ehat.pth").write_bytes(b"x")
    with pytest.raises(ZooError) as info:
        resolve_weights(ZOO[35], tmp_path)
    msg = str(info.value)
    assert "--model_path" in msg and "is a folder" in msg and "does not exist" not in msg
    assert "SKDADDYS_Ehat.pth" in msg


def test_team_layout_of_another_depth_through_the_zoo_names_the_file_and_depths(tmp_path):
    from ehat.archs import build_network, preset_config
    from ehat.checkpoints import expand_team_bsa

    small = build_network({**preset_config("ehat_tiny"), "dual_attention": "none"})
    path = tmp_path / "team_small.pth"
    torch.save({"params": expand_team_bsa(small.state_dict())}, path)
    with pytest.raises(ZooError) as info:
        build_model(ZOO[35], path)
    msg = str(info.value)
    assert f"checkpoint {path}" in msg and "state dict does not fit" not in msg
    assert "SKDADDYS" in msg and "depths [2, 2]" in msg
    assert "pick the matching preset" not in msg
