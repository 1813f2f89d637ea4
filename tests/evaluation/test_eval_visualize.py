"""The one side-by-side drawing: its bicubic panel is MATLAB bicubic at the given scale, labelled so,
and test_demo's crops and the demo's picture share it."""

from __future__ import annotations

import numpy as np
import pytest

from ehat.imaging.visualize import (
    GAP,
    LABEL_HEIGHT,
    bicubic_upscale,
    comparison_picture,
    picture_size,
    side_by_side,
)
from tests.helpers import matlab_bicubic


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_panel_is_matlab_bicubic_at_the_given_scale(photo, scale):
    lr = np.ascontiguousarray(photo[100:140, 200:236])
    ref = matlab_bicubic(lr, float(scale))
    up = bicubic_upscale(lr, scale)
    assert up.shape == ref.shape == (40 * scale, 36 * scale, 3)
    assert np.abs(up.astype(int) - ref).max() <= 1  # float32 vs float64 rounding
    sr = np.zeros_like(ref)
    hr = np.full_like(ref, 200)
    crop = 24
    strip = side_by_side(lr, sr, hr, scale, crop=crop)
    assert strip.shape == (LABEL_HEIGHT + crop, 3 * crop + 2 * GAP, 3)
    top, left = (ref.shape[0] - crop) // 2, (ref.shape[1] - crop) // 2
    panel = strip[LABEL_HEIGHT:, :crop]
    assert np.abs(panel.astype(int) - ref[top : top + crop, left : left + crop]).max() <= 1
    assert (strip[LABEL_HEIGHT:, crop + GAP : 2 * crop + GAP] == 0).all()  # SR panel
    assert (strip[LABEL_HEIGHT:, 2 * (crop + GAP) :] == 200).all()  # HR panel
    assert (strip[:LABEL_HEIGHT, :crop] < 128).any()  # a label is drawn above the bicubic panel


def test_rows_without_hr_have_two_panels_and_picture_size_agrees():
    img = np.full((32, 32, 3), 90, np.uint8)
    pic = comparison_picture([[(img, "a"), (img, "b")]], [(0, 0)], crop=16, zoom=2)
    assert pic.shape[:2] == picture_size(1, 16, 2, panels=2) == (LABEL_HEIGHT + 32, 2 * 32 + GAP)
    two_rows = comparison_picture([[(img, "a")] * 3] * 2, [(0, 0), (8, 8)], crop=16, zoom=1)
    assert two_rows.shape[:2] == picture_size(2, 16, 1)
