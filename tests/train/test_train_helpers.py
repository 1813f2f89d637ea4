"""The shared training helpers (tests/helpers.py) build what they say: bicubic photo crops, dotted changes."""

from __future__ import annotations

import cv2
import numpy as np

from tests.helpers import bicubic_lr, make_data, named_photo, tiny_options


def test_tiny_data_is_bicubic_downscaled_photos(tmp_path):
    data = make_data(tmp_path)
    hr = cv2.imread(str(data["val"][0] / "0000.png"))[..., ::-1]
    lr = cv2.imread(str(data["val"][1] / "0000.png"))[..., ::-1]
    assert hr.shape == (48, 40, 3) and lr.shape == (12, 10, 3)
    np.testing.assert_array_equal(hr, named_photo("astronaut")[250:298, 250:290])
    np.testing.assert_array_equal(lr, bicubic_lr(hr))


def test_tiny_options_changes_apply_to_dotted_keys(tmp_path):
    opt = tiny_options(tmp_path, make_data(tmp_path), **{"train.total_iter": 9, "train.scheduler": None})
    assert opt["train"]["total_iter"] == 9 and "scheduler" not in opt["train"]
