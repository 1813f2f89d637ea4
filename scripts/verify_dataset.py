#!/usr/bin/env python
"""Check a dataset before training: every HR has its LR and vice versa, every file decodes, and the sizes
agree (HR / scale == LR after modcrop). Every problem is reported, not just the first; the exit code is 1
when there is any. Folders or .lmdb roots; --hr or --lr alone checks decoding only.

Example:
  python scripts/verify_dataset.py --hr datasets/DIV2K/DIV2K_train_HR --lr datasets/DIV2K/DIV2K_train_LR_bicubic/X4
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ehat.data.pairing import DatasetError, match_names  # noqa: E402
from ehat.data.prepare import Guarded, JobResult, Summary, add_workers_arg, root_names, run_jobs, verify_job  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hr", help="HR folder or .lmdb")
    p.add_argument("--lr", help="LR folder or .lmdb")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument(
        "--filename-tmpl", default=None, help="BasicSR LR name template, e.g. '{}x4' (default: automatic)"
    )
    add_workers_arg(p)
    a = p.parse_args(argv)
    if a.hr is None and a.lr is None:
        p.error("give --hr, --lr or both")
    summary = Summary()
    names: dict[str, list[str]] = {}
    for label, root in (("hr", a.hr), ("lr", a.lr)):
        if root is not None:
            try:
                names[label] = root_names(root)
            except DatasetError as e:
                summary.add(JobResult("failed", root, [str(e)]))
    if summary.failed:
        summary.report("verify_dataset")
        return 1
    if a.hr is not None and a.lr is not None:
        try:
            pairs, hr_only, lr_only = match_names(
                names["hr"], names["lr"], a.scale, a.filename_tmpl, a.hr, a.lr
            )
        except DatasetError as e:
            summary.add(JobResult("failed", a.hr, [str(e)]))
            summary.report("verify_dataset")
            return 1
        for n in hr_only:
            summary.add(JobResult("failed", n, [f"HR {os.path.join(a.hr, n)} has no LR in {a.lr}"]))
        for n in lr_only:
            summary.add(JobResult("failed", n, [f"LR {os.path.join(a.lr, n)} has no HR in {a.hr}"]))
        tasks = [(k, a.hr, h, a.lr, lo, a.scale) for k, h, lo in pairs]
        tasks += [(n, a.hr, n, None, None, a.scale) for n in hr_only]
        tasks += [(n, None, None, a.lr, n, a.scale) for n in lr_only]
    else:
        root, label = (a.hr, "hr") if a.hr is not None else (a.lr, "lr")
        tasks = [(n, root, n, None, None, a.scale) for n in names[label]]
    problems_before = len(summary.problems)
    for r in run_jobs(Guarded(verify_job), tasks, a.workers, "verify"):
        summary.problems.extend(r.problems)
        if r.status == "done":
            summary.done += 1
    n_bad = len(summary.problems)
    summary.failed = n_bad
    summary.report(f"verify_dataset: {len(tasks)} images/pairs checked ({problems_before} pairing problems)")
    print("OK: no problems found" if not n_bad else f"FAILED: {n_bad} problem(s)")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
