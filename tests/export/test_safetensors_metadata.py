"""Our .safetensors files carry the network config, scale, data range and version in the header."""

from __future__ import annotations

import json
import struct

import torch

from ehat.archs import create_model
from ehat.checkpoints import load_model, read_safetensors_metadata, save_network


def _header_by_hand(path) -> dict:
    """The safetensors header parsed with struct + json only (the format's spec), no library."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def test_saved_safetensors_header_holds_config_scale_range_version(tmp_path):
    torch.manual_seed(0)
    model = create_model("ehat_tiny", bicubic_skip=True, dual_attention="rhag")
    path = tmp_path / "net.safetensors"
    save_network(model, path, extra={"iteration": 7})
    meta = _header_by_hand(path)["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["arch"]) == model.arch_config
    assert meta["scale"] == "4" and meta["data_range"] == "1" and meta["ehat_version"]
    assert meta["iteration"] == "7"
    assert read_safetensors_metadata(path) == meta


def test_loading_uses_the_stored_config(tmp_path):
    torch.manual_seed(0)
    model = create_model("ehat_tiny", bicubic_skip=True, pam_tile=8).eval()
    path = tmp_path / "net.safetensors"
    save_network(model, path)
    back = load_model(path)
    assert back.arch_config == model.arch_config  # pam_tile is in no state dict: it came from the header
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_ema_weights_are_the_ones_saved_and_rlfn_range_is_255(tmp_path):
    torch.manual_seed(0)
    model, ema = create_model("rlfn_ntire"), create_model("rlfn_ntire")
    path = tmp_path / "rlfn.safetensors"
    save_network(model, path, ema_model=ema)
    assert read_safetensors_metadata(path)["data_range"] == "255"
    back = load_model(path)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in ema.state_dict().items())

    from ehat.export.models import resolve_model

    assert resolve_model(path).data_range == 255.0


def test_convert_to_safetensors_writes_the_same_header(tmp_path):
    """scripts/convert_checkpoint.py's .safetensors output carries scale, data range and version too."""
    import importlib.util

    from tests.helpers import REPO_ROOT

    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint", REPO_ROOT / "scripts/convert_checkpoint.py"
    )
    convert_checkpoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert_checkpoint)
    torch.manual_seed(0)
    model = create_model("ehat_tiny")
    src, dst = tmp_path / "net.pth", tmp_path / "net.safetensors"
    torch.save({"params": model.state_dict()}, src)
    assert convert_checkpoint.main([str(src), str(dst)]) == 0
    meta = _header_by_hand(dst)["__metadata__"]
    assert meta["scale"] == "4" and meta["data_range"] == "1" and meta["ehat_version"]
    assert json.loads(meta["arch"])["type"] in ("EHAT", "HAT")
