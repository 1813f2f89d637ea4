"""Reporting of an evaluation: per-image lines and CSV, set summaries with the challenge's keys,
``results.json`` / ``results.txt``, and the per-run logger.

``results.json`` maps a model name to its row (the challenge's keys: ``valid_psnr``,
``valid_ave_psnr``, ``valid_ave_runtime``, ``valid_memory``, ``num_parameters``, ``flops``, ...
plus ours); ``results.txt`` is the challenge's table of every row, with a note per row saying how
it was measured. Both are written atomically: a failing write leaves the previous files intact.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehat.evaluation.score import row_score_lines
from ehat.logs import LIBRARY_LOGGERS, run_log

__all__ = [
    "LIBRARY_LOGGERS",
    "ImageResult",
    "SetResult",
    "file_logger",
    "image_line",
    "load_results_json",
    "log_complexity",
    "log_set_summary",
    "measurement_notes",
    "results_table",
    "set_summary",
    "update_results",
    "write_csv",
    "write_json_atomic",
    "write_results_txt",
]

#: Loggers of library modules whose messages also go to the run's log file.


@dataclass
class ImageResult:
    """Per-image outcome (one CSV row). Runtime in ms, PSNR in dB, ``tile`` in LR pixels (None: whole)."""

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
    """All results of one set (``mode`` = "valid" or "test"); peak memory in MiB."""

    mode: str
    images: list[ImageResult] = field(default_factory=list)
    memory_mib: float = 0.0
    memory_kind: str = ""
    runtime_clock: str = ""
    runtime_mode: str = ""

    @property
    def evaluated(self) -> int:
        """How many images ran through the model."""
        return sum(r.runtime_ms is not None for r in self.images)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def image_line(i: int, n: int, r: ImageResult) -> str:
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
    for name, v in results.items():
        if isinstance(v, dict) and isinstance(v.get("score"), dict):
            lines += ["", *(f"# {line}" for line in row_score_lines(name, v))]
    return "\n".join(lines) + "\n"


def write_results_txt(path: str | os.PathLike, results: dict[str, Any], include_test: bool) -> str:
    """Write the table (and the measurement notes) to ``path`` atomically; return the table."""
    from ehat.atomic import atomic_write_bytes

    table = results_table(results, include_test)
    atomic_write_bytes(path, (table + measurement_notes(results)).encode("utf-8"))
    return table


def file_logger(name: str, log_file: str | os.PathLike) -> contextlib.AbstractContextManager[logging.Logger]:
    """A logger writing to ``log_file`` (appending) and to stderr, detached again on exit
    (:func:`ehat.logs.run_log`, with the library loggers)."""
    return run_log(name, log_file, console=sys.stderr)


def update_results(results: dict[str, Any], name: str, entry: dict[str, Any], complete: bool,
                   log: logging.Logger) -> bool:  # fmt: skip
    """Put ``entry`` as ``results[name]`` when the run is ``complete`` (every set evaluated at least
    one image); otherwise keep the previous row (a failed rerun must not replace a good row with an
    empty one) and say so. Returns whether ``results`` changed."""
    if complete:
        results[name] = entry
        return True
    if name in results:
        log.error("%s: results.json and results.txt keep the previous row of this model", name)
    else:
        log.error("%s: nothing was evaluated, so no row is written to results.json / results.txt", name)
    return False


def log_complexity(cx: Any, how: str, log: logging.Logger) -> None:
    """The challenge's complexity lines for a :class:`ehat.evaluation.complexity.Complexity`."""
    log.info("%16s : %.4f [M] (Conv2d outputs on 1x3x256x256, %s)", "#Activations", cx.activations / 1e6, how)
    log.info("%16s : %d", "#Conv2d", cx.num_conv)
    log.info("%16s : %.4f [G] (fvcore multiply-adds on 1x3x256x256; attention not counted)", "FLOPs",
             cx.flops / 1e9)  # fmt: skip
    log.info("%16s : %.4f [G] (matmul + conv + attention, torch.utils.flop_counter / 2)", "MACs (all)",
             cx.macs_all / 1e9)  # fmt: skip
    log.info("%16s : %.4f [M]", "#Params", cx.num_parameters / 1e6)
