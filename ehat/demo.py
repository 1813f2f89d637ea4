"""The offline quick start's data: real photos that scikit-image ships, split into a demo validation set
and a disjoint training set, written in the NTIRE challenge's layout.

Nothing here downloads: only the photos bundled inside the scikit-image wheel are used (the ones
``skimage.data`` would fetch with pooch are left out). ``chelsea`` and ``cat`` are the same file, and
``stereo_motorcycle`` is a stereo pair of one scene, so ``cat`` and the right view are in neither set.

Layout written by :func:`build_valid_set` (``DIR``) and :func:`build_train_set`::

    DIR/DIV2K_LSDIR_valid_HR/<name>.png     HR, modcropped to the scale
    DIR/DIV2K_LSDIR_valid_LR/<name>x4.png   MATLAB-compatible bicubic LR of that HR
    DIR/train_HR/<variant>.png              training HR (photos + colour variants), modcropped
    DIR/train_LR/<variant>x4.png            its bicubic LR (the same as the dataset's on-the-fly LR)
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ehat.data.image_io import read_image_uint8, write_image
from ehat.data.transforms import bicubic_downsample, modcrop
from ehat.imaging.visualize import BICUBIC_LABEL, bicubic_upscale, detail_crop, picture_size
from ehat.imaging.visualize import comparison_picture as _draw

VALID_HR_DIR = "DIV2K_LSDIR_valid_HR"
VALID_LR_DIR = "DIV2K_LSDIR_valid_LR"
TRAIN_HR_DIR = "train_HR"
TRAIN_LR_DIR = "train_LR"

#: Demo validation photos (colour, real): never trained on.
DEMO_VALID_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")

#: Training photos: every other real photograph bundled with scikit-image (grayscale ones become RGB).
DEMO_TRAIN_PHOTOS: tuple[str, ...] = (
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
    "page",
    "text",
    "cell",
)


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        index = 0 if name == "motorcycle_left" else 1
        return lambda: skimage.data.stereo_motorcycle()[index]
    if not hasattr(skimage.data, name):
        raise KeyError(f"scikit-image has no bundled photo {name!r}")
    return getattr(skimage.data, name)


def load_photo(name: str) -> np.ndarray:
    """One bundled scikit-image photo as uint8 ``(H, W, 3)`` RGB (grayscale replicated, alpha dropped)."""
    img = np.asarray(_skimage_loader(name)())
    if img.dtype != np.uint8:
        raise ValueError(f"scikit-image photo {name!r} is {img.dtype}, expected uint8")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def content_hash(img: np.ndarray) -> str:
    """SHA-256 of an image's shape and pixels (uint8), to compare photos by content rather than name."""
    h = hashlib.sha256(str(img.shape).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


CHANNEL_ORDERS = ("rbg", "grb", "gbr", "brg", "bgr")
TINTS_PER_GRAY_PHOTO = 2


def colour_variants(name: str, img: np.ndarray) -> dict[str, np.ndarray]:
    """Colour augmentation of one training photo: ``{variant name: uint8 (H, W, 3) RGB}``, the photo included.

    Most bundled photos are grayscale, and a network trained on gray pixels learns to desaturate. A colour
    photo adds its 5 other channel orders (new hues, same structure); a grayscale one adds
    ``TINTS_PER_GRAY_PHOTO`` copies tinted by a smooth random colour field (per channel, a gain
    ``exp(N(0, 0.35))`` interpolated from a grid of 64-pixel cells; chroma varies slowly, as in real
    photos), seeded by the variant's name so every build is identical.
    """
    import cv2

    out = {name: img}
    if not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])):
        for order in CHANNEL_ORDERS:
            out[f"{name}_{order}"] = np.ascontiguousarray(img[..., ["rgb".index(c) for c in order]])
        return out
    h, w = img.shape[:2]
    for k in range(TINTS_PER_GRAY_PHOTO):
        variant = f"{name}_tint{k}"
        rng = np.random.default_rng(int(hashlib.sha256(variant.encode()).hexdigest()[:8], 16))
        grid = rng.normal(0.0, 0.35, (h // 64 + 2, w // 64 + 2, 3)).astype(np.float32)
        gain = np.exp(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC))
        out[variant] = np.round(np.clip(img.astype(np.float32) * gain, 0, 255)).astype(np.uint8)
    return out


def _write_pair(hr: np.ndarray, hr_path: str, lr_path: str, scale: int) -> list[str]:
    hr = modcrop(hr, scale)
    write_image(lr_path, np.ascontiguousarray(bicubic_downsample(hr, scale)))
    write_image(hr_path, np.ascontiguousarray(hr))  # HR last: an existing HR means a complete pair
    return [hr_path, lr_path]


def _pair_paths(out_dir: str, hr_sub: str, lr_sub: str, name: str, scale: int) -> tuple[str, str]:
    return os.path.join(out_dir, hr_sub, f"{name}.png"), os.path.join(out_dir, lr_sub, f"{name}x{scale}.png")


def build_valid_set(out_dir: str, scale: int = 4, names: tuple[str, ...] = DEMO_VALID_PHOTOS) -> list[str]:
    """Write the demo validation set in the challenge's layout under ``out_dir``; return the files written.

    HR is modcropped to ``scale``; LR is basicsr's MATLAB ``imresize`` by ``1/scale``. Pairs whose two
    files exist are skipped (writes are atomic, so an interrupted run resumes cleanly).
    """
    written = []
    for name in names:
        hr_path, lr_path = _pair_paths(out_dir, VALID_HR_DIR, VALID_LR_DIR, name, scale)
        if not (os.path.exists(hr_path) and os.path.exists(lr_path)):
            written += _write_pair(load_photo(name), hr_path, lr_path, scale)
    return written


def build_train_set(out_dir: str, scale: int = 4, names: tuple[str, ...] = DEMO_TRAIN_PHOTOS) -> list[str]:
    """Write the training pairs of ``names`` and their :func:`colour_variants` (``train_HR/<variant>.png``,
    ``train_LR/<variant>x4.png``, same rules as the validation set) under ``out_dir``; return the files
    written."""
    written = []
    for name in names:
        photo = load_photo(name)
        for variant, img in colour_variants(name, photo).items():
            hr_path, lr_path = _pair_paths(out_dir, TRAIN_HR_DIR, TRAIN_LR_DIR, variant, scale)
            if not (os.path.exists(hr_path) and os.path.exists(lr_path)):
                written += _write_pair(img, hr_path, lr_path, scale)
    return written


@dataclass
class DemoImage:
    """One demo image: uint8 RGB ``hr`` (modcropped), ``bicubic`` and ``sr`` (same size), their metrics."""

    name: str
    hr: np.ndarray
    bicubic: np.ndarray
    sr: np.ndarray
    bicubic_metrics: dict[str, float]
    sr_metrics: dict[str, float]

    @property
    def gain_db(self) -> float:
        """SR PSNR minus bicubic PSNR (RGB, the challenge's number), in dB."""
        return self.sr_metrics["psnr"] - self.bicubic_metrics["psnr"]


def load_demo_images(hr_dir: str, lr_dir: str, sr_dir: str, scale: int = 4) -> list[DemoImage]:
    """Pair HR/LR images (any layout :func:`ehat.data.find_pairs` accepts, e.g. the demo set's
    ``DIV2K_LSDIR_valid_HR/LR``) with the SR images in ``sr_dir`` (``<name>.png``, as test_demo.py
    writes them); bicubic upscaling and every metric are computed here."""
    from ehat.data.pairing import find_pairs
    from ehat.imaging.metrics import image_metrics

    out = []
    for pair in find_pairs(hr_dir, lr_dir, scale):
        sr_path = os.path.join(sr_dir, f"{pair.name}.png")
        if not os.path.exists(sr_path):
            raise FileNotFoundError(f"no SR image {sr_path} for {pair.hr_path}: run test_demo.py first")
        hr = modcrop(read_image_uint8(pair.hr_path), scale)
        bicubic = bicubic_upscale(read_image_uint8(pair.lr_path), scale)
        sr = read_image_uint8(sr_path)
        out.append(
            DemoImage(
                pair.name, hr, bicubic, sr, image_metrics(bicubic, hr, scale), image_metrics(sr, hr, scale)
            )
        )
    return out


def comparison_table(images: list[DemoImage]) -> str:
    """A plain-text table: per image, bicubic vs SR PSNR (RGB), PSNR-Y and SSIM-Y, and the gain."""
    head = f"{'image':<18}{'bicubic PSNR':>13}{'EHAT PSNR':>11}{'gain':>8}{'bicubic Y/SSIM':>22}{'EHAT Y/SSIM':>20}"
    lines = [head, "-" * len(head)]
    for im in images:
        b, s = im.bicubic_metrics, im.sr_metrics
        lines.append(
            f"{im.name:<18}{b['psnr']:>13.2f}{s['psnr']:>11.2f}{im.gain_db:>+8.2f}"
            f"{b['psnr_y']:>14.2f} / {b['ssim_y']:.4f}{s['psnr_y']:>12.2f} / {s['ssim_y']:.4f}"
        )
    if images:
        b, m = ({k: float(np.mean([getattr(im, attr)[k] for im in images])) for k in ("psnr", "psnr_y", "ssim_y")}
                for attr in ("bicubic_metrics", "sr_metrics"))  # fmt: skip
        lines.append("-" * len(head))
        lines.append(
            f"{'mean':<18}{b['psnr']:>13.2f}{m['psnr']:>11.2f}{m['psnr'] - b['psnr']:>+8.2f}"
            f"{b['psnr_y']:>14.2f} / {b['ssim_y']:.4f}{m['psnr_y']:>12.2f} / {m['ssim_y']:.4f}"
        )
    return "\n".join(lines)


def comparison_picture(images: list[DemoImage], crop: int = 128, zoom: int = 2) -> np.ndarray:
    """uint8 RGB picture, one row per image: MATLAB bicubic | EHAT | HR crops (``crop`` HR pixels at the
    most textured window, enlarged ``zoom`` x with nearest neighbour), each under a label with its PSNR;
    drawn by :func:`ehat.imaging.visualize.comparison_picture`."""
    rows = [
        [
            (im.bicubic, f"{BICUBIC_LABEL} {im.bicubic_metrics['psnr']:.2f} dB"),
            (im.sr, f"EHAT {im.sr_metrics['psnr']:.2f} dB ({im.gain_db:+.2f})"),
            (im.hr, f"HR: {im.name}"),
        ]
        for im in images
    ]
    return _draw(rows, [detail_crop(im.hr, crop) for im in images], crop, zoom)


def main(argv: list[str] | None = None) -> int:
    """``python -m ehat.demo``: compare test_demo.py's SR images with bicubic and draw the picture."""
    import argparse

    p = argparse.ArgumentParser(
        "python -m ehat.demo",
        description="Per-image PSNR of test_demo.py's SR images vs MATLAB bicubic, and a side-by-side picture.",
    )
    p.add_argument("--data_dir", default="demo/data", help="demo set (challenge layout)")
    p.add_argument("--hr_dir", default=None, help="HR folder (default: DATA_DIR/DIV2K_LSDIR_valid_HR)")
    p.add_argument("--lr_dir", default=None, help="LR folder (default: DATA_DIR/DIV2K_LSDIR_valid_LR)")
    p.add_argument("--sr_dir", required=True, help="SR images written by test_demo.py (<name>.png)")
    p.add_argument("--out", default="demo/results/side_by_side.png", help="the picture to write ('' = none)")
    a = p.parse_args(argv)
    hr_dir = a.hr_dir or os.path.join(a.data_dir, VALID_HR_DIR)
    lr_dir = a.lr_dir or os.path.join(a.data_dir, VALID_LR_DIR)
    images = load_demo_images(hr_dir, lr_dir, a.sr_dir)
    print(comparison_table(images))
    wins = sum(im.gain_db > 0 for im in images)
    print(f"\nEHAT beats bicubic on {wins}/{len(images)} images (RGB PSNR, border 4)")
    if a.out:
        write_image(a.out, comparison_picture(images))
        print(f"side-by-side picture (MATLAB bicubic | EHAT | HR crops): {a.out}")
    return 0


__all__ = [
    "DEMO_TRAIN_PHOTOS",
    "DEMO_VALID_PHOTOS",
    "TRAIN_HR_DIR",
    "TRAIN_LR_DIR",
    "VALID_HR_DIR",
    "VALID_LR_DIR",
    "DemoImage",
    "comparison_picture",
    "comparison_table",
    "detail_crop",
    "load_demo_images",
    "picture_size",
    "bicubic_upscale",
    "build_train_set",
    "build_valid_set",
    "colour_variants",
    "content_hash",
    "load_photo",
]


if __name__ == "__main__":
    sys.exit(main())
