"""test_demo.py end to end: the challenge's files and keys, bad input, the RLFN paper numbers."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from ehat.archs.rlfn_arch import RLFN
from ehat.data.image_io import read_image_uint8, write_image
from ehat.evaluation.ntire import main
from tests.helpers import make_challenge_set

CHALLENGE_HEADER = (
    "Model               \tVal PSNR  \tVal Time [ms] \tParams [M]\tFLOPs [G] \tActs [M]\tMem [M] \tConv    "
)


def _run(tmp_path, data_dir, rlfn_weights, *extra, model_id=0):
    args = ["--data_dir", str(data_dir), "--save_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "res"),
            "--model_id", str(model_id), "--model_path", str(rlfn_weights), "--device", "cpu", *extra]  # fmt: skip
    return main(args)


def _log(tmp_path):
    return (tmp_path / "res" / "NTIRE2024-EfficientSR.log").read_text()


def test_writes_the_challenges_files_with_its_keys(tmp_path, photo, rlfn_weights):
    _, _ = make_challenge_set(tmp_path / "data", photo, [("0801", (64, 72)), ("0802", (70, 66))])
    assert _run(tmp_path, tmp_path / "data", rlfn_weights, "--ssim") == 0
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    r = results["00_RLFN_baseline"]
    for key in ("valid_psnr", "valid_ave_psnr", "valid_runtime", "valid_ave_runtime", "valid_memory",
                "num_parameters", "flops", "activations", "num_conv", "valid_psnr_y", "valid_ssim_y", "valid_ssim"):  # fmt: skip
        assert key in r, key
    assert len(r["valid_psnr"]) == 2 and r["valid_ave_psnr"] == pytest.approx(np.mean(r["valid_psnr"]))
    assert (round(r["flops"], 2), r["num_conv"]) == (19.67, 39)
    table = (tmp_path / "res" / "results.txt").read_text().splitlines()
    assert table[0] == CHALLENGE_HEADER and table[1].startswith("00_RLFN_baseline")
    assert "perf_counter" in _log(tmp_path) and "CPU peak RSS" in _log(tmp_path)
    # the reported PSNR is the challenge's formula on the saved SR image and the modcropped HR
    sr = read_image_uint8(tmp_path / "out" / "00_RLFN_baseline" / "valid" / "0802.png")
    hr = read_image_uint8(tmp_path / "data" / "DIV2K_LSDIR_valid_HR" / "0802.png")[:68, :64]
    assert sr.shape == hr.shape
    mse = np.mean((sr[4:-4, 4:-4].astype(np.float64) - hr[4:-4, 4:-4]) ** 2)
    assert r["valid_psnr"][1] == pytest.approx(20 * math.log10(255 / math.sqrt(mse)), abs=1e-9)
    rows = list(csv.DictReader(open(tmp_path / "out" / "00_RLFN_baseline" / "valid.csv")))
    assert [row["name"] for row in rows] == ["0801", "0802"]


def test_results_accumulate_per_model_and_include_test(tmp_path, photo, rlfn_weights):
    make_challenge_set(tmp_path / "data", photo, [("0801", (48, 48))])
    make_challenge_set(tmp_path / "data", photo, [("0901", (52, 48))], prefix="DIV2K_LSDIR_test")
    paper = tmp_path / "paper.pth"
    torch.save(RLFN(feature_channels=52, num_blocks=6).state_dict(), paper)
    assert _run(tmp_path, tmp_path / "data", rlfn_weights, "--include_test") == 0
    assert _run(tmp_path, tmp_path / "data", paper, "--include_test", "--skip_complexity", model_id=101) == 0
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert set(results) == {"00_RLFN_baseline", "101_RLFN_x4"}
    assert len(results["101_RLFN_x4"]["test_psnr"]) == 1 and results["101_RLFN_x4"]["flops"] is None
    table = (tmp_path / "res" / "results.txt").read_text().splitlines()
    assert table[0].split("\t")[2].strip() == "Test PSNR" and len([t for t in table if "_RLFN" in t]) >= 2


@pytest.mark.slow
def test_options_tiling_ensemble_repeat_and_no_save(tmp_path, photo, rlfn_weights):
    make_challenge_set(tmp_path / "data", photo, [("0801", (48, 48))])
    assert _run(tmp_path, tmp_path / "data", rlfn_weights, "--tile", "8", "--tile_overlap", "4", "--self_ensemble",
                "--warmup", "1", "--repeat", "3", "--no_save", "--save_crops", "--skip_complexity") == 0  # fmt: skip
    assert "median of 3 run(s) per image after 1 warm-up" in _log(tmp_path)
    r = json.loads((tmp_path / "res" / "results.json").read_text())["00_RLFN_baseline"]
    assert r["tile"] == 8 and r["self_ensemble"] is True
    assert not (tmp_path / "out" / "00_RLFN_baseline" / "valid").exists()
    assert (tmp_path / "out" / "00_RLFN_baseline" / "valid_crops" / "0801.png").is_file()


def test_bad_images_are_reported_and_the_others_evaluated(tmp_path, photo, rlfn_weights):
    hr_dir, lr_dir = make_challenge_set(
        tmp_path / "data", photo, [("0801", (64, 64)), ("0802", (21, 23)), ("0803", (48, 40))]
    )
    (lr_dir / "0803x4.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupt
    write_image(lr_dir / "0804x4.png", photo[:10, :10])  # LR without HR
    write_image(hr_dir / "0805.png", photo[:40, :40])  # HR without LR
    assert _run(tmp_path, tmp_path / "data", rlfn_weights, "--skip_complexity") == 0
    r = json.loads((tmp_path / "res" / "results.json").read_text())["00_RLFN_baseline"]
    assert r["valid_images"] == ["0801", "0802", "0804"] and r["valid_scored_images"] == ["0801", "0802"]
    assert set(r["valid_failed"]) == {"0803", "0804"}
    log = _log(tmp_path)
    assert "0803x4.png" in log and "no HR" in log and "0805" in log


def test_lr_only_set_is_evaluated_without_metrics(tmp_path, photo, rlfn_weights):
    write_image(tmp_path / "lr" / "a.png", photo[:20, :24])
    args = ["--lr_dir", str(tmp_path / "lr"), "--skip_complexity"]
    assert _run(tmp_path, tmp_path / "nowhere", rlfn_weights, *args) == 0
    r = json.loads((tmp_path / "res" / "results.json").read_text())["00_RLFN_baseline"]
    assert r["valid_ave_psnr"] is None and len(r["valid_runtime"]) == 1
    assert "metrics are skipped" in _log(tmp_path)
    assert "\t-         \t" in (tmp_path / "res" / "results.txt").read_text()


@pytest.mark.parametrize(
    ("layout", "message"),
    [("missing", "DIV2K_LSDIR_valid_LR"), ("empty", "no image")],
)
def test_missing_or_empty_set_is_a_clear_error(tmp_path, rlfn_weights, layout, message):
    if layout == "empty":
        (tmp_path / "data" / "DIV2K_LSDIR_valid_LR").mkdir(parents=True)
    assert _run(tmp_path, tmp_path / "data", rlfn_weights) == 2
    assert message in _log(tmp_path)


def test_checkpoint_not_matching_the_model_id_is_a_clear_error(tmp_path, photo):
    make_challenge_set(tmp_path / "data", photo, [("0801", (48, 48))])
    paper = tmp_path / "paper.pth"
    torch.save(RLFN(feature_channels=52, num_blocks=6).state_dict(), paper)
    assert _run(tmp_path, tmp_path / "data", paper) == 2
    assert "does not match --model_id 0" in _log(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_request_without_cuda_is_a_clear_error(tmp_path, photo, rlfn_weights):
    make_challenge_set(tmp_path / "data", photo, [("0801", (48, 48))])
    assert main(["--data_dir", str(tmp_path / "data"), "--results_dir", str(tmp_path / "res"),
                 "--model_id", "0", "--model_path", str(rlfn_weights), "--device", "cuda"]) == 2  # fmt: skip
    assert "CUDA is not available" in _log(tmp_path)


def test_cuda_out_of_memory_falls_back_to_tiles(caplog):
    import logging

    from ehat.evaluation.inference import infer
    from ehat.evaluation.protocol import EvalOptions

    def model(x):
        if x.shape[-1] > 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.nn.functional.interpolate(x, scale_factor=4)

    opts = EvalOptions(device=torch.device("cpu"), data_range=1.0)
    log = logging.getLogger("test-oom")
    with caplog.at_level(logging.WARNING, logger="test-oom"):
        (y, _), tile = infer(model, torch.rand(1, 3, 100, 100), opts, log, "big")
    assert tile == 64 and y.shape == (1, 3, 400, 400)
    assert "out of memory" in caplog.text and "tiles of 64" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("set_name", "psnr_y", "ssim_y"), [("Set5", 32.24, 0.8952), ("Set14", 28.62, 0.7813)]
)
def test_rlfn_reproduces_the_paper_through_test_demo(tmp_path, shared_dir, set_name, psnr_y, ssim_y):
    root = shared_dir / "data" / set_name
    args = ["--lr_dir", str(root / "LR_bicubic" / "X4"), "--hr_dir", str(root / "HR"), "--skip_complexity",
            "--no_save", "--model_id", "101", "--model_path", str(shared_dir / "weights" / "rlfn_x4.pth"),
            "--results_dir", str(tmp_path), "--save_dir", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    r = json.loads((tmp_path / "results.json").read_text())["101_RLFN_x4"]
    assert len(r["valid_psnr_y"]) == {"Set5": 5, "Set14": 14}[set_name]
    assert r["valid_ave_psnr_y"] == pytest.approx(psnr_y, abs=0.01)
    assert r["valid_ave_ssim_y"] == pytest.approx(ssim_y, abs=0.001)
