#!/usr/bin/env python
"""Write a BasicSR meta-info file: one line per HR image, 'name.png (H,W,3)', sizes read from headers.

With --lq only the HR images that have an LR are listed (pairing as in training). The names are relative to
the HR folder, so the file is used with `meta_info_file:` next to the same `dataroot_gt`. An existing
output is kept unless --overwrite.

Example:
  python scripts/make_meta_info.py --gt datasets/DIV2K/DIV2K_train_HR_sub \\
      --lq datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub --out datasets/meta_info/DIV2K_sub.txt
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ehat.atomic import atomic_write_bytes  # noqa: E402
from ehat.data.pairing import DatasetError, find_pairs, list_images  # noqa: E402
from ehat.data.prepare import Guarded, Summary, add_workers_arg, image_shape_job, run_jobs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", required=True, help="HR folder")
    p.add_argument("--lq", help="LR folder: list only HR images that have an LR")
    p.add_argument("--out", required=True, help="meta-info file to write")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_workers_arg(p)
    a = p.parse_args(argv)
    if os.path.exists(a.out) and not a.overwrite:
        print(f"{a.out} exists; nothing to do (use --overwrite to rebuild it)")
        return 0
    try:
        if a.lq:
            names = [
                os.path.relpath(q.hr_path, a.gt).replace(os.sep, "/") for q in find_pairs(a.gt, a.lq, a.scale)
            ]
        else:
            names = list_images(a.gt)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tasks = [(n, os.path.join(a.gt, n)) for n in names]
    summary, lines = Summary(), []
    for r in run_jobs(Guarded(image_shape_job), tasks, a.workers, "meta info"):
        summary.add(r)
        if r.status == "done":
            h, w, c = r.payload
            lines.append(f"{r.item} ({h},{w},{c})\n")
    if summary.failed:
        summary.report(f"make_meta_info: {a.out} NOT written")
        return 1
    atomic_write_bytes(a.out, "".join(lines).encode("utf-8"))
    summary.report(f"make_meta_info: {len(lines)} images -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
