"""``test_demo.py``: the NTIRE 2024 ESR challenge's evaluation, on CUDA or CPU.

Keeps the challenge's arguments (``--data_dir --save_dir --model_path --model_id --include_test
--ssim``), folders (``DIV2K_LSDIR_valid_HR/LR`` with ``*x4.png`` LR names, ``_test_`` likewise),
``results.json`` keys and ``results.txt`` table; adds device choice, tiling, self-ensemble,
autocast, compilation, warm-up/repeat timing, PSNR-Y/SSIM-Y and an attention-inclusive MAC count,
and labels what was measured on which device.

:func:`run` is a short list of steps; each step's work lives in the module of its concern:
sets (:mod:`~ehat.evaluation.sets`), inference (:mod:`~ehat.evaluation.inference`), one set's
loop (:mod:`~ehat.evaluation.protocol`), reports (:mod:`~ehat.evaluation.reporting`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ehat.errors import EhatError
from ehat.evaluation.errors import EvalError
from ehat.evaluation.inference import make_forward
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
from ehat.evaluation.protocol import EvalOptions, evaluate_set
from ehat.evaluation.reporting import (
    file_logger,
    load_results_json,
    log_complexity,
    log_set_summary,
    set_summary,
    update_results,
    write_json_atomic,
    write_results_txt,
)
from ehat.evaluation.score import log_score
from ehat.evaluation.score_run import score_step
from ehat.evaluation.sets import EvalSet, ImageItem, find_sets, lossy_warning, resolve_items
from ehat.imaging.tiling import TileChooser, TilePolicy
from ehat.precision import warn_if_emulated

LOGGER_NAME = "NTIRE2024-EfficientSR"
SCALE = 4  # the challenge's SR factor
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")


# --------------------------------------------------------------------------- the command line


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``test_demo.py``."""
    from ehat.zoo import zoo_help

    p = argparse.ArgumentParser(
        "test_demo.py",
        description="NTIRE 2024 ESR evaluation (PSNR, runtime, FLOPs, params, activations, memory) on CUDA or CPU.",
        epilog="Ground truth: the valid set's HR folder (DATA_DIR/DIV2K_LSDIR_valid_HR) is required, and a "
        "missing or misnamed one is an error (exit 2) naming the folder looked for; pass --lr_only to "
        "evaluate without it (SR images and runtimes, no PSNR). The test set's HR may be absent (the "
        "challenge withholds it): a warning names the folder. --lr_dir alone is an LR-only set. "
        "Exit status: 0 done, 1 a set had no image evaluated (results files keep the previous row), "
        "2 a mistake in the arguments or the files.",
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
        help=f"model zoo id (default 35): {zoo_help()}",
    )
    g.add_argument("--include_test", action="store_true", help="also evaluate DIV2K_LSDIR_test_*")
    g.add_argument("--ssim", action="store_true", help="also compute RGB SSIM (the challenge's --ssim)")
    g = p.add_argument_group("inference")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    g.add_argument("--tile", type=tile_arg, default=None,
                   help="N: tiles of N LR pixels; auto: the largest tile whose predicted peak memory fits "
                        "--mem_budget (the whole image when it fits); none (default, the challenge's protocol): whole "
                        "images; on out-of-memory errors the image is retried with smaller tiles")  # fmt: skip
    g.add_argument("--mem_budget", type=budget_arg, default=None, metavar="auto|GiB",
                   help="memory the inference may add for --tile auto: GiB, or auto (default) = 70%% of the "
                        "available memory (CPU MemAvailable, CUDA free)")  # fmt: skip
    g.add_argument("--tile_overlap", type=count_arg(0), default=32,
                   help="tile overlap in LR pixels (>= 0; 0 = no blending), blended linearly")  # fmt: skip
    g.add_argument("--self_ensemble", action="store_true", help="average the 8 flips/rotations (x8 cost)")
    prec = g.add_mutually_exclusive_group()
    prec.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    prec.add_argument("--fp16", action="store_true", help="float16 autocast (CUDA only)")
    g.add_argument("--data_range", type=positive_float, default=None,
                   help="override the model's input range (1 or 255)")  # fmt: skip
    g.add_argument("--compile", choices=("false", "blocks", "full"), default="false",
                   help="torch.compile: blocks = each HAB/OCAB (one graph per block shape), full = the whole "
                        "network; the compilation runs on an untimed warm-up and is logged apart (default false)")  # fmt: skip
    g.add_argument("--tf32", action="store_true",
                   help="let CUDA matmuls/convolutions use TF32 (Ampere+; faster, results differ slightly)")  # fmt: skip
    g = p.add_argument_group("measurement and output")
    g.add_argument("--warmup", type=count_arg(0), default=0,
                   help="untimed runs per image before timing (>= 0; challenge: 0)")  # fmt: skip
    g.add_argument("--repeat", type=count_arg(1), default=1,
                   help="timed runs per image (>= 1); the median is reported")  # fmt: skip
    g.add_argument("--no_save", action="store_true", help="do not write SR images")
    g.add_argument("--save_crops", action="store_true", help="write MATLAB bicubic | SR | HR centre crops")
    g.add_argument("--skip_complexity", action="store_true", help="do not count FLOPs/activations")
    g.add_argument("--score_year", choices=("2024", "2025", "2026", "none"), default="2024",
                   help="print the PSNR threshold check and that year's challenge score (Score_Runtime/FLOPs/"
                        "Params/Final) beside the table, the year's baseline measured in this run on the same "
                        "device and images (default 2024, the RLFN baseline; none: no score, no baseline run)")  # fmt: skip
    g.add_argument("--complexity", choices=("auto", "meta", "real"), default="auto",
                   help="meta = shape propagation (fast), real = fvcore on a real forward (slow)")  # fmt: skip
    g.add_argument(
        "--results_dir", default=".", help="where results.json / results.txt / the log go (challenge: cwd)"
    )
    g = p.add_argument_group("other data")
    g.add_argument(
        "--lr_dir", default=None, help="evaluate this LR folder as the valid set (instead of --data_dir)"
    )
    g.add_argument("--hr_dir", default=None,
                   help="HR folder for --lr_dir (without it: no metrics; given, it must exist)")  # fmt: skip
    g.add_argument("--lr_only", action="store_true",
                   help="evaluate without ground truth: SR images and runtimes, no PSNR; HR folders are not "
                        "looked for (without it, a missing valid HR folder is an error)")  # fmt: skip
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


def count_arg(minimum: int) -> Any:
    """An argparse type: an int >= ``minimum`` (argparse exits with status 2 and the message otherwise)."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {n}")
        return n

    parse.__name__ = f"int>={minimum}"
    return parse


def positive_float(value: str) -> float:
    """An argparse type: a finite float > 0."""
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0 (e.g. 1 or 255), got {value!r}")
    return x


def budget_arg(value: str) -> float | None:
    """``--mem_budget``: GiB > 0, or None for 'auto'."""
    try:
        return parse_budget(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


# --------------------------------------------------------------------------- the steps


@dataclass
class Run:
    """What one ``test_demo.py`` run evaluates: resolved before the model is loaded."""

    device: torch.device
    precision: str
    spec: Any  # ehat.zoo.ModelSpec
    data_range: float  # the model's input/output range: the zoo's, or --data_range
    sets: list[tuple[EvalSet, list[ImageItem], list[str]]]  # (set, its images, notes about them)
    weights: Path


def _precision(args: argparse.Namespace, device: torch.device) -> str:
    if args.fp16 and device.type != "cuda":
        raise EvalError("--fp16 needs CUDA; on CPU use --bf16 or full precision")
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


def _weights(spec: Any, model_path: str | None) -> Path:
    from ehat.zoo import resolve_weights

    if model_path is not None and Path(model_path).is_dir():
        found = sorted(p.name for p in Path(model_path).iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
        held = f"; it holds {', '.join(found[:5])}{', ...' if len(found) > 5 else ''}" if found else ""
        raise EvalError(
            f"--model_path {model_path} is a folder: give the weights file itself (a .pth/.safetensors "
            f"state dict for --model_id {spec.model_id}, {spec.name}){held}"
        )
    return resolve_weights(spec, model_path)


def plan_run(args: argparse.Namespace) -> Run:
    """Device, precision, zoo entry, sets and weights file; every folder is checked before the model
    is loaded. Raises :class:`EhatError` (or ``ZooError``) for a mistake in the arguments or files."""
    from ehat.device import resolve_device
    from ehat.zoo import get_spec

    device = resolve_device(args.device)
    precision = _precision(args, device)
    spec = get_spec(args.model_id)
    sets = find_sets(args.data_dir, args.include_test, args.lr_dir, args.hr_dir, args.lr_only)
    listed = [(s, *resolve_items(s, SCALE)) for s in sets]
    data_range = spec.data_range if args.data_range is None else args.data_range
    return Run(device, precision, spec, data_range, listed, _weights(spec, args.model_path))


def load_model(run: Run, args: argparse.Namespace, log: Any) -> nn.Module:
    """The zoo network with its weights, on the run's device; TF32 switched on when asked."""
    from ehat.acceleration import enable_tf32
    from ehat.zoo import build_model

    model = build_model(run.spec, run.weights).to(run.device)
    torch.backends.cudnn.benchmark = False
    if args.tf32:
        enable_tf32(True)
        log.info("TF32 enabled for CUDA matmuls and convolutions%s",
                 "" if run.device.type == "cuda" else " (no effect on CPU)")  # fmt: skip
    return model


def auto_tiler(
    model: nn.Module, opts: EvalOptions, budget_gib: float | None, cache_file: Path, log: Any
) -> TileChooser | None:
    """The chooser of ``--tile auto``: a fitted memory model and a budget.

    Probes the model on three small inputs (once per model, device and precision; cached in
    ``cache_file``) and logs the fit and the budget. None where memory cannot be measured.
    """
    plain = dataclasses.replace(opts, self_ensemble=False, tiles=TilePolicy.whole(opts.tiles.overlap))
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
    return AutoTiler(fit, budget, opts.tiles.overlap, window_multiple(model), opts.scale,
                     extra_per_hr_pixel=8 * 3 if opts.self_ensemble else 0.0)  # fmt: skip


def eval_options(run: Run, args: argparse.Namespace, model: nn.Module, log: Any) -> EvalOptions:
    """The evaluation's options, with the tile policy (fitted for ``--tile auto``)."""
    opts = EvalOptions(
        device=run.device,
        data_range=run.data_range,
        scale=SCALE,
        tiles=TilePolicy.from_setting(args.tile, args.tile_overlap),
        self_ensemble=args.self_ensemble,
        precision=run.precision,
        warmup=args.warmup,
        repeat=args.repeat,
        save_images=not args.no_save,
        save_crops=args.save_crops,
        ssim=args.ssim,
    )
    if opts.tiles.mode == "auto":
        cache = Path(args.save_dir) / "memory_model_cache.json"
        opts.tiles = opts.tiles.with_chooser(auto_tiler(model, opts, args.mem_budget, cache, log))
    elif args.mem_budget is not None:
        log.warning("--mem_budget is used by --tile auto only; --tile is %s", opts.tiles.label)
    return opts


def _warmup_sizes(run: Run, limit: int = 2) -> list[tuple[int, int]]:
    """Up to ``limit`` distinct LR sizes (h, w) of the run's images, read from their headers."""
    from ehat.data.image_io import ImageReadError, read_image_size

    sizes: list[tuple[int, int]] = []
    for _, items, _ in run.sets:
        for item in items:
            try:
                size = read_image_size(item.lr_path)
            except (ImageReadError, OSError):
                continue
            if size not in sizes:
                sizes.append(size)
            if len(sizes) == limit:
                return sizes
    return sizes


def compile_model_step(model: nn.Module, run: Run, opts: EvalOptions, mode: str, log: Any) -> float | None:
    """``--compile``: compile ``model`` in place, then run the timed forward untimed on the first two
    image sizes (the second makes torch mark H/W dynamic), so compilation never lands in a per-image
    runtime. Returns the compile time in seconds (None when off). Raises :class:`EvalError` when
    compilation fails."""
    from ehat.acceleration import compile_model

    if mode == "false":
        return None
    compile_model(model, mode)
    start = time.perf_counter()
    for h, w in _warmup_sizes(run):
        x = torch.rand(1, 3, h, w, device=opts.device) * opts.data_range
        tile, _ = opts.tiles.choose(h, w)
        try:
            make_forward(model, opts, tile)(x)
        except RuntimeError as e:
            raise EvalError(
                f"--compile {mode}: compiling failed on a {w}x{h} warm-up ({type(e).__name__}: {e}); "
                f"run without --compile"
            ) from e
        if opts.device.type == "cuda":
            torch.cuda.synchronize(opts.device)
    seconds = time.perf_counter() - start
    log.info("--compile %s: warm-up with compilation took %.1f s (not in any runtime)", mode, seconds)
    return seconds


def evaluate_sets(
    model: nn.Module, run: Run, opts: EvalOptions, args: argparse.Namespace, log: Any
) -> tuple[dict[str, Any], bool]:
    """Every set of the run, through :func:`evaluate_set`; returns (the row's set keys, whether every
    set evaluated at least one image)."""
    entry: dict[str, Any] = {}
    complete = True
    for eval_set, items, notes in run.sets:
        mode = eval_set.mode
        log.info(
            "%s set: %d image(s) from %s (HR: %s)",
            mode,
            len(items),
            eval_set.lr_dir,
            eval_set.hr_dir or "none",
        )
        for note in notes:
            log.warning("%s", note)
        lossy = lossy_warning(mode, items)
        if lossy:
            log.warning("%s", lossy)
        res = evaluate_set(model, items, opts, Path(args.save_dir) / run.spec.name / mode, mode, log)
        summary = set_summary(res)
        log_set_summary(summary, mode, log)
        entry.update(summary)
        if not res.evaluated:
            log.error("no image of the %s set could be evaluated", mode)
            complete = False
    return entry, complete


def complexity_entry(model: nn.Module, name: str, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """The row's complexity keys (params [M], FLOPs [G], activations [M], #conv), counted or cached."""
    from ehat.evaluation.complexity import cached_complexity

    if args.skip_complexity:
        log.info("complexity: skipped (--skip_complexity)")
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        return dict(num_parameters=n_params, flops=None, macs_all=None, activations=None, num_conv=None)
    cache = Path(args.save_dir) / "complexity_cache.json"
    cx, cached = cached_complexity(model, name, cache, method=args.complexity)
    log_complexity(cx, "cached" if cached else f"counted ({cx.method})", log)
    return dict(
        activations=cx.activations / 1e6,
        num_conv=cx.num_conv,
        flops=cx.flops / 1e9,
        macs_all=cx.macs_all / 1e9,
        num_parameters=cx.num_parameters / 1e6,
        complexity_method=cx.method,
    )


def run_facts(
    run: Run, opts: EvalOptions, args: argparse.Namespace, compile_s: float | None
) -> dict[str, Any]:
    """How the row was measured: device, precision, tiles, ensemble, range, weights, speed switches."""
    device = run.device
    return dict(
        device=str(device) if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})",
        precision=run.precision,
        tile=opts.tiles.label,
        self_ensemble=opts.self_ensemble,
        data_range=opts.data_range,
        weights=str(run.weights),
        model_id=run.spec.model_id,
        compile=args.compile,
        compile_seconds=compile_s,
        tf32=args.tf32,
    )


def write_results(results: dict[str, Any], args: argparse.Namespace, log: Any) -> int:
    """Write results.json and results.txt atomically; 0, or 1 when the disk refuses."""
    out = Path(args.results_dir)
    try:
        write_json_atomic(out / "results.json", results)
        table = write_results_txt(out / "results.txt", results, args.include_test)
    except OSError as e:
        log.error("cannot write the results to %s (%s); the previous results.json and results.txt are intact: "
                  "free some space or pass another --results_dir", out.resolve(), e)  # fmt: skip
        return 1
    log.info("results.json and results.txt written to %s\n%s", out.resolve(), table)
    return 0


def run(args: argparse.Namespace, log: Any) -> int:
    """Evaluate, update results.json / results.txt. Returns the exit status (see :func:`main`)."""
    try:
        plan = plan_run(args)
        model = load_model(plan, args, log)
        log.info("%s (model_id %d): %s", plan.spec.name, plan.spec.model_id, plan.spec.description)
        log.info("weights: %s; data range [0, %g]; device %s%s; precision %s", plan.weights, plan.data_range,
                 plan.device, f" ({torch.cuda.get_device_name(plan.device)})" if plan.device.type == "cuda" else "",
                 plan.precision)  # fmt: skip
        warn_if_emulated(plan.precision, plan.device, "fp32 (drop --bf16)", log.warning)
        opts = eval_options(plan, args, model, log)
        compile_s = compile_model_step(model, plan, opts, args.compile, log)
    except (EhatError, OSError) as e:  # a mistake in the arguments or files (ZooError, CheckpointError, ...)
        log.error("%s", e)
        return 2
    results = load_results_json(Path(args.results_dir) / "results.json", log)
    entry, complete = evaluate_sets(model, plan, opts, args, log)
    if complete:
        entry.update(run_facts(plan, opts, args, compile_s))
        entry.update(complexity_entry(model, plan.spec.name, args, log))
        entry.update(score_step(args.score_year, plan.spec, [(s, i) for s, i, _ in plan.sets], opts, entry,
                                args.save_dir, log))  # fmt: skip
    if not update_results(results, plan.spec.name, entry, complete, log):
        return 1
    status = write_results(results, args, log)
    log_score(plan.spec.name, entry, log)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``test_demo.py``; returns the exit status (0 ok, 1 nothing evaluated in a set or
    the results could not be written, 2 a mistake in the arguments or files)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.lr_only and args.hr_dir is not None:
        parser.error("--lr_only evaluates without ground truth: leave out --hr_dir, or drop --lr_only")
    try:
        os.makedirs(args.results_dir, exist_ok=True)
        with file_logger(LOGGER_NAME, Path(args.results_dir) / f"{LOGGER_NAME}.log") as log:
            log.info("arguments: %s", vars(args))
            return run(args, log)
    except (EhatError, OSError) as e:
        print(f"test_demo.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
