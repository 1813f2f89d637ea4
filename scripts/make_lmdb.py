#!/usr/bin/env python
"""Pack a folder of images into an LMDB (BasicSR layout: data.mdb + meta_info.txt).

Keys are the pairing names: the relative path without extension, with a trailing 'x<scale>' removed
(0001x4.png -> 0001), so an HR LMDB and its LR LMDB share keys (BasicSR's PairedImageDataset reads them
too). Every image is decoded (so a bad file is reported, not stored) and re-encoded as 8-bit RGB PNG.
A rerun adds only the keys that are not in the LMDB yet.

Example:
  python scripts/make_lmdb.py --input datasets/DIV2K/DIV2K_train_HR_sub --output datasets/DIV2K/DIV2K_train_HR_sub.lmdb
  python scripts/make_lmdb.py --input datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub \\
      --output datasets/DIV2K/DIV2K_train_LR_bicubic_X4_sub.lmdb
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ehat.data.pairing import DatasetError  # noqa: E402
from ehat.data.prepare import add_workers_arg, make_lmdb  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="folder of images")
    p.add_argument("--output", required=True, help="LMDB folder to create or extend (must end with .lmdb)")
    p.add_argument("--scale", type=int, default=4, help="strip a trailing 'x<scale>' from names (default 4)")
    p.add_argument("--compress-level", type=int, default=1, help="PNG compression level 0-9 (default 1)")
    add_workers_arg(p)
    a = p.parse_args(argv)
    if not a.output.rstrip("/").endswith(".lmdb"):
        p.error("--output must end with .lmdb")
    try:
        summary = make_lmdb(a.input, a.output, a.workers, a.scale, a.compress_level)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary.report(f"make_lmdb: {a.input} -> {a.output}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
