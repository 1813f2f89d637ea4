"""The offline quick start: demo data from scikit-image's bundled photos, the shipped demo model, the
README's first command end to end (data -> test_demo.py -> bicubic comparison -> picture)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from basicsr.metrics.psnr_ssim import calculate_psnr

from ehat.data.image_io import read_image_uint8
from ehat.demo import (
    DEMO_TRAIN_PHOTOS,
    DEMO_VALID_PHOTOS,
    TRAIN_HR_DIR,
    TRAIN_LR_DIR,
    VALID_HR_DIR,
    VALID_LR_DIR,
    build_train_set,
    build_valid_set,
    colour_variants,
    content_hash,
    detail_crop,
    load_photo,
    picture_size,
)
from ehat.zoo import ZOO, sha256_of
from tests.helpers import REPO_ROOT, matlab_bicubic

DEMO_MODEL_ID = 102


def _thumb(img: np.ndarray) -> np.ndarray:
    """A 16x16 grayscale thumbnail (block means), zero-mean and unit-norm, to spot the same scene."""
    g = img.astype(np.float64).mean(axis=2)
    h, w = g.shape[0] // 16 * 16, g.shape[1] // 16 * 16
    t = g[:h, :w].reshape(16, h // 16, 16, w // 16).mean(axis=(1, 3)).ravel()
    t -= t.mean()
    return t / (np.linalg.norm(t) + 1e-12)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {n: load_photo(n) for n in DEMO_VALID_PHOTOS + DEMO_TRAIN_PHOTOS}


def test_every_demo_photo_is_bundled_and_loads_as_rgb_uint8(photos):
    for name, img in photos.items():
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert min(img.shape[:2]) >= 128, name


def test_training_and_validation_photos_are_disjoint_by_name_and_content(photos):
    assert not set(DEMO_VALID_PHOTOS) & set(DEMO_TRAIN_PHOTOS)
    valid = {content_hash(photos[n]): n for n in DEMO_VALID_PHOTOS}
    for n in DEMO_TRAIN_PHOTOS:
        assert content_hash(photos[n]) not in valid, f"training photo {n} is a validation photo"
    # not even the same scene: whole-image thumbnails of the two sets are far from identical
    for t in DEMO_TRAIN_PHOTOS:
        for v in DEMO_VALID_PHOTOS:
            assert float(_thumb(photos[t]) @ _thumb(photos[v])) < 0.75, (t, v)


def test_aliases_of_validation_photos_would_be_caught_by_the_content_check():
    import skimage.data

    # skimage's cat() is chelsea() and the stereo pair's right view shows motorcycle_left's scene:
    # both are kept out of training; the checks above must be able to see them.
    assert content_hash(load_photo("chelsea")) == content_hash(np.asarray(skimage.data.cat()))
    right = load_photo("motorcycle_right")
    assert float(_thumb(right) @ _thumb(load_photo("motorcycle_left"))) >= 0.75
    assert "cat" not in DEMO_TRAIN_PHOTOS and "motorcycle_right" not in DEMO_TRAIN_PHOTOS


def test_valid_set_is_the_challenge_layout_with_matlab_bicubic_lr(tmp_path):
    written = build_valid_set(str(tmp_path), names=("chelsea", "coffee"))
    assert len(written) == 4
    for name in ("chelsea", "coffee"):
        hr = read_image_uint8(tmp_path / VALID_HR_DIR / f"{name}.png")
        lr = read_image_uint8(tmp_path / VALID_LR_DIR / f"{name}x4.png")
        src = load_photo(name)
        h, w = src.shape[0] // 4 * 4, src.shape[1] // 4 * 4
        np.testing.assert_array_equal(hr, src[:h, :w])
        np.testing.assert_array_equal(lr, matlab_bicubic(src[:h, :w], 0.25))


def test_building_the_data_twice_writes_nothing_the_second_time(tmp_path):
    assert build_valid_set(str(tmp_path), names=("rocket",))
    assert build_train_set(str(tmp_path), names=("coins",))
    files = sorted(p for p in tmp_path.rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in files]
    assert build_valid_set(str(tmp_path), names=("rocket",)) == []
    assert build_train_set(str(tmp_path), names=("coins",)) == []
    assert [p.stat().st_mtime_ns for p in files] == stamps
    for variant in ("coins", "coins_tint0", "coins_tint1"):
        assert (tmp_path / TRAIN_HR_DIR / f"{variant}.png").exists()
        assert (tmp_path / TRAIN_LR_DIR / f"{variant}x4.png").exists()


def test_colour_variants_keep_the_structure_and_change_only_the_colours():
    rgb = load_photo("immunohistochemistry")
    variants = colour_variants("ihc", rgb)
    assert len(variants) == 6 and variants["ihc"] is rgb
    np.testing.assert_array_equal(variants["ihc_bgr"], rgb[..., ::-1])
    gray = load_photo("coins")
    tinted = colour_variants("coins", gray)
    assert sorted(tinted) == ["coins", "coins_tint0", "coins_tint1"]
    t = tinted["coins_tint0"].astype(np.float64)
    assert np.ptp(t.mean(axis=(0, 1))) > 5  # really coloured
    for c in range(3):  # a smooth gain per channel: the tint follows the gray photo's edges
        assert np.corrcoef(t[..., c].ravel(), gray[..., 0].ravel())[0, 1] > 0.8
    np.testing.assert_array_equal(colour_variants("coins", gray)["coins_tint0"], tinted["coins_tint0"])


def test_detail_crop_finds_the_textured_window():
    img = np.zeros((64, 96, 3), np.uint8)
    img[32:48, 64:80] = (np.arange(16)[:, None] * 37 % 256).astype(np.uint8)[..., None]
    top, left = detail_crop(img, 16)
    assert (top, left) == (32, 64)


def test_shipped_demo_model_is_in_the_zoo_with_a_verified_small_file():
    spec = ZOO[DEMO_MODEL_ID]
    path = REPO_ROOT / spec.weights
    assert spec.url is None and path.is_file()
    assert path.stat().st_size < 5 * 2**20
    assert sha256_of(path) == spec.sha256


@pytest.mark.slow
def test_quickstart_end_to_end_beats_bicubic_on_every_demo_image(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "quickstart.sh"), "--no-setup", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "PSNR" in out and "bicubic" in out
    sr_dir = tmp_path / "results" / ZOO[DEMO_MODEL_ID].name / "valid"
    for name in DEMO_VALID_PHOTOS:  # metrics computed here, independently of our code
        hr = read_image_uint8(tmp_path / "data" / VALID_HR_DIR / f"{name}.png")
        lr = read_image_uint8(tmp_path / "data" / VALID_LR_DIR / f"{name}x4.png")
        sr = read_image_uint8(sr_dir / f"{name}.png")
        bicubic = matlab_bicubic(lr, 4)
        assert sr.shape == hr.shape == bicubic.shape
        psnr_sr = calculate_psnr(sr, hr, crop_border=4)
        psnr_bicubic = calculate_psnr(bicubic, hr, crop_border=4)
        assert psnr_sr > psnr_bicubic, f"{name}: EHAT {psnr_sr:.2f} dB <= bicubic {psnr_bicubic:.2f} dB"
    picture = read_image_uint8(tmp_path / "results" / "side_by_side.png")
    assert picture.shape[:2] == picture_size(len(DEMO_VALID_PHOTOS))
    assert (tmp_path / "results" / "results.txt").is_file()
