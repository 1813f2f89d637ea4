"""Evaluating one set: the options of an evaluation and the per-image loop.

:func:`evaluate_set` runs a model over one set of LR images (with HR when present): timed inference
(:mod:`ehat.evaluation.inference`: tiles, self-ensemble, autocast, out-of-memory retry), the
challenge's PSNR plus PSNR-Y / SSIM-Y (:mod:`ehat.imaging.metrics`), SR PNGs, side-by-side
crops (:mod:`ehat.imaging.visualize`) and a per-image CSV (:mod:`ehat.evaluation.reporting`).
A bad image is logged and skipped; the rest is still evaluated.

Where the other steps live: finding sets in :mod:`ehat.evaluation.sets`, results files and the
logger in :mod:`ehat.evaluation.reporting`, the ``test_demo.py`` command in :mod:`ehat.evaluation.ntire`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ehat.evaluation.errors import EvalError
from ehat.evaluation.inference import PRECISIONS, infer
from ehat.evaluation.memory import PeakMemory
from ehat.evaluation.reporting import ImageResult, SetResult, file_logger, image_line, set_summary, write_csv
from ehat.evaluation.runtime import describe_mode
from ehat.evaluation.sets import ImageItem, list_set
from ehat.imaging.convert import to_tensor, to_uint8
from ehat.imaging.metrics import image_metrics
from ehat.imaging.tiling import TilePolicy

__all__ = [
    "EvalError",
    "EvalOptions",
    "ImageItem",
    "ImageResult",
    "SetResult",
    "evaluate_set",
    "metrics_size_problem",
    # re-exported from their homes for ehat.evaluation.benchmark (test.py)
    "file_logger",
    "list_set",
    "set_summary",
]


@dataclass
class EvalOptions:
    """How to run and measure one evaluation; the one object that holds these settings.

    ``data_range``: the model's input/output range (1 or 255). ``tiles``: the tile policy (whole
    images, fixed N or auto). ``precision``: fp32, bf16 or fp16 (autocast). ``warmup`` untimed and
    ``repeat`` timed runs per image (median reported).

    ``tile`` / ``tile_overlap`` are construction shorthands (a test options file's ``tile.tile_size``
    / ``tile.tile_pad``) for ``tiles=TilePolicy.from_setting(tile, tile_overlap)``; they are not
    kept: read ``tiles``.
    """

    device: torch.device
    data_range: float
    scale: int = 4
    tiles: TilePolicy = field(default_factory=TilePolicy)
    self_ensemble: bool = False
    precision: str = "fp32"
    warmup: int = 0
    repeat: int = 1
    save_images: bool = True
    save_crops: bool = False
    ssim: bool = False
    tile: InitVar[int | str | None] = None
    tile_overlap: InitVar[int | None] = None

    def __post_init__(self, tile: int | str | None, tile_overlap: int | None) -> None:
        if tile is not None or tile_overlap is not None:
            overlap = self.tiles.overlap if tile_overlap is None else int(tile_overlap)
            self.tiles = TilePolicy.from_setting(tile, overlap)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.repeat < 1 or self.warmup < 0:
            raise ValueError(
                f"need repeat >= 1 and warmup >= 0, got repeat={self.repeat}, warmup={self.warmup}"
            )
        if not self.data_range > 0:
            raise ValueError(f"data_range must be > 0 (1 or 255), got {self.data_range}")


def metrics_size_problem(hr_shape: Sequence[int], scale: int) -> str | None:
    """Why an HR of ``hr_shape`` (H, W, ...) is too small to score (the border crop plus SSIM's 11x11
    window need ``2*scale + 11`` pixels a side after modcrop), or None."""
    need = 2 * scale + 11
    h, w = (hr_shape[0] // scale) * scale, (hr_shape[1] // scale) * scale
    if min(h, w) < need:
        return (
            f"the HR ({hr_shape[1]}x{hr_shape[0]}) is too small to score: PSNR/SSIM crop {scale} pixels a side "
            f"and SSIM needs an 11x11 window, so at least {need}x{need} pixels (LR {-(-need // scale)} a side)"
        )
    return None


def _score(
    row: ImageResult, item: ImageItem, sr: np.ndarray, opts: EvalOptions, log: logging.Logger
) -> np.ndarray | None:
    """Fill ``row``'s metrics from the HR of ``item``; return the HR (uint8) or None when not scored."""
    from ehat.data.image_io import ImageReadError, read_image_uint8

    if item.hr_path is None:
        row.note = "no HR: metrics skipped"
        return None
    try:
        hr = read_image_uint8(item.hr_path)
        too_small = metrics_size_problem(hr.shape, opts.scale)
        if too_small:
            raise ValueError(f"{item.hr_path}: {too_small}")
        m = image_metrics(sr, hr, opts.scale, ssim=opts.ssim)
    except (ImageReadError, ValueError) as e:
        msg = str(e) if item.hr_path in str(e) else f"{e} (HR {item.hr_path}, LR {item.lr_path})"
        row.note = f"metrics skipped: {msg}"
        log.error("%s: metrics skipped, %s", item.name, msg)
        return None
    row.psnr, row.psnr_y, row.ssim_y, row.ssim = m["psnr"], m["psnr_y"], m["ssim_y"], m.get("ssim")
    return hr


def evaluate_set(
    model: nn.Module,
    items: Sequence[ImageItem],
    opts: EvalOptions,
    save_dir: str | os.PathLike,
    mode: str,
    log: logging.Logger,
) -> SetResult:
    """Evaluate ``model`` on ``items``; write SR PNGs under ``save_dir``, crops under
    ``save_dir/../{mode}_crops`` and ``{mode}.csv`` beside ``save_dir``.

    Images that cannot be read or whose sizes do not match are logged, recorded with a note and
    left out of the averages; the others are still evaluated.
    """
    from ehat.data.image_io import ImageReadError, read_image_uint8, write_image
    from ehat.imaging.visualize import save_side_by_side

    save_dir = Path(save_dir)
    result = SetResult(mode, runtime_mode=describe_mode(opts.warmup, opts.repeat))
    memory = PeakMemory(opts.device)
    memory.reset()
    for i, item in enumerate(items):
        row = ImageResult(item.name)
        result.images.append(row)
        try:
            lr = read_image_uint8(item.lr_path)
        except ImageReadError as e:
            row.note = f"LR unreadable: {e}"
            log.error("%s: skipped, %s", item.name, e)
            continue
        row.lr_size = f"{lr.shape[1]}x{lr.shape[0]}"
        x = to_tensor(lr, opts.data_range, opts.device)
        try:
            (y, timing), row.tile = infer(model, x, opts, log, item.name)
        except Exception as e:  # noqa: BLE001  (one failing image must not stop the set)
            row.note = f"inference failed: {type(e).__name__}: {e}"
            log.error("%s: skipped, %s", item.name, row.note)
            continue
        result.runtime_clock = timing.clock
        row.runtime_ms = timing.ms
        sr = to_uint8(y, opts.data_range)
        del x, y
        hr = _score(row, item, sr, opts, log)
        if opts.save_images:
            write_image(save_dir / f"{item.name}.png", sr)
        if opts.save_crops:
            save_side_by_side(save_dir.parent / f"{mode}_crops" / f"{item.name}.png", lr, sr, hr, opts.scale)
        log.info("%s", image_line(i + 1, len(items), row))
    result.memory_mib = memory.peak_mib()
    result.memory_kind = memory.kind
    write_csv(save_dir.parent / f"{mode}.csv", result.images)
    return result
