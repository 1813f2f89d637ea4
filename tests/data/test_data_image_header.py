"""Header sizes and the decompression-bomb guard (ehat.data.image_header, via decode_image)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from ehat.data.image_header import header_size, max_pixels
from ehat.data.image_io import ImageReadError, decode_image


def encoded(ext: str, shape: tuple[int, ...], dtype=np.uint8, params=()) -> bytes:
    img = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    ("ext", "shape", "dtype", "params"),
    [
        (".png", (37, 45, 3), np.uint8, ()),
        (".png", (5, 3), np.uint8, ()),
        (".png", (19, 7, 4), np.uint8, ()),
        (".png", (33, 65, 3), np.uint16, ()),
        (".jpg", (37, 45, 3), np.uint8, ()),
        (".jpg", (64, 17, 3), np.uint8, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        (".jpg", (9, 300), np.uint8, ()),
    ],
)
def test_header_size_is_the_decoded_size(ext, shape, dtype, params):
    data = encoded(ext, shape, dtype, params)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert header_size(data) == decoded.shape[:2] == shape[:2]


def test_other_formats_and_garbage_have_no_header_size():
    assert header_size(encoded(".bmp", (8, 8, 3))) is None
    assert header_size(b"\xff\xd8\xff") is None
    assert header_size(b"not an image at all") is None


def png_claiming(width: int, height: int) -> bytes:
    """A real 4x4 PNG whose IHDR (with a valid CRC) is rewritten to claim width x height."""
    data = bytearray(encoded(".png", (4, 4, 3)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(encoded(".jpg", (4, 4, 3)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("bomb", [png_claiming, jpeg_claiming], ids=["png", "jpeg"])
def test_a_decompression_bomb_is_refused_before_decoding(bomb):
    data = bomb(60000, 50000)
    assert header_size(data) == (50000, 60000)
    with pytest.raises(
        ImageReadError, match=r"bomb\.png declares 60000x50000 = 3,000,000,000 pixels.*EHAT_MAX"
    ):
        decode_image(data, "bomb.png")


def test_the_limit_follows_the_environment(monkeypatch):
    data = encoded(".png", (4, 5, 3))
    assert decode_image(data, "x.png").shape == (4, 5, 3)
    monkeypatch.setenv("EHAT_MAX_IMAGE_PIXELS", "19")
    with pytest.raises(ImageReadError, match=r"5x4 = 20 pixels, more than the limit of 19"):
        decode_image(data, "x.png")
    monkeypatch.setenv("EHAT_MAX_IMAGE_PIXELS", "20")
    assert decode_image(data, "x.png").shape == (4, 5, 3)
    monkeypatch.setenv("EHAT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="EHAT_MAX_IMAGE_PIXELS='lots'"):
        max_pixels()
    monkeypatch.delenv("EHAT_MAX_IMAGE_PIXELS")
    assert max_pixels() == 2**28


def test_header_reads_in_training_preflight_apply_the_same_limit(tmp_path, monkeypatch):
    """read_image_size (the training data check) refuses the bomb with our message, and follows a
    raised limit past Pillow's own (179 M pixels) for PNG and JPEG."""
    from ehat.data.image_io import read_image_size

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 10000))  # 200 M pixels: under our default, over Pillow's
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_claiming(60000, 50000))
    with pytest.raises(ImageReadError, match=r"big\.jpg declares 60000x50000"):
        read_image_size(big)
    assert read_image_size(bomb) == (10000, 20000)
    monkeypatch.setenv("EHAT_MAX_IMAGE_PIXELS", str(10**8))
    with pytest.raises(ImageReadError, match=r"bomb\.png declares 20000x10000 = 200,000,000 pixels"):
        read_image_size(bomb)
