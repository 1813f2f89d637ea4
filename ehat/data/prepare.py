"""Shared code of the data-preparation scripts (``scripts/*.py``): parallel runs and per-image jobs.

Every job is a module-level function of one picklable task that returns a :class:`JobResult` instead of
raising, so one bad image never kills a worker pool: it is counted, named and listed in the summary.
Outputs are written atomically (temporary file + rename), so skipping what exists makes a rerun resume.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from multiprocessing import Pool
from typing import Callable, Iterator, Literal, Optional, Sequence

import numpy as np

from ehat.data.image_io import (
    ImageReadError,
    decode_image,
    encode_image,
    read_bytes,
    read_image_native,
    read_image_size,
    to_uint8,
    write_image,
)
from ehat.data.lmdb_backend import LmdbReader, read_lmdb_keys
from ehat.data.pairing import DatasetError, list_images
from ehat.data.transforms import PairSizeError, bicubic_downsample, match_gt_to_lq, modcrop

Status = Literal["done", "skipped", "failed"]


@dataclass
class JobResult:
    """Outcome of one job: ``status``, the item it concerned, and problems found (messages naming files)."""

    status: Status
    item: str
    problems: list[str] = field(default_factory=list)
    payload: object = None


@dataclass
class Summary:
    """Counts of done / skipped / failed jobs and every problem message."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, result: JobResult) -> None:
        """Count one result and keep its problems."""
        setattr(self, result.status, getattr(self, result.status) + 1)
        self.problems.extend(result.problems)

    def report(self, title: str, file: object = None) -> None:
        """Print the summary and every problem."""
        out = file or sys.stdout
        print(
            f"\n{title}: {self.done} done, {self.skipped} skipped (already there), {self.failed} failed",
            file=out,
        )
        if self.problems:
            print(f"{len(self.problems)} problem(s):", file=out)
            for p in self.problems:
                print(f"  - {p}", file=out)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_jobs(
    fn: Callable[[tuple], JobResult], tasks: Sequence[tuple], workers: int, desc: str
) -> Iterator[JobResult]:
    """Run ``fn`` over ``tasks`` in ``workers`` processes (0: in this process) with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="img", dynamic_ncols=True)
    try:
        if workers <= 0:
            for t in tasks:
                yield fn(t)
                bar.update()
            return
        with Pool(workers, initializer=_init_worker) as pool:
            for r in pool.imap(fn, tasks, chunksize=max(1, min(16, len(tasks) // (8 * workers) or 1))):
                yield r
                bar.update()
    finally:
        bar.close()


class Guarded:
    """Picklable wrapper turning the expected data errors of a job into a ``failed`` result naming the item."""

    def __init__(self, fn: Callable[[tuple], JobResult]) -> None:
        self.fn = fn

    def __call__(self, task: tuple) -> JobResult:
        try:
            return self.fn(task)
        except (ImageReadError, DatasetError, OSError) as e:
            return JobResult("failed", str(task[0]), [str(e)])


def add_workers_arg(parser: argparse.ArgumentParser) -> None:
    """``--workers`` (default: the CPU count)."""
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (0 = run in this process)"
    )


# ----------------------------------------------------------------------------------------- sub-images
def crop_starts(length: int, crop: int, step: int, thresh: int) -> list[int]:
    """Start offsets of crops along one axis, BasicSR's rule: every ``step``, plus one flush with the end
    when more than ``thresh`` pixels would be left over. A side shorter than ``crop`` gives one crop at 0."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > thresh:
        starts.append(length - crop)
    return starts


def subimage_grid(h: int, w: int, crop: int, step: int, thresh: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, height, width)`` of every sub-image of an ``h`` x ``w`` image, row-major."""
    ch, cw = min(crop, h), min(crop, w)
    return [
        (y, x, ch, cw) for y in crop_starts(h, crop, step, thresh) for x in crop_starts(w, crop, step, thresh)
    ]


def subimage_name(name: str, index: int) -> str:
    """BasicSR's sub-image name: ``0001`` -> ``0001_s001`` (1-based)."""
    return f"{name}_s{index:03d}"


def extract_subimages_job(task: tuple) -> JobResult:
    """Task ``(name, hr_path, lr_path|None, hr_out, lr_out|None, crop, step, thresh, scale, compression)``.

    HR crops are taken on the HR modcropped to ``scale``; LR crops are the same regions divided by
    ``scale``, so sub-image pairs stay aligned. Skipped when the last sub-image(s) already exist.
    """
    name, hr_path, lr_path, hr_out, lr_out, crop, step, thresh, scale, compression = task
    h, w = read_image_size(hr_path)
    grid = subimage_grid(h - h % scale, w - w % scale, crop, step, thresh)
    last = subimage_name(name, len(grid)) + ".png"
    if os.path.exists(os.path.join(hr_out, last)) and (
        lr_out is None or os.path.exists(os.path.join(lr_out, last))
    ):
        return JobResult("skipped", name)
    hr = modcrop(read_image_native(hr_path), scale)
    lr = None
    if lr_path is not None:
        lr = read_image_native(lr_path)
        hr = match_gt_to_lq(hr, lr, scale, hr_path, lr_path)
    hr, lr = to_uint8(hr), None if lr is None else to_uint8(lr)
    for i, (y, x, ch, cw) in enumerate(grid, start=1):
        out = subimage_name(name, i) + ".png"
        if lr is not None:  # LR first, so an existing last HR means the pair is complete
            ys, xs = y // scale, x // scale
            patch = lr[ys : ys + ch // scale, xs : xs + cw // scale]
            write_image(os.path.join(lr_out, out), np.ascontiguousarray(patch), compression)
        write_image(os.path.join(hr_out, out), np.ascontiguousarray(hr[y : y + ch, x : x + cw]), compression)
    return JobResult("done", name)


# ----------------------------------------------------------------------------------------- bicubic LR
def generate_lr_job(task: tuple) -> JobResult:
    """Task ``(name, hr_path, lr_out_path, hr_mod_out_path|None, scale)``: MATLAB bicubic LR of the
    modcropped HR; optionally also writes the modcropped HR. Skipped when the outputs exist."""
    name, hr_path, lr_out, hr_mod_out, scale = task
    if os.path.exists(lr_out) and (hr_mod_out is None or os.path.exists(hr_mod_out)):
        return JobResult("skipped", name)
    hr = modcrop(read_image_native(hr_path), scale)
    if hr.shape[0] < scale or hr.shape[1] < scale:
        return JobResult("failed", name, [f"image {hr_path} is smaller than {scale}x{scale} pixels"])
    if hr_mod_out is not None:
        write_image(hr_mod_out, np.ascontiguousarray(to_uint8(hr)))
    write_image(lr_out, to_uint8(bicubic_downsample(hr, scale)))
    return JobResult("done", name)


# ----------------------------------------------------------------------------------------- meta info / LMDB
def image_shape_job(task: tuple) -> JobResult:
    """Task ``(name, path)``: the image's ``(H, W, 3)`` from its header (payload)."""
    name, path = task
    h, w = read_image_size(path)
    return JobResult("done", name, payload=(h, w, 3))


def make_lmdb(input_dir: str, output: str, workers: int, scale: int = 4, compress_level: int = 1) -> Summary:
    """Pack ``input_dir`` into the LMDB ``output`` (keys: pairing names, see ``scripts/make_lmdb.py``),
    adding only keys not there yet. Returns the summary; raises :class:`DatasetError` for a bad folder."""
    from ehat.data.lmdb_backend import LmdbWriter
    from ehat.data.pairing import find_pairs

    items = find_pairs(None, input_dir, scale)
    summary = Summary()
    with LmdbWriter(output) as writer:
        todo = [(q.name, q.lr_path, compress_level) for q in items if q.name not in writer.done]
        summary.skipped = len(items) - len(todo)
        for r in run_jobs(Guarded(encode_for_lmdb_job), todo, workers, "lmdb"):
            summary.add(r)
            if r.status == "done":
                data, shape = r.payload
                writer.put(r.item, data, shape, compress_level)
    return summary


def encode_for_lmdb_job(task: tuple) -> JobResult:
    """Task ``(key, path, compress_level)``: decode (validates it), re-encode as PNG; payload ``(bytes, shape)``."""
    key, path, level = task
    img = to_uint8(read_image_native(path))
    return JobResult("done", key, payload=(encode_image(img, ".png", level), img.shape))


# ----------------------------------------------------------------------------------------- verification
def is_lmdb(root: str) -> bool:
    """Whether a dataset root is an LMDB folder (by BasicSR's ``.lmdb`` suffix)."""
    return root.rstrip("/").endswith(".lmdb")


def root_names(root: str) -> list[str]:
    """File names (relative paths) of a folder, or keys of an ``.lmdb``."""
    return read_lmdb_keys(root) if is_lmdb(root) else list_images(root)


def read_from_root(root: str, name: str) -> np.ndarray:
    """Decode one image (file name or LMDB key) of a root."""
    if is_lmdb(root):
        return decode_image(LmdbReader(root).get(name), f"{root}:{name}")
    path = os.path.join(root, name)
    return decode_image(read_bytes(path), path)


def verify_job(task: tuple) -> JobResult:
    """Task ``(name, hr_root|None, hr_name|None, lr_root|None, lr_name|None, scale)``: decode both images
    and check ``floor(HR / scale) == LR``; every problem is returned, none raised."""
    name, hr_root, hr_name, lr_root, lr_name, scale = task
    problems: list[str] = []
    imgs: list[Optional[np.ndarray]] = []
    for root, n in ((hr_root, hr_name), (lr_root, lr_name)):
        if root is None or n is None:
            imgs.append(None)
            continue
        try:
            imgs.append(read_from_root(root, n))
        except (ImageReadError, DatasetError, OSError) as e:
            problems.append(str(e))
            imgs.append(None)
    hr, lr = imgs
    if hr is not None and lr is not None:
        try:
            match_gt_to_lq(hr, lr, scale, os.path.join(hr_root, hr_name), os.path.join(lr_root, lr_name))
        except PairSizeError as e:
            problems.append(str(e))
    return JobResult("failed" if problems else "done", name, problems)
