#!/usr/bin/env python
"""Build the offline quick start's data from the real photos bundled with scikit-image (no download).

Writes, under --out (default demo/data):
  DIV2K_LSDIR_valid_HR/<name>.png      demo validation HR (astronaut, coffee, chelsea, rocket,
  DIV2K_LSDIR_valid_LR/<name>x4.png    motorcycle_left), modcropped, and its MATLAB-bicubic x4 LR
  train_HR/<name>.png, train_LR/<name>x4.png   the other bundled photos, their colour variants (channel
                                               orders, smooth tints of grayscale ones) and LR, for training

The two sets share no photo (by name and by pixel content). A rerun skips files that exist.

Example:
  python scripts/make_demo_data.py --out demo/data
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ehat  # noqa: E402, F401  (torchvision alias for basicsr)
from ehat.demo import DEMO_TRAIN_PHOTOS, DEMO_VALID_PHOTOS, build_train_set, build_valid_set  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo/data", help="output folder (default demo/data)")
    p.add_argument(
        "--sets",
        choices=("all", "valid", "train"),
        default="all",
        help="which set to build (default all)",
    )
    a = p.parse_args(argv)
    if a.sets in ("all", "valid"):
        n = len(build_valid_set(a.out)) // 2
        print(f"demo validation set: {len(DEMO_VALID_PHOTOS)} pairs in {a.out} ({n} new)")
    if a.sets in ("all", "train"):
        n = len(build_train_set(a.out)) // 2
        print(
            f"demo training set: {len(DEMO_TRAIN_PHOTOS)} photos and their colour variants in {a.out} ({n} new pairs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
