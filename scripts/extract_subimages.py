#!/usr/bin/env python
"""Crop HR (and optionally LR) images into overlapping sub-images, BasicSR's convention.

HR crops of 480x480 every 240 pixels, plus one crop flush with the right/bottom edge when more than
--thresh-size pixels would be left over; the LR crops (with --lr) are the same regions divided by --scale
(120 every 60), taken on the HR modcropped to --scale, so the pairs stay aligned. Names follow BasicSR:
0001.png / 0001x4.png -> 0001_s001.png ... in both outputs; sub-folders (LSDIR) are mirrored.
A rerun skips images whose sub-images already exist.

Examples:
  python scripts/extract_subimages.py --hr datasets/DIV2K/DIV2K_train_HR --hr-out datasets/DIV2K/DIV2K_train_HR_sub \\
      --lr datasets/DIV2K/DIV2K_train_LR_bicubic/X4 --lr-out datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub
  python scripts/extract_subimages.py --hr any/folder --hr-out any/folder_sub      # one folder only
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ehat.data.pairing import DatasetError, find_pairs, list_images  # noqa: E402
from ehat.data.prepare import Guarded, Summary, add_workers_arg, extract_subimages_job, run_jobs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hr", required=True, help="HR folder (or any folder of images)")
    p.add_argument("--hr-out", required=True, help="output folder for HR sub-images")
    p.add_argument("--lr", help="LR folder paired with --hr (0001x4.png or 0001.png names)")
    p.add_argument("--lr-out", help="output folder for LR sub-images (required with --lr)")
    p.add_argument("--scale", type=int, default=4, help="HR/LR factor (default 4)")
    p.add_argument("--crop-size", type=int, default=480, help="HR sub-image size (default 480)")
    p.add_argument("--step", type=int, default=240, help="HR stride (default 240)")
    p.add_argument(
        "--thresh-size", type=int, default=0, help="leftover pixels that justify an extra edge crop"
    )
    p.add_argument("--compression", type=int, default=3, help="PNG compression level 0-9 (default 3)")
    p.add_argument(
        "--skip-unpaired", action="store_true", help="warn about unpaired images instead of stopping"
    )
    add_workers_arg(p)
    a = p.parse_args(argv)
    if (a.lr is None) != (a.lr_out is None):
        p.error("--lr and --lr-out go together")
    if a.lr is not None and (a.crop_size % a.scale or a.step % a.scale):
        p.error(f"--crop-size and --step must be multiples of --scale ({a.scale}) when extracting LR too")
    try:
        if a.lr is None:
            items = [(os.path.splitext(n)[0], os.path.join(a.hr, n), None) for n in list_images(a.hr)]
        else:
            missing = "warn" if a.skip_unpaired else "error"
            items = [(q.name, q.hr_path, q.lr_path) for q in find_pairs(a.hr, a.lr, a.scale, missing=missing)]
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tasks = [
        (name, hr, lr, a.hr_out, a.lr_out, a.crop_size, a.step, a.thresh_size, a.scale, a.compression)
        for name, hr, lr in items
    ]
    summary = Summary()
    for r in run_jobs(Guarded(extract_subimages_job), tasks, a.workers, "extract"):
        summary.add(r)
    summary.report(f"extract_subimages: {len(tasks)} images from {a.hr}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
