"""Predict inference memory from the LR tile size, and pick the largest tile that fits a budget.

A network's peak inference memory (batch 1, no autograd) grows with the area of the LR input it
is given, once padded to the window multiple: HAT/EHAT's window attention, OCAB, convolutions and
DANet's position attention (a fused, O(N)-memory SDPA kernel) are all linear in it. The model
``peak = a + b * pixels (+ c * pixels**2)`` is **fitted on measurements**: a few small probe
forwards, each measured with :func:`ehat.evaluation.memory.measure_peak_growth` (CPU: peak RSS
growth; CUDA: ``max_memory_allocated`` growth). ``c`` stays 0 unless the largest probe lies well
above the line through the others (a whole-map attention without a fused kernel would do that).

:func:`choose_tile` then adds what :func:`ehat.imaging.tiling.forward_tiled` keeps for the
whole image (input, blended output, weight map) and returns the largest window-multiple tile
whose prediction, times a safety margin, stays within the budget; None when the whole image fits.
Fits are cached in a JSON file per (model config, device, precision, probe sizes).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ehat.errors import EhatError
from ehat.evaluation.json_cache import read_json_cache, write_json_cache
from ehat.evaluation.memory import available_bytes, measure_peak_growth

GIB = 1024**3
MIB = 1024**2
# predictions are within ~10% on held-out sizes (tests/evaluation/test_eval_memory_model.py)
SAFETY_FACTOR = 1.2
SAFETY_BYTES = 64 * MIB  # allocator slack, small temporaries, other threads
AUTO_BUDGET_FRACTION = 0.7
PROBE_WINDOWS = (4, 6, 8)  # probe sides, in windows: 64/96/128 px for HAT-L, 32/48/64 for ehat_tiny
CURVATURE_TOLERANCE = 0.35  # excess of the largest probe over the line: noise ~20%, a pure p**2 term ~49%

Forward = Callable[[torch.Tensor], torch.Tensor]


class MemoryBudgetError(EhatError):
    """Not even the smallest tile fits the budget; the message gives the need and the budget."""


@dataclass(frozen=True)
class MemoryFit:
    """``peak_bytes(pixels) = base + per_pixel * pixels + per_pixel_sq * pixels**2``.

    ``pixels``: LR pixels of one forward's input after padding to the window multiple.
    ``probes``: the (pixels, measured bytes) pairs the fit came from; ``kind``: what was measured.
    """

    base: float
    per_pixel: float
    per_pixel_sq: float
    kind: str
    probes: tuple[tuple[int, int], ...]

    def predict(self, pixels: int) -> float:
        """Predicted peak growth in bytes for one forward on ``pixels`` padded LR pixels."""
        return self.base + self.per_pixel * pixels + self.per_pixel_sq * pixels**2


def padded_pixels(h: int, w: int, multiple: int) -> int:
    """LR pixels of an ``h`` x ``w`` input once reflect-padded up to multiples of ``multiple``."""
    return (-(-h // multiple) * multiple) * (-(-w // multiple) * multiple)


def window_multiple(model: nn.Module) -> int:
    """The side every tile should be a multiple of: the model's window size (8 for window-less nets)."""
    return int(getattr(model, "window_size", None) or 8)


def fit_line(points: Sequence[tuple[int, int]]) -> tuple[float, float, float]:
    """(a, b, c) of ``bytes = a + b*p + c*p**2`` from >= 2 (pixels, bytes) points, by least squares.

    The line is fitted on all points; with >= 3 points, when the largest lies more than
    ``CURVATURE_TOLERANCE`` above the line through the others, a quadratic is fitted instead.
    Slopes are kept >= 0 (memory does not shrink with size).
    """
    pts = sorted(points)
    if len(pts) < 2:
        raise ValueError(f"need at least two probe sizes to fit memory, got {len(pts)}")

    def line(ps: Sequence[tuple[int, int]]) -> tuple[float, float]:
        n = len(ps)
        mx, my = sum(p for p, _ in ps) / n, sum(m for _, m in ps) / n
        var = sum((p - mx) ** 2 for p, _ in ps)
        b = max(0.0, sum((p - mx) * (m - my) for p, m in ps) / var) if var else 0.0
        return my - b * mx, b

    if len(pts) >= 3:
        a0, b0 = line(pts[:-1])
        p_last, m_last = pts[-1]
        expected = a0 + b0 * p_last
        if m_last > expected * (1 + CURVATURE_TOLERANCE):
            x = torch.tensor([[1.0, p, float(p) ** 2] for p, _ in pts], dtype=torch.float64)
            y = torch.tensor([[float(m)] for _, m in pts], dtype=torch.float64)
            a, b, c = torch.linalg.lstsq(x, y).solution.flatten().tolist()
            if c > 0:
                return a, max(0.0, b), c
    a, b = line(pts)
    if a < 0:  # noise at small sizes: refit through the origin rather than predict too little
        a, b = 0.0, sum(p * m for p, m in pts) / sum(p * p for p, _ in pts)
    return a, b, 0.0


def fit_memory_model(
    forward: Forward,
    device: torch.device,
    multiple: int,
    channels: int = 3,
    sizes: Sequence[int] | None = None,
    extra_probes: int = 3,
) -> MemoryFit:
    """Measure ``forward`` on square random inputs of ``sizes`` LR pixels per side and fit a line.

    ``sizes`` default to 4, 6 and 8 windows. One untimed run at the smallest size first lets
    one-off allocations (kernel caches, masks) happen outside the measurements. When the probes
    curve upwards, up to ``extra_probes`` larger sizes (x1.5 each) are probed and the fit uses the
    last three: attention that materializes (query chunk x N) scores is quadratic only until N
    exceeds the chunk (PAM with 30 channels in fp32 on CUDA does this), and a quadratic fitted there
    would forbid tiles that fit easily.
    """
    device = torch.device(device)
    sizes = sorted(sizes or [k * multiple for k in PROBE_WINDOWS])
    probes: list[tuple[int, int]] = []

    def probe(side: int) -> None:
        x = torch.rand(1, channels, side, side, device=device)
        probes.append((padded_pixels(side, side, multiple), measure_peak_growth(lambda: forward(x), device)))

    with torch.inference_mode():
        forward(torch.rand(1, channels, sizes[0], sizes[0], device=device))
        for s in sizes:
            probe(s)
        a, b, c = fit_line(probes)
        side = sizes[-1]
        for _ in range(extra_probes):
            if c == 0:
                break
            side = -(-int(side * 1.5) // multiple) * multiple
            probe(side)
            a, b, c = fit_line(probes[-3:])
    kind = "CUDA max_memory_allocated growth" if device.type == "cuda" else "CPU peak RSS growth"
    return MemoryFit(a, b, c, kind, tuple(probes))


def model_key(model: nn.Module, device: torch.device, precision: str, sizes: Sequence[int] | None) -> str:
    """Cache key: architecture config (or class and #params), device type, precision, probes, torch version."""
    cfg = getattr(model, "arch_config", None) or {
        "class": type(model).__name__,
        "params": sum(p.numel() for p in model.parameters()),
    }
    blob = json.dumps(cfg, sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:12]
    name = cfg.get("type", type(model).__name__)
    probes = ",".join(map(str, sizes or ()))
    return f"{name}-{digest}|{torch.device(device).type}|{precision}|{probes}|torch {torch.__version__}"


def cached_memory_fit(
    model: nn.Module,
    forward: Forward,
    device: torch.device,
    cache_file: str | os.PathLike | None,
    precision: str = "fp32",
    channels: int = 3,
    sizes: Sequence[int] | None = None,
) -> tuple[MemoryFit, bool]:
    """:func:`fit_memory_model` of ``forward`` (``model`` run some way), cached in ``cache_file``.

    Returns (fit, came_from_cache). An unreadable cache file is ignored and rewritten.
    """
    key = model_key(model, device, precision, sizes)
    cache = read_json_cache(cache_file)
    if key in cache:
        try:
            e = cache[key]
            probes = tuple((int(p), int(m)) for p, m in e["probes"])
            return MemoryFit(e["base"], e["per_pixel"], e["per_pixel_sq"], e["kind"], probes), True
        except (ValueError, TypeError, KeyError):
            pass  # a bad entry is refitted and overwritten
    fit = fit_memory_model(forward, device, window_multiple(model), channels, sizes)
    if cache_file is not None:
        cache[key] = asdict(fit)
        write_json_cache(cache_file, cache)
    return fit, False


def tiling_overhead_bytes(lr_h: int, lr_w: int, scale: int, channels: int = 3) -> int:
    """What ``forward_tiled`` keeps for the whole image, in bytes (fp32).

    The LR input (C*H*W), the blended output accumulator and the final division (2 * C*H*W*s^2)
    and the weight map (H*W*s^2).
    """
    hr = lr_h * lr_w * scale * scale
    return 4 * (channels * lr_h * lr_w + 2 * channels * hr + hr)


def predict_peak(
    fit: MemoryFit,
    lr_h: int,
    lr_w: int,
    tile: int | None,
    multiple: int,
    scale: int,
    channels: int = 3,
) -> float:
    """Predicted peak bytes (no safety margin) of ``forward_tiled`` on an ``lr_h`` x ``lr_w`` image."""
    if tile is None or (tile >= lr_h and tile >= lr_w):
        return fit.predict(padded_pixels(lr_h, lr_w, multiple))
    th, tw = min(tile, lr_h), min(tile, lr_w)
    return fit.predict(padded_pixels(th, tw, multiple)) + tiling_overhead_bytes(lr_h, lr_w, scale, channels)


def with_margin(predicted: float) -> float:
    """The prediction as budgeted: ``SAFETY_FACTOR * predicted + SAFETY_BYTES``."""
    return SAFETY_FACTOR * predicted + SAFETY_BYTES


@dataclass(frozen=True)
class TileChoice:
    """:func:`choose_tile`'s answer: ``tile`` (None = whole image), the prediction and the budget."""

    tile: int | None
    predicted_bytes: float
    budget_bytes: float

    def describe(self) -> str:
        """One log line, e.g. ``tile 192 (predicted peak 3.1 GiB <= budget 5.6 GiB)``."""
        what = "whole image" if self.tile is None else f"tile {self.tile}"
        return (
            f"{what} (predicted peak {self.predicted_bytes / GIB:.2f} GiB, with margin "
            f"{with_margin(self.predicted_bytes) / GIB:.2f} GiB <= budget {self.budget_bytes / GIB:.2f} GiB)"
        )


def choose_tile_from_fit(
    fit: MemoryFit,
    lr_h: int,
    lr_w: int,
    budget_bytes: float,
    overlap: int,
    multiple: int,
    scale: int,
    channels: int = 3,
    extra_bytes: float = 0.0,
) -> TileChoice:
    """The largest tile (a multiple of ``multiple``, >= 2*overlap) whose peak, with margin, fits.

    ``extra_bytes``: memory held besides the forward (e.g. self-ensemble accumulators), added to
    every prediction. Returns ``TileChoice(None, ...)`` when the whole image fits. Raises
    :class:`MemoryBudgetError` when even the smallest tile does not.
    """
    whole = predict_peak(fit, lr_h, lr_w, None, multiple, scale, channels) + extra_bytes
    if with_margin(whole) <= budget_bytes:
        return TileChoice(None, whole, budget_bytes)
    smallest = max(multiple, -(-2 * overlap // multiple) * multiple)
    largest = -(-max(lr_h, lr_w) // multiple) * multiple
    best: TileChoice | None = None
    for t in range(smallest, largest + 1, multiple):
        if t >= lr_h and t >= lr_w:
            break  # that is the whole image, which did not fit
        peak = predict_peak(fit, lr_h, lr_w, t, multiple, scale, channels) + extra_bytes
        if with_margin(peak) > budget_bytes:
            break  # the prediction grows with the tile
        best = TileChoice(t, peak, budget_bytes)
    if best is None:
        need = with_margin(predict_peak(fit, lr_h, lr_w, smallest, multiple, scale, channels) + extra_bytes)
        raise MemoryBudgetError(
            f"a {lr_w}x{lr_h} LR image does not fit the memory budget of {budget_bytes / GIB:.2f} GiB even "
            f"with the smallest tile ({smallest} px, predicted {need / GIB:.2f} GiB with margin): raise "
            f"--mem_budget, free memory, or lower --tile_overlap (tiles must be >= 2x the overlap)"
        )
    return best


@dataclass(frozen=True)
class AutoTiler:
    """``--tile auto``: (LR h, LR w) -> (tile or None, a log line), from a fit and a budget.

    ``extra_per_hr_pixel``: bytes per HR pixel held besides the tiled forward (self-ensemble keeps
    an fp32 accumulator and the current output: 2 * channels * 4).
    """

    fit: MemoryFit
    budget_bytes: float
    overlap: int
    multiple: int
    scale: int
    channels: int = 3
    extra_per_hr_pixel: float = 0.0

    def __call__(self, lr_h: int, lr_w: int) -> tuple[int | None, str]:
        extra = self.extra_per_hr_pixel * lr_h * lr_w * self.scale**2
        choice = choose_tile_from_fit(
            self.fit,
            lr_h,
            lr_w,
            self.budget_bytes,
            self.overlap,
            self.multiple,
            self.scale,
            self.channels,
            extra,
        )
        return choice.tile, choice.describe()


def choose_tile(
    model: nn.Module,
    lr_h: int,
    lr_w: int,
    budget_bytes: float,
    overlap: int = 32,
    multiple: int | None = None,
    *,
    fit: MemoryFit | None = None,
    scale: int | None = None,
) -> int | None:
    """The largest LR tile side whose predicted peak stays within ``budget_bytes``; None if all fits.

    ``model`` runs on the device its parameters are on; without ``fit`` it is probed now
    (:func:`fit_memory_model`). ``multiple`` defaults to the model's window size, ``scale`` to
    ``model.upscale``. Raises :class:`MemoryBudgetError` when no tile fits.
    """
    multiple = multiple or window_multiple(model)
    scale = scale or int(getattr(model, "upscale", 4))
    if fit is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        fit = fit_memory_model(model, device, multiple)
    return choose_tile_from_fit(fit, lr_h, lr_w, budget_bytes, overlap, multiple, scale).tile


def parse_budget(value: str) -> float | None:
    """``--mem_budget`` text -> GiB (float > 0), or None for 'auto'. Raises ValueError otherwise."""
    if value.strip().lower() == "auto":
        return None
    try:
        gib = float(value)
    except ValueError:
        gib = -1.0
    if not gib > 0:
        raise ValueError(f"--mem_budget must be 'auto' or a size in GiB > 0 (e.g. 4 or 0.5), got {value!r}")
    return gib


def resolve_budget(gib: float | None, device: torch.device) -> tuple[float, str]:
    """(budget bytes, how it was set): ``gib`` GiB, or ``AUTO_BUDGET_FRACTION`` of the available memory."""
    if gib is not None:
        return gib * GIB, f"{gib:g} GiB (--mem_budget)"
    avail = available_bytes(device)
    where = "CUDA free memory" if torch.device(device).type == "cuda" else "MemAvailable"
    budget = AUTO_BUDGET_FRACTION * avail
    return budget, f"{budget / GIB:.2f} GiB ({AUTO_BUDGET_FRACTION:.0%} of {where} {avail / GIB:.2f} GiB)"
