"""The NTIRE 2024 ESR evaluation protocol, device-agnostic: one set at a time, then the reports.

``evaluate_set`` runs a model over one set of LR images (with HR when present): timed inference
(optionally tiled, self-ensembled, autocast), the challenge's PSNR plus PSNR-Y / SSIM-Y, SR PNGs,
side-by-side crops, a per-image CSV. A bad image is logged and skipped; the rest is still
evaluated. ``update_results_json`` / ``write_results_txt`` keep the challenge's files and keys.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ehat.evaluation.ensemble import self_ensemble
from ehat.evaluation.memory import PeakMemory
from ehat.evaluation.metrics import image_metrics
from ehat.evaluation.runtime import describe_mode, timed
from ehat.evaluation.tiling import forward_tiled

SET_PREFIXES = ("DIV2K_LSDIR", "LSDIR_DIV2K")  # the challenge README's and its script's spellings
OOM_TILES = (512, 256, 128, 64)


class EvalError(RuntimeError):
    """A set cannot be evaluated at all (missing folder, empty set); the message names the folder."""


@dataclass(frozen=True)
class ImageItem:
    """One image of a set: ``hr_path`` None when the set has no ground truth for it."""

    name: str
    lr_path: str
    hr_path: str | None


@dataclass
class EvalOptions:
    """How to run and measure. ``precision``: "fp32", "bf16" or "fp16" (autocast)."""

    device: torch.device
    data_range: float
    scale: int = 4
    tile: int | None = None
    tile_overlap: int = 32
    # (LR h, LR w) -> (tile or None, a log line); overrides ``tile`` (``--tile auto``, memory_model.py)
    tile_chooser: Callable[[int, int], tuple[int | None, str]] | None = None
    self_ensemble: bool = False
    precision: str = "fp32"
    warmup: int = 0
    repeat: int = 1
    save_images: bool = True
    save_crops: bool = False
    ssim: bool = False


@dataclass
class ImageResult:
    """Per-image outcome (one CSV row)."""

    name: str
    lr_size: str = ""
    runtime_ms: float | None = None
    psnr: float | None = None
    psnr_y: float | None = None
    ssim_y: float | None = None
    ssim: float | None = None
    tile: int | None = None
    note: str = ""


@dataclass
class SetResult:
    """All results of one set (``mode`` = "valid" or "test")."""

    mode: str
    images: list[ImageResult] = field(default_factory=list)
    memory_mib: float = 0.0
    memory_kind: str = ""
    runtime_clock: str = ""
    runtime_mode: str = ""
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- finding the images


def find_set_dirs(data_dir: str | os.PathLike, mode: str) -> tuple[Path | None, Path]:
    """(HR folder or None, LR folder) of the challenge's ``{prefix}_{mode}_HR/LR`` layout.

    Raises :class:`EvalError` naming the folders looked for when no LR folder exists.
    """
    root = Path(data_dir)
    tried = []
    for prefix in SET_PREFIXES:
        lr, hr = root / f"{prefix}_{mode}_LR", root / f"{prefix}_{mode}_HR"
        tried.append(str(lr))
        if lr.is_dir():
            return (hr if hr.is_dir() else None), lr
    raise EvalError(
        f"no {mode} set under --data_dir {root}: looked for {' or '.join(tried)} "
        f"(with *x4.png LR images, and HR beside it). Check --data_dir, or give --lr_dir/--hr_dir."
    )


def list_set(
    hr_dir: str | os.PathLike | None, lr_dir: str | os.PathLike, scale: int
) -> tuple[list[ImageItem], list[str]]:
    """Every LR image of ``lr_dir``, with its HR from ``hr_dir`` when one exists.

    Returns (items sorted by name, notes). LR images without HR are kept (evaluated, no metrics);
    HR images without LR are reported in the notes. Raises :class:`EvalError` for a missing or
    empty folder.
    """
    from ehat.data.pairing import DatasetError, find_pairs, list_images, strip_scale_suffix

    try:
        lr_only = find_pairs(None, lr_dir, scale)
    except DatasetError as e:
        raise EvalError(f"LR folder {lr_dir}: {e}") from e
    if not lr_only:
        raise EvalError(f"LR folder {lr_dir} has no images")
    notes: list[str] = []
    hr_of: dict[str, str] = {}
    if hr_dir is None:
        notes.append(f"no HR folder beside {lr_dir}: SR images are produced, metrics are skipped")
    else:
        try:
            hr_names = list_images(hr_dir)
        except DatasetError as e:
            raise EvalError(f"HR folder {hr_dir}: {e}") from e
        for rel in hr_names:
            hr_of[strip_scale_suffix(os.path.splitext(rel)[0].replace(os.sep, "/"), scale)] = os.path.join(
                hr_dir, rel
            )
        lr_names = {p.name for p in lr_only}
        no_hr = [p.name for p in lr_only if p.name not in hr_of]
        no_lr = sorted(set(hr_of) - lr_names)
        if no_hr:
            notes.append(
                f"{len(no_hr)} LR image(s) have no HR in {hr_dir} (metrics skipped): {', '.join(no_hr[:10])}"
            )
        if no_lr:
            notes.append(
                f"{len(no_lr)} HR image(s) have no LR in {lr_dir} (not evaluated): {', '.join(no_lr[:10])}"
            )
    items = [ImageItem(p.name, p.lr_path, hr_of.get(p.name)) for p in lr_only]
    return items, notes


# --------------------------------------------------------------------------- inference


def to_tensor(img_uint8: np.ndarray, data_range: float, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, data_range] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(img_uint8)).permute(2, 0, 1).float()
    return x.mul_(data_range / 255.0).unsqueeze(0).to(device)


def to_uint8(y: torch.Tensor, data_range: float) -> np.ndarray:
    """(1, 3, H, W) in [0, data_range] -> (H, W, 3) uint8 RGB (clamped, rounded: the challenge's)."""
    y = y.detach()[0].float().clamp_(0, data_range).mul_(255.0 / data_range).round_()
    return y.byte().permute(1, 2, 0).cpu().numpy()


def _autocast(opts: EvalOptions) -> contextlib.AbstractContextManager:
    if opts.precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[opts.precision]
    return torch.autocast(device_type=opts.device.type, dtype=dtype)


def make_forward(model: nn.Module, opts: EvalOptions, tile: int | None) -> Any:
    """The function that is timed: autocast, optional self-ensemble, optional tiling."""

    def run_one(x: torch.Tensor) -> torch.Tensor:
        return forward_tiled(model, x, opts.scale, tile, opts.tile_overlap)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), _autocast(opts):
            y = self_ensemble(run_one, x) if opts.self_ensemble else run_one(x)
        return y.float()

    return forward


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom)


def check_finite(x: torch.Tensor, name: str, what: str, advice: str) -> None:
    """Raise ``ValueError`` naming image ``name`` when tensor ``x`` holds NaN or inf values."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n = int(finite.numel() - finite.sum())
        raise ValueError(f"{name}: the {what} holds {n} NaN/inf value(s); {advice}")


def metrics_size_problem(hr_shape: Sequence[int], scale: int) -> str | None:
    """Why an HR of ``hr_shape`` (H, W, ...) is too small to score (the border crop plus SSIM's 11x11
    window need ``2*scale + 11`` pixels a side after modcrop), or None."""
    need = 2 * scale + 11
    h, w = (hr_shape[0] // scale) * scale, (hr_shape[1] // scale) * scale
    if min(h, w) < need:
        return (
            f"the HR ({hr_shape[1]}x{hr_shape[0]}) is too small to score: PSNR/SSIM crop {scale} pixels a side "
            f"and SSIM needs an 11x11 window, so at least {need}x{need} pixels (LR {-(-need // scale)} a side)"
        )
    return None


def infer(
    model: nn.Module, x: torch.Tensor, opts: EvalOptions, log: logging.Logger, name: str
) -> tuple[Any, int | None]:
    """Timed inference of one image; on CUDA OOM retry with smaller tiles and say so.

    Returns ((output, Timing), tile actually used). Raises ``ValueError`` naming the image when the
    input or the output holds NaN/inf.
    """
    check_finite(x, name, "input", "the image must hold finite values: re-create it")
    tile = opts.tile
    if opts.tile_chooser is not None:
        tile, why = opts.tile_chooser(x.shape[-2], x.shape[-1])
        log.info("%s: %s", name, why)
    candidates = [t for t in OOM_TILES if tile is None or t < tile]
    while True:
        fwd = make_forward(model, opts, tile)
        try:
            out = timed(lambda f=fwd: f(x), opts.device, opts.warmup, opts.repeat)
            check_finite(out[0], name, "model output", "check the weights and --data_range, or drop --fp16")
            return out, tile
        except RuntimeError as e:
            if not _is_oom(e) or not candidates:
                raise
            tile = candidates.pop(0)
            if opts.device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("%s: CUDA out of memory at %s; retrying with tiles of %d (overlap %d)", name,
                        "full size" if opts.tile is None else f"tile {opts.tile}", tile, opts.tile_overlap)  # fmt: skip


# --------------------------------------------------------------------------- one set


def evaluate_set(
    model: nn.Module,
    items: Sequence[ImageItem],
    opts: EvalOptions,
    save_dir: str | os.PathLike,
    mode: str,
    log: logging.Logger,
) -> SetResult:
    """Evaluate ``model`` on ``items``; write SR PNGs / crops under ``save_dir`` and ``{mode}.csv`` beside.

    Images that cannot be read or whose sizes do not match are logged, recorded with a note and
    left out of the averages; the others are still evaluated.
    """
    from ehat.data.image_io import ImageReadError, read_image_uint8, write_image
    from ehat.evaluation.visualize import save_side_by_side

    save_dir = Path(save_dir)
    result = SetResult(mode, runtime_mode=describe_mode(opts.warmup, opts.repeat))
    memory = PeakMemory(opts.device)
    memory.reset()
    for i, item in enumerate(items):
        row = ImageResult(item.name)
        result.images.append(row)
        try:
            lr = read_image_uint8(item.lr_path)
        except ImageReadError as e:
            row.note = f"LR unreadable: {e}"
            log.error("%s: skipped, %s", item.name, e)
            continue
        row.lr_size = f"{lr.shape[1]}x{lr.shape[0]}"
        x = to_tensor(lr, opts.data_range, opts.device)
        try:
            (y, timing), row.tile = infer(model, x, opts, log, item.name)
        except Exception as e:  # noqa: BLE001  (one failing image must not stop the set)
            row.note = f"inference failed: {type(e).__name__}: {e}"
            log.error("%s: skipped, %s", item.name, row.note)
            continue
        result.runtime_clock = timing.clock
        row.runtime_ms = timing.ms
        sr = to_uint8(y, opts.data_range)
        del x, y
        hr = None
        if item.hr_path is None:
            row.note = "no HR: metrics skipped"
        else:
            try:
                hr = read_image_uint8(item.hr_path)
                too_small = metrics_size_problem(hr.shape, opts.scale)
                if too_small:
                    raise ValueError(f"{item.hr_path}: {too_small}")
                row_metrics = image_metrics(sr, hr, opts.scale, ssim=opts.ssim)
                row.psnr, row.psnr_y, row.ssim_y = (
                    row_metrics["psnr"],
                    row_metrics["psnr_y"],
                    row_metrics["ssim_y"],
                )
                row.ssim = row_metrics.get("ssim")
            except (ImageReadError, ValueError) as e:
                msg = str(e) if item.hr_path in str(e) else f"{e} (HR {item.hr_path}, LR {item.lr_path})"
                row.note = f"metrics skipped: {msg}"
                log.error("%s: metrics skipped, %s", item.name, msg)
                hr = None
        if opts.save_images:
            write_image(save_dir / f"{item.name}.png", sr)
        if opts.save_crops:
            save_side_by_side(save_dir.parent / f"{mode}_crops" / f"{item.name}.png", lr, sr, hr, opts.scale)
        log.info("%s", _image_line(i + 1, len(items), row))
    result.memory_mib = memory.peak_mib()
    result.memory_kind = memory.kind
    write_csv(save_dir.parent / f"{mode}.csv", result.images)
    return result


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _image_line(i: int, n: int, r: ImageResult) -> str:
    parts = [f"[{i}/{n}] {r.name} ({r.lr_size})"]
    if r.psnr is not None:
        parts.append(f"PSNR: {r.psnr:.2f} dB; PSNR-Y: {r.psnr_y:.2f} dB; SSIM-Y: {r.ssim_y:.4f}")
        if r.ssim is not None:
            parts.append(f"SSIM: {r.ssim:.4f}")
    parts.append(f"{_fmt(r.runtime_ms, '.2f')} ms")
    if r.tile is not None:
        parts.append(f"tile {r.tile}")
    if r.note:
        parts.append(r.note)
    return " - ".join(parts)


def write_csv(path: str | os.PathLike, rows: Sequence[ImageResult]) -> None:
    """One row per image: name, LR size, runtime [ms], PSNR, PSNR-Y, SSIM-Y, SSIM, tile, note."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    keys = ["name", "lr_size", "runtime_ms", "psnr", "psnr_y", "ssim_y", "ssim", "tile", "note"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(keys)
        for r in rows:
            writer.writerow(["" if getattr(r, k) is None else getattr(r, k) for k in keys])


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def set_summary(result: SetResult) -> dict[str, Any]:
    """The challenge's keys for one set (``{mode}_psnr`` list, ``{mode}_ave_psnr``, ...) plus ours."""
    m = result.mode
    done = [r for r in result.images if r.runtime_ms is not None]
    scored = [r for r in done if r.psnr is not None]
    out: dict[str, Any] = {
        f"{m}_runtime": [r.runtime_ms for r in done],
        f"{m}_psnr": [r.psnr for r in scored],
        f"{m}_memory": result.memory_mib,
        f"{m}_ave_runtime": _mean([r.runtime_ms for r in done]),
        f"{m}_ave_psnr": _mean([r.psnr for r in scored]),
        f"{m}_psnr_y": [r.psnr_y for r in scored],
        f"{m}_ave_psnr_y": _mean([r.psnr_y for r in scored]),
        f"{m}_ssim_y": [r.ssim_y for r in scored],
        f"{m}_ave_ssim_y": _mean([r.ssim_y for r in scored]),
        f"{m}_images": [r.name for r in done],
        f"{m}_scored_images": [r.name for r in scored],
        f"{m}_failed": {
            r.name: r.note for r in result.images if r.runtime_ms is None or (r.note and r.psnr is None)
        },
        f"{m}_memory_kind": result.memory_kind,
        f"{m}_runtime_clock": result.runtime_clock,
        f"{m}_runtime_mode": result.runtime_mode,
    }
    if any(r.ssim is not None for r in scored):
        out[f"{m}_ssim"] = [r.ssim for r in scored]
        out[f"{m}_ave_ssim"] = _mean([r.ssim for r in scored])
    return out


def log_set_summary(summary: dict[str, Any], mode: str, log: logging.Logger) -> None:
    """The challenge's closing lines for a set, with what was measured."""
    log.info("%16s : %.3f [M] (%s)", "Max Memory", summary[f"{mode}_memory"], summary[f"{mode}_memory_kind"])
    log.info("------> Average runtime of (%s) is : %s milliseconds (%s; %s)", mode,
             _fmt(summary[f"{mode}_ave_runtime"], ".6f"), summary[f"{mode}_runtime_clock"],
             summary[f"{mode}_runtime_mode"])  # fmt: skip
    log.info("------> Average PSNR of (%s) is : %s dB", mode, _fmt(summary[f"{mode}_ave_psnr"], ".6f"))
    log.info("------> Average PSNR-Y / SSIM-Y of (%s) is : %s dB / %s", mode,
             _fmt(summary[f"{mode}_ave_psnr_y"], ".4f"), _fmt(summary[f"{mode}_ave_ssim_y"], ".4f"))  # fmt: skip
    if summary[f"{mode}_failed"]:
        log.warning("%d image(s) of (%s) were not fully evaluated: %s", len(summary[f"{mode}_failed"]), mode,
                    "; ".join(f"{k}: {v}" for k, v in summary[f"{mode}_failed"].items()))  # fmt: skip


# --------------------------------------------------------------------------- results.json / results.txt


def load_results_json(path: str | os.PathLike, log: logging.Logger) -> dict[str, Any]:
    """Read the accumulated results; a corrupt file is kept aside as ``.corrupt`` and restarted."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        return data
    except ValueError as e:
        backup = path.with_suffix(path.suffix + ".corrupt")
        os.replace(path, backup)
        log.warning("%s is not valid JSON (%s); moved it to %s and started a new one", path, e, backup)
        return {}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON through a temporary file and a rename: a failing write (full disk) raises
    ``OSError`` and leaves the previous file intact."""
    from ehat.atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(_json_safe(data), indent=1).encode("utf-8"))


def _cell(entry: dict[str, Any], key: str, spec: str) -> str:
    value = entry.get(key)
    return "-" if value is None else format(value, spec)


def results_table(results: dict[str, Any], include_test: bool) -> str:
    """``results.txt`` in the challenge's format (tab-separated, fixed-width columns).

    Values the challenge always has but a run may lack (no HR, --skip_complexity) read "-".
    """
    if include_test:
        fmt = "{:20s}\t{:10s}\t{:10s}\t{:14s}\t{:14s}\t{:14s}\t{:10s}\t{:10s}\t{:8s}\t{:8s}\t{:8s}\n"
        s = fmt.format("Model", "Val PSNR", "Test PSNR", "Val Time [ms]", "Test Time [ms]", "Ave Time [ms]",
                       "Params [M]", "FLOPs [G]", "Acts [M]", "Mem [M]", "Conv")  # fmt: skip
    else:
        fmt = "{:20s}\t{:10s}\t{:14s}\t{:10s}\t{:10s}\t{:8s}\t{:8s}\t{:8s}\n"
        s = fmt.format(
            "Model", "Val PSNR", "Val Time [ms]", "Params [M]", "FLOPs [G]", "Acts [M]", "Mem [M]", "Conv"
        )
    for name, v in results.items():
        if not isinstance(v, dict):
            continue
        common = [
            _cell(v, "num_parameters", "2.3f"),
            _cell(v, "flops", "2.2f"),
            _cell(v, "activations", "2.2f"),
            _cell(v, "valid_memory", "2.2f"),
            _cell(v, "num_conv", "4d"),
        ]
        if include_test:
            times = [v.get("valid_ave_runtime"), v.get("test_ave_runtime")]
            ave = "-" if None in times else f"{sum(times) / 2:3.2f}"
            s += fmt.format(name, _cell(v, "valid_ave_psnr", "2.2f"), _cell(v, "test_ave_psnr", "2.2f"),
                            _cell(v, "valid_ave_runtime", "3.2f"), _cell(v, "test_ave_runtime", "3.2f"), ave,
                            *common)  # fmt: skip
        else:
            s += fmt.format(
                name, _cell(v, "valid_ave_psnr", "2.2f"), _cell(v, "valid_ave_runtime", "3.2f"), *common
            )
    return s


def measurement_notes(results: dict[str, Any]) -> str:
    """Lines saying how each model's numbers were measured (appended below the table)."""
    lines = ["", "# How each row was measured"]
    for name, v in results.items():
        if not isinstance(v, dict) or "device" not in v:
            continue
        lines.append(
            f"# {name}: device {v.get('device')}; runtime {v.get('valid_runtime_clock', '?')} "
            f"({v.get('valid_runtime_mode', '?')}); memory {v.get('valid_memory_kind', '?')} [MiB]; "
            f"FLOPs = fvcore multiply-adds on 1x3x256x256 (attention not counted); "
            f"all MACs incl. attention = {_cell(v, 'macs_all', '.2f')} [G]; precision {v.get('precision', 'fp32')}; "
            f"tile {v.get('tile')}; self-ensemble {v.get('self_ensemble', False)}"
        )
    return "\n".join(lines) + "\n"


def write_results_txt(path: str | os.PathLike, results: dict[str, Any], include_test: bool) -> str:
    """Write the table (and the measurement notes) to ``path`` atomically; return the table."""
    from ehat.atomic import atomic_write_bytes

    table = results_table(results, include_test)
    atomic_write_bytes(path, (table + measurement_notes(results)).encode("utf-8"))
    return table


@contextlib.contextmanager
def file_logger(name: str, log_file: str | os.PathLike) -> Iterator[logging.Logger]:
    """A logger writing to ``log_file`` (appending) and to stderr, detached again on exit."""
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%y-%m-%d %H:%M:%S")
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.FileHandler(log_file, encoding="utf-8"),
        logging.StreamHandler(),
    ]
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    # Library loggers (zoo downloads, complexity fallbacks) go to the same places.
    lib = [logging.getLogger("ehat.zoo"), logging.getLogger("ehat.evaluation.complexity")]
    for lg in lib:
        lg.setLevel(logging.INFO)
        for h in handlers:
            lg.addHandler(h)
    try:
        yield log
    finally:
        for lg in [log, *lib]:
            for h in handlers:
                lg.removeHandler(h)
        for h in handlers:
            h.close()
