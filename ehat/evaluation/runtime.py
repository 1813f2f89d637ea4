"""Timing one inference: CUDA events + synchronize on GPU, ``time.perf_counter`` on CPU.

The default is the challenge's: no warm-up, one run, the time of that run. With ``warmup`` /
``repeat`` the function is run ``warmup`` times untimed, then ``repeat`` times timed, and the
median is reported. Everything inside ``fn`` (window padding, tiling, cropping) is timed; moving
the image to the device and converting the output are not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Per-image runtime in milliseconds; ``runs`` holds every timed run."""

    ms: float
    runs: tuple[float, ...]
    clock: str  # "cuda_events" or "perf_counter"


def describe_mode(warmup: int, repeat: int) -> str:
    """A log line saying how runtimes are measured."""
    if warmup == 0 and repeat == 1:
        return "runtime: challenge mode (no warm-up, 1 run per image)"
    return f"runtime: median of {repeat} run(s) per image after {warmup} warm-up run(s)"


def timed(
    fn: Callable[[], torch.Tensor], device: torch.device, warmup: int = 0, repeat: int = 1
) -> tuple[torch.Tensor, Timing]:
    """Run ``fn`` ``warmup`` + ``repeat`` times; return its last output and the timing in ms."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    device = torch.device(device)
    out = None
    for _ in range(warmup):
        out = fn()
    runs = []
    if device.type == "cuda":
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize(device)
            runs.append(start.elapsed_time(end))
        clock = "cuda_events"
    else:
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fn()
            runs.append((time.perf_counter() - t0) * 1000.0)
        clock = "perf_counter"
    assert out is not None
    return out, Timing(statistics.median(runs), tuple(runs), clock)
