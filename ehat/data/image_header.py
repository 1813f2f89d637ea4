"""Image size from the file header, before decoding (a guard against decompression bombs).

A few hundred bytes of PNG or JPEG can claim a 100000 x 100000 image that takes tens of GB to
decode. :func:`header_size` reads (height, width) from PNG's IHDR chunk or JPEG's SOF marker
without decoding; :func:`check_pixel_limit` refuses images above ``EHAT_MAX_IMAGE_PIXELS``
(default 2**28 = 268 M pixels, a 16384 x 16384 image). Other formats return None here and rely on
OpenCV's own limit (2**30 pixels).
"""

from __future__ import annotations

import os

DEFAULT_MAX_PIXELS = 2**28
MAX_PIXELS_ENV = "EHAT_MAX_IMAGE_PIXELS"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic...); C4, C8 and CC are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
        if marker == 0xDA or length < 2:  # start of scan before any frame header: give up
            return None
        i += 2 + length
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) that a PNG or JPEG header declares, or None (other format, no header)."""
    if data.startswith(_PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def max_pixels() -> int:
    """The pixel limit: ``EHAT_MAX_IMAGE_PIXELS`` if set (a positive integer), else 2**28."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    if value <= 0:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} must be positive")
    return value


def check_pixel_limit(data: bytes, source: str) -> str | None:
    """A message naming ``source`` if its header declares more pixels than :func:`max_pixels`, else None."""
    size = header_size(data)
    if size is None:
        return None
    h, w = size
    limit = max_pixels()
    if h * w > limit:
        return (
            f"image {source} declares {w}x{h} = {h * w:,} pixels, more than the limit of {limit:,} "
            f"(a corrupt file or a decompression bomb?); if it is real, raise {MAX_PIXELS_ENV}"
        )
    return None
