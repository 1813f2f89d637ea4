"""Check every training image before the first step, so a bad file fails the run now, not days into it.

``datasets.train.check_images`` chooses how deep:

* ``header`` (default): open every file's header (fast: no pixel decoding) -- catches missing,
  zero-byte and non-image files, HR/LR size mismatches and images smaller than the patch;
* ``decode``: decode every file completely -- also catches truncated pixel data (slow on big sets);
* ``none``: no check; problems surface when an image is first read.

With ``bad_image: error`` (default) the problems are raised as one :class:`DatasetError` naming every
file; with ``bad_image: skip`` they are logged as a warning and the dataset skips those images when
it meets them. Folder (disk) datasets are checked: ehat's ``MultiRootPairedDataset`` and basicsr's
paired datasets; other datasets and LMDB roots are not (say so in the log).

:func:`check_amp` says, once, when ``train.amp`` would run emulated on the training device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from torch.utils.data import ConcatDataset, Dataset

from ehat.data.image_io import ImageReadError, decode_image, read_bytes, read_image_size
from ehat.data.paired_dataset import MultiRootPairedDataset
from ehat.data.pairing import DatasetError
from ehat.precision import warn_if_emulated

if TYPE_CHECKING:
    import torch

    from ehat.options.datasets import TrainDatasetOptions

CHECK_MODES = ("header", "decode", "none")
_LIST_LIMIT = 20


def _pairs(dataset: Dataset) -> Iterator[tuple[str, str | None]] | None:
    """(HR path, LR path or None) of every pair of a folder dataset; None when it cannot be listed."""
    if isinstance(dataset, MultiRootPairedDataset):
        if any(s.backend != "disk" for s in dataset.sources):
            return None
        return ((p.hr_path, None if s.lq_on_the_fly else p.lr_path) for s in dataset.sources for p in s.pairs)
    paths = getattr(dataset, "paths", None)
    if isinstance(paths, list) and paths and isinstance(paths[0], dict) and "gt_path" in paths[0]:
        if (getattr(dataset, "io_backend_opt", None) or {}).get("type", "disk") != "disk":
            return None
        return ((p["gt_path"], p.get("lq_path")) for p in paths)
    return None


def _size(path: str, mode: str) -> tuple[int, int]:
    if mode == "decode":
        return decode_image(read_bytes(path), path).shape[:2]
    return read_image_size(path)


def pair_problem(gt_path: str, lq_path: str | None, scale: int, gt_size: int, mode: str) -> str | None:
    """What is wrong with one HR/LR pair (the message names the files), or None."""
    try:
        h, w = _size(gt_path, mode)
        if lq_path is None:
            hl, wl = h // scale, w // scale
        else:
            hl, wl = _size(lq_path, mode)
    except ImageReadError as e:
        return str(e)
    if lq_path is not None and (h // scale, w // scale) != (hl, wl):
        return (
            f"HR/LR size mismatch: HR {gt_path} is {w}x{h} but LR {lq_path} is {wl}x{hl}; expected "
            f"{w // scale}x{h // scale} (HR / {scale})"
        )
    need = gt_size // scale
    if min(hl, wl) < need:
        return (
            f"image {lq_path or gt_path} is too small for gt_size {gt_size}: its LR is {wl}x{hl}, the LR "
            f"patch is {need}x{need}"
        )
    return None


def check_training_images(
    dataset: Dataset, opt: TrainDatasetOptions, scale: int, log: logging.Logger
) -> list[str]:
    """Check ``dataset``'s images per ``opt.check_images`` (``opt`` = ``datasets.train``).

    Returns the problems found (also logged). Raises :class:`DatasetError` naming every bad file
    when there is any and ``opt.bad_image`` is not ``'skip'``.
    """
    mode = opt.check_images
    if mode == "none":
        log.info("Training images not checked (datasets.train.check_images: none)")
        return []
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    listed = [_pairs(d) for d in parts]
    if any(p is None for p in listed):
        log.info("Training images not checked before the first step: only folder datasets can be listed")
        return []
    problems, count = [], 0
    for part, pairs in zip(parts, listed):
        gt_size = 0 if getattr(part, "enlarge_small", False) else opt.gt_size  # small HRs are enlarged
        for gt_path, lq_path in pairs:
            count += 1
            problem = pair_problem(gt_path, lq_path, scale, gt_size, mode)
            if problem is not None:
                problems.append(problem)
    if not problems:
        log.info(f"Checked the {mode}s of {count} training pair(s): all usable")
        return []
    shown = "\n  ".join(problems[:_LIST_LIMIT])
    more = f"\n  ... and {len(problems) - _LIST_LIMIT} more" if len(problems) > _LIST_LIMIT else ""
    summary = f"{len(problems)} of {count} training pair(s) are unusable ({mode} check):\n  {shown}{more}"
    if opt.bad_image == "skip":
        log.warning(f"{summary}\nbad_image: skip: these images will be skipped when drawn")
        return problems
    raise DatasetError(
        f"{summary}\nFix or remove these files (scripts/verify_dataset.py lists every problem), or set "
        "datasets.train.bad_image: skip (type MultiRootPairedDataset) to train without them"
    )


def check_amp(amp: str | None, device: torch.device, log: logging.Logger) -> str | None:
    """Say once, in one line, when ``train.amp`` (bf16/fp16) is emulated on ``device`` (a CPU without
    AVX512-BF16/AMX: tens of times slower than fp32; :mod:`ehat.precision`). Returns what was said."""
    return warn_if_emulated(amp or "fp32", device, "train.amp: null (fp32)", log.warning)
