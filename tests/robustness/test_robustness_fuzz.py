"""Property-based fuzzing of image decoding (hypothesis, bounded: derandomized, ~60 examples a property).

Every reader either returns a well-formed ``(H, W, 3)`` array of its documented dtype and range, or
raises :class:`ImageReadError` naming the file -- never another exception type, never a crash:
``read_image`` / ``read_image_uint8`` (evaluation), ``decode_image`` (training datasets, BGR),
``read_image_size`` (the training pre-flight check), and ``PairedValidationDataset`` end to end.
Inputs: valid PNG/JPEG images of every mode (L, LA, P, RGB, RGBA, 16-bit gray, 16-bit RGB) and sizes
down to 1x1; the same files truncated, bit-flipped or with a byte overwritten; random bytes.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from ehat.data.image_io import ImageReadError, decode_image, read_image, read_image_size, read_image_uint8

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODES_8BIT = ("L", "LA", "P", "RGB", "RGBA")
MODES = (*MODES_8BIT, "I;16", "RGB16")


def encode(mode: str, h: int, w: int, seed: int, fmt: str) -> bytes:
    """A random ``h`` x ``w`` image of ``mode`` encoded as ``fmt`` (PNG or JPEG); RGB16 = 16-bit colour PNG."""
    rng = np.random.default_rng(seed)
    if mode == "RGB16":
        ok, buf = cv2.imencode(".png", rng.integers(0, 65536, (h, w, 3), dtype=np.uint16))
        assert ok
        return buf.tobytes()
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        channels = {"L": 1, "LA": 2, "P": 3, "RGB": 3, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        if mode == "LA":
            img = Image.fromarray(pixels[..., 0]).convert("LA")
            img.putalpha(Image.fromarray(pixels[..., 1]))
        elif mode == "P":
            img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@st.composite
def valid_images(draw: st.DrawFn) -> tuple[str, bytes, str, int, int]:
    """(mode, encoded bytes, format, h, w): PNG in every mode, JPEG for L and RGB."""
    fmt = draw(st.sampled_from(("PNG", "PNG", "JPEG")))
    mode = draw(st.sampled_from(("L", "RGB") if fmt == "JPEG" else MODES))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    return mode, encode(mode, h, w, draw(st.integers(0, 2**16)), fmt), fmt, h, w


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """A valid file truncated, bit-flipped or with one byte overwritten, or random bytes."""
    kind = draw(st.sampled_from(("truncate", "flip", "overwrite", "random", "signature+random")))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=300))
    if kind == "signature+random":
        signature = draw(st.sampled_from((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"RIFF")))
        return signature + draw(st.binary(max_size=300))
    _, data, _, _, _ = draw(valid_images())
    pos = draw(st.integers(0, len(data) - 1))
    if kind == "truncate":
        return data[:pos]
    buf = bytearray(data)
    if kind == "flip":
        buf[pos] ^= 1 << draw(st.integers(0, 7))
    else:
        buf[pos] = draw(st.integers(0, 255))
    return bytes(buf)


def expected_rgb(data: bytes) -> np.ndarray:
    """Pillow's RGB rendering of an 8-bit PNG: the independent reference for our decoder."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def check_float(img: np.ndarray) -> None:
    assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 1
    assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0


def check_uint8(img: np.ndarray) -> None:
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 1


def read_all(path: Path) -> None:
    """Every reader on ``path``: a well-formed result, or ImageReadError naming the file."""
    readers = [
        (read_image, check_float),
        (read_image_uint8, check_uint8),
        (lambda p: decode_image(p.read_bytes(), str(p), bgr=True), lambda a: check_uint8(a.astype(np.uint8))),
        (read_image_size, lambda hw: None),
    ]
    for reader, check in readers:
        try:
            out = reader(path)
        except ImageReadError as e:
            assert str(path) in str(e), (reader, str(e))
            continue
        if reader is read_image_size:
            assert len(out) == 2 and min(out) >= 1
        elif reader is not read_image_size:
            check(out)


@FUZZ
@given(valid_images())
def test_every_valid_image_decodes_to_rgb_of_its_size(case):
    mode, data, fmt, h, w = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("img.png" if fmt == "PNG" else "img.jpg")
        path.write_bytes(data)
        f, u = read_image(path), read_image_uint8(path)
        check_float(f)
        check_uint8(u)
        assert f.shape == u.shape == (h, w, 3) and read_image_size(path) == (h, w)
        if fmt == "PNG" and mode in MODES_8BIT:
            np.testing.assert_array_equal(u, expected_rgb(data))
            np.testing.assert_allclose(f, expected_rgb(data) / 255.0, atol=1e-6)
        if mode == "I;16":
            gray = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64)  # PIL reads 16-bit gray as I
            np.testing.assert_allclose(f[..., 1], gray / 65535.0, atol=1e-6)
            np.testing.assert_array_equal(u[..., 0], np.round(gray / 257.0).astype(np.uint8))


# Found by this fuzzer: a PNG whose IHDR length field says 12 made Pillow raise a bare ValueError.
SHORT_IHDR = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0cIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc\x88\x07\x00\x00a\x00`\x15\xc1X\x0e\x00\x00\x00\x00IEND\xaeB`\x82"
)


@FUZZ
@given(damaged_files())
@example(SHORT_IHDR)
def test_damaged_or_random_bytes_decode_or_raise_image_read_error_naming_the_file(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "0001x4.png"
        path.write_bytes(data)
        read_all(path)


@settings(FUZZ, max_examples=30)
@given(damaged_files())
def test_validation_dataset_survives_damaged_lr_files(data):
    from ehat.data import PairedValidationDataset
    from ehat.data.pairing import DatasetError

    with tempfile.TemporaryDirectory() as d:
        hr_dir, lr_dir = Path(d) / "HR", Path(d) / "LR"
        hr_dir.mkdir()
        lr_dir.mkdir()
        (hr_dir / "0001.png").write_bytes(encode("RGB", 32, 32, 0, "PNG"))
        (lr_dir / "0001x4.png").write_bytes(data)
        ds = PairedValidationDataset({"dataroot_gt": str(hr_dir), "dataroot_lq": str(lr_dir), "scale": 4})
        try:
            sample = ds[0]
        except (ImageReadError, DatasetError) as e:  # DatasetError: the LR decodes but is not HR/4
            assert str(lr_dir / "0001x4.png") in str(e)
            return
        assert sample["lq"].shape == (3, 8, 8) and sample["gt"].shape == (3, 32, 32)
        assert 0.0 <= float(sample["lq"].min()) and float(sample["lq"].max()) <= 1.0


@pytest.mark.parametrize("name", ["empty.png", "folder.png"])
def test_degenerate_paths_raise_image_read_error(tmp_path, name):
    path = tmp_path / name
    if name == "empty.png":
        path.write_bytes(b"")
    else:
        path.mkdir()
    for reader in (read_image, read_image_uint8, read_image_size):
        with pytest.raises(ImageReadError, match="empty|folder|cannot read"):
            reader(path)
