#!/usr/bin/env python
"""Make bicubic x4 LR images from HR images with MATLAB-compatible imresize (basicsr's).

Each HR is modcropped to a multiple of --scale first; the LR is named with --name-template
(default '{}x4', DIV2K's naming: 0001.png -> 0001x4.png); sub-folders are mirrored. With --hr-mod-out the
modcropped HR is written too. A rerun skips images whose outputs exist.

Example:
  python scripts/generate_lr.py --hr datasets/LSDIR/HR --lr-out datasets/LSDIR/X4
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ehat.data.pairing import DatasetError, list_images  # noqa: E402
from ehat.data.prepare import Guarded, Summary, add_workers_arg, generate_lr_job, run_jobs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hr", required=True, help="HR folder")
    p.add_argument("--lr-out", required=True, help="output folder for the LR images")
    p.add_argument("--hr-mod-out", help="also write the modcropped HR images here")
    p.add_argument("--scale", type=int, default=4, help="downscaling factor (default 4)")
    p.add_argument("--name-template", default=None, help="LR file stem template (default '{}x<scale>')")
    add_workers_arg(p)
    a = p.parse_args(argv)
    tmpl = a.name_template or ("{}x" + str(a.scale))
    try:
        names = list_images(a.hr)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tasks = []
    for n in names:
        head, stem = os.path.split(os.path.splitext(n)[0])
        lr_out = os.path.join(a.lr_out, head, tmpl.format(stem) + ".png")
        mod_out = None if a.hr_mod_out is None else os.path.join(a.hr_mod_out, head, stem + ".png")
        tasks.append((n, os.path.join(a.hr, n), lr_out, mod_out, a.scale))
    summary = Summary()
    for r in run_jobs(Guarded(generate_lr_job), tasks, a.workers, "bicubic LR"):
        summary.add(r)
    summary.report(f"generate_lr: {len(tasks)} HR images from {a.hr} -> {a.lr_out}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
