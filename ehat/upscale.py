"""``ehat upscale IN... -o OUT``: super-resolve your own images and folders (no ground truth).

Each input (a file, or the images directly inside a folder) is read as RGB (grayscale expanded,
alpha dropped, 16-bit kept until the network), run through the model with the evaluation's
inference (:func:`ehat.evaluation.inference.infer`: tiles, autocast, self-ensemble, retry with
smaller tiles after an out-of-memory error) and written atomically to ``OUT/<stem>_x<scale>.<ext>``.
Tiles default to ``auto``: the largest tile whose predicted peak memory fits ``--mem_budget``
(:class:`ehat.evaluation.memory_model.AutoTiler`, fitted once per model, device and precision).
A file that cannot be read is named and skipped; an output that would replace an input is refused.
Exit status: 0 every image written, 1 some skipped, 2 a mistake in the arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ehat.errors import EhatError

__all__ = ["add_arguments", "collect_inputs", "output_path", "run_upscale", "to_image"]

FORMATS = ("png", "jpg", "webp", "tif")
DEFAULT_MODEL = "102"  # the shipped demo model; 35 is EHAT-L (downloaded on first use)


class UpscaleError(EhatError):
    """A mistake in ``ehat upscale``'s arguments (no inputs, an output that is a file, ...)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``ehat upscale``'s options."""
    from ehat.evaluation.ntire import budget_arg, count_arg, tile_arg

    p.add_argument("inputs", nargs="+", metavar="IN", help="image files and/or folders of images")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created)")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|PATH",
                   help="zoo id/name or checkpoint (default 102, the shipped EHAT-tiny demo; 35 = EHAT-L)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--tile", type=tile_arg, default="auto",
                   help="auto (default): the largest tile that fits --mem_budget; N: tiles of N LR pixels; none")  # fmt: skip
    p.add_argument("--mem_budget", type=budget_arg, default=None, metavar="auto|GiB",
                   help="memory the inference may use for --tile auto (default: 70%% of what is available)")  # fmt: skip
    p.add_argument(
        "--tile_overlap", type=count_arg(0), default=32, help="tile overlap in LR pixels (default 32)"
    )
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None,
                      help="fp32 (default); auto: bf16 where the device runs it natively (CPU with AVX512-BF16/AMX, "
                           "GPU with bf16), else fp32; bf16/fp16 autocast (fp16: CUDA only)")  # fmt: skip
    prec.add_argument("--bf16", action="store_true", help="bfloat16 autocast (fast where native; ~1e-3 off)")
    prec.add_argument("--fp16", action="store_true", help="float16 autocast (CUDA only)")
    p.add_argument("--self_ensemble", action="store_true", help="average the 8 flips/rotations (x8 time)")
    p.add_argument("--format", choices=("same", *FORMATS), default="png", help="output format (default png)")
    p.add_argument(
        "--bit_depth", type=int, choices=(8, 16), default=8, help="8 or 16 bits per channel (png/tif)"
    )
    p.add_argument("--suffix", default=None, help="added to each output name (default _x<scale>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, errors only")


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """(image files to process, one message per input that is neither a file nor a folder).

    A folder contributes its files with an image extension (not recursive), sorted by name.
    """
    from ehat.data.image_io import IMAGE_EXTENSIONS

    files: list[Path] = []
    problems: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{path}: a folder without images ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def output_path(src: Path, out_dir: Path, fmt: str, suffix: str) -> Path:
    """``out_dir/<stem><suffix>.<ext>``; ``fmt='same'`` keeps the input's extension."""
    ext = src.suffix.lower().lstrip(".") if fmt == "same" else fmt
    return out_dir / f"{src.stem}{suffix}.{ext}"


def to_image(y: torch.Tensor, data_range: float, bit_depth: int) -> np.ndarray:
    """(1, 3, H, W) in [0, data_range] -> (H, W, 3) uint8 or uint16 RGB (clamped, rounded)."""
    top = 255.0 if bit_depth == 8 else 65535.0
    img = y[0].float().clamp(0, data_range).mul(top / data_range).round()
    return img.permute(1, 2, 0).cpu().numpy().astype(np.uint8 if bit_depth == 8 else np.uint16)


def encode(img: np.ndarray, ext: str) -> bytes:
    """RGB uint8/uint16 (H, W, 3) -> the bytes of an ``ext`` file."""
    import cv2

    ok, buf = cv2.imencode(f".{ext}", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise UpscaleError(f"cannot encode a {img.dtype} image as .{ext}")
    return buf.tobytes()


def _settings(args: argparse.Namespace, resolved: Any, device: torch.device):  # noqa: ANN202
    from ehat.evaluation.protocol import EvalOptions
    from ehat.imaging.tiling import TilePolicy
    from ehat.precision import resolve_precision, warn_if_emulated

    precision = resolve_precision(
        args.precision or ("bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"), device
    )
    if precision == "fp16" and device.type != "cuda":
        raise UpscaleError("--fp16 needs CUDA; on CPU use --bf16 or full precision")
    warn_if_emulated(
        precision, device, "--precision fp32 (or auto)", logging.getLogger("ehat.upscale").warning
    )
    return EvalOptions(
        device=device,
        data_range=resolved.data_range,
        scale=resolved.scale,
        tiles=TilePolicy.from_setting(args.tile, args.tile_overlap),
        self_ensemble=args.self_ensemble,
        precision=precision,
        save_images=True,
    )


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "ehat" / "memory_model_cache.json"


def run_upscale(args: argparse.Namespace) -> int:
    """Upscale every input; returns the exit status (0 all written, 1 some skipped)."""
    from tqdm import tqdm

    from ehat.atomic import atomic_write_bytes
    from ehat.data.image_io import ImageReadError, read_image_native, to_float32
    from ehat.device import resolve_device
    from ehat.evaluation.inference import infer
    from ehat.evaluation.ntire import auto_tiler
    from ehat.export.models import resolve_model

    if args.bit_depth == 16 and args.format not in ("png", "tif", "same"):
        raise UpscaleError(f"--bit_depth 16 needs --format png or tif ({args.format} stores 8 bits)")
    files, problems = collect_inputs(args.inputs)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UpscaleError(f"-o {out_dir} is a file: give a folder for the upscaled images")
    if not files:
        raise UpscaleError("no images to upscale: " + "; ".join(problems))
    log = logging.getLogger("ehat.upscale")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    device = resolve_device(args.device)
    resolved = resolve_model(args.model)
    model = resolved.model.to(device)
    if device.type == "cpu":  # docs/performance.md, small networks on CPU
        from ehat.cpu_allocator import tune_malloc
        from ehat.cpu_inference import to_cpu_layout

        tune_malloc()
        model = to_cpu_layout(model)
    for p in model.parameters():
        p.requires_grad_(False)
    opts = _settings(args, resolved, device)
    if opts.tiles.mode == "auto":
        opts.tiles = opts.tiles.with_chooser(auto_tiler(model, opts, args.mem_budget, _cache_file(), log))
    suffix = f"_x{resolved.scale}" if args.suffix is None else args.suffix
    inputs = {p.resolve() for p in files}
    for message in problems:
        log.error("skipped %s", message)
    skipped = len(problems)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("%s (%s) on %s, %s: %d image(s) -> %s", resolved.name, resolved.weights, device, opts.precision,
             len(files), out_dir)  # fmt: skip
    bar = tqdm(files, unit="img", disable=args.quiet, file=sys.stderr)
    for src in bar:
        bar.set_postfix_str(src.name)
        dst = output_path(src, out_dir, args.format, suffix)
        if dst.resolve() in inputs:
            tqdm.write(f"skipped {src}: its output {dst} would overwrite an input", file=sys.stderr)
            skipped += 1
            continue
        try:
            img = read_image_native(src)
        except (ImageReadError, OSError) as err:
            tqdm.write(f"skipped {src}: {err}", file=sys.stderr)
            skipped += 1
            continue
        x = (
            torch.from_numpy(to_float32(img))
            .permute(2, 0, 1)
            .unsqueeze(0)
            .mul(resolved.data_range)
            .to(device)
        )
        try:
            (y, _), tile = infer(model, x, opts, log, src.name)
        except ValueError as err:  # infer's non-finite input/output report (names the image)
            tqdm.write(f"skipped {src}: {err}", file=sys.stderr)
            skipped += 1
            continue
        atomic_write_bytes(
            dst, encode(to_image(y, resolved.data_range, args.bit_depth), dst.suffix.lstrip("."))
        )
        if tile is not None and not args.quiet:
            tqdm.write(f"{src.name}: tiles of {tile} LR pixels", file=sys.stderr)
    done = len(files) - (skipped - len(problems))
    log.info("wrote %d image(s) to %s%s", done, out_dir, f"; skipped {skipped}" if skipped else "")
    return 1 if skipped else 0
