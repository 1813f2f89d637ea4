"""test_demo.py's command line as a challenge entrant meets it: counts checked by argparse, ground truth
required or explicitly waived, lossy inputs named, a failed rerun that keeps the good row, a folder
given as weights, and the --compile / --tf32 wiring (monkeypatched: no real compilation on CPU)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from PIL import Image

from ehat.data.image_io import write_image
from ehat.evaluation.ntire import build_parser, main
from tests.helpers import matlab_bicubic

MODEL = "00_RLFN_baseline"


def _make_set(root, photo, names, prefix="DIV2K_LSDIR_valid", lossy=(), sizes=None):
    """HR crops of ``photo`` (48x48 unless ``sizes[name]`` = (h, w)) and their MATLAB-bicubic x4 LR;
    names in ``lossy`` get a JPEG LR."""
    hr_dir, lr_dir = root / f"{prefix}_HR", root / f"{prefix}_LR"
    for i, name in enumerate(names):
        h, w = (sizes or {}).get(name, (48, 48))
        hr = np.ascontiguousarray(photo[40 * i : 40 * i + h, 30 * i : 30 * i + w])
        write_image(hr_dir / f"{name}.png", hr)
        lr = matlab_bicubic(hr, 1 / 4)
        if name in lossy:
            lr_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(lr).save(lr_dir / f"{name}x4.jpg", quality=75)
        else:
            write_image(lr_dir / f"{name}x4.png", lr)
    return hr_dir, lr_dir


def _run(tmp_path, rlfn_weights, *extra):
    return main(["--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "out"), "--results_dir",
                 str(tmp_path / "res"), "--model_id", "0", "--model_path", str(rlfn_weights), "--device", "cpu",
                 "--skip_complexity", *extra])  # fmt: skip


def _log(tmp_path):
    return (tmp_path / "res" / "NTIRE2024-EfficientSR.log").read_text()


def _results(tmp_path):
    return json.loads((tmp_path / "res" / "results.json").read_text())


# ------------------------------------------------------------------------------------------ argparse
@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [("--repeat", "0", "must be >= 1"), ("--repeat", "-3", "must be >= 1"), ("--warmup", "-1", "must be >= 0"),
     ("--tile_overlap", "-2", "must be >= 0"), ("--repeat", "two", "whole number"),
     ("--data_range", "0", "must be a number > 0")],
)  # fmt: skip
def test_counts_out_of_range_stop_argparse_with_status_2(flag, value, words, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and words in err


def test_zero_warmup_and_zero_overlap_are_valid():
    args = build_parser().parse_args(["--warmup", "0", "--tile_overlap", "0", "--repeat", "1"])
    assert (args.warmup, args.tile_overlap, args.repeat) == (0, 0, 1)


def test_lr_only_with_hr_dir_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--lr_dir", "x", "--hr_dir", "y", "--lr_only"])
    assert info.value.code == 2 and "--lr_only" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ ground truth
def test_misnamed_hr_folder_is_an_error_naming_the_folder_looked_for(tmp_path, photo, rlfn_weights):
    hr_dir, _ = _make_set(tmp_path / "data", photo, ["0801"])
    hr_dir.rename(hr_dir.parent / "DIV2K_LSDIR_valid_hr_x4")
    assert _run(tmp_path, rlfn_weights) == 2
    log = _log(tmp_path)
    assert f"looked for {hr_dir}" in log and "did you mean 'DIV2K_LSDIR_valid_hr_x4'" in log
    assert "--lr_only" in log and not (tmp_path / "res" / "results.json").exists()


def test_lr_only_evaluates_without_ground_truth(tmp_path, photo, rlfn_weights):
    hr_dir, _ = _make_set(tmp_path / "data", photo, ["0801"])
    hr_dir.rename(hr_dir.parent / "elsewhere")
    assert _run(tmp_path, rlfn_weights, "--lr_only") == 0
    r = _results(tmp_path)[MODEL]
    assert r["valid_images"] == ["0801"] and r["valid_ave_psnr"] is None


def test_hr_folder_matching_no_lr_image_is_an_error(tmp_path, photo, rlfn_weights):
    hr_dir, _ = _make_set(tmp_path / "data", photo, ["0801"])
    (hr_dir / "0801.png").rename(hr_dir / "img_0801.png")
    assert _run(tmp_path, rlfn_weights) == 2
    assert f"has its HR in {hr_dir}" in _log(tmp_path) and "HR image named 0801" in _log(tmp_path)


def test_missing_hr_dir_is_an_error_naming_it(tmp_path, photo, rlfn_weights):
    _, lr_dir = _make_set(tmp_path / "data", photo, ["0801"])
    assert (
        _run(tmp_path, rlfn_weights, "--lr_dir", str(lr_dir), "--hr_dir", str(tmp_path / "data" / "HR")) == 2
    )
    assert f"--hr_dir {tmp_path / 'data' / 'HR'} is not a folder" in _log(tmp_path)


def test_withheld_test_hr_is_a_warning_naming_the_folder(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["0801"])
    test_hr, _ = _make_set(tmp_path / "data", photo, ["0901"], prefix="DIV2K_LSDIR_test")
    for f in test_hr.iterdir():
        f.unlink()
    test_hr.rmdir()
    assert _run(tmp_path, rlfn_weights, "--include_test") == 0
    assert f"looked for {test_hr}" in _log(tmp_path)
    r = _results(tmp_path)[MODEL]
    assert len(r["valid_psnr"]) == 1 and r["test_images"] == ["0901"] and r["test_psnr"] == []


# ------------------------------------------------------------------------------------------ lossy inputs
def test_lossy_inputs_are_named_once_per_set(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["0801", "0802", "0803"], lossy=("0801", "0803"))
    assert _run(tmp_path, rlfn_weights) == 0
    log = _log(tmp_path)
    assert log.count("are lossy") == 1
    assert "2 of 3 LR input(s) of the valid set are lossy" in log and "0801x4.jpg, 0803x4.jpg" in log


def test_lossless_inputs_get_no_lossy_warning(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["0801"])
    assert _run(tmp_path, rlfn_weights) == 0
    assert "are lossy" not in _log(tmp_path)


# ------------------------------------------------------------------------------------------ results files
def test_rerun_that_evaluates_nothing_keeps_the_good_row(tmp_path, photo, rlfn_weights):
    _, lr_dir = _make_set(tmp_path / "data", photo, ["0801"])
    assert _run(tmp_path, rlfn_weights) == 0
    before = {n: (tmp_path / "res" / n).read_bytes() for n in ("results.json", "results.txt")}
    assert _results(tmp_path)[MODEL]["valid_images"] == ["0801"]
    (lr_dir / "0801x4.png").write_bytes(b"")  # now nothing can be evaluated
    assert _run(tmp_path, rlfn_weights) == 1
    assert {n: (tmp_path / "res" / n).read_bytes() for n in before} == before
    assert "keep the previous row" in _log(tmp_path)


def test_first_run_that_evaluates_nothing_writes_no_row(tmp_path, photo, rlfn_weights):
    _, lr_dir = _make_set(tmp_path / "data", photo, ["0801"])
    (lr_dir / "0801x4.png").write_bytes(b"")
    assert _run(tmp_path, rlfn_weights) == 1
    assert not (tmp_path / "res" / "results.json").exists()


# ------------------------------------------------------------------------------------------ weights
def test_folder_given_as_model_path_says_it_is_a_folder(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["0801"])
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "net_g_latest.pth").write_bytes(rlfn_weights.read_bytes())
    assert _run(tmp_path, folder) == 2
    log = _log(tmp_path)
    assert f"--model_path {folder} is a folder" in log and "net_g_latest.pth" in log
    assert "does not exist" not in log


# ------------------------------------------------------------------------------------------ speed flags
def test_compile_runs_on_the_device_model_and_its_time_stays_out_of_the_runtimes(
    tmp_path, photo, rlfn_weights, monkeypatch
):
    import ehat.acceleration as acc

    delay = 1.0
    calls, compiled_sizes = [], []

    def fake_compile(model, mode, dynamic=None):  # "compiles" lazily: the first call per size is slow
        calls.append((mode, next(model.parameters()).device.type))
        seen, plain = set(), model.forward

        def forward(x):
            if tuple(x.shape) not in seen:
                seen.add(tuple(x.shape))
                compiled_sizes.append(tuple(x.shape[-2:]))
                time.sleep(delay)
            return plain(x)

        model.forward = forward
        return model

    monkeypatch.setattr(acc, "compile_model", fake_compile)
    _make_set(tmp_path / "data", photo, ["0801", "0802", "0803"], sizes={"0802": (64, 56)})
    assert _run(tmp_path, rlfn_weights, "--compile", "blocks") == 0
    assert calls == [("blocks", "cpu")]
    assert compiled_sizes == [(12, 12), (16, 14)]  # both LR sizes compiled during the warm-up
    r = _results(tmp_path)[MODEL]
    assert len(r["valid_runtime"]) == 3 and max(r["valid_runtime"]) < delay * 1000
    assert r["compile"] == "blocks" and r["compile_seconds"] >= 2 * delay
    assert "--compile blocks: warm-up with compilation took" in _log(tmp_path)


def test_compile_off_by_default_and_tf32_switch(tmp_path, photo, rlfn_weights, monkeypatch):
    import ehat.acceleration as acc

    compiled, tf32 = [], []
    monkeypatch.setattr(acc, "compile_model", lambda m, mode, dynamic=None: compiled.append(mode) or m)
    monkeypatch.setattr(acc, "enable_tf32", lambda on: tf32.append(on))
    _make_set(tmp_path / "data", photo, ["0801"])
    assert _run(tmp_path, rlfn_weights, "--tf32") == 0
    assert compiled == [] and tf32 == [True]
    r = _results(tmp_path)[MODEL]
    assert r["compile"] == "false" and r["compile_seconds"] is None and r["tf32"] is True


# ------------------------------------------------------------------------------------------ errors
def test_evaluation_errors_share_the_ehat_base():
    from ehat.errors import EhatError
    from ehat.evaluation.errors import EvalError
    from ehat.evaluation.memory import MemoryMeasureError
    from ehat.evaluation.memory_model import MemoryBudgetError

    for cls in (EvalError, MemoryMeasureError, MemoryBudgetError):
        assert issubclass(cls, EhatError), cls


# ------------------------------------------------------------------------------------------ the challenge's score
def _run_scored(tmp_path, rlfn_weights, *extra):
    return main(["--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "out"), "--results_dir",
                 str(tmp_path / "res"), "--model_id", "0", "--model_path", str(rlfn_weights), "--device", "cpu",
                 "--no_save", *extra])  # fmt: skip


def test_score_of_the_baseline_itself_is_the_readme_example(tmp_path, photo, rlfn_weights):
    """Default --score_year 2024 on the 2024 baseline: every term and Final are exp(2) = 7.3891."""
    _make_set(tmp_path / "data", photo, ["a", "b"])
    assert _run_scored(tmp_path, rlfn_weights) == 0
    s = _results(tmp_path)[MODEL]["score"]
    assert s["year"] == 2024 and s["baseline_how"] == "the model is the baseline"
    for key in ("score_runtime", "score_flops", "score_params", "score_final"):
        assert round(s[key], 4) == 7.3891, key
    log = _log(tmp_path)
    assert "PSNR threshold (2024) valid" in log and "Score_Final   = 0.7 * Runtime" in log
    assert "# NTIRE 2024 ESR score of 00_RLFN_baseline" in (tmp_path / "res" / "results.txt").read_text()


def test_score_year_2026_measures_the_span_baseline_in_the_same_run(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["a", "b"])
    assert _run_scored(tmp_path, rlfn_weights, "--score_year", "2026") == 0
    row = _results(tmp_path)[MODEL]
    s = row["score"]
    base = s["baseline_measured"]
    assert s["year"] == 2026 and s["baseline"] == "SPAN" and "measured in this run" in s["baseline_how"]
    assert (
        base["runtime_ms"] > 0 and round(base["flops_g"], 2) == 9.83 and round(base["params_m"], 3) == 0.151
    )
    assert s["baseline_published"] == {"runtime_ms": 7.74, "flops_g": 9.83, "params_m": 0.151}
    assert s["score_runtime"] == pytest.approx(math.exp(2 * row["valid_ave_runtime"] / base["runtime_ms"]))
    assert s["score_params"] == pytest.approx(math.exp(2 * row["num_parameters"] / base["params_m"]))
    expected = 0.8 * s["score_runtime"] + 0.1 * s["score_flops"] + 0.1 * s["score_params"]
    assert s["score_final"] == pytest.approx(expected)
    csv = tmp_path / "out" / "score_baseline_103_SPAN_baseline_2026" / "valid.csv"
    assert csv.is_file() and len(csv.read_text().splitlines()) == 3  # header + the same two images
    assert not list((tmp_path / "out").rglob("*.png"))  # --no_save; the baseline never saves images


def test_score_year_none_runs_no_baseline(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["a"])
    assert _run_scored(tmp_path, rlfn_weights, "--score_year", "none", "--skip_complexity") == 0
    assert "score" not in _results(tmp_path)[MODEL] and "Score_Final" not in _log(tmp_path)


def test_score_year_2025_measures_the_efdn_baseline(tmp_path, photo, rlfn_weights):
    _make_set(tmp_path / "data", photo, ["a"])
    assert _run_scored(tmp_path, rlfn_weights, "--score_year", "2025") == 0
    s = _results(tmp_path)[MODEL]["score"]
    base = s["baseline_measured"]
    assert (
        s["baseline"] == "EFDN" and round(base["flops_g"], 2) == 16.70 and round(base["params_m"], 3) == 0.276
    )
    assert s["score_final"] == pytest.approx(
        0.7 * s["score_runtime"] + 0.15 * (s["score_flops"] + s["score_params"])
    )
