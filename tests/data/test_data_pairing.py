"""ehat.data.pairing: HR/LR pairing for every naming scheme; folder problems name the folder/files."""

from __future__ import annotations

import pytest

from ehat.data.pairing import (
    DatasetError,
    find_pairs,
    find_pairs_from_meta_info,
    source_image_name,
    strip_scale_suffix,
)


def _touch(root, *names):
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")  # pairing looks at names only


def _as_tuples(pairs, hr, lr):
    return [
        (p.name, p.hr_path and str(p.hr_path).replace(str(hr), "HR"), p.lr_path.replace(str(lr), "LR"))
        for p in pairs
    ]


def test_div2k_names_pair_0001_with_0001x4(tmp_path):
    hr, lr = tmp_path / "DIV2K_train_HR", tmp_path / "X4"
    _touch(hr, "0001.png", "0002.png")
    _touch(lr, "0002x4.png", "0001x4.png")
    assert _as_tuples(find_pairs(hr, lr), hr, lr) == [
        ("0001", "HR/0001.png", "LR/0001x4.png"),
        ("0002", "HR/0002.png", "LR/0002x4.png"),
    ]


def test_lsdir_names_pair_inside_subfolders(tmp_path):
    hr, lr = tmp_path / "HR", tmp_path / "X4"
    _touch(hr, "0001000/0000001.png", "0002000/0001001.png")
    _touch(lr, "0001000/0000001x4.png", "0002000/0001001x4.png")
    assert _as_tuples(find_pairs(hr, lr), hr, lr) == [
        ("0001000/0000001", "HR/0001000/0000001.png", "LR/0001000/0000001x4.png"),
        ("0002000/0001001", "HR/0002000/0001001.png", "LR/0002000/0001001x4.png"),
    ]


def test_challenge_valid_names_pair(tmp_path):
    hr, lr = tmp_path / "DIV2K_LSDIR_valid_HR", tmp_path / "DIV2K_LSDIR_valid_LR"
    _touch(hr, "0801.png", "0000001.png")
    _touch(lr, "0801x4.png", "0000001x4.png")
    assert [p.name for p in find_pairs(hr, lr)] == ["0000001", "0801"]


def test_basicsr_sub_images_pair_by_identical_names(tmp_path):
    hr, lr = tmp_path / "HR_sub", tmp_path / "LR_sub"
    _touch(hr, "0001_s001.png", "0001_s002.png")
    _touch(lr, "0001_s001.png", "0001_s002.png")
    assert _as_tuples(find_pairs(hr, lr), hr, lr)[1] == ("0001_s002", "HR/0001_s002.png", "LR/0001_s002.png")


def test_basicsr_filename_tmpl_is_honoured(tmp_path):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    _touch(hr, "baby.png")
    _touch(lr, "baby_lr.png")
    assert find_pairs(hr, lr, filename_tmpl="{}_lr")[0].lr_path.endswith("baby_lr.png")


def test_lr_only_listing_strips_the_scale_suffix(tmp_path):
    lr = tmp_path / "test_LR"
    _touch(lr, "0901x4.png", "0902x4.png")
    pairs = find_pairs(None, lr)
    assert [(p.name, p.hr_path) for p in pairs] == [("0901", None), ("0902", None)]


def test_missing_pairs_name_every_unpaired_file(tmp_path):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    _touch(hr, "0001.png", "0002.png")
    _touch(lr, "0001x4.png", "0003x4.png")
    with pytest.raises(DatasetError) as info:
        find_pairs(hr, lr)
    msg = str(info.value)
    assert "0002.png" in msg and "0003x4.png" in msg and str(hr) in msg and str(lr) in msg


def test_missing_pairs_warn_and_skip_when_asked(tmp_path):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    _touch(hr, "0001.png", "0002.png")
    _touch(lr, "0001x4.png")
    with pytest.warns(UserWarning, match="0002.png"):
        pairs = find_pairs(hr, lr, missing="warn")
    assert [p.name for p in pairs] == ["0001"]


def test_empty_folder_is_named(tmp_path):
    (tmp_path / "HR").mkdir()
    _touch(tmp_path / "LR", "0001x4.png", "notes.txt")
    with pytest.raises(DatasetError, match="no images.*HR"):
        find_pairs(tmp_path / "HR", tmp_path / "LR")


def test_missing_folder_is_named(tmp_path):
    _touch(tmp_path / "LR", "0001x4.png")
    with pytest.raises(DatasetError, match=f"does not exist: {tmp_path / 'nope'}"):
        find_pairs(tmp_path / "nope", tmp_path / "LR")


def test_two_files_with_one_name_are_ambiguous(tmp_path):
    _touch(tmp_path / "HR", "0001.png")
    _touch(tmp_path / "LR", "0001.png", "0001x4.png")
    with pytest.raises(DatasetError, match="ambiguous.*0001.png / 0001x4.png"):
        find_pairs(tmp_path / "HR", tmp_path / "LR")


def test_hidden_temporary_files_are_ignored(tmp_path):
    _touch(tmp_path / "HR", "0001.png", ".0002.png.tmp123")
    _touch(tmp_path / "LR", "0001x4.png")
    assert len(find_pairs(tmp_path / "HR", tmp_path / "LR")) == 1


def test_meta_info_file_restricts_pairs_and_names_absent_entries(tmp_path):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    _touch(hr, "0001_s001.png", "0001_s002.png")
    _touch(lr, "0001_s001.png", "0001_s002.png")
    meta = tmp_path / "meta.txt"
    meta.write_text("0001_s002.png (480,480,3)\n")
    assert [p.name for p in find_pairs_from_meta_info(meta, hr, lr)] == ["0001_s002"]
    meta.write_text("0001_s002.png (480,480,3)\n0009_s001.png (480,480,3)\n")
    with pytest.raises(DatasetError, match="0009_s001.png"):
        find_pairs_from_meta_info(meta, hr, lr)


def test_name_helpers():
    assert strip_scale_suffix("0001x4", 4) == "0001"
    assert strip_scale_suffix("0001X4", 4) == "0001"
    assert strip_scale_suffix("0001x2", 4) == "0001x2"
    assert strip_scale_suffix("x4", 4) == "x4"
    assert source_image_name("0001_s012") == "0001"
    assert source_image_name("0001000/0000001_s003") == "0001000/0000001"
