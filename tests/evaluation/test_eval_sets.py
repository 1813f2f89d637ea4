"""Finding sets: lossy inputs are recognised by their header (not their name), and folder hints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ehat.evaluation.errors import EvalError
from ehat.evaluation.sets import ImageItem, find_sets, lossy_inputs, lossy_warning


@pytest.fixture()
def images(tmp_path, photo):
    lr = np.ascontiguousarray(photo[:32, :40])
    paths = {
        "png": tmp_path / "a.png",
        "jpeg_named_png": tmp_path / "b.png",
        "jpg": tmp_path / "c.jpg",
        "webp_lossy": tmp_path / "d.webp",
        "webp_lossless": tmp_path / "e.webp",
    }
    Image.fromarray(lr).save(paths["png"])
    Image.fromarray(lr).save(paths["jpeg_named_png"], format="JPEG")
    Image.fromarray(lr).save(paths["jpg"])
    Image.fromarray(lr).save(paths["webp_lossy"], lossless=False)
    Image.fromarray(lr).save(paths["webp_lossless"], lossless=True)
    return {k: ImageItem(k, str(p), None) for k, p in paths.items()}


def test_lossy_inputs_are_found_from_the_file_header(images):
    assert {i.name for i in lossy_inputs(list(images.values()))} == {"jpeg_named_png", "jpg", "webp_lossy"}
    assert lossy_warning("valid", [images["png"], images["webp_lossless"]]) is None
    line = lossy_warning("test", list(images.values()))
    assert line is not None and line.startswith("3 of 5 LR input(s) of the test set are lossy")


def test_misnamed_lr_folder_suggests_the_close_name(tmp_path):
    (tmp_path / "DIV2K_LSDIR_valid_LR_x4").mkdir()
    (tmp_path / "DIV2K_LSDIR_valid_HR").mkdir()
    with pytest.raises(
        EvalError, match=r"looked for .*DIV2K_LSDIR_valid_LR .*did you mean 'DIV2K_LSDIR_valid_LR_x4'"
    ):
        find_sets(tmp_path)


def test_lr_only_ignores_the_hr_folder(tmp_path):
    (tmp_path / "DIV2K_LSDIR_valid_LR").mkdir()
    (tmp_path / "DIV2K_LSDIR_valid_HR").mkdir()
    (s,) = find_sets(tmp_path, lr_only=True)
    assert s.hr_dir is None and not s.hr_required
    (s,) = find_sets(tmp_path)
    assert s.hr_dir == tmp_path / "DIV2K_LSDIR_valid_HR" and s.hr_required
