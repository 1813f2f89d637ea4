"""Adding a network touches no file of EHAT: a toy network, written in a temporary module exactly as a
new arch file would be (class + descriptor + one registration call + its preset and zoo entry),
runs through checkpoint loading (config inferred, no stored config), test_demo.py on a tiny set,
ONNX export verified by onnxruntime, and ``ehat submission`` checked in an isolated process.

The toy module lives in ``tmp_path``, outside the repository: that every step below passes is the
proof that no other file needed editing.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest
import torch

from tests.helpers import make_challenge_set, run_submission_model

TOY_ARCH = '''
"""ToyNet: conv -> LeakyReLU -> conv -> pixel shuffle, plus a bilinear image skip."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ehat.archs.descriptor import NetworkDescriptor, StateDictError, register_network
from ehat.archs.presets import PretrainedWeights, register_preset


class ToyNet(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 3, H*upscale, W*upscale)."""

    def __init__(self, channels: int = 8, upscale: int = 4) -> None:
        super().__init__()
        self.upscale = upscale
        self.toy_head = nn.Conv2d(3, channels, 3, padding=1)
        self.toy_tail = nn.Conv2d(channels, 3 * upscale**2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.toy_tail(F.leaky_relu(self.toy_head(x), 0.1))
        skip = F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return F.pixel_shuffle(body, self.upscale) + skip


def toy_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if "toy_tail.weight" not in sd:
        raise StateDictError("looks like ToyNet but lacks toy_tail.weight")
    channels = sd["toy_head.weight"].shape[0]
    return {"channels": int(channels), "upscale": round((sd["toy_tail.weight"].shape[0] // 3) ** 0.5)}


register_network(
    NetworkDescriptor(
        name="ToyNet",
        cls=ToyNet,
        detect=lambda sd: "toy_head.weight" in sd,
        infer_config=toy_config_from_state_dict,
        layout="toy_head.weight, toy_tail.weight",
        source_modules=("toy_arch",),
    )
)


@register_preset(weights={"demo": PretrainedWeights("toy_x4.pth", None, None, 1.0, 4, "a test")})
def toy() -> dict[str, Any]:
    """ToyNet x4, 8 channels."""
    return {"type": "ToyNet", "channels": 8, "upscale": 4}
'''


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """The toy arch module, imported from tmp_path (the one registration: importing it)."""
    (tmp_path / "toy_arch.py").write_text(textwrap.dedent(TOY_ARCH))
    monkeypatch.syspath_prepend(str(tmp_path))
    from ehat.archs import descriptor as descriptor_module
    from ehat.archs import presets

    networks, presets_before = dict(descriptor_module._NETWORKS), dict(presets._PRESETS)
    module = importlib.import_module("toy_arch")
    yield module
    sys.modules.pop("toy_arch", None)
    descriptor_module._NETWORKS.clear()
    descriptor_module._NETWORKS.update(networks)
    presets._PRESETS.clear()
    presets._PRESETS.update(presets_before)


@pytest.fixture()
def toy_weights(tmp_path, toy):
    """A bare state dict (no stored config) of a trained-looking ToyNet, in model_zoo-like folder."""
    torch.manual_seed(0)
    model = toy.ToyNet(channels=6)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.1)
    path = tmp_path / "weights" / "toy_x4.pth"
    path.parent.mkdir()
    torch.save(model.state_dict(), path)
    return model.eval(), path


def test_toy_checkpoint_loads_with_its_config_inferred(toy, toy_weights):
    from ehat.checkpoints import load_model, read_checkpoint

    model, path = toy_weights
    assert "arch" not in read_checkpoint(path)
    loaded = load_model(path)
    assert type(loaded) is toy.ToyNet and loaded.arch_config == {
        "type": "ToyNet",
        "channels": 6,
        "upscale": 4,
    }
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_toy_runs_through_test_demo(tmp_path, toy, toy_weights, photo):
    from ehat.evaluation.ntire import main
    from ehat.zoo import _ZOO, ZOO, alias, register_model

    model, path = toy_weights
    spec = register_model(alias(900, "900_Toy", "toy", "demo", "the toy network"))
    try:
        make_challenge_set(tmp_path / "data", photo, [("0801", (48, 40))])
        args = ["--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "out"),
                "--results_dir", str(tmp_path / "res"), "--model_id", "900", "--model_path", str(path),
                "--device", "cpu"]  # fmt: skip
        # the toy's preset has 8 channels, these weights 6: the zoo refuses them, naming the file
        assert main(args) == 2
        torch.save(toy.ToyNet(channels=8).state_dict(), path)
        assert main(args) == 0
        result = json.loads((tmp_path / "res" / "results.json").read_text())["900_Toy"]
        assert result["num_parameters"] == pytest.approx(
            sum(p.numel() for p in toy.ToyNet(8).parameters()) / 1e6
        )
        assert np.isfinite(result["valid_ave_psnr"])
    finally:
        _ZOO.pop(spec.model_id, None)
    assert 900 not in ZOO


def test_toy_exports_to_onnx_verified_by_onnxruntime(tmp_path, toy, toy_weights):
    ort = pytest.importorskip("onnxruntime")
    from ehat.export.models import resolve_model
    from ehat.export.onnx import export_onnx

    model, path = toy_weights
    resolved = resolve_model(path)
    report = export_onnx(resolved.model, tmp_path / "toy.onnx", data_range=resolved.data_range)
    assert report.checks and all(diff <= report.tolerance for _, diff in report.checks)
    session = ort.InferenceSession(str(tmp_path / "toy.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 13, 7)
    (out,) = session.run(None, {"lr": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5)


def test_toy_submission_runs_without_ehat(tmp_path, toy, toy_weights):
    from ehat.cli import main

    model, path = toy_weights
    out = tmp_path / "pkg"
    assert (
        main(
            ["submission", str(path), "--team_id", "9", "--name", "Toy", "--out", str(out), "--year", "2026"]
        )
        == 0
    )
    x = torch.rand(1, 3, 10, 12)
    y = run_submission_model(
        tmp_path, out, "Team09Toy", "team09_Toy", out / "model_zoo" / "team09_Toy.pth", x
    )
    with torch.no_grad():
        assert torch.equal(y, model(x))
