"""test_demo.py on messy input: every bad image is reported by file name and the others are still
evaluated; NaN/inf are refused naming the image; foreign checkpoints are refused without a traceback;
a full disk never truncates results.json.

The model is a randomly initialised RLFN (the challenge baseline's shape) saved in tmp_path.
"""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ehat.archs.rlfn_arch import RLFN
from ehat.data.image_io import write_image
from ehat.evaluation.inference import infer
from ehat.evaluation.ntire import main
from ehat.evaluation.protocol import EvalOptions, evaluate_set
from ehat.evaluation.sets import ImageItem
from tests.helpers import REPO_ROOT

RLFN_NTIRE = {"feature_channels": 46, "mid_channels": 48, "num_blocks": 4}


def _run(tmp_path, rlfn_weights, *extra, model_id=0):
    return main(["--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "out"),
                 "--results_dir", str(tmp_path / "res"), "--model_id", str(model_id), "--model_path", str(rlfn_weights),
                 "--device", "cpu", "--skip_complexity", *extra])  # fmt: skip


def _results(tmp_path):
    return json.loads((tmp_path / "res" / "results.json").read_text())["00_RLFN_baseline"]


def _log(tmp_path):
    return (tmp_path / "res" / "NTIRE2024-EfficientSR.log").read_text()


def messy_set(root: Path, photo: np.ndarray) -> tuple[Path, Path]:
    """The challenge layout with one good pair and one of each bad input (LR side unless stated)."""
    hr_dir, lr_dir = root / "DIV2K_LSDIR_valid_HR", root / "DIV2K_LSDIR_valid_LR"

    def pair(name: str, h: int = 64, w: int = 64) -> np.ndarray:
        hr = np.ascontiguousarray(photo[100 : 100 + h, 120 : 120 + w])
        write_image(hr_dir / f"{name}.png", hr)
        lr = cv2.resize(hr, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        write_image(lr_dir / f"{name}x4.png", lr)
        return lr

    pair("0801")  # good
    pair("0802")
    data = (lr_dir / "0802x4.png").read_bytes()
    (lr_dir / "0802x4.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    pair("0803")
    (lr_dir / "0803x4.png").write_bytes(b"")  # zero bytes
    pair("0804")
    (lr_dir / "0804x4.png").write_text("<html>404 Not Found</html>")  # not an image, .png name
    lr = pair("0805")
    cv2.imwrite(str(lr_dir / "0805x4.png"), lr[..., ::-1].astype(np.uint16) * 257)  # 16-bit
    lr = pair("0806")
    Image.fromarray(lr).convert("L").save(lr_dir / "0806x4.png")  # grayscale
    lr = pair("0807")
    Image.fromarray(lr).convert("RGBA").save(lr_dir / "0807x4.png")  # RGBA
    lr = pair("0808")
    Image.fromarray(lr).convert("P", palette=Image.Palette.ADAPTIVE).save(lr_dir / "0808x4.png")  # palette
    pair("0809", 8, 12)  # LR 3x2: smaller than any window, too small to score
    pair("0810")
    (hr_dir / "0810.png").unlink()  # LR whose HR is missing
    pair("0811")
    write_image(hr_dir / "0811.png", np.ascontiguousarray(photo[:100, :100]))  # HR is not 4x the LR
    write_image(hr_dir / "0812.png", np.ascontiguousarray(photo[:64, :64]))  # HR whose LR is missing
    return hr_dir, lr_dir


@pytest.mark.slow
def test_every_bad_image_is_named_and_the_others_are_evaluated(tmp_path, photo, rlfn_weights):
    hr_dir, lr_dir = messy_set(tmp_path / "data", photo)
    assert _run(tmp_path, rlfn_weights) == 0
    r = _results(tmp_path)
    assert r["valid_images"] == ["0801", "0805", "0806", "0807", "0808", "0809", "0810", "0811"]
    assert r["valid_scored_images"] == ["0801", "0805", "0806", "0807", "0808"]
    assert len(r["valid_psnr"]) == 5 and all(np.isfinite(r["valid_psnr"]))
    failed = r["valid_failed"]
    assert set(failed) == {"0802", "0803", "0804", "0809", "0810", "0811"}
    for name, words in [("0802", "truncated"), ("0803", "zero bytes"), ("0804", "not an image")]:
        assert str(lr_dir / f"{name}x4.png") in failed[name] and words in failed[name]
    assert str(hr_dir / "0809.png") in failed["0809"] and "too small to score" in failed["0809"]
    assert "no HR" in failed["0810"]
    assert str(hr_dir / "0811.png") in failed["0811"] and str(lr_dir / "0811x4.png") in failed["0811"]
    assert "does not match the HR shape" in failed["0811"]
    log = _log(tmp_path)
    assert "0812" in log and "no LR" in log
    out = tmp_path / "out" / "00_RLFN_baseline" / "valid"
    assert sorted(p.stem for p in out.glob("*.png")) == r["valid_images"]
    # 16-bit, grayscale, RGBA and palette inputs are the same picture as the 8-bit RGB one
    good = cv2.imread(str(out / "0801.png"))
    assert np.array_equal(cv2.imread(str(out / "0805.png")), good)
    assert np.array_equal(cv2.imread(str(out / "0807.png")), good)


def test_lr_folder_that_is_empty_or_holds_only_bad_images(tmp_path, photo, rlfn_weights):
    lr_dir = tmp_path / "data" / "DIV2K_LSDIR_valid_LR"
    lr_dir.mkdir(parents=True)
    (lr_dir / "notes.txt").write_text("no images here")
    assert _run(tmp_path, rlfn_weights) == 2
    assert "no images (.png" in _log(tmp_path) and str(lr_dir) in _log(tmp_path)
    (lr_dir / "0801x4.png").write_bytes(b"")
    write_image(
        tmp_path / "data" / "DIV2K_LSDIR_valid_HR" / "0801.png", np.ascontiguousarray(photo[:64, :64])
    )
    assert _run(tmp_path, rlfn_weights) == 1
    assert "no image of the valid set could be evaluated" in _log(tmp_path)


# ------------------------------------------------------------------------------------------- NaN / inf
def _upscale(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=4, mode="nearest")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_a_value_error_naming_the_image(value):
    x = torch.rand(1, 3, 8, 8)
    x[0, 1, 2, 3] = value
    opts = EvalOptions(device=torch.device("cpu"), data_range=1.0)
    with pytest.raises(ValueError, match=r"0801x4\.png: the input holds 1 NaN/inf value"):
        infer(_upscale, x, opts, logging.getLogger("test"), "0801x4.png")


def test_non_finite_model_output_fails_that_image_only(tmp_path, photo, caplog):
    def broken_on_wide_images(x: torch.Tensor) -> torch.Tensor:
        y = _upscale(x)
        return y * float("nan") if x.shape[-1] > 10 else y

    for name, w in (("a", 8), ("b", 12), ("c", 9)):
        write_image(tmp_path / f"{name}.png", np.ascontiguousarray(photo[:8, :w]))
    items = [ImageItem(n, str(tmp_path / f"{n}.png"), None) for n in "abc"]
    opts = EvalOptions(device=torch.device("cpu"), data_range=1.0, save_images=False)
    with caplog.at_level(logging.ERROR, logger="test"):
        res = evaluate_set(
            broken_on_wide_images, items, opts, tmp_path / "out", "valid", logging.getLogger("test")
        )
    assert [r.runtime_ms is not None for r in res.images] == [True, False, True]
    assert "b: the model output holds" in res.images[1].note and "check the weights" in res.images[1].note


def test_fp16_overflow_names_fp16_and_the_way_out(tmp_path, photo):
    """An fp16 run whose output overflows says it is fp16's range and offers bf16 / fp32."""

    def overflows(x: torch.Tensor) -> torch.Tensor:
        return _upscale(x) * float("inf")

    write_image(tmp_path / "a.png", np.ascontiguousarray(photo[:8, :8]))
    opts = EvalOptions(device=torch.device("cpu"), data_range=1.0, save_images=False, precision="fp16")
    res = evaluate_set(
        overflows, [ImageItem("a", str(tmp_path / "a.png"), None)], opts, tmp_path / "out", "valid",
        logging.getLogger("test"),
    )  # fmt: skip
    note = res.images[0].note
    assert "fp16 overflowed" in note and "65504" in note and "--bf16" in note


# ------------------------------------------------------------------------------------ foreign checkpoints
def test_checkpoint_of_another_scale_names_both_scales(tmp_path, photo, rlfn_weights):
    messy_set(tmp_path / "data", photo)
    x2 = tmp_path / "rlfn_x2.pth"
    torch.save(RLFN(**RLFN_NTIRE, upscale=2).state_dict(), x2)
    assert _run(tmp_path, x2) == 2
    log = _log(tmp_path)
    assert f"{x2} does not match --model_id 0" in log and "the checkpoint is x2, the model is x4" in log
    assert not (tmp_path / "res" / "results.json").exists()


@pytest.mark.slow
def test_checkpoint_of_another_architecture_is_refused_without_a_traceback(tmp_path, photo, rlfn_weights):
    messy_set(tmp_path / "data", photo)
    cmd = [sys.executable, "test_demo.py", "--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "o"),
           "--results_dir", str(tmp_path / "res"), "--model_id", "35", "--model_path", str(rlfn_weights),
           "--device", "cpu"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{rlfn_weights} does not match --model_id 35 (35_EHAT_L, network ehat_l)" in done.stderr
    assert "unexpected keys: block_1." in done.stderr and "missing keys: conv_after_body" in done.stderr


# ------------------------------------------------------------------------------------------- full disk
class _FullDisk:
    """A file object that accepts the first half of what is written, then fails like a full disk."""

    def __init__(self, f):
        self.f = f

    def __getattr__(self, name):  # fileno, flush, ...: the real file's
        return getattr(self.f, name)

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_full_disk_keeps_the_previous_results_files_intact(tmp_path, photo, rlfn_weights, monkeypatch):
    import os

    messy_set(tmp_path / "data", photo)
    assert _run(tmp_path, rlfn_weights, "--no_save") == 0
    before = {n: (tmp_path / "res" / n).read_bytes() for n in ("results.json", "results.txt")}
    real_fdopen = os.fdopen

    def full_disk_fdopen(fd, mode="r", *args, **kw):  # what ehat.atomic writes through
        f = real_fdopen(fd, mode, *args, **kw)
        return _FullDisk(f) if "w" in mode else f

    monkeypatch.setattr(os, "fdopen", full_disk_fdopen)
    assert _run(tmp_path, rlfn_weights, "--no_save", "--ssim") == 1
    assert "No space left on device" in _log(tmp_path) and "are intact" in _log(tmp_path)
    after = {n: (tmp_path / "res" / n).read_bytes() for n in before}
    assert after == before
    json.loads(after["results.json"])
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [
        "NTIRE2024-EfficientSR.log",
        "results.json",
        "results.txt",
    ]
