"""``test_demo.py``: the NTIRE 2024 ESR challenge's evaluation, on CUDA or CPU.

Keeps the challenge's arguments (``--data_dir --save_dir --model_path --model_id --include_test
--ssim``), folders (``DIV2K_LSDIR_valid_HR/LR`` with ``*x4.png`` LR names, ``_test_`` likewise),
``results.json`` keys and ``results.txt`` table; adds device choice, tiling, self-ensemble,
autocast, warm-up/repeat timing, PSNR-Y/SSIM-Y and an attention-inclusive MAC count, and labels
what was measured on which device.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ehat.evaluation.memory import MemoryMeasureError
from ehat.evaluation.memory_model import (
    GIB,
    MIB,
    AutoTiler,
    cached_memory_fit,
    parse_budget,
    resolve_budget,
    window_multiple,
)
from ehat.evaluation.protocol import (
    EvalError,
    EvalOptions,
    evaluate_set,
    file_logger,
    find_set_dirs,
    list_set,
    load_results_json,
    log_set_summary,
    make_forward,
    set_summary,
    write_json_atomic,
    write_results_txt,
)

LOGGER_NAME = "NTIRE2024-EfficientSR"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``test_demo.py``."""
    p = argparse.ArgumentParser(
        "test_demo.py",
        description="NTIRE 2024 ESR evaluation (PSNR, runtime, FLOPs, params, activations, memory) on CUDA or CPU.",
    )
    g = p.add_argument_group("challenge arguments")
    g.add_argument("--data_dir", default="../", help="folder holding DIV2K_LSDIR_valid_HR/LR (and _test_)")
    g.add_argument("--save_dir", default="../results", help="SR images go to SAVE_DIR/<model name>/<set>/")
    g.add_argument(
        "--model_path", default=None, help="weights file (default: the model zoo's file, downloaded)"
    )
    g.add_argument(
        "--model_id",
        type=int,
        default=35,
        help="model zoo id: 35 EHAT-L, 0 RLFN baseline, 100 HAT-L, 101 RLFN paper model, 102 EHAT-tiny demo (ships)",
    )
    g.add_argument("--include_test", action="store_true", help="also evaluate DIV2K_LSDIR_test_*")
    g.add_argument("--ssim", action="store_true", help="also compute RGB SSIM (the challenge's --ssim)")
    g = p.add_argument_group("inference")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    g.add_argument("--tile", type=tile_arg, default=None,
                   help="N: tiles of N LR pixels; auto: the largest tile whose predicted peak memory fits "
                        "--mem_budget (the whole image when it fits); none (default, the challenge's protocol): whole "
                        "images; on CUDA out-of-memory errors are caught and retried with tiles")  # fmt: skip
    g.add_argument("--mem_budget", type=budget_arg, default=None, metavar="auto|GiB",
                   help="memory the inference may add for --tile auto: GiB, or auto (default) = 70%% of the "
                        "available memory (CPU MemAvailable, CUDA free)")  # fmt: skip
    g.add_argument("--tile_overlap", type=int, default=32, help="tile overlap in LR pixels, blended")
    g.add_argument("--self_ensemble", action="store_true", help="average the 8 flips/rotations (x8 cost)")
    prec = g.add_mutually_exclusive_group()
    prec.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    prec.add_argument("--fp16", action="store_true", help="float16 autocast (CUDA only)")
    g.add_argument(
        "--data_range", type=float, default=None, help="override the model's input range (1 or 255)"
    )
    g = p.add_argument_group("measurement and output")
    g.add_argument(
        "--warmup", type=int, default=0, help="untimed runs per image before timing (challenge: 0)"
    )
    g.add_argument("--repeat", type=int, default=1, help="timed runs per image; the median is reported")
    g.add_argument("--no_save", action="store_true", help="do not write SR images")
    g.add_argument("--save_crops", action="store_true", help="write bicubic | SR | HR centre crops")
    g.add_argument("--skip_complexity", action="store_true", help="do not count FLOPs/activations")
    g.add_argument("--complexity", choices=("auto", "meta", "real"), default="auto",
                   help="meta = shape propagation (fast), real = fvcore on a real forward (slow)")  # fmt: skip
    g.add_argument(
        "--results_dir", default=".", help="where results.json / results.txt / the log go (challenge: cwd)"
    )
    g.add_argument(
        "--lr_dir", default=None, help="evaluate this LR folder as the valid set (instead of --data_dir)"
    )
    g.add_argument("--hr_dir", default=None, help="HR folder for --lr_dir (optional: without it, no metrics)")
    return p


def tile_arg(value: str) -> int | str:
    """``--tile``: a positive int, 'auto' or 'none'."""
    v = value.strip().lower()
    if v in ("auto", "none"):
        return v
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(
            f"--tile must be a positive number of LR pixels, auto or none; got {value!r}"
        )
    return n


def budget_arg(value: str) -> float | None:
    """``--mem_budget``: GiB > 0, or None for 'auto'."""
    try:
        return parse_budget(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def auto_tiler(
    model: torch.nn.Module, opts: EvalOptions, budget_gib: float | None, cache_file: Path, log: Any
) -> Any:
    """The ``EvalOptions.tile_chooser`` of ``--tile auto``: a fitted memory model and a budget.

    Probes the model on three small inputs (once per model, device and precision; cached in
    ``cache_file``) and logs the fit and the budget. None where memory cannot be measured.
    """
    plain = dataclasses.replace(opts, self_ensemble=False, tile_chooser=None)
    start = time.perf_counter()
    try:
        fit, cached = cached_memory_fit(model, make_forward(model, plain, None), opts.device, cache_file,
                                        opts.precision)  # fmt: skip
        budget, how = resolve_budget(budget_gib, opts.device)
    except MemoryMeasureError as e:
        log.warning("--tile auto: %s; running whole images", e)
        return None
    except RuntimeError as e:  # a probe failed (e.g. out of memory on a crowded GPU)
        log.warning(
            "--tile auto: the memory probes failed (%s: %s); running whole images", type(e).__name__, e
        )
        return None
    log.info("memory model (%s, %s): %.0f MiB + %.1f KiB per LR pixel%s; budget %s", fit.kind,
             "cached" if cached else f"probed {len(fit.probes)} sizes in {time.perf_counter() - start:.1f} s",
             fit.base / MIB, fit.per_pixel / 1024,
             f" + {fit.per_pixel_sq:.3g} B per pixel^2" if fit.per_pixel_sq else "", how)  # fmt: skip
    if budget < 0.05 * GIB:
        log.warning("the memory budget is only %.0f MiB", budget / MIB)
    return AutoTiler(fit, budget, opts.tile_overlap, window_multiple(model), opts.scale,
                     extra_per_hr_pixel=8 * 3 if opts.self_ensemble else 0.0)  # fmt: skip


def resolve_device(choice: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without CUDA is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise EvalError("--device cuda was requested but CUDA is not available: use --device cpu (or auto)")
    return torch.device(choice)


def _precision(args: argparse.Namespace, device: torch.device) -> str:
    if args.fp16 and device.type != "cuda":
        raise EvalError("--fp16 needs CUDA; on CPU use --bf16 or full precision")
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


def _sets(args: argparse.Namespace) -> list[tuple[str, Path | None, Path]]:
    if args.lr_dir is not None:
        sets = [("valid", Path(args.hr_dir) if args.hr_dir else None, Path(args.lr_dir))]
        if args.hr_dir and not Path(args.hr_dir).is_dir():
            raise EvalError(f"--hr_dir {args.hr_dir} is not a folder")
    else:
        sets = [("valid", *find_set_dirs(args.data_dir, "valid"))]
    if args.include_test:
        sets.append(("test", *find_set_dirs(args.data_dir, "test")))
    return sets


def run(args: argparse.Namespace, log: Any) -> int:
    """Evaluate, update results.json / results.txt. Returns the exit status."""
    from ehat.evaluation.complexity import cached_complexity
    from ehat.zoo import ZooError, build_model, get_spec, resolve_weights

    try:
        device = resolve_device(args.device)
        precision = _precision(args, device)
        spec = get_spec(args.model_id)
        sets = _sets(args)  # fail on missing folders before loading a large model
        weights = resolve_weights(spec, args.model_path)
        model = build_model(spec, weights).to(device)
    except (EvalError, ZooError) as e:
        log.error("%s", e)
        return 2
    torch.backends.cudnn.benchmark = False
    data_range = spec.data_range if args.data_range is None else args.data_range
    name = spec.name
    log.info("%s (model_id %d): %s", name, spec.model_id, spec.description)
    log.info("weights: %s; data range [0, %g]; device %s%s; precision %s", weights, data_range, device,
             f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "", precision)  # fmt: skip
    opts = EvalOptions(
        device=device,
        data_range=data_range,
        tile=args.tile if isinstance(args.tile, int) else None,
        tile_overlap=args.tile_overlap,
        self_ensemble=args.self_ensemble,
        precision=precision,
        warmup=args.warmup,
        repeat=args.repeat,
        save_images=not args.no_save,
        save_crops=args.save_crops,
        ssim=args.ssim,
    )
    tile_mode = args.tile if args.tile is not None else "none"
    if tile_mode == "auto":
        cache = Path(args.save_dir) / "memory_model_cache.json"
        opts.tile_chooser = auto_tiler(model, opts, args.mem_budget, cache, log)
    elif args.mem_budget is not None:
        log.warning("--mem_budget is used by --tile auto only; --tile is %s", tile_mode)
    json_path = Path(args.results_dir) / "results.json"
    results = load_results_json(json_path, log)
    entry: dict[str, Any] = {}
    status = 0
    for mode, hr_dir, lr_dir in sets:
        try:
            items, notes = list_set(hr_dir, lr_dir, opts.scale)
        except EvalError as e:
            log.error("%s", e)
            return 2
        log.info("%s set: %d image(s) from %s (HR: %s)", mode, len(items), lr_dir, hr_dir or "none")
        for note in notes:
            log.warning("%s", note)
        res = evaluate_set(model, items, opts, Path(args.save_dir) / name / mode, mode, log)
        summary = set_summary(res)
        log_set_summary(summary, mode, log)
        entry.update(summary)
        if not summary[f"{mode}_images"]:
            log.error("no image of the %s set could be evaluated", mode)
            status = 1
    entry.update(
        device=str(device) if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})",
        precision=precision,
        tile=tile_mode,
        self_ensemble=args.self_ensemble,
        data_range=data_range,
        weights=str(weights),
        model_id=spec.model_id,
    )
    if args.skip_complexity:
        log.info("complexity: skipped (--skip_complexity)")
        entry.update(
            num_parameters=sum(p.numel() for p in model.parameters()) / 1e6,
            flops=None,
            macs_all=None,
            activations=None,
            num_conv=None,
        )
    else:
        cx, cached = cached_complexity(
            model, name, Path(args.save_dir) / "complexity_cache.json", method=args.complexity
        )
        how = "cached" if cached else f"counted ({cx.method})"
        log.info(
            "%16s : %.4f [M] (Conv2d outputs on 1x3x256x256, %s)", "#Activations", cx.activations / 1e6, how
        )
        log.info("%16s : %d", "#Conv2d", cx.num_conv)
        log.info(
            "%16s : %.4f [G] (fvcore multiply-adds on 1x3x256x256; attention not counted)",
            "FLOPs",
            cx.flops / 1e9,
        )
        log.info("%16s : %.4f [G] (matmul + conv + attention, torch.utils.flop_counter / 2)", "MACs (all)",
                 cx.macs_all / 1e9)  # fmt: skip
        log.info("%16s : %.4f [M]", "#Params", cx.num_parameters / 1e6)
        entry.update(
            activations=cx.activations / 1e6,
            num_conv=cx.num_conv,
            flops=cx.flops / 1e9,
            macs_all=cx.macs_all / 1e9,
            num_parameters=cx.num_parameters / 1e6,
            complexity_method=cx.method,
        )
    results[name] = entry
    try:
        write_json_atomic(json_path, results)
        table = write_results_txt(Path(args.results_dir) / "results.txt", results, args.include_test)
    except OSError as e:
        log.error("cannot write the results to %s (%s); the previous results.json and results.txt are intact: "
                  "free some space or pass another --results_dir", Path(args.results_dir).resolve(), e)  # fmt: skip
        return 1
    log.info("results.json and results.txt written to %s\n%s", Path(args.results_dir).resolve(), table)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``test_demo.py``; returns the exit status (0 ok, 1 nothing evaluated, 2 bad input)."""
    args = build_parser().parse_args(argv)
    os.makedirs(args.results_dir, exist_ok=True)
    with file_logger(LOGGER_NAME, Path(args.results_dir) / f"{LOGGER_NAME}.log") as log:
        log.info("arguments: %s", vars(args))
        return run(args, log)


if __name__ == "__main__":
    sys.exit(main())
