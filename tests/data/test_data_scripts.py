"""scripts/*.py (data preparation) end to end on a tiny tree, in-process, against independent references."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize

from ehat.data.image_io import read_image_uint8, write_image
from ehat.data.lmdb_backend import LmdbReader, read_lmdb_keys
from ehat.data.prepare import crop_starts
from tests.helpers import REPO_ROOT

SCRIPTS = ["extract_subimages", "generate_lr", "make_meta_info", "make_lmdb", "verify_dataset", "bench_data"]


def _script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture()
def hr_tree(tmp_path, photo):
    hr = tmp_path / "HR"
    write_image(hr / "0001.png", np.ascontiguousarray(photo[:131, :170]))  # not a multiple of 4
    write_image(hr / "sub" / "0002.png", np.ascontiguousarray(photo[200:300, 100:196]))
    return hr


def _bicubic_reference(img_uint8):
    h, w = img_uint8.shape[0] // 4 * 4, img_uint8.shape[1] // 4 * 4
    out = imresize(img_uint8[:h, :w].astype(np.float32) / 255, 0.25)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        _script(name)(["--help"])
    assert info.value.code == 0 and "usage" in capsys.readouterr().out


def test_generate_lr_is_matlab_bicubic_of_modcropped_hr_and_resumes(tmp_path, hr_tree, photo, capsys):
    main = _script("generate_lr")
    assert (
        main(
            [
                "--hr",
                str(hr_tree),
                "--lr-out",
                str(tmp_path / "LR"),
                "--hr-mod-out",
                str(tmp_path / "HRm"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    lr = read_image_uint8(tmp_path / "LR" / "0001x4.png")
    np.testing.assert_array_equal(lr, _bicubic_reference(photo[:131, :170]))
    assert read_image_uint8(tmp_path / "HRm" / "0001.png").shape == (128, 168, 3)
    assert (tmp_path / "LR" / "sub" / "0002x4.png").is_file()
    assert "2 done" in capsys.readouterr().out
    assert main(["--hr", str(hr_tree), "--lr-out", str(tmp_path / "LR"), "--workers", "0"]) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out


def test_extract_subimages_aligned_pairs_basicsr_grid_and_resume(tmp_path, hr_tree, photo, capsys):
    _script("generate_lr")(["--hr", str(hr_tree), "--lr-out", str(tmp_path / "LR"), "--workers", "0"])
    main = _script("extract_subimages")
    args = [
        "--hr",
        str(hr_tree),
        "--lr",
        str(tmp_path / "LR"),
        "--hr-out",
        str(tmp_path / "HRs"),
        "--lr-out",
        str(tmp_path / "LRs"),
        "--crop-size",
        "64",
        "--step",
        "32",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    # 0001: HR modcropped to 128x168 -> rows [0,32,64], cols [0,32,64,96,104] (BasicSR rule, thresh 0)
    assert crop_starts(128, 64, 32, 0) == [0, 32, 64] and crop_starts(168, 64, 32, 0) == [0, 32, 64, 96, 104]
    names = sorted(p.name for p in (tmp_path / "HRs").glob("0001_s*.png"))
    assert names == [f"0001_s{i:03d}.png" for i in range(1, 16)]
    assert sorted(p.name for p in (tmp_path / "LRs").glob("0001_s*.png")) == names
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "HRs" / "0001_s005.png"), photo[:64, 104:168])
    lr_full = _bicubic_reference(photo[:131, :170])
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "LRs" / "0001_s005.png"), lr_full[:16, 26:42])
    assert (tmp_path / "HRs" / "sub" / "0002_s001.png").is_file()
    capsys.readouterr()
    assert main(args) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out


def test_meta_info_lmdb_and_verify_on_a_prepared_tree(tmp_path, hr_tree, capsys):
    lr = tmp_path / "LR"
    _script("generate_lr")(["--hr", str(hr_tree), "--lr-out", str(lr), "--workers", "0"])
    meta = tmp_path / "meta.txt"
    assert (
        _script("make_meta_info")(
            ["--gt", str(hr_tree), "--lq", str(lr), "--out", str(meta), "--workers", "0"]
        )
        == 0
    )
    assert meta.read_text().splitlines() == ["0001.png (131,170,3)", "sub/0002.png (100,96,3)"]
    for src, dst in ((hr_tree, "HR.lmdb"), (lr, "LR.lmdb")):
        assert (
            _script("make_lmdb")(["--input", str(src), "--output", str(tmp_path / dst), "--workers", "0"])
            == 0
        )
    assert read_lmdb_keys(tmp_path / "LR.lmdb") == ["0001", "sub/0002"]
    reader = LmdbReader(tmp_path / "LR.lmdb")
    assert reader.get("sub/0002") is not None
    verify = _script("verify_dataset")
    assert verify(["--hr", str(hr_tree), "--lr", str(lr), "--workers", "0"]) == 0
    assert (
        verify(["--hr", str(tmp_path / "HR.lmdb"), "--lr", str(tmp_path / "LR.lmdb"), "--workers", "0"]) == 0
    )
    assert "OK: no problems found" in capsys.readouterr().out


def test_verify_reports_every_problem_not_just_the_first(tmp_path, hr_tree, photo, capsys):
    lr = tmp_path / "LR"
    _script("generate_lr")(["--hr", str(hr_tree), "--lr-out", str(lr), "--workers", "0"])
    write_image(hr_tree / "0003.png", np.ascontiguousarray(photo[:40, :40]))  # no LR
    write_image(lr / "0003x2.png", np.ascontiguousarray(photo[:10, :10]))  # no HR
    (lr / "0001x4.png").write_bytes(b"")  # zero bytes
    write_image(lr / "sub" / "0002x4.png", np.ascontiguousarray(photo[:20, :20]))  # wrong size
    assert _script("verify_dataset")(["--hr", str(hr_tree), "--lr", str(lr), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert f"HR {hr_tree / '0003.png'} has no LR" in out
    assert f"LR {lr / '0003x2.png'} has no HR" in out
    assert f"{lr / '0001x4.png'}" in out and "zero bytes" in out
    assert "size mismatch" in out and str(lr / "sub" / "0002x4.png") in out
    assert "FAILED: 4 problem(s)" in out


def test_scripts_report_bad_images_and_missing_folders_without_tracebacks(tmp_path, hr_tree, capsys):
    (hr_tree / "0009.png").write_bytes(b"not a png")
    assert (
        _script("generate_lr")(["--hr", str(hr_tree), "--lr-out", str(tmp_path / "LR"), "--workers", "1"])
        == 1
    )
    out = capsys.readouterr().out
    assert "2 done" in out and "1 failed" in out and str(hr_tree / "0009.png") in out
    assert (
        _script("make_lmdb")(["--input", str(tmp_path / "nope"), "--output", str(tmp_path / "x.lmdb")]) == 2
    )
    assert f"does not exist: {tmp_path / 'nope'}" in capsys.readouterr().err


def test_bench_data_runs_on_a_tiny_set(tmp_path, hr_tree, capsys):
    lr = tmp_path / "LR"
    _script("generate_lr")(["--hr", str(hr_tree), "--lr-out", str(lr), "--workers", "0"])
    args = [
        "--gt",
        str(hr_tree),
        "--lq",
        str(lr),
        "--gt-size",
        "32",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--seconds",
        "0.2",
    ]
    assert _script("bench_data")(args) == 0
    assert "folder         0" in capsys.readouterr().out
