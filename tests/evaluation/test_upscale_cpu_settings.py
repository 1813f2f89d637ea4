"""``ehat upscale`` on CPU runs PyTorch with the settings that closed the gap to onnxruntime
(docs/performance.md, small networks on CPU): malloc tuned, OpenMP's waiting threads passive,
convolution-only networks channels-last; the images it writes stay the network's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import ehat.cpu_allocator
from ehat.cli import main
from ehat.cpu_inference import passive_omp_wait, prefers_channels_last, to_cpu_layout

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "model_zoo" / "ehat_tiny_demo_x4.pth"


def _image(path: Path) -> Path:
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (12, 14, 3), dtype=np.uint8))
    return path


def test_upscale_on_cpu_tunes_malloc(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ehat.cpu_allocator, "tune_malloc", lambda *a, **k: calls.append(a) or True)
    src = _image(tmp_path / "a.png")
    argv = ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(DEMO), "--device", "cpu"]
    assert main([*argv, "--tile", "none", "--quiet"]) == 0
    assert len(calls) == 1
    assert (tmp_path / "out" / "a_x4.png").is_file()


def test_passive_wait_only_before_torch_and_never_over_the_users_choice(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "torch" in sys.modules  # pytest's session imported it: too late for libgomp
    assert passive_omp_wait() is False
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert passive_omp_wait() is False
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert passive_omp_wait() is True
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_ehat_upscale_makes_libgomp_passive(tmp_path):
    """In a fresh process, as a user runs it: libgomp's settings (printed with OMP_DISPLAY_ENV)
    show no spinning (its default is GOMP_SPINCOUNT 300000; it prints OMP_WAIT_POLICY 'PASSIVE'
    either way), so the policy was set before torch was imported."""
    src = _image(tmp_path / "b.png")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    cmd = [sys.executable, "-m", "ehat.cli", "upscale", str(src), "-o", str(tmp_path / "out"), "--model",
           str(DEMO), "--device", "cpu", "--tile", "none", "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "GOMP_SPINCOUNT = '0'" in proc.stderr + proc.stdout


@pytest.mark.parametrize(("preset", "convolutions_only"), [("rlfn_ntire", True), ("span_ntire", True),
                                                          ("ehat_tiny", False), ("hat_s", False)])  # fmt: skip
def test_channels_last_is_for_convolution_only_networks(preset, convolutions_only):
    from ehat.archs import create_model

    model = create_model(preset)
    assert prefers_channels_last(model) is convolutions_only
    conv = next(m for m in to_cpu_layout(model).modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is convolutions_only


def test_channels_last_upscale_writes_the_contiguous_networks_image(tmp_path, rlfn_weights):
    """RLFN (range 255) through ``ehat upscale`` on CPU, channels-last, against the same weights'
    plain (B, C, H, W) forward: the same 8-bit image up to float rounding (at most 1 level)."""
    from ehat.checkpoints import load_model

    src = _image(tmp_path / "c.png")
    argv = ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(rlfn_weights), "--device", "cpu"]
    assert main([*argv, "--tile", "none", "--quiet"]) == 0
    out = cv2.imread(str(tmp_path / "out" / "c_x4.png"))[..., ::-1].astype(np.int16)
    model = load_model(rlfn_weights).eval()
    x = torch.from_numpy(cv2.imread(str(src))[..., ::-1].copy()).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        ref = model(x)[0].clamp(0, 255).round().permute(1, 2, 0).numpy().astype(np.int16)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1
    assert np.mean(out != ref) < 1e-3
