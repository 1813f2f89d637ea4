"""Reading and writing images as RGB arrays, with errors that name the file.

Every image that enters EHAT goes through :func:`decode_image`: grayscale becomes 3 channels, RGBA and
gray+alpha drop their alpha, palette PNGs are expanded, 16-bit images keep their precision until they
are converted to float (``x / 65535``) or to uint8 (``round(x / 257)``). Anything that cannot be decoded
raises :class:`ImageReadError` whose message names the file and the problem, and so does a PNG or
JPEG whose header declares more pixels than ``EHAT_MAX_IMAGE_PIXELS`` (:mod:`ehat.data.image_header`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from ehat.atomic import atomic_write_bytes
from ehat.data.image_header import check_pixel_limit, header_size
from ehat.errors import EhatError

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(EhatError, ValueError):
    """An image could not be read or decoded; the message names the file and the problem.

    Constructible from the message alone, so PyTorch can re-raise it unchanged from a DataLoader worker.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def read_bytes(path: PathLike) -> bytes:
    """Return the raw bytes of an image file; raise :class:`ImageReadError` if missing or empty."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageReadError(f"image file does not exist: {p}", p) from None
    except IsADirectoryError:
        raise ImageReadError(f"expected an image file but found a folder: {p}", p) from None
    except OSError as e:
        raise ImageReadError(f"cannot read image file {p}: {e.strerror or e}", p) from None
    if not data:
        raise ImageReadError(f"image file is empty (zero bytes): {p}; re-download or delete it", p)
    return data


def decode_image(data: bytes, source: str, bgr: bool = False) -> np.ndarray:
    """Decode encoded image bytes to an RGB (or, with ``bgr=True``, BGR) array.

    Args:
        data: the encoded file content (PNG, JPEG, ...).
        source: the file path or LMDB key, used only in error messages.
        bgr: skip the whole-image BGR->RGB conversion (training crops first and converts the patch).

    Returns:
        ``(H, W, 3)`` array, ``uint8`` for 8-bit images and ``uint16`` for 16-bit ones.
    """
    if not data:
        raise ImageReadError(f"image is empty (zero bytes): {source}", source)
    too_big = check_pixel_limit(data, source)
    if too_big:
        raise ImageReadError(too_big, source)
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageReadError(
            f"cannot decode image {source}: not an image, or the file is truncated/corrupt "
            f"({len(data)} bytes); re-download or delete it",
            source,
        )
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            f"unsupported pixel type {img.dtype} in {source}: only 8-bit and 16-bit images are supported",
            source,
        )
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        return np.repeat(img, 3, axis=2)
    if channels == 2:  # gray + alpha
        return np.repeat(img[:, :, :1], 3, axis=2)
    if channels == 3:
        return img if bgr else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR if bgr else cv2.COLOR_BGRA2RGB)
    raise ImageReadError(f"unsupported channel count {channels} in {source}", source)


def to_float32(img: np.ndarray) -> np.ndarray:
    """uint8 or uint16 array -> float32 in [0, 1] (``x/255`` or ``x/65535``)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1.0 / 255.0)
    if img.dtype == np.uint16:
        return img.astype(np.float32) * np.float32(1.0 / 65535.0)
    raise TypeError(f"expected a uint8 or uint16 image, got {img.dtype}")


def to_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 (unchanged), uint16 (``round(x/257)``) or float in [0, 1] (``round(x*255)``) -> uint8."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise TypeError(f"cannot convert a {img.dtype} image to uint8")


def read_image_native(path: PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` RGB, uint8 or uint16 as stored."""
    return decode_image(read_bytes(path), os.fspath(path))


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as float32 ``(H, W, 3)`` RGB in [0, 1]."""
    return to_float32(read_image_native(path))


def read_image_uint8(path: PathLike) -> np.ndarray:
    """Read an image file as uint8 ``(H, W, 3)`` RGB (16-bit images are scaled down)."""
    return to_uint8(read_image_native(path))


def read_image_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image from its header only (fast; does not check the pixel data)."""
    from PIL import Image, UnidentifiedImageError

    p = os.fspath(path)
    if os.path.isfile(p) and os.path.getsize(p) == 0:
        raise ImageReadError(f"image file is empty (zero bytes): {p}; re-download or delete it", p)
    head = b""
    if os.path.isfile(p):
        with open(p, "rb") as f:
            head = f.read(1 << 16)
    too_big = check_pixel_limit(head, p)
    if too_big:
        raise ImageReadError(too_big, p)
    try:
        with warnings.catch_warnings():
            # Our limit (EHAT_MAX_IMAGE_PIXELS, checked above for PNG/JPEG) replaces Pillow's.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:
        size = header_size(head)
        if size is None:  # another format: Pillow's own limit is the only one we have
            raise ImageReadError(f"cannot read the image header of {p}: {e}", p) from None
        return size
    except FileNotFoundError:
        raise ImageReadError(f"image file does not exist: {p}", p) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageReadError(f"cannot read the image header of {p}: {e}", p) from None
    except Exception as e:  # noqa: BLE001  (Pillow's parsers raise ValueError, SyntaxError, struct.error...)
        raise ImageReadError(f"cannot read the image header of {p}: corrupt file ({e})", p) from None
    return h, w


def encode_image(img_uint8_rgb: np.ndarray, ext: str = ".png", png_compression: int = 3) -> bytes:
    """Encode a uint8 ``(H, W, 3)`` RGB (or ``(H, W)`` gray) array to ``ext`` format bytes."""
    if img_uint8_rgb.dtype != np.uint8:
        raise TypeError(f"encode_image expects uint8 pixels, got {img_uint8_rgb.dtype}")
    if img_uint8_rgb.ndim == 3 and img_uint8_rgb.shape[2] == 3:
        bgr = cv2.cvtColor(np.ascontiguousarray(img_uint8_rgb), cv2.COLOR_RGB2BGR)
    elif img_uint8_rgb.ndim == 2:
        bgr = img_uint8_rgb
    else:
        raise ValueError(
            f"encode_image expects (H, W, 3) RGB or (H, W) gray, got shape {img_uint8_rgb.shape}"
        )
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if ext.lower() == ".png" else []
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as {ext}")
    return buf.tobytes()


def write_image(path: PathLike, img_uint8_rgb: np.ndarray, png_compression: int = 3) -> None:
    """Write a uint8 ``(H, W, 3)`` RGB array; the format follows the extension. Atomic, creates parents."""
    ext = Path(path).suffix or ".png"
    atomic_write_bytes(path, encode_image(img_uint8_rgb, ext, png_compression))
