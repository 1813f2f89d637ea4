#!/usr/bin/env python
"""Measure training-loader throughput (patches/s) for the folder and LMDB backends.

Builds MultiRootPairedDataset (GT patch --gt-size, flips/rot90) over the given data and pulls batches through
a torch DataLoader for each --workers value; the first batch (worker start-up) is not timed. Either point it
at prepared data (--gt/--lq folders and/or --gt-lmdb/--lq-lmdb), or let it make a synthetic set of 2K PNGs
(--synthetic N: upscaled scikit-image photos, 2040x1356, bicubic x4 LR, both LMDBs) in --workdir.

Example:
  python scripts/bench_data.py --synthetic 8 --workdir /tmp/ehat_bench --workers 0 1 2 --seconds 8
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_synthetic(workdir: str, n: int, workers: int) -> dict[str, str]:
    """Write n 2040x1356 HR PNGs, their bicubic x4 LR, and both LMDBs under workdir (reused if present)."""
    import cv2
    from skimage import data

    from ehat.data.image_io import write_image
    from ehat.data.prepare import Guarded, generate_lr_job, make_lmdb, run_jobs

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    gt, lq = os.path.join(workdir, "HR"), os.path.join(workdir, "LR")
    for i in range(n):
        path = os.path.join(gt, f"{i + 1:04d}.png")
        if not os.path.exists(path):
            img = photos[i % len(photos)]
            img = cv2.resize(img, (2040, 1356), interpolation=cv2.INTER_CUBIC)
            write_image(path, img if i < len(photos) else img[:, ::-1].copy())
    tasks = [
        (
            f"{i + 1:04d}",
            os.path.join(gt, f"{i + 1:04d}.png"),
            os.path.join(lq, f"{i + 1:04d}x4.png"),
            None,
            4,
        )
        for i in range(n)
    ]
    for _ in run_jobs(Guarded(generate_lr_job), tasks, workers, "synthetic LR"):
        pass
    make_lmdb(gt, gt + ".lmdb", workers)
    make_lmdb(lq, lq + ".lmdb", workers)
    return {"gt": gt, "lq": lq, "gt_lmdb": gt + ".lmdb", "lq_lmdb": lq + ".lmdb"}


def bench(opt: dict, workers: int, batch_size: int, seconds: float) -> float:
    """Patches per second through a DataLoader (first batch excluded)."""
    import torch
    from torch.utils.data import DataLoader

    from ehat.data.paired_dataset import MultiRootPairedDataset

    ds = MultiRootPairedDataset(opt)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    patches, t0 = 0, None
    while True:
        for batch in loader:
            assert isinstance(batch["gt"], torch.Tensor)
            if t0 is None:
                t0 = time.perf_counter()
                continue
            patches += batch["gt"].shape[0]
            if time.perf_counter() - t0 >= seconds:
                return patches / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", help="HR folder")
    p.add_argument("--lq", help="LR folder")
    p.add_argument("--gt-lmdb", help="HR .lmdb")
    p.add_argument("--lq-lmdb", help="LR .lmdb")
    p.add_argument(
        "--synthetic", type=int, default=0, help="make N synthetic 2K images in --workdir and use them"
    )
    p.add_argument("--workdir", default="/tmp/ehat_bench_data", help="where --synthetic writes")
    p.add_argument("--gt-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="num_workers values to try")
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per setting")
    a = p.parse_args(argv)
    import ehat  # noqa: F401  (basicsr alias + registries)

    roots = {"gt": a.gt, "lq": a.lq, "gt_lmdb": a.gt_lmdb, "lq_lmdb": a.lq_lmdb}
    if a.synthetic:
        roots = make_synthetic(a.workdir, a.synthetic, max(a.workers))
    setups = []
    if roots["gt"] and roots["lq"]:
        setups.append(("folder", roots["gt"], roots["lq"], "disk"))
    if roots["gt_lmdb"] and roots["lq_lmdb"]:
        setups.append(("lmdb", roots["gt_lmdb"], roots["lq_lmdb"], "lmdb"))
    if not setups:
        p.error("give --gt/--lq, --gt-lmdb/--lq-lmdb, or --synthetic N")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"GT patch {a.gt_size}, batch {a.batch_size}, {a.seconds:g} s per setting"
    )
    print(f"{'backend':8} {'workers':>7} {'patches/s':>10} {'per worker':>11}")
    for label, gt, lq, backend in setups:
        opt = {
            "dataroot_gt": gt,
            "dataroot_lq": lq,
            "io_backend": {"type": backend},
            "gt_size": a.gt_size,
            "use_hflip": True,
            "use_rot": True,
            "scale": 4,
            "phase": "train",
        }
        for w in a.workers:
            rate = bench(opt, w, a.batch_size, a.seconds)
            print(f"{label:8} {w:>7} {rate:>10.1f} {rate / max(w, 1):>11.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
