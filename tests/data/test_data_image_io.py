"""ehat.data.image_io: every image kind decodes to RGB; every bad file raises ImageReadError naming it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from ehat.data.image_io import ImageReadError, read_image, read_image_uint8, write_image


@pytest.fixture()
def rgb(photo):
    return np.ascontiguousarray(photo[100:164, 150:230])


def test_rgb_png_round_trip_is_exact(tmp_path, rgb):
    write_image(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "a.png"), rgb)
    f = read_image(tmp_path / "a.png")
    assert f.dtype == np.float32 and f.shape == rgb.shape
    np.testing.assert_allclose(f, rgb / 255.0, atol=1e-7)


def test_rgb_channel_order_matches_pillow(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "p.png"), rgb)


def test_grayscale_becomes_three_equal_channels(tmp_path, rgb):
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image_uint8(tmp_path / "g.png")
    assert out.shape == (*gray.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped(tmp_path, rgb, mode):
    img = Image.fromarray(rgb).convert(mode)
    img.putalpha(Image.fromarray(np.full(rgb.shape[:2], 7, np.uint8)))
    img.save(tmp_path / "a.png")
    expected = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "a.png"), expected)


def test_palette_png_is_expanded_to_rgb(tmp_path, rgb):
    img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "p.png"), np.asarray(img.convert("RGB")))


def test_16bit_png_keeps_precision_in_float_and_scales_to_8bit(tmp_path, rgb):
    rng = np.random.default_rng(0)
    img16 = (rgb.astype(np.uint16) * 257 + rng.integers(0, 200, rgb.shape)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), img16[..., ::-1])  # OpenCV writes BGR
    np.testing.assert_allclose(read_image(tmp_path / "c16.png"), img16 / 65535.0, atol=1e-7)
    np.testing.assert_array_equal(
        read_image_uint8(tmp_path / "c16.png"), np.round(img16 / 257.0).astype(np.uint8)
    )
    cv2.imwrite(str(tmp_path / "g16.png"), img16[..., 0])
    np.testing.assert_allclose(read_image(tmp_path / "g16.png")[..., 2], img16[..., 0] / 65535.0, atol=1e-7)


def _write_bad(tmp_path, kind, rgb):
    path = tmp_path / f"bad_{kind}.png"
    if kind == "zero":
        path.write_bytes(b"")
    elif kind == "truncated":
        write_image(tmp_path / "ok.png", rgb)
        data = (tmp_path / "ok.png").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "not_an_image":
        path.write_text("this is not a PNG")
    return path


@pytest.mark.parametrize(
    "kind, words",
    [
        ("zero", "zero bytes"),
        ("truncated", "truncated"),
        ("not_an_image", "not an image"),
        ("missing", "does not exist"),
    ],
)
def test_bad_files_raise_image_read_error_naming_the_file(tmp_path, rgb, kind, words):
    path = _write_bad(tmp_path, kind, rgb)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value) and words in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.path == str(path)


def test_folder_instead_of_file_is_named(tmp_path):
    with pytest.raises(ImageReadError, match="folder"):
        read_image_uint8(tmp_path)


def test_write_image_creates_parents_and_leaves_no_temporary_file(tmp_path, rgb):
    write_image(tmp_path / "a" / "b" / "c.png", rgb)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.png"]


def test_write_image_rejects_float_input(tmp_path, rgb):
    with pytest.raises(TypeError):
        write_image(tmp_path / "f.png", rgb.astype(np.float32))
