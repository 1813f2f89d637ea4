#!/usr/bin/env python
"""A tiny SPAN trained N iterations with and without a teacher, in one run: PSNR on Set5 / Set14.

    python scripts/make_demo_data.py --out demo/data          # the training photos (no download)
    OMP_WAIT_POLICY=PASSIVE python scripts/compare_distillation.py --iters 2000 \\
        --teacher ../shared/weights/span_ntire_x4.pth --sets ../shared/data --out experiments/distill_cmp

Both runs use the option file ``options/train/train_SPAN-tiny_SRx4_distill_from_SPAN_CPU_quick.yml``
(same seed, same data order, same N iterations); the baseline drops the teacher (``model_type:
EHATModel``, the ground-truth L1 loss alone), the other keeps it (L1 + output + spatial-affinity
distillation). Each run is validated once at the end on Set5 and Set14 (``<sets>/Set5/HR`` +
``LR_bicubic/X4``), with the trained weights (``--ema_decay`` 0 by default). Prints one table:
PSNR / PSNR-Y per set and the seconds each run took.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import yaml

import ehat  # noqa: F401  (registers the networks)
from ehat.errors import EhatError

OPTION_FILE = (
    Path(__file__).resolve().parents[1] / "options/train/train_SPAN-tiny_SRx4_distill_from_SPAN_CPU_quick.yml"
)


def run_options(base: dict, teacher: bool, args: argparse.Namespace) -> dict:
    """The option dict of one arm: the file's, with N iterations, Set5/Set14 validation at the end."""
    opt = copy.deepcopy(base)
    opt["name"] = f"{base['name']}_{'teacher' if teacher else 'baseline'}"
    opt["path"] = {"experiments_root": str(Path(args.out) / opt["name"])}
    opt["train"]["total_iter"] = args.iters
    opt["train"]["ema_decay"] = args.ema_decay
    opt["logger"]["save_checkpoint_freq"] = args.iters
    opt["logger"]["print_freq"] = max(1, args.iters // 10)
    if "scheduler" in opt["train"]:
        opt["train"]["scheduler"]["periods"] = [args.iters]
    sets = Path(args.sets)
    opt["datasets"] = {"train": opt["datasets"]["train"]}
    for i, name in enumerate(("Set5", "Set14")):
        opt["datasets"][f"val_{i}"] = {
            "name": name,
            "type": "PairedValidationDataset",
            "dataroot_gt": str(sets / name / "HR"),
            "dataroot_lq": str(sets / name / "LR_bicubic" / "X4"),
            "io_backend": {"type": "disk"},
        }
    opt["val"] = {
        "val_freq": args.iters,
        "val_at_start": False,
        "save_img": False,
        "pbar": False,
        "tb_images": 0,
    }
    if teacher:
        opt["path"]["pretrain_network_t"] = args.teacher
    else:
        opt["model_type"] = "EHATModel"
        for key in ("network_t", "distill"):
            opt.pop(key, None)
    return opt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=2000, help="iterations of each run (default 2000)")
    p.add_argument("--teacher", default="../shared/weights/span_ntire_x4.pth", help="the teacher's weights")
    p.add_argument("--sets", default="../shared/data", help="folder holding Set5/ and Set14/")
    p.add_argument("--options", default=str(OPTION_FILE), help="the distillation option file")
    p.add_argument("--out", default="experiments/distill_cmp", help="experiments folder")
    p.add_argument(
        "--ema_decay",
        type=float,
        default=0.0,
        help="train.ema_decay of both runs (default 0: validate the trained weights; the file's 0.995 "
        "would still hold half the random initialisation after 150 iterations)",
    )
    args = p.parse_args(argv)
    from ehat.options.train import validate_options
    from ehat.train.real_trainer import trainer_class

    base = yaml.safe_load(Path(args.options).read_text())
    rows = []
    try:
        for teacher in (False, True):
            opt = validate_options(run_options(base, teacher, args))
            start = time.perf_counter()
            out = trainer_class(opt)(opt, handle_signals=False).run()
            seconds = time.perf_counter() - start
            val = out["val_history"][-1]
            rows.append(("with teacher" if teacher else "without teacher", val, seconds, out["history"]))
    except (EhatError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\n{args.iters} iterations each, same seed and data ({Path(args.options).name})")
    print(
        f"{'run':<16} {'Set5 PSNR':>10} {'Set5 PSNR-Y':>12} {'Set14 PSNR':>11} {'Set14 PSNR-Y':>13} {'seconds':>8}"
    )
    for label, val, seconds, history in rows:
        s5, s14 = val["Set5"], val["Set14"]
        print(
            f"{label:<16} {s5['psnr']:>10.3f} {s5['psnr_y']:>12.3f} {s14['psnr']:>11.3f} {s14['psnr_y']:>13.3f} "
            f"{seconds:>8.0f}"
        )
        teacher_s = [h["t_teacher"] for h in history if "t_teacher" in h]
        if teacher_s:
            print(f"{'':<16} teacher: {sum(teacher_s) / len(teacher_s):.3f} s/iteration on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
