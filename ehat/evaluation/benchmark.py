"""``test.py -opt options/test/xxx.yml``: BasicSR-style evaluation on benchmark sets (Set5, Set14, ...).

Reads BasicSR's test options (``name``, ``scale``, ``num_gpu``, ``datasets.test_*`` with
``dataroot_gt``/``dataroot_lq``, ``network_g``, ``path.pretrain_network_g``, ``val.metrics``),
validated by the same typed machinery as the training options
(:func:`ehat.options.benchmark.load_test_options`: unknown keys and keys EHAT does not implement are
errors naming the key), and runs them through the same code as ``test_demo.py``
(:mod:`ehat.evaluation.protocol`). Results go to ``results/<name>/``: SR images per set, a CSV per
set and a log.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ehat.archs import descriptor_of, prepare_for_inference
from ehat.errors import EhatError
from ehat.evaluation.protocol import EvalOptions, evaluate_set, file_logger, list_set, set_summary
from ehat.networks import build_from_options
from ehat.options.benchmark import TestMetricOptions, TestOptions, load_test_options
from ehat.options.common import options_device
from ehat.options.schema import OptionsError
from ehat.precision import warn_if_emulated

__all__ = ["OptionsError", "load_test_options", "main", "run_options"]

DEFAULT_METRICS = {
    "psnr": TestMetricOptions(type="calculate_psnr", test_y_channel=True),
    "ssim": TestMetricOptions(type="calculate_ssim", test_y_channel=True),
}
"""The benchmark convention when ``val.metrics`` is absent: PSNR and SSIM on Y, border ``scale`` cropped."""


def _add_suffix(folder: Path, names: Sequence[str], suffix: str) -> None:
    """Rename the SR images ``<name>.png`` of ``folder`` to ``<name>_<suffix>.png`` (``val.suffix``)."""
    for name in names:
        src = folder / f"{name}.png"
        if src.is_file():
            os.replace(src, folder / f"{name}_{suffix}.png")


def run_options(opt: TestOptions, results_root: str | os.PathLike = "results") -> dict[str, dict[str, float]]:
    """Evaluate every dataset of ``opt``; return {dataset name: {metric name: mean}}."""
    out_root = Path(results_root) / opt.name
    metrics = opt.val.metrics or DEFAULT_METRICS
    fields = {key: m.field for key, m in metrics.items()}
    summary: dict[str, dict[str, float]] = {}
    sets = {}  # every folder listed before anything is built or written: a bad set leaves no log behind
    for key, ds in opt.datasets.items():
        sets[key] = list_set(ds.dataroot_gt, ds.dataroot_lq, opt.scale)
    with file_logger(f"ehat.test.{opt.name}", out_root / f"test_{opt.name}.log") as log:
        device = options_device(opt.num_gpu, opt.device)
        if opt.manual_seed is not None:
            torch.manual_seed(opt.manual_seed)
        weights, paths = opt.path.pretrain_network_g, opt.path
        model = build_from_options(
            opt.network_g, weights, paths.param_key_g, strict=paths.strict_load_g, log=log
        )
        if not weights:
            log.warning("path.pretrain_network_g is not set: evaluating a randomly initialised network")
        model = prepare_for_inference(model.eval()).to(device)
        data_range = opt.data_range or descriptor_of(model).data_range
        opts = EvalOptions(
            device=device,
            data_range=data_range,
            scale=opt.scale,
            tile=opt.tile.tile_size,
            tile_overlap=opt.tile.tile_pad,
            self_ensemble=opt.val.self_ensemble,
            precision=opt.precision,
            save_images=opt.val.save_img,
            ssim="ssim" in fields.values(),
        )
        log.info(
            "%s: %s on %s, weights %s, data range [0, %g]",
            opt.name,
            opt.network_g,
            device,
            weights,
            data_range,
        )
        warn_if_emulated(opt.precision, device, "precision: fp32", log.warning)
        for key, ds in opt.datasets.items():
            assert ds.name is not None  # filled by the options
            items, notes = sets[key]
            for note in notes:
                log.warning("%s: %s", ds.name, note)
            res = evaluate_set(model, items, opts, out_root / ds.name, ds.name, log)
            if opt.val.save_img and opt.val.suffix:
                _add_suffix(out_root / ds.name, [item.name for item in items], opt.val.suffix)
            s = set_summary(res)
            means = {key: s.get(f"{ds.name}_ave_{f}") for key, f in fields.items()}
            summary[ds.name] = means
            log.info("# Validation %s: %s", ds.name,
                     "; ".join(f"{k}: {'n/a' if v is None else f'{v:.4f}'}" for k, v in means.items()))  # fmt: skip
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``test.py``: 0 done, 2 for an error (one line, no traceback)."""
    p = argparse.ArgumentParser(
        "test.py", description="Evaluate a BasicSR-style test options file (reference: docs/options.md)."
    )
    p.add_argument("-opt", "--opt", required=True, help="path to options/test/*.yml")
    p.add_argument(
        "--results_root",
        default=None,
        help="where results/<name>/ goes (default: path.results_root or results)",
    )
    p.add_argument(
        "--force_yml",
        nargs="+",
        default=[],
        metavar="KEY:SUBKEY=VALUE",
        help="override option-file keys (as train.py), e.g. path:pretrain_network_g=net.pth num_gpu=0",
    )
    args = p.parse_args(argv)
    try:
        opt = load_test_options(args.opt, force_yml=args.force_yml)
        run_options(opt, args.results_root or opt.path.results_root or "results")
    except (EhatError, OSError) as e:  # a user's mistake (EvalError is an EhatError): one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
