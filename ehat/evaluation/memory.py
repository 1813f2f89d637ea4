"""Peak memory of an evaluation run: CUDA ``max_memory_allocated`` or the process's peak RSS on CPU.

The two are different quantities and are labelled as such wherever they are reported:

- CUDA (the challenge's number): ``torch.cuda.max_memory_allocated`` in MiB, reset at the start of
  each set (the challenge does not reset it, so its "valid" figure also includes model loading).
- CPU: the process's peak resident set size (``VmHWM``) in MiB. On Linux >= 4.0 it is reset per set
  by writing 5 to ``/proc/self/clear_refs``; elsewhere it is the peak since the process started
  (``ru_maxrss``) and :attr:`PeakMemory.resettable` is False.

:func:`measure_peak_growth` measures one call's peak above the memory in use before it (what the
memory model of :mod:`ehat.evaluation.memory_model` is fitted on), and :func:`available_bytes`
says how much more memory the process can take (``MemAvailable`` / ``cudaMemGetInfo``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from ehat.errors import EhatError

MIB = 1024**2


def _reset_vmhwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_mib() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Tracks peak memory on ``device`` between :meth:`reset` and :meth:`peak_mib`."""

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.resettable = True

    @property
    def kind(self) -> str:
        """A label for the number: what was measured, and how."""
        if self.device.type == "cuda":
            return "CUDA max_memory_allocated"
        return "CPU peak RSS (per set)" if self.resettable else "CPU peak RSS (since process start)"

    def reset(self) -> None:
        """Start a new measurement window."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.resettable = os.path.exists("/proc/self/status") and _reset_vmhwm()

    def peak_mib(self) -> float:
        """Peak memory in MiB since :meth:`reset`."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / MIB
        kib = read_status_kib("VmHWM") if self.resettable else None
        return kib / 1024 if kib is not None else _ru_maxrss_mib()


# --------------------------------------------------------------------------- one call's peak


class MemoryMeasureError(EhatError):
    """Peak memory cannot be measured on this platform (no resettable ``VmHWM``)."""


def read_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or None where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _malloc_trim() -> None:
    """Give glibc's free heap pages back to the OS, so freed-but-resident memory cannot hide growth."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def measure_peak_growth(fn: Callable[[], Any], device: torch.device) -> int:
    """Bytes by which ``fn()`` raised peak memory above what was in use just before it.

    CUDA: ``max_memory_allocated`` minus ``memory_allocated`` at the start (peak stats reset).
    CPU (Linux): peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) minus the RSS at the
    start, after ``malloc_trim(0)`` so that pages freed earlier but kept by malloc do not absorb the
    call's allocations unseen. Raises :class:`MemoryMeasureError` where ``VmHWM`` cannot be reset.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - start)
    _malloc_trim()
    start = read_status_kib("VmRSS")
    if start is None or not _reset_vmhwm():
        raise MemoryMeasureError(
            "cannot measure CPU peak memory here: /proc/self/status VmRSS and a writable "
            "/proc/self/clear_refs (Linux >= 4.0) are needed; give a fixed --tile instead"
        )
    fn()
    peak = read_status_kib("VmHWM")
    return max(0, ((peak or start) - start) * 1024)


def available_bytes(device: torch.device) -> int:
    """Memory this process could still take: CPU ``MemAvailable``, CUDA free + PyTorch's cached blocks."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError) as e:
        raise MemoryMeasureError(
            "cannot read the available memory (no /proc/meminfo, no sysconf): give --mem_budget in GiB"
        ) from e
